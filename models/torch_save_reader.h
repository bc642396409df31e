// Reading a dict of tensors (a state_dict) from a file written by Python's torch.save, without
// Python: LibTorch 1.13's torch::pickle_load turns collections.OrderedDict into None.
//
// What it reads: the zip format (the default since PyTorch 1.6), little-endian, whose pickled
// object is a dict, an OrderedDict or a state_dict of tensors (plain or nn.Parameter, any
// stride or storage offset) with float, double, half, bfloat16, int64/32/16/8, uint8 or bool
// storages. Tensors are loaded onto the CPU whatever device they were saved from, as copies
// (not views of a shared storage); the state_dict's `_metadata` (per-module versions) is dropped.
// What it does not read: the legacy format (PyTorch < 1.6 or
// _use_new_zipfile_serialization=False), big-endian files, TorchScript archives
// (torch.jit.save), and any other object or value: modules, optimizer states, nested dicts,
// numbers or strings as values, quantized or sparse tensors. Those fail with an Error that
// names the file and the unsupported thing; nothing is executed from the file.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace angiotrain {

// Name -> tensor, in the file's order.
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// The storage classes of a torch.save pickle ("torch.FloatStorage") and their dtypes: what the
// reader accepts and the writer (torch_save_writer.h) emits.
const std::vector<std::pair<std::string, c10::ScalarType>>& TorchStorageTypes();

// Reads the dict of tensors saved at `path`. Throws Error naming the file and the problem
// (legacy format, unsupported object, truncated data, a value that is not a tensor).
StateDict ReadTorchStateDict(const std::string& path);

}  // namespace angiotrain
