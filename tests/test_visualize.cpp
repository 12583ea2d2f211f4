// Feature visualization (explain/visualize): the optimization core against closed forms, its
// image operations against their adjoints, hand values and finite differences, determinism per
// seed and batch = one by one, and each method on small models where the answer is known
// (planted clusters, planted evidence, brute-force scans, a trained preset for fooling images).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "tests/tensor_checks.h"
#include "data/dataset.h"
#include "engine/architecture.h"
#include "engine/finite.h"
#include "engine/layers.h"
#include "engine/target.h"
#include "engine/threads.h"
#include "explain/attribution/explain.h"
#include "explain/visualize/ascent.h"
#include "explain/visualize/kmeans.h"
#include "explain/visualize/visualize.h"
#include "engine/loss.h"
#include "train/optimizer.h"
#include "train/presets.h"

using namespace gb;
using namespace gb::visualize;

namespace {

Graph arch(const std::string& text, uint64_t seed = 7) {
  Graph g = graph_from_text(text);
  g.init(seed);
  return g;
}

Tensor noise(const Shape& s, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Rng r(seed);
  Tensor t(s);
  for (size_t i = 0; i < t.size(); ++i) t[i] = lo + (hi - lo) * r.uniform();
  return t;
}


double dot(const Tensor& a, const Tensor& b) {
  REQUIRE(a.size() == b.size());
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

Tensor rows_of(const Tensor& t, int b, int e) { return t.slice(b, e).clone(); }

// A linear "model" S(x) = w·x on a 1×4×4 input: its single output is class 0.
Graph linear_model(Tensor& w) {
  Graph g = arch("input(1,4,4) flatten dense(1,bias=false)");
  auto& d = dynamic_cast<Dense&>(g.layer(1));
  w = noise(Shape{1, 16}, 11);
  d.weight.value.copy_from(w);
  return g;
}

// A small conv net on 1×8×8 images with every kind of layer the methods walk through.
Graph small_net(uint64_t seed = 7) {
  return arch("input(1,8,8) conv(4,k=3,p=1) relu maxpool(2) conv(6,k=3,p=1) relu flatten dense(5)", seed);
}

// Fashion-MNIST-sized synthetic images: class 0 horizontal bars, class 1 vertical bars, with noise.
Dataset bars(int n, uint64_t seed) {
  Dataset d;
  d.x = Tensor(Shape{n, 1, 28, 28});
  Rng r(seed);
  for (int i = 0; i < n; ++i) {
    const int k = i % 2, at = 4 + int(r.below(20));
    d.y.push_back(k);
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        const bool on = k == 0 ? std::abs(y - at) < 2 : std::abs(x - at) < 2;
        d.x[(size_t(i) * 28 + y) * 28 + x] = std::clamp((on ? 0.9f : 0.1f) + 0.1f * r.normal(), 0.f, 1.f);
      }
  }
  d.class_names = {"horizontal", "vertical"};
  return d;
}

// gb::visualize::visualize under a name that `using namespace gb` leaves unambiguous.
Result run(Graph& g, const Request& q, const std::string& method, const Params& p = {}) {
  return gb::visualize::visualize(g, q, method, p);
}

}  // namespace

// ---- the optimization core ---------------------------------------------------------------------

TEST_CASE("ascent on S(x) = w.x - lambda |x|^2 converges to the closed form x* = w / (2 lambda)") {
  Tensor w;
  Graph g = linear_model(w);
  const double lambda = 0.5;
  for (Step step : {Step::sgd, Step::adam}) {
    CAPTURE(int(step));
    AscentOptions o;
    o.steps = step == Step::sgd ? 300 : 3000;
    o.step = step;
    o.lr = step == Step::sgd ? 0.1 : 0.01;
    o.penalties.l2 = lambda;
    o.clip = false;
    const Tensor start = noise(Shape{1, 1, 4, 4}, 3);
    AscentResult a = ascend(g, unit_objective(g, {Unit::cls(0)}), start, o);
    Tensor want = w.reshaped(Shape{1, 1, 4, 4}).clone();
    for (size_t i = 0; i < want.size(); ++i) want[i] = float(want[i] / (2 * lambda));
    CHECK(max_abs_diff(a.x, want) < 1e-4);
    // The objective at the optimum is |w|^2 / (4 lambda); under SGD it never went down.
    CHECK(a.value[0] - a.penalty[0] == doctest::Approx(dot(w, w) / (4 * lambda)).epsilon(1e-6));
    CHECK(a.start[0] == doctest::Approx(dot(w, start)).epsilon(1e-6));
    CHECK(a.steps[0] == o.steps);
    if (step == Step::sgd)
      for (size_t t = 1; t < a.curve[0].size(); ++t) CHECK(a.curve[0][t] >= a.curve[0][t - 1] - 1e-6);
  }
}

TEST_CASE("one SGD step by hand: x1 = x0 + lr (w - 2 lambda x0 - lambda1 sign(x0)), and the normalized steps") {
  Tensor w;
  Graph g = linear_model(w);
  const Tensor x0 = noise(Shape{1, 1, 4, 4}, 5);
  for (Step step : {Step::sgd, Step::sgd_l2norm, Step::sgd_meanabs}) {
    AscentOptions o;
    o.steps = 1, o.step = step, o.lr = 0.3, o.clip = false;
    o.penalties.l2 = 0.2, o.penalties.l1 = 0.05;
    AscentResult a = ascend(g, unit_objective(g, {Unit::cls(0)}), x0, o);
    std::vector<double> grad(16);
    double l2 = 0, l1 = 0;
    for (int i = 0; i < 16; ++i) {
      grad[i] = w[i] - 2 * 0.2 * x0[i] - 0.05 * (x0[i] > 0 ? 1 : -1);
      l2 += grad[i] * grad[i], l1 += std::fabs(grad[i]);
    }
    const double n = step == Step::sgd ? 1 : step == Step::sgd_l2norm ? std::sqrt(l2) : l1 / 16;
    for (int i = 0; i < 16; ++i) CHECK(a.x[i] == doctest::Approx(x0[i] + 0.3 * grad[i] / n).epsilon(1e-5));
  }
}

TEST_CASE("jitter: the gradient of S(roll(x, d)) is rolled back, so one step on a linear model moves x by roll(w, -d)") {
  Tensor w;
  Graph g = linear_model(w);
  AscentOptions o;
  o.steps = 1, o.step = Step::sgd, o.lr = 1, o.clip = false, o.jitter = 1;
  o.row_seeds = {17};
  const Tensor x0 = noise(Shape{1, 1, 4, 4}, 5);
  const AscentResult a = ascend(g, unit_objective(g, {Unit::cls(0)}), x0, o);
  Rng r(17);  // the row's stream: dy, then dx, each in [-1, 1]
  const int dy = int(r.below(3)) - 1, dx = int(r.below(3)) - 1;
  Tensor want;
  roll(w.reshaped(Shape{1, 1, 4, 4}), {dy}, {dx}, want, -1);
  Tensor moved = a.x.clone();
  for (size_t i = 0; i < moved.size(); ++i) moved[i] -= x0[i];
  CHECK(max_abs_diff(moved, want) < 1e-6);
  CHECK((dy != 0 || dx != 0));  // this seed does shift (otherwise the check above proves nothing)
}

TEST_CASE("ascent: clipping keeps every pixel inside the bounds, a done row stops, bad options are refused") {
  Tensor w;
  Graph g = linear_model(w);
  AscentOptions o;
  o.steps = 50, o.lr = 1, o.step = Step::sgd;
  o.bounds.lo = {-0.25f}, o.bounds.hi = {0.5f};
  const Tensor start(Shape{2, 1, 4, 4}, 0.f);
  o.done = [](int row, const float*) { return row == 1; };  // row 1 is done from the start
  AscentResult a = ascend(g, unit_objective(g, {Unit::cls(0), Unit::cls(0)}), start, o);
  for (int i = 0; i < 16; ++i) {
    CHECK(a.x[i] >= -0.25f);
    CHECK(a.x[i] <= 0.5f);
    CHECK(a.x[i] == (w[i] > 0 ? 0.5f : w[i] < 0 ? -0.25f : 0.f));  // the linear optimum is a corner of the box
    CHECK(a.x[16 + i] == 0.f);
  }
  CHECK(a.steps[0] == 50);
  CHECK(a.steps[1] == 0);
  AscentOptions bad;
  bad.row_seeds = {1, 2, 3};
  CHECK_THROWS_WITH_AS(ascend(g, unit_objective(g, {Unit::cls(0)}), Tensor(Shape{1, 1, 4, 4}), bad),
                       doctest::Contains("3 row seeds for 1 rows"), std::invalid_argument);
  CHECK_THROWS_AS(ascend(g, unit_objective(g, {Unit::cls(0)}), Tensor(Shape{1, 2, 4, 4}), AscentOptions{}), ShapeError);
}

