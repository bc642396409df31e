// ProcessContext: rank, world, node-local rank (launcher variables or MPI), device.
#include "distributed/process_context.h"

#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "tests/distributed/mpirun_test_support.h"

namespace angiotrain {
namespace {

auto Environment(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(LocalRankFromEnvironment, ReadsOpenMpiVariables) {
  auto local = LocalRankFromEnvironment(
      Environment({{"OMPI_COMM_WORLD_LOCAL_RANK", "3"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}));
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->rank, 3);
  EXPECT_EQ(local->size, 4);
}

TEST(LocalRankFromEnvironment, ReadsSlurmVariables) {
  auto local = LocalRankFromEnvironment(Environment({{"SLURM_LOCALID", "1"}, {"SLURM_NTASKS_PER_NODE", "2"}}));
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->rank, 1);
  EXPECT_EQ(local->size, 2);
}

TEST(LocalRankFromEnvironment, PrefersOpenMpiOverInheritedSlurmVariables) {
  // mpirun inside an sbatch script: the batch step's SLURM_LOCALID=0 is inherited by every rank.
  auto local = LocalRankFromEnvironment(Environment({{"SLURM_LOCALID", "0"},
                                                     {"SLURM_NTASKS_PER_NODE", "1"},
                                                     {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                                     {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->rank, 1);
  EXPECT_EQ(local->size, 2);
}

TEST(LocalRankFromEnvironment, IsAbsentWhenTheLauncherSetsNothing) {
  EXPECT_FALSE(LocalRankFromEnvironment(Environment({})).has_value());
  EXPECT_FALSE(LocalRankFromEnvironment(Environment({{"SLURM_LOCALID", "0"}})).has_value());
}

TEST(LocalRankFromEnvironment, RejectsMalformedValuesNamingTheVariable) {
  try {
    LocalRankFromEnvironment(
        Environment({{"OMPI_COMM_WORLD_LOCAL_RANK", "x1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("OMPI_COMM_WORLD_LOCAL_RANK"), std::string::npos) << e.what();
  }
  EXPECT_THROW(LocalRankFromEnvironment(Environment({{"SLURM_LOCALID", "2"}, {"SLURM_NTASKS_PER_NODE", "2"}})),
               Error);
}

TEST(ParseDeviceRequest, AcceptsTheThreeNamesAndRejectsOthers) {
  EXPECT_EQ(ParseDeviceRequest("auto"), DeviceRequest::kAuto);
  EXPECT_EQ(ParseDeviceRequest("cpu"), DeviceRequest::kCpu);
  EXPECT_EQ(ParseDeviceRequest("cuda"), DeviceRequest::kCuda);
  EXPECT_THROW(ParseDeviceRequest("gpu"), Error);
}

TEST(ProcessContext, SingleProcessIsRankZeroOfOne) {
  ProcessContext context = ProcessContext::Create();
  EXPECT_EQ(context.rank, 0);
  EXPECT_EQ(context.world_size, 1);
  EXPECT_EQ(context.local.rank, 0);
  EXPECT_EQ(context.local.size, 1);
  EXPECT_TRUE(context.is_root());
  EXPECT_EQ(context.device.is_cuda(), torch::cuda::is_available());
  EXPECT_TRUE(ProcessContext::Create(MPI_COMM_WORLD, DeviceRequest::kCpu).device.is_cpu());
}

TEST(ProcessContext, CudaRequestWithoutAGpuFailsClearly) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible; this checks the CPU-only case";
  try {
    ProcessContext::Create(MPI_COMM_WORLD, DeviceRequest::kCuda);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

TEST(ProcessContext, TwoRanksOnOneNodeHaveDistinctLocalRanksThatAgreeWithMpi) {
  ANGIOTRAIN_RUN_ON_RANKS(2);
  ProcessContext context = ProcessContext::Create(MPI_COMM_WORLD, DeviceRequest::kCpu);
  EXPECT_EQ(context.world_size, 2);
  EXPECT_EQ(context.rank, testing::WorldRank());
  EXPECT_EQ(context.local.size, 2);
  EXPECT_EQ(context.local.rank, context.rank);  // one node: local rank = rank
  LocalRank from_mpi = LocalRankFromMpi(MPI_COMM_WORLD);
  EXPECT_EQ(from_mpi.rank, context.local.rank);
  EXPECT_EQ(from_mpi.size, context.local.size);
  EXPECT_EQ(context.Describe(), "rank " + std::to_string(context.rank) + "/2 (local " +
                                    std::to_string(context.rank) + "/2) on cpu");
}

}  // namespace
}  // namespace angiotrain
