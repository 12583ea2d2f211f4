#include "explain/instances/mmd_critic.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "engine/blas.h"
#include "engine/interrupt.h"
#include "engine/passes.h"
#include "engine/threads.h"
#include "explain/instances/method.h"

namespace gb::explain::instances {

namespace {

constexpr int kBlock = 256;  // kernel rows per GEMM in the column-sum pass

// The RBF kernel on feature rows, evaluated a row (or a block of rows) at a time.
struct Kernel {
  const Tensor& f;  // [n, d]
  double gamma;
  std::vector<float> norms;  // ‖x_i‖²

  Kernel(const Tensor& f, double gamma) : f(f), gamma(gamma), norms(f.batch()) {
    for (int i = 0; i < f.batch(); ++i) norms[i] = float(squared(f.data() + size_t(i) * d(), f.data() + size_t(i) * d()));
  }
  int n() const { return f.batch(); }
  int d() const { return f.dim(1); }
  double squared(const float* a, const float* b) const {
    double s = 0;
    for (int j = 0; j < d(); ++j) s += double(a[j]) * b[j];
    return s;
  }
  // out[b..e) × n: k(x_r, x_j) for rows r in [b, e), from ‖a‖² + ‖b‖² − 2 a·b (clamped at 0).
  void rows(int b, int e, float* out) const {
    gemm(false, true, e - b, n(), d(), -2.f, f.data() + size_t(b) * d(), f.data(), 0.f, out);
    for (int r = b; r < e; ++r) {
      float* o = out + size_t(r - b) * n();
      for (int j = 0; j < n(); ++j) o[j] = float(std::exp(-gamma * std::max(0.f, o[j] + norms[r] + norms[j])));
      o[r] = 1.f;  // exactly: k(x, x) = 1
    }
  }
};

// Σ_i k(x_i, x_j) / n for every j, on all threads (each a block of rows at a time).
std::vector<double> column_means(const Kernel& K, const Context& ctx) {
  const int n = K.n(), blocks = (n + kBlock - 1) / kBlock, T = std::max(1, std::min(threads(), blocks));
  std::vector<std::vector<double>> sums(T, std::vector<double>(n, 0.0));
  // O(n² d) without a forward pass: the calling thread polls for Ctrl-C between blocks and the
  // others stop with it (60,000 points ran on for a minute after it).
  std::atomic<bool> stop{false};
  parallel(T, [&](int t) {
    BlasSerial serial;
    std::vector<float> rows(size_t(kBlock) * n);
    int first, last;
    part(t, T, blocks, first, last);
    for (int q = first; q < last && !stop.load(std::memory_order_relaxed); ++q) {
      const int b = q * kBlock, e = std::min(n, b + kBlock);
      K.rows(b, e, rows.data());
      for (int r = 0; r < e - b; ++r)
        for (int j = 0; j < n; ++j) sums[t][j] += rows[size_t(r) * n + j];
      if (t != 0) continue;
      report(ctx, "kernel column sums", std::min(n, (q - first + 1) * kBlock * T), n);
      try {
        poll_interrupt();
      } catch (const Interrupted&) {
        stop = true;
      }
    }
  });
  if (stop) throw Interrupted();
  std::vector<double> mean(n, 0.0);
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < n; ++j) mean[j] += sums[t][j] / n;
  return mean;
}

}  // namespace

namespace {
// ‖x_a − x_b‖² in double for the pairs a < b of the rows `pick`, pair (a, b) at a * m + b, each
// summed over the features in order. A scalar loop over the features is one chain of dependent
// adds per pair; here eight rows a meet every row b at once, feature by feature, over a
// feature-major copy: the inner loop runs along b (independent sums, vectorized), and each
// feature's row of the copy is read once per eight rows a. The same sums in the same order.
// (Huge-page storage, engine/tensor.h: m x m and d x m doubles, 8 and 6 MB for 1,000 rows of 784.)
using Doubles = std::vector<double, CacheAligned<double>>;
Doubles pair_distances(const Tensor& f, const std::vector<int>& pick) {
  const int m = int(pick.size()), d = f.dim(1);
  Doubles by_feature(size_t(d) * m);
  for (int b = 0; b < m; ++b)
    for (int j = 0; j < d; ++j) by_feature[size_t(j) * m + b] = f.data()[size_t(pick[b]) * d + j];
  constexpr int kRows = 8;
  const int blocks = (m + kRows - 1) / kRows, T = std::max(1, std::min(threads(), blocks));
  Doubles sq(size_t(m) * m, 0.0);
  parallel(T, [&](int t) {
    int first, last;
    part(t, T, blocks, first, last);
    for (int q = first; q < last; ++q) {
      const int a0 = q * kRows, a1 = std::min(m, a0 + kRows);
      for (int j = 0; j < d; ++j) {
        const double* y = by_feature.data() + size_t(j) * m;
        for (int a = a0; a < a1; ++a) {
          const double x = y[a];
          double* s = sq.data() + size_t(a) * m;
          for (int b = a + 1; b < m; ++b) s[b] += (x - y[b]) * (x - y[b]);
        }
      }
    }
  });
  return sq;
}
}  // namespace

