// Helpers of the two surrogate test files (test_surrogates.cpp, test_surrogate_layers.cpp), which
// are one test executable.
#pragma once
#include <cstdint>
#include <string>

#include "engine/architecture.h"
#include "engine/rng.h"

// The architecture `text`, initialized with `seed`.
inline gb::Graph arch(const std::string& text, uint64_t seed = 3) {
  gb::Graph g = gb::graph_from_text(text);
  g.init(seed);
  return g;
}

// Normal noise of standard deviation `scale`.
inline gb::Tensor noise(const gb::Shape& s, uint64_t seed, float scale = 1.f) {
  gb::Rng r(seed);
  gb::Tensor t(s);
  for (size_t i = 0; i < t.size(); ++i) t[i] = scale * r.normal();
  return t;
}

// Every parameter of g random in [-scale, scale] (biases and leaves too).
inline void randomize(gb::Graph& g, uint64_t seed, float scale) {
  gb::Rng r(seed);
  for (auto& [name, p] : g.named_params())
    for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = scale * (2 * r.uniform() - 1);
}
