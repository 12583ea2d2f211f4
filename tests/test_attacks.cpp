// Attacks (explain/attacks): FGSM and PGD steps against a hand computation on a linear model
// (with a normalization, so pixel space is tested too), every result inside its ball and the pixel
// range, determinism per seed and batch = one by one, targeted and minimal-perturbation attacks on
// a small model trained here on synthetic images, the registry's declarations and its errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/tensor_checks.h"
#include "engine/architecture.h"
#include "engine/layers.h"
#include "engine/loss.h"
#include "engine/threads.h"
#include "engine/hvp.h"
#include "explain/attacks/attacks.h"
#include "explain/attacks/metrics.h"
#include "explain/attacks/surrogate.h"
#include "explain/attribution/explain.h"
#include "train/optimizer.h"

using namespace gb;
using namespace gb::attacks;

namespace {

Graph arch(const std::string& text, uint64_t seed = 7) {
  Graph g = graph_from_text(text);
  g.init(seed);
  return g;
}

Tensor uniform(const Shape& s, uint64_t seed, float lo = 0.f, float hi = 1.f) {
  Rng r(seed);
  Tensor t(s);
  for (size_t i = 0; i < t.size(); ++i) t[i] = lo + (hi - lo) * r.uniform();
  return t;
}


// A normalization with two different channel statistics, and the model's input for pixels p.
PixelSpace two_channel_space() {
  PixelSpace s;
  s.mean = {0.5f, 0.25f};
  s.std = {0.25f, 0.5f};
  return s;
}

Tensor to_input(const PixelSpace& s, const Tensor& p) {
  Tensor x;
  s.to_input(p, x);
  return x;
}

Tensor to_pixels(const PixelSpace& s, const Tensor& x) {
  Tensor p;
  s.to_pixels(x, p);
  return p;
}

// The linear model z = W x + b on [2,3,3] inputs with 4 classes, and the gradient of one input's
// cross-entropy at class y with respect to its pixels, by hand: Wᵀ(softmax(z) − e_y) / std.
struct Linear {
  Graph g = arch("input(2,3,3) flatten dense(4)");
  Tensor W, b;
  PixelSpace space = two_channel_space();
  Linear() {
    auto& d = dynamic_cast<Dense&>(g.layer(1));
    W = d.weight.value;
    b = d.bias.value;
    W.copy_from(uniform(W.shape(), 3, -1.f, 1.f));
    b.copy_from(uniform(b.shape(), 4, -0.5f, 0.5f));
  }
  std::vector<double> pixel_gradient(const float* p, int y) const {
    std::vector<double> x(18), z(4), g(18, 0.0);
    for (int i = 0; i < 18; ++i) x[i] = (p[i] - space.mean_of(i / 9)) / space.std_of(i / 9);
    double m = -1e30, total = 0;
    for (int k = 0; k < 4; ++k) {
      z[k] = b[k];
      for (int i = 0; i < 18; ++i) z[k] += W[k * 18 + i] * x[i];
      m = std::max(m, z[k]);
    }
    for (int k = 0; k < 4; ++k) total += std::exp(z[k] - m);
    for (int k = 0; k < 4; ++k) {
      const double d = std::exp(z[k] - m) / total - (k == y);
      for (int i = 0; i < 18; ++i) g[i] += W[k * 18 + i] * d / space.std_of(i / 9);
    }
    return g;
  }
  int predict(const float* p) const {
    std::vector<double> z(4);
    for (int k = 0; k < 4; ++k) {
      z[k] = b[k];
      for (int i = 0; i < 18; ++i) z[k] += W[k * 18 + i] * (p[i] - space.mean_of(i / 9)) / space.std_of(i / 9);
    }
    return int(std::max_element(z.begin(), z.end()) - z.begin());
  }
};

// Pixels in the range's interior and near its ends (so clipping happens).
Tensor test_pixels(int n, uint64_t seed) {
  Tensor p = uniform(Shape{n, 2, 3, 3}, seed, -0.1f, 1.1f);
  for (size_t i = 0; i < p.size(); ++i) p[i] = std::clamp(p[i], 0.f, 1.f);
  return p;
}

Request request_for(const Tensor& pixels, const PixelSpace& s) {
  Request q;
  q.pixels = s;
  q.inputs = to_input(s, pixels);
  return q;
}

// Synthetic 16x16 images of four classes (a horizontal bar, a vertical bar, a diagonal, a hollow
// square) at random places on a noisy background.
void shapes(int n, uint64_t seed, Tensor& x, std::vector<int>& y) {
  x = Tensor(Shape{n, 1, 16, 16});
  y.resize(n);
  Rng r(seed);
  for (int i = 0; i < n; ++i) {
    const int k = i % 4, a = 3 + int(r.below(10)), c = 3 + int(r.below(6));
    y[i] = k;
    for (int v = 0; v < 16; ++v)
      for (int u = 0; u < 16; ++u) {
        bool on = false;
        if (k == 0) on = std::abs(v - a) < 2 && u > 2 && u < 13;
        if (k == 1) on = std::abs(u - a) < 2 && v > 2 && v < 13;
        if (k == 2) on = std::abs(u - v - (a - 8) / 2) < 2 && u > 1 && u < 14;
        if (k == 3) on = (std::abs(u - c - 3.5) < 4.5 && std::abs(v - c - 3.5) < 4.5) &&
                         !(std::abs(u - c - 3.5) < 2.5 && std::abs(v - c - 3.5) < 2.5);
        x[(size_t(i) * 16 + v) * 16 + u] = std::clamp((on ? 0.85f : 0.15f) + 0.08f * r.normal(), 0.f, 1.f);
      }
  }
}

// A small conv net trained on `shapes` (pixels in [0, 1], no normalization), once per run.
Graph& trained() {
  static Graph g = [] {
    Graph m = arch("input(1,16,16) conv(8,k=3,p=1) relu maxpool(2) conv(16,k=3,p=1) relu maxpool(2) flatten "
                   "dense(32) relu dense(4)",
                   5);
    Tensor x;
    std::vector<int> y;
    shapes(1600, 1, x, y);
    OptimizerConfig oc;
    oc.kind = OptimizerKind::adam, oc.lr = 3e-3f;
    Optimizer opt(m, oc);
    BackwardOptions bo;
    bo.param_grads = true, bo.input_grad = false;
    Tensor grad;
    for (int epoch = 0; epoch < 3; ++epoch)
      for (int b = 0; b < 1600; b += 32) {
        m.zero_grad();
        softmax_cross_entropy(m.forward(x.slice(b, b + 32), Mode::train), {y.begin() + b, y.begin() + b + 32}, &grad);
        m.backward(grad, bo);
        opt.step(oc.lr);
      }
    return m;
  }();
  return g;
}

// Test images of `shapes` that the trained model classifies correctly.
Request trained_request(int n, uint64_t seed = 9) {
  Tensor x;
  std::vector<int> y;
  shapes(4 * n, seed, x, y);
  Graph& g = trained();
  const Tensor& z = g.forward(x);
  std::vector<int> keep;
  for (int i = 0; i < x.batch() && int(keep.size()) < n; ++i)
    if (std::max_element(z.data() + 4 * i, z.data() + 4 * i + 4) - (z.data() + 4 * i) == y[i]) keep.push_back(i);
  REQUIRE(int(keep.size()) == n);
  Request q;
  q.inputs = Tensor(Shape{n, 1, 16, 16});
  for (int i = 0; i < n; ++i) {
    q.inputs.slice(i, i + 1).copy_from(x.slice(keep[i], keep[i] + 1));
    q.labels.push_back(y[keep[i]]);
  }
  return q;
}

Result run(Graph& g, const Request& q, const std::string& method, const Params& p = {}) {
  return gb::attacks::attack(g, q, method, p);
}

// The outcome recomputed from the adversarial inputs themselves, not from the library's `after`:
// the model's class for each (argmax of a forward pass), and success as the goal defines it
// (targeted: the target reached; untargeted: the label left).
void check_outcome(Graph& g, const Request& q, const Result& r) {
  const Tensor& z = g.forward(r.adversarial);
  const int N = z.batch(), C = z.dim(1);
  REQUIRE(int(r.success.size()) == N);
  REQUIRE(int(r.after.size()) == N);
  for (int n = 0; n < N; ++n) {
    CAPTURE(n);
    const float* zn = z.data() + size_t(n) * C;
    const int pred = int(std::max_element(zn, zn + C) - zn);
    CHECK(r.after[n] == pred);
    CHECK(bool(r.success[n]) == (q.targets.empty() ? pred != q.labels[n] : pred == q.targets[n]));
  }
}

// Every adversarial input inside the ball of radius r (L∞ or L2, pixels) and the pixel range.
void check_inside(const Request& q, const Result& r, double radius, bool l2) {
  const Tensor p0 = to_pixels(q.pixels, q.inputs), p = to_pixels(q.pixels, r.adversarial);
  const size_t S = p.sample_size();
  for (int n = 0; n < p.batch(); ++n) {
    double linf = 0, sq = 0;
    for (size_t i = 0; i < S; ++i) {
      const double d = double(p[n * S + i]) - p0[n * S + i];
      linf = std::max(linf, std::fabs(d));
      sq += d * d;
      CHECK(p[n * S + i] >= q.pixels.lo - 1e-6);
      CHECK(p[n * S + i] <= q.pixels.hi + 1e-6);
    }
    CHECK((l2 ? std::sqrt(sq) : linf) <= radius + 1e-5);
    CHECK(r.linf[n] == doctest::Approx(linf).epsilon(1e-4));
    CHECK(r.l2[n] == doctest::Approx(std::sqrt(sq)).epsilon(1e-4));
  }
}

}  // namespace