double median_heuristic_gamma(const Tensor& f, uint64_t seed) {
  const int n = f.batch(), m = std::min(n, 1000);
  std::vector<int> pick(n);
  for (int i = 0; i < n; ++i) pick[i] = i;
  Rng rng(seed);
  for (int i = 0; i < m; ++i) std::swap(pick[i], pick[i + rng.below(uint32_t(n - i))]);
  pick.resize(size_t(m));
  const Doubles all = pair_distances(f, pick);
  Doubles sq;
  sq.reserve(size_t(m) * (m - 1) / 2);
  for (int a = 0; a < m; ++a) sq.insert(sq.end(), all.begin() + size_t(a) * m + a + 1, all.begin() + size_t(a + 1) * m);
  if (sq.empty()) return 1.0;
  std::nth_element(sq.begin(), sq.begin() + sq.size() / 2, sq.end());
  const double median = sq[sq.size() / 2];
  if (!(median > 0)) throw std::invalid_argument("mmd-critic: half or more of the pairs of points are identical, so the median heuristic "
                                "gives no kernel width; set one with --param gamma=NUMBER");
  return 1.0 / (2.0 * median);
}

Prototypes mmd_critic_features(const Tensor& f, int prototypes, int criticisms, double gamma, bool logdet,
                               const Context& ctx) {
  if (f.rank() != 2) throw ShapeError("mmd-critic expects [n, d] features, got " + f.shape().str());
  const int n = f.batch();
  if (prototypes < 1 || criticisms < 0 || prototypes + criticisms > std::min(n, 1000))
    throw std::invalid_argument("mmd-critic: " + std::to_string(prototypes) + " prototypes and " +
                                std::to_string(criticisms) + " criticisms from " + std::to_string(n) +
                                " points (need 1 <= prototypes, prototypes + criticisms <= min(points, 1000))");
  if (!(gamma > 0) || !std::isfinite(gamma)) throw std::invalid_argument("mmd-critic: gamma must be a finite number > 0");
  const Kernel K(f, gamma);
  const std::vector<double> mean = column_means(K, ctx);
  Prototypes out;
  out.gamma = gamma;
  std::vector<char> taken(n, 0);
  std::vector<float> row(n);
  // Greedy prototypes. J_b(S ∪ {c}) − const depends on c through
  //   2 mean_c − (2 Σ_{j∈S} k(j, c) + k(c, c)) / (|S| + 1)   (Kim's greedy_select_protos),
  // so each step keeps Σ_{j∈S} k(j, ·) up to date with one kernel row.
  std::vector<double> near(n, 0.0);  // Σ_{j∈S} k(x_j, x_c)
  double within = 0;                 // Σ_{j,l∈S} k(x_j, x_l)
  double total_mean = 0;             // Σ_{j∈S} mean_j
  for (int step = 0; step < prototypes; ++step) {
    poll_interrupt();  // no forward passes to stop at
    int best = -1;
    double best_gain = -std::numeric_limits<double>::infinity();
    for (int c = 0; c < n; ++c) {
      if (taken[c]) continue;
      const double gain = 2 * mean[c] - (2 * near[c] + 1.0) / (step + 1);
      if (gain > best_gain) best_gain = gain, best = c;
    }
    taken[best] = 1;
    out.prototypes.push_back(best);
    K.rows(best, best + 1, row.data());
    within += 2 * near[best] + 1.0;
    total_mean += mean[best];
    for (int c = 0; c < n; ++c) near[c] += row[c];
    const double m = step + 1;
    out.objective.push_back(2 * total_mean / m - within / (m * m));
    report(ctx, "prototypes", step + 1, prototypes);
  }
  // Greedy criticisms: |witness(c)| plus, with logdet, the gain of log det K_CC from adding c,
  // log(k(c,c) − k_Cᵀ K_CC⁻¹ k_C) = log(1 − ‖y_c‖²) with y_c = L⁻¹ k_C(c) (L: Cholesky of K_CC),
  // kept for every candidate as one row of Y = L⁻¹ K_C,· per criticism.
  std::vector<std::vector<double>> Y;
  std::vector<double> schur(n, 1.0);  // 1 − ‖y_c‖²
  for (int step = 0; step < criticisms; ++step) {
    poll_interrupt();
    int best = -1;
    double best_value = -std::numeric_limits<double>::infinity();
    for (int c = 0; c < n; ++c) {
      if (taken[c]) continue;
      const double witness = mean[c] - near[c] / prototypes;
      const double value = std::fabs(witness) + (logdet ? std::log(std::max(schur[c], 1e-300)) : 0.0);
      if (value > best_value) best_value = value, best = c;
    }
    taken[best] = 1;
    out.criticisms.push_back(best);
    out.witness.push_back(mean[best] - near[best] / prototypes);
    K.rows(best, best + 1, row.data());
    // New row of Y: (k(best, ·) − Σ_r Y_r(best) Y_r(·)) / √schur(best).
    std::vector<double> y(n);
    const double pivot = std::sqrt(std::max(schur[best], 1e-300));
    for (int c = 0; c < n; ++c) {
      double v = row[c];
      for (const auto& prev : Y) v -= prev[best] * prev[c];
      y[c] = v / pivot;
    }
    for (int c = 0; c < n; ++c) schur[c] -= y[c] * y[c];
    Y.push_back(std::move(y));
    report(ctx, "criticisms", step + 1, criticisms);
  }
  return out;
}

