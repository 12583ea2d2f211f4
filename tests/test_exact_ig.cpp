// Exact Integrated Gradients for piecewise-linear networks: the path integral as a finite sum over
// the linear regions the straight path crosses (OpenBox's segment walk). Checked by hand on a
// one-neuron kink, against completeness to float rounding, against the quadrature rules in the
// limit of many steps, and through the integration-error metric.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/architecture.h"
#include "explain/attribution/explain.h"
#include "explain/attribution/gradient.h"
#include "explain/metrics/metrics.h"

using namespace gb;

namespace {

// With zero biases (the initializer's) a ReLU net is positively homogeneous: every pre-activation
// keeps its sign along the path from 0 to x, which then crosses one region only. Random biases
// make the path cross many.
Graph arch_with_biases(const std::string& text, uint64_t seed = 7) {
  Graph g = graph_from_text(text);
  g.init(seed);
  Rng r(seed + 100);
  for (auto& [name, p] : g.named_params())
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0)
      for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 0.6f * (r.uniform() - 0.5f);
  return g;
}

Tensor noise(const Graph& g, int n, uint64_t seed) {
  Tensor x(Shape::batch_of(n, g.input_shape()));
  Rng r(seed);
  for (size_t i = 0; i < x.size(); ++i) x[i] = r.uniform();
  return x;
}

double l1(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::fabs(double(a[i]) - b[i]);
  return s;
}

explain::Result ig(Graph& g, const Tensor& x, const Target& t, const std::string& method, int steps = 50) {
  return explain::explain(g, x, t, "integrated-gradients", {{"method", method}, {"n_steps", std::to_string(steps)}});
}

const char* kConvNet = "input(1,10,10) conv(4,k=3,p=1) relu maxpool(2) conv(6,k=3) relu flatten dense(12) relu dense(3)";

}  // namespace

TEST_CASE("exact IG of a single kink, by hand: relu(x − 1) from 0 to 3") {
  Graph g = arch_with_biases("input(1) dense(1) relu dense(2)");
  for (auto& [name, p] : g.named_params()) {
    if (name == "dense1.weight") p->value[0] = 1;
    if (name == "dense1.bias") p->value[0] = -1;
    if (name == "dense2.weight") p->value[0] = 1, p->value[1] = 0;
    if (name == "dense2.bias") p->value.fill(0);
  }
  const Tensor x = Tensor::from({1, 1}, {3.f});
  // The gradient is 0 on [0, 1/3) and 1 on (1/3, 1]: IG = 3 · 2/3 = 2 = f(3) − f(0).
  explain::Result e = ig(g, x, {0}, "exact");
  CHECK(e.attribution[0] == doctest::Approx(2.0).epsilon(1e-6));
  CHECK(e.details[0].at("regions")[0] == 2);
  CHECK(e.details[0].at("pieces")[0] == 2);
  CHECK(std::fabs(e.delta[0]) < 1e-6);
  // A quadrature rule misses the kink's position: riemann_left with 4 nodes sees gradients 0, 0,
  // 1, 1 at α = 0, 1/4, 1/2, 3/4 (the kink is at α = 1/3), so 3 · 2/4 = 1.5.
  CHECK(ig(g, x, {0}, "riemann_left", 4).attribution[0] == doctest::Approx(1.5));
}

TEST_CASE("exact IG is complete to float rounding and reports the regions it crosses") {
  Graph g = arch_with_biases(kConvNet, 3);
  const Tensor x = noise(g, 4, 5);
  const std::vector<int> t = {0, 1, 2, 0};
  explain::Result e = ig(g, x, t, "exact");
  REQUIRE(e.details.size() == 4);
  for (int n = 0; n < 4; ++n) {
    CAPTURE(n);
    double scale = 0;
    for (size_t i = 0; i < x.sample_size(); ++i) scale += std::fabs(e.attribution[n * x.sample_size() + i]);
    CHECK(std::fabs(e.delta[n]) < 1e-5 * std::max(1.0, scale));
    CHECK(e.details[n].at("regions")[0] > 1);
    CHECK(e.details[n].at("pieces")[0] >= e.details[n].at("regions")[0]);
  }
  // 50 Gauss-Legendre nodes are not complete on the same paths: the kinks fall between nodes.
  explain::Result gl = ig(g, x, t, "gausslegendre");
  double worst = 0;
  for (double d : gl.delta) worst = std::max(worst, std::fabs(d));
  CHECK(worst > 1e-4);
  // A unit of a layer, not only a class: the walk's pieces are the same, the seed differs.
  explain::Result u = explain::explain(g, x, Target::channel_mean(g.at("relu2"), 1), "integrated-gradients",
                                       {{"method", "exact"}});
  for (double d : u.delta) CHECK(std::fabs(d) < 1e-5);
}

