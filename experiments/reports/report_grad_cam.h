// Grad-CAM figures of one patient (`angiotrain explain`, and the report's examples): the map of
// a chosen output of a checkpoint's model (models/grad_cam.h) over the patient's 8 views, drawn
// as one 2x4 grid PNG with the view names and the predicted probability.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/volume_file.h"
#include "experiments/training/checkpoint.h"
#include "models/grad_cam.h"

namespace angiotrain {

// The stage of the report's figures unless `report --layer`: features.3 (1/8 of the input), the
// one whose maps point at the aneurysm on every phantom model of the project's measurement
// (tests/experiments/grad_cam_phantom_test.cpp; README "How well the maps point at aneurysms"),
// where the last stage (features.8, explain's default) does no better than chance.
constexpr int kReportGradCamLayer = 3;

// `report --layer` as a features block: "" -> kReportGradCamLayer. Throws Error naming --layer and
// the blocks there are (features.0 to features.8 in every variant), before anything is read.
int ReportGradCamLayer(const std::string& layer);

// One patient's Grad-CAM.
struct PatientGradCam {
  int32_t index = 0;      // the patient's K-ium Index
  std::string target;     // "presence" or a location name
  int column = 0;         // of the model's logits
  double probability = 0;  // sigmoid of that logit
  torch::Tensor map;      // [R, R] float in [0, 1] (models/grad_cam.h)
  torch::Tensor coarse;   // [map_side, map_side] float: the map at the layer's resolution
  int layer = 0;          // the features block the map was taken over (models/grad_cam.h)
  int map_side = 0;       // side of the coarse map it was up-sampled from
  torch::Tensor views;    // [8, R, R] uint8, the patient's views as stored
};

// The logit column of `target` ("presence" or a location name, LocationNames()) for `task`.
// Throws Error naming the target and what the model offers.
int TargetColumn(const std::string& task, const std::string& target);

// The row of the patient with K-ium Index `index`; throws Error naming the volume, the index and
// the range of indices it holds.
int64_t PatientRow(const VolumeReader& reader, int32_t index);

// Grad-CAM of `target` over features block `layer` for the patient with Index `index` of
// `reader`. Throws Error when the volume's resolution differs from the checkpoint's (naming both
// files), the patient is unknown or the target is not an output of the model.
PatientGradCam ExplainPatient(LoadedCheckpoint& checkpoint, const std::string& checkpoint_path,
                              VolumeReader& reader, int32_t index, const std::string& target,
                              int layer = kGradCamDefaultLayer);

// The 2x4 grid (LI-A LI-B RI-A RI-B / LV-A LV-B RV-A RV-B) of the views with the map overlaid,
// each panel at least `panel_side` pixels, a title line with the Index, target and probability,
// encoded as PNG. Needs OpenCV (ANGIOTRAIN_WITH_OPENCV); throws Error without it.
std::string GradCamGridPng(const PatientGradCam& cam, int panel_side = 256);

struct ExplainOptions {
  std::string checkpoint;
  std::string input;   // a volume file, or a K-ium folder (ingested at the model's resolution)
  int32_t patient = 0;  // K-ium Index
  std::string target = "presence";
  std::string layer = "features.8";  // "features.N" (models/grad_cam.h)
  std::string out;     // PNG
};

// `angiotrain explain` on this process alone: writes options.out atomically and returns the
// patient's figure.
PatientGradCam Explain(const ExplainOptions& options);

}  // namespace angiotrain