TEST_CASE("ascent: an objective that overflows is an error naming the row and step, not NaN results") {
  Tensor w;
  Graph g = linear_model(w);
  // x <- x + lr (w - 2 lambda x): each step multiplies x by about 1 - 2 lambda lr = -2e6.
  AscentOptions o;
  o.steps = 40, o.step = Step::sgd, o.lr = 1e6, o.clip = false;
  o.penalties.l2 = 1;
  const Tensor x0 = noise(Shape{2, 1, 4, 4}, 5);
  const Objective obj = unit_objective(g, {Unit::cls(0), Unit::cls(0)});
  CHECK_THROWS_WITH_AS(ascend(g, obj, x0, o), doctest::Contains("the ascent diverged: the objective of row 0 is NaN after"),
                       std::runtime_error);
  // A start whose logit overflows float32 (w.x = 3e38 sum |w| > FLT_MAX) fails at once.
  Tensor huge = x0.clone();
  double sum_abs = 0;
  for (int i = 0; i < 16; ++i) huge[16 + i] = w[i] > 0 ? 3e38f : -3e38f, sum_abs += std::fabs(w[i]);
  REQUIRE(sum_abs > 1.2);
  CHECK_THROWS_WITH_AS(ascend(g, obj, huge, o), doctest::Contains("the objective of row 1 is +Inf at the start"),
                       std::runtime_error);
  // A rate that converges runs as before; non-finite values allowed on purpose pass through.
  o.steps = 40, o.lr = 0.1;
  CHECK(std::isfinite(ascend(g, obj, x0, o).value[0]));
  struct Allowed {  // restored also when ascend throws, for the tests after this one
    Allowed() { allow_nonfinite(true); }
    ~Allowed() { allow_nonfinite(false); }
  };
  o.lr = 1e6;
  AscentResult a;
  {
    Allowed allowed;
    a = ascend(g, obj, x0, o);
  }
  CHECK(!std::isfinite(a.value[0] - a.penalty[0]));
}

TEST_CASE("unit objectives: values and seeds against finite differences for every kind of unit") {
  Graph g = small_net();
  const int relu1 = g.at("relu1"), out = g.output();
  const Shape s1 = g.shape(relu1).sample(), so = g.shape(out).sample();
  Tensor dir = noise(Shape::batch_of(1, s1).sample(), 9);
  struct Case {
    Unit u;
    Score score;
  };
  std::vector<Case> cases = {{Unit::cls(2), Score::logit},           {Unit::cls(2), Score::prob},
                             {Unit::cls(2), Score::logprob},         {Unit::channel(relu1, 3), Score::logit},
                             {Unit::neuron(relu1, 1, 2, 5), Score::logit}, {Unit::whole(relu1), Score::logit},
                             {Unit::along(relu1, dir), Score::logit}};
  for (const Case& c : cases) {
    CAPTURE(c.u.describe(g));
    CAPTURE(int(c.score));
    const Shape s = c.u.at(g) == out ? so : s1;
    Tensor a = noise(Shape::batch_of(1, s), 4, -2, 2);
    Tensor seed(Shape::batch_of(1, s), 0.f);
    unit_value(c.u, c.score, a.data(), s, seed.data());
    for (size_t i = 0; i < a.size(); i += 7) {
      const float keep = a[i];
      a[i] = keep + 1e-3f;
      const double up = unit_value(c.u, c.score, a.data(), s);
      a[i] = keep - 1e-3f;
      const double down = unit_value(c.u, c.score, a.data(), s);
      a[i] = keep;
      CHECK(seed[i] == doctest::Approx((up - down) / 2e-3).epsilon(2e-3).scale(1));
    }
  }
  // The closed forms: a channel's mean, half the mean square, the log-probability.
  Tensor a = noise(Shape::batch_of(1, s1), 8);
  const size_t plane = size_t(s1[1]) * s1[2];
  CHECK(unit_value(Unit::channel(relu1, 3), Score::logit, a.data(), s1) ==
        doctest::Approx(std::accumulate(a.data() + 3 * plane, a.data() + 4 * plane, 0.0) / plane));
  CHECK(unit_value(Unit::whole(relu1), Score::logit, a.data(), s1) == doctest::Approx(0.5 * dot(a, a) / a.size()));
  const float z[3] = {1.f, 2.f, 3.f};
  CHECK(unit_value(Unit::cls(0), Score::logprob, z, Shape{3}) == doctest::Approx(1 - std::log(std::exp(1.) + std::exp(2.) + std::exp(3.))));
}

TEST_CASE("network gradients of the ascent: the graph's seeded backward against finite differences of S(x)") {
  Graph g = arch("input(1,8,8) conv(4,k=3,p=1) tanh conv(3,k=3) tanh flatten dense(4)");
  const int t1 = g.at("tanh1");
  for (const std::vector<Unit>& units : {std::vector<Unit>{Unit::cls(1), Unit::cls(3)},
                                         std::vector<Unit>{Unit::channel(t1, 0), Unit::whole(t1)}}) {
    const Objective obj = unit_objective(g, units, units[0].kind == Unit::Kind::class_score ? Score::prob : Score::logit);
    Tensor x = noise(Shape{2, 1, 8, 8}, 12);
    // One SGD step of lr 1 with no priors moves x by exactly the gradient.
    AscentOptions o;
    o.steps = 1, o.step = Step::sgd, o.lr = 1, o.clip = false;
    const Tensor grad = [&] {
      Tensor moved = ascend(g, obj, x, o).x;
      for (size_t i = 0; i < moved.size(); ++i) moved[i] -= x[i];
      return moved;
    }();
    for (size_t i = 0; i < x.size(); i += 5) {
      const int r = int(i / 64);
      const float keep = x[i];
      x[i] = keep + 1e-2f;
      const double up = evaluate(g, obj, x)[r];
      x[i] = keep - 1e-2f;
      const double down = evaluate(g, obj, x)[r];
      x[i] = keep;
      CHECK(grad[i] == doctest::Approx((up - down) / 2e-2).epsilon(1e-2).scale(1e-3));
    }
  }
}

// ---- image operations -------------------------------------------------------------------------

TEST_CASE("image operations: roll is inverted by its opposite, resize's adjoint is its transpose, blur by hand") {
  const Tensor x = noise(Shape{2, 3, 5, 7}, 1);
  Tensor y, back;
  roll(x, {1, -3}, {2, 9}, y);
  CHECK(y.at(0, 0, 1, 2) == x.at(0, 0, 0, 0));  // numpy.roll: out[y+dy, x+dx] = in[y, x]
  CHECK(y.at(1, 2, 2, 2) == x.at(1, 2, 0, 0));  // -3 mod 5 = 2, 9 mod 7 = 2
  roll(y, {1, -3}, {2, 9}, back, -1);
  CHECK(max_abs_diff(back, x) == 0);

  for (auto [h, w, H, W] : {std::array<int, 4>{3, 4, 8, 9}, {8, 9, 3, 4}, {5, 5, 5, 5}, {1, 1, 4, 4}}) {
    const Resize r(h, w, H, W);
    const Tensor a = noise(Shape{2, 2, h, w}, 2), b = noise(Shape{2, 2, H, W}, 3);
    Tensor ra, rb;
    r.forward(a, ra);
    r.adjoint(b, rb);
    CHECK(dot(ra, b) == doctest::Approx(dot(a, rb)).epsilon(1e-5));
    if (h == H && w == W) CHECK(max_abs_diff(ra, a) == 0);
  }
  Tensor c(Shape{1, 1, 3, 3}, 2.f);
  CHECK(max_abs_diff(resize(c, 7, 5), Tensor(Shape{1, 1, 7, 5}, 2.f)) < 1e-6);  // constants stay constant

  // A delta blurred with σ = 0.5: scipy's kernel radius 2, weights e^{-2 i²} / Σ; the centre is w0².
  Tensor d(Shape{1, 1, 9, 9}, 0.f);
  d.at(0, 0, 4, 4) = 1;
  gaussian_blur(d, 0.5);
  const double total = 1 + 2 * std::exp(-2.0) + 2 * std::exp(-8.0), w0 = 1 / total, w1 = std::exp(-2.0) / total;
  CHECK(d.at(0, 0, 4, 4) == doctest::Approx(w0 * w0));
  CHECK(d.at(0, 0, 4, 5) == doctest::Approx(w0 * w1));
  CHECK(d.at(0, 0, 3, 5) == doctest::Approx(w1 * w1));
  CHECK(d.at(0, 0, 4, 7) == 0.f);  // beyond the radius
  double s = 0;
  for (size_t i = 0; i < d.size(); ++i) s += d[i];
  CHECK(s == doctest::Approx(1));
  // σ = 1: radius round(4σ) = 4, so the tap at distance 4 is there and the one at 5 is not.
  Tensor f(Shape{1, 1, 1, 11}, 0.f);
  f.at(0, 0, 0, 5) = 1;
  gaussian_blur(f, 1.0);
  double norm1 = 0;
  for (int i = -4; i <= 4; ++i) norm1 += std::exp(-0.5 * i * i);
  CHECK(f.at(0, 0, 0, 9) == doctest::Approx(std::exp(-8.0) / norm1));  // one row: the vertical pass keeps it
  CHECK(f.at(0, 0, 0, 0) == 0.f);
  // The 'reflect' border: a delta in the corner keeps its mass (the mirror folds it back).
  Tensor e(Shape{1, 1, 5, 5}, 0.f);
  e.at(0, 0, 0, 0) = 1;
  gaussian_blur(e, 1.0);
  s = 0;
  for (size_t i = 0; i < e.size(); ++i) s += e[i];
  CHECK(s == doctest::Approx(1).epsilon(1e-5));
}

TEST_CASE("the Fourier parameterization: orthonormal Hartley basis, exact inverse and adjoint, 1/f scaling") {
  const Spectrum flat(6, 5, 0.0);  // decay 0: the transform alone
  Tensor delta(Shape{1, 1, 6, 5}, 0.f), x;
  delta[0] = 1;
  flat.image(delta, x);  // the zero frequency: a constant image 1/sqrt(HW)
  for (size_t i = 0; i < x.size(); ++i) CHECK(x[i] == doctest::Approx(1 / std::sqrt(30.0)));
  const Tensor a = noise(Shape{2, 3, 6, 5}, 4);
  flat.image(a, x);
  CHECK(dot(x, x) == doctest::Approx(dot(a, a)).epsilon(1e-5));  // orthonormal
  const Spectrum s(6, 5, 1.0);
  Tensor img, back, adj;
  s.image(a, img);
  s.coefficients(img, back);
  CHECK(max_abs_diff(back, a) < 1e-4);
  const Tensor y = noise(a.shape(), 5);
  s.adjoint(y, adj);
  CHECK(dot(img, y) == doctest::Approx(dot(a, adj)).epsilon(1e-5));
  // 1/f: the lowest frequency moves most. A unit coefficient at (0, 1) (f = 1/5) gives an image of
  // norm 5; the DC coefficient is capped at 1/max(H, W) = 1/6 and gives norm 6.
  Tensor e(Shape{1, 1, 6, 5}, 0.f);
  e[1] = 1;
  s.image(e, img);
  CHECK(std::sqrt(dot(img, img)) == doctest::Approx(5).epsilon(1e-5));
  e[1] = 0, e[0] = 1;
  s.image(e, img);
  CHECK(std::sqrt(dot(img, img)) == doctest::Approx(6).epsilon(1e-5));
}

