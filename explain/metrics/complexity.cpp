// Complexity: how concentrated an explanation is. Functions of the attribution alone (no model
// evaluations beyond the explanation itself).
#include <algorithm>
#include <cmath>
#include <vector>

#include "explain/metrics/common.h"

namespace gb::metrics {

namespace {

// The attribution after Quantus's preprocessing, one row per sample.
Tensor prepared(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r) {
  const bool abs = r.flag("abs"), normalise = r.flag("normalise");
  if (!abs)
    throw std::invalid_argument(r.method() + ": --param abs=false is not supported (the measure needs |a|; Quantus "
                                "warns and gives meaningless values)");
  Tensor a = attribution_of(g, x, t, e);
  preprocess(a, normalise, abs);
  return a;
}

// The Gini index of the sorted |a| + 1e-7 (Chalasani et al. 2020): 0 for a constant map, (D−1)/D
// (up to the 1e-7) for a map with one nonzero feature.
double gini(const float* a, size_t D) {
  std::vector<double> v(a, a + D);
  for (double& e : v) e += 1e-7;
  std::sort(v.begin(), v.end());
  double num = 0, den = 0;
  for (size_t i = 0; i < D; ++i) num += (2.0 * double(i + 1) - double(D) - 1.0) * v[i], den += v[i];
  return num / (double(D) * den);
}

// Shannon entropy (natural log) of |a| / Σ|a| (Bhatt et al. 2020): 0 for one nonzero feature,
// log D for a constant map. NaN for an all-zero map (no distribution).
double entropy(const float* a, size_t D) {
  double total = 0;
  for (size_t i = 0; i < D; ++i) total += std::fabs(a[i]);
  if (total == 0) return NAN;
  double h = 0;
  for (size_t i = 0; i < D; ++i) {
    const double p = std::fabs(a[i]) / total;
    h -= p * std::log(p + 1e-12);
  }
  return h;
}

template <class F>
Evaluation per_sample(const Tensor& a, F f) {
  Evaluation ev;
  const size_t D = a.sample_size();
  for (int n = 0; n < a.batch(); ++n) ev.values.push_back(f(a.data() + n * D, D));
  return ev;
}

const ParamInfo kComplexityAbs{"abs", "true", "take |a| (required: these measures are of magnitudes)"};
const ParamInfo kComplexityNormalise{"normalise", "true", "divide each sample's attribution by its max |a| (Quantus normalise_by_max, per sample)"};

}  // namespace

void add_complexity_metrics(std::vector<Metric>& reg) {
  const std::string fam = "complexity";
  reg.push_back({{{"sparseness",
                   "Gini index of |a| over the features: 1 − 1/D for one nonzero feature, 0 for a constant map",
                   {kComplexityAbs, kComplexityNormalise},
                   "Quantus Sparseness (Chalasani et al. 2020; |a| + 1e-7, sorted)"},
                  fam, Better::higher},
                 [](Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r, const Context&) {
                   return per_sample(prepared(g, x, t, e, r), gini);
                 }});
  reg.push_back({{{"complexity",
                   "entropy of |a| / Σ|a| (natural log): 0 for one nonzero feature, log D for a constant map; NaN for "
                   "an all-zero map",
                   {kComplexityAbs, kComplexityNormalise},
                   "Quantus Complexity (Bhatt et al. 2020)"},
                  fam, Better::lower},
                 [](Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r, const Context&) {
                   return per_sample(prepared(g, x, t, e, r), entropy);
                 }});
  reg.push_back({{{"effective-complexity",
                   "the number of features with |a| > eps (after normalising by max |a|)",
                   {{"eps", "1e-5", "threshold on the normalised |a|"}, kComplexityAbs, kComplexityNormalise},
                   "Quantus EffectiveComplexity (Nguyen & Martínez 2020)"},
                  fam, Better::lower},
                 [](Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r, const Context&) {
                   const double eps = number_in(r, "eps", 0, 1e30);
                   return per_sample(prepared(g, x, t, e, r), [eps](const float* a, size_t D) {
                     double count = 0;
                     for (size_t i = 0; i < D; ++i) count += std::fabs(a[i]) > eps;
                     return count;
                   });
                 }});
}

}  // namespace gb::metrics