// ---- FGSM and PGD by hand ------------------------------------------------------------------------

TEST_CASE("fgsm: one step equals clip(p + eps sign(grad)) by hand, untargeted and targeted, through a normalization") {
  Linear lin;
  const Tensor p = test_pixels(6, 21);
  Request q = request_for(p, lin.space);
  q.labels = {0, 1, 2, 3, 0, 1};
  const double eps = 0.07;
  for (bool targeted : {false, true}) {
    CAPTURE(targeted);
    if (targeted) q.targets = {1, 2, 3, 0, 2, 3};
    const Result r = run(lin.g, q, "fgsm", {{"epsilon", "0.07"}});
    const Tensor adv = to_pixels(lin.space, r.adversarial);
    for (int n = 0; n < 6; ++n) {
      const int y = targeted ? q.targets[n] : q.labels[n];
      const std::vector<double> g = lin.pixel_gradient(p.data() + n * 18, y);
      for (int i = 0; i < 18; ++i) {
        const double step = std::fabs(g[i]) > 1e-6 ? (g[i] > 0 ? eps : -eps) * (targeted ? -1 : 1) : 0.0;
        CHECK(adv[n * 18 + i] == doctest::Approx(std::clamp(p[n * 18 + i] + step, 0.0, 1.0)).epsilon(1e-5));
      }
      CHECK(r.after[n] == lin.predict(adv.data() + n * 18));
      CHECK(r.before[n] == lin.predict(p.data() + n * 18));
    }
  }
}

TEST_CASE("pgd: three L-inf steps, three L2 steps (normalized and Captum's sign steps) by hand") {
  Linear lin;
  const Tensor p = test_pixels(4, 22);
  Request q = request_for(p, lin.space);
  q.labels = {3, 2, 1, 0};
  const double radius = 0.09, alpha = 0.04;
  for (const char* norm : {"Linf", "L2"})
    for (const char* l2_step : {"normalized", "sign"}) {
      if (std::string(norm) == "Linf" && std::string(l2_step) == "sign") continue;
      CAPTURE(norm);
      CAPTURE(l2_step);
      const bool l2 = std::string(norm) == "L2", sign = !l2 || std::string(l2_step) == "sign";
      const Result r = run(lin.g, q, "pgd",
                           {{"radius", "0.09"}, {"step_size", "0.04"}, {"step_num", "3"}, {"norm", norm}, {"l2_step", l2_step}});
      const Tensor adv = to_pixels(lin.space, r.adversarial);
      for (int n = 0; n < 4; ++n) {
        const float* p0 = p.data() + n * 18;
        std::vector<double> x(p0, p0 + 18);
        for (int t = 0; t < 3; ++t) {
          std::vector<float> xf(x.begin(), x.end());
          const std::vector<double> g = lin.pixel_gradient(xf.data(), q.labels[n]);
          double gn = 0;
          for (double v : g) gn += v * v;
          gn = std::sqrt(gn);
          for (int i = 0; i < 18; ++i)
            x[i] += sign ? (std::fabs(g[i]) > 1e-6 ? (g[i] > 0 ? alpha : -alpha) : 0.0) : alpha * g[i] / gn;
          double dn = 0;
          for (int i = 0; i < 18; ++i) dn += (x[i] - p0[i]) * (x[i] - p0[i]);
          dn = std::sqrt(dn);
          for (int i = 0; i < 18; ++i) {
            const double d = x[i] - p0[i];
            x[i] = p0[i] + (l2 ? (dn > radius ? d * radius / (dn + 1e-7) : d) : std::clamp(d, -radius, radius));
            x[i] = std::clamp(x[i], 0.0, 1.0);
          }
        }
        for (int i = 0; i < 18; ++i) CHECK(adv[n * 18 + i] == doctest::Approx(x[i]).epsilon(1e-5));
      }
      check_inside(q, r, radius, l2);
    }
}

TEST_CASE("pgd and fgsm results stay inside the ball and the pixel range, with random starts, on a conv net") {
  Graph g = arch("input(2,8,8) conv(4,k=3,p=1) relu maxpool(2) flatten dense(5)");
  const Tensor p = uniform(Shape{7, 2, 8, 8}, 5);
  Request q = request_for(p, two_channel_space());
  for (const char* norm : {"Linf", "L2"}) {
    CAPTURE(norm);
    const bool l2 = std::string(norm) == "L2";
    const std::string radius = l2 ? "0.8" : "0.05";
    const Result r = run(g, q, "pgd", {{"radius", radius}, {"step_size", l2 ? "0.5" : "0.03"}, {"step_num", "6"},
                                       {"norm", norm}, {"random_start", "true"}});
    check_inside(q, r, std::stod(radius), l2);
  }
  const Result f = run(g, q, "fgsm", {{"epsilon", "0.2"}});
  check_inside(q, f, 0.2, false);
  // Pixels already at the ends of the range stay there when the step points outwards.
  Tensor ends = p.clone();
  for (size_t i = 0; i < ends.size(); ++i) ends[i] = i % 2 ? 1.f : 0.f;
  Request e = request_for(ends, two_channel_space());
  check_inside(e, run(g, e, "fgsm", {{"epsilon", "0.3"}}), 0.3, false);
}

TEST_CASE("pgd: random starts are deterministic per seed, and a batch equals its inputs one by one") {
  Graph g = arch("input(1,8,8) conv(4,k=3,p=1) relu maxpool(2) conv(4,k=3,p=1) relu flatten dense(5)");
  Request q = request_for(uniform(Shape{5, 1, 8, 8}, 8), PixelSpace{});
  const Params p = {{"radius", "0.1"}, {"step_num", "5"}, {"random_start", "true"}, {"seed", "3"}};
  const Result a = run(g, q, "pgd", p), b = run(g, q, "pgd", p);
  CHECK(max_abs_diff(a.adversarial, b.adversarial) == 0);
  Params other = p;
  other["seed"] = "4";
  CHECK(max_abs_diff(a.adversarial, run(g, q, "pgd", other).adversarial) > 1e-3);
  for (int n = 0; n < 5; ++n) {
    Request one = q;
    one.inputs = q.inputs.slice(n, n + 1).clone();
    const Result r = run(g, one, "pgd", p);
    CHECK(max_abs_diff(r.adversarial, a.adversarial.slice(n, n + 1).clone()) < 1e-6);
  }
}

