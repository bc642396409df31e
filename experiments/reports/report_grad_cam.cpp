// Grad-CAM figures of a patient (see report_grad_cam.h).
#include "experiments/reports/report_grad_cam.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#ifdef ANGIOTRAIN_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "datasets/ingest.h"
#endif

#include "core/atomic_file.h"
#include "core/error.h"
#include "datasets/kium_schema.h"
#include "models/grad_cam.h"
#include "models/heads.h"

namespace angiotrain {

int TargetColumn(const std::string& task_name, const std::string& target) {
  const Task task = ParseTask(task_name);
  if (target == "presence") {
    if (!HasPresence(task))
      throw Error("--target presence: the model (task " + task_name +
                  ") has no presence output; choose a location, e.g. --target L_MCA");
    return 0;
  }
  const int location = LocationIndex(target);
  if (location < 0) {
    std::string names;
    for (const auto& n : LocationNames()) names += " " + n;
    throw Error("--target '" + target + "': expected presence or a location:" + names);
  }
  if (!HasLocations(task))
    throw Error("--target " + target + ": the model (task " + task_name + ") has no location outputs");
  return (HasPresence(task) ? 1 : 0) + location;
}

int64_t PatientRow(const VolumeReader& reader, int32_t index) {
  const auto& indices = reader.index();
  const auto it = std::find(indices.begin(), indices.end(), index);
  if (it != indices.end()) return it - indices.begin();
  std::string range = "it holds no patient";
  if (!indices.empty()) {
    const auto [lo, hi] = std::minmax_element(indices.begin(), indices.end());
    range = "it holds " + std::to_string(indices.size()) + " patients, Index " + std::to_string(*lo) + " to " +
            std::to_string(*hi);
  }
  throw Error(reader.path() + ": no patient with Index " + std::to_string(index) + " (" + range + ")");
}

int ReportGradCamLayer(const std::string& layer) {
  if (layer.empty()) return kReportGradCamLayer;
  if (const auto n = GradCamLayerNumber(layer)) return *n;
  throw Error("report --layer '" + layer + "': expected features.0 to features." +
              std::to_string(kEfficientNetFeatureBlocks - 1) + " (the default, features." +
              std::to_string(kReportGradCamLayer) + ", is the stage whose maps point at the aneurysms on the phantom)");
}

PatientGradCam ExplainPatient(LoadedCheckpoint& checkpoint, const std::string& checkpoint_path,
                              VolumeReader& reader, int32_t index, const std::string& target, int layer) {
  if (reader.resolution() != checkpoint.resolution)
    throw Error(reader.path() + ": resolution " + std::to_string(reader.resolution()) + ", but the model in " +
                checkpoint_path + " was trained at " + std::to_string(checkpoint.resolution));
  PatientGradCam out;
  out.index = index;
  out.target = target;
  out.column = TargetColumn(checkpoint.config.model.task, target);
  const int64_t row = PatientRow(reader, index);
  std::vector<uint8_t> bytes;
  reader.ReadImages({row}, &bytes);
  const int R = reader.resolution();
  out.views = torch::from_blob(bytes.data(), {kNumViews, R, R}, torch::kUInt8).clone();
  const torch::Tensor input = out.views.to(torch::kFloat).div(255.0).unsqueeze(0);
  const GradCamResult cam = ComputeGradCam(checkpoint.model, input, out.column, layer);
  out.layer = layer;
  out.map = cam.map;
  out.coarse = cam.coarse;
  out.map_side = static_cast<int>(cam.coarse.size(0));
  out.probability = 1.0 / (1.0 + std::exp(-cam.logit));
  return out;
}

#ifdef ANGIOTRAIN_WITH_OPENCV
namespace {

// One view with the map over it: the jet colour map blended in proportion to the map's value,
// so the view stays readable where the model did not look.
cv::Mat OverlayPanel(const PatientGradCam& cam, int view, int side) {
  const int R = static_cast<int>(cam.views.size(1));
  const torch::Tensor v = cam.views[view].contiguous();
  cv::Mat gray(R, R, CV_8UC1, v.data_ptr<uint8_t>());
  const torch::Tensor m = cam.map.contiguous();
  cv::Mat heat(R, R, CV_32FC1, m.data_ptr<float>());
  cv::Mat gray_big, heat_big;
  cv::resize(gray, gray_big, {side, side}, 0, 0, cv::INTER_LINEAR);
  cv::resize(heat, heat_big, {side, side}, 0, 0, cv::INTER_LINEAR);
  cv::Mat heat8, colour, base, out;
  heat_big.convertTo(heat8, CV_8UC1, 255.0);
  cv::applyColorMap(heat8, colour, cv::COLORMAP_JET);
  cv::cvtColor(gray_big, base, cv::COLOR_GRAY2BGR);
  out.create(side, side, CV_8UC3);
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      const float a = 0.6f * heat_big.at<float>(y, x);
      const auto& b = base.at<cv::Vec3b>(y, x);
      const auto& c = colour.at<cv::Vec3b>(y, x);
      cv::Vec3b& o = out.at<cv::Vec3b>(y, x);
      for (int k = 0; k < 3; ++k) o[k] = cv::saturate_cast<uint8_t>((1 - a) * b[k] + a * c[k]);
    }
  }
  return out;
}

