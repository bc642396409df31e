#include "core/allocator.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace angiotrain {

AllocatorSettings TuneAllocatorForTensors() {
  AllocatorSettings s;
  const char* off = std::getenv("ANGIOTRAIN_MALLOC_TUNING");
  if (off && std::strcmp(off, "0") == 0) return s;
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_")) {
    s.from_environment = true;
    return s;
  }
  constexpr size_t kMmap = size_t{32} << 20;
  constexpr size_t kTrim = size_t{1} << 30;
  if (mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmap)) == 1) s.mmap_threshold = kMmap;
  if (mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrim)) == 1) s.trim_threshold = kTrim;
  return s;
}

}  // namespace angiotrain
