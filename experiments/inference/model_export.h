// `angiotrain export`: a checkpoint's weights as a PyTorch state_dict under torchvision's
// parameter names, plus a JSON description of the two layers that differ from torchvision's
// EfficientNet (the 8-channel stem and the task head), the input and the output columns.
//
// In Python (README "Export to PyTorch"), for model.pt and its model.pt.json:
//   settings, last = torchvision.models.efficientnet._efficientnet_conf(
//       "efficientnet_b0", width_mult=W, depth_mult=D)
//   m = torchvision.models.efficientnet.EfficientNet(settings, dropout, num_classes=OUTPUTS,
//       norm_layer=partial(nn.BatchNorm2d, eps=EPS, momentum=MOMENTUM))
//   m.features[0][0] = nn.Conv2d(8, STEM, 3, stride=2, padding=1, bias=False)
//   m.load_state_dict(torch.load("model.pt"), strict=True)
// (with the variant's own multipliers, torchvision.models.efficientnet_b0(num_classes=OUTPUTS)
// builds the same network).
#pragma once

#include <cstdint>
#include <string>

#include "models/efficientnet.h"

namespace angiotrain {

// The description written next to the weights (OUT.json): architecture, stem, head, input,
// output columns, provenance. `checkpoint` and the hash/epoch describe where it came from.
std::string ExportDescriptionJson(EfficientNet& model, const std::string& task, int resolution,
                                  const std::string& checkpoint, const std::string& config_hash,
                                  int64_t global_step);

struct ExportSummary {
  std::string weights, description;  // the two files written
  int64_t tensors = 0, parameters = 0;
};

// Loads `checkpoint` (experiments/training/checkpoint.h) and writes `out` (torch.save state_dict) and
// `out` + ".json", each atomically. Throws Error naming the file that failed.
ExportSummary ExportCheckpoint(const std::string& checkpoint, const std::string& out);

// The description's path for weights written to `out`.
std::string ExportDescriptionPath(const std::string& out);

}  // namespace angiotrain
