// Reading shards back: any rows, any order, scaled to [0,1]; the prefetcher yields the same
// batches as direct reads, in order, and surfaces read errors.
#include <gtest/gtest.h>

#include "core/error.h"
#include "datasets/batch_prefetcher.h"
#include "datasets/ingest.h"
#include "tests/datasets/kium_fixture.h"
#include "tests/support/test_support.h"

namespace angiotrain::testing {
namespace {

class VolumeReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fx_ = WriteKiumFixture(scratch_ / "train_set", 5, 32);
    IngestOptions o;
    o.input_dir = fx_.dir;
    o.labels_csv = fx_.labels;
    o.out_path = scratch_ / "v.h5";
    o.resolution = 32;
    o.progress = false;
    IngestKiumFolder(o, MPI_COMM_WORLD);
  }
  ScratchDir scratch_;
  KiumFixture fx_;
};

TEST_F(VolumeReadTest, ReadBatchReturnsRequestedRowsInOrderScaledToUnitRange) {
  VolumeReader v(scratch_ / "v.h5", MPI_COMM_NULL);
  std::vector<uint8_t> raw;
  v.ReadImages({0, 1, 2, 3, 4}, &raw);
  VolumeBatch b = ReadBatch(v, {4, 1, 1, 3});
  ASSERT_EQ(b.images.sizes(), (std::vector<int64_t>{4, 8, 32, 32}));
  EXPECT_EQ(b.index, (std::vector<int32_t>{1004, 1001, 1001, 1003}));
  const int64_t vol = 8 * 32 * 32;
  std::vector<int64_t> rows = {4, 1, 1, 3};
  for (int i = 0; i < 4; ++i) {
    auto expected = torch::from_blob(raw.data() + rows[i] * vol, {8, 32, 32}, torch::kUInt8).to(torch::kFloat32) / 255.0;
    EXPECT_TRUE(torch::equal(b.images[i], expected)) << "batch position " << i;
    EXPECT_EQ(b.aneurysm[i].item<float>(), fx_.patients[rows[i]].aneurysm);
  }
  EXPECT_GE(b.images.min().item<float>(), 0.0f);
  EXPECT_LE(b.images.max().item<float>(), 1.0f);
}

TEST_F(VolumeReadTest, ParallelOpenReadsTheSameAsSerialOpen) {
  VolumeReader serial(scratch_ / "v.h5", MPI_COMM_NULL);
  VolumeReader parallel(scratch_ / "v.h5", MPI_COMM_WORLD);
  EXPECT_TRUE(torch::equal(ReadBatch(serial, {2, 0}).images, ReadBatch(parallel, {2, 0}).images));
}

TEST_F(VolumeReadTest, PrefetcherYieldsTheSameBatchesInOrder) {
  VolumeReader v(scratch_ / "v.h5", MPI_COMM_WORLD);
  std::vector<std::vector<int64_t>> batches = {{0, 1}, {4, 2}, {3}};
  std::vector<VolumeBatch> direct;
  for (const auto& rows : batches) direct.push_back(ReadBatch(v, rows));
  BatchPrefetcher prefetcher(&v, batches, 2);
  VolumeBatch b;
  for (size_t i = 0; i < batches.size(); ++i) {
    ASSERT_TRUE(prefetcher.Next(&b));
    EXPECT_EQ(b.rows, batches[i]);
    EXPECT_TRUE(torch::equal(b.images, direct[i].images));
    EXPECT_TRUE(torch::equal(b.locations, direct[i].locations));
  }
  EXPECT_FALSE(prefetcher.Next(&b));
}

TEST_F(VolumeReadTest, PrefetcherRethrowsReadErrors) {
  VolumeReader v(scratch_ / "v.h5", MPI_COMM_NULL);
  BatchPrefetcher prefetcher(&v, {{0}, {99}}, 2);
  VolumeBatch b;
  ASSERT_TRUE(prefetcher.Next(&b));
  EXPECT_THROW(prefetcher.Next(&b), Error);
}

TEST_F(VolumeReadTest, ReaderRejectsAFileThatIsNotAVolume) {
  WriteText(scratch_ / "x.h5", "plain text");
  try {
    VolumeReader v(scratch_ / "x.h5", MPI_COMM_NULL);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.h5: is not an HDF5 file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace angiotrain::testing
