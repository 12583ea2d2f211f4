// Finite-difference gradient checks: every layer, the loss, and whole small graphs.
//
// The checker runs the float32 graph, forms a scalar objective in double (sum(seed ⊙ output) with a
// random seed, or the softmax cross-entropy), and compares the backward pass's input and parameter
// gradients with central differences (L(v+h) - L(v-h)) / (actual float step). ReLU and max-pool
// kinks are kept out of reach of the step by construction of the inputs. In whole graphs hidden
// pre-activations are not under our control and some always lie within a step of zero, so there
// the probes run with every ReLU mask and max-pool argmax frozen at the base point (forward rules):
// that function equals the network on the base point's linear piece, so its derivative there is
// the true gradient, and the analytic side still comes from the layers' own backward.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <sstream>

#include "engine/architecture.h"
#include "engine/layers.h"
#include "engine/loss.h"

using namespace gb;

namespace {

Tensor uniform_in(const Shape& s, Rng& r, float lo, float hi) {
  Tensor t(s);
  for (size_t i = 0; i < t.size(); ++i) t[i] = lo + (hi - lo) * r.uniform();
  return t;
}

// Random sign, magnitude in [lo, hi]: keeps every element at least `lo` away from ReLU's kink.
Tensor away_from_zero(const Shape& s, Rng& r, float lo, float hi) {
  Tensor t = uniform_in(s, r, lo, hi);
  for (size_t i = 0; i < t.size(); ++i)
    if (r.uniform() < 0.5f) t[i] = -t[i];
  return t;
}

// All values distinct and at least `gap` apart (a shuffled ramp centred on 0): no max-pool window
// has a near-tie, so a step smaller than gap/2 never changes a window's argmax.
Tensor distinct(const Shape& s, Rng& r, float gap) {
  Tensor t(s);
  std::vector<size_t> perm(t.size());
  std::iota(perm.begin(), perm.end(), size_t(0));
  for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[r.below(uint32_t(i))]);
  for (size_t i = 0; i < t.size(); ++i) t[i] = (float(perm[i]) - float(t.size()) / 2) * gap;
  return t;
}

// Every parameter random (biases too, which init() leaves at zero); BatchNorm's scale and running
// variance kept positive and away from zero.
void randomize(Graph& g, Rng& r, float scale = 0.5f) {
  for (int i = 0; i < g.size(); ++i) {
    Layer& L = g.layer(i);
    const bool bn = L.kind() == "batchnorm";
    for (Param* p : L.params())
      for (size_t e = 0; e < p->value.size(); ++e) {
        float u = r.uniform();
        if (bn && (p->name == "weight" || p->name == "running_var"))
          p->value[e] = 0.5f + u;
        else if (bn)
          p->value[e] = u - 0.5f;
        else
          p->value[e] = (2 * u - 1) * scale;
      }
  }
}

// L(output) and dL/d(output).
using Objective = std::function<double(const Tensor& out, Tensor& dout)>;

Objective weighted_sum(const Tensor& seed) {
  return [seed](const Tensor& y, Tensor& dout) {
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += double(seed[i]) * y[i];
    dout = seed.clone();
    return s;
  };
}

Objective cross_entropy(std::vector<int> labels) {
  return [labels](const Tensor& y, Tensor& dout) { return softmax_cross_entropy(y, labels, &dout).loss; };
}

struct FdOptions {
  double eps = 1e-2;    // float32 rounding dominates below ~1e-3, curvature above ~1e-1
  double rtol = 3e-3, atol = 3e-5;  // observed worst errors are 3-10x below these
  Mode mode = Mode::eval;
  size_t max_checks = 40;          // per tensor; a random subset (plus first and last) beyond that
  std::vector<size_t> must_check;  // input indices always probed (e.g. in the last conv chunk)
  bool freeze_kinks = false;  // for whole graphs; single layers get kink-free inputs instead
  bool params = true;
  uint64_t seed = 1;
};

struct FdResult {
  size_t checked = 0, failed = 0;
  double worst = 0;  // max |num - ana| / (atol + rtol * max(|num|, |ana|)); a probe passes at <= 1
  std::string failures;
};

