#pragma once
// The corpus generator's random numbers: std::mt19937_64's raw output (its sequence is fixed by
// the C++ standard for a given seed) and transforms written here with exact or correctly
// rounded arithmetic only, so that the corpus is bit-for-bit the same on every platform.
// std::*_distribution is deliberately not used: its output is implementation-defined.
#include <cstdint>
#include <random>
#include <string_view>

namespace lossbench::golden {

// FNV-1a, 64 bits: derives per-loss seeds from a group seed and the loss id.
constexpr std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char ch : s) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ULL;
  }
  return h;
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}
  std::uint64_t bits() { return engine_(); }
  // Uniform on [0, 1) with 53 random bits: exact.
  double uniform() { return static_cast<double>(bits() >> 11) * 0x1p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), unbiased (rejection of the low remainder).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t threshold = (0 - n) % n;
    for (;;) {
      const std::uint64_t r = bits();
      if (r >= threshold) return r % n;
    }
  }
  // Uniform integer in [lo, hi].
  std::int64_t range(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(hi - lo) + 1));
  }
  // Approximately standard normal: Irwin-Hall sum of 12 uniforms minus 6. Only additions of
  // dyadic numbers, so every platform rounds them the same way.
  double normal() {
    double s = 0;
    for (int i = 0; i < 12; ++i) s += uniform();
    return s - 6.0;
  }
  bool coin(double p = 0.5) { return uniform() < p; }
  double sign() { return coin() ? 1.0 : -1.0; }

 private:
  std::mt19937_64 engine_;
};

}  // namespace lossbench::golden
