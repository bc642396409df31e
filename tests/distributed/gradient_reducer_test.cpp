// GradientReducer and the module-state collectives, over 2 real MPI ranks: data-parallel
// training equals one process on the whole batch; buckets launch during backward; unused
// parameters follow the documented rule.
#include "distributed/gradient_reducer.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "distributed/mpi_communicator.h"
#include "tests/distributed/mpirun_test_support.h"

namespace angiotrain {
namespace {

using testing::WorldRank;

torch::nn::Sequential MakeNet() {
  return torch::nn::Sequential(torch::nn::Linear(6, 16), torch::nn::Tanh(), torch::nn::Linear(16, 16),
                               torch::nn::Tanh(), torch::nn::Linear(16, 16), torch::nn::Tanh(),
                               torch::nn::Linear(16, 2));
}

void CopyParameters(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto source = from.parameters();
  auto target = to.parameters();
  for (size_t i = 0; i < source.size(); ++i) target[i].copy_(source[i]);
}

// Largest |a - b| over all parameters, relative to the largest |b|.
double RelativeDifference(torch::nn::Module& a, torch::nn::Module& b) {
  double worst = 0;
  auto pa = a.parameters();
  auto pb = b.parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    double scale = pb[i].abs().max().item<double>();
    worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>() / scale);
  }
  return worst;
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const std::string& name, torch::nn::Module& model) {
  if (name == "sgd") return std::make_unique<torch::optim::SGD>(model.parameters(), torch::optim::SGDOptions(0.1));
  return std::make_unique<torch::optim::Adam>(model.parameters(), torch::optim::AdamOptions(1e-2));
}

struct EquivalenceCase {
  std::string optimizer;
  GradientReducerOptions buckets;
};

// Readable in ctest's listing instead of a byte dump.
void PrintTo(const EquivalenceCase& c, std::ostream* os) {
  *os << c.optimizer << ", buckets of " << c.buckets.bucket_bytes << " B (first " << c.buckets.first_bucket_bytes
      << " B)";
}

class ReducerEquivalence : public ::testing::TestWithParam<EquivalenceCase> {};

TEST_P(ReducerEquivalence, TwoRanksWithBatchBMatchOneRankWithBatch2BAfterKSteps) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  const EquivalenceCase& c = GetParam();
  const int64_t b = 4;
  const int steps = 5;
  int rank = WorldRank();
  MpiCommunicator world(MPI_COMM_WORLD);
  MpiCommunicator alone(MPI_COMM_SELF);

  // Different initial weights per rank, made equal by the broadcast from rank 0.
  torch::manual_seed(100 + rank);
  auto model = MakeNet();
  BroadcastModuleState(*model, world);
  auto reference = MakeNet();   // one process, whole batch, through a 1-rank reducer
  auto unreduced = MakeNet();   // negative control: this rank's half batch, no averaging
  CopyParameters(*model, *reference);
  CopyParameters(*model, *unreduced);

  torch::manual_seed(7);  // the same global batch on both ranks
  torch::Tensor x = torch::randn({2 * b, 6});
  torch::Tensor y = torch::randn({2 * b, 2});
  torch::Tensor x_local = x.narrow(0, rank * b, b);
  torch::Tensor y_local = y.narrow(0, rank * b, b);

  GradientReducer reducer(model->parameters(), world, c.buckets);
  GradientReducer reference_reducer(reference->parameters(), alone, c.buckets);
  auto optimizer = MakeOptimizer(c.optimizer, *model);
  auto reference_optimizer = MakeOptimizer(c.optimizer, *reference);
  auto unreduced_optimizer = MakeOptimizer(c.optimizer, *unreduced);

  for (int step = 0; step < steps; ++step) {
    optimizer->zero_grad();
    torch::mse_loss(model->forward(x_local), y_local).backward();
    reducer.Finish();
    optimizer->step();

    reference_optimizer->zero_grad();
    torch::mse_loss(reference->forward(x), y).backward();
    reference_reducer.Finish();
    reference_optimizer->step();

    unreduced_optimizer->zero_grad();
    torch::mse_loss(unreduced->forward(x_local), y_local).backward();
    unreduced_optimizer->step();
  }
  EXPECT_LE(RelativeDifference(*model, *reference), 1e-5);
  EXPECT_GT(RelativeDifference(*unreduced, *reference), 1e-3) << "the check would not notice a missing all-reduce";
}

