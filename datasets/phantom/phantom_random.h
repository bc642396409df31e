// Portable random numbers for the phantom: std::mt19937_64's output sequence is fixed by the
// C++ standard, but std::*_distribution is not, so the draws are made here from the engine's bits.
// Same seed, same phantom, on any standard library.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

namespace angiotrain {

class PhantomRandom {
 public:
  explicit PhantomRandom(uint64_t seed) : engine_(seed) {}

  uint64_t Bits() { return engine_(); }
  // [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // 0..n-1
  int Below(int n) { return static_cast<int>(Uniform() * n); }
  bool Chance(double p) { return Uniform() < p; }
  // Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 1.0 - Uniform();  // (0, 1]
    double u2 = Uniform();
    double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(6.283185307179586 * u2);
    has_spare_ = true;
    return r * std::cos(6.283185307179586 * u2);
  }
  double Normal(double mean, double sd) { return mean + sd * Normal(); }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0;
};

}  // namespace angiotrain