TEST_CASE("ascent in the Fourier parameterization reaches the same closed form, and am improves with it") {
  Tensor w;
  Graph g = linear_model(w);
  AscentOptions o;
  o.steps = 4000, o.step = Step::adam, o.lr = 0.01, o.clip = false, o.fourier_decay = 1;
  o.penalties.l2 = 0.5;
  const AscentResult a = ascend(g, unit_objective(g, {Unit::cls(0)}), noise(Shape{1, 1, 4, 4}, 3), o);
  for (int i = 0; i < 16; ++i) CHECK(a.x[i] == doctest::Approx(w[i]).epsilon(1e-3).scale(1e-2));  // w / (2 · 0.5)
  Graph net = small_net();
  Request q;
  q.units = {Unit::cls(1), Unit::cls(4)};
  for (const Row& row : run(net, q, "am", {{"steps", "30"}, {"fourier", "1"}}).rows)
    CHECK(row.values.at("objective") > row.values.at("start_objective"));
}

TEST_CASE("penalties: values by hand and gradients against finite differences") {
  Tensor x = noise(Shape{2, 2, 4, 5}, 6);
  Penalties p;
  p.l2 = 0.3, p.l1 = 0.2, p.alpha_norm = 0.05, p.alpha = 3, p.tv = 0.4;
  for (double beta : {2.0, 1.5, 3.0}) {
    CAPTURE(beta);
    p.tv_beta = beta;
    std::vector<double> v(2), vu(2), vd(2);
    Tensor grad(x.shape(), 0.f);
    penalties(x, p, v.data(), &grad);  // grad = −∇penalty
    for (size_t i = 0; i < x.size(); i += 3) {
      const int r = int(i / x.sample_size());
      const float keep = x[i];
      x[i] = keep + 1e-3f;
      penalties(x, p, vu.data(), nullptr);
      x[i] = keep - 1e-3f;
      penalties(x, p, vd.data(), nullptr);
      x[i] = keep;
      CHECK(-grad[i] == doctest::Approx((vu[r] - vd[r]) / 2e-3).epsilon(3e-3).scale(1e-2));
    }
  }
  // By hand on a 1×1×2×2 image [[1, 2], [4, 3]] with β = 2: the differences that exist are
  // dx = 1, −1 (rows) and dy = 3, 1 (columns): TV = 1 + 9 + 1 + 1 = 12.
  const Tensor t = Tensor::from(Shape{1, 1, 2, 2}, {1, 2, 4, 3});
  Penalties q;
  q.tv = 1;
  double v = 0;
  penalties(t, q, &v, nullptr);
  CHECK(v == doctest::Approx(12));
  q = {};
  q.l2 = 1, q.l1 = 1;
  penalties(t, q, &v, nullptr);
  CHECK(v == doctest::Approx(30 + 10));
}

TEST_CASE("the mask's TV (means of |diff|^beta) against finite differences") {
  Tensor m = noise(Shape{5, 6}, 2, 0, 1);
  std::vector<float> grad(30, 0.f), none(30, 0.f);
  tv_mean(m.data(), 5, 6, 3.0, grad.data(), 0.7);
  for (int i = 0; i < 30; ++i) {
    const float keep = m[i];
    m[i] = keep + 1e-3f;
    const double up = 0.7 * tv_mean(m.data(), 5, 6, 3.0, nullptr, 0);
    m[i] = keep - 1e-3f;
    const double down = 0.7 * tv_mean(m.data(), 5, 6, 3.0, nullptr, 0);
    m[i] = keep;
    CHECK(grad[i] == doctest::Approx((up - down) / 2e-3).epsilon(1e-3).scale(1e-3));
  }
}

// ---- units and the registry -------------------------------------------------------------------

