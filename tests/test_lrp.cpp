// LRP rules, composites and the BatchNorm canonizer: conservation, agreement with input×gradient,
// hand-computed small cases, and batch-vs-single consistency.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>

#include "tests/tensor_checks.h"
#include "engine/layers.h"
#include "explain/attribution/canonizer.h"
#include "explain/attribution/lrp_rules.h"
#include "explain/attribution/method.h"

using namespace gb;
using namespace gb::explain;

namespace {

Tensor random_tensor(const Shape& s, uint64_t seed, float lo = -1, float hi = 1) {
  Rng r(seed);
  Tensor t(s);
  for (size_t i = 0; i < t.size(); ++i) t[i] = lo + (hi - lo) * r.uniform();
  return t;
}

double sample_sum(const Tensor& t, int n) {
  const size_t D = t.sample_size();
  double s = 0;
  for (size_t i = 0; i < D; ++i) s += t[n * D + i];
  return s;
}


// max |a - b| relative to max |b|
double rel_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m / std::max(max_abs(b), 1e-30);
}

void set(Tensor& t, std::vector<float> v) {
  REQUIRE(t.size() == v.size());
  for (size_t i = 0; i < v.size(); ++i) t[i] = v[i];
}

void randomize_biases(Graph& g, uint64_t seed) {
  Rng r(seed);
  for (auto& [name, p] : g.named_params())
    if (p->name == "bias")
      for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 0.2f * (2 * r.uniform() - 1);
}

Graph dense_net() {  // bias-free ReLU MLP
  Graph g(Shape{6});
  g.then<Dense>(8, false).then<ReLU>().then<Dense>(7, false).then<ReLU>().then<Dense>(4, false);
  g.init(3);
  return g;
}

Graph conv_net(bool bias = false) {  // conv + max-pool + dense, ReLU
  Graph g(Shape{2, 8, 8});
  g.then<Conv2d>(4, 3, 1, 1, bias).then<ReLU>().then<MaxPool2d>(2);
  g.then<Conv2d>(5, 3, 1, 0, bias).then<ReLU>().then<Flatten>().then<Dense>(3, bias);
  g.init(5);
  if (bias) randomize_biases(g, 11);
  return g;
}

std::vector<float> logits_of(Graph& g, const Tensor& x, const std::vector<int>& t) {
  const Tensor& y = g.forward(x);
  std::vector<float> v;
  for (int n = 0; n < x.batch(); ++n) v.push_back(y[size_t(n) * y.dim(1) + t[n]]);
  return v;
}

void check_layerwise_conservation(Graph& g, const Tensor& x, const std::vector<int>& t) {
  auto f = logits_of(g, x, t);
  std::vector<std::string> names{""};
  for (int i = 0; i < g.size(); ++i) names.push_back(g.layer(i).name);
  for (auto& name : names) {
    Params p;
    if (!name.empty()) p["layer"] = name;
    Result r = lrp(g, x, t, "zero", p);
    CAPTURE(name);
    for (int n = 0; n < x.batch(); ++n) {
      CHECK(std::abs(sample_sum(r.attribution, n) - f[n]) <= 1e-4 * std::abs(f[n]));
      CHECK(std::abs(r.delta[n]) <= 1e-4 * std::abs(f[n]));
    }
  }
}

Tensor input_x_gradient(Graph& g, const Tensor& x, const std::vector<int>& t) {
  const Tensor& y = g.forward(x);
  Tensor seed(y.shape(), 0.f);
  for (int n = 0; n < x.batch(); ++n) seed[size_t(n) * y.dim(1) + t[n]] = 1;
  Tensor grad = g.backward(seed).clone();
  for (size_t i = 0; i < grad.size(); ++i) grad[i] *= x[i];
  return grad;
}

// 2 inputs -> dense(2, no bias) -> relu -> dense(1, no bias): the classic hand-worked example.
Graph two_two_one(std::vector<float> w1, std::vector<float> w2, std::vector<float> b1 = {}) {
  Graph g(Shape{2});
  g.then<Dense>(2, !b1.empty()).then<ReLU>().then<Dense>(1, false);
  set(static_cast<Dense&>(g.layer(0)).weight.value, w1);
  if (!b1.empty()) set(static_cast<Dense&>(g.layer(0)).bias.value, b1);
  set(static_cast<Dense&>(g.layer(2)).weight.value, w2);
  return g;
}

}  // namespace

