// NcclCommunicator: NCCL collectives on a dedicated CUDA stream (see nccl_communicator.h).
// Uses the CUDA runtime and NCCL C APIs only, so it builds against a CPU-only LibTorch.
#include "distributed/nccl_communicator.h"

#include <exception>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "core/error.h"
#include "distributed/mpi_communicator.h"

namespace angiotrain {
namespace {

// LibTorch's default CUDA stream: the legacy default stream, handle 0. The trainer queues the
// model on it (no stream guards), so collectives order themselves against it.
const cudaStream_t kComputeStream = nullptr;

void CheckCuda(cudaError_t status, const char* call) {
  if (status != cudaSuccess) {
    throw Error(std::string("CUDA ") + call + " failed: " + cudaGetErrorString(status));
  }
}

void CheckNccl(ncclResult_t status, const char* call, ncclComm_t comm = nullptr) {
  if (status != ncclSuccess) {
    std::string detail = comm ? ncclGetLastError(comm) : "";
    throw Error(std::string("NCCL ") + call + " failed: " + ncclGetErrorString(status) +
                (detail.empty() ? "" : " (" + detail + ")"));
  }
}

ncclDataType_t NcclType(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat: return ncclFloat32;
    case torch::kDouble: return ncclFloat64;
    case torch::kHalf: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kChar: return ncclInt8;
    case torch::kByte: return ncclUint8;
    case torch::kInt: return ncclInt32;
    case torch::kLong: return ncclInt64;
    default:
      throw Error(std::string("NCCL all-reduce: unsupported dtype ") + c10::toString(type) +
                  " (supported: float32/64, float16, bfloat16, int8, uint8, int32, int64)");
  }
}

// Owns a CUDA event; shared between a Work and the watchdog that polls it.
struct CudaEvent {
  cudaEvent_t event = nullptr;
  CudaEvent() { CheckCuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreateWithFlags"); }
  ~CudaEvent() {
    if (event) cudaEventDestroy(event);
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
};

class NcclWork final : public Work {
 public:
  NcclWork(torch::Tensor target, torch::Tensor buffer, int device, std::shared_ptr<CudaEvent> done)
      : target_(std::move(target)), buffer_(std::move(buffer)), device_(device), done_(std::move(done)) {}
  ~NcclWork() override {
    // Order the compute stream after the transfer before the buffer can be freed and reused.
    if (!waited_ && cudaSetDevice(device_) == cudaSuccess) cudaStreamWaitEvent(kComputeStream, done_->event, 0);
  }

  void Wait() override {
    if (waited_) return;
    CheckCuda(cudaSetDevice(device_), "cudaSetDevice");
    CheckCuda(cudaStreamWaitEvent(kComputeStream, done_->event, 0), "cudaStreamWaitEvent");
    waited_ = true;
    if (!buffer_.is_same(target_)) target_.copy_(buffer_);  // queued on the compute stream
  }

  bool Test() override {
    cudaError_t status = cudaEventQuery(done_->event);
    if (status == cudaErrorNotReady) return false;
    CheckCuda(status, "cudaEventQuery");
    return true;
  }

 private:
  torch::Tensor target_, buffer_;
  int device_;
  std::shared_ptr<CudaEvent> done_;
  bool waited_ = false;
};

}  // namespace

struct NcclCommunicator::State {
  int rank = 0;
  int size = 1;
  int device = 0;
  ncclComm_t nccl = nullptr;
  cudaStream_t stream = nullptr;
  std::shared_ptr<CollectiveWatchdog> watchdog;
  std::unique_ptr<MpiCommunicator> host;  // gather, barrier, and the unique id

  // Queues a collective on the communication stream after the compute stream's work so far;
  // returns the event that completes with it.
  template <typename Launch>
  std::shared_ptr<CudaEvent> Enqueue(const std::string& what, Launch launch) {
    CheckCuda(cudaSetDevice(device), "cudaSetDevice");
    {
      CudaEvent ready;  // may be destroyed while the stream still waits on it
      CheckCuda(cudaEventRecord(ready.event, kComputeStream), "cudaEventRecord");
      CheckCuda(cudaStreamWaitEvent(stream, ready.event, 0), "cudaStreamWaitEvent");
    }
    launch();
    auto done = std::make_shared<CudaEvent>();
    CheckCuda(cudaEventRecord(done->event, stream), "cudaEventRecord");
    if (watchdog) {
      watchdog->Start(what + " (nccl)", [done] { return cudaEventQuery(done->event) != cudaErrorNotReady; });
    }
    return done;
  }

