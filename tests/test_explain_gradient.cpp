// The gradient family, DeconvNet/Guided Backprop, DeepLIFT and heatmaps: properties that must hold
// (finite differences, completeness, summation-to-delta, hand-computed values, batch invariance).
#include <doctest/doctest.h>

#include <cmath>

#include "tests/tensor_checks.h"
#include "engine/architecture.h"
#include "engine/layers.h"
#include "explain/attribution/deeplift.h"
#include "explain/attribution/gradient.h"
#include "explain/common/heatmap.h"
#include "explain/attribution/relu_rules.h"
#include "train/presets.h"

using namespace gb;
using namespace gb::explain;

// explain::explain, unambiguous next to `using namespace gb::explain`.
static Result run(Graph& g, const Tensor& x, const std::vector<int>& t, const std::string& m, const Params& p = {}) {
  return gb::explain::explain(g, x, t, m, p);
}

static Graph arch(const std::string& text, uint64_t seed = 7) {
  Graph g = graph_from_text(text);
  g.init(seed);
  return g;
}

static Tensor random_input(const Graph& g, int n, uint64_t seed, float lo = 0.f, float hi = 1.f) {
  Tensor x(Shape::batch_of(n, g.input_shape()));
  Rng r(seed);
  for (size_t i = 0; i < x.size(); ++i) x[i] = lo + (hi - lo) * r.uniform();
  return x;
}


static void set_param(Graph& g, const std::string& name, std::vector<float> v) {
  for (auto& [n, p] : g.named_params())
    if (n == name) {
      REQUIRE(p->value.size() == v.size());
      for (size_t i = 0; i < v.size(); ++i) p->value[i] = v[i];
      return;
    }
  FAIL("no parameter " << name);
}

// A small smooth net (tanh, softplus, avg-pool) where central differences are accurate.
static const char* kSmooth =
    "input(2,6,6) conv(3,k=3,p=1) tanh avgpool(2) flatten dense(8) softplus dense(4)";

TEST_CASE("saliency equals central finite differences on smooth nets") {
  for (const char* net : {kSmooth, "input(1,28,28) conv(6,k=5,p=2) tanh avgpool(2) flatten dense(10)"}) {
    CAPTURE(net);
    Graph g = arch(net);
    Tensor x = random_input(g, 2, 3);
    std::vector<int> t = {1, 3};
    Tensor s = saliency(g, x, t);
    const double scale = max_abs(s);
    Rng r(11);
    for (int trial = 0; trial < 12; ++trial) {
      const int n = trial % 2;
      const size_t i = n * x.sample_size() + r.below(uint32_t(x.sample_size()));
      const float h = 3e-3f, v = x[i];
      x[i] = v + h;
      double up = target_outputs(g, x, t)[n];
      x[i] = v - h;
      double down = target_outputs(g, x, t)[n];
      x[i] = v;
      CHECK(std::fabs((up - down) / (2 * h) - s[i]) <= 2e-3 * scale + 1e-4);
    }
  }
}

TEST_CASE("input-x-gradient is x times saliency; smoothgrad at level 0 is saliency") {
  Graph g = make_preset("lenet5-tanh");
  Tensor x = random_input(g, 2, 5);
  std::vector<int> t = {2, 7};
  Tensor s = run(g, x, t, "saliency").attribution;
  Tensor ixg = run(g, x, t, "input-x-gradient").attribution;
  for (size_t i = 0; i < x.size(); ++i) CHECK(ixg[i] == doctest::Approx(x[i] * s[i]).epsilon(1e-6));
  Tensor sg = run(g, x, t, "smoothgrad", {{"level", "0"}, {"n", "3"}}).attribution;
  CHECK(max_abs_diff(sg, s) <= 1e-6 * max_abs(s));
  // smoothgrad-sq at σ = 0 is the squared gradient and vargrad vanishes.
  Tensor sq = run(g, x, t, "smoothgrad-sq", {{"stdev", "0"}, {"n", "2"}}).attribution;
  for (size_t i = 0; i < x.size(); ++i) CHECK(sq[i] == doctest::Approx(s[i] * s[i]).epsilon(1e-5));
  CHECK(max_abs(run(g, x, t, "vargrad", {{"stdev", "0"}, {"n", "2"}}).attribution) <= 1e-12);
}

