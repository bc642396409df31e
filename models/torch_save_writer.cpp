// Writing torch.save state_dicts without Python: a protocol-2 pickle of an OrderedDict of
// tensors and the zip container around it. See torch_save_writer.h.
//
// The pickle, as Python's torch.save lays it out for `model.state_dict()`:
//   PROTO 2; collections.OrderedDict() ; MARK
//     name  _rebuild_tensor_v2( persistent_id(('storage', torch.FloatStorage, '0', 'cpu', numel)),
//                               offset 0, size tuple, stride tuple, False, OrderedDict() )
//     ...
//   SETITEMS; STOP
// The unpickler calls persistent_load on each storage tuple, which torch.load answers with the
// bytes of record data/<key>. The zip container (alignment of the records, the version record)
// is written by LibTorch's PyTorchStreamWriter, the counterpart of the reader's
// PyTorchStreamReader, into memory; the file itself is written atomically.
#include "models/torch_save_writer.h"

#include <caffe2/serialize/inline_container.h>

#include <set>

#include "core/atomic_file.h"
#include "core/error.h"

namespace angiotrain {
namespace {

// The pickle opcodes this writer uses (Python's Lib/pickle.py names).
constexpr char kProto = '\x80', kGlobal = 'c', kEmptyTuple = ')', kReduce = 'R', kMark = '(',
               kTuple = 't', kSetItems = 'u', kBinUnicode = 'X', kBinInt1 = 'K', kBinInt2 = 'M',
               kBinInt = 'J', kLong1 = '\x8a', kBinPersId = 'Q', kNewFalse = '\x89', kStop = '.';

class PickleWriter {
 public:
  void Proto() { out_ += {kProto, 2}; }
  void Global(const std::string& module, const std::string& name) {
    out_ += kGlobal;
    out_ += module + "\n" + name + "\n";
  }
  void String(const std::string& s) {
    out_ += kBinUnicode;
    LittleEndian(s.size(), 4);
    out_ += s;
  }
  void Int(int64_t v) {
    if (v >= 0 && v < 256) {
      out_ += kBinInt1;
      LittleEndian(static_cast<uint64_t>(v), 1);
    } else if (v >= 0 && v < 65536) {
      out_ += kBinInt2;
      LittleEndian(static_cast<uint64_t>(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out_ += kBinInt;
      LittleEndian(static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
    } else {
      out_ += kLong1;
      out_ += static_cast<char>(8);
      LittleEndian(static_cast<uint64_t>(v), 8);
    }
  }
  void IntTuple(const c10::IntArrayRef values) {
    if (values.empty()) {
      out_ += kEmptyTuple;
      return;
    }
    out_ += kMark;
    for (int64_t v : values) Int(v);
    out_ += kTuple;
  }
  // collections.OrderedDict()
  void EmptyOrderedDict() {
    Global("collections", "OrderedDict");
    out_ += kEmptyTuple;
    out_ += kReduce;
  }
  void Op(char op) { out_ += op; }
  const std::string& bytes() const { return out_; }

 private:
  void LittleEndian(uint64_t v, int n) {
    for (int k = 0; k < n; ++k) out_ += static_cast<char>((v >> (8 * k)) & 0xff);
  }
  std::string out_;
};

// "torch.FloatStorage" -> {"torch", "FloatStorage"} for a tensor's dtype.
std::pair<std::string, std::string> StorageGlobal(const std::string& name, const torch::Tensor& t) {
  for (const auto& [global, dtype] : TorchStorageTypes()) {
    if (dtype == t.scalar_type()) {
      const size_t dot = global.rfind('.');
      return {global.substr(0, dot), global.substr(dot + 1)};
    }
  }
  throw Error("tensor '" + name + "': dtype " + std::string(c10::toString(t.scalar_type())) +
              " cannot be written to a torch.save file");
}

}  // namespace

StateDict ModuleStateDict(torch::nn::Module& module) {
  StateDict out;
  for (const auto& m : module.named_modules()) {
    const std::string prefix = m.key().empty() ? "" : m.key() + ".";
    for (const auto& p : m.value()->named_parameters(/*recurse=*/false)) out.emplace_back(prefix + p.key(), p.value());
    for (const auto& b : m.value()->named_buffers(/*recurse=*/false)) out.emplace_back(prefix + b.key(), b.value());
  }
  return out;
}

std::string TorchSaveBytes(const StateDict& state) {
  std::set<std::string> names;
  std::vector<torch::Tensor> storages;  // contiguous CPU copies, record data/<position>
  PickleWriter p;
  p.Proto();
  p.EmptyOrderedDict();
  if (!state.empty()) p.Op(kMark);
  for (const auto& [name, tensor] : state) {
    if (!names.insert(name).second) throw Error("tensor '" + name + "' is named twice in the state_dict");
    const auto [module, storage_class] = StorageGlobal(name, tensor);
    const torch::Tensor data = tensor.detach().to(torch::kCPU).contiguous();
    const std::string key = std::to_string(storages.size());
    storages.push_back(data);
    p.String(name);
    p.Global("torch._utils", "_rebuild_tensor_v2");
    p.Op(kMark);
    {  // the storage, as a persistent id
      p.Op(kMark);
      p.String("storage");
      p.Global(module, storage_class);
      p.String(key);
      p.String("cpu");
      p.Int(data.numel());
      p.Op(kTuple);
      p.Op(kBinPersId);
    }
    p.Int(0);  // storage offset
    p.IntTuple(data.sizes());
    p.IntTuple(data.strides());
    p.Op(kNewFalse);  // requires_grad
    p.EmptyOrderedDict();  // backward hooks
    p.Op(kTuple);
    p.Op(kReduce);
  }
  if (!state.empty()) p.Op(kSetItems);
  p.Op(kStop);

  std::string file;
  caffe2::serialize::PyTorchStreamWriter zip([&file](const void* data, size_t size) {
    file.append(static_cast<const char*>(data), size);
    return size;
  });
  zip.writeRecord("data.pkl", p.bytes().data(), p.bytes().size());
  static const std::string kLittle = "little";
  zip.writeRecord("byteorder", kLittle.data(), kLittle.size());
  for (size_t k = 0; k < storages.size(); ++k) {
    const torch::Tensor& t = storages[k];
    zip.writeRecord("data/" + std::to_string(k), t.data_ptr(), t.numel() * t.element_size());
  }
  zip.writeEndOfFile();
  return file;
}

void WriteTorchStateDict(const std::string& path, const StateDict& state) {
  WriteFileAtomically(path, TorchSaveBytes(state));
}

}  // namespace angiotrain