constexpr uint64_t kDropoutSeed = 1234;

// Forward rules replaying the last forward's piecewise-linear choices: each ReLU/LeakyReLU keeps
// its mask, each max-pool its argmax.
ForwardRules frozen_kinks(const Graph& g) {
  ForwardRules rules(g.size());
  for (int i = 0; i < g.size(); ++i) {
    Layer& L = g.layer(i);
    if (L.kind() == "relu" || L.kind() == "leakyrelu") {
      const Tensor& x = g.activation(g.node(i).inputs[0]);
      std::vector<char> on(x.size());
      for (size_t e = 0; e < x.size(); ++e) on[e] = x[e] > 0;
      const float slope = L.kind() == "relu" ? 0.f : static_cast<LeakyReLU&>(L).slope;
      rules[i] = [on, slope](ForwardCall& c) {
        for (size_t e = 0; e < c.out.size(); ++e) c.out[e] = (*c.in[0])[e] * (on[e] ? 1.f : slope);
      };
    } else if (auto* mp = dynamic_cast<MaxPool2d*>(&L)) {
      std::vector<int32_t> am(g.activation(i).size());
      mp->winners(g.activation(g.node(i).inputs[0]), am.data());
      rules[i] = [am](ForwardCall& c) {
        const size_t hw = size_t(c.in[0]->dim(2)) * c.in[0]->dim(3), ohw = size_t(c.out.dim(2)) * c.out.dim(3);
        for (size_t o = 0; o < c.out.size(); ++o) c.out[o] = (*c.in[0])[o / ohw * hw + size_t(am[o])];
      };
    }
  }
  return rules;
}

std::vector<size_t> pick(size_t n, const FdOptions& o, Rng& r, bool is_input) {
  std::vector<size_t> idx;
  if (n <= o.max_checks) {
    idx.resize(n);
    std::iota(idx.begin(), idx.end(), size_t(0));
  } else {
    idx = {0, n - 1};
    while (idx.size() < o.max_checks) idx.push_back(r.below(uint32_t(n)));
  }
  if (is_input) idx.insert(idx.end(), o.must_check.begin(), o.must_check.end());
  std::sort(idx.begin(), idx.end());
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  return idx;
}

FdResult gradcheck(Graph& g, Tensor x, const Objective& obj, const FdOptions& o) {
  Tensor dout;
  ForwardRules frozen;
  auto eval = [&] {
    g.rng.reseed(kDropoutSeed);  // the same dropout mask in every forward
    ForwardOptions fo;
    fo.mode = o.mode;
    fo.rules = frozen.empty() ? nullptr : &frozen;
    return obj(g.forward(x, fo), dout);
  };
  eval();
  g.zero_grad();
  BackwardOptions bo;
  bo.param_grads = true;
  const Tensor gx = g.backward(dout, bo).clone();
  if (o.freeze_kinks) frozen = frozen_kinks(g);

  FdResult res;
  Rng r(o.seed);
  auto probe = [&](const std::string& what, float* v, size_t n, const Tensor& ana, bool is_input) {
    REQUIRE(ana.size() == n);
    for (size_t i : pick(n, o, r, is_input)) {
      const float v0 = v[i], vp = float(v0 + o.eps), vm = float(v0 - o.eps);
      v[i] = vp;
      const double lp = eval();
      v[i] = vm;
      const double lm = eval();
      v[i] = v0;
      const double num = (lp - lm) / (double(vp) - double(vm)), a = ana[i];
      const double err = std::fabs(num - a) / (o.atol + o.rtol * std::max(std::fabs(num), std::fabs(a)));
      ++res.checked;
      res.worst = std::max(res.worst, err);
      if (err > 1 && ++res.failed <= 8) {
        std::ostringstream s;
        s << what << "[" << i << "]: numeric " << num << ", analytic " << a << "\n";
        res.failures += s.str();
      }
    }
  };
  probe("input", x.data(), x.size(), gx, true);
  if (o.params)
    for (auto& [name, p] : g.named_params()) {
      if (!p->trainable) continue;
      const Tensor ana = p->grad.clone();  // the probes' forwards leave grads alone, but be explicit
      probe(name, p->value.data(), p->value.size(), ana, false);
    }
  frozen.clear();
  eval();  // leave the graph's activations matching x
  if (std::getenv("GB_GRADCHECK_VERBOSE"))
    MESSAGE("checked " << res.checked << ", worst " << res.worst);
  return res;
}