TEST_CASE("pgd on a trained model: untargeted attacks flip most labels, targeted attacks reach their targets") {
  Graph& g = trained();
  Request q = trained_request(24);
  const Result clean = run(g, q, "fgsm", {{"epsilon", "0"}});
  CHECK(success_rate(clean) == 0);  // epsilon 0 changes nothing: the model is right on every input
  const Result u = run(g, q, "pgd", {{"radius", "0.3"}, {"step_num", "20"}});
  CHECK(success_rate(u) >= 0.9);
  check_outcome(g, q, u);
  for (int n = 0; n < 24; ++n) q.targets.push_back((q.labels[n] + 1 + n % 3) % 4);
  const Result t = run(g, q, "pgd", {{"radius", "0.3"}, {"step_num", "40"}});
  CHECK(success_rate(t) >= 0.9);
  check_outcome(g, q, t);
  check_inside(q, t, 0.3, false);
  // A larger ball never helps less here: robust accuracy falls with epsilon.
  q.targets.clear();
  double last = 1.1;
  for (const char* eps : {"0", "0.05", "0.1", "0.2"}) {
    const double acc = 1 - success_rate(run(g, q, "pgd", {{"radius", eps}, {"step_num", "10"}}));
    CHECK(acc <= last);
    last = acc;
  }
  CHECK(last < 0.5);
}

// ---- minimal-perturbation attacks ---------------------------------------------------------------

TEST_CASE("deepfool: one step on a linear model equals the linearized step to the nearest boundary, by hand") {
  Linear lin;
  // Mid-range pixels, so that no clipping happens.
  Tensor p = uniform(Shape{5, 2, 3, 3}, 31, 0.4f, 0.6f);
  Request q = request_for(p, lin.space);
  const Result r = run(lin.g, q, "deepfool", {{"steps", "1"}, {"overshoot", "0.02"}});
  const Tensor adv = to_pixels(lin.space, r.adversarial);
  for (int n = 0; n < 5; ++n) {
    const float* p0 = p.data() + n * 18;
    const int y = lin.predict(p0);
    // Z_k − Z_y and its pixel gradient (W_k − W_y) / std, for every k ≠ y; the nearest boundary.
    double best = 1e30;
    std::vector<double> best_w;
    for (int k = 0; k < 4; ++k) {
      if (k == y) continue;
      double f = lin.b[k] - lin.b[y], norm = 0;
      std::vector<double> w(18);
      for (int i = 0; i < 18; ++i) {
        const double x = (p0[i] - lin.space.mean_of(i / 9)) / lin.space.std_of(i / 9);
        f += (lin.W[k * 18 + i] - lin.W[y * 18 + i]) * x;
        w[i] = (lin.W[k * 18 + i] - lin.W[y * 18 + i]) / lin.space.std_of(i / 9);
        norm += w[i] * w[i];
      }
      norm = std::sqrt(norm) + 1e-8;
      if (std::fabs(f) / norm < best) best = std::fabs(f) / norm, best_w = w;
    }
    double norm = 0;
    for (double v : best_w) norm += v * v;
    norm = std::sqrt(norm) + 1e-8;
    for (int i = 0; i < 18; ++i)
      CHECK(adv[n * 18 + i] == doctest::Approx(p0[i] + 1.02 * (best + 1e-4) / norm * best_w[i]).epsilon(1e-4));
    // On a linear model the overshot step crosses the boundary.
    CHECK(r.success[n]);
    CHECK(r.values.at("steps")[n] == 1);
  }
}

TEST_CASE("cw and deepfool find smaller L2 changes than fgsm at equal success, on a trained model") {
  Graph& g = trained();
  const Request q = trained_request(16);
  const Result f = run(g, q, "fgsm", {{"epsilon", "0.15"}});
  const Result cw = run(g, q, "cw", {{"binary_search_steps", "6"}, {"max_iterations", "200"}, {"learning_rate", "0.05"}});
  const Result df = run(g, q, "deepfool");
  CHECK(success_rate(cw) == 1);
  CHECK(success_rate(df) == 1);
  CHECK(success_rate(f) > 0.3);
  int both = 0;
  for (int n = 0; n < 16; ++n) {
    CAPTURE(n);
    if (!f.success[n]) continue;
    ++both;
    CHECK(cw.l2[n] < f.l2[n]);
    CHECK(df.l2[n] < f.l2[n]);
  }
  CHECK(both >= 5);
  check_inside(q, cw, 1e9, true);  // the pixel range
  check_inside(q, df, 1e9, true);
  // CW's answer is the smallest successful iterate: a positive confidence costs a larger change.
  const Result strong = run(g, q, "cw", {{"binary_search_steps", "6"}, {"max_iterations", "200"},
                                         {"learning_rate", "0.05"}, {"confidence", "5"}});
  double mean_cw = 0, mean_strong = 0;
  for (int n = 0; n < 16; ++n) mean_cw += cw.l2[n], mean_strong += strong.l2[n];
  CHECK(mean_strong > mean_cw);
}

TEST_CASE("cw keeps the smallest successful iterate: more iterations of one search never give a larger L2") {
  Graph& g = trained();
  const Request q = trained_request(8, 19);
  std::vector<double> last(8, 1e30);
  for (const char* iters : {"10", "20", "40", "80", "160"}) {
    CAPTURE(iters);
    const Result r = run(g, q, "cw", {{"binary_search_steps", "1"}, {"initial_const", "10"}, {"abort_early", "false"},
                                      {"learning_rate", "0.1"}, {"max_iterations", iters}});
    for (int n = 0; n < 8; ++n) {
      if (!r.success[n]) continue;
      CHECK(r.l2[n] <= last[n] + 1e-6);
      last[n] = r.l2[n];
    }
  }
  CHECK(std::count_if(last.begin(), last.end(), [](double v) { return v < 1e30; }) >= 6);
}

TEST_CASE("cw: mean_const_successful is the mean c over the inputs fooled, NaN only when none is") {
  Graph& g = trained();
  const Request q = trained_request(8, 19);
  // One short search from a small c: some inputs are fooled, some not (the first c that does so).
  Result r;
  double sum = 0;
  int fooled = 0;
  for (const std::string c0 : {"0.01", "0.03", "0.1", "0.3", "1", "3"}) {
    r = run(g, q, "cw", {{"binary_search_steps", "1"}, {"initial_const", c0}, {"abort_early", "false"},
                         {"learning_rate", "0.05"}, {"max_iterations", "15"}});
    const std::vector<double>& c = r.values.at("const");
    sum = 0, fooled = 0;
    for (int n = 0; n < 8; ++n) {
      CAPTURE(n);
      CHECK(bool(std::isfinite(c[n])) == bool(r.success[n]));  // every input starts correct and kappa = 0
      if (std::isfinite(c[n])) sum += c[n], ++fooled;
    }
    MESSAGE("cw initial_const " << c0 << " fooled " << fooled << " of 8");
    if (fooled > 0 && fooled < 8) break;
  }
  REQUIRE(fooled > 0);
  REQUIRE(fooled < 8);  // the case the mean over all inputs left undefined
  CHECK(r.totals.at("const_successful_inputs") == fooled);
  CHECK(r.totals.at("mean_const_successful") == doctest::Approx(sum / fooled));
  CHECK(std::isfinite(r.totals.at("mean_const_successful")));
  // No input fooled: undefined.
  const Result none = run(g, q, "cw", {{"binary_search_steps", "1"}, {"initial_const", "1e-6"}, {"max_iterations", "2"}});
  CHECK(success_rate(none) == 0);
  CHECK(none.totals.at("const_successful_inputs") == 0);
  CHECK(std::isnan(none.totals.at("mean_const_successful")));
}

