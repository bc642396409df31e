// MpiCommunicator: collectives on CPU tensors with MPI, on a private duplicate communicator.
#include "distributed/mpi_communicator.h"

#include <exception>
#include <climits>
#include <cstring>

#include "core/error.h"

namespace angiotrain {
namespace {

bool MpiFinalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

// The dtype a tensor is reduced in: MPI has no 16-bit floating types, so those go via float32.
torch::ScalarType ReduceType(torch::ScalarType type) {
  if (type == torch::kHalf || type == torch::kBFloat16) return torch::kFloat;
  return type;
}

MPI_Datatype MpiType(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat: return MPI_FLOAT;
    case torch::kDouble: return MPI_DOUBLE;
    case torch::kLong: return MPI_INT64_T;
    case torch::kInt: return MPI_INT32_T;
    case torch::kShort: return MPI_INT16_T;
    case torch::kChar: return MPI_INT8_T;
    case torch::kByte: return MPI_UINT8_T;
    default:
      throw Error(std::string("MPI all-reduce: unsupported dtype ") + c10::toString(type) +
                  " (supported: float32/64, float16, bfloat16, int8/16/32/64, uint8)");
  }
}

std::string Describe(const char* what, const torch::Tensor& tensor) {
  return std::string(what) + " of " + std::to_string(tensor.numel()) + " " +
         c10::toString(tensor.scalar_type()) + " (mpi)";
}

// A contiguous CPU tensor with the contents of `tensor` in dtype `type`: `tensor` itself when it
// already is one, else a copy.
torch::Tensor HostContiguous(const torch::Tensor& tensor, torch::ScalarType type) {
  if (tensor.device().is_cpu() && tensor.is_contiguous() && tensor.scalar_type() == type) return tensor;
  return tensor.to(torch::kCPU, type, /*non_blocking=*/false, /*copy=*/true, torch::MemoryFormat::Contiguous);
}

void CheckStrided(const torch::Tensor& tensor, const char* what) {
  if (!tensor.defined()) throw Error(std::string(what) + ": undefined tensor");
  if (tensor.layout() != torch::kStrided) throw Error(std::string(what) + ": sparse tensors are not supported");
}

class MpiWork final : public Work {
 public:
  MpiWork(torch::Tensor target, torch::Tensor buffer, int divide_by,
          std::shared_ptr<CollectiveWatchdog> watchdog, uint64_t token)
      : target_(std::move(target)),
        buffer_(std::move(buffer)),
        divide_by_(divide_by),
        watchdog_(std::move(watchdog)),
        token_(token) {}
  ~MpiWork() override {
    if (!done_ && !MpiFinalized()) {
      MPI_Wait(&request_, MPI_STATUS_IGNORE);
      if (watchdog_) watchdog_->Finish(token_);
    }
  }

  MPI_Request* request() { return &request_; }

  void Wait() override {
    if (done_) return;
    MPI_Wait(&request_, MPI_STATUS_IGNORE);
    Complete();
  }

  bool Test() override {
    if (done_) return true;
    int flag = 0;
    MPI_Test(&request_, &flag, MPI_STATUS_IGNORE);
    if (flag) Complete();
    return done_;
  }

 private:
  void Complete() {
    done_ = true;
    if (watchdog_) watchdog_->Finish(token_);
    if (divide_by_ > 1) buffer_.div_(divide_by_);
    if (!buffer_.is_same(target_)) target_.copy_(buffer_);
  }

