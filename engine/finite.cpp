#include "engine/finite.h"

#include <atomic>
#include <cmath>
#include <stdexcept>

namespace gb {

static std::atomic<bool> g_allow{false};

bool nonfinite_allowed() { return g_allow.load(); }
void allow_nonfinite(bool allow) { g_allow.store(allow); }

// The index of the first non-finite value, or n. x - x is 0 for finite x and NaN otherwise, so
// the loop vectorizes without branches; the exact place is looked up only when one is found.
static size_t first_nonfinite(const float* p, size_t n) {
  float acc = 0.f;
  for (size_t i = 0; i < n; ++i) acc += p[i] - p[i];
  if (acc == 0.f) return n;
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return i;
  return n;
}

void check_finite(const Tensor& t, const std::string& what) {
  if (nonfinite_allowed() || t.empty()) return;
  const size_t n = t.size(), i = first_nonfinite(t.data(), n);
  if (i == n) return;
  const float v = t[i];
  std::string where = "element " + std::to_string(i);
  if (t.rank() > 1 && t.sample_size()) {
    where = "sample " + std::to_string(i / t.sample_size()) + ", element " + std::to_string(i % t.sample_size());
  }
  throw std::invalid_argument(what + ": " + (std::isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf") + " at " + where +
                              " of " + t.shape().str() + " (non-finite values are refused; --allow-nonfinite to study them)");
}

void check_finite_params(const Graph& g, const std::string& what) {
  if (nonfinite_allowed()) return;
  for (auto& [name, p] : g.named_params()) check_finite(p->value, what + ": parameter '" + name + "'");
}

}  // namespace gb