void Label(cv::Mat& image, const std::string& text, cv::Point at, double scale) {
  cv::putText(image, text, at, cv::FONT_HERSHEY_SIMPLEX, scale, {0, 0, 0}, 3, cv::LINE_AA);
  cv::putText(image, text, at, cv::FONT_HERSHEY_SIMPLEX, scale, {255, 255, 255}, 1, cv::LINE_AA);
}

}  // namespace

std::string GradCamGridPng(const PatientGradCam& cam, int panel_side) {
  const int R = static_cast<int>(cam.views.size(1));
  const int side = std::max(panel_side, R);
  const int title = 36, gap = 4;
  cv::Mat grid(title + 2 * side + gap, 4 * side + 3 * gap, CV_8UC3, cv::Scalar(32, 32, 32));
  for (int v = 0; v < kNumViews; ++v) {
    const int row = v / 4, col = v % 4;
    cv::Mat panel = OverlayPanel(cam, v, side);
    Label(panel, ViewNames()[v], {8, 24}, 0.7);
    panel.copyTo(grid(cv::Rect(col * (side + gap), title + row * (side + gap), side, side)));
  }
  char text[200];
  std::snprintf(text, sizeof text, "Index %d   target %s   p = %.3f   Grad-CAM over features.%d (%dx%d, up-sampled)",
                cam.index, cam.target.c_str(), cam.probability, cam.layer, cam.map_side, cam.map_side);
  Label(grid, text, {8, 25}, 0.65);
  std::vector<uint8_t> png;
  if (!cv::imencode(".png", grid, png)) throw Error("Grad-CAM: PNG encoding failed");
  return std::string(png.begin(), png.end());
}

PatientGradCam Explain(const ExplainOptions& options) {
  LoadedCheckpoint checkpoint = LoadCheckpoint(options.checkpoint);
  // A bad target or layer fails before any ingest.
  TargetColumn(checkpoint.config.model.task, options.target);
  const int layer = ParseGradCamLayer(options.layer, checkpoint.model);
  std::string volume = options.input;
  std::string temporary;
  if (std::filesystem::is_directory(options.input)) {
    // A K-ium folder: ingest it at the model's resolution into a volume next to the output.
    temporary = options.out + ".input.h5";
    IngestOptions ingest;
    ingest.input_dir = options.input;
    ingest.out_path = temporary;
    ingest.resolution = checkpoint.resolution;
    ingest.progress = false;
    IngestKiumFolder(ingest, MPI_COMM_SELF);
    volume = temporary;
  }
  struct RemoveTemporary {
    std::string path;
    ~RemoveTemporary() {
      if (!path.empty()) std::filesystem::remove(path);
    }
  } cleanup{temporary};
  VolumeReader reader(volume, MPI_COMM_NULL);
  PatientGradCam cam = ExplainPatient(checkpoint, options.checkpoint, reader, options.patient, options.target, layer);
  WriteFileAtomically(options.out, GradCamGridPng(cam));
  return cam;
}
#else
std::string GradCamGridPng(const PatientGradCam&, int) {
  throw Error("Grad-CAM figures need image drawing: this build has no OpenCV");
}
PatientGradCam Explain(const ExplainOptions&) {
  throw Error("explain needs image drawing: this build has no OpenCV");
}
#endif

}  // namespace angiotrain
