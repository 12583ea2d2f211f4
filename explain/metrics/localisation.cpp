// Localisation: does the explanation fall on a region known to matter (a ground-truth mask per
// input)? Functions of the attribution and the mask; a sample with an empty mask gets NaN.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "explain/metrics/common.h"

namespace gb::metrics {

namespace {

// The masks broadcast to x's shape: given shaped like x, or [N,1,H,W] for images of C channels.
std::vector<char> masks_like(const Tensor& m, const Tensor& x, const std::string& metric) {
  const bool same = m.shape() == x.shape();
  const bool one_channel = x.rank() == 4 && m.rank() == 4 && m.dim(0) == x.dim(0) && m.dim(1) == 1 &&
                           m.dim(2) == x.dim(2) && m.dim(3) == x.dim(3);
  if (!same && !one_channel)
    throw ShapeError(metric + ": masks " + m.shape().str() + " do not fit the inputs " + x.shape().str() +
                     " (expected the same shape, or one channel)");
  std::vector<char> out(x.size());
  const size_t D = x.sample_size(), HW = one_channel ? m.sample_size() : D;
  for (size_t i = 0; i < x.size(); ++i) {
    const float v = m[(i / D) * HW + (i % D) % HW];
    if (!std::isfinite(v)) throw std::invalid_argument(metric + ": mask value at element " + std::to_string(i) + " is not finite");
    out[i] = v != 0;
  }
  return out;
}

struct Prepared {
  Tensor a;
  std::vector<char> s;
  size_t D = 0;
};

Prepared prepare(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r, const Context& ctx) {
  const bool abs = r.flag("abs"), normalise = r.flag("normalise");
  Prepared p;
  p.s = masks_like(*ctx.masks, x, r.method());
  p.a = attribution_of(g, x, t, e);
  preprocess(p.a, normalise, abs);
  p.D = x.sample_size();
  return p;
}

size_t mask_size(const char* s, size_t D) { return size_t(std::count(s, s + D, 1)); }

Evaluation pointing_game(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                         const Context& ctx) {
  const bool weighted = r.flag("weighted");
  Prepared p = prepare(g, x, t, e, r, ctx);
  Evaluation ev;
  for (int n = 0; n < x.batch(); ++n) {
    const float* a = p.a.data() + n * p.D;
    const char* s = p.s.data() + n * p.D;
    const size_t inside = mask_size(s, p.D);
    const float top = *std::max_element(a, a + p.D);
    bool hit = false;
    for (size_t i = 0; i < p.D; ++i) hit |= s[i] && a[i] == top;  // any of the tied maxima
    double v = hit ? (weighted ? 1.0 - double(inside) / double(p.D) : 1.0) : 0.0;
    ev.values.push_back(inside ? v : NAN);
  }
  return ev;
}

Evaluation mass_accuracy(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                         const Context& ctx) {
  Prepared p = prepare(g, x, t, e, r, ctx);
  Evaluation ev;
  for (int n = 0; n < x.batch(); ++n) {
    double within = 0, total = 0;
    for (size_t i = 0; i < p.D; ++i) total += p.a[n * p.D + i], within += p.s[n * p.D + i] ? p.a[n * p.D + i] : 0.f;
    ev.values.push_back(mask_size(p.s.data() + n * p.D, p.D) ? within / total : NAN);
  }
  return ev;
}

// The fraction of the `k` highest-attributed features (stable order) that lie inside the mask.
double top_fraction(const float* a, const char* s, size_t D, size_t k) {
  const std::vector<int> order = order_decreasing(a, D);
  size_t hits = 0;
  for (size_t i = 0; i < k; ++i) hits += s[order[i]];
  return double(hits) / double(k);
}

Evaluation rank_accuracy(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                         const Context& ctx) {
  Prepared p = prepare(g, x, t, e, r, ctx);
  Evaluation ev;
  for (int n = 0; n < x.batch(); ++n) {
    const size_t K = mask_size(p.s.data() + n * p.D, p.D);
    ev.values.push_back(K ? top_fraction(p.a.data() + n * p.D, p.s.data() + n * p.D, p.D, K) : NAN);
  }
  return ev;
}

Evaluation top_k_intersection(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                              const Context& ctx) {
  const int k = integer_in(r, "k", 1, long(x.sample_size()));
  const bool concept_influence = r.flag("concept_influence");
  Prepared p = prepare(g, x, t, e, r, ctx);
  Evaluation ev;
  for (int n = 0; n < x.batch(); ++n) {
    const size_t K = mask_size(p.s.data() + n * p.D, p.D);
    double v = top_fraction(p.a.data() + n * p.D, p.s.data() + n * p.D, p.D, size_t(k));
    if (concept_influence && K) v *= double(p.D) / double(K);
    ev.values.push_back(K ? v : NAN);
  }
  return ev;
}

Evaluation attribution_localisation(Graph& g, const Tensor& x, const Target& t, const Explanation& e, ParamReader& r,
                                    const Context& ctx) {
  const bool weighted = r.flag("weighted"), positive = r.flag("positive_attributions");
  Prepared p = prepare(g, x, t, e, r, ctx);
  Evaluation ev;
  for (int n = 0; n < x.batch(); ++n) {
    double inside = 0, total = 0;
    for (size_t i = 0; i < p.D; ++i) {
      const double v = positive ? std::max(0.f, p.a[n * p.D + i]) : p.a[n * p.D + i];
      total += v, inside += p.s[n * p.D + i] ? v : 0.0;
    }
    const size_t K = mask_size(p.s.data() + n * p.D, p.D);
    // As Quantus: no epsilon (a mask over everything is exactly 1, an all-zero map 0/0 = NaN, not
    // the worst score), and a ratio above 1 (negative attribution outside the mask) is NaN.
    double v = total == 0 ? NAN : inside / total;
    if (v > 1) v = NAN;
    if (weighted) v *= double(K) / double(p.D);
    ev.values.push_back(K ? v : NAN);
  }
  return ev;
}

const ParamInfo kLocalisationAbs{"abs", "false", "take |a| (after normalising)"};
const ParamInfo kLocalisationNormalise{"normalise", "true", "divide each attribution by its max |a| first"};

}  // namespace

void add_localisation_metrics(std::vector<Metric>& reg) {
  const std::string fam = "localisation";
  reg.push_back({{{"pointing-game", "1 when a feature of maximal attribution lies inside the mask, else 0 (weighted: 1 − "
                                    "mask fraction on a hit)",
                   {{"weighted", "false", "weight a hit by 1 − |mask| / D"}, kLocalisationAbs, kLocalisationNormalise},
                   "Quantus PointingGame (Zhang et al. 2018)"},
                  fam, Better::higher, true},
                 pointing_game});
  reg.push_back({{{"relevance-mass-accuracy", "Σ a inside the mask / Σ a",
                   {kLocalisationAbs, kLocalisationNormalise},
                   "Quantus RelevanceMassAccuracy (Arras et al. 2022)"},
                  fam, Better::higher, true},
                 mass_accuracy});
  reg.push_back({{{"relevance-rank-accuracy", "the fraction of the |mask| highest-attributed features inside the mask",
                   {kLocalisationAbs, kLocalisationNormalise},
                   "Quantus RelevanceRankAccuracy (Arras et al. 2022); ties ranked by feature index"},
                  fam, Better::higher, true},
                 rank_accuracy});
  reg.push_back({{{"top-k-intersection", "the fraction of the k highest-attributed features inside the mask",
                   {{"k", "100", "features (at most D)"},
                    {"concept_influence", "false", "multiply by D / |mask|"}, kLocalisationAbs, kLocalisationNormalise},
                   "Quantus TopKIntersection (Theiner et al. 2021); default k 100, not Quantus's 1000, which exceeds "
                   "the 784 features of a 28×28 image"},
                  fam, Better::higher, true},
                 top_k_intersection});
  reg.push_back({{{"attribution-localisation", "Σ a inside the mask / Σ a (NaN above 1 and for Σ a = 0); weighted: times |mask| / D",
                   {{"weighted", "false", "multiply by the mask's share of the features"},
                    {"positive_attributions", "false", "clip a at 0 first"},
                    {"abs", "true", "take |a|"}, kLocalisationNormalise},
                   "Quantus AttributionLocalisation (Kohlbrenner et al. 2020); the mask share is of the sample's own "
                   "features (Quantus divides by x_batch[2:].size); max_size only warned in Quantus and is omitted"},
                  fam, Better::higher, true},
                 attribution_localisation});
}

}  // namespace gb::metrics
