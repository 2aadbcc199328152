// Counter-based randomness: every random choice is a pure function of (seed, what, index), so results
// do not depend on thread count or scheduling (deterministic HOGWILD-free training for a fixed seed).
#pragma once
#include <cmath>
#include <cstdint>

namespace slide {

inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) { return splitmix64(a ^ splitmix64(b)); }
inline std::uint64_t mix(std::uint64_t a, std::uint64_t b, std::uint64_t c) { return mix(mix(a, b), c); }

// Small sequential generator for loops (seed it with mix(...)).
struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed) {}
  std::uint64_t next() { return splitmix64(s += 0x9E3779B97F4A7C15ull); }
  // uniform in [0, n)
  std::uint64_t below(std::uint64_t n) { return static_cast<std::uint64_t>((unsigned __int128)next() * n >> 64); }
  double uniform() { return (next() >> 11) * 0x1.0p-53; }
  float normal() {  // Box-Muller, both outputs used
    if (has_spare) {
      has_spare = false;
      return spare;
    }
    const double u1 = uniform() + 0x1.0p-54, u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 6.283185307179586 * u2;
    spare = static_cast<float>(r * std::sin(a));
    has_spare = true;
    return static_cast<float>(r * std::cos(a));
  }
  float spare = 0.f;
  bool has_spare = false;
};

}  // namespace slide