void expect_ok(const FdResult& r, size_t min_checked = 10) {
  INFO(r.failures);
  CHECK(r.failed == 0);
  CHECK(r.checked >= min_checked);
}

// One layer fed by the graph input, objective sum(seed ⊙ y) with a random seed.
FdResult check_layer(std::unique_ptr<Layer> layer, const Tensor& x, FdOptions o = {}) {
  Graph g(x.shape().sample());
  g.then(std::move(layer));
  Rng r(o.seed + 100);
  g.init(o.seed);
  randomize(g, r);
  Tensor seed = uniform_in(g.shape(g.output(), x.batch()), r, -1.f, 1.f);
  return gradcheck(g, x.clone(), weighted_sum(seed), o);
}

}  // namespace

TEST_CASE("the gradient checker catches a wrong gradient") {
  // A check that cannot fail proves nothing: a rule off by 3% on one layer, or dropping one
  // element, must be reported.
  Rng r(5);
  Graph g(Shape{2, 5, 5});
  g.then<Conv2d>(3, 3, 1, 1).then<Tanh>();
  g.init(1);
  randomize(g, r);
  Tensor x = uniform_in(Shape{2, 2, 5, 5}, r, -1, 1);
  Tensor seed = uniform_in(g.shape(g.output(), 2), r, -1, 1);
  FdOptions o;
  o.params = false;
  CHECK(gradcheck(g, x.clone(), weighted_sum(seed), o).failed == 0);

  // The same graph with a Tanh whose gradient is off by 3%, or misses one element.
  struct Wrong : Layer {
    Tanh inner;
    float factor = 1.03f;
    size_t drop = size_t(-1);
    std::string kind() const override { return "tanh"; }
    Shape out_shape(const std::vector<Shape>& in) const override { return in[0]; }
    void forward(ForwardCall& c) override { inner.forward(c); }
    void backward(BackwardCall& c) override {
      inner.backward(c);
      for (size_t i = 0; i < c.g_in[0]->size(); ++i) (*c.g_in[0])[i] *= factor;
      if (drop < c.g_in[0]->size()) (*c.g_in[0])[drop] = 0;
    }
  };
  for (int variant = 0; variant < 2; ++variant) {
    Graph w(Shape{2, 5, 5});
    w.then<Conv2d>(3, 3, 1, 1);
    auto bad = std::make_unique<Wrong>();
    if (variant == 1) bad->factor = 1.f, bad->drop = 7;
    w.then(std::move(bad));
    for (size_t p = 0; p < 2; ++p) w.named_params()[p].second->value.copy_from(g.named_params()[p].second->value);
    FdOptions all;
    all.max_checks = 1000;  // probe everything so the dropped element is seen
    FdResult res = gradcheck(w, x.clone(), weighted_sum(seed), all);
    CHECK(res.failed > 0);
  }
}

TEST_CASE("gradcheck: Conv2d over shapes, strides, paddings, 1x1, no bias, batches") {
  struct Case {
    int c, h, w, out, k, s, p;
    bool bias;
    int n;
  };
  const Case cases[] = {
      {3, 7, 7, 4, 3, 1, 1, true, 2},   // same padding, nb > 1 in one chunk
      {2, 8, 9, 3, 3, 2, 1, true, 3},   // stride 2, non-square
      {3, 6, 6, 5, 1, 1, 0, false, 2},  // 1x1, no bias
      {2, 7, 7, 3, 5, 2, 2, true, 2},   // k 5, padding 2, stride 2
      {1, 5, 5, 2, 3, 1, 0, true, 1},   // one sample: the direct-GEMM path
      {2, 9, 8, 3, 4, 3, 2, false, 3},  // even kernel, stride 3, padding 2
      {4, 3, 3, 2, 3, 1, 2, true, 2},   // padding wider than a third of the input
  };
  Rng r(11);
  for (const Case& c : cases) {
    INFO("conv c=" << c.c << " h=" << c.h << " w=" << c.w << " out=" << c.out << " k=" << c.k << " s=" << c.s
                   << " p=" << c.p << " bias=" << c.bias << " n=" << c.n);
    Tensor x = uniform_in(Shape{c.n, c.c, c.h, c.w}, r, -1, 1);
    expect_ok(check_layer(std::make_unique<Conv2d>(c.out, c.k, c.s, c.p, c.bias), x), 20);
  }
}

