// Training examples as explanations (explain/instances/): last-layer influence against the closed
// form computed by hand, CG and LiSSA against the direct solve (last layer and the graph's exact
// Hessian-vector products), Koh & Liang's leave-one-out check, I_pert (in the training image's
// pixels, and pert_test in the test input's) against differences, TracIn with one checkpoint =
// lr × the gradient dot product, planted mislabelled points found by self-influence, representer
// values summing to the refitted logits, MMD-critic's greedy choices against brute force, nearest
// neighbours by hand, and the registry's declarations and errors.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>

#include "data/images.h"
#include "engine/architecture.h"
#include "engine/hvp.h"
#include "engine/layers.h"
#include "engine/loss.h"
#include "engine/passes.h"
#include "engine/threads.h"
#include "explain/instances/instances.h"
#include "explain/instances/mmd_critic.h"
#include "explain/instances/softmax_regression.h"
#include "explain/instances/solvers.h"
#include "tests/interrupt_checks.h"

using namespace gb;
using namespace gb::explain;
using namespace gb::explain::instances;

namespace {

Graph arch(const std::string& text, uint64_t seed = 5) {
  Graph g = graph_from_text(text);
  g.init(seed);
  Rng r(seed + 9);  // non-zero biases
  for (auto& [name, p] : g.named_params())
    if (name.ends_with(".bias"))
      for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 0.2f * (2 * r.uniform() - 1);
  return g;
}

// K Gaussian blobs in d dimensions, sample i of class i % K, centres on the axes at distance `gap`.
Examples blobs(int n, int K, int d, uint64_t seed, float gap = 2.f, float spread = 1.f) {
  Examples e{Tensor(Shape{n, d}), std::vector<int>(n)};
  Rng r(seed);
  for (int i = 0; i < n; ++i) {
    e.y[i] = i % K;
    const float centre = (e.y[i] / d) % 2 ? -gap : gap;  // class c sits on axis c % d, then on its negative side
    for (int j = 0; j < d; ++j) e.x[size_t(i) * d + j] = spread * r.normal() + (j == e.y[i] % d ? centre : 0.f);
  }
  return e;
}

Examples rows_of(const Examples& e, int b, int end) {
  return {e.x.slice(b, end).clone(), std::vector<int>(e.y.begin() + b, e.y.begin() + end)};
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = double(a.size());
  double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) * (a[i] - ma);
    bb += (b[i] - mb) * (b[i] - mb);
  }
  return ab / std::sqrt(aa * bb);
}

std::vector<double> row(const Tensor& t, int r) {
  const size_t n = t.rank() == 1 ? t.size() : t.sample_size();
  return std::vector<double>(t.data() + r * n, t.data() + (r + 1) * n);
}

double max_rel(const std::vector<double>& got, const std::vector<double>& want) {
  double m = 0, s = 1e-30;
  for (size_t i = 0; i < got.size(); ++i) m = std::max(m, std::fabs(got[i] - want[i])), s = std::max(s, std::fabs(want[i]));
  return m / s;
}

