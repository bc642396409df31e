// Communicator, MPI backend: all-reduce, broadcast, barrier, gather over 2 real ranks, and the
// backend choice.
#include "distributed/communicator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/error.h"
#include "distributed/communicator_factory.h"
#include "distributed/mpi_communicator.h"
#include "tests/distributed/mpirun_test_support.h"

namespace angiotrain {
namespace {

using testing::WorldRank;

TEST(MpiCommunicator, AllReduceSumsEverySupportedDtype) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator comm(MPI_COMM_WORLD);
  int rank = comm.rank();
  for (auto type : {torch::kFloat, torch::kDouble, torch::kLong, torch::kInt, torch::kShort, torch::kChar,
                    torch::kByte, torch::kHalf, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(type));
    // rank 0: 1,2,3,4,5; rank 1: 10,20,30,40,50
    torch::Tensor t = (torch::arange(1, 6) * (rank == 0 ? 1 : 10)).to(type);
    comm.AllReduce(t, ReduceOp::kSum);
    EXPECT_EQ(t.scalar_type(), type);
    EXPECT_TRUE(torch::equal(t.to(torch::kLong), torch::arange(1, 6) * 11)) << t;
  }
}

TEST(MpiCommunicator, AverageDividesTheSumByTheWorldSize) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator comm(MPI_COMM_WORLD);
  torch::Tensor t = torch::full({3}, comm.rank() == 0 ? 1.0 : 4.0, torch::kDouble);
  comm.AllReduce(t, ReduceOp::kAverage);
  EXPECT_TRUE(torch::equal(t, torch::full({3}, 2.5, torch::kDouble))) << t;
}

TEST(MpiCommunicator, NonContiguousTensorIsReducedInPlace) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator comm(MPI_COMM_WORLD);
  torch::Tensor base = torch::arange(12, torch::kFloat).view({3, 4}) + comm.rank();
  torch::Tensor view = base.t();  // non-contiguous view of base
  ASSERT_FALSE(view.is_contiguous());
  comm.AllReduce(view, ReduceOp::kSum);
  EXPECT_TRUE(torch::equal(base, torch::arange(12, torch::kFloat).view({3, 4}) * 2 + 1)) << base;
}

TEST(MpiCommunicator, AsyncAllReduceCompletesWhileTheCallerWorks) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator comm(MPI_COMM_WORLD);
  torch::Tensor big = torch::full({1 << 20}, static_cast<float>(comm.rank() + 1));
  std::unique_ptr<Work> work = comm.AllReduceAsync(big, ReduceOp::kSum);
  int polls = 0;
  while (!work->Test()) {
    ++polls;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    ASSERT_LT(polls, 100000) << "all-reduce never completed";
  }
  work->Wait();  // a no-op once complete
  EXPECT_TRUE(torch::equal(big, torch::full({1 << 20}, 3.0f)));
}

TEST(MpiCommunicator, BroadcastCopiesTheRootsTensorToEveryRank) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator comm(MPI_COMM_WORLD);
  torch::Tensor t = comm.rank() == 1 ? torch::tensor({7, 8, 9}, torch::kByte) : torch::zeros({3}, torch::kByte);
  comm.Broadcast(t, /*root=*/1);
  EXPECT_TRUE(torch::equal(t, torch::tensor({7, 8, 9}, torch::kByte))) << t;
  EXPECT_THROW(comm.Broadcast(t, 2), Error);
}

TEST(MpiCommunicator, BarrierWaitsForTheSlowestRank) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator comm(MPI_COMM_WORLD);
  comm.Barrier();  // start together
  if (comm.rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto start = std::chrono::steady_clock::now();
  comm.Barrier();
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (comm.rank() == 1) {
    EXPECT_GT(waited, 0.3) << "rank 1 left the barrier before rank 0 entered it";
  }
}

TEST(MpiCommunicator, GatherReturnsEachRanksRowsOnTheRootOnly) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator comm(MPI_COMM_WORLD);
  int rank = comm.rank();
  // rank 0 sends 1 row, rank 1 sends 3 rows, each of 2 columns: predictions of unequal shards.
  torch::Tensor rows = torch::full({rank == 0 ? 1 : 3, 2}, static_cast<float>(rank + 1));
  std::vector<torch::Tensor> parts = comm.Gather(rows, /*root=*/0);
  if (rank == 0) {
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_TRUE(torch::equal(parts[0], torch::full({1, 2}, 1.0f)));
    EXPECT_TRUE(torch::equal(parts[1], torch::full({3, 2}, 2.0f)));
  } else {
    EXPECT_TRUE(parts.empty());
  }
}

TEST(MpiCommunicator, AllGatherGivesEveryRankAllRowsAndAcceptsAnEmptyShard) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator comm(MPI_COMM_WORLD);
  torch::Tensor rows = comm.rank() == 0 ? torch::empty({0}, torch::kLong) : torch::tensor({4, 5}, torch::kLong);
  std::vector<torch::Tensor> parts = comm.AllGather(rows);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].numel(), 0);
  EXPECT_TRUE(torch::equal(parts[1], torch::tensor({4, 5}, torch::kLong)));
}

TEST(MpiCommunicator, GatherRejectsDifferentColumnsOnEveryRankAlike) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  MpiCommunicator comm(MPI_COMM_WORLD);
  torch::Tensor rows = torch::zeros({2, comm.rank() == 0 ? 3 : 4});
  try {
    comm.Gather(rows, 0);
    FAIL() << "expected Error on rank " << comm.rank();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 sent [2, 4] Float but rank 0 sent [2, 3] Float"),
              std::string::npos)
        << e.what();
  }
  comm.Barrier();  // both ranks are still in step after the error
}

TEST(MpiCommunicator, RejectsAverageOfIntegersAndUnsupportedDtypes) {
  MpiCommunicator comm(MPI_COMM_SELF);
  torch::Tensor ints = torch::ones({2}, torch::kLong);
  EXPECT_THROW(comm.AllReduceAsync(ints, ReduceOp::kAverage), Error);
  torch::Tensor flags = torch::ones({2}, torch::kBool);
  EXPECT_THROW(comm.AllReduceAsync(flags, ReduceOp::kSum), Error);
}

TEST(MakeCommunicator, ChoosesMpiForACpuContextAndRejectsNcclThere) {
  ProcessContext context = ProcessContext::Create(MPI_COMM_SELF, DeviceRequest::kCpu);
  EXPECT_EQ(MakeCommunicator(context)->backend(), "mpi");
  EXPECT_EQ(MakeCommunicator(context, {Backend::kMpi})->backend(), "mpi");
  try {
    MakeCommunicator(context, {Backend::kNccl});
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nccl"), std::string::npos) << e.what();
  }
}

TEST(ParseBackend, AcceptsAutoMpiNcclAndRejectsOthers) {
  EXPECT_EQ(ParseBackend("auto"), Backend::kAuto);
  EXPECT_EQ(ParseBackend("mpi"), Backend::kMpi);
  EXPECT_EQ(ParseBackend("nccl"), Backend::kNccl);
  EXPECT_EQ(BackendName(Backend::kNccl), "nccl");
  EXPECT_THROW(ParseBackend("gloo"), Error);
}

}  // namespace
}  // namespace angiotrain