Prototypes mmd_critic(Graph* model, const Tensor& x, int prototypes, int criticisms, const Params& params,
                      const Context& ctx) {
  const MethodInfo& info = prototype_methods()[0];
  ParamReader p(params, info);
  const std::string layer = p.text("layer"), g = p.text("gamma"), reg = p.text("regularizer");
  const int seed = p.integer("seed");
  p.done();
  if (reg != "logdet" && reg != "none")
    throw std::invalid_argument("mmd-critic: --param regularizer=" + reg + " (use logdet or none)");
  Tensor f;
  if (layer.empty()) {
    f = x.reshaped(Shape{x.batch(), int(x.sample_size())});
  } else {
    if (!model) throw std::invalid_argument("mmd-critic: --param layer=" + layer + " needs a model");
    const int node = activation_node(*model, layer, "mmd-critic");
    Tensor a = activations(*model, x, {node}, ctx.batch, [&](int done, int total) {
      report(ctx, "activations", done, total);
    })[0];
    f = a.reshaped(Shape{a.batch(), int(a.sample_size())});
  }
  for (size_t i = 0; i < f.size(); ++i)
    if (!std::isfinite(f[i])) throw std::invalid_argument("mmd-critic: point " + std::to_string(i / f.dim(1)) + " is not finite");
  double gamma = 0;
  if (g == "median") {
    gamma = median_heuristic_gamma(f, uint64_t(seed));
  } else {
    char* end = nullptr;
    gamma = std::strtod(g.c_str(), &end);
    if (g.empty() || *end || !(gamma > 0) || !std::isfinite(gamma))
      throw std::invalid_argument("mmd-critic: --param gamma=" + g + " (use median or a number > 0)");
    if (!explain::float32_finite(gamma))
      throw std::invalid_argument("mmd-critic: --param gamma=" + g + " is beyond float32's range (3.4e38)");
  }
  return mmd_critic_features(f, prototypes, criticisms, gamma, reg == "logdet", ctx);
}

const std::vector<MethodInfo>& prototype_methods() {
  static const std::vector<MethodInfo> infos = {
      {"mmd-critic",
       "prototypes that summarize a set and criticisms it explains worst (maximum mean discrepancy)",
       {{"layer", "", "compare points by a layer's activations (a layer name); empty: by pixels"},
        {"gamma", "median", "RBF kernel exp(-gamma ||a - b||^2): a number > 0, or median (1 / (2 median squared "
                            "distance) over pairs of at most 1000 seeded points)"},
        {"regularizer", "logdet", "criticisms' diversity term: logdet (log det of their kernel matrix) or none"},
        explain::seed_param("0", "seed of the points the median heuristic samples")},
       "Kim, Khanna & Koyejo 2016 and BeenKim/MMD-critic: greedy_select_protos (J_b) and "
       "select_criticism_regularized (|witness| + log det, reg='logdet'); Kim's code takes gamma as given and "
       "subtracts log k(c,c) at the first criticism where the paper adds it (both 0 for the RBF kernel); "
       "per class or over the whole set as the command chooses (Kim's 'local' kernel is per class)"}};
  return infos;
}

}  // namespace gb::explain::instances