// Solves A x = b (n × n, row-major) by Gaussian elimination with partial pivoting.
std::vector<double> gauss_solve(std::vector<double> A, std::vector<double> b) {
  const int n = int(b.size());
  for (int c = 0; c < n; ++c) {
    int p = c;
    for (int r = c + 1; r < n; ++r)
      if (std::fabs(A[r * n + c]) > std::fabs(A[p * n + c])) p = r;
    for (int k = 0; k < n; ++k) std::swap(A[c * n + k], A[p * n + k]);
    std::swap(b[c], b[p]);
    for (int r = c + 1; r < n; ++r) {
      const double f = A[r * n + c] / A[c * n + c];
      for (int k = c; k < n; ++k) A[r * n + k] -= f * A[c * n + k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (int r = n - 1; r >= 0; --r) {
    double s = b[r];
    for (int k = r + 1; k < n; ++k) s -= A[r * n + k] * x[k];
    x[r] = s / A[r * n + r];
  }
  return x;
}

// Softmax regression z = W x + b by hand, in double: θ = (W [K×D] row-major, b [K]).
struct ByHand {
  int D, K;
  std::vector<double> theta;
  ByHand(const Dense& L) : D(L.in_features), K(L.out_features), theta(dense_theta(L)) {}
  std::vector<double> probs(const float* x) const {
    std::vector<double> z(K), p(K);
    double m = -1e300, s = 0;
    for (int k = 0; k < K; ++k) {
      z[k] = theta[K * D + k];
      for (int d = 0; d < D; ++d) z[k] += theta[k * D + d] * x[d];
      m = std::max(m, z[k]);
    }
    for (int k = 0; k < K; ++k) s += p[k] = std::exp(z[k] - m);
    for (double& v : p) v /= s;
    return p;
  }
  double loss(const float* x, int y) const { return -std::log(probs(x)[y]); }
  std::vector<double> grad(const float* x, int y) const {  // (p − e_y) ⊗ (x, 1)
    std::vector<double> p = probs(x), g(K * D + K);
    for (int k = 0; k < K; ++k) {
      const double r = p[k] - (k == y);
      for (int d = 0; d < D; ++d) g[k * D + d] = r * x[d];
      g[K * D + k] = r;
    }
    return g;
  }
  // Σ_i (diag p − p pᵀ) ⊗ x̃ x̃ᵀ, element by element.
  std::vector<double> hessian_sum(const Examples& e) const {
    const int P = K * D + K;
    std::vector<double> H(size_t(P) * P, 0.0);
    auto idx = [&](int k, int d) { return d < D ? k * D + d : K * D + k; };
    for (int i = 0; i < e.size(); ++i) {
      const float* x = e.x.data() + size_t(i) * D;
      const std::vector<double> p = probs(x);
      for (int k = 0; k < K; ++k)
        for (int l = 0; l < K; ++l)
          for (int d = 0; d <= D; ++d)
            for (int f = 0; f <= D; ++f)
              H[size_t(idx(k, d)) * P + idx(l, f)] +=
                  ((k == l) * p[k] - p[k] * p[l]) * (d < D ? x[d] : 1.0) * (f < D ? x[f] : 1.0);
    }
    return H;
  }
  // (1/n) g_tᵀ (H/n + λI)⁻¹ g_j for every training point j.
  std::vector<double> influence(const Examples& train, const float* xt, int yt, double lambda) const {
    const int P = K * D + K, n = train.size();
    std::vector<double> H = hessian_sum(train);
    for (double& v : H) v /= n;
    for (int j = 0; j < P; ++j) H[size_t(j) * P + j] += lambda;
    const std::vector<double> s = gauss_solve(H, grad(xt, yt));
    std::vector<double> out(n);
    for (int j = 0; j < n; ++j) {
      const std::vector<double> g = grad(train.x.data() + size_t(j) * D, train.y[j]);
      out[j] = std::inner_product(g.begin(), g.end(), s.begin(), 0.0) / n;
    }
    return out;
  }
};

Scores run(Graph& g, const Examples& train, const Examples& tests, const std::string& method, const Params& p,
           const Context& ctx = {}) {
  return gb::explain::instances::explain(g, train, tests, method, p, ctx);
}

// SGD on the summed-then-averaged cross-entropy in mini-batches, in a fixed order; calls
// snapshot(epoch) after each epoch.
void train_sgd(Graph& g, const Examples& d, int epochs, float lr, int batch,
               const std::function<void(int)>& snapshot = {}) {
  BackwardOptions bo;
  bo.param_grads = true;
  bo.input_grad = false;
  Tensor grad;
  Rng r(17);
  std::vector<int> order(d.size());
  std::iota(order.begin(), order.end(), 0);
  for (int e = 1; e <= epochs; ++e) {
    for (int i = d.size(); i > 1; --i) std::swap(order[i - 1], order[r.below(uint32_t(i))]);
    for (int b = 0; b < d.size(); b += batch) {
      const int m = std::min(batch, d.size() - b);
      Tensor x(Shape::batch_of(m, d.x.shape().sample()));
      std::vector<int> y(m);
      for (int k = 0; k < m; ++k) {
        std::copy_n(d.x.data() + order[b + k] * d.x.sample_size(), d.x.sample_size(), x.data() + k * d.x.sample_size());
        y[k] = d.y[order[b + k]];
      }
      g.zero_grad();
      softmax_cross_entropy(g.forward(x), y, &grad);
      g.backward(grad, bo);
      for (auto& [name, p] : g.named_params())
        if (p->trainable)
          for (size_t i = 0; i < p->value.size(); ++i) p->value[i] -= lr * p->grad[i];
    }
    if (snapshot) snapshot(e);
  }
}

Checkpoint snapshot(const Graph& g, const std::string& name, double lr) {
  Checkpoint c{name, {}, lr};
  for (auto& [n, p] : g.named_params()) c.params[n] = p->value.clone();
  return c;
}

// A softmax-regression model fitted to the end (Newton) with L2 weight l2.
Graph fitted_softmax(const Examples& train, int K, double l2) {
  Graph g = arch("input(" + std::to_string(train.x.dim(1)) + ") dense(" + std::to_string(K) + ")");
  Dense& L = static_cast<Dense&>(g.layer(0));
  SoftmaxRegression m(train.x, K, true);
  std::vector<double> t(size_t(train.size()) * K, 0.0);
  for (int i = 0; i < train.size(); ++i) t[size_t(i) * K + train.y[i]] = 1;
  set_dense_theta(L, fit_softmax_regression(m, t, nullptr, l2, dense_theta(L), 100, 1e-10).theta);
  return g;
}

}  // namespace

TEST_CASE("softmax regression: the Hessian, its products and the gradients equal the formulas by hand") {
  const Examples d = blobs(23, 3, 4, 1);
  Graph g = arch("input(4) dense(3)");
  const ByHand h(static_cast<Dense&>(g.layer(0)));
  SoftmaxRegression m(d.x, 3, true);
  std::vector<double> z, p;
  m.logits(h.theta, z);
  SoftmaxRegression::softmax(z, 3, p);
  const SymmetricMatrix H = m.hessian(p);
  CHECK(max_rel(H.a, h.hessian_sum(d)) < 1e-6);
  Rng r(3);
  std::vector<double> v(m.size()), Hv(m.size()), want(m.size(), 0.0);
  for (double& e : v) e = r.uniform() - 0.5;
  m.hessian_product(p, nullptr, v.data(), Hv.data());
  for (int i = 0; i < m.size(); ++i)
    for (int j = 0; j < m.size(); ++j) want[i] += H.at(i, j) * v[j];
  CHECK(max_rel(Hv, want) < 1e-6);
  // Residuals p − e_y: the gradient sums the rows' gradients, and dots are each row's gradient · v.
  std::vector<double> res = p, grad(m.size()), dots(d.size()), rows(size_t(d.size()) * m.size());
  for (int i = 0; i < d.size(); ++i) res[i * 3 + d.y[i]] -= 1;
  m.gradient(res, nullptr, grad.data());
  m.dots(res, v.data(), dots.data());
  m.row_gradients(res, 0, d.size(), rows.data());
  std::vector<double> sum(m.size(), 0.0);
  for (int i = 0; i < d.size(); ++i) {
    const std::vector<double> gi = h.grad(d.x.data() + i * 4, d.y[i]);
    CHECK(max_rel(std::vector<double>(rows.begin() + i * m.size(), rows.begin() + (i + 1) * m.size()), gi) < 1e-6);
    CHECK(dots[i] == doctest::Approx(std::inner_product(gi.begin(), gi.end(), v.begin(), 0.0)).epsilon(1e-9));
    for (int j = 0; j < m.size(); ++j) sum[j] += gi[j];
  }
  CHECK(max_rel(grad, sum) < 1e-9);
}

TEST_CASE("softmax regression: Newton's fit goes on below what comparing objectives resolves, in a few steps") {
  // On 30,000 rows the objective (a mean of rounded terms near 1) resolves changes of about 1e-15,
  // and once the gradient is near 1e-8 a Newton step promises less than that: a line search on the
  // objective alone then rejects every step and the fit stalls there until its iteration limit.
  const int n = 30000, K = 3, D = 6;
  const Examples d = blobs(n, K, D, 11, 14.f, 20.f);  // large features: a strongly curved objective
  SoftmaxRegression m(d.x, K, true);
  std::vector<double> t(size_t(n) * K, 0.0);
  for (int i = 0; i < n; ++i) t[size_t(i) * K + d.y[i]] = 1;
  Graph g = arch("input(6) dense(3)");
  const SoftmaxFit f = fit_softmax_regression(m, t, nullptr, 1e-4, dense_theta(static_cast<Dense&>(g.layer(0))), 40, 1e-13);
  MESSAGE("Newton iterations ", f.iterations, ", largest gradient component ", f.gradient_norm);
  CHECK(f.gradient_norm <= 1e-13);
  CHECK(f.iterations <= 20);  // a stalled fit runs to its limit, 40
}

TEST_CASE("influence: the last layer equals the closed form by hand; CG and LiSSA agree with the direct solve") {
  const Examples train = blobs(40, 3, 4, 2), tests = rows_of(blobs(3, 3, 4, 9), 0, 3);
  Graph g = arch("input(4) dense(3)");
  const ByHand h(static_cast<Dense&>(g.layer(0)));
  const Scores direct = run(g, train, tests, "influence", {{"damping", "0.05"}});
  REQUIRE(direct.scores.shape() == Shape({3, 40}));
  for (int t = 0; t < 3; ++t)
    CHECK(max_rel(row(direct.scores, t), h.influence(train, tests.x.data() + t * 4, tests.y[t], 0.05)) < 1e-5);
  const Scores cg = run(g, train, tests, "influence", {{"damping", "0.05"}, {"solver", "cg"}});
  // LiSSA with every point in each batch is deterministic and converges geometrically.
  const Scores full = run(g, train, tests, "influence",
                          {{"damping", "0.05"}, {"solver", "lissa"}, {"lissa_batch", "40"}, {"lissa_samples", "1"},
                           {"lissa_depth", "3000"}, {"lissa_scale", "5"}});
  // Stochastic LiSSA (Koh & Liang's batch of 1) agrees in ranking.
  const Scores noisy = run(g, train, tests, "influence",
                           {{"damping", "0.05"}, {"solver", "lissa"}, {"lissa_scale", "10"}, {"lissa_depth", "2000"},
                            {"lissa_samples", "30"}});
  for (int t = 0; t < 3; ++t) {
    CHECK(max_rel(row(cg.scores, t), row(direct.scores, t)) < 1e-5);
    CHECK(max_rel(row(full.scores, t), row(direct.scores, t)) < 1e-4);
    CHECK(pearson(row(noisy.scores, t), row(direct.scores, t)) > 0.98);
    CHECK(cg.details[t].at("solver_iterations") <= 20);  // 15 unknowns: CG ends in about 15 steps
  }
  // The same seed gives the same stochastic estimate.
  const Scores again = run(g, train, tests, "influence",
                           {{"damping", "0.05"}, {"solver", "lissa"}, {"lissa_scale", "10"}, {"lissa_depth", "2000"},
                            {"lissa_samples", "30"}});
  CHECK(row(again.scores, 0) == row(noisy.scores, 0));
}

TEST_CASE("LiSSA: converges over batch Hessians of either sign, stops with an error on negative curvature") {
  // Two points whose Hessians are diagonal: the mean has eigenvalues {1, 0.3, μ + ν} (per case).
  auto product = [](double mu, double nu) -> BatchProduct {
    return [mu, nu](const std::vector<int>& points, const double* v, double* out) {
      const double d[2][3] = {{1.5, 0.2, mu + nu}, {0.5, 0.4, mu - nu}};
      for (int i = 0; i < 3; ++i) out[i] = 0;
      for (int p : points)
        for (int i = 0; i < 3; ++i) out[i] += d[p][i] * v[i] / double(points.size());
    };
  };
  const std::vector<double> b = {1, -2, 0.5};
  LissaOptions o;
  o.damping = 0.01;
  o.depth = 5000;
  o.samples = 3;
  o.seed = 4;
  std::vector<double> x;
  lissa(product(0.25, 0.25), 2, b, x, o);  // batch 1: each step one point's Hessian, both PSD
  const double want[3] = {1 / 1.01, -2 / 0.31, 0.5 / 0.26};
  for (int i = 0; i < 3; ++i) CHECK(x[i] == doctest::Approx(want[i]).epsilon(0.05));
  // 10,000 points curving +1 or −1 along the last axis, a mean of 0 (damped: positive definite):
  // batches of one walk h above (scale/λ)‖b‖ (in a simulation of this case the largest ‖h‖ was
  // 1.7x that in the median recursion, 10x in 1 of 40), and the recursion must not be stopped.
  const BatchProduct signs = [](const std::vector<int>& points, const double* v, double* out) {
    out[0] = out[1] = out[2] = 0;
    for (int p : points) {
      out[0] += v[0], out[1] += 0.3 * v[1], out[2] += (p % 2 ? 1.0 : -1.0) * v[2];
    }
    for (int i = 0; i < 3; ++i) out[i] /= double(points.size());
  };
  const std::vector<double> along = {0, 0, 1};
  for (uint64_t seed = 0; seed < 20; ++seed) {
    o.seed = seed;
    CHECK_NOTHROW(lissa(signs, 10000, along, x, o));
  }
  o.seed = 4;
  // A mean of −0.135: (H + λI) has the eigenvalue −0.125, so h grows by 1 + 0.005 a step: about
  // e^25 in 5,000 steps, short of the 1e15·‖b‖ an overflow check allowed, but past
  // 1000·scale/λ·‖b‖ after about 3,000.
  CHECK_THROWS_WITH(lissa(product(-0.135, 0.0), 2, b, x, o), doctest::Contains("negative curvature"));
  o.batch = 2;  // the exact mean Hessian each step: the same
  CHECK_THROWS_WITH(lissa(product(-0.135, 0.0), 2, b, x, o), doctest::Contains("LiSSA diverged"));
  CHECK_NOTHROW(lissa(product(0.0, 0.0), 2, b, x, o));  // a zero eigenvalue, damped: converges
}

TEST_CASE("influence: chosen layers through the graph's Hessian-vector products, CG and LiSSA against the explicit solve") {
  const Examples train = blobs(30, 3, 3, 4), tests = rows_of(blobs(2, 3, 3, 5), 0, 2);
  Graph g = arch("input(3) dense(4) tanh dense(3)");
  train_sgd(g, train, 40, 0.1f, 5);  // near a minimum, where the damped Hessian is positive definite
  const ParamSlice s = param_slice(g, {0, 2});
  const int P = int(s.size);
  // H (mean) column by column from exact products, then (H + λI)⁻¹ g_test by elimination.
  std::vector<double> H(size_t(P) * P);
  std::vector<float> e(P), col(P);
  for (int j = 0; j < P; ++j) {
    std::fill(e.begin(), e.end(), 0.f);
    e[j] = 1;
    hessian_vector_product(g, train.x, train.y, s, e.data(), col.data());
    for (int i = 0; i < P; ++i) H[size_t(i) * P + j] = col[i] / 30.0;
  }
  for (int j = 0; j < P; ++j) H[size_t(j) * P + j] += 0.1;
  Tensor Gt = per_sample_param_grads(g, tests.x, [&] {
    Tensor seed;
    softmax_cross_entropy(g.forward(tests.x), tests.y, &seed, Reduction::sum);
    return seed;
  }(), {0, 2});
  Tensor seed;
  softmax_cross_entropy(g.forward(train.x), train.y, &seed, Reduction::sum);
  const Tensor G = per_sample_param_grads(g, train.x, seed, {0, 2});
  const Scores cg = run(g, train, tests, "influence", {{"layers", "all"}, {"solver", "cg"}, {"damping", "0.1"}});
  const Scores li = run(g, train, tests, "influence",
                        {{"layers", "dense1,dense2"}, {"solver", "lissa"}, {"damping", "0.1"}, {"lissa_batch", "30"},
                         {"lissa_samples", "1"}, {"lissa_depth", "3000"}, {"lissa_scale", "10"}});
  for (int t = 0; t < 2; ++t) {
    const std::vector<double> sol = gauss_solve(H, row(Gt, t));
    std::vector<double> want(30);
    for (int j = 0; j < 30; ++j) {
      const std::vector<double> gj = row(G, j);
      want[j] = std::inner_product(gj.begin(), gj.end(), sol.begin(), 0.0) / 30;
    }
    CHECK(max_rel(row(cg.scores, t), want) < 1e-4);
    CHECK(max_rel(row(li.scores, t), want) < 1e-3);
  }
  CHECK_THROWS_WITH_AS(run(g, train, tests, "influence", {{"layers", "all"}}),
                       doctest::Contains("last layer only"), std::invalid_argument);
}

TEST_CASE("influence: predicted vs actual leave-one-out loss change on a convex model, Pearson r > 0.95") {
  // Koh & Liang's Fig. 2 check: softmax regression fitted to optimality with L2 weight λ; removing
  // training point j and refitting (same objective, w_j = 0) changes the test loss by about the
  // influence score (1/n) ∇L_testᵀ (H + λI)⁻¹ ∇L(z_j).
  const double l2 = 0.02;
  const Examples train = blobs(60, 3, 5, 6, 1.2f), test = rows_of(blobs(4, 3, 5, 7, 1.2f), 1, 2);
  Graph g = fitted_softmax(train, 3, l2);
  const Scores s = run(g, train, test, "influence", {{"damping", std::to_string(l2)}});
  SoftmaxRegression m(train.x, 3, true);
  std::vector<double> t(180, 0.0);
  for (int i = 0; i < 60; ++i) t[i * 3 + train.y[i]] = 1;
  const std::vector<double> theta = dense_theta(static_cast<Dense&>(g.layer(0)));
  auto test_loss = [&](const std::vector<double>& th) {
    Graph h = arch("input(5) dense(3)");
    set_dense_theta(static_cast<Dense&>(h.layer(0)), th);
    return ByHand(static_cast<Dense&>(h.layer(0))).loss(test.x.data(), test.y[0]);
  };
  const double base = test_loss(theta);
  std::vector<double> predicted, actual;
  for (int j = 0; j < 60; ++j) {
    std::vector<double> w(60, 1.0);
    w[j] = 0;
    const SoftmaxFit f = fit_softmax_regression(m, t, &w, l2, theta, 100, 1e-12);
    actual.push_back(test_loss(f.theta) - base);
    predicted.push_back(s.scores[j]);
  }
  const double r = pearson(predicted, actual);
  MESSAGE("leave-one-out Pearson r = ", r);
  CHECK(r > 0.95);
  // The scale matches too, not only the ranking: least-squares slope near 1.
  double pa = 0, pp = 0;
  for (int j = 0; j < 60; ++j) pa += predicted[j] * actual[j], pp += predicted[j] * predicted[j];
  CHECK(pa / pp == doctest::Approx(1.0).epsilon(0.15));
  // The library's check (glassbox influence --loo) refits the same way: the model is at the
  // optimum already, so its points are the 10 largest |score| with the same predictions and refits.
  const std::vector<LeaveOneOut> loo = leave_one_out(g, train, test, l2, 10);
  REQUIRE(loo.size() == 1);
  CHECK(loo[0].pearson > 0.95);
  for (int k = 0; k < 10; ++k) {
    const int j = loo[0].index[k];
    CHECK(std::fabs(predicted[j]) >= std::fabs(predicted[loo[0].index.back()]));
    CHECK(loo[0].predicted[k] == doctest::Approx(predicted[j]).epsilon(1e-4));
    CHECK(loo[0].actual[k] == doctest::Approx(actual[j]).epsilon(1e-4));
  }
  CHECK_THROWS_WITH_AS(leave_one_out(g, train, test, 0.0, 10), doctest::Contains("must be > 0"), std::invalid_argument);
}

TEST_CASE("influence: I_pert equals central differences of the score in the training image's pixels") {
  const Examples train = blobs(20, 3, 4, 8), tests = rows_of(blobs(2, 3, 4, 10), 0, 1);
  Graph g = arch("input(4) dense(3)");
  const ByHand h(static_cast<Dense&>(g.layer(0)));
  const Scores s = run(g, train, tests, "influence", {{"damping", "0.1"}, {"pert_top", "2"}});
  const Tensor& pert = s.extra.at("pert");
  const Tensor& index = s.extra.at("pert_index");
  REQUIRE(pert.shape() == Shape({4, 4}));
  // s_test by hand; the score of z is (1/n) s_testᵀ ∇L(z), so I_pert = −∂score/∂x_z.
  std::vector<double> H = h.hessian_sum(train);
  for (double& v : H) v /= 20;
  for (int j = 0; j < 15; ++j) H[size_t(j) * 15 + j] += 0.1;
  const std::vector<double> st = gauss_solve(H, h.grad(tests.x.data(), tests.y[0]));
  const std::vector<double> sc = row(s.scores, 0);
  CHECK(index[0] == float(std::max_element(sc.begin(), sc.end()) - sc.begin()));  // most helpful first
  CHECK(index[2] == float(std::min_element(sc.begin(), sc.end()) - sc.begin()));  // most harmful first
  for (int k = 0; k < 4; ++k) {
    const int j = int(index[k]);
    for (int px = 0; px < 4; ++px) {
      std::vector<float> x(train.x.data() + j * 4, train.x.data() + j * 4 + 4);
      auto score = [&](float dx) {
        std::vector<float> xp = x;
        xp[px] += dx;
        const std::vector<double> gj = h.grad(xp.data(), train.y[j]);
        return std::inner_product(gj.begin(), gj.end(), st.begin(), 0.0) / 20;
      };
      const double fd = -(score(1e-3f) - score(-1e-3f)) / 2e-3;
      CHECK(pert[k * 4 + px] == doctest::Approx(fd).epsilon(2e-3).scale(1e-4));
    }
  }
}

TEST_CASE("influence: pert_test equals central differences of the score in the test input's pixels") {
  // The last layer, direct solve: u_z = (H + λI)⁻¹ ∇L(z) by hand, score(z) = (1/n) u_zᵀ ∇L(x_test).
  const Examples train = blobs(20, 3, 4, 8), tests = rows_of(blobs(4, 3, 4, 10), 0, 2);
  Graph g = arch("input(4) dense(3)");
  const ByHand h(static_cast<Dense&>(g.layer(0)));
  const Scores s = run(g, train, tests, "influence", {{"damping", "0.1"}, {"pert_test", "2"}});
  const Tensor& pert = s.extra.at("pert_test");
  const Tensor& index = s.extra.at("pert_test_index");
  REQUIRE(pert.shape() == Shape({8, 4}));  // [tests · 2k, input...], as pert_top's maps
  REQUIRE(index.shape() == Shape({2, 4}));
  CHECK(s.extra.count("pert") == 0);
  std::vector<double> H = h.hessian_sum(train);
  for (double& v : H) v /= 20;
  for (int j = 0; j < 15; ++j) H[size_t(j) * 15 + j] += 0.1;
  double largest = 0, worst = 0;
  for (int t = 0; t < 2; ++t) {
    const std::vector<double> sc = row(s.scores, t);
    CHECK(index[t * 4] == float(std::max_element(sc.begin(), sc.end()) - sc.begin()));      // most helpful first
    CHECK(index[t * 4 + 2] == float(std::min_element(sc.begin(), sc.end()) - sc.begin()));  // most harmful first
    for (int k = 0; k < 4; ++k) {
      const int j = int(index[t * 4 + k]);
      const std::vector<double> u = gauss_solve(H, h.grad(train.x.data() + j * 4, train.y[j]));
      const std::vector<float> x(tests.x.data() + t * 4, tests.x.data() + t * 4 + 4);
      auto score = [&](float dx, int px) {
        std::vector<float> xp = x;
        xp[px] += dx;
        const std::vector<double> gt = h.grad(xp.data(), tests.y[t]);
        return std::inner_product(gt.begin(), gt.end(), u.begin(), 0.0) / 20;
      };
      CHECK(score(0, 0) == doctest::Approx(sc[j]).epsilon(1e-4));  // the same score the method gave
      for (int px = 0; px < 4; ++px) {
        const double fd = -(score(1e-3f, px) - score(-1e-3f, px)) / 2e-3;
        largest = std::max(largest, std::fabs(fd));
        worst = std::max(worst, std::fabs(pert[(t * 4 + k) * 4 + px] - fd));
        CHECK(pert[(t * 4 + k) * 4 + px] == doctest::Approx(fd).epsilon(2e-3).scale(1e-4));
      }
    }
  }
  MESSAGE("pert_test, last layer: max |map - central difference| = ", worst, " (largest |central difference| ", largest, ")");
  CHECK(largest > 1e-2);  // the maps are not all (near) zero

  // Any layers through the graph's products and CG: differences of the method's own scores.
  const Examples train2 = blobs(30, 3, 3, 4), tests2 = rows_of(blobs(2, 3, 3, 5), 0, 1);
  Graph g2 = arch("input(3) dense(4) tanh dense(3)");
  train_sgd(g2, train2, 40, 0.1f, 5);
  const Params p = {{"layers", "all"}, {"solver", "cg"}, {"damping", "0.1"}, {"cg_tolerance", "1e-9"}};
  Params with = p;
  with["pert_test"] = "1";
  const Scores s2 = run(g2, train2, tests2, "influence", with);
  REQUIRE(s2.extra.at("pert_test").shape() == Shape({2, 3}));
  CHECK(s2.details[0].count("pert_test_solver_residual_max"));
  CHECK(s2.info.at("pert_test_solves") == 2);
  double largest2 = 0, worst2 = 0;
  for (int k = 0; k < 2; ++k) {
    const int j = int(s2.extra.at("pert_test_index")[k]);
    for (int px = 0; px < 3; ++px) {
      auto score = [&](float dx) {
        Examples moved = tests2;
        moved.x = tests2.x.clone();
        moved.x[px] += dx;
        return double(run(g2, train2, moved, "influence", p).scores[j]);
      };
      const double fd = -(score(1e-2f) - score(-1e-2f)) / 2e-2;
      largest2 = std::max(largest2, std::fabs(fd));
      worst2 = std::max(worst2, std::fabs(s2.extra.at("pert_test")[k * 3 + px] - fd));
      CHECK(s2.extra.at("pert_test")[k * 3 + px] == doctest::Approx(fd).epsilon(1e-2).scale(1e-3));
    }
  }
  MESSAGE("pert_test, all layers (CG): max |map - central difference| = ", worst2, " (largest |central difference| ", largest2, ")");
  CHECK(largest2 > 1e-3);
  CHECK_THROWS_WITH_AS(run(g, train, tests, "influence", {{"damping", "0.1"}, {"pert_test", "65"}}),
                       doctest::Contains("pert_test=65 outside [0, 64]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(self_influence(g, train, "influence", {{"damping", "0.1"}, {"pert_test", "1"}}),
                       doctest::Contains("pert_test applies to test inputs"), std::invalid_argument);
}

TEST_CASE("tracin: one checkpoint is lr times the dot product of the two loss gradients") {
  const Examples train = blobs(12, 3, 2, 11), tests = rows_of(blobs(3, 3, 2, 12), 0, 2);
  Graph g = arch("input(2) dense(5) tanh dense(3)");
  auto grad_of = [&](const Tensor& x, int y) {  // one sample's loss gradient, through the ordinary backward pass
    g.zero_grad();
    Tensor seed;
    softmax_cross_entropy(g.forward(x), {y}, &seed);
    BackwardOptions bo;
    bo.param_grads = true;
    g.backward(seed, bo);
    std::vector<double> v;
    for (auto& [n, p] : g.named_params())
      for (size_t i = 0; i < p->grad.size(); ++i) v.push_back(p->grad[i]);
    return v;
  };
  const std::vector<Checkpoint> one = {snapshot(g, "ckpt1", 0.05)};
  Context ctx;
  ctx.checkpoints = &one;
  ctx.batch = 5;  // several batches of the training set
  const Scores s = run(g, train, tests, "tracin", {}, ctx);
  for (int t = 0; t < 2; ++t) {
    const std::vector<double> gt = grad_of(tests.x.sample(t), tests.y[t]);
    for (int j = 0; j < 12; ++j) {
      const std::vector<double> gj = grad_of(train.x.sample(j), train.y[j]);
      CHECK(s.scores[t * 12 + j] == doctest::Approx(0.05 * std::inner_product(gt.begin(), gt.end(), gj.begin(), 0.0)).epsilon(1e-4));
    }
  }
  // Two checkpoints add; --param lr replaces the stored rates; the model is left as it was.
  Graph other = arch("input(2) dense(5) tanh dense(3)", 77);
  const std::vector<Checkpoint> two = {one[0], snapshot(other, "ckpt2", 0.1)};
  ctx.checkpoints = &two;
  const std::vector<float> before(g.named_params()[0].second->value.data(), g.named_params()[0].second->value.data() + 10);
  const Scores both = run(g, train, tests, "tracin", {}, ctx);
  const Scores lr1 = run(g, train, tests, "tracin", {{"lr", "1"}}, ctx);
  const std::vector<float> after(g.named_params()[0].second->value.data(), g.named_params()[0].second->value.data() + 10);
  CHECK(before == after);
  Graph& h = other;
  std::vector<Checkpoint> only2 = {two[1]};
  ctx.checkpoints = &only2;
  const Scores second = run(h, train, tests, "tracin", {}, ctx);
  for (int i = 0; i < 24; ++i) {
    CHECK(both.scores[i] == doctest::Approx(s.scores[i] + second.scores[i]).epsilon(1e-5));
    CHECK(lr1.scores[i] == doctest::Approx(s.scores[i] / 0.05 + second.scores[i] / 0.1).epsilon(1e-4));
  }
  // Self-influence: lr ‖∇L(z)‖² per checkpoint.
  ctx.checkpoints = &one;
  const Scores self = self_influence(g, train, "tracin", {}, ctx);
  for (int j = 0; j < 12; ++j) {
    const std::vector<double> gj = grad_of(train.x.sample(j), train.y[j]);
    CHECK(self.scores[j] == doctest::Approx(0.05 * std::inner_product(gj.begin(), gj.end(), gj.begin(), 0.0)).epsilon(1e-4));
  }
}

TEST_CASE("influence: last-layer self-influence is (1/n) ∇L(z)ᵀ (H + λI)⁻¹ ∇L(z) by hand") {
  const Examples train = blobs(25, 3, 4, 24);
  Graph g = arch("input(4) dense(3)");
  const ByHand h(static_cast<Dense&>(g.layer(0)));
  const Scores s = self_influence(g, train, "influence", {{"damping", "0.05"}});
  REQUIRE(s.scores.shape() == Shape({25}));
  for (int j = 0; j < 25; ++j)
    CHECK(s.scores[j] == doctest::Approx(h.influence(train, train.x.data() + j * 4, train.y[j], 0.05)[j]).epsilon(1e-5));
}

TEST_CASE("self-influence finds planted mislabelled training points (TracIn and last-layer influence)") {
  Examples train = blobs(120, 3, 2, 13, 3.f, 0.6f);
  const std::set<int> flipped = {5, 17, 40, 66, 91, 110};
  for (int i : flipped) train.y[i] = (train.y[i] + 1) % 3;
  Graph g = arch("input(2) dense(16) tanh dense(3)");
  std::vector<Checkpoint> ckpts;
  train_sgd(g, train, 30, 0.1f, 10, [&](int epoch) {
    if (epoch % 10 == 0) ckpts.push_back(snapshot(g, "epoch" + std::to_string(epoch), 0.1));
  });
  Context ctx;
  ctx.checkpoints = &ckpts;
  auto top_hits = [&](const Tensor& scores) {
    std::vector<int> order(120);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
    int hits = 0;
    for (int k = 0; k < int(flipped.size()); ++k) hits += flipped.count(order[k]);
    return hits;
  };
  const Scores tracin = self_influence(g, train, "tracin", {}, ctx);
  const Scores influence = self_influence(g, train, "influence", {});
  CHECK(top_hits(tracin.scores) >= 5);  // of the 6 planted, among the 6 highest
  CHECK(top_hits(influence.scores) >= 5);
  CHECK_THROWS_WITH_AS(self_influence(g, train, "knn", {}), doctest::Contains("methods with one: influence, tracin"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(self_influence(g, train, "influence", {{"solver", "cg"}}),
                       doctest::Contains("direct solver only"), std::invalid_argument);
}

TEST_CASE("representer: values sum to the refitted logits, alpha makes the refit stationary") {
  const Examples train = blobs(50, 3, 4, 14), tests = rows_of(blobs(4, 3, 4, 15), 0, 4);
  Graph g = arch("input(4) dense(6) relu dense(3)");
  for (const std::string targets : {"model", "labels"}) {
    CAPTURE(targets);
    const Scores s = run(g, train, tests, "representer", {{"targets", targets}, {"lambda", "0.01"}});
    CHECK(s.info.at("gradient_norm") < 1e-7);
    for (int t = 0; t < 4; ++t) {
      const auto& d = s.details[t];
      const std::vector<double> r = row(s.scores, t);
      CHECK(std::accumulate(r.begin(), r.end(), 0.0) == doctest::Approx(d.at("logit_refitted")).epsilon(1e-5));
      CHECK(d.at("relative_residual") < 1e-5);
    }
    // α by hand: −(p − t)/(2λn) at the refit, and W* = Σ α f̃ᵀ is what the refit's logits use.
    const Tensor& alpha = s.extra.at("alpha");
    REQUIRE(alpha.shape() == Shape({50, 3}));
    double sum = 0;
    for (size_t i = 0; i < alpha.size(); ++i) sum += alpha[i];
    CHECK(std::fabs(sum) < 1e-6);  // each row of p − t sums to zero
    if (targets != "labels") continue;
    // The refit's weights from α (W*_c = Σ_j α_jc f̃_j, f̃ = [features, 1]), its softmax p_j at each
    // training point, and α_jc = −(p_jc − [y_j = c]) / (2λn) again: the 1/(2λn) factor included.
    const Tensor f = activations(g, train.x, {1})[0];  // relu1, [50, 6]
    double W[3][7] = {};
    for (int j = 0; j < 50; ++j)
      for (int c = 0; c < 3; ++c)
        for (int q = 0; q < 7; ++q) W[c][q] += alpha[j * 3 + c] * (q < 6 ? double(f[j * 6 + q]) : 1.0);
    for (int j : {0, 11, 29, 49}) {
      double z[3], zmax = -1e300, Z = 0;
      for (int c = 0; c < 3; ++c) {
        z[c] = W[c][6];
        for (int q = 0; q < 6; ++q) z[c] += W[c][q] * f[j * 6 + q];
        zmax = std::max(zmax, z[c]);
      }
      for (int c = 0; c < 3; ++c) Z += std::exp(z[c] - zmax);
      for (int c = 0; c < 3; ++c) {
        const double p = std::exp(z[c] - zmax) / Z, want = -(p - (train.y[j] == c)) / (2 * 0.01 * 50);
        CHECK(alpha[j * 3 + c] == doctest::Approx(want).epsilon(1e-4));
      }
    }
  }
  // With labels as targets, the representer values of a test point's class are α_{j,c} f_j·f_t:
  // check one by hand from the features.
  const Scores s = run(g, train, tests, "representer", {{"targets", "labels"}, {"lambda", "0.01"}});
  const Tensor f = activations(g, train.x, {1})[0], ft = activations(g, tests.x, {1})[0];  // relu1
  for (int j : {0, 7, 33}) {
    double k = 1.0;  // the bias input
    for (int q = 0; q < 6; ++q) k += double(f[j * 6 + q]) * ft[q];
    CHECK(s.scores[j] == doctest::Approx(s.extra.at("alpha")[j * 3 + tests.y[0]] * k).epsilon(1e-5));
  }
}

TEST_CASE("knn: cosine and L2 scores by hand; a duplicate is its own nearest neighbour") {
  const Examples train = blobs(10, 2, 3, 16);
  Examples tests = rows_of(train, 4, 6);
  Graph g = arch("input(3) dense(4) relu dense(2)");
  const Scores cos = run(g, train, tests, "knn", {{"layer", "input"}});
  const Scores l2 = run(g, train, tests, "knn", {{"layer", "input"}, {"metric", "l2"}});
  for (int t = 0; t < 2; ++t)
    for (int j = 0; j < 10; ++j) {
      double dot = 0, na = 0, nb = 0, dist = 0;
      for (int q = 0; q < 3; ++q) {
        const double a = train.x[j * 3 + q], b = tests.x[t * 3 + q];
        dot += a * b, na += a * a, nb += b * b, dist += (a - b) * (a - b);
      }
      CHECK(cos.scores[t * 10 + j] == doctest::Approx(dot / std::sqrt(na * nb)).epsilon(1e-5));
      CHECK(l2.scores[t * 10 + j] == doctest::Approx(-std::sqrt(dist)).epsilon(1e-5));
    }
  for (const Scores* s : {&cos, &l2}) {
    const std::vector<double> r = row(s->scores, 0);
    CHECK(std::max_element(r.begin(), r.end()) - r.begin() == 4);
  }
  const Scores hidden = run(g, train, tests, "knn", {});  // the last dense layer's input: relu1
  CHECK(hidden.info.at("dimensions") == 4);
}

namespace {
double kernel(const Tensor& f, int a, int b, double gamma) {
  double s = 0;
  for (int j = 0; j < f.dim(1); ++j) s += (double(f[a * f.dim(1) + j]) - f[b * f.dim(1) + j]) * (double(f[a * f.dim(1) + j]) - f[b * f.dim(1) + j]);
  return std::exp(-gamma * s);
}
// J_b(S) from its definition.
double J(const Tensor& f, const std::vector<int>& S, double gamma) {
  const int n = f.batch();
  double a = 0, b = 0;
  for (int i = 0; i < n; ++i)
    for (int j : S) a += kernel(f, i, j, gamma);
  for (int j : S)
    for (int l : S) b += kernel(f, j, l, gamma);
  return 2 * a / (n * double(S.size())) - b / (double(S.size()) * S.size());
}
double logdet(const Tensor& f, const std::vector<int>& C, double gamma) {
  std::vector<double> A;
  for (int a : C)
    for (int b : C) A.push_back(kernel(f, a, b, gamma));
  const int n = int(C.size());
  double ld = 0;  // Cholesky
  for (int j = 0; j < n; ++j) {
    for (int k = 0; k < j; ++k) A[j * n + j] -= A[j * n + k] * A[j * n + k];
    const double d = std::sqrt(A[j * n + j]);
    ld += 2 * std::log(d);
    for (int i = j + 1; i < n; ++i) {
      for (int k = 0; k < j; ++k) A[i * n + j] -= A[i * n + k] * A[j * n + k];
      A[i * n + j] /= d;
    }
  }
  return ld;
}
}  // namespace

TEST_CASE("mmd-critic: greedy steps are the brute-force best; on clusters the set is the global maximum of J_b") {
  const double gamma = 0.5;
  // Random points: every greedy step maximizes J_b(S ∪ {c}) over c, and the objective is J_b.
  const Tensor f = blobs(14, 2, 3, 18).x;
  const Prototypes p = mmd_critic_features(f, 4, 3, gamma);
  std::vector<int> S;
  for (size_t step = 0; step < p.prototypes.size(); ++step) {
    double best = -1e300;
    int arg = -1;
    for (int c = 0; c < 14; ++c) {
      if (std::count(S.begin(), S.end(), c)) continue;
      std::vector<int> T = S;
      T.push_back(c);
      if (J(f, T, gamma) > best + 1e-12) best = J(f, T, gamma), arg = c;
    }
    CHECK(p.prototypes[step] == arg);
    S.push_back(arg);
    CHECK(p.objective[step] == doctest::Approx(J(f, S, gamma)).epsilon(1e-6));
  }
  // Criticisms: each step maximizes |witness| + log det K_CC over the remaining points.
  std::vector<int> C;
  for (size_t step = 0; step < p.criticisms.size(); ++step) {
    double best = -1e300;
    int arg = -1;
    for (int c = 0; c < 14; ++c) {
      if (std::count(S.begin(), S.end(), c) || std::count(C.begin(), C.end(), c)) continue;
      double w = 0;
      for (int i = 0; i < 14; ++i) w += kernel(f, c, i, gamma) / 14;
      for (int j : S) w -= kernel(f, c, j, gamma) / double(S.size());
      double value = std::fabs(w);
      std::vector<int> T = C;
      T.push_back(c);
      value += logdet(f, T, gamma) - (C.empty() ? 0.0 : logdet(f, C, gamma));
      if (value > best + 1e-12) best = value, arg = c;
    }
    CHECK(p.criticisms[step] == arg);
    C.push_back(arg);
  }
  // Three tight clusters of 3, 3 and 2 points: greedy's m prototypes are the best m-subset.
  Tensor clusters(Shape{8, 2});
  const float pts[8][2] = {{0, 0}, {0.1f, 0}, {0, 0.1f}, {3, 3}, {3.1f, 3}, {3, 3.1f}, {-3, 3}, {-3.1f, 3}};
  std::copy(&pts[0][0], &pts[0][0] + 16, clusters.data());
  for (int m = 1; m <= 3; ++m) {
    const Prototypes q = mmd_critic_features(clusters, m, 0, 0.5);
    double best = -1e300;
    for (int mask = 0; mask < 256; ++mask) {
      if (__builtin_popcount(mask) != m) continue;
      std::vector<int> T;
      for (int i = 0; i < 8; ++i)
        if (mask >> i & 1) T.push_back(i);
      best = std::max(best, J(clusters, T, 0.5));
    }
    CHECK(q.objective.back() == doctest::Approx(best).epsilon(1e-6));  // the kernel is float
  }
}

TEST_CASE("instances: fits and solvers without forward passes stop when asked") {
  const Examples d = blobs(60, 3, 4, 7);
  SoftmaxRegression m(d.x, 3, true);
  std::vector<double> t(size_t(60) * 3, 0.0);
  for (int i = 0; i < 60; ++i) t[size_t(i) * 3 + d.y[i]] = 1;
  Graph g = arch("input(4) dense(3)");
  const std::vector<double> theta = dense_theta(static_cast<Dense&>(g.layer(0)));
  check_stops_when_asked([&] { fit_softmax_regression(m, t, nullptr, 1e-3, theta, 100, 1e-12); });
  const std::vector<double> b = {1, 2};
  std::vector<double> x;
  const Product A = [](const double* v, double* out) { out[0] = 2 * v[0], out[1] = 3 * v[1]; };
  check_stops_when_asked([&] { conjugate_gradient(A, b, x, 10, 1e-12); });
  CHECK(conjugate_gradient(A, b, x, 10, 1e-12).iterations == 2);  // no check: solved (x = b / diag)
  CHECK(x[0] == doctest::Approx(0.5));
  CHECK(x[1] == doctest::Approx(2.0 / 3));
  check_stops_when_asked([&] { mmd_critic_features(d.x, 4, 2, 0.5); });
  // The kernel's column sums (O(n² d), no forward pass) stop at once too: 60,000 points ran on for
  // a minute after Ctrl-C.
  const Tensor many = blobs(600, 3, 3, 26).x;
  std::string stage;
  int done = 0;
  Context ctx;
  ctx.progress = [&](const std::string& s, int d, int) { stage = s, done = d; };
  check_stops_when_asked([&] { mmd_critic_features(many, 4, 2, 0.5, true, ctx); });
  CHECK(stage == "kernel column sums");
  CHECK(done < 600);
}

TEST_CASE("mmd-critic: the log-determinant keeps criticisms diverse") {
  // Copy a point plain |witness| criticizes: without the regularizer the copy (as large a witness)
  // is criticized too; with it, a second copy adds nothing to log det K_CC and is passed over.
  const Tensor f = blobs(20, 2, 3, 25).x;
  const int first = mmd_critic_features(f, 2, 1, 0.5, false).criticisms[0];
  Tensor g(Shape{21, 3});
  std::copy_n(f.data(), f.size(), g.data());
  std::copy_n(f.data() + first * 3, 3, g.data() + 60);
  const Prototypes plain = mmd_critic_features(g, 2, 3, 0.5, false), diverse = mmd_critic_features(g, 2, 3, 0.5, true);
  REQUIRE(plain.prototypes == diverse.prototypes);
  const std::set<int> p(plain.criticisms.begin(), plain.criticisms.end()), d(diverse.criticisms.begin(), diverse.criticisms.end());
  CHECK((p.count(first) && p.count(20)));
  CHECK_FALSE((d.count(first) && d.count(20)));
  CHECK((d.count(first) || d.count(20)));  // one of the copies is still criticized
}

TEST_CASE("mmd-critic: the median heuristic, layers, and bad requests") {
  Tensor line(Shape{3, 1});
  line[0] = 0, line[1] = 1, line[2] = 3;  // squared distances 1, 4, 9: median 4
  CHECK(median_heuristic_gamma(line) == doctest::Approx(1.0 / 8));
  // Every pair of 37 rows (blocks of 8 rows and a remainder, on the threads): the median of the
  // squared distances, each summed in double over the features in order (to the bit on x86-64;
  // where a compiler fuses the multiply-adds, to its last bits).
  const Examples many = blobs(37, 3, 5, 23);
  std::vector<double> pairs;
  for (int a = 0; a < 37; ++a)
    for (int b = a + 1; b < 37; ++b) {
      double s = 0;
      for (int j = 0; j < 5; ++j) s += (double(many.x[a * 5 + j]) - many.x[b * 5 + j]) * (double(many.x[a * 5 + j]) - many.x[b * 5 + j]);
      pairs.push_back(s);
    }
  std::nth_element(pairs.begin(), pairs.begin() + pairs.size() / 2, pairs.end());
  CHECK(median_heuristic_gamma(many.x) == doctest::Approx(1.0 / (2.0 * pairs[pairs.size() / 2])).epsilon(1e-12));
  const Examples d = blobs(30, 3, 4, 19);
  const Prototypes p = mmd_critic(nullptr, d.x, 3, 2, {});
  CHECK(p.gamma == doctest::Approx(median_heuristic_gamma(d.x)));
  CHECK(p.prototypes.size() == 3);
  CHECK(p.criticisms.size() == 2);
  Graph g = arch("input(4) dense(5) relu dense(3)");
  const Prototypes q = mmd_critic(&g, d.x, 3, 1, {{"layer", "relu1"}, {"gamma", "0.3"}});
  CHECK(q.gamma == 0.3);
  CHECK_THROWS_WITH_AS(mmd_critic(nullptr, d.x, 25, 10, {}), doctest::Contains("25 prototypes and 10 criticisms from 30"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(mmd_critic(nullptr, d.x, 2, 1, {{"gamma", "-1"}}), doctest::Contains("--param gamma=-1"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(mmd_critic(nullptr, d.x, 2, 1, {{"layer", "relu1"}}), doctest::Contains("needs a model"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(mmd_critic(nullptr, d.x, 2, 1, {{"kernel", "rbf"}}), doctest::Contains("unknown parameter 'kernel'"),
                       std::invalid_argument);
}

TEST_CASE("every instance method reads exactly its declared parameters; unknown names and keys are refused") {
  const Examples train = blobs(16, 3, 4, 20), tests = rows_of(blobs(2, 3, 4, 21), 0, 2);
  Graph g = arch("input(4) dense(5) relu dense(3)");
  const std::vector<Checkpoint> ckpts = {snapshot(g, "c", 0.1)};
  Context ctx;
  ctx.checkpoints = &ckpts;
  REQUIRE(methods().size() == 4);
  for (const MethodInfo& m : methods()) {
    CAPTURE(m.name);
    Scores s;
    CHECK_NOTHROW(s = run(g, train, tests, m.name, {}, ctx));  // DeclarationError if a declared key is unread
    CHECK(s.scores.shape() == Shape({2, 16}));
    CHECK_THROWS_WITH_AS(run(g, train, tests, m.name, {{"no_such_key", "1"}}, ctx),
                         doctest::Contains("unknown parameter 'no_such_key'"), std::invalid_argument);
    CHECK(list_text(methods()).find(m.name) != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(run(g, train, tests, "influenza", {}), doctest::Contains("known: knn, influence, tracin, representer"),
                       std::invalid_argument);
}

TEST_CASE("instance methods: bad inputs and parameters get errors naming them") {
  const Examples train = blobs(16, 3, 4, 22), tests = rows_of(blobs(2, 3, 4, 23), 0, 2);
  Graph g = arch("input(4) dense(5) relu dense(3)");
  CHECK_THROWS_WITH_AS(run(g, train, tests, "influence", {{"damping", "0"}}), doctest::Contains("damping > 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, train, tests, "influence", {{"lissa_depth", "0"}}),
                       doctest::Contains("lissa_depth=0 outside [1, 1000000]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, train, tests, "influence", {{"layers", "conv9"}}), doctest::Contains("no layer named 'conv9'"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, train, tests, "influence", {{"layers", "relu1"}}),
                       doctest::Contains("'relu1' has no trainable parameters"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, train, tests, "influence", {{"solver", "qr"}}), doctest::Contains("solver=qr"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, train, tests, "tracin", {}), doctest::Contains("--save-every"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, train, tests, "representer", {{"lambda", "0"}}), doctest::Contains("lambda must be > 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, train, tests, "knn", {{"metric", "manhattan"}}), doctest::Contains("metric=manhattan"),
                       std::invalid_argument);
  Examples bad = tests;
  bad.y[1] = 7;
  CHECK_THROWS_WITH_AS(run(g, train, bad, "knn", {}), doctest::Contains("class 7 of sample 1 outside"), std::out_of_range);
  bad = tests;
  bad.x[5] = NAN;
  CHECK_THROWS_WITH_AS(run(g, train, bad, "knn", {}), doctest::Contains("sample 1 is not finite"), std::invalid_argument);
  Examples wrong{Tensor(Shape{2, 5}), {0, 1}};
  CHECK_THROWS_AS(run(g, train, wrong, "knn", {}), ShapeError);
  Graph pooled = arch("input(1,4,4) conv(3,k=3) gap");
  const Examples images{Tensor(Shape{4, 1, 4, 4}, 0.5f), {0, 1, 2, 0}};
  CHECK_THROWS_WITH_AS(run(pooled, images, images, "representer", {}),
                       doctest::Contains("last layer 'gap1' (gap) is not a dense layer"), std::invalid_argument);
}

TEST_CASE("cli: the prototypes grid says what the bars under its cells mean") {
  // tools/glassbox beside tests/ in this build; skipped when it is not built.
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path bin = fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path() / "tools" / "glassbox";
  if (ec || !fs::exists(bin)) {
    MESSAGE("skipped: tools/glassbox is not built beside the tests");
    return;
  }
  const fs::path dir = fs::temp_directory_path() / ("glassbox_instances_" + std::to_string(::getpid()));
  fs::remove_all(dir, ec);
  std::mt19937 rng(5);
  for (const char* name : {"Bag", "Pullover with an extraordinarily long descriptive name"}) {
    fs::create_directories(dir / "imgs" / name);
    for (int i = 0; i < 6; ++i) {
      std::vector<uint8_t> px(28 * 28);
      for (uint8_t& v : px) v = uint8_t(rng() % 256);
      write_png((dir / "imgs" / name / (std::to_string(i) + ".png")).string(), 28, 28, 1, px.data());
    }
  }
  const std::string cmd = bin.string() + " --threads 1 prototypes --data images:" + (dir / "imgs").string() +
                          " --prototypes 2 --criticisms 1 --out " + (dir / "out").string() + " >/dev/null 2>&1";
  const int raw = std::system(cmd.c_str());
  REQUIRE((WIFEXITED(raw) && WEXITSTATUS(raw) == 0));
  const gb::Image im = read_image((dir / "out/prototypes.png").string());
  REQUIRE(im.channels == 3);
  // The legend line above the grid: a green and a red bar as under the cells, before any cell.
  int green = 0, red = 0;
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < im.w; ++x) {
      const uint8_t* p = &im.pixels[(size_t(y) * im.w + x) * 3];
      green += p[0] == 20 && p[1] == 150 && p[2] == 60;
      red += p[0] == 200 && p[1] == 30 && p[2] == 30;
    }
  CHECK(green >= 20);
  CHECK(red >= 20);
  fs::remove_all(dir, ec);
}