TEST_CASE("--unit specs: every form, and errors that name the spec and what is accepted") {
  Graph g = small_net();
  CHECK(parse_units(g, "class:all").size() == 5);
  CHECK(parse_units(g, "class:3")[0].index == 3);
  CHECK(parse_units(g, "relu1:all").size() == 4);
  const Unit c = parse_units(g, "relu1:2")[0];
  CHECK((c.kind == Unit::Kind::channel && c.index == 2 && c.node == g.at("relu1")));
  const Unit n = parse_units(g, "conv2:5,1,3")[0];
  CHECK((n.kind == Unit::Kind::neuron && n.index == 5 && n.y == 1 && n.x == 3));
  CHECK(parse_units(g, "relu2")[0].kind == Unit::Kind::layer);
  CHECK(n.name(g) == "conv2_c5_y1_x3");
  CHECK(c.describe(g) == "relu1 channel 2");
  CHECK_THROWS_WITH_AS(parse_units(g, "class:5"), doctest::Contains("class 5 outside the model's classes [0,5)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_units(g, "relu9:1"), doctest::Contains("no layer 'relu9' (layers: conv1, relu1"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_units(g, "relu1:4"), doctest::Contains("channel 4 outside layer relu1's channels [0,4)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_units(g, "relu1:1,8,0"), doctest::Contains("outside layer relu1's output"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_units(g, "relu1:x"), doctest::Contains("'x' is not a whole number"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_units(g, "relu1:1,2"), doctest::Contains("expected class:K"), std::invalid_argument);
  CHECK_THROWS_AS(parse_units(g, "relu1:d.npy"), std::invalid_argument);  // no file reader given
  Tensor d = noise(g.shape(g.at("relu1")).sample(), 3);
  const Unit along = parse_units(g, "relu1:d.npy", [&](const std::string&) { return d; })[0];
  CHECK(along.kind == Unit::Kind::direction);
  CHECK_THROWS_AS(parse_units(g, "relu1:d.npy", [&](const std::string&) { return Tensor(Shape{3}); }), std::invalid_argument);
}

namespace {

// The decoder method's training loop, as the command line runs it: Adam, shuffled mini-batches, MSE.
double fit_decoder(Graph& dec, const Tensor& codes, const Tensor& targets, const DecoderFit& f) {
  OptimizerConfig oc;
  oc.kind = OptimizerKind::adam, oc.lr = float(f.lr);
  Optimizer opt(dec, oc);
  Rng rng(f.seed);
  const int N = codes.batch();
  std::vector<int> order(N);
  std::iota(order.begin(), order.end(), 0);
  BackwardOptions bo;
  bo.param_grads = true, bo.input_grad = false;
  Tensor xb, yb, grad;
  double loss = 0;
  for (int e = 0; e < f.epochs; ++e) {
    shuffle_order(order, rng);
    loss = 0;
    for (int b = 0; b < N; b += f.batch) {
      const int m = std::min(N, b + f.batch) - b;
      xb.resize(codes.shape().with_batch(m)), yb.resize(targets.shape().with_batch(m));
      for (int i = 0; i < m; ++i) {
        std::copy_n(codes.data() + order[b + i] * codes.sample_size(), codes.sample_size(), xb.data() + i * codes.sample_size());
        std::copy_n(targets.data() + order[b + i] * targets.sample_size(), targets.sample_size(),
                    yb.data() + i * targets.sample_size());
      }
      dec.zero_grad();
      loss += mse(dec.forward(xb, Mode::train), yb, &grad).loss * m / N;
      dec.backward(grad, bo);
      opt.step(oc.lr);
    }
  }
  return loss;
}

// A request every method can run on: units fitting the method, inputs, a small dataset.
Request request_for(const Graph& g, const std::string& method) {
  Request q;
  q.fit_decoder = fit_decoder;
  q.inputs = noise(Shape{2, 1, 8, 8}, 21, 0, 1);
  q.data = noise(Shape{24, 1, 8, 8}, 22, 0, 1);
  if (method == "am" || method == "multifaceted" || method == "fool")
    q.units = {Unit::cls(0), Unit::cls(3)};
  else if (method == "deepdream")
    q.units = {Unit::whole(g.at("relu2"))};
  else if (method == "top-patches" || method == "maps")
    q.units = {Unit::channel(g.at("relu2"), 1), Unit::channel(g.at("relu2"), 4)};
  else if (method == "minimal-image" || method == "mask")
    q.units = {Unit::cls(1)};
  return q;
}

// Cheap settings where a method declares them: the reads are the same.
Params cheap(const MethodInfo& m) {
  Params p;
  for (const ParamInfo& d : m.params) {
    if (d.name == "steps") p["steps"] = "3";
    if (d.name == "top") p["top"] = "8";
    if (d.name == "k") p["k"] = "3";
    if (d.name == "octaves") p["octaves"] = "2";
    if (d.name == "epochs") p["epochs"] = "1";
  }
  return p;
}

}  // namespace

TEST_CASE("every visualization method reads exactly the parameters it declares and rejects others") {
  Graph g = small_net();
  REQUIRE(methods().size() >= 10);
  std::set<std::string> names;
  for (const MethodInfo& m : methods()) {
    CAPTURE(m.name);
    CHECK(names.insert(m.name).second);
    CHECK(!m.convention.empty());
    const Request q = request_for(g, m.name);
    Params p = cheap(m);
    Result r;
    CHECK_NOTHROW(r = run(g, q, m.name, p));  // DeclarationError on a mismatch
    REQUIRE(!r.panels.empty());
    for (const Panel& panel : r.panels) CHECK(panel.values.batch() == int(r.rows.size()));
    std::set<std::string> rows;
    for (const Row& row : r.rows) CHECK(rows.insert(row.name).second);  // file stems are unique
    Params bad = p;
    bad["no_such_key"] = "1";
    CHECK_THROWS_WITH_AS(run(g, q, m.name, bad), doctest::Contains("unknown parameter 'no_such_key'"),
                         std::invalid_argument);
  }
  CHECK_THROWS_WITH_AS(run(g, {}, "dream"), doctest::Contains("unknown visualization method 'dream' (known: am,"),
                       std::invalid_argument);
  CHECK(explain::list_text(methods()).find("--param octave_scale=1.4") != std::string::npos);
}

TEST_CASE("bad requests and parameters fail with the value and the range named") {
  Graph g = small_net();
  Request q = request_for(g, "am");
  CHECK_THROWS_WITH_AS(run(g, q, "am", {{"steps", "0"}}), doctest::Contains("steps=0 outside [1, 100000]"),
                       std::out_of_range);
  CHECK_THROWS_WITH_AS(run(g, q, "am", {{"steps", "1e9"}}), doctest::Contains("steps=1000000000 outside"),
                       std::out_of_range);
  CHECK_THROWS_WITH_AS(run(g, q, "am", {{"steps", "2.5"}}), doctest::Contains("not an integer"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, q, "am", {{"lr", "nan"}}), doctest::Contains("lr=nan is not finite"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, q, "am", {{"restarts", "65"}}), doctest::Contains("restarts=65 outside [1, 64]"),
                       std::out_of_range);
  CHECK_THROWS_WITH_AS(run(g, q, "am", {{"optimizer", "rmsprop"}}),
                       doctest::Contains("optimizer=rmsprop (known: adam, sgd, sgd-l2norm, sgd-meanabs)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, q, "am", {{"jitter", "5"}}), doctest::Contains("jitter=5 outside [0, 4]"),
                       std::out_of_range);
  Request channels = request_for(g, "maps");
  CHECK_THROWS_WITH_AS(run(g, channels, "am", {{"score", "prob"}}), doctest::Contains("scores classes"),
                       std::invalid_argument);
  Request nan = q;
  nan.inputs = q.inputs.clone();
  nan.inputs[5] = NAN;
  CHECK_THROWS_WITH_AS(run(g, nan, "am"), doctest::Contains("inputs: not finite at element 5"),
                       std::invalid_argument);
  Request shape = q;
  shape.inputs = Tensor(Shape{2, 1, 8, 9});
  CHECK_THROWS_AS(run(g, shape, "am"), ShapeError);
  Request none;
  none.units = {Unit::cls(0)};
  CHECK_THROWS_WITH_AS(run(g, none, "invert"), doctest::Contains("invert needs input images"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, none, "top-patches"), doctest::Contains("needs a dataset"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, request_for(g, "invert"), "invert", {{"layers", "relu1,nope"}}),
                       doctest::Contains("no layer 'nope'"), std::invalid_argument);
  for (const char* m : {"invert", "decoder"})  // two rows of one name were refused only after the work
    CHECK_THROWS_WITH_AS(run(g, request_for(g, m), m, {{"layers", "relu1,relu1"}}),
                         doctest::Contains("--param layers: 'relu1' given twice"), std::invalid_argument);
  Request bounds = q;
  bounds.bounds.lo = {1.f}, bounds.bounds.hi = {0.f};
  CHECK_THROWS_WITH_AS(run(g, bounds, "am"), doctest::Contains("low must be below high"), std::invalid_argument);
  Graph flat = arch("input(6) dense(3)");
  CHECK_THROWS_AS(run(flat, {}, "am"), ShapeError);
}

// ---- activation maximization ------------------------------------------------------------------

TEST_CASE("am: deterministic per seed, a batch of units equals the units one by one, objectives increase") {
  RestoreThreads guard;
  Graph g = small_net();
  Request q;
  q.units = {Unit::cls(0), Unit::cls(2), Unit::cls(4)};
  const Params p = {{"steps", "40"}, {"restarts", "2"}, {"jitter", "1"}, {"blur_every", "3"}, {"l2", "0.01"},
                    {"tv", "0.01"}, {"seed", "5"}};
  set_threads(2);
  const Result all = run(g, q, "am", p);
  REQUIRE(all.rows.size() == 6);
  CHECK(all.rows[3].name == "class2_r1");
  set_threads(1);
  const Result again = run(g, q, "am", p);
  CHECK(max_abs_diff(all.panels[0].values, again.panels[0].values) == 0);
  for (int u = 0; u < 3; ++u) {
    Request one;
    one.units = {q.units[u]};
    const Result r = run(g, one, "am", p);
    CHECK(max_abs_diff(r.panels[0].values, rows_of(all.panels[0].values, 2 * u, 2 * u + 2)) < 1e-5);
  }
  for (const Row& row : all.rows) CHECK(row.values.at("objective") > row.values.at("start_objective") + 0.1);
  // Restarts differ; another seed gives other images.
  CHECK(max_abs_diff(rows_of(all.panels[0].values, 0, 1), rows_of(all.panels[0].values, 1, 2)) > 1e-3);
  Params other = p;
  other["seed"] = "6";
  CHECK(max_abs_diff(run(g, q, "am", other).panels[0].values, all.panels[0].values) > 1e-3);
}

TEST_CASE("am: channels, neurons, directions and whole layers; starts; the dataset maximum for scale") {
  Graph g = small_net();
  const int relu2 = g.at("relu2");
  Request q;
  q.units = parse_units(g, "relu2:all");
  q.data = noise(Shape{40, 1, 8, 8}, 3, 0, 1);
  q.bounds.lo = {-0.5f}, q.bounds.hi = {2.f};
  const Result r = run(g, q, "am", {{"steps", "30"}});
  REQUIRE(r.rows.size() == 6);
  CHECK(r.per_line == 6);
  const Tensor acts = activations(g, q.data, {relu2})[0];
  const int plane = 16;
  for (int c = 0; c < 6; ++c) {
    double best = -INFINITY;
    for (int n = 0; n < 40; ++n)
      best = std::max(best, std::accumulate(acts.data() + (n * 6 + c) * plane, acts.data() + (n * 6 + c + 1) * plane, 0.0) / plane);
    CHECK(r.rows[c].values.at("dataset_max") == doctest::Approx(best).epsilon(1e-5));
    CHECK(r.rows[c].values.at("objective") > r.rows[c].values.at("start_objective"));
  }
  for (size_t i = 0; i < r.panels[0].values.size(); ++i) {
    CHECK(r.panels[0].values[i] >= -0.5f);
    CHECK(r.panels[0].values[i] <= 2.f);
  }
  Request neuron;
  neuron.units = {Unit::neuron(relu2, 2, 1, 3), Unit::along(relu2, noise(g.shape(relu2).sample(), 4))};
  const Result rn = run(g, neuron, "am", {{"steps", "30"}});
  for (const Row& row : rn.rows) CHECK(row.values.at("objective") > row.values.at("start_objective"));
  // start=constant is that pixel through the bounds; start=data starts from the inputs.
  Request c = q;
  c.units = {Unit::cls(1)};
  const Result rc = run(g, c, "am", {{"steps", "1"}, {"start", "constant"}, {"start_value", "0.2"}, {"lr", "1e-9"}});
  CHECK(rc.panels[0].values[0] == doctest::Approx(-0.5 + 0.2 * 2.5).epsilon(1e-4));
  c.inputs = noise(Shape{1, 1, 8, 8}, 30, 0, 1);
  const Result rd = run(g, c, "am", {{"steps", "1"}, {"start", "data"}, {"lr", "1e-9"}, {"jitter", "0"}, {"blur_every", "0"}});
  CHECK(max_abs_diff(rd.panels[0].values, c.inputs) < 1e-6);
}

// ---- DeepDream, fooling images, inversion ------------------------------------------------------

TEST_CASE("deepdream: octaves upsample, the layer's energy grows, a batch equals one by one") {
  Graph g = small_net();
  Request q;
  q.inputs = noise(Shape{2, 1, 8, 8}, 5, 0, 1);
  q.units = {Unit::whole(g.at("relu2")), Unit::channel(g.at("relu2"), 1)};
  const Params p = {{"steps", "8"}, {"octaves", "3"}, {"octave_scale", "1.5"}};
  const Result r = run(g, q, "deepdream", p);
  REQUIRE(r.rows.size() == 4);
  for (const Row& row : r.rows) {
    CHECK(row.values.at("value") > row.values.at("start"));
    CHECK(row.values.at("steps") == 24);
  }
  // `start` is the input's own value: with no step size the octaves give the input back, and the
  // value is the start (the coarsest octave's shrunk input scored lower, so any run looked like a gain).
  Params still = p;
  still["lr"] = "1e-12";
  for (const Row& row : run(g, q, "deepdream", still).rows)
    CHECK(row.values.at("value") == doctest::Approx(row.values.at("start")).epsilon(1e-5));
  Request one = q;
  one.inputs = rows_of(q.inputs, 1, 2);
  one.units = {q.units[1]};
  CHECK(max_abs_diff(run(g, one, "deepdream", p).panels[1].values, rows_of(r.panels[1].values, 3, 4)) < 1e-5);
}

TEST_CASE("fool: a trained preset reaches the target probability from images of the other class") {
  // lenet5 trained for one epoch on synthetic 28x28 bars (horizontal vs vertical).
  Graph g = make_preset("lenet5", Shape{1, 28, 28}, 2, 3);
  // (train/fit.h's Progress enum and engine/passes.h's Progress callback share a name, so the
  // loop is written out here: Adam, batches of 32, cross-entropy.)
  const Dataset train = bars(600, 1);
  OptimizerConfig oc;
  oc.kind = OptimizerKind::adam, oc.lr = 2e-3f;
  Optimizer opt(g, oc);
  BackwardOptions bo;
  bo.param_grads = true, bo.input_grad = false;
  Tensor grad;
  for (int b = 0; b < 600; b += 32) {
    const int e = std::min(600, b + 32);
    g.zero_grad();
    softmax_cross_entropy(g.forward(train.x.slice(b, e), Mode::train), {train.y.begin() + b, train.y.begin() + e}, &grad);
    g.backward(grad, bo);
    opt.step(oc.lr);
  }
  const Dataset test = bars(8, 2);
  Request q;
  q.inputs = test.x;  // no normalization: input space = pixels
  q.units = {Unit::cls(0), Unit::cls(1)};
  const Result r = run(g, q, "fool", {{"threshold", "0.99"}});
  REQUIRE(r.rows.size() == 16);
  int fooled = 0;
  for (int i = 0; i < 16; ++i) {
    const Row& row = r.rows[i];
    CAPTURE(row.name);
    CHECK(row.values.at("reached") == 1);
    CHECK(row.values.at("probability") >= 0.99);
    CHECK(row.values.at("predicted") == double(i % 2));
    CHECK(row.values.at("steps") < 1000);
    if (test.y[i / 2] != i % 2) {  // a real change of class
      ++fooled;
      CHECK(row.values.at("start_probability") < 0.5);
      CHECK(row.values.at("linf_change_pixels") > 0);
      CHECK(row.values.at("linf_change_pixels") <= 1.0);
    }
  }
  CHECK(fooled == 8);
  // From noise too.
  Request n;
  n.units = {Unit::cls(1)};
  CHECK(run(g, n, "fool").rows[0].values.at("reached") == 1);
}

TEST_CASE("fool: deterministic per seed, inputs and targets one by one equal the batch") {
  // jitter on, so each row's random stream matters; a high threshold keeps every row stepping.
  RestoreThreads guard;
  Graph g = small_net();
  Request q;
  q.inputs = noise(Shape{3, 1, 8, 8}, 21, 0, 1);
  q.units = {Unit::cls(1), Unit::cls(3)};
  const Params p = {{"steps", "25"}, {"jitter", "1"}, {"threshold", "0.999999"}, {"seed", "3"}};
  set_threads(2);
  const Result all = run(g, q, "fool", p);
  REQUIRE(all.rows.size() == 6);
  CHECK(all.rows[3].name == "input1_to_class3");
  set_threads(1);
  const Result again = run(g, q, "fool", p);
  CHECK(max_abs_diff(all.panels[1].values, again.panels[1].values) == 0);
  CHECK(max_abs_diff(all.panels[2].values, again.panels[2].values) == 0);
  for (size_t i = 0; i < all.rows.size(); ++i) CHECK(all.rows[i].values == again.rows[i].values);
  // Row (input n, target u) alone: the batch's row.
  for (int n = 0; n < 3; ++n)
    for (int u = 0; u < 2; ++u) {
      CAPTURE(n);
      CAPTURE(u);
      Request one;
      one.inputs = rows_of(q.inputs, n, n + 1);
      one.units = {q.units[u]};
      const Result r = run(g, one, "fool", p);
      const int i = 2 * n + u;
      CHECK(max_abs_diff(r.panels[1].values, rows_of(all.panels[1].values, i, i + 1)) < 1e-5);
      CHECK(r.rows[0].values.at("probability") == doctest::Approx(all.rows[i].values.at("probability")).epsilon(1e-4));
    }
  // The seed moves the jitter: another seed, other images. From noise the seed picks the start.
  Params other = p;
  other["seed"] = "4";
  CHECK(max_abs_diff(run(g, q, "fool", other).panels[1].values, all.panels[1].values) > 1e-4);
  Request n;
  n.units = {Unit::cls(2)};
  const Result a = run(g, n, "fool", p), b = run(g, n, "fool", p), c = run(g, n, "fool", other);
  CHECK(max_abs_diff(a.panels[0].values, b.panels[0].values) == 0);
  CHECK(max_abs_diff(a.panels[1].values, b.panels[1].values) == 0);
  CHECK(max_abs_diff(a.panels[0].values, c.panels[0].values) > 1e-3);
}

TEST_CASE("mask: deterministic per seed, inputs one by one equal the batch") {
  // Noise on the perturbed input each step, so the seed matters; one class per input.
  RestoreThreads guard;
  Graph g = small_net();
  Request q;
  q.inputs = noise(Shape{3, 1, 8, 8}, 23, 0, 1);
  q.units = {Unit::cls(0), Unit::cls(4), Unit::cls(2)};
  const Params p = {{"steps", "20"}, {"noise", "0.2"}, {"seed", "9"}, {"perturbation", "gray"}, {"mask_scale", "2"}};
  set_threads(2);
  const Result all = run(g, q, "mask", p);
  REQUIRE(all.rows.size() == 3);
  set_threads(1);
  const Result again = run(g, q, "mask", p);
  for (int k = 1; k < 3; ++k) CHECK(max_abs_diff(all.panels[k].values, again.panels[k].values) == 0);
  for (size_t i = 0; i < all.rows.size(); ++i) CHECK(all.rows[i].curves.at("loss") == again.rows[i].curves.at("loss"));
  for (int n = 0; n < 3; ++n) {
    CAPTURE(n);
    Request one;
    one.inputs = rows_of(q.inputs, n, n + 1);
    one.units = {q.units[n]};
    const Result r = run(g, one, "mask", p);
    for (int k = 1; k < 3; ++k) CHECK(max_abs_diff(r.panels[k].values, rows_of(all.panels[k].values, n, n + 1)) < 1e-5);
    CHECK(r.rows[0].values.at("score") == doctest::Approx(all.rows[n].values.at("score")).epsilon(1e-4));
  }
  Params other = p;
  other["seed"] = "10";
  CHECK(max_abs_diff(run(g, q, "mask", other).panels[2].values, all.panels[2].values) > 1e-4);
}

TEST_CASE("invert: the first convolution is inverted closely; the error grows with depth; one by one = batch") {
  Graph g = small_net();
  Request q;
  q.inputs = noise(Shape{2, 1, 8, 8}, 7, 0, 1);
  const Params p = {{"layers", "conv1,relu2,dense1"}, {"steps", "400"}, {"tv", "0"}, {"lambda_alpha", "0"},
                    {"lr", "0.02"}};
  const Result r = run(g, q, "invert", p);
  REQUIRE(r.rows.size() == 6);
  CHECK(r.rows[0].name == "input0_conv1");
  for (int n = 0; n < 2; ++n) {
    const Row& conv1 = r.rows[n * 3];
    CHECK(conv1.values.at("error") < 1e-3);
    CHECK(conv1.values.at("error") < conv1.values.at("start_error") / 100);
    // The inverted image's conv1 activations are the input's.
    const Tensor x = rows_of(r.panels[1].values, n * 3, n * 3 + 1);
    const Tensor a = activations(g, x, {0})[0], b = activations(g, rows_of(q.inputs, n, n + 1), {0})[0];
    CHECK(max_abs_diff(a, b) < 0.05);
    for (int l = 0; l < 3; ++l) CHECK(r.rows[n * 3 + l].values.at("error") < r.rows[n * 3 + l].values.at("start_error"));
  }
  Request one;
  one.inputs = rows_of(q.inputs, 1, 2);
  CHECK(max_abs_diff(run(g, one, "invert", p).panels[1].values, rows_of(r.panels[1].values, 3, 6)) < 1e-5);
}

TEST_CASE("invert: a layer that is all zeros for the input has its distance unnormalized") {
  // S = −‖a − 0‖² / 1 and its gradient −2a (dividing by 1e-12 scaled both by 1e12 against the priors).
  Graph g = small_net();
  const Tensor reference(Shape{1, 4, 8, 8});
  const Objective o = inversion_objective(g, 0, reference);
  Tensor a(Shape{1, 4, 8, 8});
  a[0] = 1, a[1] = -2, a[2] = 0.5f;
  Tensor seed;
  double value = 0;
  o.eval(a, 0, &value, seed);
  CHECK(value == doctest::Approx(-(1 + 4 + 0.25)));
  CHECK(seed[1] == doctest::Approx(4.0));
}

// ---- what a filter detects ------------------------------------------------------------------

TEST_CASE("receptive fields: lenet5 by hand, and the support of a positive net's gradient") {
  Graph g = make_preset("lenet5");
  // relu2 (y, x) <- conv2 k5 over maxpool1 [y, y+5) <- 2x2 pools over conv1 [2y, 2y+10) <- conv1 k5 p2: [2y-2, 2y+12)
  const Box b = receptive_field(g, g.at("relu2"), 0, 0);
  CHECK((b.y0 == -2 && b.x0 == -2 && b.y1 == 12 && b.x1 == 12));
  const Box c = receptive_field(g, g.at("relu2"), 3, 9);
  CHECK((c.y0 == 4 && c.x0 == 16 && c.y1 == 18 && c.x1 == 30));
  const Box d = receptive_field(g, g.at("dense1"), 0, 0);
  CHECK((d.y0 == 0 && d.y1 == 28 && d.x1 == 28));
  CHECK_THROWS_AS(receptive_field(g, g.at("relu2"), 10, 0), std::out_of_range);
  // With positive weights and inputs every path carries signal: the gradient's support is the field.
  Graph pos = arch("input(1,16,16) conv(2,k=3,p=1) relu avgpool(2) conv(2,k=3,s=2) relu", 3);  // 16 -> 8 -> 3
  // ... and through the decoder's layers (transposed convolution, upsampling).
  Graph dec = arch("input(1,16,16) conv(2,k=3) relu avgpool(2) convt(2,k=3,s=2,p=1) relu upsample(2) conv(1,k=3)", 3);
  for (Graph* net : {&pos, &dec}) {
    for (auto& [name, param] : net->named_params())
      for (size_t i = 0; i < param->value.size(); ++i) param->value[i] = std::fabs(param->value[i]) + 0.01f;
    const int last = net->output();
    const Shape s = net->shape(last);
    const Tensor x = noise(Shape{1, 1, 16, 16}, 4, 0.1f, 1);
    for (const auto& at : {std::pair{0, 0}, {1, 2}, {s[2] - 1, s[3] / 2}}) {
      const int y = at.first, xx = at.second;  // (clang 14 cannot capture structured bindings)
      CAPTURE(y);
      CAPTURE(xx);
      const Tensor grad = explain::explain(*net, x, Target::unit(*net, last, 0, y, xx), "saliency").attribution;
      const Box f = receptive_field(*net, last, y, xx);
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j) {
          const bool inside = i >= f.y0 && i < f.y1 && j >= f.x0 && j < f.x1;
          CHECK((grad[size_t(i) * 16 + j] != 0) == inside);
        }
    }
  }
}

TEST_CASE("top-patches equal a brute-force scan; each projection is a DeconvNet pass seeded at that unit") {
  Graph g = small_net();
  Request q;
  const Tensor half = noise(Shape{15, 1, 8, 8}, 8, 0, 1);
  q.data = concat({half, half});  // every value twice: ties go to the earlier sample
  q.units = parse_units(g, "relu2:all");
  for (const std::string proj : {"deconvnet", "guided-backprop"}) {
    const Result r = run(g, q, "top-patches", {{"k", "4"}, {"projection", proj}});
    REQUIRE(r.rows.size() == 24);
    const int relu2 = g.at("relu2");
    const Tensor acts = activations(g, q.data, {relu2})[0];  // [30, 6, 4, 4]
    for (int c = 0; c < 6; ++c) {
      struct Best {
        float v;
        int n, at;
      };
      std::vector<Best> all;
      for (int n = 0; n < 30; ++n) {
        const float* p = acts.data() + (n * 6 + c) * 16;
        const int at = int(std::max_element(p, p + 16) - p);
        all.push_back({p[at], n, at});
      }
      std::stable_sort(all.begin(), all.end(), [](const Best& a, const Best& b) { return a.v > b.v; });
      for (int j = 0; j < 4; ++j) {
        const Row& row = r.rows[c * 4 + j];
        CAPTURE(row.name);
        CHECK(row.values.at("sample") == all[j].n);
        CHECK(row.values.at("value") == all[j].v);
        CHECK(row.values.at("y") == all[j].at / 4);
        CHECK(row.values.at("x") == all[j].at % 4);
        // The projection: the attribution method on that image, seeded one-hot at that unit.
        const Tensor one = rows_of(q.data, all[j].n, all[j].n + 1);
        const Tensor want = explain::explain(g, one, Target::unit(g, relu2, c, all[j].at / 4, all[j].at % 4), proj).attribution;
        const Box box = receptive_field(g, relu2, all[j].at / 4, all[j].at % 4);
        const Tensor& got = r.panels[1].values;  // [24, 1, box h, box w]
        for (int y = 0; y < box.h(); ++y)
          for (int x = 0; x < box.w(); ++x) {
            const int sy = box.y0 + y, sx = box.x0 + x;
            const bool in = sy >= 0 && sy < 8 && sx >= 0 && sx < 8;
            CHECK(got.at(c * 4 + j, 0, y, x) == (in ? want.at(0, 0, sy, sx) : 0.f));
            CHECK(r.panels[0].values.at(c * 4 + j, 0, y, x) == (in ? one.at(0, 0, sy, sx) : 0.f));
          }
      }
    }
  }
}

TEST_CASE("top-patches after an upsampling: patches as large as the largest field, each field in the middle") {
  // Behind an upsampling the fields at the border are smaller than inside; the panels were sized
  // from the corner's and the larger fields were written past their rows.
  Graph g = graph_from_text("input(1,8,8) conv(4,k=3,p=1) relu maxpool(2) upsample(2) conv(4,k=3,p=1) relu flatten dense(3)");
  g.init(3);
  const int relu2 = g.at("relu2");
  Box most = receptive_field(g, relu2, 0, 0);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) {
      const Box b = receptive_field(g, relu2, y, x);
      most = {0, 0, std::max(most.h(), b.h()), std::max(most.w(), b.w())};
    }
  REQUIRE(most.h() > receptive_field(g, relu2, 0, 0).h());  // the case: the corner's field is smaller
  Request q;
  q.data = noise(Shape{12, 1, 8, 8}, 5, 0, 1);
  q.units = parse_units(g, "relu2:all");
  const Result r = run(g, q, "top-patches", {{"k", "3"}, {"projection", "deconvnet"}});
  const Tensor& img = r.panels[0].values;
  REQUIRE(img.shape() == Shape({12, 1, most.h(), most.w()}));
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const Row& row = r.rows[i];
    CAPTURE(row.name);
    const Box box = receptive_field(g, relu2, int(row.values.at("y")), int(row.values.at("x")));
    const Tensor one = rows_of(q.data, int(row.values.at("sample")), int(row.values.at("sample")) + 1);
    const int top = (most.h() - box.h()) / 2, left = (most.w() - box.w()) / 2;
    for (int y = 0; y < most.h(); ++y)
      for (int x = 0; x < most.w(); ++x) {
        const int sy = box.y0 + y - top, sx = box.x0 + x - left;
        const bool in = y >= top && y < top + box.h() && x >= left && x < left + box.w() && sy >= 0 && sy < 8 &&
                        sx >= 0 && sx < 8;
        CHECK(img.at(int(i), 0, y, x) == (in ? one.at(0, 0, sy, sx) : 0.f));
      }
  }
}

TEST_CASE("filters are the convolution's weights; maps are the layer's activations") {
  Graph g = small_net();
  const Result f = run(g, {}, "filters");
  const Tensor& w = dynamic_cast<const Conv2d&>(g.layer(0)).weight.value;
  CHECK(max_abs_diff(f.panels[0].values, w) == 0);
  CHECK(f.panels[0].draw == Draw::signed_map);
  CHECK(run(g, {}, "filters", {{"layer", "conv2"}}).rows.size() == 6);
  CHECK_THROWS_WITH_AS(run(g, {}, "filters", {{"layer", "relu1"}}), doctest::Contains("not a convolution"),
                       std::invalid_argument);
  Graph rgb = arch("input(3,6,6) conv(2,k=3) relu flatten dense(2)");
  const Result fr = run(rgb, {}, "filters");
  CHECK(fr.panels[0].draw == Draw::unit_range);
  CHECK(*std::min_element(fr.panels[0].values.data(), fr.panels[0].values.data() + 27) == 0.f);
  CHECK(*std::max_element(fr.panels[0].values.data(), fr.panels[0].values.data() + 27) == 1.f);
  // With no colorbar for colour filters, the figure says how weights became colours, and each caption
  // its filter's range.
  CHECK(fr.note.find("RGB = (w - min) / (max - min)") != std::string::npos);
  CHECK(fr.rows[0].caption.find("\nmin ") != std::string::npos);
  CHECK(f.note.empty());

  Request q;
  q.inputs = noise(Shape{2, 1, 8, 8}, 1, 0, 1);
  q.units = {Unit::whole(g.at("conv1"))};
  const Result m = run(g, q, "maps");
  REQUIRE(m.rows.size() == 8);
  const Tensor a = activations(g, q.inputs, {0})[0];
  CHECK(max_abs_diff(m.panels[1].values.reshaped(a.shape()), a) == 0);
  CHECK(m.panels[1].draw == Draw::signed_map);  // a convolution's output has negative values
}

// ---- multifaceted -------------------------------------------------------------------------------

TEST_CASE("kmeans recovers planted clusters, deterministically per seed") {
  Tensor X(Shape{90, 3});
  Rng r(4);
  const float centers[3][3] = {{5, 0, 0}, {0, 5, 0}, {0, 0, 5}};
  for (int n = 0; n < 90; ++n)
    for (int d = 0; d < 3; ++d) X[n * 3 + d] = centers[n % 3][d] + 0.3f * r.normal();
  const Clusters c = kmeans(X, 3, 11);
  for (int n = 3; n < 90; ++n) CHECK(c.labels[n] == c.labels[n % 3]);
  CHECK(std::set<int>(c.labels.begin(), c.labels.end()).size() == 3);
  for (int k = 0; k < 3; ++k) {
    const int truth = int(std::find(c.labels.begin(), c.labels.end(), k) - c.labels.begin()) % 3;
    for (int d = 0; d < 3; ++d) CHECK(std::fabs(c.centers[k * 3 + d] - centers[truth][d]) < 0.2);
  }
  CHECK(kmeans(X, 3, 11).labels == c.labels);
  CHECK_THROWS_AS(kmeans(X, 91, 1), std::invalid_argument);
}

TEST_CASE("multifaceted: a unit that answers two planted patterns gets one facet per pattern") {
  // S(x) = ⟨A + B, x⟩ on 4x4 images: A = the top half, B = the left half. The data: 30 noisy A's,
  // 30 noisy B's and 60 blanks. The top 60 are the A's and B's; k-means on the images (the layer
  // feeding the output is flatten) splits them; each facet starts from its pattern's mean.
  Graph g = arch("input(1,4,4) flatten dense(1,bias=false)");
  Tensor A(Shape{16}, 0.f), B(Shape{16}, 0.f);
  for (int i = 0; i < 16; ++i) A[i] = i < 8 ? 1.f : 0.f, B[i] = i % 4 < 2 ? 1.f : 0.f;
  auto& d = dynamic_cast<Dense&>(g.layer(1));
  for (int i = 0; i < 16; ++i) d.weight.value[i] = A[i] + B[i];
  Request q;
  q.units = {Unit::cls(0)};
  q.data = Tensor(Shape{120, 1, 4, 4}, 0.f);
  Rng r(2);
  for (int n = 0; n < 60; ++n)
    for (int i = 0; i < 16; ++i) q.data[n * 16 + i] = (n % 2 ? B[i] : A[i]) + 0.05f * r.normal();
  const Result res = run(g, q, "multifaceted", {{"facets", "2"}, {"top", "60"}, {"steps", "5"}});
  REQUIRE(res.rows.size() == 2);
  const Tensor& starts = res.panels[1].values;
  std::set<char> found;
  for (int f = 0; f < 2; ++f) {
    CHECK(res.rows[f].values.at("cluster_size") == 30);
    double da = 0, db = 0;
    for (int i = 0; i < 16; ++i) da += std::fabs(starts[f * 16 + i] - A[i]), db += std::fabs(starts[f * 16 + i] - B[i]);
    found.insert(da < 0.3 ? 'A' : db < 0.3 ? 'B' : '?');
    CHECK(res.rows[f].values.at("value") > res.rows[f].values.at("start"));
  }
  CHECK(found == std::set<char>{'A', 'B'});
}

TEST_CASE("multifaceted: deterministic per seed, units one by one equal the batch") {
  RestoreThreads guard;
  Graph g = small_net();
  Request q;
  q.data = noise(Shape{40, 1, 8, 8}, 31, 0, 1);
  q.units = {Unit::cls(1), Unit::cls(3)};
  const Params p = {{"facets", "3"}, {"top", "12"}, {"steps", "10"}, {"jitter", "1"}, {"seed", "4"}};
  set_threads(2);
  const Result all = run(g, q, "multifaceted", p);
  REQUIRE(all.rows.size() == 6);
  set_threads(1);
  const Result again = run(g, q, "multifaceted", p);
  for (int k = 0; k < 2; ++k) CHECK(max_abs_diff(all.panels[k].values, again.panels[k].values) == 0);
  for (size_t i = 0; i < all.rows.size(); ++i) CHECK(all.rows[i].values == again.rows[i].values);
  for (int u = 0; u < 2; ++u) {
    CAPTURE(u);
    Request one = q;
    one.units = {q.units[u]};
    const Result r = run(g, one, "multifaceted", p);
    for (int k = 0; k < 2; ++k)
      CHECK(max_abs_diff(r.panels[k].values, rows_of(all.panels[k].values, 3 * u, 3 * u + 3)) < 1e-5);
    for (int f = 0; f < 3; ++f) CHECK(r.rows[f].values.at("cluster_size") == all.rows[3 * u + f].values.at("cluster_size"));
  }
  // Another seed: other k-means++ seeds and jitter, so other images.
  Params other = p;
  other["seed"] = "5";
  CHECK(max_abs_diff(run(g, q, "multifaceted", other).panels[0].values, all.panels[0].values) > 1e-4);
}

// ---- what the model needs to see -------------------------------------------------------------

TEST_CASE("minimal-image: the greedy removal order and stopping point, by hand") {
  // Class 0's logit is the sum of four 2x2 cells' pixels times 1, 2, 3, 4; class 1's is 5 (its bias).
  // The image is all ones, so cell k contributes 4(k+1): z0 = 4 + 8 + 12 + 16 = 40. Greedy removal
  // (to black = 0) takes the cell that lowers z0 least: cell 0 (z0 36), cell 1 (28), cell 2 (16);
  // removing cell 3 would give 0 < 5 and change the prediction, so it stops with cell 3 kept.
  Graph g = arch("input(1,4,4) flatten dense(2)");
  auto& d = dynamic_cast<Dense&>(g.layer(1));
  std::vector<float> w(32, 0.f);
  for (int i = 0; i < 16; ++i) w[i] = float((i / 4 / 2) * 2 + (i % 4) / 2 + 1);  // the cell's number + 1
  d.weight.value.copy_from(Tensor::from(Shape{2, 16}, w));
  d.bias.value.copy_from(Tensor::from(Shape{2}, {0.f, 5.f}));
  Request q;
  q.inputs = Tensor(Shape{1, 1, 4, 4}, 1.f);
  q.units = {Unit::cls(0)};
  const Result r = run(g, q, "minimal-image", {{"cell", "2"}});
  const Row& row = r.rows[0];
  CHECK(row.values.at("segments") == 4);
  CHECK(row.values.at("kept") == 1);
  CHECK(row.curves.at("score") == std::vector<double>{40, 36, 28, 16});
  for (int i = 0; i < 16; ++i) CHECK(r.panels[1].values[i] == ((i / 8 == 1 && i % 4 >= 2) ? 1.f : 0.f));
  // Given segments (one label image for all inputs) are used as they are: two halves.
  Request two = q;
  two.inputs = Tensor(Shape{2, 1, 4, 4}, 1.f);
  Params p;
  p.tensors["segments"] = Tensor(Shape{4, 4});
  for (int i = 0; i < 16; ++i) p.tensors["segments"][i] = float(i < 8 ? 7 : 3);
  const Result h = run(g, two, "minimal-image", p);
  CHECK(h.rows[1].values.at("segments") == 2);
  CHECK(h.rows[1].curves.at("score") == std::vector<double>{40, 28});  // the top half (4 + 8) goes first
  p.tensors["segments"] = Tensor(Shape{3, 3});
  CHECK_THROWS_AS(run(g, two, "minimal-image", p), ShapeError);
  p.tensors["segments"] = Tensor(Shape{4, 4}, 1.f);
  p.tensors["segments"][5] = 2147483648.f;  // an int32 2147483647 read into float32
  CHECK_THROWS_WITH_AS(run(g, two, "minimal-image", p),
                       doctest::Contains("segment label 2147483648 at pixel 5 is not a whole number in [0, 1000000)"),
                       std::invalid_argument);
}

TEST_CASE("mask: the deletion mask finds planted evidence, its loss falls; preservation keeps it") {
  // Class 0's logit reads only the top-left 4x4 quadrant of an 8x8 image; class 1's is constant.
  Graph g = arch("input(1,8,8) flatten dense(2)");
  auto& d = dynamic_cast<Dense&>(g.layer(1));
  std::vector<float> w(128, 0.f);
  for (int i = 0; i < 64; ++i) w[i] = (i / 8 < 4 && i % 8 < 4) ? 0.5f : 0.f;
  d.weight.value.copy_from(Tensor::from(Shape{2, 64}, w));
  d.bias.value.copy_from(Tensor::from(Shape{2}, {0.f, 2.f}));
  Request q;
  q.inputs = Tensor(Shape{1, 1, 8, 8}, 1.f);
  q.units = {Unit::cls(0)};
  for (const std::string variant : {"deletion", "preservation"}) {
    CAPTURE(variant);
    const Result r = run(g, q, "mask", {{"variant", variant}, {"perturbation", "black"}, {"mask_scale", "2"},
                                              {"steps", "150"}, {"l1", "0.3"}});
    const Tensor& shown = r.panels[2].values;  // deletion: 1 - M; preservation: M
    double inside = 0, outside = 0;
    for (int i = 0; i < 64; ++i) ((i / 8 < 4 && i % 8 < 4) ? inside : outside) += shown[i] / 16.0;
    outside /= 3;
    CHECK(inside > outside + 0.3);
    const std::vector<double>& loss = r.rows[0].curves.at("loss");
    CHECK(loss.back() < loss.front());
    if (variant == "deletion") CHECK(r.rows[0].values.at("score") < r.rows[0].values.at("start_score"));
  }
}

// ---- the decoder's layers: transposed convolution and upsampling (engine/layers.h) -------------

namespace {

// Central differences of L = Σ seed ⊙ output against the backward pass: the input gradient and
// every parameter gradient, each element probed. The graphs checked are linear in each probed
// value, so a large step is exact and keeps float32 rounding of L small against it.
void check_gradients(Graph& g, const Tensor& x0) {
  Tensor x = x0.clone();
  const Tensor& y0 = g.forward(x);
  const Tensor seed = noise(y0.shape(), 77);
  auto L = [&](const Tensor& in) {
    const Tensor& y = g.forward(in);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += double(seed[i]) * y[i];
    return s;
  };
  g.forward(x);
  g.zero_grad();
  BackwardOptions bo;
  bo.param_grads = true;
  const Tensor gx = g.backward(seed, bo).clone();
  const double h = 0.25;
  for (size_t i = 0; i < x.size(); ++i) {
    const float keep = x[i];
    x[i] = keep + float(h);
    const double up = L(x);
    x[i] = keep - float(h);
    const double down = L(x);
    x[i] = keep;
    CHECK(gx[i] == doctest::Approx((up - down) / (2 * h)).epsilon(1e-3).scale(0.5));
  }
  for (const auto& named : g.named_params()) {  // (clang 14 cannot capture structured bindings in CAPTURE)
    const std::string& name = named.first;
    Param* p = named.second;
    CAPTURE(name);
    for (size_t i = 0; i < p->value.size(); ++i) {
      const float keep = p->value[i];
      p->value[i] = keep + float(h);
      const double up = L(x);
      p->value[i] = keep - float(h);
      const double down = L(x);
      p->value[i] = keep;
      CHECK(p->grad[i] == doctest::Approx((up - down) / (2 * h)).epsilon(1e-3).scale(0.5));
    }
  }
}

void randomize_params(Graph& g, uint64_t seed) {
  Rng r(seed);
  for (auto& [name, p] : g.named_params())
    for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 2 * r.uniform() - 1;
}

}  // namespace

TEST_CASE("convt: output sizes as PyTorch's ConvTranspose2d, finite-difference gradients, the adjoint of conv") {
  for (const char* text : {"input(3,4,5) convt(2,k=3)", "input(3,4,5) convt(2,k=4,s=2,p=1)",
                           "input(2,3,3) convt(3,k=3,s=2,p=1,op=1)", "input(2,5,4) convt(4,k=2,s=2,bias=false)",
                           "input(2,4,4) convt(2,k=5,s=3,p=2,op=2)"}) {
    CAPTURE(text);
    Graph g = arch(text);
    randomize_params(g, 3);
    const auto& L = dynamic_cast<const ConvTranspose2d&>(g.layer(0));
    const Shape in = g.input_shape(), out = g.shape(0).sample();
    CHECK(out[1] == (in[1] - 1) * L.stride - 2 * L.pad + L.k + L.out_pad);  // PyTorch's formula
    CHECK(out[2] == (in[2] - 1) * L.stride - 2 * L.pad + L.k + L.out_pad);
    check_gradients(g, noise(Shape::batch_of(2, in), 5));
    // ⟨convt(x; W), y⟩ = ⟨x, conv(y; W)⟩: the same weights, read as a convolution from the
    // output's shape to the input's (no bias).
    Graph conv = arch("input(" + std::to_string(out[0]) + "," + std::to_string(out[1]) + "," + std::to_string(out[2]) +
                      ") conv(" + std::to_string(in[0]) + ",k=" + std::to_string(L.k) + ",s=" + std::to_string(L.stride) +
                      ",p=" + std::to_string(L.pad) + ",bias=false)");
    dynamic_cast<Conv2d&>(conv.layer(0)).weight.value.copy_from(L.weight.value);
    REQUIRE(conv.shape(0).sample() == in);
    const Tensor x = noise(Shape::batch_of(2, in), 6), y = noise(Shape::batch_of(2, out), 7);
    Tensor tx = g.forward(x).clone();
    if (L.has_bias) {  // take the bias back out
      for (int n = 0; n < 2; ++n)
        for (int c = 0; c < out[0]; ++c)
          for (int i = 0; i < out[1] * out[2]; ++i) tx[(size_t(n) * out[0] + c) * out[1] * out[2] + i] -= L.bias.value[c];
    }
    CHECK(dot(tx, y) == doctest::Approx(dot(x, conv.forward(y))).epsilon(1e-5));
  }
}

TEST_CASE("convt by hand: a stride-2 transposed convolution places each input's copy of the kernel") {
  // One channel, 2x2 input [[1, 2], [3, 4]], kernel [[1, 10], [100, 1000]], stride 2: the output is
  // the 4x4 block matrix x[i][j] * K at (2i, 2j).
  Graph g = arch("input(1,2,2) convt(1,k=2,s=2,bias=false)");
  auto& L = dynamic_cast<ConvTranspose2d&>(g.layer(0));
  L.weight.value.copy_from(Tensor::from(Shape{1, 1, 2, 2}, {1, 10, 100, 1000}));
  const Tensor y = g.forward(Tensor::from(Shape{1, 1, 2, 2}, {1, 2, 3, 4})).clone();
  const std::vector<float> want = {1, 10, 2, 20, 100, 1000, 200, 2000, 3, 30, 4, 40, 300, 3000, 400, 4000};
  for (int i = 0; i < 16; ++i) CHECK(y[i] == want[i]);
}

TEST_CASE("upsample: nearest blocks forward, block sums backward, gradients; both layers in the architecture text") {
  Graph g = arch("input(2,2,3) upsample(3)");
  const Tensor x = noise(Shape{1, 2, 2, 3}, 8);
  const Tensor y = g.forward(x).clone();
  REQUIRE(y.shape() == Shape({1, 2, 6, 9}));
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 9; ++j) CHECK(y.at(0, c, i, j) == x.at(0, c, i / 3, j / 3));
  check_gradients(g, x);
  Graph d = arch("input(4,7,7) convt(8,k=4,s=2,p=1) upsample(2) conv(1,k=3,p=1)");  // linear: no kinks to probe
  randomize_params(d, 4);
  check_gradients(d, noise(Shape{2, 4, 7, 7}, 9));
  const std::string text = architecture_text(arch("input(4,7,7) convt(8,k=4,s=2,p=1) relu upsample(2) conv(1,k=3,p=1)"));
  CHECK(text == "input(4,7,7) convt(8,k=4,s=2,p=1) relu upsample(2) conv(1,k=3,p=1)");
  CHECK(architecture_text(graph_from_text(text)) == text);
  CHECK(architecture_text(arch("input(1,3,3) convt(2,k=3,s=2,op=1,bias=false)")) ==
        "input(1,3,3) convt(2,k=3,s=2,op=1,bias=false)");
  CHECK_THROWS_WITH_AS(arch("input(1,3,3) convt(2,k=3,s=2,op=2)"), doctest::Contains("output padding must be in [0, s)"),
                       std::invalid_argument);
  CHECK_THROWS_AS(arch("input(1,3,3) upsample(0)"), std::invalid_argument);
}

