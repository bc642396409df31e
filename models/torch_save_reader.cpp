// Reading torch.save state_dicts without Python: the zip container and a small pickle machine.
// See torch_save_reader.h.
//
// A zip-format torch.save file holds `<archive>/data.pkl`, a pickle (protocol 2) of the object,
// and one record `<archive>/data/<key>` per storage with its raw little-endian bytes. The pickle
// refers to storages by persistent id ('storage', torch.FloatStorage, key, location, numel) and
// rebuilds each tensor with torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...).
// A state_dict is a collections.OrderedDict whose `_metadata` attribute is set with BUILD.
// The zip container is read by LibTorch's PyTorchStreamReader (present in 1.x and 2.x); the
// pickle by the small stack machine below, which knows just the opcodes and globals torch.save
// uses for dicts of tensors and rejects everything else by name.
#include "models/torch_save_reader.h"

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <map>
#include <memory>
#include <sstream>

#include "core/error.h"

namespace angiotrain {
namespace {

// A Python value as far as a state_dict needs: scalars, strings, containers, globals, tensors.
struct PyValue;
using PyRef = std::shared_ptr<PyValue>;
struct PyValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kGlobal, kTensor };
  Kind kind = Kind::kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;  // string, or "module.name" of a global
  std::vector<PyRef> items;                    // tuple, list
  std::vector<std::pair<PyRef, PyRef>> dict;   // insertion order
  torch::Tensor tensor;                        // tensor, or a 1-D storage
};

PyRef Make(PyValue::Kind kind) {
  auto v = std::make_shared<PyValue>();
  v->kind = kind;
  return v;
}

c10::ScalarType StorageDtype(const std::string& global, const std::string& path) {
  for (const auto& [name, dtype] : TorchStorageTypes())
    if (name == global) return dtype;
  throw FileError(path, "unsupported storage type " + global);
}

class StateDictReader {
 public:
  explicit StateDictReader(const std::string& path) : path_(path) {
    try {
      archive_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    } catch (const c10::Error&) {
      throw FileError(path, "not a zip-format torch.save file (files from PyTorch < 1.6 or saved with "
                            "_use_new_zipfile_serialization=False must be re-saved with torch.save)");
    }
    if (archive_->hasRecord("byteorder")) {
      auto [data, size] = archive_->getRecord("byteorder");
      std::string order(static_cast<const char*>(data.get()), size);
      if (order != "little") throw FileError(path, "byte order '" + order + "' is not supported");
    }
    if (!archive_->hasRecord("data.pkl")) throw FileError(path, "no data.pkl record in the archive");
    auto [data, size] = archive_->getRecord("data.pkl");
    pickle_.assign(static_cast<const char*>(data.get()), size);
  }

