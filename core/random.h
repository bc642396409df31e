// Portable, fully specified random numbers shared by the layers that must give the same draws
// on every machine and standard library (the phantom, the distributed sampler, data splits).
#pragma once

#include <cstdint>

namespace angiotrain {

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijective mix of 64 bits.
inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Turns structured seeds (seed, index, stream) into unrelated ones: Mix64 of a + golden * (b + 1).
inline uint64_t MixSeed(uint64_t a, uint64_t b) { return Mix64(a + 0x9E3779B97F4A7C15ULL * (b + 1)); }

// SplitMix64: tiny, fast, and fully specified, so the same seed gives the same numbers everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t Next() { return Mix64(state_ += 0x9E3779B97F4A7C15ULL); }
  // Uniform in [0, bound), bound > 0, without modulo bias: rejects the lowest 2^64 mod bound values.
  uint64_t Below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;
    while (true) {
      const uint64_t r = Next();
      if (r >= threshold) return r % bound;
    }
  }

 private:
  uint64_t state_;
};

}  // namespace angiotrain