TEST_CASE("LRP-0 conserves the logit at every layer of bias-free ReLU nets") {
  SUBCASE("dense") {
    Graph g = dense_net();
    check_layerwise_conservation(g, random_tensor({3, 6}, 1), {0, 2, 3});
  }
  SUBCASE("conv + max-pool + dense") {
    Graph g = conv_net();
    check_layerwise_conservation(g, random_tensor({2, 2, 8, 8}, 2), {1, 2});
  }
  SUBCASE("through on_backward hooks, one pass") {
    Graph g = conv_net();
    Tensor x = random_tensor({2, 2, 8, 8}, 4);
    std::vector<int> t{0, 1};
    auto f = logits_of(g, x, t);
    BackwardRules rules = lrp_rules(g, composite_from_name("zero"));
    const Tensor& y = g.forward(x);
    Tensor seed(y.shape(), 0.f);
    for (int n = 0; n < 2; ++n) seed[n * 3 + t[n]] = f[n];
    int seen = 0;
    BackwardOptions opt;
    opt.rules = &rules;
    opt.on_node = [&](int node, const Tensor& r) {
      ++seen;
      for (int n = 0; n < 2; ++n) CHECK(std::abs(sample_sum(r, n) - f[n]) <= 1e-4 * std::abs(f[n]));
      (void)node;
    };
    g.backward(seed, opt);
    CHECK(seen == g.size() + 1);
  }
}

TEST_CASE("LRP-0 equals input x gradient on bias-free ReLU nets") {
  Graph d = dense_net();
  Tensor xd = random_tensor({3, 6}, 7);
  std::vector<int> td{1, 0, 3};
  CHECK(rel_diff(lrp(d, xd, td, "zero").attribution, input_x_gradient(d, xd, td)) < 1e-4);
  Graph c = conv_net();
  Tensor xc = random_tensor({2, 2, 8, 8}, 8);
  std::vector<int> tc{2, 0};
  CHECK(rel_diff(lrp(c, xc, tc, "zero").attribution, input_x_gradient(c, xc, tc)) < 1e-4);
  // ε → 0 approaches the same map.
  CHECK(rel_diff(lrp(c, xc, tc, "epsilon", {{"epsilon", "1e-9"}}).attribution, input_x_gradient(c, xc, tc)) < 1e-4);
}

TEST_CASE("z+ relevance is non-negative for non-negative inputs") {
  Graph g = conv_net(true);
  Tensor x = random_tensor({3, 2, 8, 8}, 9, 0, 1);
  Result r = lrp(g, x, {0, 1, 2}, "zplus", {{"seed", "onehot"}});
  int positive = 0;
  for (size_t i = 0; i < r.attribution.size(); ++i) {
    CHECK(r.attribution[i] >= 0.f);
    positive += r.attribution[i] > 0;
  }
  CHECK(positive > 0);
}

TEST_CASE("the epsilon conservation gap shrinks as epsilon goes to 0") {
  Graph g = conv_net();
  Tensor x = random_tensor({2, 2, 8, 8}, 10);
  std::vector<int> t{0, 2};
  for (int n = 0; n < 2; ++n) {
    double prev = INFINITY;
    for (const char* e : {"1", "0.1", "0.01", "0.001"}) {
      double gap = std::abs(lrp(g, x, t, "lrp-epsilon", {{"epsilon", e}}).delta[n]);
      CAPTURE(e);
      CHECK(gap < prev);
      prev = gap;
    }
  }
}

TEST_CASE("the BatchNorm canonizer folds BN into the preceding layer and leaves the logits unchanged") {
  Graph g(Shape{2, 8, 8});
  g.then<Conv2d>(4, 3, 1, 1, true).then<BatchNorm2d>().then<ReLU>();
  g.then<Conv2d>(5, 3, 1, 0, false).then<BatchNorm2d>().then<ReLU>().then<MaxPool2d>(2);
  g.then<Flatten>().then<Dense>(6).then<BatchNorm2d>().then<ReLU>().then<Dense>(3);
  g.init(12);
  Rng r(13);
  for (auto& [name, p] : g.named_params()) {
    if (name.rfind("batchnorm", 0) != 0 && p->name != "bias") continue;
    for (size_t i = 0; i < p->value.size(); ++i) {
      float u = r.uniform();
      if (p->name == "running_var") p->value[i] = 0.2f + 2 * u;
      else if (p->name == "weight") p->value[i] = 0.5f + u;
      else p->value[i] = 0.5f * (2 * u - 1);  // bias, running_mean
    }
  }
  Canonized c = canonize(g);
  CHECK(c.folded == 3);
  CHECK_FALSE(has_batchnorm(c.graph));
  CHECK(c.graph.size() == g.size() - 3);
  Tensor x = random_tensor({3, 2, 8, 8}, 14);
  Tensor y0 = g.forward(x).clone();
  Tensor y1 = c.graph.forward(x).clone();
  CHECK(rel_diff(y1, y0) < 1e-5);
  // A folded BatchNorm's name maps to the layer holding it, whose output is the BN's output.
  g.forward(x);
  Tensor bn_out = g.activation(g.at("batchnorm2")).clone();
  c.graph.forward(x);
  CHECK(rel_diff(c.graph.activation(c.node_map[g.at("batchnorm2")]), bn_out) < 1e-5);
  // LRP on the model runs on the canonized copy: same as running it there directly.
  Result a = lrp(g, x, {0, 1, 2}, "epsilon-gamma-box");
  Result b = lrp(c.graph, x, {0, 1, 2}, "epsilon-gamma-box");
  CHECK(rel_diff(a.attribution, b.attribution) < 1e-5);
  Result at_bn = lrp(g, x, {0, 1, 2}, "epsilon", {{"layer", "batchnorm3"}});
  CHECK(at_bn.attribution.shape() == Shape{3, 6});
}