INSTANTIATE_TEST_SUITE_P(
    Optimizers, ReducerEquivalence,
    ::testing::Values(EquivalenceCase{"sgd", {}}, EquivalenceCase{"adam", {}},
                      EquivalenceCase{"adam", {/*bucket_bytes=*/64, /*first_bucket_bytes=*/64}},
                      EquivalenceCase{"sgd", {/*bucket_bytes=*/600, /*first_bucket_bytes=*/100}}),
    [](const ::testing::TestParamInfo<EquivalenceCase>& info) {
      return info.param.optimizer + "_bucket" + std::to_string(info.param.buckets.bucket_bytes);
    });

TEST(GradientReducer, SmallBucketsFillInReverseParameterOrderAndLaunchDuringBackward) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator world(MPI_COMM_WORLD);
  torch::manual_seed(3);
  auto model = MakeNet();
  auto plain = MakeNet();
  CopyParameters(*model, *plain);
  const size_t n = model->parameters().size();
  GradientReducer reducer(model->parameters(), world, {/*bucket_bytes=*/256, /*first_bucket_bytes=*/256});

  std::vector<size_t> order;
  for (const auto& bucket : reducer.buckets()) order.insert(order.end(), bucket.begin(), bucket.end());
  std::vector<size_t> reversed;
  for (size_t i = n; i-- > 0;) reversed.push_back(i);
  EXPECT_EQ(order, reversed);
  ASSERT_GE(reducer.buckets().size(), 3u);

  torch::Tensor x = torch::randn({5, 6}) + WorldRank();
  torch::mse_loss(model->forward(x), torch::zeros({5, 2})).backward();
  reducer.Finish();
  const auto& stats = reducer.last_step();
  EXPECT_EQ(stats.gradients, static_cast<int>(n));
  EXPECT_LT(stats.gradients_at_launch[0], static_cast<int>(n)) << "bucket 0 waited for the whole backward";
  for (size_t b = 0; b < stats.launched_in_finish.size(); ++b) {
    EXPECT_FALSE(stats.launched_in_finish[b]) << "bucket " << b;
    if (b > 0) {
      EXPECT_GE(stats.gradients_at_launch[b], stats.gradients_at_launch[b - 1]);
    }
  }

  // The result is the average of the ranks' local gradients.
  torch::mse_loss(plain->forward(x), torch::zeros({5, 2})).backward();
  auto mine = model->parameters();
  auto local = plain->parameters();
  for (size_t i = 0; i < n; ++i) {
    torch::Tensor expected = local[i].grad().clone();
    world.AllReduce(expected, ReduceOp::kAverage);
    EXPECT_TRUE(torch::allclose(mine[i].grad(), expected, 1e-6, 1e-7)) << "parameter " << i;
  }
}

TEST(GradientReducer, UnusedParametersGetTheAverageOrStayUndefined) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator world(MPI_COMM_WORLD);
  int rank = WorldRank();
  for (GradientReducerOptions buckets : {GradientReducerOptions{}, GradientReducerOptions{4, 4}}) {
    SCOPED_TRACE(buckets.bucket_bytes);
    torch::Tensor shared = torch::ones({3}, torch::requires_grad());
    torch::Tensor rank0_only = torch::ones({3}, torch::requires_grad());
    torch::Tensor never = torch::ones({3}, torch::requires_grad());
    GradientReducer reducer({shared, rank0_only, never}, world, buckets);

    torch::Tensor x = torch::full({3}, rank == 0 ? 2.0f : 4.0f);
    torch::Tensor loss = (x * shared).sum();
    if (rank == 0) loss = loss + (x * rank0_only).sum();
    loss.backward();
    reducer.Finish();

    EXPECT_TRUE(torch::equal(shared.grad(), torch::full({3}, 3.0f))) << shared.grad();      // (2 + 4) / 2
    ASSERT_TRUE(rank0_only.grad().defined());
    EXPECT_TRUE(torch::equal(rank0_only.grad(), torch::full({3}, 1.0f))) << rank0_only.grad();  // (2 + 0) / 2
    EXPECT_FALSE(never.grad().defined());
    // Bucket 0 holds `never` (the last parameter): it can only be completed by Finish().
    EXPECT_TRUE(reducer.last_step().launched_in_finish[0]);
  }
}