TEST_CASE("gradcheck: Conv2d across several im2col chunks of several samples each") {
  // 8x32x32 input, k 3: 72 x 1024 column floats per sample, so a 16 MiB (4Mi floats) chunk holds 56
  // samples and a batch of 60 runs as chunks of 56 and 4, both through the multi-sample layout.
  const int N = 60, C = 8, H = 32;
  REQUIRE(size_t(C) * 9 * H * H * N > (size_t(4) << 20));
  REQUIRE(size_t(C) * 9 * H * H * 2 <= (size_t(4) << 20));
  Rng r(12);
  Tensor x = uniform_in(Shape{N, C, H, H}, r, -1, 1);
  FdOptions o;
  o.max_checks = 10;
  const size_t per = size_t(C) * H * H;
  o.must_check = {57 * per + 3, 58 * per + per / 2, 59 * per + per - 1, 55 * per + 100, 56 * per};
  expect_ok(check_layer(std::make_unique<Conv2d>(2, 3, 1, 1), x, o), 20);
}

TEST_CASE("gradcheck: Dense") {
  Rng r(13);
  expect_ok(check_layer(std::make_unique<Dense>(4), uniform_in(Shape{3, 5}, r, -1, 1)), 20);
  expect_ok(check_layer(std::make_unique<Dense>(3, false), uniform_in(Shape{2, 6}, r, -1, 1)), 20);
  expect_ok(check_layer(std::make_unique<Dense>(7), uniform_in(Shape{1, 2}, r, -1, 1)), 20);
}

TEST_CASE("gradcheck: elementwise activations") {
  Rng r(14);
  // Inputs at least 0.1 from the kink; the step is 0.01.
  Tensor kinked = away_from_zero(Shape{2, 3, 4, 4}, r, 0.1f, 2.f);
  expect_ok(check_layer(std::make_unique<ReLU>(), kinked), 30);
  expect_ok(check_layer(std::make_unique<LeakyReLU>(0.1f), kinked), 30);
  expect_ok(check_layer(std::make_unique<LeakyReLU>(0.01f), away_from_zero(Shape{3, 7}, r, 0.1f, 2.f)), 20);
  Tensor smooth = uniform_in(Shape{2, 3, 4, 4}, r, -4, 4);
  expect_ok(check_layer(std::make_unique<Tanh>(), smooth), 30);
  expect_ok(check_layer(std::make_unique<Sigmoid>(), smooth), 30);
  expect_ok(check_layer(std::make_unique<Sigmoid>(), uniform_in(Shape{2, 8}, r, -12, 12)), 15);
  expect_ok(check_layer(std::make_unique<Softplus>(), smooth), 30);
  // beta 2, threshold 4: the linear branch above x = 2 too (inputs kept off the switch point).
  Tensor sp = uniform_in(Shape{3, 10}, r, -3, 5);
  for (size_t i = 0; i < sp.size(); ++i)
    if (std::fabs(sp[i] - 2.f) < 0.1f) sp[i] += 0.3f;
  expect_ok(check_layer(std::make_unique<Softplus>(2.f, 4.f), sp), 20);
}

TEST_CASE("gradcheck: MaxPool2d with padding and overlapping windows") {
  struct Case {
    int h, w, k, s, p;
  };
  const Case cases[] = {{6, 6, 2, 2, 0}, {7, 7, 3, 2, 1}, {5, 6, 3, 1, 1}, {5, 5, 2, 1, 1}, {7, 5, 3, 3, 0}};
  Rng r(15);
  for (const Case& c : cases) {
    INFO("h=" << c.h << " w=" << c.w << " k=" << c.k << " s=" << c.s << " p=" << c.p);
    Tensor x = distinct(Shape{2, 2, c.h, c.w}, r, 0.05f);  // gaps 5x the step
    expect_ok(check_layer(std::make_unique<MaxPool2d>(c.k, c.s, c.p), x), 20);
  }
}