TEST_CASE("smoothgrad noise is seeded: same seed same map, another seed another map") {
  Graph g = make_preset("lenet5");
  Tensor x = random_input(g, 1, 71);
  Params a = {{"n", "4"}, {"seed", "1"}}, b = {{"n", "4"}, {"seed", "2"}};
  Tensor s1 = run(g, x, {3}, "smoothgrad", a).attribution, s2 = run(g, x, {3}, "smoothgrad", a).attribution;
  Tensor s3 = run(g, x, {3}, "smoothgrad", b).attribution;
  CHECK(max_abs_diff(s1, s2) == 0);
  CHECK(max_abs_diff(s1, s3) > 1e-3 * max_abs(s1));
  // vargrad is a variance: never negative.
  Tensor v = run(g, x, {3}, "vargrad", {{"n", "5"}, {"stdev", "0.3"}}).attribution;
  for (size_t i = 0; i < v.size(); ++i) CHECK(v[i] >= 0.f);
}

TEST_CASE("smoothgrad, smoothgrad-sq and vargrad are the mean, mean square and variance of saliency at the noisy copies") {
  // The noisy copies are rebuilt here as gradient.cpp draws them: one Rng per sample, seeded with
  // FNV-1a over the sample's bytes mixed with the seed, copy after copy, element after element.
  auto fnv = [](const float* p, size_t n, uint64_t seed) {
    uint64_t h = 1469598103934665603ULL ^ (seed * 0x9e3779b97f4a7c15ULL);
    const unsigned char* b = reinterpret_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
  };
  Graph g = arch(kSmooth);
  Tensor x = random_input(g, 2, 81);
  const std::vector<int> t = {1, 3};
  const int S = 6;
  const float sigma = 0.4f;
  const Params p = {{"n", std::to_string(S)}, {"stdev", "0.4"}, {"seed", "5"}, {"internal_batch", "4"}};
  const size_t D = x.sample_size();
  std::vector<double> sum(x.size(), 0.0), sq(x.size(), 0.0);
  for (int n = 0; n < 2; ++n) {
    const float* px = x.data() + n * D;
    Rng rng(fnv(px, D, 5));
    for (int s = 0; s < S; ++s) {
      Tensor noisy(Shape::batch_of(1, g.input_shape()));
      for (size_t i = 0; i < D; ++i) noisy[i] = px[i] + sigma * rng.normal();
      Tensor a = saliency(g, noisy, {t[n]});
      for (size_t i = 0; i < D; ++i) sum[n * D + i] += a[i], sq[n * D + i] += double(a[i]) * a[i];
    }
  }
  Tensor sg = run(g, x, t, "smoothgrad", p).attribution, sgsq = run(g, x, t, "smoothgrad-sq", p).attribution;
  Tensor vg = run(g, x, t, "vargrad", p).attribution;
  REQUIRE(vg.shape() == x.shape());
  std::vector<double> var(x.size());
  double vmax = 0, mmax = 0, m2max = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double m = sum[i] / S, m2 = sq[i] / S;
    var[i] = std::max(0.0, m2 - m * m);
    vmax = std::max(vmax, var[i]), mmax = std::max(mmax, std::fabs(m)), m2max = std::max(m2max, m2);
  }
  REQUIRE(vmax > 0);
  // The noise matters: the variance is not negligible next to the mean square.
  CHECK(vmax > 0.05 * m2max);
  for (size_t i = 0; i < x.size(); ++i) {
    CAPTURE(i);
    const double m = sum[i] / S, m2 = sq[i] / S;
    CHECK(std::fabs(sg[i] - m) <= 1e-5 * std::fabs(m) + 1e-6 * mmax);
    CHECK(std::fabs(sgsq[i] - m2) <= 1e-5 * m2 + 1e-6 * m2max);
    CHECK(std::fabs(vg[i] - var[i]) <= 1e-5 * var[i] + 1e-6 * vmax);
  }
}

TEST_CASE("saliency options: abs and max over channels keep the input's shape") {
  Graph g = arch(kSmooth);
  Tensor x = random_input(g, 1, 9);
  Tensor s = saliency(g, x, {0});
  Tensor m = run(g, x, {0}, "saliency", {{"abs", "true"}, {"reduce", "max"}}).attribution;
  REQUIRE(m.shape() == x.shape());
  for (int i = 0; i < 36; ++i) {
    float want = std::max(std::fabs(s[i]), std::fabs(s[36 + i]));
    CHECK(m[i] == doctest::Approx(want));
    CHECK(m[36 + i] == doctest::Approx(want));
  }
  CHECK_FALSE(run(g, x, {0}, "saliency", {{"abs", "true"}}).is_signed);
}