TEST_CASE("the quadrature rules converge to exact IG as the steps grow") {
  Graph g = arch_with_biases(kConvNet, 4);
  const Tensor x = noise(g, 2, 8);
  const Tensor exact = ig(g, x, {1, 2}, "exact").attribution;
  const double scale = l1(exact, Tensor(exact.shape(), 0.f));
  double previous = INFINITY;
  for (int steps : {8, 64, 512}) {
    const double err = l1(ig(g, x, {1, 2}, "riemann_middle", steps).attribution, exact) / scale;
    CAPTURE(steps);
    CHECK(err < previous);
    previous = err;
  }
  CHECK(previous < 2e-3);
  CHECK(l1(ig(g, x, {1, 2}, "gausslegendre", 400).attribution, exact) / scale < 5e-3);
}

TEST_CASE("exact IG: batch = one by one, a linear model is one region, smooth layers are refused") {
  Graph g = arch_with_biases(kConvNet, 5);
  const Tensor x = noise(g, 3, 2);
  const Tensor all = ig(g, x, {0, 1, 2}, "exact").attribution;
  for (int n = 0; n < 3; ++n) {
    const Tensor one = ig(g, x.slice(n, n + 1).clone(), {n}, "exact").attribution;
    for (size_t i = 0; i < one.size(); ++i) CHECK(one[i] == doctest::Approx(all[n * one.size() + i]).epsilon(1e-5));
  }
  Graph lin = arch_with_biases("input(1,4,4) flatten dense(3)");
  const Tensor xl = noise(lin, 1, 3);
  explain::Result e = ig(lin, xl, {2}, "exact");
  CHECK(e.details[0].at("regions")[0] == 1);
  const Tensor ixg = explain::explain(lin, xl, {2}, "input-x-gradient").attribution;
  for (size_t i = 0; i < ixg.size(); ++i) CHECK(e.attribution[i] == doctest::Approx(ixg[i]).epsilon(1e-5));
  Graph smooth = arch_with_biases("input(1,4,4) flatten dense(5) tanh dense(3)");
  CHECK_THROWS_WITH_AS(ig(smooth, noise(smooth, 1, 1), {0}, "exact"), doctest::Contains("tanh"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(explain::explain(g, x, {0, 1, 2}, "integrated-gradients", {{"method", "exact"}, {"layer", "relu1"}}),
                       doctest::Contains("input only"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ig(g, x, {0, 1, 2}, "simpson"), doctest::Contains("riemann_trapezoid, exact"),
                       std::invalid_argument);
}

TEST_CASE("integration-error: the 50-step rules against exact IG") {
  Graph g = arch_with_biases(kConvNet, 6);
  const Tensor x = noise(g, 3, 4);
  const metrics::Evaluation e =
      metrics::evaluate(g, x, Target{0, 1, 2}, {"integrated-gradients", {}, {}}, "integration-error");
  const Tensor exact = ig(g, x, {0, 1, 2}, "exact").attribution, gl = ig(g, x, {0, 1, 2}, "gausslegendre").attribution;
  const size_t D = x.sample_size();
  for (int n = 0; n < 3; ++n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < D; ++i) num += std::fabs(double(gl[n * D + i]) - exact[n * D + i]), den += std::fabs(exact[n * D + i]);
    CHECK(e.values[n] == doctest::Approx(num / den).epsilon(1e-4));
    CHECK(e.extra.at("regions")[n] > 1);
    CHECK(std::fabs(e.extra.at("exact_delta")[n]) < 1e-5);
  }
  // Completeness from first principles, not from the library's deltas: Σ exact = f(x) − f(0) from
  // two forward passes, to float rounding; the metric's exact_delta and rule_delta are these gaps.
  const std::vector<double> fx = explain::target_outputs(g, x, Target{0, 1, 2}),
                            f0 = explain::target_outputs(g, Tensor(x.shape()), Target{0, 1, 2});
  for (int n = 0; n < 3; ++n) {
    CAPTURE(n);
    double sum_exact = 0, sum_gl = 0, scale = 0;
    for (size_t i = 0; i < D; ++i)
      sum_exact += exact[n * D + i], sum_gl += gl[n * D + i], scale += std::fabs(exact[n * D + i]);
    const double gain = fx[n] - f0[n];
    REQUIRE(std::fabs(gain) > 1e-3);
    const double tol = 1e-5 * std::max(1.0, scale);
    CHECK(std::fabs(sum_exact - gain) <= tol);
    CHECK(std::fabs(e.extra.at("exact_delta")[n] - (sum_exact - gain)) <= tol);
    CHECK(std::fabs(e.extra.at("rule_delta")[n] - (sum_gl - gain)) <= tol);
  }
  // Other methods have no exact counterpart.
  CHECK_THROWS_WITH_AS(metrics::evaluate(g, x, Target{0, 1, 2}, {"saliency", {}, {}}, "integration-error"),
                       doctest::Contains("integrated-gradients"), metrics::NotApplicable);
}
