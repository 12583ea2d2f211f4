// A small seeded generator (xoroshiro128+, seeded by splitmix64) whose whole state is two 64-bit
// words, so checkpoints can store it and a resumed run draws the same numbers.
#pragma once
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace gb {

struct Rng {
  std::array<uint64_t, 2> s{};
  explicit Rng(uint64_t seed = 42) { reseed(seed); }
  void reseed(uint64_t seed) {
    auto mix = [&seed] {
      uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      return z ^ (z >> 31);
    };
    s[0] = mix();
    s[1] = mix();
  }
  uint64_t next() {  // xoroshiro128+
    uint64_t s0 = s[0], s1 = s[1], r = s0 + s1;
    s1 ^= s0;
    s[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
    s[1] = (s1 << 37) | (s1 >> 27);
    return r;
  }
  float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }  // [0,1)
  uint32_t below(uint32_t n) { return uint32_t((next() >> 32) * n >> 32); }
  float normal() {  // Box-Muller; one draw per call keeps the state simple to reason about
    float u1 = uniform(), u2 = uniform();
    if (u1 < 1e-12f) u1 = 1e-12f;
    return std::sqrt(-2.f * std::log(u1)) * std::cos(6.2831853f * u2);
  }
};

// A seed from a sample's values (FNV-1a over its bytes, mixed with `seed`): a draw keyed by it is
// the same for the sample wherever it sits in a batch (noise tunnels, attacks' random starts and
// random targets).
inline uint64_t values_seed(const float* p, size_t n, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ (seed * 0x9e3779b97f4a7c15ULL);
  const unsigned char* b = reinterpret_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}

}  // namespace gb