TEST_CASE("integrated gradients: completeness at 64 Gauss-Legendre steps, Riemann rules converge") {
  Graph g = make_preset("lenet5-tanh");
  Tensor x = random_input(g, 2, 21);
  std::vector<int> t = {4, 0};
  Result r = run(g, x, t, "integrated-gradients", {{"n_steps", "64"}});
  REQUIRE(r.attribution.shape() == x.shape());
  std::vector<double> fx = target_outputs(g, x, t), f0 = target_outputs(g, Tensor(x.shape()), t);
  for (int n = 0; n < 2; ++n) {
    double sum = 0;
    for (size_t i = 0; i < x.sample_size(); ++i) sum += r.attribution[n * x.sample_size() + i];
    CHECK(r.delta[n] == doctest::Approx(sum - (fx[n] - f0[n])).epsilon(1e-6));
    CHECK(std::fabs(r.delta[n]) <= 0.01 * std::fabs(fx[n] - f0[n]));
  }
  // Max-pool makes the integrand jump where a window's winner changes, which slows every rule
  // to first order; on an all-smooth net the Riemann rules converge at their textbook rates.
  Graph sm = arch("input(1,28,28) conv(6,k=5,p=2) tanh avgpool(2) conv(16,k=5) tanh avgpool(2) flatten dense(64) tanh "
                  "dense(10)");
  fx = target_outputs(sm, x, t), f0 = target_outputs(sm, Tensor(x.shape()), t);
  for (const char* m : {"riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"}) {
    CAPTURE(m);
    Result coarse = run(sm, x, t, "integrated-gradients", {{"n_steps", "4"}, {"method", m}});
    Result fine = run(sm, x, t, "integrated-gradients", {{"n_steps", "128"}, {"method", m}});
    for (int n = 0; n < 2; ++n) {
      CHECK(std::fabs(fine.delta[n]) <= std::fabs(coarse.delta[n]) + 1e-6);
      // Left/right sums converge as 1/n, middle/trapezoid as 1/n².
      const bool first_order = std::string(m) == "riemann_left" || std::string(m) == "riemann_right";
      CHECK(std::fabs(fine.delta[n]) <= (first_order ? 0.05 : 0.01) * std::fabs(fx[n] - f0[n]));
    }
  }
  // A constant baseline moves f(x') accordingly.
  fx = target_outputs(g, x, t);
  Result b = run(g, x, t, "integrated-gradients", {{"baseline", "0.5"}, {"n_steps", "64"}});
  std::vector<double> fb = target_outputs(g, Tensor(x.shape(), 0.5f), t);
  double sum = 0;
  for (size_t i = 0; i < x.sample_size(); ++i) sum += b.attribution[i];
  CHECK(std::fabs(sum - (fx[0] - fb[0])) <= 0.01 * std::fabs(fx[0] - fb[0]) + 1e-5);
}

