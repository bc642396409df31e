// SyncableBatchNorm2d: without replicas it is torch's BatchNorm2d; with a sum over replicas
// it normalises with the statistics of the rows of every replica, and its gradient is that of
// one BatchNorm over the concatenated batch. Replicas are simulated in one process here (the
// 2-rank form through MPI is TrainCommand.TwoRanksMatchOneRankWithTwiceTheBatch/sync).
#include "models/batch_norm.h"

#include <gtest/gtest.h>

#include <vector>

namespace angiotrain {
namespace {

// A replica that is alone: the sum over replicas is its own contribution.
class Alone : public ReplicaSum {
 public:
  torch::Tensor Sum(const torch::Tensor& local) override { return local * 1; }
};

torch::nn::BatchNorm2dOptions Options() { return torch::nn::BatchNorm2dOptions(3).eps(1e-3).momentum(0.01); }

void CopyState(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto a = from.named_parameters(), b = to.named_parameters();
  for (const auto& p : a) b[p.key()].copy_(p.value());
  auto c = from.named_buffers(), d = to.named_buffers();
  for (const auto& p : c) d[p.key()].copy_(p.value());
}

TEST(SyncableBatchNorm2d, WithoutReplicasIsTorchsBatchNorm2dInTrainingAndEval) {
  torch::manual_seed(1);
  torch::nn::BatchNorm2d reference(Options());
  SyncableBatchNorm2d mine(Options());
  {
    torch::NoGradGuard no_grad;
    reference->weight.uniform_(0.5, 1.5);
    reference->bias.uniform_(-0.5, 0.5);
  }
  CopyState(*reference, *mine);
  const torch::Tensor x = torch::randn({4, 3, 5, 5}) * 2 + 1;
  EXPECT_TRUE(torch::equal(mine->forward(x), reference->forward(x)));
  EXPECT_TRUE(torch::equal(mine->running_var, reference->running_var));
  mine->eval();
  reference->eval();
  EXPECT_TRUE(torch::equal(mine->forward(x), reference->forward(x)));
  // The same names, so checkpoints, weight import and export do not see a difference.
  std::vector<std::string> a, b;
  for (const auto& p : mine->named_buffers()) a.push_back(p.key());
  for (const auto& p : reference->named_buffers()) b.push_back(p.key());
  EXPECT_EQ(a, b);
  std::vector<std::string> p, q;
  for (const auto& t : mine->named_parameters()) p.push_back(t.key());
  for (const auto& t : reference->named_parameters()) q.push_back(t.key());
  EXPECT_EQ(p, q);
}

// Largest |a - b|.
double Worst(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Alone, with a sum over replicas (the synchronised path), against torch's BatchNorm2d computed
// in float64 as the truth: the output, the input's and the parameters' gradients and the
// running statistics are as close to it as torch's own float32 layer is (within twice its error,
// or 1e-5). The activations have a large mean against their spread in one channel, where
// E[x^2] - mean^2 in float32 would lose every digit; the centred form does not.
TEST(SyncableBatchNorm2d, AloneWithASumItIsAsAccurateAsTorchsBatchNorm2d) {
  torch::manual_seed(2);
  torch::nn::BatchNorm2d reference(Options()), truth(Options());
  SyncableBatchNorm2d mine(Options());
  {
    torch::NoGradGuard no_grad;
    reference->weight.uniform_(0.5, 1.5);
    reference->bias.uniform_(-0.5, 0.5);
  }
  CopyState(*reference, *mine);
  CopyState(*reference, *truth);
  truth->to(torch::kDouble);
  ASSERT_EQ(ShareBatchStatistics(*mine, std::make_shared<Alone>()), 1);
  const torch::Tensor x = torch::randn({6, 3, 7, 7}) * torch::tensor({0.5f, 2.0f, 0.05f}).view({1, 3, 1, 1}) + 30;
  const torch::Tensor upstream = torch::randn({6, 3, 7, 7});
  auto xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
  auto xt = x.to(torch::kDouble).requires_grad_(true);
  const torch::Tensor ya = mine->forward(xa), yb = reference->forward(xb), yt = truth->forward(xt);
  (ya * upstream).sum().backward();
  (yb * upstream).sum().backward();
  (yt * upstream.to(torch::kDouble)).sum().backward();
  auto expect_as_close = [](const char* what, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& t) {
    const double mine_error = Worst(a, t), torch_error = Worst(b, t);
    EXPECT_LE(mine_error, std::max(2 * torch_error, 1e-5)) << what << ": torch's float32 error " << torch_error;
  };
  expect_as_close("output", ya, yb, yt);
  expect_as_close("input gradient", xa.grad(), xb.grad(), xt.grad());
  expect_as_close("weight gradient", mine->weight.grad(), reference->weight.grad(), truth->weight.grad());
  expect_as_close("bias gradient", mine->bias.grad(), reference->bias.grad(), truth->bias.grad());
  expect_as_close("running mean", mine->running_mean, reference->running_mean, truth->running_mean);
  expect_as_close("running variance", mine->running_var, reference->running_var, truth->running_var);
  EXPECT_EQ(mine->num_batches_tracked.item<int64_t>(), 1);
  ASSERT_EQ(ShareBatchStatistics(*mine, nullptr), 1);
  EXPECT_TRUE(torch::equal(mine->forward(x), reference->forward(x)));  // per-replica again
}

}  // namespace
}  // namespace angiotrain