TEST_CASE("cw targeted reaches every target; a batch equals its inputs one by one") {
  Graph& g = trained();
  Request q = trained_request(8, 13);
  for (int n = 0; n < 8; ++n) q.targets.push_back((q.labels[n] + 2) % 4);
  const Params p = {{"binary_search_steps", "4"}, {"max_iterations", "150"}, {"learning_rate", "0.05"}};
  const Result r = run(g, q, "cw", p);
  CHECK(success_rate(r) == 1);
  for (int n = 0; n < 8; ++n) CHECK(r.after[n] == q.targets[n]);
  Request untargeted = q;
  untargeted.targets.clear();
  const Result df = run(g, untargeted, "deepfool");
  for (int n : {0, 5}) {
    Request one = q;
    one.inputs = q.inputs.slice(n, n + 1).clone();
    one.labels = {q.labels[n]};
    one.targets = {q.targets[n]};
    CHECK(max_abs_diff(run(g, one, "cw", p).adversarial, r.adversarial.slice(n, n + 1).clone()) < 1e-5);
    one.targets.clear();
    CHECK(max_abs_diff(run(g, one, "deepfool").adversarial, df.adversarial.slice(n, n + 1).clone()) < 1e-5);
  }
}

TEST_CASE("jsma changes at most gamma of the features, only upwards (theta > 0), and reaches targets on a trained model") {
  Graph& g = trained();
  Request q = trained_request(12, 17);
  for (int n = 0; n < 12; ++n) q.targets.push_back((q.labels[n] + 1) % 4);
  for (const char* gamma : {"0.05", "0.15"}) {
    CAPTURE(gamma);
    const Result r = run(g, q, "jsma", {{"gamma", gamma}});
    const Tensor p0 = to_pixels(q.pixels, q.inputs), p1 = to_pixels(q.pixels, r.adversarial);
    const size_t S = 256;
    for (int n = 0; n < 12; ++n) {
      int changed = 0;
      for (size_t i = 0; i < S; ++i)
        if (p1[n * S + i] != p0[n * S + i]) {
          ++changed;
          CHECK(p1[n * S + i] > p0[n * S + i]);
        }
      CHECK(changed <= std::stod(gamma) * S);
      CHECK(r.l0[n] == changed);
      CHECK(r.values.at("iterations")[n] <= std::floor(std::stod(gamma) * S / 2));
    }
    check_outcome(g, q, r);
    if (std::string(gamma) == "0.15") CHECK(success_rate(r) >= 0.75);
  }
  // Decreasing features (theta < 0) moves pixels down only.
  const Result down = run(g, q, "jsma", {{"theta", "-1"}, {"gamma", "0.1"}});
  const Tensor p0 = to_pixels(q.pixels, q.inputs), p1 = to_pixels(q.pixels, down.adversarial);
  for (size_t i = 0; i < p0.size(); ++i) CHECK(p1[i] <= p0[i]);
  // Without --target the target is label + 1.
  q.targets.clear();
  const Result next = run(g, q, "jsma", {{"gamma", "0.15"}});
  for (int n = 0; n < 12; ++n) CHECK(next.target[n] == (q.labels[n] + 1) % 4);
}

// ---- the registry ----------------------------------------------------------------------------

TEST_CASE("every attack reads exactly the parameters it declares and rejects others") {
  Graph g = arch("input(1,8,8) conv(4,k=3,p=1) relu maxpool(2) flatten dense(3)");
  Request q = request_for(uniform(Shape{2, 1, 8, 8}, 1), PixelSpace{});
  q.data = uniform(Shape{2, 1, 8, 8}, 2);  // the substitute attack's initial set
  q.fit_substitute = [](Graph&, const Tensor&, const std::vector<int>&, const SubstituteFit&) {};
  for (const MethodInfo& m : methods()) {
    CAPTURE(m.name);
    // Unknown keys are refused, naming the key and the declared ones.
    try {
      run(g, q, m.name, {{"no_such_key", "1"}});
      FAIL("accepted an unknown key");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("no_such_key") != std::string::npos);
    }
    // With every declared key given its default, the attack runs and reads all of them
    // (ParamReader::done would throw a DeclarationError otherwise).
    CHECK_NOTHROW(run(g, q, m.name, {}));
  }
  CHECK_THROWS_WITH_AS(method_info("nope"), doctest::Contains("known: fgsm, pgd, cw, deepfool, jsma"), std::invalid_argument);
  CHECK(epsilon_key("fgsm") == "epsilon");
  CHECK(epsilon_key("pgd") == "radius");
}

TEST_CASE("bad requests fail naming the value: shapes, NaN, out-of-range pixels, classes, parameters") {
  Graph g = arch("input(1,4,4) flatten dense(3)");
  Request q = request_for(uniform(Shape{2, 1, 4, 4}, 1), PixelSpace{});
  Request bad = q;
  bad.inputs = uniform(Shape{2, 1, 5, 4}, 1);
  CHECK_THROWS_AS(run(g, bad, "fgsm"), ShapeError);
  bad = q;
  bad.inputs = q.inputs.clone();
  bad.inputs[5] = NAN;
  CHECK_THROWS_WITH(run(g, bad, "fgsm"), doctest::Contains("not finite at element 5"));
  bad.inputs[5] = 1.5f;
  CHECK_THROWS_WITH(run(g, bad, "fgsm"), doctest::Contains("input 0: pixel value 1.5 at element 5 outside the valid range"));
  bad.names = {"a.png", "b.png"};  // the command names its files
  CHECK_THROWS_WITH(run(g, bad, "fgsm"), doctest::Contains("a.png: pixel value 1.5 at element 5 outside"));
  bad.inputs[21] = 1.5f, bad.inputs[5] = 0.5f;
  CHECK_THROWS_WITH(run(g, bad, "fgsm"), doctest::Contains("b.png: pixel value 1.5 at element 5 outside"));
  bad.names = {"a.png"};
  CHECK_THROWS_WITH(run(g, bad, "fgsm"), doctest::Contains("1 input names for 2 inputs"));
  bad = q;
  bad.labels = {0, 3};
  CHECK_THROWS_WITH(run(g, bad, "fgsm"), doctest::Contains("class 3 of input 1"));
  bad = q;
  bad.labels = {0, 1};
  bad.targets = {0, 2};
  CHECK_THROWS_WITH(run(g, bad, "pgd"), doctest::Contains("is its own class"));
  bad.targets = {1};
  CHECK_THROWS_WITH(run(g, bad, "pgd"), doctest::Contains("1 values for 2 inputs"));
  CHECK_THROWS_WITH(run(g, q, "fgsm", {{"epsilon", "-0.1"}}), doctest::Contains("fgsm: --param epsilon=-0.1 is out of range [0, 1000000]"));
  CHECK_THROWS_WITH(run(g, q, "fgsm", {{"epsilon", "nan"}}), doctest::Contains("not finite"));
  CHECK_THROWS_WITH(run(g, q, "pgd", {{"step_num", "1000000"}}), doctest::Contains("outside [1, 100000]"));
  CHECK_THROWS_WITH(run(g, q, "pgd", {{"norm", "L1"}}), doctest::Contains("known: Linf, L2"));
  CHECK_THROWS_WITH(run(g, q, "pgd", {{"step_size", "0"}}), doctest::Contains("step_size"));
  bad = q;
  bad.pixels.std = {0.f};
  bad.pixels.mean = {0.f};
  CHECK_THROWS_WITH(run(g, bad, "fgsm"), doctest::Contains("standard deviation"));
}

// ---- the engine's input Hessian-vector products and the softplus surrogate ------------------

namespace {

// Σ_n ⟨seed_n, logits(x_n)⟩'s input gradient, in double through a float graph (for differences).
Tensor input_gradient(Graph& g, const Tensor& x, const Tensor& seed) {
  g.forward(x);
  return g.backward(seed).clone();
}

Tensor class_seed(int n, int K, const std::vector<int>& classes) {
  Tensor s(Shape{n, K}, 0.f);
  for (int i = 0; i < n; ++i) s[size_t(i) * K + classes[i]] = 1.f;
  return s;
}

}  // namespace