TEST_CASE("gradcheck: AvgPool2d with padding, GlobalAvgPool, Flatten") {
  struct Case {
    int h, w, k, s, p;
  };
  const Case cases[] = {{6, 6, 2, 2, 0}, {7, 7, 3, 2, 1}, {5, 6, 3, 1, 1}, {6, 5, 4, 2, 2}};
  Rng r(16);
  for (const Case& c : cases) {
    INFO("h=" << c.h << " w=" << c.w << " k=" << c.k << " s=" << c.s << " p=" << c.p);
    expect_ok(check_layer(std::make_unique<AvgPool2d>(c.k, c.s, c.p), uniform_in(Shape{2, 3, c.h, c.w}, r, -1, 1)), 20);
  }
  expect_ok(check_layer(std::make_unique<GlobalAvgPool>(), uniform_in(Shape{2, 3, 4, 5}, r, -1, 1)), 20);
  expect_ok(check_layer(std::make_unique<Flatten>(), uniform_in(Shape{2, 3, 4, 5}, r, -1, 1)), 20);
  expect_ok(check_layer(std::make_unique<Flatten>(), uniform_in(Shape{2, 3, 5}, r, -1, 1)), 20);
}

TEST_CASE("gradcheck: Dropout in training (fixed mask) and in eval") {
  Rng r(17);
  Tensor x = uniform_in(Shape{2, 3, 4, 4}, r, -1, 1);
  FdOptions train;
  train.mode = Mode::train;
  train.max_checks = 200;
  expect_ok(check_layer(std::make_unique<Dropout>(0.5f), x, train), 90);
  expect_ok(check_layer(std::make_unique<Dropout>(0.5f), x), 30);

  // The training check is only meaningful if the mask drops some elements and scales the rest.
  Graph g(Shape{3, 4, 4});
  g.then<Dropout>(0.5f);
  g.rng.reseed(kDropoutSeed);
  Tensor y = g.forward(x, Mode::train).clone();
  size_t zeros = 0, doubled = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    zeros += y[i] == 0.f;
    doubled += y[i] == 2 * x[i];
  }
  CHECK(zeros > 10);
  CHECK(doubled > 10);
  CHECK(zeros + doubled == y.size());
  // Eval mode is the identity.
  Tensor ye = g.forward(x, Mode::eval);
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(ye[i] == x[i]);
}

TEST_CASE("gradcheck: BatchNorm2d in training and eval, [N,C,H,W] and [N,F]") {
  Rng r(18);
  FdOptions train;
  train.mode = Mode::train;
  train.eps = 2e-2;  // every output moves with the batch statistics: a wider step beats their rounding
  Tensor x4 = uniform_in(Shape{4, 3, 3, 3}, r, -1, 2);
  Tensor x2 = uniform_in(Shape{12, 5}, r, -2, 1);
  expect_ok(check_layer(std::make_unique<BatchNorm2d>(), x4, train), 35);
  expect_ok(check_layer(std::make_unique<BatchNorm2d>(), x2, train), 30);
  expect_ok(check_layer(std::make_unique<BatchNorm2d>(1e-3f, 0.2f), x4), 35);
  expect_ok(check_layer(std::make_unique<BatchNorm2d>(), x2), 30);
}

