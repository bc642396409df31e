// A small K-ium folder for ingest tests, drawn with OpenCV (independent of the phantom
// generator): random-texture views, so every view and patient differs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/label_table.h"

namespace angiotrain::testing {

struct KiumFixture {
  std::string dir;     // folder with {Index}{View}.jpg
  std::string labels;  // dir/train.csv
  std::vector<PatientLabels> patients;

  // The path of one view, e.g. View(1003, "LV-B") = dir/1003LV-B.jpg.
  std::string View(int32_t index, const std::string& view) const {
    return dir + "/" + std::to_string(index) + view + ".jpg";
  }
};

// Writes `patients` patients (indices 1000, 1001, ...) with size x size grayscale JPEGs.
KiumFixture WriteKiumFixture(const std::string& dir, int patients, int size, uint32_t seed = 1);

// Rewrites the label CSV from `text` (for bad-CSV cases).
void WriteText(const std::string& path, const std::string& text);

}  // namespace angiotrain::testing