  // The tensor NCCL works on: `tensor` itself when it is a contiguous tensor on this rank's
  // device; else a contiguous copy on the device (a CPU tensor, such as a loss value, is staged
  // through the device and copied back when the work is waited for).
  torch::Tensor DeviceBuffer(const torch::Tensor& tensor, const char* what) const {
    if (tensor.defined() && tensor.device().is_cpu())
      return tensor.to(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(device))).contiguous();
    CheckDevice(tensor, what);
    return tensor.is_contiguous() ? tensor : tensor.contiguous();
  }

  void CheckDevice(const torch::Tensor& tensor, const char* what) const {
    if (!tensor.defined() || !tensor.is_cuda() || tensor.device().index() != device) {
      throw Error(std::string("NCCL ") + what + ": expected a tensor on cuda:" + std::to_string(device) + " or the CPU" +
                  ", got " + (tensor.defined() ? tensor.device().str() : "an undefined tensor"));
    }
  }
};

NcclCommunicator::NcclCommunicator(MPI_Comm comm, int device, std::shared_ptr<CollectiveWatchdog> watchdog)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.device = device;
  s.watchdog = watchdog;
  s.host = std::make_unique<MpiCommunicator>(comm, watchdog);
  s.rank = s.host->rank();
  s.size = s.host->size();

  CheckCuda(cudaSetDevice(device), "cudaSetDevice");
  ncclUniqueId id;
  if (s.rank == 0) CheckNccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  auto id_bytes = torch::from_blob(&id, {static_cast<int64_t>(sizeof id)}, torch::kByte);
  s.host->Broadcast(id_bytes, 0);
  CheckNccl(ncclCommInitRank(&s.nccl, s.size, id, s.rank), "ncclCommInitRank");
  CheckCuda(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
}

NcclCommunicator::~NcclCommunicator() {
  State& s = *state_;
  cudaSetDevice(s.device);
  // A rank unwinding from its own error must not wait for the others: abort its operations.
  const bool failing = std::uncaught_exceptions() > 0;
  if (s.stream && !failing) cudaStreamSynchronize(s.stream);
  if (s.nccl) failing ? ncclCommAbort(s.nccl) : ncclCommDestroy(s.nccl);
  if (s.stream) cudaStreamDestroy(s.stream);
}

int NcclCommunicator::rank() const { return state_->rank; }
int NcclCommunicator::size() const { return state_->size; }

std::unique_ptr<Work> NcclCommunicator::AllReduceAsync(torch::Tensor tensor, ReduceOp op) {
  State& s = *state_;
  torch::Tensor buffer = s.DeviceBuffer(tensor, "all-reduce");
  ncclDataType_t type = NcclType(tensor.scalar_type());
  if (op == ReduceOp::kAverage && !torch::isFloatingType(tensor.scalar_type())) {
    throw Error(std::string("NCCL all-reduce: average of an integer tensor (") +
                c10::toString(tensor.scalar_type()) + ") is not defined; use kSum");
  }
  ncclRedOp_t nccl_op = op == ReduceOp::kAverage ? ncclAvg : ncclSum;
  std::string what = "all-reduce of " + std::to_string(tensor.numel()) + " " + c10::toString(tensor.scalar_type());
  auto done = s.Enqueue(what, [&] {
    CheckNccl(ncclAllReduce(buffer.data_ptr(), buffer.data_ptr(), static_cast<size_t>(buffer.numel()), type,
                            nccl_op, s.nccl, s.stream),
              "ncclAllReduce", s.nccl);
  });
  return std::make_unique<NcclWork>(tensor, buffer, s.device, done);
}

void NcclCommunicator::Broadcast(torch::Tensor tensor, int root) {
  State& s = *state_;
  if (root < 0 || root >= s.size) {
    throw Error("NCCL broadcast: root " + std::to_string(root) + " is not a rank of " + std::to_string(s.size));
  }
  torch::Tensor buffer = s.DeviceBuffer(tensor, "broadcast");
  size_t bytes = static_cast<size_t>(buffer.numel()) * buffer.element_size();
  auto done = s.Enqueue("broadcast of " + std::to_string(bytes) + " bytes", [&] {
    CheckNccl(ncclBroadcast(buffer.data_ptr(), buffer.data_ptr(), bytes, ncclUint8, root, s.nccl, s.stream),
              "ncclBroadcast", s.nccl);
  });
  NcclWork(tensor, buffer, s.device, done).Wait();
}

void NcclCommunicator::Barrier() { state_->host->Barrier(); }

std::vector<torch::Tensor> NcclCommunicator::Gather(const torch::Tensor& tensor, int root) {
  return state_->host->Gather(tensor.to(torch::kCPU), root);
}

std::vector<torch::Tensor> NcclCommunicator::AllGather(const torch::Tensor& tensor) {
  return state_->host->AllGather(tensor.to(torch::kCPU));
}

}  // namespace angiotrain