TEST_CASE("input Hessian-vector products equal central differences of the input gradient (engine/hvp.h)") {
  Graph g = arch("input(2,6,6) conv(4,k=3,p=1) softplus(2) avgpool(2) conv(3,k=3,p=1) tanh flatten dense(8) sigmoid "
                 "dense(3)");
  const Tensor x = uniform(Shape{3, 2, 6, 6}, 41, -1.f, 1.f), v = uniform(Shape{3, 2, 6, 6}, 42, -1.f, 1.f);
  const Tensor seed = class_seed(3, 3, {0, 2, 1});
  InputHessianVectorProduct hvp(g);
  Tensor grad, hv;
  hvp(x, v, seed, grad, hv, 2);  // two batches: 2 + 1 samples
  CHECK(max_abs_diff(grad, input_gradient(g, x, seed)) < 1e-6);
  const float h = 1e-2f;
  Tensor xp = x.clone(), xm = x.clone();
  for (size_t i = 0; i < x.size(); ++i) xp[i] += h * v[i], xm[i] -= h * v[i];
  const Tensor gp = input_gradient(g, xp, seed), gm = input_gradient(g, xm, seed);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < hv.size(); ++i) {
    worst = std::max(worst, std::fabs((double(gp[i]) - gm[i]) / (2 * h) - hv[i]));
    scale = std::max(scale, double(std::fabs(hv[i])));
  }
  CHECK(scale > 1e-3);  // a real second-order term
  CHECK(worst < 2e-3 * scale);
  // A batch equals its samples one by one.
  for (int n = 0; n < 3; ++n) {
    Tensor g1, h1;
    hvp(x.slice(n, n + 1).clone(), v.slice(n, n + 1).clone(), seed.slice(n, n + 1).clone(), g1, h1);
    CHECK(max_abs_diff(h1, hv.slice(n, n + 1).clone()) < 1e-6);
  }
}

TEST_CASE("the softplus surrogate: same parameters, ReLU replaced; tends to the model as beta grows") {
  Graph g = arch("input(1,8,8) conv(4,k=3,p=1) relu maxpool(2) flatten dense(6) relu dense(3)");
  const Tensor x = uniform(Shape{4, 1, 8, 8}, 3);
  const Tensor z = g.forward(x).clone();
  double last = 1e30;
  for (double beta : {1.0, 10.0, 100.0}) {
    Graph s = softplus_surrogate(g, beta);
    const double d = max_abs_diff(s.forward(x).clone(), z);
    CHECK(d < last);
    last = d;
  }
  CHECK(last < 0.05);
  Graph s = softplus_surrogate(g, 5);
  const auto pg = g.named_params(), ps = s.named_params();
  REQUIRE(pg.size() == ps.size());
  for (size_t i = 0; i < pg.size(); ++i) CHECK(max_abs_diff(pg[i].second->value, ps[i].second->value) == 0);
  for (int i = 0; i < s.size(); ++i) CHECK(s.layer(i).kind() != "relu");
}

TEST_CASE("surrogate maps: the vector-Jacobian products equal central differences, for all three maps") {
  // Average pooling: max-pooling stays piecewise in the surrogate, and differences across its
  // switches are not derivatives.
  Graph g = arch("input(2,6,6) conv(4,k=3,p=1) relu avgpool(2) flatten dense(8) relu dense(3)", 11);
  Graph s = softplus_surrogate(g, 2.0);
  const Tensor x = uniform(Shape{2, 2, 6, 6}, 51, -1.f, 1.f), dm = uniform(Shape{2, 2, 6, 6}, 52, -1.f, 1.f);
  const Tensor baseline = uniform(Shape{1, 2, 6, 6}, 53, -0.2f, 0.2f);
  const std::vector<int> classes = {1, 2};
  for (SmoothMap map : {SmoothMap::gradient, SmoothMap::input_x_gradient, SmoothMap::integrated_gradients}) {
    CAPTURE(int(map));
    SmoothExplainer e(s, map, 8, baseline);
    const Tensor vjp = e.vjp(x, classes, dm).clone();
    // ⟨dm, m(x + h e_i)⟩ differences along random directions u: ⟨vjp, u⟩ = d/dh ⟨dm, m(x + h u)⟩.
    for (uint64_t k = 0; k < 3; ++k) {
      const Tensor u = uniform(x.shape(), 60 + k, -1.f, 1.f);
      auto f = [&](float h) {
        Tensor xh = x.clone();
        for (size_t i = 0; i < x.size(); ++i) xh[i] += h * u[i];
        const Tensor& m = e.attribution(xh, classes);
        double v = 0;
        for (size_t i = 0; i < m.size(); ++i) v += double(dm[i]) * m[i];
        return v;
      };
      const double fd = (f(1e-2f) - f(-1e-2f)) / 2e-2;
      double an = 0;
      for (size_t i = 0; i < u.size(); ++i) an += double(vjp[i]) * u[i];
      CHECK(an == doctest::Approx(fd).epsilon(5e-3).scale(1e-3));
    }
    // Integrated gradients of the surrogate add up to f(x) − f(baseline) (completeness).
    if (map == SmoothMap::integrated_gradients) {
      SmoothExplainer fine(s, map, 64, baseline);
      const Tensor a = fine.attribution(x, classes).clone();
      Tensor b(x.shape());
      for (int n = 0; n < 2; ++n) b.slice(n, n + 1).copy_from(baseline);
      const Tensor zx = s.forward(x).clone(), zb = s.forward(b).clone();
      for (int n = 0; n < 2; ++n) {
        double sum = 0;
        for (size_t i = 0; i < 72; ++i) sum += a[n * 72 + i];
        CHECK(sum == doctest::Approx(zx[n * 3 + classes[n]] - zb[n * 3 + classes[n]]).epsilon(1e-3));
      }
    }
  }
}

// ---- explanation metrics by hand -------------------------------------------------------------

TEST_CASE("importance maps, top-k, Spearman, center of mass and ROC-AUC by hand") {
  // Two channels of a 2x2 map: Σ_c |a| = {1, 5, 0, 4}, scaled to sum 4: {0.4, 2, 0, 1.6}.
  Tensor a(Shape{1, 2, 2, 2});
  const float v[8] = {1, -1, 0, 3, 0, 4, 0, 1};
  std::copy(v, v + 8, a.data());
  const Tensor I = importance(a);
  CHECK(I.shape() == Shape{1, 1, 2, 2});
  CHECK(I[0] == doctest::Approx(0.4));
  CHECK(I[1] == doctest::Approx(2.0));
  CHECK(I[2] == doctest::Approx(0.0));
  CHECK(I[3] == doctest::Approx(1.6));
  CHECK(importance(Tensor(Shape{1, 3, 2, 2}, 0.f))[0] == 0);
  const float m[6] = {0.1f, 0.9f, 0.5f, 0.9f, 0.0f, 0.3f};
  CHECK(top_k(m, 6, 3) == std::vector<int>{1, 3, 2});  // the tie 0.9 goes to the lower index first
  const float b[6] = {0.9f, 0.1f, 0.5f, 0.8f, 0.0f, 0.3f};
  CHECK(topk_intersection(m, b, 6, 3) == doctest::Approx(2.0 / 3));  // {1,3,2} ∩ {0,3,2}
  CHECK(topk_intersection(m, m, 6, 6) == 1);
  // Spearman with ties (scipy.stats.spearmanr([1,2,2,3],[1,3,2,4]) = 0.9486832980505138).
  const float s1[4] = {1, 2, 2, 3}, s2[4] = {1, 3, 2, 4};
  CHECK(spearman(s1, s2, 4) == doctest::Approx(0.9486832980505138).epsilon(1e-9));
  const float r1[4] = {4, 2, 3, 1};  // s2's ranks reversed
  CHECK(spearman(s2, r1, 4) == doctest::Approx(-1.0));
  const float c[6] = {0, 0, 1, 0, 0, 3};  // 2x3: mass 1 at (0,2), 3 at (1,2)
  const auto com = center_of_mass(c, 2, 3);
  CHECK(com[0] == doctest::Approx(0.75));
  CHECK(com[1] == doctest::Approx(2.0));
  // ROC-AUC: positives {0.9, 0.4, 0.4}, negatives {0.4, 0.1}: pairs won 2 + (0.5 + 1) + (0.5 + 1) = 5 of 6.
  CHECK(roc_auc({0.4, 0.1}, {0.9, 0.4, 0.4}) == doctest::Approx(5.0 / 6));
  CHECK(roc_auc({0.1, 0.2}, {0.3}) == 1);
  CHECK_THROWS_WITH(roc_auc({}, {0.3}), doctest::Contains("both classes"));
}