TEST_CASE("convt and upsample split across threads give the bits of one thread") {
  RestoreThreads guard;
  Graph g = arch("input(4,7,7) convt(8,k=4,s=2,p=1) relu upsample(2) conv(2,k=3,p=1)");
  randomize_params(g, 5);
  const Tensor x = noise(Shape{6, 4, 7, 7}, 10);
  std::vector<Tensor> out, gx, gw;
  for (int t : {1, 2, 3}) {
    set_threads(t);
    const Tensor& y = g.forward(x);
    out.push_back(y.clone());
    g.zero_grad();
    BackwardOptions bo;
    bo.param_grads = true;
    gx.push_back(g.backward(noise(y.shape(), 11), bo).clone());
    gw.push_back(dynamic_cast<ConvTranspose2d&>(g.layer(0)).weight.grad.clone());
  }
  for (int i = 1; i < 3; ++i) {
    CHECK(max_abs_diff(out[i], out[0]) == 0);
    CHECK(max_abs_diff(gx[i], gx[0]) == 0);
    CHECK(max_abs_diff(gw[i], gw[0]) < 1e-5);  // summed in thread order: the same at a thread count, near across counts
  }
}

// ---- decoder inversion ---------------------------------------------------------------------------

TEST_CASE("decoder architectures land exactly on the image size from any code size") {
  for (int h : {1, 3, 5, 7, 10, 13, 14, 20, 28})
    for (bool nearest : {false, true}) {
      CAPTURE(h);
      CAPTURE(nearest);
      Graph d = arch(decoder_architecture(Shape{6, h, h}, Shape{1, 28, 28}, 4, nearest));
      CHECK(d.shape(d.output()).sample() == Shape({1, 28, 28}));
    }
  Graph flat = arch(decoder_architecture(Shape{120}, Shape{3, 8, 8}, 4));
  CHECK(flat.shape(flat.output()).sample() == Shape({192}));
  CHECK(decoder_architecture(Shape{16, 10, 10}, Shape{1, 28, 28}, 16) ==
        "input(16,10,10) convt(16,k=3,s=3,p=1) relu conv(16,k=3,p=1) relu conv(1,k=3,p=1)");
  CHECK_THROWS_AS(decoder_architecture(Shape{4, 10, 5}, Shape{1, 28, 28}, 4), ShapeError);
}

