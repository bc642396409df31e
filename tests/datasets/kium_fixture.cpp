// Small K-ium folders for tests. See kium_fixture.h.
#include "tests/datasets/kium_fixture.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>
#include <random>

namespace angiotrain::testing {

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

KiumFixture WriteKiumFixture(const std::string& dir, int patients, int size, uint32_t seed) {
  std::filesystem::create_directories(dir);
  KiumFixture fx;
  fx.dir = dir;
  fx.labels = dir + "/train.csv";
  std::mt19937 rng(seed);
  for (int p = 0; p < patients; ++p) {
    PatientLabels labels;
    labels.index = 1000 + p;
    labels.aneurysm = p % 2;
    if (labels.aneurysm) labels.locations[rng() % kNumLocations] = 1;
    fx.patients.push_back(labels);
    for (int v = 0; v < kNumViews; ++v) {
      cv::Mat img(size, size, CV_8UC1);
      cv::randu(img, cv::Scalar(0), cv::Scalar(255));
      img.at<uint8_t>(0, 0) = static_cast<uint8_t>(p * 8 + v);
      cv::imwrite(dir + "/" + std::to_string(labels.index) + ViewNames()[v] + ".jpg", img);
    }
  }
  WriteLabelTable(fx.labels, fx.patients);
  return fx;
}

}  // namespace angiotrain::testing