TEST_CASE("layer integrated gradients: linear head by hand, completeness, tensor baseline") {
  Graph g = make_preset("lenet5-tanh");
  Tensor x = random_input(g, 3, 23), base = random_input(g, 1, 24, 0.f, 0.2f);
  std::vector<int> t = {2, 7, 5};
  Params p = {{"n_steps", "64"}};
  p.tensors["baseline"] = base;
  // Above the last tanh the net is the dense layer alone: f_c = w_c · a + b_c, so layer IG there
  // is exactly (a(x) − a(x')) ⊙ w_c.
  const int L = g.output() - 1;
  p["layer"] = g.layer(L).name;
  Result r = run(g, x, t, "integrated-gradients", p);
  REQUIRE(r.attribution.shape() == g.shape(L, 3));
  auto& head = static_cast<Dense&>(g.layer(g.output()));
  const int F = head.in_features;
  g.forward(base);
  std::vector<float> ab(g.activation(L).data(), g.activation(L).data() + F);
  g.forward(x);
  for (int n = 0; n < 3; ++n)
    for (int i = 0; i < F; ++i) {
      const float want = (g.activation(L)[size_t(n) * F + i] - ab[i]) * head.weight.value[size_t(t[n]) * F + i];
      CHECK(r.attribution[size_t(n) * F + i] == doctest::Approx(want).epsilon(1e-4).scale(1e-3));
    }
  // At a convolution the path is nonlinear; completeness still holds to 1%.
  // (A smooth net: max-pool would make the integrand jump, slowing convergence to first order.)
  Graph sm = arch("input(1,28,28) conv(6,k=5,p=2) tanh avgpool(2) conv(16,k=5) tanh avgpool(2) flatten dense(64) tanh "
                  "dense(10)");
  std::vector<double> fx = target_outputs(sm, x, t), fb = target_outputs(sm, full_baseline(x, base, 0, "test"), t);
  p["layer"] = "conv2";
  r = run(sm, x, t, "integrated-gradients", p);
  REQUIRE(r.attribution.shape() == sm.shape(sm.at("conv2"), 3));
  for (int n = 0; n < 3; ++n) {
    double sum = 0;
    for (size_t i = 0; i < r.attribution.sample_size(); ++i) sum += r.attribution[n * r.attribution.sample_size() + i];
    CHECK(r.delta[n] == doctest::Approx(sum - (fx[n] - fb[n])).epsilon(1e-6));
    CHECK(std::fabs(r.delta[n]) <= 0.01 * std::fabs(fx[n] - fb[n]));
  }
  // An unknown tensor parameter is refused like an unknown key.
  Params q;
  q.tensors["reference"] = base;
  CHECK_THROWS_WITH_AS(run(sm, x, t, "integrated-gradients", q), doctest::Contains("unknown parameter 'reference'"),
                       std::invalid_argument);
}

