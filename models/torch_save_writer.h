// Writing a dict of tensors (a state_dict) as Python's torch.save writes it, without Python, so
// that `torch.load(path)` (also with weights_only=True) returns a collections.OrderedDict of
// tensors that `module.load_state_dict(...)` accepts. The counterpart of torch_save_reader.h.
//
// What it writes: the zip format of PyTorch >= 1.6 (records `<archive>/data.pkl`, one
// `<archive>/data/<key>` per tensor with its raw little-endian bytes, `byteorder` and `version`)
// whose pickle (protocol 2) is an OrderedDict of tensors, each rebuilt by
// torch._utils._rebuild_tensor_v2 from a persistent id ('storage', torch.FloatStorage, key,
// 'cpu', numel). Every tensor gets its own contiguous storage (no sharing, no views) and
// requires_grad False. Dtypes: float, double, half, bfloat16, int64/32/16/8, uint8, bool.
#pragma once

#include <string>

#include "models/torch_save_reader.h"

namespace angiotrain {

// The state_dict of `module` as PyTorch's Module.state_dict() orders it: depth first, each
// module's own parameters, then its own buffers. Names are the modules' (for an EfficientNet,
// torchvision's). Tensors are the module's own (not copies).
StateDict ModuleStateDict(torch::nn::Module& module);

// The bytes of a torch.save file holding `state` (names in the given order; tensors on any
// device are copied to the CPU). Throws Error naming the tensor when its dtype is unsupported
// or a name is repeated.
std::string TorchSaveBytes(const StateDict& state);

// Writes TorchSaveBytes(state) to `path` atomically (core/atomic_file.h). Throws Error naming
// the file when it cannot be written.
void WriteTorchStateDict(const std::string& path, const StateDict& state);

}  // namespace angiotrain
