// Allocator tuning for tensor workloads (called once at the start of main).
//
// glibc serves blocks above M_MMAP_THRESHOLD (128 KiB at first, then adapting) with fresh
// mmap()s and returns freed heap tops to the kernel. A training step allocates and frees the same
// multi-megabyte activations every step, so with the defaults each step pays page faults and
// zeroing for them, and whether it does depends on the allocation history: the same run measured
// 9 or 19 samples/s on the 2-core CI machine (BENCHMARKS.md). Raising both thresholds keeps the
// blocks in the heap for reuse, as PyTorch users get from jemalloc or tcmalloc.
#pragma once

#include <cstddef>

namespace angiotrain {

struct AllocatorSettings {
  size_t mmap_threshold = 0;  // bytes; 0 when left to glibc
  size_t trim_threshold = 0;
  bool from_environment = false;  // MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ were set
};

// Sets M_MMAP_THRESHOLD to 32 MiB and M_TRIM_THRESHOLD to 1 GiB unless the user set glibc's
// MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ (then glibc's own reading of them stands).
// ANGIOTRAIN_MALLOC_TUNING=0 leaves the allocator alone. Returns what was applied.
AllocatorSettings TuneAllocatorForTensors();

}  // namespace angiotrain