TEST_CASE("LRP of a conv followed by BatchNorm, as target or layer=, is the conv's own output, not the BN's") {
  Graph g(Shape{2, 6, 6});
  g.then<Conv2d>(3, 3, 1, 1, false).then<BatchNorm2d>().then<ReLU>();
  g.then<Conv2d>(4, 3, 1, 0, false).then<BatchNorm2d>().then<ReLU>();
  g.then<Flatten>().then<Dense>(3, false);
  g.init(21);
  Rng r(22);
  for (auto& [name, p] : g.named_params()) {
    if (name.rfind("batchnorm", 0) != 0) continue;
    for (size_t i = 0; i < p->value.size(); ++i) {
      const float u = r.uniform();
      p->value[i] = p->name == "running_var" ? 0.2f + 2 * u : p->name == "weight" ? 0.5f + u : 0.5f * (2 * u - 1);
    }
  }
  Tensor x = random_tensor({2, 2, 6, 6}, 23);
  g.forward(x);
  const Tensor conv2 = g.activation(g.at("conv2")).clone(), bn2 = g.activation(g.at("batchnorm2")).clone();
  // Target conv2's channel 1 (mean): the relevance starts from that value (it started from BN's).
  for (const char* unit : {"conv2", "batchnorm2"}) {
    CAPTURE(unit);
    const Tensor& a = std::string(unit) == "conv2" ? conv2 : bn2;
    Result res = lrp(g, x, Target::channel_mean(g.at(unit), 1), "epsilon");
    const size_t D = res.attribution.sample_size(), HW = size_t(a.dim(2)) * a.dim(3);
    for (int n = 0; n < 2; ++n) {
      double seed = -res.delta[n], want = 0;
      for (size_t i = 0; i < D; ++i) seed += res.attribution[n * D + i];
      for (size_t i = 0; i < HW; ++i) want += a[(size_t(n) * 4 + 1) * HW + i] / double(HW);
      CHECK(seed == doctest::Approx(want).epsilon(1e-5));
    }
  }
  // layer=conv2: the relevance at conv2's output is the BN's ε rule applied to the relevance at
  // the BN's output, R_conv = a_conv·s / a_bn · R_bn (it was R_bn itself).
  Result at_bn = lrp(g, x, {0, 2}, "epsilon", {{"layer", "batchnorm2"}});
  Result at_conv = lrp(g, x, {0, 2}, "epsilon", {{"layer", "conv2"}});
  std::vector<float> scale, shift;
  static_cast<const BatchNorm2d&>(g.layer(g.at("batchnorm2"))).eval_affine(scale, shift);
  const size_t HW = size_t(conv2.dim(2)) * conv2.dim(3);
  int compared = 0;
  for (size_t i = 0; i < conv2.size(); ++i) {
    if (std::abs(bn2[i]) < 0.05f) continue;  // the ε stabilizer matters there
    const int c = int(i / HW % 4);
    CHECK(at_conv.attribution[i] == doctest::Approx(conv2[i] * scale[c] / bn2[i] * at_bn.attribution[i]).epsilon(1e-3));
    ++compared;
  }
  CHECK(compared > 20);
}

TEST_CASE("a BatchNorm that cannot be folded gets an epsilon rule on its affine map") {
  // BN straight on the input: nothing to fold into. With zero shift (β = μ = 0) its ε rule
  // conserves relevance exactly, so LRP-0 still conserves the logit.
  Graph g(Shape{5});
  g.then<BatchNorm2d>().then<Dense>(6, false).then<ReLU>().then<Dense>(2, false);
  g.init(15);
  auto& bn = static_cast<BatchNorm2d&>(g.layer(0));
  set(bn.weight.value, {0.5f, 1.5f, 2.f, 0.7f, 1.2f});
  set(bn.running_var.value, {0.3f, 2.f, 1.f, 0.8f, 4.f});
  CHECK(canonize(g).folded == 0);
  Tensor x = random_tensor({2, 5}, 16);
  std::vector<int> t{0, 1};
  auto f = logits_of(g, x, t);
  Result r = lrp(g, x, t, "zero");
  for (int n = 0; n < 2; ++n) CHECK(std::abs(r.delta[n]) <= 1e-4 * std::abs(f[n]));
  CHECK(rel_diff(r.attribution, input_x_gradient(g, x, t)) < 1e-4);
}

