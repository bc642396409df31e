// `angiotrain model info`: the stage table, parameter count and multiply-adds of an EfficientNet
// as it would be trained (variant or free multipliers, input channels, task head, resolution).
#include <mpi.h>

#include <cstdio>
#include <memory>

#include "launcher/commands.h"
#include "models/efficientnet.h"
#include "models/heads.h"
#include "models/model_summary.h"

namespace angiotrain {

namespace {

struct ModelInfoOptions {
  std::string variant = "b0";
  double width_mult = 0;  // 0: the variant's
  double depth_mult = 0;
  int in_channels = 8;
  int resolution = 0;  // 0: the variant's
  std::string task = "multitask";
  int num_classes = 0;  // > 0: a plain classifier instead of the task head
};

void PrintModelInfo(const ModelInfoOptions& o) {
  EfficientNetConfig c = EfficientNetConfig::ForVariant(o.variant);
  if (o.width_mult > 0 || o.depth_mult > 0) c.variant = "custom (" + c.variant + " base)";
  if (o.width_mult > 0) c.width_mult = o.width_mult;
  if (o.depth_mult > 0) c.depth_mult = o.depth_mult;
  c.in_channels = o.in_channels;
  std::string head;
  if (o.num_classes > 0) {
    c.num_outputs = o.num_classes;
    head = "classifier, " + std::to_string(o.num_classes) + " logits";
  } else {
    Task task = ParseTask(o.task);
    c.num_outputs = TaskOutputs(task);
    head = TaskName(task) + ", " + std::to_string(c.num_outputs) + " logits";
  }
  const int resolution = o.resolution > 0 ? o.resolution : c.resolution;

  EfficientNet model(c);  // the parameter count is the real module's
  const int64_t params = CountParameters(*model);
  const int64_t macs = CountMultiplyAdds(c, resolution);
  std::printf("EfficientNet %s: width %.2f, depth %.2f, %d input channels, head %s\n", c.variant.c_str(),
              c.width_mult, c.depth_mult, c.in_channels, head.c_str());
  std::printf("%s", FormatStageTable(StageTable(c, resolution)).c_str());
  std::printf("parameters: %lld (%.2f M)\n", static_cast<long long>(params), params / 1e6);
  std::printf("multiply-adds: %lld (%.3f G) per sample at %dx%d\n", static_cast<long long>(macs), macs / 1e9,
              resolution, resolution);
}

}  // namespace

void AddModelCommand(CLI::App& app) {
  CLI::App* model = app.add_subcommand("model", "Inspect the EfficientNet models");
  model->require_subcommand(1);
  auto o = std::make_shared<ModelInfoOptions>();
  CLI::App* info = model->add_subcommand(
      "info", "Print the stage table, parameter count and multiply-adds of one forward pass");
  info->add_option("--variant", o->variant, "b0 .. b7")->capture_default_str();
  info->add_option("--width-mult", o->width_mult, "Width multiplier (default: the variant's)");
  info->add_option("--depth-mult", o->depth_mult, "Depth multiplier (default: the variant's)");
  info->add_option("--in-channels", o->in_channels, "Input channels (8: one per view)")->capture_default_str();
  info->add_option("--resolution", o->resolution, "Input side in pixels (default: the variant's)");
  info->add_option("--task", o->task, "Head: presence, location or multitask")->capture_default_str();
  info->add_option("--num-classes", o->num_classes, "Plain classifier with N logits instead of the task head");
  info->callback([o] {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) PrintModelInfo(*o);
  });
}

}  // namespace angiotrain
