#include "models/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "core/error.h"

// LibTorch 2.4 replaced the per-device autocast setters by ones taking the device type; the old
// ones are deprecated there and may be gone later.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define ANGIOTRAIN_AUTOCAST_BY_DEVICE 1
#else
#define ANGIOTRAIN_AUTOCAST_BY_DEVICE 0
#endif

namespace angiotrain {
namespace {

void CheckDevice(torch::DeviceType device) {
  if (device != torch::kCPU && device != torch::kCUDA)
    throw Error("autocast: only cpu and cuda are supported, not " + c10::DeviceTypeName(device));
}

bool IsEnabled(torch::DeviceType device) {
#if ANGIOTRAIN_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(device);
#else
  return device == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void SetEnabled(torch::DeviceType device, bool on) {
#if ANGIOTRAIN_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(device, on);
#else
  if (device == torch::kCUDA)
    at::autocast::set_enabled(on);
  else
    at::autocast::set_cpu_enabled(on);
#endif
}

torch::ScalarType GetDtype(torch::DeviceType device) {
#if ANGIOTRAIN_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(device);
#else
  return device == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void SetDtype(torch::DeviceType device, torch::ScalarType dtype) {
#if ANGIOTRAIN_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == torch::kCUDA)
    at::autocast::set_autocast_gpu_dtype(dtype);
  else
    at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

}  // namespace

const ChoiceTable<PrecisionRequest>& PrecisionChoices() {
  static const ChoiceTable<PrecisionRequest> table = {{"auto", PrecisionRequest::kAuto},
                                                      {"fp32", PrecisionRequest::kFp32},
                                                      {"bf16", PrecisionRequest::kBf16},
                                                      {"fp16", PrecisionRequest::kFp16}};
  return table;
}

std::optional<torch::ScalarType> ParsePrecision(const std::string& text, torch::Device device) {
  const auto request = FindChoice(PrecisionChoices(), text);
  if (!request) {
    const auto names = ChoiceNames(PrecisionChoices());
    std::string expected;
    for (size_t i = 0; i < names.size(); ++i)
      expected += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
    throw Error("precision '" + text + "': expected " + expected);
  }
  switch (*request) {
    case PrecisionRequest::kFp32: return std::nullopt;
    case PrecisionRequest::kBf16: return torch::kBFloat16;
    case PrecisionRequest::kFp16: return torch::kHalf;
    case PrecisionRequest::kAuto: break;
  }
  return device.is_cuda() ? std::optional<torch::ScalarType>(torch::kBFloat16) : std::nullopt;
}

AutocastScope::AutocastScope(torch::DeviceType device, std::optional<torch::ScalarType> dtype) {
  if (!dtype) return;
  CheckDevice(device);
  device_ = device;
  previous_enabled_ = IsEnabled(device);
  previous_dtype_ = GetDtype(device);
  SetEnabled(device, true);
  SetDtype(device, *dtype);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // The cast cache holds lower-precision copies of the weights; it is valid only while the
  // weights do not change, so it is dropped when the outermost scope ends (as in Python).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetEnabled(device_, previous_enabled_);
  SetDtype(device_, previous_dtype_);
}

bool AutocastScope::Enabled(torch::DeviceType device) {
  CheckDevice(device);
  return IsEnabled(device);
}

}  // namespace angiotrain