  StateDict Read() {
    PyRef root = Run();
    if (root->kind != PyValue::Kind::kDict) throw FileError(path_, "the saved object is not a dict");
    StateDict out;
    for (const auto& [key, value] : root->dict) {
      if (key->kind != PyValue::Kind::kString) throw FileError(path_, "a dict key is not a string");
      if (value->kind != PyValue::Kind::kTensor) {
        throw FileError(path_, "entry '" + key->s + "' is not a tensor");
      }
      out.emplace_back(key->s, value->tensor);
    }
    return out;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw FileError(path_, "data.pkl byte " + std::to_string(pos_) + ": " + what);
  }
  void Need(size_t n) const {
    if (pos_ + n > pickle_.size()) Fail("truncated pickle");
  }
  uint64_t ReadUInt(size_t n) {
    Need(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(static_cast<unsigned char>(pickle_[pos_ + k])) << (8 * k);
    pos_ += n;
    return v;
  }
  std::string ReadBytes(size_t n) {
    Need(n);
    std::string s = pickle_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string ReadLine() {
    size_t end = pickle_.find('\n', pos_);
    if (end == std::string::npos) Fail("truncated pickle");
    std::string s = pickle_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  PyRef Pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) Fail("stack underflow");
    PyRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  // Everything above the last MARK, removing the mark.
  std::vector<PyRef> PopToMark() {
    if (marks_.empty()) Fail("no MARK on the stack");
    size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> items(stack_.begin() + mark, stack_.end());
    stack_.resize(mark);
    return items;
  }
  PyRef Top() {
    if (stack_.empty()) Fail("stack underflow");
    return stack_.back();
  }
  void Put(size_t index) { memo_[index] = Top(); }
  PyRef Get(size_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) Fail("memo entry " + std::to_string(index) + " is missing");
    return it->second;
  }
  PyRef Tuple(std::vector<PyRef> items) {
    PyRef t = Make(PyValue::Kind::kTuple);
    t->items = std::move(items);
    return t;
  }
  void SetItems(const std::vector<PyRef>& kv) {
    PyRef d = Top();
    if (d->kind != PyValue::Kind::kDict || kv.size() % 2 != 0) Fail("SETITEMS on a non-dict");
    for (size_t k = 0; k < kv.size(); k += 2) d->dict.emplace_back(kv[k], kv[k + 1]);
  }
  void Append(const std::vector<PyRef>& items) {
    PyRef l = Top();
    if (l->kind != PyValue::Kind::kList) Fail("APPEND on a non-list");
    l->items.insert(l->items.end(), items.begin(), items.end());
  }
  std::vector<int64_t> Ints(const PyRef& t) {
    if (t->kind != PyValue::Kind::kTuple) Fail("expected a tuple of ints");
    std::vector<int64_t> v;
    for (const PyRef& x : t->items) {
      if (x->kind != PyValue::Kind::kInt) Fail("expected a tuple of ints");
      v.push_back(x->i);
    }
    return v;
  }

  // persistent id ('storage', storage_type, key, location, numel) -> 1-D tensor of the storage.
  PyRef LoadStorage(const PyRef& pid) {
    const auto& it = pid->items;
    if (pid->kind != PyValue::Kind::kTuple || it.size() < 5 || it[0]->s != "storage" ||
        it[1]->kind != PyValue::Kind::kGlobal || it[2]->kind != PyValue::Kind::kString ||
        it[4]->kind != PyValue::Kind::kInt) {
      Fail("unsupported persistent id (expected a storage reference)");
    }
    const std::string& key = it[2]->s;
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    c10::ScalarType dtype = StorageDtype(it[1]->s, path_);
    const int64_t numel = it[4]->i;
    const std::string record = "data/" + key;
    if (!archive_->hasRecord(record)) Fail("storage record " + record + " is missing");
    auto [data, size] = archive_->getRecord(record);
    const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
    if (size != bytes) {
      Fail("storage " + record + " has " + std::to_string(size) + " bytes, expected " + std::to_string(bytes));
    }
    PyRef v = Make(PyValue::Kind::kTensor);
    v->tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    if (bytes > 0) std::memcpy(v->tensor.data_ptr(), data.get(), bytes);
    storages_[key] = v;
    return v;
  }

  // callable(*args) for the few callables a state_dict pickle contains.
  PyRef Reduce(const PyRef& callable, const PyRef& args) {
    if (callable->kind != PyValue::Kind::kGlobal || args->kind != PyValue::Kind::kTuple) Fail("bad REDUCE");
    const std::string& name = callable->s;
    const auto& a = args->items;
    if (name == "collections.OrderedDict") {
      PyRef d = Make(PyValue::Kind::kDict);
      if (!a.empty()) Fail("OrderedDict with constructor arguments is not supported");
      return d;
    }
    if (name == "torch._utils._rebuild_tensor_v2") {
      if (a.size() < 4 || a[0]->kind != PyValue::Kind::kTensor || a[1]->kind != PyValue::Kind::kInt) {
        Fail("bad arguments to _rebuild_tensor_v2");
      }
      PyRef t = Make(PyValue::Kind::kTensor);
      try {
        t->tensor = a[0]->tensor.as_strided(Ints(a[2]), Ints(a[3]), a[1]->i).clone();
      } catch (const c10::Error&) {
        Fail("tensor size/stride/offset fall outside its storage");
      }
      return t;
    }
    if (name == "torch._utils._rebuild_parameter") {
      if (a.empty() || a[0]->kind != PyValue::Kind::kTensor) Fail("bad arguments to _rebuild_parameter");
      return a[0];
    }
    Fail("unsupported Python object " + name + " (expected a dict of tensors, e.g. model.state_dict())");
  }

  PyRef Run() {
    while (true) {
      Need(1);
      const unsigned char op = static_cast<unsigned char>(pickle_[pos_++]);
      switch (op) {
        case 0x80: ReadUInt(1); break;                       // PROTO
        case 0x95: ReadUInt(8); break;                       // FRAME
        case '.': return Pop();                              // STOP
        case '(': marks_.push_back(stack_.size()); break;    // MARK
        case '0': Pop(); break;                              // POP
        case '1': PopToMark(); break;                        // POP_MARK
        case '2': stack_.push_back(Top()); break;            // DUP
        case 'N': stack_.push_back(Make(PyValue::Kind::kNone)); break;
        case 0x88: case 0x89: {                              // NEWTRUE, NEWFALSE
          PyRef v = Make(PyValue::Kind::kBool);
          v->i = op == 0x88;
          stack_.push_back(v);
          break;
        }
        case 'K': case 'M': case 'J': {                      // BININT1, BININT2, BININT
          PyRef v = Make(PyValue::Kind::kInt);
          uint64_t raw = ReadUInt(op == 'K' ? 1 : op == 'M' ? 2 : 4);
          v->i = op == 'J' ? static_cast<int32_t>(raw) : static_cast<int64_t>(raw);
          stack_.push_back(v);
          break;
        }
        case 0x8a: {                                         // LONG1: little-endian two's complement
          size_t n = ReadUInt(1);
          if (n > 8) Fail("integer wider than 64 bits");
          uint64_t raw = ReadUInt(n);
          PyRef v = Make(PyValue::Kind::kInt);
          if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~uint64_t{0} << (8 * n);
          v->i = static_cast<int64_t>(raw);
          stack_.push_back(v);
          break;
        }
        case 'G': {                                          // BINFLOAT: big-endian double
          Need(8);
          uint64_t raw = 0;
          for (int k = 0; k < 8; ++k) raw = (raw << 8) | static_cast<unsigned char>(pickle_[pos_ + k]);
          pos_ += 8;
          PyRef v = Make(PyValue::Kind::kFloat);
          std::memcpy(&v->f, &raw, 8);
          stack_.push_back(v);
          break;
        }
        case 'X': case 0x8c: {                               // BINUNICODE, SHORT_BINUNICODE
          PyRef v = Make(PyValue::Kind::kString);
          v->s = ReadBytes(ReadUInt(op == 'X' ? 4 : 1));
          stack_.push_back(v);
          break;
        }
        case 'c': {                                          // GLOBAL "module\nname\n"
          PyRef v = Make(PyValue::Kind::kGlobal);
          std::string module = ReadLine();
          v->s = module + "." + ReadLine();
          stack_.push_back(v);
          break;
        }
        case 0x93: {                                         // STACK_GLOBAL
          PyRef name = Pop(), module = Pop();
          PyRef v = Make(PyValue::Kind::kGlobal);
          v->s = module->s + "." + name->s;
          stack_.push_back(v);
          break;
        }
        case '}': stack_.push_back(Make(PyValue::Kind::kDict)); break;
        case ']': stack_.push_back(Make(PyValue::Kind::kList)); break;
        case ')': stack_.push_back(Tuple({})); break;
        case 't': stack_.push_back(Tuple(PopToMark())); break;
        case 0x85: case 0x86: case 0x87: {                   // TUPLE1..3
          std::vector<PyRef> items(op - 0x84);
          for (size_t k = items.size(); k-- > 0;) items[k] = Pop();
          stack_.push_back(Tuple(std::move(items)));
          break;
        }
        case 's': {                                          // SETITEM
          PyRef value = Pop(), key = Pop();
          SetItems({key, value});
          break;
        }
        case 'u': SetItems(PopToMark()); break;              // SETITEMS
        case 'a': { PyRef v = Pop(); Append({v}); break; }   // APPEND
        case 'e': Append(PopToMark()); break;                // APPENDS
        case 'q': Put(ReadUInt(1)); break;                   // BINPUT
        case 'r': Put(ReadUInt(4)); break;                   // LONG_BINPUT
        case 0x94: Put(memo_.size()); break;                 // MEMOIZE
        case 'h': stack_.push_back(Get(ReadUInt(1))); break; // BINGET
        case 'j': stack_.push_back(Get(ReadUInt(4))); break; // LONG_BINGET
        case 'Q': stack_.push_back(LoadStorage(Pop())); break;  // BINPERSID
        case 'R': {                                          // REDUCE
          PyRef args = Pop(), callable = Pop();
          stack_.push_back(Reduce(callable, args));
          break;
        }
        case 'b': {                                          // BUILD: set attributes
          // Only OrderedDict._metadata (the state_dict's version numbers) arrives here; the
          // tensors do not need it.
          PyRef state = Pop();
          if (Top()->kind != PyValue::Kind::kDict) Fail("BUILD on an unsupported object");
          break;
        }
        default: {
          std::ostringstream hex;
          hex << std::hex << static_cast<int>(op);
          --pos_;
          Fail("unsupported pickle opcode 0x" + hex.str());
        }
      }
    }
  }

  std::string path_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive_;
  std::string pickle_;
  size_t pos_ = 0;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::map<size_t, PyRef> memo_;
  std::map<std::string, PyRef> storages_;
};

}  // namespace

const std::vector<std::pair<std::string, c10::ScalarType>>& TorchStorageTypes() {
  static const std::vector<std::pair<std::string, c10::ScalarType>> types = {
      {"torch.FloatStorage", torch::kFloat},   {"torch.DoubleStorage", torch::kDouble},
      {"torch.HalfStorage", torch::kHalf},     {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kLong},     {"torch.IntStorage", torch::kInt},
      {"torch.ShortStorage", torch::kShort},   {"torch.CharStorage", torch::kChar},
      {"torch.ByteStorage", torch::kByte},     {"torch.BoolStorage", torch::kBool}};
  return types;
}

StateDict ReadTorchStateDict(const std::string& path) {
  return StateDictReader(path).Read();
}

}  // namespace angiotrain
