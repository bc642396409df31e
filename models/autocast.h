// Mixed precision for the forward pass: an RAII scope that turns LibTorch's autocast on for one
// device type with a given lower-precision dtype, as Python's `torch.autocast(device, dtype)`
// does, and restores the previous state (and drops the cast cache) when it ends.
//
//   {
//     AutocastScope amp(torch::kCUDA, torch::kBFloat16);
//     logits = model->forward(images);        // convolutions and matmuls run in bf16
//   }
//   auto loss = BceWithLogitsLoss(logits.to(torch::kFloat), targets);
//
// Works against LibTorch 1.13 (per-device setters) and 2.x (set_autocast_enabled(device, ...)).
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

#include "core/choice.h"

namespace angiotrain {

// The precision a config asks for; kAuto is bf16 on CUDA, fp32 elsewhere.
enum class PrecisionRequest { kAuto, kFp32, kBf16, kFp16 };
// The names: "auto", "fp32", "bf16", "fp16".
const ChoiceTable<PrecisionRequest>& PrecisionChoices();
// "fp32" -> nullopt, "bf16" -> kBFloat16, "fp16" -> kHalf. "auto": bf16 on CUDA, fp32 elsewhere.
// Throws Error naming the value otherwise.
std::optional<torch::ScalarType> ParsePrecision(const std::string& text, torch::Device device);

class AutocastScope {
 public:
  // No-op when dtype is nullopt. Device types other than kCPU and kCUDA throw Error.
  AutocastScope(torch::DeviceType device, std::optional<torch::ScalarType> dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

  // Whether autocast is on for `device` right now.
  static bool Enabled(torch::DeviceType device);

 private:
  bool active_ = false;
  torch::DeviceType device_ = torch::kCPU;
  bool previous_enabled_ = false;
  torch::ScalarType previous_dtype_ = torch::kFloat;
};

}  // namespace angiotrain