TEST_CASE("gradcheck: Add of two inputs, the same input twice, and three inputs") {
  Rng r(19);
  Tensor x = uniform_in(Shape{2, 3, 3, 3}, r, -2, 2);
  Tensor seed = uniform_in(x.shape(), r, -1, 1);
  {
    Graph g(Shape{3, 3, 3});  // y = tanh(x) + x
    int t = g.add(std::make_unique<Tanh>(), {-1});
    g.add(std::make_unique<Add>(), {t, -1});
    expect_ok(gradcheck(g, x.clone(), weighted_sum(seed), {}), 25);
  }
  {
    Graph g(Shape{3, 3, 3});  // y = x + x
    g.add(std::make_unique<Add>(), {-1, -1});
    FdResult res = gradcheck(g, x.clone(), weighted_sum(seed), {});
    expect_ok(res, 25);
    const Tensor& gx = g.backward(seed);
    for (size_t i = 0; i < x.size(); ++i) REQUIRE(gx[i] == 2 * seed[i]);
  }
  {
    Graph g(Shape{3, 3, 3});  // y = sigmoid(x) + x + sigmoid(x)
    int s = g.add(std::make_unique<Sigmoid>(), {-1});
    g.add(std::make_unique<Add>(3), {s, -1, s});
    expect_ok(gradcheck(g, x.clone(), weighted_sum(seed), {}), 25);
  }
}

TEST_CASE("gradcheck: softmax cross-entropy") {
  Rng r(20);
  Graph g(Shape{7});  // flatten of [N,7] is the identity: the checker then probes the logits
  g.then<Flatten>();
  expect_ok(gradcheck(g, uniform_in(Shape{5, 7}, r, -3, 3), cross_entropy({0, 6, 3, 3, 1}), {}), 35);
  // Large logits: log-softmax numerics keep the loss finite and the gradient exact.
  Tensor big = Tensor::from({2, 3}, {80.f, -60.f, 79.5f, -90.f, 100.f, 0.f});
  Tensor grad;
  LossResult lr = softmax_cross_entropy(big, {2, 0}, &grad);
  const double l0 = std::log1p(std::exp(-0.5)) + 0.5, l1 = 190.0;  // -log softmax of the labels
  CHECK(lr.loss == doctest::Approx((l0 + l1) / 2).epsilon(1e-6));
  CHECK(lr.correct == 0);
  for (size_t i = 0; i < grad.size(); ++i) CHECK(std::isfinite(grad[i]));
  CHECK(grad[3] == doctest::Approx(-0.5));  // (softmax - onehot) / N with softmax ~ 0 at the label
  Graph g3(Shape{3});
  g3.then<Flatten>();
  expect_ok(gradcheck(g3, big.clone(), cross_entropy({2, 0}), {}), 6);
  CHECK_THROWS_WITH_AS(softmax_cross_entropy(big, {0, 3}, nullptr), doctest::Contains("label 3"),
                       std::out_of_range);
}