TEST_CASE("the hand-worked 2-2-1 network (Bach et al.)") {
  // z_k = Σ_i W1_ik u_i: z1 = 1·1 + 1·2 = 3, z2 = 2·1 − 0.5·2 = 1; v1 = 1·z1 + 2·z2 = 5.
  // r(z1) = 1·3/5·5 = 3, r(z2) = 2·1/5·5 = 2;
  // r(u1) = 1·1/3·3 + 2·1/1·2 = 5, r(u2) = 1·2/3·3 + (−0.5)·2/1·2 = 0.
  Graph g = two_two_one({1, 1, 2, -0.5f}, {1, 2});
  Tensor u = Tensor::from({1, 2}, {1, 2});
  Result r = lrp(g, u, {0}, "zero");
  CHECK(r.attribution[0] == doctest::Approx(5).epsilon(1e-6));
  CHECK(r.attribution[1] == doctest::Approx(0).epsilon(1e-6));
  Result rz = lrp(g, u, {0}, "zero", {{"layer", "relu1"}});
  CHECK(rz.attribution[0] == doctest::Approx(3));
  CHECK(rz.attribution[1] == doctest::Approx(2));
  CHECK(std::abs(r.delta[0]) < 1e-5);
  // The default ε = 1e-6 barely moves it.
  Result re = lrp(g, u, {0}, "epsilon");
  CHECK(re.attribution[0] == doctest::Approx(5).epsilon(1e-5));
  // One-hot seed: relevance sums to 1 instead of the logit.
  Result ro = lrp(g, u, {0}, "zero", {{"seed", "onehot"}});
  CHECK(ro.attribution[0] == doctest::Approx(1.0));
  CHECK(std::abs(ro.delta[0]) < 1e-6);
}

TEST_CASE("gamma with gamma = 0 equals LRP-0") {
  Graph g = conv_net(true);
  Tensor x = random_tensor({2, 2, 8, 8}, 17);  // mixed signs: exercises the a⁻ half
  std::vector<int> t{1, 2};
  Result a = lrp(g, x, t, "gamma", {{"gamma", "0"}});
  Result b = lrp(g, x, t, "zero");
  CHECK(rel_diff(a.attribution, b.attribution) < 1e-4);
  // And γ > 0 changes it.
  CHECK(rel_diff(lrp(g, x, t, "gamma").attribution, b.attribution) > 1e-3);
}

TEST_CASE("gamma and alpha-beta match the formulas of METHODS.md on one dense layer") {
  // x (mixed signs) -> dense(3, bias) -> output; the seed is the target logit.
  Graph g(Shape{4});
  g.then<Dense>(3, true);
  auto& L = static_cast<Dense&>(g.layer(0));
  set(L.weight.value, {0.5f, -1.f, 0.3f, 2.f, -0.4f, 0.8f, -1.2f, 0.1f, 1.f, 0.2f, -0.7f, -0.3f});
  set(L.bias.value, {0.1f, -0.2f, 0.3f});
  Tensor x = Tensor::from({1, 4}, {1.f, -0.5f, 2.f, 0.7f});
  auto P = [](double v) { return std::max(v, 0.0); };
  auto M = [](double v) { return std::min(v, 0.0); };
  auto W = [&](int j, int i) { return double(L.weight.value[j * 4 + i]); };
  auto stab = [](double z) { return z + (z >= 0 ? 1e-6 : -1e-6); };
  const float* y = g.forward(x).data();
  for (int c = 0; c < 3; ++c) {
    CAPTURE(c);
    const double R = y[c], z = y[c], b = L.bias.value[c];
    // γ = 0.25, sign-aware.
    const double gm = 0.25;
    std::vector<double> expect(4);
    double zp = b + gm * P(b), zn = b + gm * M(b);
    for (int i = 0; i < 4; ++i) {
      zp += P(x[i]) * (W(c, i) + gm * P(W(c, i))) + M(x[i]) * (W(c, i) + gm * M(W(c, i)));
      zn += P(x[i]) * (W(c, i) + gm * M(W(c, i))) + M(x[i]) * (W(c, i) + gm * P(W(c, i)));
    }
    for (int i = 0; i < 4; ++i)
      expect[i] = z > 0 ? (P(x[i]) * (W(c, i) + gm * P(W(c, i))) + M(x[i]) * (W(c, i) + gm * M(W(c, i)))) * R / stab(zp)
                        : (P(x[i]) * (W(c, i) + gm * M(W(c, i))) + M(x[i]) * (W(c, i) + gm * P(W(c, i)))) * R / stab(zn);
    Result rg = lrp(g, x, {c}, "gamma");
    for (int i = 0; i < 4; ++i) CHECK(rg.attribution[i] == doctest::Approx(expect[i]).epsilon(1e-5));
    // α = 2, β = 1.
    double zpos = P(b), zneg = M(b);
    for (int i = 0; i < 4; ++i) {
      zpos += P(x[i] * W(c, i));
      zneg += M(x[i] * W(c, i));
    }
    Result ra = lrp(g, x, {c}, "alpha-beta");
    for (int i = 0; i < 4; ++i) {
      double e = (2 * P(x[i] * W(c, i)) / stab(zpos) - 1 * M(x[i] * W(c, i)) / stab(zneg)) * R;
      CHECK(ra.attribution[i] == doctest::Approx(e).epsilon(1e-5));
    }
  }
}

