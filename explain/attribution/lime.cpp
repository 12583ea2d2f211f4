#include "explain/attribution/lime.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "explain/attribution/method.h"
#include "explain/attribution/perturbation.h"
#include "explain/common/resize.h"

// LAPACK from OpenBLAS (no lapacke.h here). The trailing length is gfortran's hidden argument for
// the character `uplo`; C implementations ignore it.
extern "C" void dposv_(const char* uplo, const int* n, const int* nrhs, double* a, const int* lda, double* b,
                       const int* ldb, int* info, size_t uplo_len);

namespace gb::explain {

void weighted_ridge(const std::vector<double>& X, const std::vector<double>& y, const std::vector<double>& w, int p,
                    double alpha, std::vector<double>& coef, double& intercept) {
  const size_t n = y.size();
  if (X.size() != n * size_t(p) || w.size() != n) throw std::invalid_argument("weighted_ridge: inconsistent sizes");
  const double sw = std::accumulate(w.begin(), w.end(), 0.0);
  if (!(sw > 0)) throw std::invalid_argument("weighted_ridge: the sample weights sum to 0");
  std::vector<double> xm(p, 0.0);
  double ym = 0;
  for (size_t i = 0; i < n; ++i) {
    for (int j = 0; j < p; ++j) xm[j] += w[i] * X[i * p + j];
    ym += w[i] * y[i];
  }
  for (double& v : xm) v /= sw;
  ym /= sw;
  std::vector<double> A(size_t(p) * p, 0.0), b(p, 0.0), xc(p);
  for (size_t i = 0; i < n; ++i) {
    for (int j = 0; j < p; ++j) xc[j] = X[i * p + j] - xm[j];
    const double yc = y[i] - ym;
    for (int j = 0; j < p; ++j) {
      const double wx = w[i] * xc[j];
      b[j] += wx * yc;
      for (int k = 0; k <= j; ++k) A[size_t(j) * p + k] += wx * xc[k];  // lower triangle, row-major
    }
  }
  for (int j = 0; j < p; ++j) A[size_t(j) * p + j] += alpha;
  // Row-major lower = column-major upper.
  const int np = p, one = 1;
  int info = 0;
  dposv_("U", &np, &one, A.data(), &np, b.data(), &np, &info, 1);
  if (info != 0) throw std::runtime_error("weighted_ridge: dposv failed (info " + std::to_string(info) + ")");
  coef = b;
  intercept = ym;
  for (int j = 0; j < p; ++j) intercept -= xm[j] * coef[j];
}

std::vector<int> LimeExplanation::top(int k) const {
  std::vector<int> ids;
  for (int s = 0; s < int(weights.size()); ++s)
    if (weights[s] > 0) ids.push_back(s);
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return weights[a] > weights[b]; });
  if (int(ids.size()) > k) ids.resize(std::max(0, k));
  return ids;
}

std::vector<float> LimeExplanation::top_mask(int k) const {
  std::vector<char> on(weights.size(), 0);
  for (int s : top(k)) on[s] = 1;
  std::vector<float> m(segments.labels.size());
  for (size_t i = 0; i < m.size(); ++i) m[i] = on[segments.labels[i]] ? 1.f : 0.f;
  return m;
}

std::vector<float> LimeExplanation::pixel_map() const {
  std::vector<float> m(segments.labels.size());
  for (size_t i = 0; i < m.size(); ++i) m[i] = float(weights[segments.labels[i]]);
  return m;
}

