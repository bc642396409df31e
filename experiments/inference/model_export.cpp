// Exporting a checkpoint to a torchvision-compatible state_dict (see model_export.h).
#include "experiments/inference/model_export.h"

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "datasets/kium_schema.h"
#include "experiments/training/checkpoint.h"
#include "models/heads.h"
#include "models/torch_save_writer.h"

namespace angiotrain {
namespace {

// The output columns of a task's logits (models/heads.h: [presence | 21 locations]).
std::vector<std::string> OutputColumns(Task task) {
  std::vector<std::string> columns;
  if (HasPresence(task)) columns.push_back("Aneurysm");
  if (HasLocations(task)) columns.insert(columns.end(), LocationNames().begin(), LocationNames().end());
  return columns;
}

// torchvision's builder when the multipliers are the variant's own ("efficientnet_b0"), else "".
std::string TorchvisionBuilder(const EfficientNetConfig& c) {
  const auto standard = EfficientNetConfig::ForVariant(c.variant);
  if (standard.width_mult != c.width_mult || standard.depth_mult != c.depth_mult) return "";
  return "efficientnet_" + c.variant;
}

}  // namespace

std::string ExportDescriptionPath(const std::string& out) { return out + ".json"; }

std::string ExportDescriptionJson(EfficientNet& model, const std::string& task_name, int resolution,
                                  const std::string& checkpoint, const std::string& config_hash,
                                  int64_t global_step) {
  const EfficientNetConfig& c = model->config();
  const NetworkSpec& net = model->network();
  const Task task = ParseTask(task_name);
  nlohmann::ordered_json j;
  j["format"] = "angiotrain torchvision export 1";
  j["source"] = {{"checkpoint", checkpoint}, {"config_hash", config_hash}, {"global_step", global_step}};
  const std::string builder = TorchvisionBuilder(c);
  j["architecture"] = {
      {"family", "torchvision.models.efficientnet.EfficientNet"},
      {"torchvision_builder", builder.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(builder)},
      {"variant", c.variant},
      {"width_mult", c.width_mult},
      {"depth_mult", c.depth_mult},
      {"dropout", c.dropout},
      {"stochastic_depth_prob", c.stochastic_depth_prob},
      {"bn_eps", c.bn_eps},
      {"bn_momentum", c.bn_momentum},
      {"parameters", CountParameters(*model)}};
  j["stem"] = {{"module", "features.0.0"},
               {"replaces", "torch.nn.Conv2d(3, stem_channels, 3, stride=2, padding=1, bias=False)"},
               {"in_channels", c.in_channels},
               {"out_channels", net.stem_channels},
               {"kernel_size", 3},
               {"stride", 2},
               {"padding", 1},
               {"bias", false}};
  j["head"] = {{"module", "classifier.1"},
               {"replaces", "torch.nn.Linear(last_channel, 1000)"},
               {"in_features", net.head_channels},
               {"out_features", c.num_outputs},
               {"task", TaskName(task)},
               {"columns", OutputColumns(task)},
               {"activation", "the model returns logits; the probability of each column is its sigmoid"}};
  std::vector<std::string> views(ViewNames().begin(), ViewNames().end());
  j["input"] = {{"shape", {"N", c.in_channels, resolution, resolution}},
                {"channels", views},
                {"resolution", resolution},
                {"scaling", "uint8 pixel / 255 (float in [0, 1]); no mean or std normalisation"}};
  return j.dump(1) + "\n";
}

ExportSummary ExportCheckpoint(const std::string& checkpoint, const std::string& out) {
  LoadedCheckpoint loaded = LoadCheckpoint(checkpoint);
  const StateDict state = ModuleStateDict(*loaded.model);
  ExportSummary summary;
  summary.weights = out;
  summary.description = ExportDescriptionPath(out);
  summary.tensors = static_cast<int64_t>(state.size());
  summary.parameters = CountParameters(*loaded.model);
  const std::string description = ExportDescriptionJson(loaded.model, loaded.config.model.task, loaded.resolution,
                                                        checkpoint, loaded.config_hash, loaded.global_step);
  WriteTorchStateDict(out, state);
  WriteFileAtomically(summary.description, description);
  return summary;
}

}  // namespace angiotrain