TEST_CASE("alpha-beta with alpha = 1, beta = 0 equals z+ on positive inputs") {
  Graph g = conv_net(true);
  Tensor x = random_tensor({2, 2, 8, 8}, 18, 0, 1);
  std::vector<int> t{0, 1};
  Result a = lrp(g, x, t, "alpha-beta", {{"alpha", "1"}, {"beta", "0"}});
  Result b = lrp(g, x, t, "zplus");
  CHECK(rel_diff(a.attribution, b.attribution) < 1e-6);
  CHECK(rel_diff(lrp(g, x, t, "alpha-beta").attribution, b.attribution) > 1e-3);
}

TEST_CASE("flat spreads relevance uniformly over the receptive field") {
  // 1x3x3 input -> conv(1, k=2) -> flatten -> dense(1, weights 1): the output is the sum of the
  // four conv outputs, and LRP-0 on the dense gives each conv output its own value as relevance.
  Graph g(Shape{1, 3, 3});
  g.then<Conv2d>(1, 2, 1, 0, false).then<Flatten>().then<Dense>(1, false);
  set(static_cast<Conv2d&>(g.layer(0)).weight.value, {1.f, -2.f, 0.5f, 3.f});
  set(static_cast<Dense&>(g.layer(2)).weight.value, {1, 1, 1, 1});
  Tensor x = Tensor::from({1, 1, 3, 3}, {0.2f, -1.f, 0.5f, 1.f, 0.3f, -0.4f, 2.f, 0.1f, 0.6f});
  const Tensor& z = g.forward(x);  // [1, 1]
  (void)z;
  Tensor co = g.activation(0).clone();  // conv outputs [1,1,2,2], the relevance each window holds
  Result r = lrp(g, x, {0}, "", {{"rule", "first=flat,dense=zero"}});
  std::vector<double> expect(9, 0.0);
  for (int oh = 0; oh < 2; ++oh)
    for (int ow = 0; ow < 2; ++ow)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) expect[(oh + i) * 3 + ow + j] += co[oh * 2 + ow] / 4.0;
  for (int p = 0; p < 9; ++p) CHECK(r.attribution[p] == doctest::Approx(expect[p]).epsilon(1e-5));
  // The centre pixel sits in all four windows: it gets a quarter of each.
  CHECK(r.attribution[4] == doctest::Approx((co[0] + co[1] + co[2] + co[3]) / 4).epsilon(1e-5));
  // epsilon-plus-flat puts flat on this first layer too.
  CHECK(rel_diff(lrp(g, x, {0}, "epsilon-plus-flat").attribution, r.attribution) < 1e-4);
}

TEST_CASE("wsquare on a hand-computed case") {
  // W = [[1,2],[3,-1]]; x = (1,1): z = (3, 2), v = 5, so R at the hidden layer is (3, 2).
  // w²: R_x1 = 1/5·3 + 9/10·2 = 2.4, R_x2 = 4/5·3 + 1/10·2 = 2.6 (independent of x).
  Graph g = two_two_one({1, 2, 3, -1}, {1, 1});
  Result r = lrp(g, Tensor::from({1, 2}, {1, 1}), {0}, "", {{"rule", "first=wsquare,dense=zero"}});
  CHECK(r.attribution[0] == doctest::Approx(2.4).epsilon(1e-5));
  CHECK(r.attribution[1] == doctest::Approx(2.6).epsilon(1e-5));
}

TEST_CASE("zbox on a hand-computed case, with the bias cancelling") {
  // W = [[1,2],[3,-1]], b = (0.5, -0.3), x = (1,1), bounds l = -1, h = 2.
  // Hidden outputs z = (3.5, 1.7) carry relevance (3.5, 1.7) under LRP-0 on the last layer.
  // Numerators x w − l w⁺ − h w⁻: unit 1: (1+1, 2+2) = (2, 4), sum 6; unit 2: (3+3, −1+2) = (6, 1), sum 7.
  Graph g = two_two_one({1, 2, 3, -1}, {1, 1}, {0.5f, -0.3f});
  Tensor x = Tensor::from({1, 2}, {1, 1});
  const double e0 = 3.5 * 2 / 6 + 1.7 * 6 / 7, e1 = 3.5 * 4 / 6 + 1.7 * 1 / 7;
  Result r = lrp(g, x, {0}, "", {{"rule", "first=zbox:-1:2,dense=zero"}});
  CHECK(r.attribution[0] == doctest::Approx(e0).epsilon(1e-5));
  CHECK(r.attribution[1] == doctest::Approx(e1).epsilon(1e-5));
  Result c = lrp(g, x, {0}, "epsilon-gamma-box", {{"low", "-1"}, {"high", "2"}});
  CHECK(c.attribution[0] == doctest::Approx(e0).epsilon(1e-4));
  CHECK(c.attribution[1] == doctest::Approx(e1).epsilon(1e-4));
  // Per-sample bounds: with x = (-1, 2) the sample's own min/max equal the bounds above.
  Tensor x2 = Tensor::from({1, 2}, {-1, 2});
  Result s1 = lrp(g, x2, {0}, "", {{"rule", "first=zbox:min:max,dense=zero"}});
  Result s2 = lrp(g, x2, {0}, "", {{"rule", "first=zbox:-1:2,dense=zero"}});
  CHECK(rel_diff(s1.attribution, s2.attribution) < 1e-6);
}