TEST_CASE("Gauss-Legendre nodes integrate polynomials exactly and weights sum to 1") {
  std::vector<double> a, w;
  ig_nodes(IgMethod::gausslegendre, 5, a, w);
  double s0 = 0, s8 = 0;
  for (int k = 0; k < 5; ++k) s0 += w[k], s8 += w[k] * std::pow(a[k], 8);
  CHECK(s0 == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(s8 == doctest::Approx(1.0 / 9).epsilon(1e-12));  // degree 8 <= 2*5-1
  CHECK(a.front() < a.back());
  // Symmetric about 1/2 as numpy's leggauss makes them (an odd count's middle node is 1/2), and
  // exact for the highest degree they can be at a larger count.
  for (int n : {6, 7, 64}) {
    CAPTURE(n);
    ig_nodes(IgMethod::gausslegendre, n, a, w);
    for (int k = 0; k < n; ++k) {
      CHECK(w[k] == w[n - 1 - k]);
      CHECK(std::fabs(a[k] + a[n - 1 - k] - 1) < 1e-15);
      if (k + 1 < n) CHECK(a[k] < a[k + 1]);
    }
    if (n % 2) CHECK(a[n / 2] == 0.5);
    double s = 0, odd = 0;  // ∫ t^(2n-1) on [0, 1]; and (t - 1/2)^3, odd about 1/2: 0
    for (int k = 0; k < n; ++k) s += w[k] * std::pow(a[k], 2 * n - 1), odd += w[k] * std::pow(a[k] - 0.5, 3);
    CHECK(s == doctest::Approx(1.0 / (2 * n)).epsilon(1e-12));
    CHECK(std::fabs(odd) < 1e-17);
  }
  ig_nodes(IgMethod::riemann_trapezoid, 3, a, w);
  CHECK(a == std::vector<double>{0, 0.5, 1});
  CHECK(w == std::vector<double>{0.25, 0.5, 0.25});
}

TEST_CASE("DeepLIFT: summation-to-delta on ReLU/max-pool and smooth nets") {
  for (const char* preset : {"lenet5", "lenet5-tanh", "lenet5-sigmoid", "lenet5-softplus"}) {
    CAPTURE(preset);
    Graph g = make_preset(preset);
    Tensor x = random_input(g, 3, 31);
    std::vector<int> t = {1, 5, 9};
    Result r = run(g, x, t, "deeplift");
    std::vector<double> fx = target_outputs(g, x, t), f0 = target_outputs(g, Tensor(x.shape()), t);
    for (int n = 0; n < 3; ++n) CHECK(std::fabs(r.delta[n]) <= 1e-4 * std::max(1.0, std::fabs(fx[n] - f0[n])));
  }
  // The layer form sums to the same difference at a hidden layer.
  Graph g = make_preset("lenet5");
  Tensor x = random_input(g, 2, 32);
  Result r = run(g, x, {3, 4}, "deeplift", {{"layer", "maxpool1"}});
  CHECK(r.attribution.shape() == g.shape(g.at("maxpool1"), 2));
  for (double d : r.delta) CHECK(std::fabs(d) <= 1e-4);
}

TEST_CASE("DeepLIFT on a linear model is gradient times (x - x')") {
  Graph g = arch("input(1,4,4) flatten dense(3)");
  Tensor x = random_input(g, 2, 41, -1, 1);
  std::vector<int> t = {0, 2};
  DeepLiftOptions o;
  o.baseline_value = 0.25f;
  Result r = deeplift(g, x, t, o);
  Tensor s = saliency(g, x, t);
  for (size_t i = 0; i < x.size(); ++i) CHECK(r.attribution[i] == doctest::Approx((x[i] - 0.25f) * s[i]).epsilon(1e-5));
}

// input(1,2,2) -> 1x1 conv with weights (1, -1): channels x and -x -> relu -> maxpool(2) ->
// dense [[2,-3],[-1,4]]. For x = [[1,2],[3,0.5]] channel 0 pools 3 (index 2); channel 1 is all
// negative, so relu gives zeros and the pool picks index 0 (first of the ties; pre-activation -1).
TEST_CASE("DeconvNet and Guided Backprop match hand-computed values") {
  Graph g = arch("input(1,2,2) conv(2,k=1,bias=false) relu maxpool(2) flatten dense(2,bias=false)");
  set_param(g, "conv1.weight", {1, -1});
  set_param(g, "dense1.weight", {2, -3, -1, 4});
  Tensor x = Tensor::from({2, 1, 2, 2}, {1, 2, 3, 0.5f, 1, 2, 3, 0.5f});
  std::vector<int> t = {0, 1};
  Tensor grad = saliency(g, x, t), dec = deconvnet(g, x, t), gbp = guided_backprop(g, x, t);
  // Target 0: pooled signal (2, -3). The gradient reaches x through channel 0 only (index 2);
  // channel 1's relu is off, and its signal is negative, so DeconvNet drops it too.
  CHECK(grad.clone().slice(0, 1).reshaped({4}).data()[2] == 2.f);
  std::vector<float> g0(grad.data(), grad.data() + 4), d0(dec.data(), dec.data() + 4), b0(gbp.data(), gbp.data() + 4);
  CHECK(g0 == std::vector<float>{0, 0, 2, 0});
  CHECK(d0 == std::vector<float>{0, 0, 2, 0});
  CHECK(b0 == std::vector<float>{0, 0, 2, 0});
  // Target 1: pooled signal (-1, 4). Gradient: -1 through channel 0. DeconvNet: relu(-1) = 0 on
  // channel 0, relu(4) = 4 on channel 1 despite its mask -> x gets -1 * 4 at index 0.
  // Guided: channel 0 signal negative, channel 1 input negative -> nothing.
  std::vector<float> g1(grad.data() + 4, grad.data() + 8), d1(dec.data() + 4, dec.data() + 8),
      b1(gbp.data() + 4, gbp.data() + 8);
  CHECK(g1 == std::vector<float>{0, 0, -1, 0});
  CHECK(d1 == std::vector<float>{-4, 0, 0, 0});
  CHECK(b1 == std::vector<float>{0, 0, 0, 0});
  // Stopping at a layer returns the signal there: the relu output's signal for target 1.
  Tensor at = deconvnet(g, x, t, g.at("relu1"));
  CHECK(at.shape() == Shape{2, 2, 2, 2});
  CHECK(at[8 + 2] == -1.f);  // sample 1, channel 0, index 2: the pool's signal before the relu rule
  CHECK(at[8 + 4] == 4.f);   // sample 1, channel 1, index 0
}

TEST_CASE("every method of this family: a batch equals its samples one by one; registry works") {
  Graph g = make_preset("lenet5");
  Tensor x = random_input(g, 3, 51);
  std::vector<int> t = {2, 8, 5};
  const std::vector<std::pair<std::string, Params>> cases = {
      {"saliency", {}},
      {"input-x-gradient", {}},
      {"integrated-gradients", {{"n_steps", "8"}, {"internal_batch", "5"}}},
      {"smoothgrad", {{"n", "4"}, {"internal_batch", "3"}}},
      {"smoothgrad-sq", {{"n", "3"}}},
      {"vargrad", {{"n", "3"}}},
      {"smoothgrad", {{"n", "2"}, {"base", "integrated-gradients"}, {"n_steps", "4"}}},
      {"deconvnet", {}},
      {"guided-backprop", {}},
      {"deeplift", {{"internal_batch", "2"}}},
  };
  for (const auto& c : cases) {  // (clang 14 cannot capture structured bindings in CAPTURE)
    const std::string& name = c.first;
    const Params& params = c.second;
    CAPTURE(name);
    CHECK(method_info(name).name == name);
    Result all = run(g, x, t, name, params);
    REQUIRE(all.attribution.shape() == x.shape());
    const double scale = std::max(1e-6, max_abs(all.attribution));
    for (int n = 0; n < 3; ++n) {
      Result one = run(g, x.slice(n, n + 1).clone(), {t[n]}, name, params);
      CHECK(max_abs_diff(one.attribution, all.attribution.slice(n, n + 1)) <= 1e-5 * scale);
      if (!all.delta.empty()) CHECK(one.delta[0] == doctest::Approx(all.delta[n]).epsilon(1e-4).scale(1.0));
    }
  }
}

TEST_CASE("errors: unknown method, parameter, target, input shape") {
  Graph g = make_preset("lenet5");
  Tensor x = random_input(g, 1, 61);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "salincy"), doctest::Contains("unknown method 'salincy'"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "saliency", {{"n_steps", "3"}}),
                       doctest::Contains("saliency: unknown parameter 'n_steps'"), std::invalid_argument);
  CHECK_THROWS_WITH(run(g, x, {0}, "smoothgrad", {{"n", "2"}, {"bogus", "1"}}), doctest::Contains("'bogus'"));
  CHECK_THROWS_WITH(run(g, x, {0}, "smoothgrad", {{"base", "nope"}}), doctest::Contains("unknown method 'nope'"));
  CHECK_THROWS_WITH(run(g, x, {0}, "integrated-gradients", {{"method", "simpson"}}), doctest::Contains("simpson"));
  CHECK_THROWS_WITH(run(g, x, {0}, "saliency", {{"layer", "conv9"}}), doctest::Contains("no layer named 'conv9'"));
  CHECK_THROWS_AS(run(g, x, {10}, "saliency"), std::out_of_range);
  CHECK_THROWS_AS(run(g, Tensor({1, 3, 28, 28}), {0}, "deeplift"), ShapeError);
}