TEST_CASE("importance_backward is the gradient of D(importance(m)), by central differences") {
  const Tensor m = uniform(Shape{2, 3, 4, 5}, 71, -1.f, 1.f), w = uniform(Shape{2, 1, 4, 5}, 72, -1.f, 1.f);
  auto D = [&](const Tensor& t) {
    const Tensor I = importance(t);
    double d = 0;
    for (size_t i = 0; i < I.size(); ++i) d += double(w[i]) * I[i] + 0.5 * double(I[i]) * I[i];
    return d;
  };
  const Tensor I = importance(m);
  Tensor dI(I.shape()), dm;
  for (size_t i = 0; i < I.size(); ++i) dI[i] = w[i] + I[i];
  importance_backward(m, I, dI, dm);
  for (size_t i = 0; i < m.size(); i += 7) {
    Tensor p = m.clone(), q = m.clone();
    p[i] += 1e-3f, q[i] -= 1e-3f;
    CHECK(dm[i] == doctest::Approx((D(p) - D(q)) / 2e-3).epsilon(2e-2).scale(1e-2));
  }
}

// ---- success over the initially correct inputs --------------------------------------------------

TEST_CASE("success_rate_initially_correct counts only the inputs the model classified correctly before") {
  Graph& g = trained();
  Request q = trained_request(8, 53);
  // Inputs 0 and 1 get labels the model does not predict: misclassified before any attack.
  q.labels[0] = (q.labels[0] + 1) % 4;
  q.labels[1] = (q.labels[1] + 2) % 4;
  // epsilon 0 changes nothing: the two misclassified inputs count as successes over all inputs,
  // none over the six correct ones.
  const Result still = run(g, q, "fgsm", {{"epsilon", "0"}});
  CHECK(initially_correct_count(still) == 6);
  CHECK(!initially_correct(still, 0));
  CHECK(!initially_correct(still, 1));
  CHECK(success_rate(still) == doctest::Approx(2.0 / 8));
  CHECK(success_rate_initially_correct(still) == 0);
  // A real attack: the rate over the correct inputs by hand.
  const Result r = run(g, q, "fgsm", {{"epsilon", "0.12"}});
  int correct = 0, fooled = 0;
  for (int n = 0; n < 8; ++n)
    if (r.before[n] == q.labels[n]) ++correct, fooled += r.success[n];
  CHECK(correct == 6);
  CHECK(success_rate_initially_correct(r) == doctest::Approx(double(fooled) / 6));
  // Without labels every input is its own prediction: all correct, both rates agree.
  Request bare = q;
  bare.labels.clear();
  const Result b = run(g, bare, "fgsm", {{"epsilon", "0.12"}});
  CHECK(initially_correct_count(b) == 8);
  CHECK(success_rate_initially_correct(b) == doctest::Approx(success_rate(b)));
  // No input correct: undefined.
  Request wrong = q;
  for (int n = 0; n < 8; ++n) wrong.labels[n] = (still.before[n] + 1) % 4;
  CHECK(std::isnan(success_rate_initially_correct(run(g, wrong, "fgsm", {{"epsilon", "0"}}))));
}

// ---- attacks on explanations --------------------------------------------------------------------

namespace {

double mean_of(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); }

}  // namespace

TEST_CASE("explanation-topk keeps every label, lowers top-k intersection monotonically in epsilon, beats random steps") {
  Graph& g = trained();
  const Request q = trained_request(8, 23);
  double last = 1.0;
  std::map<std::string, double> at_eps;
  for (const char* eps : {"0.01", "0.03", "0.06", "0.12"}) {
    CAPTURE(eps);
    const Result r = run(g, q, "explanation-topk", {{"epsilon", eps}, {"steps", "24"}});
    for (int n = 0; n < 8; ++n) {
      CHECK(r.after[n] == r.before[n]);  // only iterates that keep the label are accepted
      CHECK(r.values.at("topk_intersection")[n] <= 1.0);
    }
    check_inside(q, r, std::stod(eps), false);
    const double m = mean_of(r.values.at("topk_intersection"));
    CHECK(m <= last + 1e-9);
    last = m;
    at_eps[eps] = m;
  }
  CHECK(last < 0.6);
  // A ball large enough for the walk to cross the decision boundary (PGD with the same ball and
  // steps changes labels in it): still no accepted iterate does.
  const Result cross = run(g, q, "pgd", {{"radius", "0.4"}, {"step_num", "30"}, {"step_size", "0.05"}});
  int crossed = 0;
  for (int n = 0; n < 8; ++n) crossed += cross.after[n] != cross.before[n];
  CHECK(crossed > 0);
  const Result wide = run(g, q, "explanation-topk", {{"epsilon", "0.4"}, {"steps", "30"}, {"step_size", "0.05"}});
  for (int n = 0; n < 8; ++n) CHECK(wide.after[n] == wide.before[n]);
  const Result rnd = run(g, q, "explanation-topk", {{"epsilon", "0.06"}, {"steps", "24"}, {"direction", "random"}});
  CHECK(at_eps["0.06"] < mean_of(rnd.values.at("topk_intersection")));
  // The reported maps are the method's real maps: recompute the intersection from them.
  const Result r = run(g, q, "explanation-topk", {{"epsilon", "0.03"}, {"steps", "8"}, {"k", "20"}});
  const Tensor& b = r.maps.at("benign");
  const Tensor& a = r.maps.at("attacked");
  for (int n = 0; n < 8; ++n)
    CHECK(r.values.at("topk_intersection")[n] == doctest::Approx(topk_intersection(b.data() + n * 256, a.data() + n * 256, 256, 20)));
  // A batch equals its inputs one by one.
  for (int n : {1, 6}) {
    Request one = q;
    one.inputs = q.inputs.slice(n, n + 1).clone();
    one.labels = {q.labels[n]};
    const Result o = run(g, one, "explanation-topk", {{"epsilon", "0.03"}, {"steps", "8"}, {"k", "20"}});
    CHECK(max_abs_diff(o.adversarial, r.adversarial.slice(n, n + 1).clone()) < 1e-5);
  }
}