std::vector<LimeExplanation> lime(Graph& g, const Tensor& x, const Target& target, const LimeOptions& o) {
  require_images(x, "lime");
  if (o.samples < 2 || o.batch < 1 || !(o.kernel_width > 0))
    throw std::invalid_argument("lime: needs n ≥ 2, batch ≥ 1 and kernel_width > 0");
  if (!(o.alpha > 0)) throw std::invalid_argument("lime: LimeOptions::alpha (the ridge penalty) must be > 0");
  if (o.prob && !target.is_class(g))  // its raw value was regressed as the "probability"
    throw std::invalid_argument("lime: output=prob needs a class target (a unit of a layer has no probability; use "
                                "output=logit for its value)");
  const int N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const size_t HW = size_t(H) * W, CHW = C * HW;
  std::vector<LimeExplanation> out(N);
  for (int n = 0; n < N; ++n) {
    const Tensor xn = x.sample(n);
    LimeExplanation& e = out[n];
    e.segments = slic(xn, o.slic);
    const int K = e.segments.count;
    const std::vector<int>& lab = e.segments.labels;

    // The image with every superpixel hidden.
    std::vector<float> hidden(CHW, o.fill);
    if (o.fill_mean) {
      std::vector<double> sum(size_t(K) * C, 0.0);
      std::vector<int> cnt(K, 0);
      for (size_t i = 0; i < HW; ++i) {
        cnt[lab[i]]++;
        for (int c = 0; c < C; ++c) sum[size_t(lab[i]) * C + c] += xn[c * HW + i];
      }
      for (size_t i = 0; i < HW; ++i)
        for (int c = 0; c < C; ++c) hidden[c * HW + i] = float(sum[size_t(lab[i]) * C + c] / cnt[lab[i]]);
    }

    // Samples: row 0 all on, the rest each superpixel on with probability ½.
    Rng rng(o.seed);
    std::vector<double> Z(size_t(o.samples) * K, 1.0), y(o.samples), w(o.samples);
    for (size_t i = K; i < Z.size(); ++i) Z[i] = rng.uniform() < 0.5f ? 1.0 : 0.0;
    for (int s0 = 0; s0 < o.samples; s0 += o.batch) {
      const int B = std::min(o.batch, o.samples - s0);
      Tensor batch({B, C, H, W});
      for (int b = 0; b < B; ++b) {
        const double* z = &Z[size_t(s0 + b) * K];
        float* d = batch.data() + b * CHW;
        for (int c = 0; c < C; ++c)
          for (size_t i = 0; i < HW; ++i) d[c * HW + i] = z[lab[i]] != 0 ? xn[c * HW + i] : hidden[c * HW + i];
      }
      std::vector<float> s = target_scores(g, batch, target.gather(std::vector<int>(B, n)), o.prob);
      for (int b = 0; b < B; ++b) y[s0 + b] = s[b];
    }
    // Cosine distance to all-ones: 1 − Σz/(√Σz·√K) = 1 − √(Σz/K); an all-off sample is at distance 1.
    for (int s = 0; s < o.samples; ++s) {
      double on = 0;
      for (int k = 0; k < K; ++k) on += Z[size_t(s) * K + k];
      const double d = on > 0 ? 1.0 - std::sqrt(on / K) : 1.0;
      w[s] = std::sqrt(std::exp(-d * d / (o.kernel_width * o.kernel_width)));  // LIME's kernel_fn
    }
    weighted_ridge(Z, y, w, K, o.alpha, e.weights, e.intercept);
    // Weighted R², as sklearn's Ridge.score with sample_weight.
    double sw = 0, ym = 0;
    for (int s = 0; s < o.samples; ++s) sw += w[s], ym += w[s] * y[s];
    ym /= sw;
    double ssr = 0, sst = 0;
    for (int s = 0; s < o.samples; ++s) {
      double pred = e.intercept;
      for (int k = 0; k < K; ++k) pred += Z[size_t(s) * K + k] * e.weights[k];
      ssr += w[s] * (y[s] - pred) * (y[s] - pred);
      sst += w[s] * (y[s] - ym) * (y[s] - ym);
    }
    e.score = sst > 0 ? 1.0 - ssr / sst : 1.0;
  }
  return out;
}

void add_lime_methods(std::vector<Method>& registry) {
  registry.push_back(
      {{"lime", "LIME: ridge regression of the target score on random on/off samples of SLIC superpixels",
        {{"n", "1000", "number of samples (the first keeps every superpixel)", 2, 100000},
         {"segments", "40", "requested number of SLIC superpixels", 1, 100000},
         {"compactness", "10", "SLIC compactness (colour on a 0..100 scale)", 0.01, 1000},
         {"fill", "mean", "hidden superpixels: 'mean' (their own mean per channel) or a value"},
         {"kernel_width", "0.25", "width w of the kernel exp(−d²/w²) on the cosine distance"},
         {"output", "prob", "regress the softmax probability ('prob', LIME's convention) or the logit ('logit')"},
         explain::seed_param("0", "sampling seed"),
         {"batch", "256", "perturbed images per forward pass", 1, 65536},
         {"top", "0", "K > 0: return a 0/1 mask of the K superpixels with the largest positive weights", 0, 100000}},
        "Ribeiro et al. 2016 / the lime package's LimeImageExplainer, with SLIC (written here, deterministic) "
        "instead of quickshift: sample weight √exp(−d²/w²), Ridge(alpha=1) with intercept; each pixel gets its "
        "superpixel's coefficient, the same in every channel."},
       [](Graph& g, const Tensor& x, const Target& t, ParamReader& pr) {
         LimeOptions o;
         o.samples = pr.integer("n");
         o.slic.segments = pr.integer("segments");
         o.slic.compactness = pr.number("compactness");
         const std::string fill = pr.text("fill");
         if (fill != "mean") {
           o.fill_mean = false;
           o.fill = float(pr.number("fill"));
         }
         o.kernel_width = pr.number("kernel_width");
         const std::string output = pr.text("output");
         if (output != "prob" && output != "logit")
           throw std::invalid_argument("lime: --param output=" + output + " is not prob or logit");
         o.prob = output == "prob";
         o.seed = uint64_t(pr.integer("seed"));
         o.batch = pr.integer("batch");
         const int top = pr.integer("top");
         if (top < 0) throw std::invalid_argument("lime: --param top=" + std::to_string(top) + " must be >= 0 (0: the weights)");
         require_images(x, "lime");
         std::vector<LimeExplanation> ex = lime(g, x, t, o);
         const int N = x.dim(0), H = x.dim(2), W = x.dim(3);
         Tensor map({N, 1, H, W});
         for (int n = 0; n < N; ++n) {
           if (top > int(ex[n].weights.size()))
             throw std::invalid_argument("lime: --param top=" + std::to_string(top) + " exceeds the " +
                                         std::to_string(ex[n].weights.size()) + " superpixels of input " +
                                         std::to_string(n) + " (fewer than segments= asked for)");
           std::vector<float> m = top > 0 ? ex[n].top_mask(top) : ex[n].pixel_map();
           std::copy(m.begin(), m.end(), map.data() + size_t(n) * H * W);
         }
         Result r{broadcast_channels(map, x.dim(1)), {}, top <= 0, {}};
         for (const LimeExplanation& e : ex)
           r.details.push_back({{"weights", e.weights},
                                {"intercept", {e.intercept}},
                                {"score", {e.score}},
                                {"segments", std::vector<double>(e.segments.labels.begin(), e.segments.labels.end())}});
         return r;
       }});
}

}  // namespace gb::explain