TEST_CASE("a batch equals the samples one by one for every LRP method") {
  Graph g(Shape{2, 8, 8});
  g.then<Conv2d>(4, 3, 1, 1).then<BatchNorm2d>().then<ReLU>().then<MaxPool2d>(2);
  g.then<Conv2d>(6, 3, 1, 1).then<ReLU>().then<AvgPool2d>(2);
  g.then<Flatten>().then<Dropout>(0.3f).then<Dense>(8).then<ReLU>().then<Dense>(5);
  g.init(19);
  randomize_biases(g, 20);
  auto& bn = static_cast<BatchNorm2d&>(g.layer(1));
  set(bn.running_mean.value, {0.1f, -0.2f, 0.05f, 0.3f});
  set(bn.running_var.value, {0.5f, 1.5f, 2.f, 0.8f});
  Tensor x = random_tensor({4, 2, 8, 8}, 21);
  std::vector<int> t{0, 3, 4, 1};
  std::vector<std::pair<std::string, Params>> runs;
  for (auto& m : methods())
    if (m.name.rfind("lrp", 0) == 0) runs.push_back({m.name, {}});
  runs.push_back({"lrp", {{"rule", "conv=gamma:0.25,dense=epsilon:0.01,first=zbox:min:max"}}});
  runs.push_back({"lrp", {{"rule", "conv=wsquare,dense=alpha-beta:1.5:0.5,norm=0.001"}}});
  CHECK(runs.size() == 11);
  for (const auto& r : runs) {  // (clang 14 cannot capture structured bindings in CAPTURE)
    const std::string& name = r.first;
    const Params& p = r.second;
    CAPTURE(name);
    Result all = gb::explain::explain(g, x, t, name, p);
    REQUIRE(all.attribution.shape() == x.shape());
    for (int n = 0; n < 4; ++n) {
      Result one = gb::explain::explain(g, x.sample(n).clone(), {t[n]}, name, p);
      Tensor part = all.attribution.sample(n).clone();
      CHECK(rel_diff(one.attribution, part) < 1e-5);
      CHECK(one.delta[0] == doctest::Approx(all.delta[n]).epsilon(1e-4));
    }
  }
}

TEST_CASE("Add splits relevance in proportion to its inputs") {
  SUBCASE("two branches into one Add, read through hooks") {
    Graph g(Shape{4});
    int a = g.add(std::make_unique<Dense>(4, false), {-1});
    int b = g.add(std::make_unique<Dense>(4, false), {-1});
    int s = g.add(std::make_unique<Add>(2), {a, b});
    g.then<ReLU>().then<Dense>(3, false);
    g.init(22);
    Tensor x = random_tensor({2, 4}, 23);
    std::vector<int> t{0, 2};
    auto f = logits_of(g, x, t);
    BackwardRules rules = lrp_rules(g, composite_from_name("zero"));
    Tensor y = g.forward(x).clone();
    Tensor seed(y.shape(), 0.f);
    for (int n = 0; n < 2; ++n) seed[n * 3 + t[n]] = f[n];
    std::map<int, Tensor> rel;
    BackwardOptions opt;
    opt.rules = &rules;
    opt.on_node = [&](int node, const Tensor& r) { rel[node] = r.clone(); };
    const Tensor& rin = g.backward(seed, opt);
    for (size_t i = 0; i < rel[s].size(); ++i) {
      const float za = g.activation(a)[i], zb = g.activation(b)[i], R = rel[s][i];
      CHECK(rel[a][i] == doctest::Approx(za * R / (za + zb)).epsilon(1e-5));
      CHECK(rel[b][i] == doctest::Approx(zb * R / (za + zb)).epsilon(1e-5));
    }
    for (int n = 0; n < 2; ++n) {
      CHECK(std::abs(sample_sum(rel[s], n) - f[n]) <= 1e-4 * std::abs(f[n]));
      CHECK(std::abs(sample_sum(rin, n) - f[n]) <= 1e-4 * std::abs(f[n]));
    }
  }
  SUBCASE("a residual block conserves the logit") {
    Graph g(Shape{1, 6, 6});
    g.then<Conv2d>(3, 3, 1, 1, false).then<ReLU>();
    int skip = g.output();
    g.then<Conv2d>(3, 3, 1, 1, false).then<ReLU>().then<Conv2d>(3, 3, 1, 1, false);
    g.add(std::make_unique<Add>(2), {g.output(), skip});
    g.then<ReLU>().then<GlobalAvgPool>().then<Dense>(2, false);
    g.init(24);
    Tensor x = random_tensor({2, 1, 6, 6}, 25);
    Result r = lrp(g, x, {0, 1}, "zero");
    auto f = logits_of(g, x, {0, 1});
    for (int n = 0; n < 2; ++n) CHECK(std::abs(r.delta[n]) <= 1e-4 * std::abs(f[n]));
    CHECK(rel_diff(r.attribution, input_x_gradient(g, x, {0, 1})) < 1e-4);
  }
}