  torch::Tensor target_, buffer_;
  int divide_by_;
  std::shared_ptr<CollectiveWatchdog> watchdog_;
  uint64_t token_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool done_ = false;
};

constexpr int kMaxGatherDims = 8;

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::shared_ptr<CollectiveWatchdog> watchdog)
    : watchdog_(std::move(watchdog)) {
  MPI_Comm_dup(comm, &comm_);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

MpiCommunicator::~MpiCommunicator() {
  // MPI_Comm_free is collective: a rank unwinding from its own error leaves the communicator to
  // MPI_Abort instead of waiting for ranks that are elsewhere.
  if (comm_ != MPI_COMM_NULL && !MpiFinalized() && std::uncaught_exceptions() == 0) MPI_Comm_free(&comm_);
}

uint64_t MpiCommunicator::Watch(const std::string& what) {
  return watchdog_ ? watchdog_->Start(what) : 0;
}

void MpiCommunicator::Unwatch(uint64_t token) {
  if (watchdog_) watchdog_->Finish(token);
}

std::unique_ptr<Work> MpiCommunicator::AllReduceAsync(torch::Tensor tensor, ReduceOp op) {
  CheckStrided(tensor, "MPI all-reduce");
  torch::ScalarType type = ReduceType(tensor.scalar_type());
  MPI_Datatype mpi_type = MpiType(type);
  if (op == ReduceOp::kAverage && !torch::isFloatingType(type)) {
    throw Error(std::string("MPI all-reduce: average of an integer tensor (") +
                c10::toString(tensor.scalar_type()) + ") is not defined; use kSum");
  }
  if (tensor.numel() > INT_MAX) {
    throw Error("MPI all-reduce: " + std::to_string(tensor.numel()) +
                " elements exceed MPI's int count; reduce in parts");
  }
  torch::Tensor buffer = HostContiguous(tensor, type);
  auto work = std::make_unique<MpiWork>(tensor, buffer, op == ReduceOp::kAverage ? size_ : 1,
                                        watchdog_, Watch(Describe("all-reduce", tensor)));
  MPI_Iallreduce(MPI_IN_PLACE, buffer.data_ptr(), static_cast<int>(buffer.numel()), mpi_type,
                 MPI_SUM, comm_, work->request());
  return work;
}

void MpiCommunicator::Broadcast(torch::Tensor tensor, int root) {
  CheckStrided(tensor, "MPI broadcast");
  if (root < 0 || root >= size_) {
    throw Error("MPI broadcast: root " + std::to_string(root) + " is not a rank of " + std::to_string(size_));
  }
  torch::Tensor buffer = HostContiguous(tensor, tensor.scalar_type());
  uint64_t token = Watch(Describe("broadcast", tensor));
  // MPI counts are int: send large tensors in pieces of at most 1 GiB.
  auto* bytes = static_cast<char*>(buffer.data_ptr());
  int64_t remaining = buffer.numel() * static_cast<int64_t>(buffer.element_size());
  constexpr int64_t kPiece = int64_t{1} << 30;
  do {
    int count = static_cast<int>(std::min(remaining, kPiece));
    MPI_Bcast(bytes, count, MPI_BYTE, root, comm_);
    bytes += count;
    remaining -= count;
  } while (remaining > 0);
  Unwatch(token);
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

void MpiCommunicator::Barrier() {
  uint64_t token = Watch("barrier (mpi)");
  MPI_Barrier(comm_);
  Unwatch(token);
}

std::vector<torch::Tensor> MpiCommunicator::Gather(const torch::Tensor& tensor, int root) {
  if (root < 0 || root >= size_) {
    throw Error("MPI gather: root " + std::to_string(root) + " is not a rank of " + std::to_string(size_));
  }
  return GatherRows(tensor, root, /*everyone=*/false);
}

std::vector<torch::Tensor> MpiCommunicator::AllGather(const torch::Tensor& tensor) {
  return GatherRows(tensor, 0, /*everyone=*/true);
}

std::vector<torch::Tensor> MpiCommunicator::GatherRows(const torch::Tensor& tensor, int root,
                                                       bool everyone) {
  CheckStrided(tensor, "MPI gather");
  uint64_t token = Watch(Describe(everyone ? "all-gather" : "gather", tensor));

  // 1. Every rank learns every rank's dtype and shape, so all of them reject a mismatch alike
  //    (one rank throwing alone would leave the others waiting in the next collective).
  constexpr int kHeader = 2 + kMaxGatherDims;
  std::vector<int64_t> header(kHeader, 0);
  header[0] = static_cast<int64_t>(tensor.scalar_type());
  header[1] = tensor.dim();
  for (int d = 0; d < std::min<int64_t>(tensor.dim(), kMaxGatherDims); ++d) header[2 + d] = tensor.size(d);
  std::vector<int64_t> headers(kHeader * size_);
  MPI_Allgather(header.data(), kHeader, MPI_INT64_T, headers.data(), kHeader, MPI_INT64_T, comm_);

  auto shape_of = [&](int r) {
    const int64_t* h = &headers[kHeader * r];
    std::string s = "[";
    for (int d = 0; d < std::min<int64_t>(h[1], kMaxGatherDims); ++d) s += (d ? ", " : "") + std::to_string(h[2 + d]);
    return s + "] " + c10::toString(static_cast<torch::ScalarType>(h[0]));
  };
  const int64_t* first = headers.data();
  if (first[1] < 1 || first[1] > kMaxGatherDims) {
    Unwatch(token);
    throw Error("MPI gather: rank 0 sent a tensor of " + std::to_string(first[1]) +
                " dimensions; expected 1 to " + std::to_string(kMaxGatherDims) + " (rows first)");
  }
  for (int r = 1; r < size_; ++r) {
    const int64_t* h = &headers[kHeader * r];
    bool same = h[0] == first[0] && h[1] == first[1];
    for (int d = 1; same && d < first[1]; ++d) same = h[2 + d] == first[2 + d];
    if (!same) {
      Unwatch(token);
      throw Error("MPI gather: rank " + std::to_string(r) + " sent " + shape_of(r) + " but rank 0 sent " +
                  shape_of(0) + "; rows may differ, dtype and the other dimensions must agree");
    }
  }

  // 2. The rows themselves, as bytes.
  auto type = static_cast<torch::ScalarType>(first[0]);
  std::vector<int64_t> row_shape(first + 3, first + 2 + first[1]);
  int64_t row_bytes = static_cast<int64_t>(c10::elementSize(type));
  for (int64_t d : row_shape) row_bytes *= d;
  std::vector<int> counts(size_), displacements(size_);
  int64_t total_rows = 0, total_bytes = 0;
  for (int r = 0; r < size_; ++r) {
    int64_t bytes = headers[kHeader * r + 2] * row_bytes;
    if (total_bytes + bytes > INT_MAX) {
      Unwatch(token);
      throw Error("MPI gather: " + std::to_string(total_bytes + bytes) +
                  " bytes exceed MPI's int count; gather in parts");
    }
    counts[r] = static_cast<int>(bytes);
    displacements[r] = static_cast<int>(total_bytes);
    total_bytes += bytes;
    total_rows += headers[kHeader * r + 2];
  }
  torch::Tensor send = HostContiguous(tensor, type);
  bool receives = everyone || rank_ == root;
  std::vector<int64_t> full_shape{receives ? total_rows : 0};
  full_shape.insert(full_shape.end(), row_shape.begin(), row_shape.end());
  torch::Tensor all = torch::empty(full_shape, torch::TensorOptions().dtype(type));
  if (everyone) {
    MPI_Allgatherv(send.data_ptr(), counts[rank_], MPI_BYTE, all.data_ptr(), counts.data(),
                   displacements.data(), MPI_BYTE, comm_);
  } else {
    MPI_Gatherv(send.data_ptr(), counts[rank_], MPI_BYTE, all.data_ptr(), counts.data(),
                displacements.data(), MPI_BYTE, root, comm_);
  }
  Unwatch(token);

  std::vector<torch::Tensor> parts;
  if (!receives) return parts;
  int64_t row = 0;
  for (int r = 0; r < size_; ++r) {
    int64_t rows = headers[kHeader * r + 2];
    parts.push_back(all.narrow(0, row, rows));
    row += rows;
  }
  return parts;
}

}  // namespace angiotrain
