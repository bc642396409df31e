// core/allocator.h (run in the datasets suite, which links core; core has no suite of its own).
// Allocator tuning: multi-megabyte blocks come from the heap (reused across steps), not from a
// fresh mmap each time; the opt-out and the user's glibc variables are respected.
#include "core/allocator.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace angiotrain {
namespace {

bool UserSetGlibcVariables() {
  return std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr || std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr;
}

TEST(TuneAllocatorForTensors, OptOutLeavesTheAllocatorAlone) {
  setenv("ANGIOTRAIN_MALLOC_TUNING", "0", 1);
  AllocatorSettings s = TuneAllocatorForTensors();
  unsetenv("ANGIOTRAIN_MALLOC_TUNING");
  EXPECT_EQ(s.mmap_threshold, 0u);
  EXPECT_EQ(s.trim_threshold, 0u);
  EXPECT_FALSE(s.from_environment);
}

TEST(TuneAllocatorForTensors, KeepsEightMegabyteBlocksOutOfMmap) {
  if (UserSetGlibcVariables()) GTEST_SKIP() << "MALLOC_*_THRESHOLD_ set in the environment: glibc's reading stands";
  AllocatorSettings s = TuneAllocatorForTensors();
  EXPECT_EQ(s.mmap_threshold, size_t{32} << 20);
  EXPECT_EQ(s.trim_threshold, size_t{1} << 30);
  const size_t mapped_before = mallinfo2().hblks;
  void* block = std::malloc(size_t{8} << 20);  // glibc's default would mmap this
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, size_t{8} << 20);
  EXPECT_EQ(mallinfo2().hblks, mapped_before);
  std::free(block);
  void* huge = std::malloc(size_t{64} << 20);  // above the new threshold: still mmapped
  ASSERT_NE(huge, nullptr);
  EXPECT_EQ(mallinfo2().hblks, mapped_before + 1);
  std::free(huge);
}

}  // namespace
}  // namespace angiotrain
