// The collectives a data-parallel trainer needs — all-reduce, broadcast, barrier, gather — behind
// one interface with two backends: MPI for CPU tensors, NCCL for CUDA tensors
// (mpi_communicator.h, nccl_communicator.h; communicator_factory.h chooses one).
//
// Usage (trainer):
//   auto context = ProcessContext::Create();                    // after MPI_Init_thread
//   auto comm = MakeCommunicator(context, {ParseBackend(flag)});  // communicator_factory.h
//   BroadcastModuleState(*model, *comm);                        // gradient_reducer.h
//   GradientReducer reducer(model->parameters(), *comm);
//   ... loss.backward(); reducer.Finish(); optimizer.step();
//   auto parts = comm->Gather(local_predictions);              // validation, on rank 0
//
// Every collective must be called by every rank of the communicator, in the same order, with
// tensors of the same dtype and (except Gather/AllGather rows) the same shape. A rank that
// breaks this makes the others wait; the communicator's watchdog (collective_watchdog.h) then
// aborts the job after the timeout instead of hanging. A communicator is used by one thread at a
// time (the autograd thread during backward, the trainer's thread otherwise).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace angiotrain {

enum class ReduceOp {
  kSum,
  kAverage,  // sum / world size; floating-point dtypes only
};

// A collective in flight, returned by the asynchronous calls. It keeps the tensor alive until
// completion; the tensor must not be read or written before Wait(). Destroying a Work that was
// not waited on waits for it (the buffer must outlive the transfer).
class Work {
 public:
  virtual ~Work() = default;
  // Orders the result before anything the caller does next with the tensor. MPI: blocks until
  // complete. NCCL: makes the CUDA compute stream wait for the result and returns at once (the
  // host does not block; kernels queued afterwards see the result).
  virtual void Wait() = 0;
  // True once the collective has completed; never blocks. For MPI it also drives progress: Open
  // MPI advances non-blocking collectives only inside MPI calls, so whoever overlaps work with a
  // collective should call Test now and then (the gradient reducer does, at every gradient).
  virtual bool Test() = 0;
};

class Communicator {
 public:
  Communicator() = default;
  virtual ~Communicator() = default;
  // A communicator owns its MPI duplicate or NCCL communicator: never copied (every backend).
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual std::string backend() const = 0;  // "mpi" or "nccl"
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Starts reducing `tensor` in place over all ranks. Any shape and layout (a non-contiguous
  // tensor is reduced through a contiguous copy and written back on Wait). MPI: CPU tensors of
  // float32/64, float16/bfloat16 (reduced in float32), int8/16/32/64, uint8; tensors on other
  // devices are staged through host memory. NCCL: CUDA tensors on this rank's device; CPU tensors
  // (small host values such as a loss) are staged through the device.
  // Unsupported dtypes, or kAverage of an integer tensor, throw Error.
  virtual std::unique_ptr<Work> AllReduceAsync(torch::Tensor tensor, ReduceOp op) = 0;
  void AllReduce(torch::Tensor tensor, ReduceOp op = ReduceOp::kSum) { AllReduceAsync(tensor, op)->Wait(); }

  // Copies `tensor` of rank `root` into `tensor` of every rank (any dtype; same dtype and number
  // of elements on every rank). Completes like Work::Wait.
  virtual void Broadcast(torch::Tensor tensor, int root = 0) = 0;

  // Returns when every rank has entered the barrier.
  virtual void Barrier() = 0;

  // Gathers one tensor per rank whose first dimension (rows) may differ between ranks; dtype and
  // the other dimensions must agree (else every rank throws the same Error). Returns, on `root`
  // only, one CPU tensor per rank in rank order (rows of rank r = result[r]); an empty vector on
  // the other ranks. Meant for validation predictions, once an epoch: it is not a hot path and
  // both backends run it over MPI on host copies.
  virtual std::vector<torch::Tensor> Gather(const torch::Tensor& tensor, int root = 0) = 0;
  // As Gather, with the result on every rank.
  virtual std::vector<torch::Tensor> AllGather(const torch::Tensor& tensor) = 0;
};

}  // namespace angiotrain