TEST_CASE("heatmaps: signed maps are blue-white-red around zero, unsigned use a percentile; grid has labels") {
  Tensor a = Tensor::from({1, 1, 3}, {-2, 0, 1});
  Image im = heatmap(a, {});
  CHECK(std::vector<uint8_t>(im.px(0, 0), im.px(0, 0) + 3) == std::vector<uint8_t>{0, 0, 255});       // -absmax: blue
  CHECK(std::vector<uint8_t>(im.px(1, 0), im.px(1, 0) + 3) == std::vector<uint8_t>{255, 255, 255});   // 0: white
  CHECK(std::vector<uint8_t>(im.px(2, 0), im.px(2, 0) + 3) == std::vector<uint8_t>{255, 128, 128});   // half red
  // Unsigned, gray, two channels reduced by max |a|; the 50th percentile saturates the top half.
  Tensor u = Tensor::from({2, 1, 4}, {1, -2, 3, 0, -4, 1, 0, 8});
  HeatmapOptions o;
  o.is_signed = false;
  o.colormap = "gray";
  o.percentile = 50;
  CHECK(reduce_channels(u, false) == std::vector<float>{4, 2, 3, 8});
  Image gray = heatmap(u, o);
  CHECK(int(gray.px(1, 0)[0]) == 146);  // 2 / 3.5 of 255
  CHECK(int(gray.px(3, 0)[0]) == 255);
  CHECK(reduce_channels(u, true) == std::vector<float>{-3, -1, 3, 8});
  // Overlay: alpha 0.5 of white over a black input gives mid gray.
  HeatmapOptions ov;
  ov.overlay = 0.5f;
  Tensor black({1, 1, 3});
  Image o2 = heatmap(a, ov, &black);
  CHECK(int(o2.px(1, 0)[0]) == 128);
  Image g = grid({{im, im}, {im, im}}, {"input", "saliency"}, {"row one", "row two"}, 30, 20);
  CHECK(g.w == 4 + 2 * 34);
  size_t dark = 0;
  for (size_t i = 0; i < g.rgb.size(); i += 3) dark += g.rgb[i] == 0 && g.rgb[i + 1] == 0 && g.rgb[i + 2] == 0;
  CHECK(dark > 20);  // the text was rasterized
  // A caption wider than the grid goes on over more lines (it was cut at the edge), and so does a
  // header word wider than its cell (it was cut without a mark).
  auto dark_pixels = [](const Image& i) {
    size_t n = 0;
    for (size_t k = 0; k < i.rgb.size(); k += 3) n += i.rgb[k] == 0 && i.rgb[k + 1] == 0 && i.rgb[k + 2] == 0;
    return n;
  };
  const std::string longer = "row one: a pullover with an extraordinarily long descriptive name p=0.93";
  Image wrapped = grid({{im, im}, {im, im}}, {"input", "saliency"}, {longer, "row two"}, 30, 20);
  CHECK(wrapped.w == g.w);
  CHECK(wrapped.h > g.h);
  CHECK((wrapped.h - g.h) % (gb::explain::line_height() + 2) == 0);
  CHECK(dark_pixels(wrapped) > dark_pixels(grid({{im, im}, {im, im}}, {"input", "saliency"}, {longer.substr(0, 10), "row two"}, 30, 20)));
  Image head = grid({{im}}, {"lrp-epsilon-alpha2-beta1"}, {}, 30, 20), cut = grid({{im}}, {"lrp-e"}, {}, 30, 20);
  CHECK(head.h > cut.h);
  CHECK(dark_pixels(head) > 3 * dark_pixels(cut));
  // A long word is cut between UTF-8 code points (a 'é' split in two drew as "??"), and nothing is lost.
  const std::string accents = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
  std::string joined;
  for (const std::string& l : wrap_text(accents, 13)) {
    REQUIRE(!l.empty());
    CHECK((uint8_t(l[0]) & 0xC0) != 0x80);
    joined += l;
  }
  CHECK(joined == accents);
  CHECK(wrap_text("", 10).empty());
  CHECK(wrap_text("abc", 0) == std::vector<std::string>{"a", "b", "c"});
  // A long word breaks after a hyphen where one fits, else where the width runs out.
  const int w = text_width("integrated-gra");
  CHECK(wrap_text("integrated-gradients", w) == std::vector<std::string>{"integrated-", "gradients"});
  const std::vector<std::string> no_hyphen = wrap_text("integratedgradients", w);
  REQUIRE(no_hyphen.size() == 2);
  CHECK(no_hyphen[0] + no_hyphen[1] == "integratedgradients");
  CHECK(text_width(no_hyphen[0]) <= w);
  CHECK(text_width(no_hyphen[0] + no_hyphen[1][0]) > w);
  CHECK(wrap_text("lrp-epsilon-alpha2-beta1", text_width("lrp-epsilon-alpha")) ==
        std::vector<std::string>{"lrp-epsilon-", "alpha2-beta1"});
  CHECK(wrap_text("lrp(conv=gamma:0.25,dense=epsilon:0.01)", text_width("lrp(conv=gamma:0.25,den")) ==
        std::vector<std::string>{"lrp(conv=gamma:0.25,", "dense=epsilon:0.01)"});
  // A number keeps the word before it when both fit on the next line.
  CHECK(wrap_text("S=8.29 | data 9.36", text_width("S=8.29 | data")) == std::vector<std::string>{"S=8.29 |", "data 9.36"});
  CHECK(wrap_text("0.415 -> 0.105", text_width("0.415 ->")) == std::vector<std::string>{"0.415", "-> 0.105"});
  CHECK(wrap_text("error 0.000727", text_width("error 0.0")) == std::vector<std::string>{"error", "0.000727"});
  CHECK(wrap_text("class two facet", text_width("class two")) == std::vector<std::string>{"class two", "facet"});
  CHECK(wrap_text("lr 1 2 3 4 5 6 7 8", text_width("lr 1 2 3")).size() == 3);  // numbers fill lines

  CHECK(wrap_text("a\xc2\xa0" "b c", text_width("a b")) == std::vector<std::string>{"a\xc2\xa0" "b", "c"});
  CHECK(text_width("a\xc2\xa0" "b") == text_width("a b"));
}
