// Grad-CAM of an EfficientNet output (see grad_cam.h).
#include "models/grad_cam.h"

#include <string>
#include <vector>

#include "core/error.h"

namespace angiotrain {

std::optional<int> GradCamLayerNumber(const std::string& name, int blocks) {
  const std::string prefix = "features.";
  const std::string digits = name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : "";
  const bool number = !digits.empty() && digits.size() <= 2 &&
                      digits.find_first_not_of("0123456789") == std::string::npos;
  const int layer = number ? std::stoi(digits) : -1;
  if (layer < 0 || layer >= blocks) return std::nullopt;
  return layer;
}

int ParseGradCamLayer(const std::string& name, EfficientNet& model) {
  const int blocks = static_cast<int>(model->features()->size());
  const std::optional<int> layer = GradCamLayerNumber(name, blocks);
  if (!layer)
    throw Error("Grad-CAM layer '" + name + "': expected features.0 to features." + std::to_string(blocks - 1) +
                " (features.8, the last stage, is the default; features.4 is 1/16 of the input)");
  return *layer;
}

GradCamResult ComputeGradCam(EfficientNet& model, const torch::Tensor& input, int column, int layer) {
  if (input.dim() != 4 || input.size(0) != 1)
    throw Error("Grad-CAM: expected one input [1, C, H, W], got " + c10::str(input.sizes()));
  const int outputs = model->config().num_outputs;
  if (column < 0 || column >= outputs)
    throw Error("Grad-CAM: output " + std::to_string(column) + " is outside the model's " +
                std::to_string(outputs) + " outputs");
  auto& features = *model->features();
  if (layer < 0 || layer >= static_cast<int>(features.size()))
    throw Error("Grad-CAM: layer features." + std::to_string(layer) + " is outside the model's features.0 to features." +
                std::to_string(features.size() - 1));
  model->eval();
  torch::AutoGradMode grad_on(true);
  // The forward pass of EfficientNetImpl::forward, one features block at a time so that the
  // chosen block's output is kept and its gradient reachable: features -> global average pool ->
  // (dropout: identity in eval) -> linear.
  torch::Tensor x = input, activations;  // activations: [1, K, h, w]
  int i = 0;
  for (auto& block : features) {
    x = block.forward(x);
    if (i++ == layer) activations = x;
  }
  const torch::Tensor logits = model->classifier_linear()->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  const torch::Tensor target = logits.index({0, column});
  const torch::Tensor gradient = torch::autograd::grad({target}, {activations})[0];

  torch::NoGradGuard no_grad;
  const torch::Tensor alpha = gradient.mean({2, 3}, /*keepdim=*/true);  // [1, K, 1, 1]
  const torch::Tensor coarse = torch::relu((alpha * activations).sum(1, /*keepdim=*/true));  // [1, 1, h, w]
  namespace F = torch::nn::functional;
  torch::Tensor map = F::interpolate(coarse, F::InterpolateFuncOptions()
                                                 .size(std::vector<int64_t>{input.size(2), input.size(3)})
                                                 .mode(torch::kBilinear)
                                                 .align_corners(false));
  const double peak = map.max().item<double>();
  if (peak > 0) map = map / peak;
  GradCamResult out;
  out.coarse = coarse[0][0].to(torch::kCPU, torch::kFloat);
  out.map = map[0][0].clamp(0, 1).to(torch::kCPU, torch::kFloat);
  out.logit = target.item<double>();
  return out;
}

}  // namespace angiotrain