TEST(GradientReducer, DifferentParameterListsOnTheRanksFailOnEveryRank) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator world(MPI_COMM_WORLD);
  std::vector<torch::Tensor> params = {torch::ones({2}, torch::requires_grad())};
  if (WorldRank() == 1) params.push_back(torch::ones({5}, torch::requires_grad()));
  EXPECT_THROW(GradientReducer(params, world), Error);
  world.Barrier();  // both ranks threw and are still in step
}

TEST(GradientReducer, SecondBackwardBeforeFinishIsAnError) {
  MpiCommunicator alone(MPI_COMM_SELF);
  torch::Tensor w = torch::ones({2}, torch::requires_grad());
  GradientReducer reducer({w}, alone);
  (w * 2).sum().backward();
  try {
    (w * 3).sum().backward();
    FAIL() << "expected an error from the second backward";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("second gradient before Finish()"), std::string::npos) << e.what();
  }
}

TEST(GradientReducer, OneRankLeavesTheLocalGradientUnchanged) {
  MpiCommunicator alone(MPI_COMM_SELF);
  torch::Tensor w = torch::tensor({1.0f, 2.0f}, torch::requires_grad());
  GradientReducer reducer({w}, alone);
  (w * w).sum().backward();
  reducer.Finish();
  EXPECT_TRUE(torch::equal(w.grad(), torch::tensor({2.0f, 4.0f})));
}

TEST(BroadcastModuleState, EveryRankEndsWithRankZerosParametersAndBuffers) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator world(MPI_COMM_WORLD);
  int rank = WorldRank();
  torch::manual_seed(rank);
  torch::nn::Sequential model(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
  model->train();
  model->forward(torch::randn({8, 4}) * (rank + 1));  // rank-specific running statistics
  auto flatten = [&] {
    std::vector<torch::Tensor> all;
    for (const auto& p : model->parameters()) all.push_back(p.detach().reshape(-1));
    for (const auto& b : model->buffers()) all.push_back(b.to(torch::kDouble).reshape(-1));
    return torch::cat(all);
  };
  torch::Tensor before = flatten();
  std::vector<torch::Tensor> before_all = world.AllGather(before.unsqueeze(0));
  ASSERT_FALSE(torch::equal(before_all[0], before_all[1]));

  BroadcastModuleState(*model, world);
  std::vector<torch::Tensor> after_all = world.AllGather(flatten().unsqueeze(0));
  EXPECT_TRUE(torch::equal(after_all[0], before_all[0]));
  EXPECT_TRUE(torch::equal(after_all[1], before_all[0]));
}

TEST(AverageBatchNormStatistics, RunningMeanBecomesTheWholeBatchRunningMeanOnEveryRank) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator world(MPI_COMM_WORLD);
  int rank = WorldRank();
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({8, 3}) * torch::tensor({1.0f, 2.0f, 3.0f}) + 1.0f;
  torch::nn::BatchNorm1d whole(3), mine(3);
  whole->train();
  mine->train();
  whole->forward(x);                      // one process, the whole batch
  mine->forward(x.narrow(0, rank * 4, 4));  // this rank's half
  torch::Tensor weight_before = mine->weight.detach().clone();

  AverageBatchNormStatistics(*mine, world);
  EXPECT_TRUE(torch::allclose(mine->running_mean, whole->running_mean, 1e-6, 1e-7))
      << mine->running_mean << whole->running_mean;
  std::vector<torch::Tensor> vars = world.AllGather(mine->running_var.unsqueeze(0));
  EXPECT_TRUE(torch::equal(vars[0], vars[1])) << "running_var differs between ranks";
  EXPECT_EQ(mine->num_batches_tracked.item<int64_t>(), 1);
  EXPECT_TRUE(torch::equal(mine->weight, weight_before)) << "parameters must not change";
}

}  // namespace
}  // namespace angiotrain