TEST_CASE("LRP methods are registered with Zennit conventions and reject bad parameters") {
  for (const char* m : {"lrp-epsilon", "lrp-zero", "lrp-gamma", "lrp-alpha-beta", "lrp-zplus", "lrp-epsilon-plus-flat",
                        "lrp-epsilon-gamma-box", "lrp-epsilon-alpha2-beta1", "lrp"})
    CHECK(method_info(m).convention == "Zennit");
  Graph g = dense_net();
  Tensor x = random_tensor({1, 6}, 26);
  CHECK_THROWS_AS(gb::explain::explain(g, x, {0}, "lrp-zero", {{"epsilon", "0.1"}}), std::invalid_argument);
  CHECK_THROWS_AS(gb::explain::explain(g, x, {0}, "lrp-epsilon", {{"gamma", "0.1"}}), std::invalid_argument);
  CHECK_THROWS_AS(gb::explain::explain(g, x, {0}, "lrp-alpha-beta", {{"alpha", "3"}, {"beta", "1"}}), std::invalid_argument);
  CHECK_THROWS_AS(gb::explain::explain(g, x, {0}, "lrp", {{"rule", "conv=magic"}}), std::invalid_argument);
  CHECK_THROWS_AS(gb::explain::explain(g, x, {0}, "lrp", {{"rule", "pool=zero"}}), std::invalid_argument);
  // An empty rule: the mapping kept one rule fewer and read past the end of them (a crash).
  for (const char* empty : {"conv=", "dense=", "conv=epsilon,dense=", "conv=,dense=epsilon", "first="})
    CHECK_THROWS_WITH_AS(gb::explain::explain(g, x, {0}, "lrp", {{"rule", empty}}), doctest::Contains("gives no rule"),
                         std::invalid_argument);
  // norm takes a number, and an unknown key is named as one
  CHECK_THROWS_WITH_AS(gb::explain::explain(g, x, {0}, "lrp", {{"rule", "norm="}}), doctest::Contains("is not a number"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(gb::explain::explain(g, x, {0}, "lrp", {{"rule", "foo="}}), doctest::Contains("unknown key 'foo'"),
                       std::invalid_argument);
  CHECK_THROWS_AS(gb::explain::explain(g, x, {0}, "lrp-epsilon", {{"seed", "random"}}), std::invalid_argument);
  CHECK_THROWS_AS(gb::explain::explain(g, x, {0}, "lrp-epsilon", {{"layer", "nope"}}), std::invalid_argument);
  CHECK_NOTHROW(gb::explain::explain(g, x, {0}, "lrp-alpha-beta", {{"alpha", "3"}}));  // β defaults to α − 1
}

TEST_CASE("composites are open lists: a prepended entry wins for its layer only; unmatched layers are errors") {
  Graph g = conv_net();
  randomize_biases(g, 31);
  const Tensor x = random_tensor({2, 2, 8, 8}, 32, 0, 1);
  const std::vector<int> t{0, 2};
  // The second conv, by name, gets γ; every other layer keeps the ε composite's rule.
  int second_conv = -1, convs = 0;
  for (int i = 0; i < g.size(); ++i)
    if (dynamic_cast<Conv2d*>(&g.layer(i)) && ++convs == 2) second_conv = i;
  REQUIRE(second_conv >= 0);
  Composite c = composite_from_name("epsilon");
  c.prepend(named(g.layer(second_conv).name), linear(parse_rule("gamma:0.5")));
  const BackwardRules rules = lrp_rules(g, c), eps = lrp_rules(g, composite_from_name("epsilon"));
  const Tensor& y = g.forward(x);
  Tensor seed(y.shape());
  for (int n = 0; n < 2; ++n) seed[n * y.dim(1) + t[n]] = y[n * y.dim(1) + t[n]];
  std::map<int, Tensor> with, without;
  BackwardOptions o;
  o.rules = &rules;
  o.on_node = [&](int i, const Tensor& r) { with[i] = r.clone(); };
  g.backward(seed, o);
  o.rules = &eps;
  o.on_node = [&](int i, const Tensor& r) { without[i] = r.clone(); };
  g.backward(seed, o);
  // Above and at the second conv's output the relevances agree; below it they differ.
  for (int i = second_conv; i < g.size(); ++i) CHECK(rel_diff(with[i], without[i]) == 0);
  CHECK(rel_diff(with[g.node(second_conv).inputs[0]], without[g.node(second_conv).inputs[0]]) > 1e-3);
  // A composite that knows no pooling: the max-pool layer is named in the error.
  Composite convs_only;
  convs_only.prepend([](const Graph& gr, int i) { return dynamic_cast<const Conv2d*>(&gr.layer(i)) != nullptr; },
                     linear(parse_rule("zero")));
  CHECK_THROWS_WITH_AS(lrp_rules(g, convs_only), doctest::Contains("LRP has no rule for layer"), std::invalid_argument);
}

TEST_CASE("the rule and composite tables drive the registry's parameters") {
  CHECK(rule_params("epsilon").size() == 1);
  CHECK(rule_params("alpha-beta").size() == 2);
  CHECK(rule_params("zbox")[0].name == "low");
  CHECK_THROWS_WITH_AS(parse_rule("gamma:0.1:2"), doctest::Contains("takes at most 1 parameter"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_rule("gamma:abc"), doctest::Contains("gamma 'abc' is not a finite float32 number"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_rule("epsilon:1e308"), doctest::Contains("'1e308' is not a finite float32 number"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_rule("magic"), doctest::Contains("unknown rule 'magic' (known: epsilon, zero"),
                       std::invalid_argument);
  CHECK(parse_rule("alphabeta:3").number("alpha") == 3);
  // Every named composite is a registered method whose parameters are its rules' (plus seed, layer).
  for (const NamedComposite& c : named_composites()) {
    CAPTURE(c.name);
    const MethodInfo& m = method_info("lrp-" + c.name);
    std::set<std::string> want = {"seed", "layer"}, have;
    for (const std::string* r : {&c.conv, &c.dense, &c.first})
      if (!r->empty())
        for (const ParamInfo& p : rule_params(parse_rule(*r).name)) want.insert(p.name);
    for (const ParamInfo& p : m.params) have.insert(p.name);
    CHECK(have == want);
  }
  CHECK(method_info("lrp-epsilon-gamma-box").params.size() == 6);  // epsilon, gamma, low, high, seed, layer
}

TEST_CASE("relevance per layer: the same pass's sums, conserved where the rules conserve") {
  // Biases and ε absorb relevance at conv/dense layers; ReLU, max-pool and flatten pass it on.
  Graph g = conv_net(true);
  Tensor x = random_tensor({2, 2, 8, 8}, 21);
  std::vector<int> t{0, 2};
  Result r = lrp(g, x, t, "epsilon", {{"epsilon", "0.01"}});
  std::vector<std::string> expect{"input"};
  for (int i = 0; i < g.size(); ++i) expect.push_back(g.layer(i).name);
  REQUIRE(r.detail_layers == expect);
  REQUIRE(r.details.size() == 2);
  for (int n = 0; n < 2; ++n) {
    const std::vector<double>& s = r.details[n].at("relevance_per_layer");
    REQUIRE(s.size() == expect.size());
    // Each entry is the sum of what a run stopped at that layer returns (same rules, same floats).
    for (size_t i = 1; i < expect.size(); ++i) {
      CAPTURE(expect[i]);
      Result at = lrp(g, x, t, "epsilon", {{"epsilon", "0.01"}, {"layer", expect[i]}});
      CHECK(s[i] == doctest::Approx(sample_sum(at.attribution, n)).epsilon(1e-9));
      const std::string kind = g.layer(int(i) - 1).kind();
      if (kind == "relu" || kind == "maxpool" || kind == "flatten") CHECK(s[i] == doctest::Approx(s[i - 1]).epsilon(1e-6));
    }
    CHECK(s[0] == doctest::Approx(sample_sum(r.attribution, n)).epsilon(1e-9));
    CHECK(s.back() - s[0] == doctest::Approx(-r.delta[n]).epsilon(1e-6));  // the top holds the seed f(x)
  }
  // Bias-free LRP-0: every layer holds the logit.
  Graph h = conv_net();
  auto f = logits_of(h, x, t);
  Result z = lrp(h, x, t, "zero");
  for (int n = 0; n < 2; ++n)
    for (double v : z.details[n].at("relevance_per_layer")) CHECK(std::abs(v - f[n]) <= 1e-4 * std::abs(f[n]));
  // Stopped at a layer: the sums from the seed down to that layer only.
  Result part = lrp(h, x, t, "zero", {{"layer", "relu2"}});
  CHECK(part.detail_layers == std::vector<std::string>{"relu2", "flatten1", "dense1"});
}