TEST_CASE("explanation-mass and explanation-region move the map where asked, keeping labels; IG and LRP too") {
  Graph& g = trained();
  const Request q = trained_request(6, 29);
  const Result mass = run(g, q, "explanation-mass", {{"epsilon", "0.06"}, {"steps", "20"}});
  const Result rnd = run(g, q, "explanation-mass", {{"epsilon", "0.06"}, {"steps", "20"}, {"direction", "random"}});
  CHECK(mean_of(mass.values.at("center_shift")) > 0.5);
  CHECK(mean_of(mass.values.at("center_shift")) > mean_of(rnd.values.at("center_shift")));
  // Region mass of the benign map, against the attacked one (the map's mean is 1, so mass per pixel).
  const Result reg = run(g, q, "explanation-region", {{"epsilon", "0.06"}, {"steps", "20"}, {"region", "0,0,6,6"}});
  const Tensor& b = reg.maps.at("benign");
  for (int n = 0; n < 6; ++n) {
    CHECK(reg.after[n] == reg.before[n]);
    CHECK(mass.after[n] == mass.before[n]);
    double before = 0;
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 6; ++x) before += b[n * 256 + y * 16 + x];
    CHECK(reg.values.at("region_mass")[n] >= before / 256 - 1e-9);  // never worse: the input itself is the start
  }
  double gain = 0;
  for (int n = 0; n < 6; ++n) {
    double before = 0;
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 6; ++x) before += b[n * 256 + y * 16 + x];
    gain += reg.values.at("region_mass")[n] - before / 256;
  }
  CHECK(gain > 0);
  for (const char* method : {"integrated-gradients", "lrp-epsilon"}) {
    CAPTURE(method);
    const Result r = run(g, q, "explanation-topk", {{"epsilon", "0.06"}, {"steps", "10"}, {"explanation", method}, {"ig_steps", "8"}});
    for (int n = 0; n < 6; ++n) CHECK(r.after[n] == r.before[n]);
    CHECK(mean_of(r.values.at("topk_intersection")) < 0.95);
  }
}

// DeepLIFT (steered by the surrogate's input x gradient) and Grad-CAM (by its gradient map; no
// surrogate of Grad-CAM itself): judged on the real method's maps, each attack keeps the labels,
// stays in the ball and the pixel range, and changes the map more than random sign steps of the
// same size (the paper's baseline), for top-k intersection (lower) and center-of-mass shift (higher).
TEST_CASE("explanation attacks on DeepLIFT and Grad-CAM keep labels, stay in the ball, beat random steps") {
  Graph& g = trained();
  const Request q = trained_request(8, 47);
  for (const std::string method : {"deeplift", "grad-cam"}) {
    CAPTURE(method);
    const Params topk = {{"epsilon", "0.06"}, {"steps", "20"}, {"explanation", method}};
    Params random_topk = topk;
    random_topk["direction"] = "random";
    const Result r = run(g, q, "explanation-topk", topk), rnd = run(g, q, "explanation-topk", random_topk);
    check_inside(q, r, 0.06, false);
    check_inside(q, rnd, 0.06, false);
    for (int n = 0; n < 8; ++n) {
      CHECK(r.after[n] == r.before[n]);
      CHECK(r.before[n] == q.labels[n]);
      CHECK(r.values.at("topk_intersection")[n] <= 1.0);
    }
    // The reported maps are the real method's: the benign one is explain()'s map of the input.
    const Tensor benign = importance(explain::explain(g, q.inputs, Target(r.before), method).attribution);
    CHECK(max_abs_diff(benign, r.maps.at("benign")) < 1e-4);
    const double attacked = mean_of(r.values.at("topk_intersection")), random = mean_of(rnd.values.at("topk_intersection"));
    MESSAGE(method << " top-k intersection: attacked " << attacked << ", random steps " << random);
    CHECK(attacked < random);
    CHECK(attacked < 0.9);
    const Params mass = {{"epsilon", "0.06"}, {"steps", "20"}, {"explanation", method}};
    Params random_mass = mass;
    random_mass["direction"] = "random";
    const Result m = run(g, q, "explanation-mass", mass), mr = run(g, q, "explanation-mass", random_mass);
    check_inside(q, m, 0.06, false);
    for (int n = 0; n < 8; ++n) CHECK(m.after[n] == m.before[n]);
    const double shift = mean_of(m.values.at("center_shift")), random_shift = mean_of(mr.values.at("center_shift"));
    MESSAGE(method << " center-of-mass shift: attacked " << shift << ", random steps " << random_shift);
    CHECK(shift > random_shift);
  }
}

TEST_CASE("adv2 trades success for closeness of the map: lambda = 0 is PGD, larger lambda keeps the map closer") {
  Graph& g = trained();
  const Request q = trained_request(8, 31);
  auto distance = [](const Result& r) {  // mean squared distance of the attacked map to the benign one
    double d = 0;
    for (size_t i = 0; i < r.maps.at("attacked").size(); ++i)
      d += std::pow(r.maps.at("attacked")[i] - r.maps.at("benign")[i], 2);
    return d / r.maps.at("attacked").batch();
  };
  double last = 1e30;
  std::vector<double> rate;
  for (const char* lambda : {"0", "4", "64"}) {
    CAPTURE(lambda);
    const Result a = run(g, q, "adv2", {{"epsilon", "0.15"}, {"steps", "40"}, {"step_size", "0.01"}, {"lambda", lambda}});
    check_inside(q, a, 0.15, false);
    check_outcome(g, q, a);
    CHECK(distance(a) < last);
    last = distance(a);
    rate.push_back(success_rate(a));
    // The attacked map is the method's map of the adversarial input's own class, as a user sees it.
    const Tensor expected = importance(explain::explain(g, a.adversarial, Target(a.after), "saliency").attribution);
    CHECK(max_abs_diff(expected, a.maps.at("attacked")) < 1e-5);
  }
  CHECK(rate[0] == 1);  // plain PGD at this radius fools every input
  CHECK(rate[1] >= 0.25);
  // Targeted: every success reaches its target.
  Request t = q;
  for (int n = 0; n < 8; ++n) t.targets.push_back((q.labels[n] + 1) % 4);
  const Result a = run(g, t, "adv2", {{"epsilon", "0.15"}, {"steps", "40"}, {"step_size", "0.01"}, {"lambda", "1"}});
  check_outcome(g, t, a);
  CHECK(success_rate(a) >= 0.5);
}

// ---- detection ------------------------------------------------------------------------------

TEST_CASE("detect-explanation: ROC-AUC of its own scores, class maps from the reference set, deterministic per seed") {
  Graph& g = trained();
  Request q = trained_request(24, 37);
  shapes(400, 2, q.data, q.data_labels);  // clean reference inputs (a seed the test inputs do not use)
  const Params p = {{"attack", "pgd"}, {"epsilon", "0.2"}};
  const Result r = run(g, q, "detect-explanation", p);
  const std::vector<double>& clean = r.values.at("score_clean");
  const std::vector<double>& adv = r.values.at("score_adversarial");
  std::vector<double> positives;
  for (int n = 0; n < 24; ++n) {
    CHECK(clean[n] >= -1e-9);
    CHECK(clean[n] <= 1 + 1e-9);  // 1 − cosine of non-negative maps
    if (r.success[n]) positives.push_back(adv[n]);
  }
  REQUIRE(positives.size() >= 12);
  CHECK(r.totals.at("roc_auc") == doctest::Approx(roc_auc(clean, positives)));
  MESSAGE("class-map ROC-AUC " << r.totals.at("roc_auc"));
  CHECK(r.totals.at("roc_auc") > 0.7);  // pushed into another class, the map keeps its own class's shape
  // The adversarial inputs are PGD's (with its defaults and this radius).
  const Result pgd = run(g, q, "pgd", {{"radius", "0.2"}});
  CHECK(max_abs_diff(pgd.adversarial, r.adversarial) < 1e-5);
  CHECK(r.totals.at("attack_success_rate") == doctest::Approx(success_rate(pgd)));
  CHECK(r.notes.empty());
  // No attack succeeds at epsilon 0: no positives, ROC-AUC undefined, and the result says why.
  const Result none = run(g, q, "detect-explanation", {{"attack", "pgd"}, {"epsilon", "0"}});
  REQUIRE(success_rate(none) == 0);
  CHECK(std::isnan(none.totals.at("roc_auc")));
  CHECK(none.notes.at("roc_auc").find("no attack succeeded") != std::string::npos);
  // Every reference input moved to the wrong class would change the class maps: the score sees them.
  Request wrong = q;
  for (int& y : wrong.data_labels) y = (y + 1) % 4;
  CHECK_THROWS_WITH(run(g, wrong, "detect-explanation", p), doctest::Contains("no reference input"));
  // score=noise: deterministic per seed, its ROC-AUC that of its scores.
  const Params n = {{"attack", "pgd"}, {"epsilon", "0.2"}, {"score", "noise"}, {"samples", "4"}, {"stdev", "0.05"}};
  const Result a = run(g, q, "detect-explanation", n), b = run(g, q, "detect-explanation", n);
  CHECK(a.values.at("score_clean") == b.values.at("score_clean"));
  Params other = n;
  other["seed"] = "5";
  CHECK(run(g, q, "detect-explanation", other).values.at("score_clean") != a.values.at("score_clean"));
  std::vector<double> pos;
  for (int i = 0; i < 24; ++i)
    if (a.success[i]) pos.push_back(a.values.at("score_adversarial")[i]);
  CHECK(a.totals.at("roc_auc") == doctest::Approx(roc_auc(a.values.at("score_clean"), pos)));
  Request bare = q;
  bare.data = Tensor();
  CHECK_THROWS_WITH(run(g, bare, "detect-explanation", p), doctest::Contains("--ref-data"));
  CHECK_THROWS_WITH(run(g, q, "detect-explanation", {{"attack", "adv2"}}), doctest::Contains("known: fgsm, pgd"));
  CHECK_THROWS_WITH(run(g, q, "detect-explanation", {{"explanation", "nope"}}), doctest::Contains("nope"));
}

