// AllReduceSumWithGradient over 2 real MPI ranks: forward sums over the ranks, backward sums
// every rank's gradient of the sum; with it, synchronised BatchNorm (models/batch_norm.h) on 2
// ranks with batch b gives the gradients of one process with batch 2b.
#include "distributed/differentiable_all_reduce.h"

#include <gtest/gtest.h>

#include "distributed/gradient_reducer.h"
#include "distributed/mpi_communicator.h"
#include "models/batch_norm.h"
#include "tests/distributed/mpirun_test_support.h"

namespace angiotrain {
namespace {

TEST(AllReduceSumWithGradient, SumsInForwardAndSumsTheRanksGradientsInBackward) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator comm(MPI_COMM_WORLD);
  const int rank = comm.rank();
  // Rank r holds x_r = (r+1) * [1, 2, 3] and its loss is L_r = sum(w_r * y) with y = x_0 + x_1
  // and w_r = (r+1) * [1, 10, 100]. The gradient of L_0 + L_1 with respect to x_r is w_0 + w_1
  // on both ranks; without the backward all-reduce it would be w_r alone.
  const torch::Tensor x = (torch::tensor({1.0, 2.0, 3.0}, torch::kDouble) * (rank + 1)).requires_grad_(true);
  const torch::Tensor w = torch::tensor({1.0, 10.0, 100.0}, torch::kDouble) * (rank + 1);
  const torch::Tensor y = AllReduceSumWithGradient(x, comm);
  EXPECT_TRUE(torch::equal(y.detach(), torch::tensor({3.0, 6.0, 9.0}, torch::kDouble))) << y;
  (w * y).sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({3.0, 30.0, 300.0}, torch::kDouble))) << x.grad();
}

class RankSum : public ReplicaSum {
 public:
  explicit RankSum(Communicator& comm) : comm_(comm) {}
  torch::Tensor Sum(const torch::Tensor& local) override { return AllReduceSumWithGradient(local, comm_); }

 private:
  Communicator& comm_;
};

torch::nn::Sequential ConvNet() {
  auto bn = [](int c) { return SyncableBatchNorm2d(torch::nn::BatchNormOptions(c).momentum(0.1)); };
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 4, 3).padding(1)), bn(4),
                               torch::nn::SiLU(), torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 3, 3).padding(1)),
                               bn(3), torch::nn::SiLU(), torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(),
                               torch::nn::Linear(3, 2));
}

TEST(SyncableBatchNorm2d, TwoRanksWithBatchBGiveTheGradientsOfOneProcessWithBatch2B) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator world(MPI_COMM_WORLD), statistics(MPI_COMM_WORLD), alone(MPI_COMM_SELF);
  const int rank = world.rank();
  torch::manual_seed(11);
  auto model = ConvNet(), reference = ConvNet(), unshared = ConvNet();
  torch::manual_seed(11);
  reference = ConvNet();
  torch::manual_seed(11);
  unshared = ConvNet();
  ASSERT_EQ(ShareBatchStatistics(*model, std::make_shared<RankSum>(statistics)), 2);
  const int64_t b = 3;
  const torch::Tensor x = torch::randn({2 * b, 2, 5, 5}) * 3 + 1, y = torch::randn({2 * b, 2});
  const torch::Tensor x_local = x.narrow(0, rank * b, b), y_local = y.narrow(0, rank * b, b);

  GradientReducer reducer(model->parameters(), world), reference_reducer(reference->parameters(), alone),
      unshared_reducer(unshared->parameters(), world);
  torch::mse_loss(model->forward(x_local), y_local).backward();
  reducer.Finish();
  torch::mse_loss(reference->forward(x), y).backward();
  reference_reducer.Finish();
  torch::mse_loss(unshared->forward(x_local), y_local).backward();  // per-rank statistics
  unshared_reducer.Finish();

  // The largest gradient difference against the largest gradient: the convolutions' biases have
  // an exact gradient of 0 (BatchNorm removes any constant), so each is only rounding.
  auto worst = [](torch::nn::Module& a, torch::nn::Module& b) {
    double differ = 0, scale = 0;
    auto pa = a.parameters(), pb = b.parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      differ = std::max(differ, (pa[i].grad() - pb[i].grad()).abs().max().item<double>());
      scale = std::max(scale, pb[i].grad().abs().max().item<double>());
    }
    return differ / scale;
  };
  EXPECT_LE(worst(*model, *reference), 1e-5);
  EXPECT_GT(worst(*unshared, *reference), 1e-3) << "the check would not notice per-rank statistics";
  auto bn = [](torch::nn::Sequential& s, int i) { return s[i]->as<SyncableBatchNorm2d>(); };
  for (int i : {1, 4}) {
    EXPECT_TRUE(torch::allclose(bn(model, i)->running_mean, bn(reference, i)->running_mean, 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(bn(model, i)->running_var, bn(reference, i)->running_var, 1e-5, 1e-6));
  }
}

}  // namespace
}  // namespace angiotrain