TEST_CASE("gradcheck: squared error and the distillation loss, mean and sum") {
  Rng r(23);
  Graph g(Shape{6});
  g.then<Flatten>();  // the identity on [N,6]: the checker probes the loss's own input
  const Tensor target = uniform_in(Shape{4, 6}, r, -2, 2), teacher = uniform_in(Shape{4, 6}, r, -4, 4);
  for (Reduction red : {Reduction::mean, Reduction::sum}) {
    CAPTURE(int(red));
    expect_ok(gradcheck(g, uniform_in(Shape{4, 6}, r, -2, 2),
                        [&](const Tensor& y, Tensor& d) { return mse(y, target, &d, red).loss; }, {}),
              24);
    for (double T : {1.0, 4.0})
      expect_ok(gradcheck(g, uniform_in(Shape{4, 6}, r, -4, 4),
                          [&](const Tensor& y, Tensor& d) { return distillation_kl(y, teacher, T, &d, red).loss; }, {}),
                24);
  }
  // By hand: MSE of one sample is the mean of its squared errors; the batch mean is the mean of
  // all squared errors (PyTorch's MSELoss), the sum adds the samples' means.
  const Tensor a = Tensor::from({2, 2}, {1, 2, 3, 5}), b = Tensor::from({2, 2}, {0, 0, 3, 3});
  LossResult m = mse(a, b, nullptr, Reduction::mean), s = mse(a, b, nullptr, Reduction::sum);
  CHECK(m.per_sample == std::vector<double>{2.5, 2.0});
  CHECK(m.loss == doctest::Approx(2.25));
  CHECK(s.loss == doctest::Approx(4.5));
  // KL of identical distributions is 0 at any temperature; T² · KL by hand for two classes.
  const Tensor z = Tensor::from({1, 2}, {1.f, 3.f}), zt = Tensor::from({1, 2}, {2.f, 0.f});
  CHECK(distillation_kl(z, z, 3.0, nullptr).loss == doctest::Approx(0).epsilon(1e-12));
  const double T = 2, ps1 = 1 / (1 + std::exp(-1.0)), pt1 = 1 / (1 + std::exp(1.0));  // softmax(z/T)[1], teacher's
  const double kl = (1 - pt1) * std::log((1 - pt1) / (1 - ps1)) + pt1 * std::log(pt1 / ps1);
  LossResult d = distillation_kl(z, zt, T, nullptr);
  CHECK(d.loss == doctest::Approx(T * T * kl).epsilon(1e-9));
  CHECK(d.correct == 0);  // the student picks class 1, the teacher class 0
  CHECK_THROWS_AS(distillation_kl(z, zt, 0.0, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(distillation_kl(z, Tensor({1, 3}), 1.0, nullptr), ShapeError);
  CHECK_THROWS_AS(mse(a, Tensor({2, 3}), nullptr), ShapeError);
  // Sum reduction: row n of the gradient is sample n's own loss gradient (N times the mean's).
  Tensor gm, gs;
  softmax_cross_entropy(a, {1, 0}, &gm, Reduction::mean);
  softmax_cross_entropy(a, {1, 0}, &gs, Reduction::sum);
  for (size_t i = 0; i < gm.size(); ++i) CHECK(gs[i] == doctest::Approx(2 * gm[i]));
}

TEST_CASE("gradcheck: a mini LeNet end to end through the cross-entropy") {
  Graph g = graph_from_text(
      "input(1,12,12) conv(4,k=3,p=1) relu maxpool(2) conv(6,k=3) relu maxpool(2) flatten dense(10) relu "
      "dense(5)");
  Rng r(21);
  g.init(3);
  randomize(g, r, 0.6f);
  FdOptions o;
  o.freeze_kinks = true;
  o.max_checks = 30;
  FdResult res = gradcheck(g, uniform_in(Shape{3, 1, 12, 12}, r, -1, 1), cross_entropy({1, 4, 0}), o);
  expect_ok(res, 120);
}

// A node read by two layers: the layer the backward walk reaches second adds its part of the
// input gradient to the first one's in place (Layer::adds_input_grad), here a Winograd
// convolution (16 channels, 3x3, stride 1: F(4x4,3x3) in training on 8x8, F(2x2,3x3) in eval)
// and a stride-2 im2col one.
TEST_CASE("gradcheck: convolutions that add their input gradient to another consumer's") {
  const std::string arch =
      "input(16,8,8) conv(16,k=3,p=1) relu(name=b0) conv(16,k=3,p=1) add(b0) relu(name=b1) "
      "conv(16,k=3,s=2,p=1) relu(name=r) conv(16,k=1,s=2,from=b1) add(r) gap dense(3)";
  for (Mode mode : {Mode::train, Mode::eval}) {
    CAPTURE(int(mode));
    Graph g = graph_from_text(arch);
    Rng r(23);
    g.init(5);
    randomize(g, r, 0.3f);
    FdOptions o;
    o.mode = mode;
    o.freeze_kinks = true;
    o.max_checks = 30;
    expect_ok(gradcheck(g, uniform_in(Shape{2, 16, 8, 8}, r, -1, 1), cross_entropy({0, 2}), o), 100);
  }
}

TEST_CASE("gradcheck: a residual block with BatchNorm end to end, training and eval") {
  const std::string arch =
      "input(2,6,6) conv(4,k=3,p=1,bias=false) batchnorm relu(name=b0) conv(4,k=3,p=1) batchnorm add(b0) "
      "relu gap dense(3)";
  for (Mode mode : {Mode::train, Mode::eval}) {
    CAPTURE(int(mode));
    Graph g = graph_from_text(arch);
    Rng r(22);
    g.init(4);
    randomize(g, r, 0.6f);
    FdOptions o;
    o.mode = mode;
    o.freeze_kinks = true;
    o.max_checks = 30;
    expect_ok(gradcheck(g, uniform_in(Shape{4, 2, 6, 6}, r, -1, 1), cross_entropy({0, 2, 1, 2}), o), 100);
  }
}