// ---- the black-box substitute attack ----------------------------------------------------------

namespace {

// Adam on the cross-entropy, as the command's trainer would (explain/ never trains).
void fit_adam(Graph& m, const Tensor& x, const std::vector<int>& y, const SubstituteFit& f) {
  OptimizerConfig oc;
  oc.kind = OptimizerKind::adam, oc.lr = float(f.lr);
  Optimizer opt(m, oc);
  BackwardOptions bo;
  bo.param_grads = true, bo.input_grad = false;
  Tensor grad;
  const int N = x.batch();
  for (int epoch = 0; epoch < f.epochs; ++epoch)
    for (int b = 0; b < N; b += f.batch) {
      const int e = std::min(N, b + f.batch);
      m.zero_grad();
      softmax_cross_entropy(m.forward(x.slice(b, e), Mode::train), {y.begin() + b, y.begin() + e}, &grad);
      m.backward(grad, bo);
      opt.step(oc.lr);
    }
}

}  // namespace

TEST_CASE("substitute: oracle labels, Jacobian augmentation by +-lambda, transfers better than random noise") {
  Graph& g = trained();
  Request q = trained_request(32, 41);
  Tensor init;
  std::vector<int> unused;
  shapes(40, 43, init, unused);
  q.data = init;
  int calls = 0;
  Tensor expected;  // round 1's new rows: round 0's stepped along the sign of the trained substitute's gradient
  q.fit_substitute = [&](Graph& sub, const Tensor& x, const std::vector<int>& labels, const SubstituteFit& f) {
    CHECK(f.round == calls);
    CHECK(x.batch() == 40 << calls);
    const Tensor& z = g.forward(x);  // the labels are the oracle's
    for (int n = 0; n < x.batch(); ++n) CHECK(labels[n] == int(std::max_element(z.data() + 4 * n, z.data() + 4 * n + 4) - (z.data() + 4 * n)));
    if (calls == 1) {  // rows [40, 80) are rows [0, 40) stepped by +-0.1 and clipped
      CHECK(max_abs_diff(x.slice(0, 40).clone(), init) < 1e-6);
      CHECK(max_abs_diff(x.slice(40, 80).clone(), expected) < 1e-6);
    }
    ++calls;
    fit_adam(sub, x, labels, f);
    if (calls == 1) {
      sub.forward(x);
      const Tensor grad = sub.backward(class_seed(40, 4, labels)).clone();
      expected = x.clone();
      int up = 0, down = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        up += grad[i] > 0, down += grad[i] < 0;
        expected[i] = std::clamp(x[i] + (grad[i] > 0 ? 0.1f : grad[i] < 0 ? -0.1f : 0.f), 0.f, 1.f);
      }
      CHECK(up > 1000);
      CHECK(down > 1000);
    }
  };
  const Params p = {{"rounds", "3"}, {"epochs", "8"}, {"lr", "0.003"}, {"epsilon", "0.25"}};
  const Result r = run(g, q, "substitute", p);
  CHECK(calls == 3);
  CHECK(r.totals.at("oracle_queries") == 40 + 40 + 80);  // each round asks about its new half (it counted 280)
  CHECK(r.totals.at("substitute_agreement") > 0.6);
  check_inside(q, r, 0.25, false);
  {  // zero_thresh goes to the white-box attack: above every gradient, no input moves
    Params still = p;
    still["zero_thresh"] = "1e6";
    calls = 0;
    const Result none = run(g, q, "substitute", still);
    for (int n = 0; n < 32; ++n) CHECK(none.l0[n] == 0);
  }
  // Random sign noise of the same size: the baseline a transfer attack must beat.
  Tensor noise = q.inputs.clone();
  Rng rng(3);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = std::clamp(noise[i] + (rng.uniform() < 0.5f ? -0.25f : 0.25f), 0.f, 1.f);
  const Tensor& z = g.forward(noise);
  double noise_rate = 0;
  for (int n = 0; n < 32; ++n) noise_rate += int(std::max_element(z.data() + 4 * n, z.data() + 4 * n + 4) - (z.data() + 4 * n)) != q.labels[n];
  noise_rate /= 32;
  MESSAGE("transfer rate " << success_rate(r) << ", random noise " << noise_rate << ", substitute agreement "
                           << r.totals.at("substitute_agreement"));
  CHECK(success_rate(r) > noise_rate + 0.1);
  CHECK(r.totals.at("transfer_rate") == doctest::Approx(success_rate(r)));
  CHECK(r.totals.at("transfer_rate_initially_correct") == doctest::Approx(success_rate(r)));  // all start correct
  // Three inputs the target misclassifies from the start (wrong labels): counted in transfer_rate,
  // not in transfer_rate_initially_correct. A short run, by hand on its own predictions.
  Request some_wrong = q;
  for (int n : {0, 1, 2}) some_wrong.labels[n] = (q.labels[n] + 1) % 4;
  calls = 0;
  const Result w = run(g, some_wrong, "substitute", {{"rounds", "1"}, {"epochs", "8"}, {"lr", "0.003"}, {"epsilon", "0.25"}});
  int correct = 0, transferred = 0, correct_transferred = 0;
  for (int n = 0; n < 32; ++n) {
    const bool t = w.after[n] != some_wrong.labels[n];
    transferred += t;
    if (w.before[n] == some_wrong.labels[n]) ++correct, correct_transferred += t;
  }
  CHECK(correct == 29);
  CHECK(w.totals.at("transfer_rate") == doctest::Approx(transferred / 32.0));
  CHECK(w.totals.at("transfer_rate_initially_correct") == doctest::Approx(correct_transferred / 29.0));
  CHECK(w.totals.at("transfer_rate_initially_correct") == doctest::Approx(success_rate_initially_correct(w)));
  CHECK(w.totals.at("transfer_rate") > w.totals.at("transfer_rate_initially_correct"));  // the three count as transfers
  // Errors: no initial set, a substitute that does not fit.
  Request bare = q;
  bare.data = Tensor();
  CHECK_THROWS_WITH(run(g, bare, "substitute", p), doctest::Contains("initial set"));
  CHECK_THROWS_WITH(run(g, q, "substitute", {{"architecture", "input(1,8,8) flatten dense(4)"}}), doctest::Contains("the target takes"));
  CHECK_THROWS_WITH(run(g, q, "substitute", {{"architecture", "lenet5"}}),
                    doctest::Contains("substitute: --param architecture='lenet5': "));
  CHECK_THROWS_WITH(run(g, q, "substitute", {{"architecture", "lenet5"}}), doctest::Contains("preset names are not taken here"));
  CHECK_THROWS_WITH(run(g, q, "substitute", {{"rounds", "10"}, {"max_set", "1000"}}), doctest::Contains("max_set"));
}
