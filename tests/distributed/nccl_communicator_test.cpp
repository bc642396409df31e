// NcclCommunicator on one GPU (one rank): the NCCL path end to end — unique id over MPI, device
// tensors, stream/event ordering, the reducer on CUDA. Skipped (reported as skipped) where the
// backend is not compiled or no CUDA device is visible, as on the CPU CI machines.
#include <gtest/gtest.h>

#include "core/error.h"
#include "distributed/communicator_factory.h"
#include "distributed/gradient_reducer.h"

namespace angiotrain {
namespace {

#define SKIP_WITHOUT_NCCL_AND_GPU()                                                              \
  if (!NcclBackendCompiled()) GTEST_SKIP() << "NCCL backend not compiled (no CUDA toolkit/nccl.h)"; \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible to LibTorch"

std::unique_ptr<Communicator> NcclOnFirstGpu() {
  ProcessContext context = ProcessContext::Create(MPI_COMM_SELF, DeviceRequest::kCuda);
  return MakeCommunicator(context);  // auto picks NCCL for a CUDA device
}

TEST(NcclCommunicator, IsChosenForACudaDeviceAndReducesDeviceTensors) {
  SKIP_WITHOUT_NCCL_AND_GPU();
  auto comm = NcclOnFirstGpu();
  EXPECT_EQ(comm->backend(), "nccl");
  torch::Tensor t = torch::arange(1, 7, torch::TensorOptions().dtype(torch::kFloat).device(torch::kCUDA, 0));
  comm->AllReduce(t, ReduceOp::kSum);
  EXPECT_TRUE(torch::equal(t.cpu(), torch::arange(1, 7, torch::kFloat)));  // one rank: the sum is itself
  torch::Tensor view = torch::ones({4, 3}, t.options()).t();
  auto work = comm->AllReduceAsync(view, ReduceOp::kAverage);
  work->Wait();
  EXPECT_TRUE(torch::equal(view.cpu(), torch::ones({3, 4})));
}

TEST(NcclCommunicator, ComputeStreamSeesTheResultOfAnAllReduceQueuedBehindIt) {
  SKIP_WITHOUT_NCCL_AND_GPU();
  auto comm = NcclOnFirstGpu();
  auto options = torch::TensorOptions().dtype(torch::kFloat).device(torch::kCUDA, 0);
  torch::Tensor a = torch::randn({2048, 2048}, options);
  // The tensor is produced by a long kernel on the compute stream; the all-reduce must wait for it,
  // and what follows Wait must see its result.
  torch::Tensor t = torch::mm(a, a).sum(1);
  torch::Tensor expected = t.cpu();
  comm->AllReduceAsync(t, ReduceOp::kSum)->Wait();
  t.mul_(2);
  EXPECT_TRUE(torch::allclose(t.cpu(), expected * 2));
}

TEST(NcclCommunicator, BroadcastAndGatherWorkOnDeviceTensors) {
  SKIP_WITHOUT_NCCL_AND_GPU();
  auto comm = NcclOnFirstGpu();
  torch::Tensor t = torch::tensor({3, 1, 4}, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA, 0));
  comm->Broadcast(t, 0);
  EXPECT_TRUE(torch::equal(t.cpu(), torch::tensor({3, 1, 4}, torch::kLong)));
  std::vector<torch::Tensor> parts = comm->Gather(t.view({3, 1}), 0);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_TRUE(parts[0].device().is_cpu());
  EXPECT_TRUE(torch::equal(parts[0], torch::tensor({3, 1, 4}, torch::kLong).view({3, 1})));
  comm->Barrier();
}

TEST(NcclCommunicator, StagesCpuTensorsThroughTheDeviceAndRejectsOtherDevices) {
  SKIP_WITHOUT_NCCL_AND_GPU();
  auto comm = NcclOnFirstGpu();
  // The trainer all-reduces its loss as a CPU double: NCCL takes it through the device.
  torch::Tensor loss = torch::tensor({0.25, 1.5}, torch::kDouble);
  comm->AllReduce(loss, ReduceOp::kSum);
  EXPECT_TRUE(loss.device().is_cpu());
  EXPECT_TRUE(torch::equal(loss, torch::tensor({0.25, 1.5}, torch::kDouble)));
  torch::Tensor ids = torch::tensor({7, 8}, torch::kLong);
  comm->Broadcast(ids, 0);
  EXPECT_TRUE(torch::equal(ids, torch::tensor({7, 8}, torch::kLong)));
  if (torch::cuda::device_count() > 1) {
    torch::Tensor other = torch::ones({2}, torch::TensorOptions().device(torch::kCUDA, 1));
    EXPECT_THROW(comm->AllReduce(other), Error);
  }
}

TEST(NcclCommunicator, ReducerOnCudaLeavesOneRanksGradientsUnchanged) {
  SKIP_WITHOUT_NCCL_AND_GPU();
  auto comm = NcclOnFirstGpu();
  torch::manual_seed(0);
  torch::nn::Sequential model(torch::nn::Linear(8, 32), torch::nn::ReLU(), torch::nn::Linear(32, 1));
  torch::nn::Sequential plain(torch::nn::Linear(8, 32), torch::nn::ReLU(), torch::nn::Linear(32, 1));
  model->to(torch::kCUDA);
  plain->to(torch::kCUDA);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < model->parameters().size(); ++i) plain->parameters()[i].copy_(model->parameters()[i]);
  }
  BroadcastModuleState(*model, *comm);
  GradientReducer reducer(model->parameters(), *comm, {/*bucket_bytes=*/256, /*first_bucket_bytes=*/256});
  torch::Tensor x = torch::randn({16, 8}, torch::kCUDA);
  model->forward(x).pow(2).mean().backward();
  reducer.Finish();
  plain->forward(x).pow(2).mean().backward();
  for (size_t i = 0; i < model->parameters().size(); ++i) {
    EXPECT_TRUE(torch::allclose(model->parameters()[i].grad().cpu(), plain->parameters()[i].grad().cpu()))
        << "parameter " << i;
  }
}

}  // namespace
}  // namespace angiotrain