TEST_CASE("decoder: learns to invert a layer that keeps the image; deterministic; inputs one by one = batch") {
  // conv1 keeps everything (2 filters, 3x3, linear): a trained decoder reconstructs far better than
  // the mean image. relu2 after a 2x2 max-pool keeps less.
  Graph g = arch("input(1,8,8) conv(2,k=3,p=1) relu maxpool(2) conv(3,k=3,p=1) relu flatten dense(3)", 5);
  Request q;
  q.fit_decoder = fit_decoder;
  Rng r(3);
  q.data = Tensor(Shape{256, 1, 8, 8});
  for (int n = 0; n < 256; ++n) {  // smooth images: a Gaussian blob at a random place
    const double cy = 1 + 6 * double(r.uniform()), cx = 1 + 6 * double(r.uniform());
    for (int i = 0; i < 64; ++i)
      q.data[n * 64 + i] = float(std::exp(-((i / 8 - cy) * (i / 8 - cy) + (i % 8 - cx) * (i % 8 - cx)) / 4.0));
  }
  q.inputs = rows_of(q.data, 0, 3);
  const Params p = {{"layers", "conv1,relu2"}, {"epochs", "40"}, {"lr", "0.01"}, {"batch", "32"}, {"width", "8"}};
  const Result res = run(g, q, "decoder", p);
  REQUIRE(res.rows.size() == 6);
  double baseline = 0;  // predicting the mean image
  Tensor mean(Shape{64}, 0.f);
  for (int n = 0; n < 256; ++n)
    for (int i = 0; i < 64; ++i) mean[i] += q.data[n * 64 + i] / 256;
  for (int n = 0; n < 3; ++n)
    for (int i = 0; i < 64; ++i) baseline += std::pow(q.inputs[n * 64 + i] - mean[i], 2) / (3 * 64);
  double conv1 = 0, relu2 = 0;
  for (int n = 0; n < 3; ++n) conv1 += res.rows[n * 2].values.at("mse") / 3, relu2 += res.rows[n * 2 + 1].values.at("mse") / 3;
  CHECK(conv1 < 0.1 * baseline);
  CHECK(relu2 < baseline);
  CHECK(res.rows[0].name == "input0_conv1");
  Request one = q;
  one.inputs = rows_of(q.inputs, 2, 3);
  CHECK(max_abs_diff(run(g, one, "decoder", p).panels[1].values, rows_of(res.panels[1].values, 4, 6)) == 0);
  Request none = q;
  none.fit_decoder = nullptr;
  CHECK_THROWS_WITH_AS(run(g, none, "decoder", p), doctest::Contains("needs a training loop"), std::invalid_argument);
}
