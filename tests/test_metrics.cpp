// Evaluating explanations: every metric on cases whose answer is known by hand (a linear model and
// its exact attribution, one-hot and constant maps, masks), the registry's declarations, the
// conventions shared with Quantus (patch grids, ties, per-sample seeds), determinism and
// batch = one by one, the errors, and Adebayo et al.'s sanity-check finding on a trained model.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <numeric>

#include "data/dataset.h"
#include "engine/architecture.h"
#include "engine/edit.h"
#include "explain/attribution/explain.h"
#include "explain/metrics/common.h"
#include "explain/metrics/metrics.h"
#include "explain/metrics/similarity.h"
#include "train/fit.h"
#include "train/presets.h"

using namespace gb;
using namespace gb::metrics;

namespace {

Graph arch(const std::string& text, uint64_t seed = 7) {
  Graph g = graph_from_text(text);
  g.init(seed);
  return g;
}

void set_param(Graph& g, const std::string& name, const std::vector<float>& v) {
  for (auto& [n, p] : g.named_params())
    if (n == name) {
      REQUIRE(p->value.size() == v.size());
      std::copy(v.begin(), v.end(), p->value.data());
      return;
    }
  FAIL("no parameter " << name);
}

// f(x) = ⟨w, x⟩ as logit 0 of a 2-class model over 1×2×2 inputs (logit 1 is 0): input × gradient
// is its exact decomposition, w ⊙ x.
Graph linear(const std::vector<float>& w) {
  Graph g = arch("input(1,2,2) flatten dense(2,bias=false)");
  std::vector<float> W(8, 0.f);
  std::copy(w.begin(), w.end(), W.begin());
  set_param(g, "dense1.weight", W);
  return g;
}

Tensor tensor(const Shape& s, std::vector<float> v) { return Tensor::from(s, std::move(v)); }

Tensor random_input(const Graph& g, int n, uint64_t seed) {
  Tensor x(Shape::batch_of(n, g.input_shape()));
  Rng r(seed);
  for (size_t i = 0; i < x.size(); ++i) x[i] = r.uniform();
  return x;
}

Evaluation run(Graph& g, const Tensor& x, const Target& t, const std::string& method, const std::string& metric,
               const Params& p = {}, const Context& c = {}) {
  return evaluate(g, x, t, {method, {}, {}}, metric, p, c);
}

// A metric of a fixed attribution (Quantus's a_batch).
Evaluation of_map(Graph& g, const Tensor& x, const Tensor& a, const std::string& metric, const Params& p = {},
                  const Context& c = {}) {
  return evaluate(g, x, Target{0}, {"saliency", {}, a}, metric, p, c);
}

const std::vector<float> kX = {3.f, 1.f, 2.f, 0.5f};  // contributions of w = 1: sorted 3, 2, 1, 0.5

}  // namespace

TEST_CASE("deletion, insertion and pixel flipping of a linear model's exact attribution, by hand") {
  Graph g = linear({1, 1, 1, 1});
  const Tensor x = tensor({1, 1, 2, 2}, kX);
  const Params logit{{"softmax", "false"}, {"perturb_baseline", "0"}};
  SUBCASE("deletion (MoRF): f = 6.5, 3.5, 1.5, 0.5, 0 over fractions 0..1") {
    Evaluation e = run(g, x, {0}, "input-x-gradient", "deletion", logit);
    REQUIRE(e.curves.size() == 1);
    CHECK(e.curves[0].x == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
    const std::vector<double> want = {6.5, 3.5, 1.5, 0.5, 0};
    for (size_t k = 0; k < want.size(); ++k) CHECK(e.curves[0].y[0][k] == doctest::Approx(want[k]));
    CHECK(e.values[0] == doctest::Approx(0.25 * (6.5 / 2 + 3.5 + 1.5 + 0.5)));  // 2.1875
    CHECK(e.extra["aopc"][0] == doctest::Approx((0 + 3 + 5 + 6 + 6.5) / 5));
  }
  SUBCASE("LeRF removes the smallest contributions first: a larger area") {
    Params p = logit;
    p["order"] = "lerf";
    Evaluation e = run(g, x, {0}, "input-x-gradient", "deletion", p);
    CHECK(e.values[0] == doctest::Approx(0.25 * (6.5 / 2 + 6 + 5 + 3)));  // 4.3125
  }
  SUBCASE("insertion from the baseline: f = 0, 3, 5, 6, 6.5") {
    Evaluation e = run(g, x, {0}, "input-x-gradient", "insertion", logit);
    CHECK(e.values[0] == doctest::Approx(0.25 * (3 + 5 + 6 + 6.5 / 2)));
    CHECK(e.extra["aopc"][0] == doctest::Approx(-4.1));
  }
  SUBCASE("pixel flipping: Quantus's curve starts after the first flip, area with dx = 1") {
    Evaluation e = run(g, x, {0}, "input-x-gradient", "pixel-flipping", logit);
    CHECK(e.curves[0].y[0].size() == 4);
    CHECK(e.values[0] == doctest::Approx(3.5 / 2 + 1.5 + 0.5));  // 3.75
    Params two = logit;
    two["features_in_step"] = "2";
    CHECK(run(g, x, {0}, "input-x-gradient", "pixel-flipping", two).values[0] == doctest::Approx(1.5 / 2));
    two["features_in_step"] = "3";  // steps of 3 then 1: ceil(D / 3) flips
    CHECK(run(g, x, {0}, "input-x-gradient", "pixel-flipping", two).values[0] == doctest::Approx(0.5 / 2));
  }
  SUBCASE("black is the sample's minimum (Quantus), not zero") {
    Params p{{"softmax", "false"}};
    Evaluation e = run(g, x, {0}, "input-x-gradient", "deletion", p);
    // every removed feature becomes 0.5: f = 6.5, 4, 2.5, 2, 2
    CHECK(e.values[0] == doctest::Approx(0.25 * (6.5 / 2 + 4 + 2.5 + 2 + 2.0 / 2)));
  }
  SUBCASE("softmax probabilities by default: the curve of p(class 0) = σ(f)") {
    Params p{{"perturb_baseline", "0"}};
    Evaluation e = run(g, x, {0}, "input-x-gradient", "deletion", p);
    CHECK(e.curves[0].y[0][1] == doctest::Approx(1 / (1 + std::exp(-3.5))));
    CHECK(e.curves[0].y[0][4] == doctest::Approx(0.5));
  }
}

TEST_CASE("region perturbation and selectivity: Quantus's patch grid and AOPC by hand") {
  // The grid pads evenly to a multiple of the patch size (Quantus get_padding_size) and clips.
  CHECK(patch_grid(3, 3, 2) == std::vector<std::vector<int>>{{0, 1, 3, 4}, {2, 5}, {6, 7}, {8}});
  CHECK(patch_grid(4, 4, 3) == std::vector<std::vector<int>>{{0, 1, 4, 5}, {2, 3, 6, 7}, {8, 9, 12, 13}, {10, 11, 14, 15}});
  Graph g = linear({1, 1, 1, 1});
  const Tensor x = tensor({1, 1, 2, 2}, kX);
  const Params p{{"softmax", "false"}, {"perturb_baseline", "0"}, {"patch_size", "1"}};
  Evaluation e = run(g, x, {0}, "input-x-gradient", "region-perturbation", p);
  CHECK(e.curves[0].y[0] == std::vector<double>{3, 5, 6, 6.5});                 // drops f(x) − f(x_k)
  CHECK(e.values[0] == doctest::Approx((3 + 5 + 6 + 6.5) / 5));                // AOPC with the k = 0 term
  CHECK(e.extra["auc"][0] == doctest::Approx((3 + 5) / 2.0 + (5 + 6) / 2.0 + (6 + 6.5) / 2.0));
  Params few = p;
  few["regions_evaluation"] = "2";
  CHECK(run(g, x, {0}, "input-x-gradient", "region-perturbation", few).values[0] == doctest::Approx((3 + 5) / 3.0));
  Params sel{{"softmax", "false"}, {"perturb_baseline", "0"}, {"patch_size", "1"}};
  CHECK(run(g, x, {0}, "input-x-gradient", "selectivity", sel).values[0] == doctest::Approx(3.75));
  // A 2×2 patch covers the whole input: one step to 0.
  sel["patch_size"] = "2";
  Evaluation one = run(g, x, {0}, "input-x-gradient", "selectivity", sel);
  CHECK(one.curves[0].y[0] == std::vector<double>{0});
}

TEST_CASE("region perturbation's random order is drawn from the whole sample, not its first values") {
  // 16 patches of 2×2 over 8×8 pixels: inputs that differ only in their last pixel must still get
  // their own orders (the draw once hashed only as many values as there are patches, the first 16
  // pixels, so every image with the same top rows, on MNIST the background, got the same order).
  Graph g = arch("input(1,8,8) flatten dense(2,bias=false)");
  std::vector<float> w(128, 0.f);
  std::fill(w.begin(), w.begin() + 64, 1.f);  // logit 0 = Σ x
  set_param(g, "dense1.weight", w);
  Tensor x({2, 1, 8, 8});
  for (int i = 0; i < 64; ++i) x[i] = x[64 + i] = float(i + 1);
  x[127] = 64.5f;
  const Params p{{"softmax", "false"}, {"perturb_baseline", "0"}, {"patch_size", "2"}, {"order", "random"}};
  Evaluation e = run(g, x, {0, 0}, "input-x-gradient", "region-perturbation", p);
  // Drops f(x) − f(x_k) are sums of removed patches: with one order they differ by 0.5 at most.
  double most = 0;
  const std::vector<double>&y0 = e.curves[0].y[0], &y1 = e.curves[0].y[1];
  for (size_t k = 0; k < y0.size(); ++k) most = std::max(most, std::abs(y0[k] - y1[k]));
  CHECK(most > 1.0);
}

TEST_CASE("the better direction follows `order`: lerf reverses it, random has none") {
  const MetricInfo& del = metric_info("deletion");
  CHECK(better_for(del, {}) == Better::lower);
  CHECK(better_for(del, {{"order", "morf"}}) == Better::lower);
  CHECK(better_for(del, {{"order", "lerf"}}) == Better::higher);
  CHECK(better_for(del, {{"order", "random"}}) == Better::neither);
  CHECK(better_for(metric_info("insertion"), {{"order", "lerf"}}) == Better::lower);
  CHECK(better_for(metric_info("region-perturbation"), {{"order", "lerf"}}) == Better::lower);
  CHECK(better_for(metric_info("region-perturbation"), {{"order", "random"}}) == Better::neither);
  CHECK(better_for(metric_info("selectivity"), {{"patch_size", "4"}}) == Better::lower);  // no order: as declared
  CHECK(std::string(better_name(Better::higher)) == "higher");
}

TEST_CASE("faithfulness correlation, sensitivity-n, monotonicity and infidelity of exact attributions") {
  Graph g = linear({1, 1, 1, 1});
  const Tensor x = tensor({1, 1, 2, 2}, kX);
  SUBCASE("a subset's attribution sum is its exact drop: correlation 1") {
    Params p{{"softmax", "false"}, {"perturb_baseline", "0"}, {"subset_size", "2"}, {"nr_runs", "20"}};
    CHECK(run(g, x, {0}, "input-x-gradient", "faithfulness-correlation", p).values[0] == doctest::Approx(1.0));
    // A map that ranks the features backwards correlates negatively.
    const Tensor wrong = tensor({1, 1, 2, 2}, {0.5f, 2.f, 1.f, 3.f});
    CHECK(of_map(g, x, wrong, "faithfulness-correlation", p).values[0] < 0);
  }
  SUBCASE("sensitivity-n: every subset size correlates perfectly") {
    Params p{{"softmax", "false"}, {"perturb_baseline", "0"}, {"n_max_percentage", "0.75"}, {"n_values", "3"},
             {"nr_runs", "12"}};
    Evaluation e = run(g, x, {0}, "input-x-gradient", "sensitivity-n", p);
    CHECK(e.curves[0].x == std::vector<double>{1, 2, 3});
    for (double r : e.curves[0].y[0]) CHECK(r == doctest::Approx(1.0));
    CHECK(e.values[0] == doctest::Approx(1.0));
  }
  SUBCASE("monotonicity: adding features from the least relevant never lowers a sum of positive parts") {
    Params p{{"softmax", "false"}, {"perturb_baseline", "0"}};
    CHECK(run(g, x, {0}, "input-x-gradient", "monotonicity", p).values[0] == 1.0);
    // A negative contribution: |a| puts it second, and adding it lowers f.
    const Tensor xn = tensor({1, 1, 2, 2}, {3.f, -1.f, 2.f, 0.5f});
    CHECK(run(g, xn, {0}, "input-x-gradient", "monotonicity", p).values[0] == 0.0);
    p["abs"] = "false";  // signed order adds it first: 0.5 − 1 ... rises again from −1
    CHECK(run(g, xn, {0}, "input-x-gradient", "monotonicity", p).values[0] == 1.0);
  }
  SUBCASE("infidelity: the gradient of a linear model predicts every perturbation exactly") {
    Params p{{"n_perturb_samples", "50"}};
    CHECK(run(g, x, {0}, "saliency", "infidelity", p).values[0] == doctest::Approx(0.0).epsilon(1e-9));
    // Twice the gradient is wrong by ⟨w, I⟩ per draw, which the least-squares β of normalize removes.
    const Tensor twice = tensor({1, 1, 2, 2}, {2, 2, 2, 2});
    const double wrong = of_map(g, x, twice, "infidelity", p).values[0];
    CHECK(wrong > 1e-3);  // E⟨w, I⟩² = 4 σ² = 0.04
    CHECK(wrong == doctest::Approx(0.04).epsilon(0.5));
    p["normalize"] = "true";
    CHECK(of_map(g, x, twice, "infidelity", p).values[0] == doctest::Approx(0.0).epsilon(1e-9));
    // A mean of squares is never below 0, also where the fit is exact (it was β²aa − 2βad + dd).
    for (const char* n : {"1", "2", "50"})
      for (const char* seed : {"1", "2", "3", "4", "5"}) {
        const Params q{{"n_perturb_samples", n}, {"normalize", "true"}, {"seed", seed}};
        CHECK(of_map(g, x, twice, "infidelity", q).values[0] >= 0);
        CHECK(run(g, x, {0}, "saliency", "infidelity", q).values[0] >= 0);
      }
  }
}

TEST_CASE("complexity of one-hot and constant maps") {
  Graph g = linear({1, 1, 1, 1});
  const Tensor x = tensor({1, 1, 2, 2}, kX);
  const Tensor one_hot = tensor({1, 1, 2, 2}, {0, 0, 5, 0}), flat = tensor({1, 1, 2, 2}, {2, 2, 2, 2});
  // Gini of sorted |a| + 1e-7 = Σ (2i − D − 1) v_i / (D Σ v) = 3 / (4 (1 + 4e-7)).
  CHECK(of_map(g, x, one_hot, "sparseness").values[0] == doctest::Approx(3.0 / (4 * (1 + 4e-7))).epsilon(1e-12));
  CHECK(of_map(g, x, flat, "sparseness").values[0] == doctest::Approx(0.0).epsilon(1e-12));
  CHECK(of_map(g, x, one_hot, "complexity").values[0] == doctest::Approx(0.0).epsilon(1e-9));
  CHECK(of_map(g, x, flat, "complexity").values[0] == doctest::Approx(std::log(4.0)));
  const Tensor mixed = tensor({1, 1, 2, 2}, {1, 1e-6f, -0.5f, 0});
  CHECK(of_map(g, x, mixed, "effective-complexity").values[0] == 2);
  CHECK(of_map(g, x, mixed, "effective-complexity", {{"eps", "1e-7"}}).values[0] == 3);
  CHECK(std::isnan(of_map(g, x, tensor({1, 1, 2, 2}, {0, 0, 0, 0}), "complexity").values[0]));
  CHECK_THROWS_WITH_AS(of_map(g, x, flat, "sparseness", {{"abs", "false"}}), doctest::Contains("abs=false"),
                       std::invalid_argument);
}

TEST_CASE("robustness of a linear model's explanations, by hand") {
  const Tensor x = tensor({1, 1, 2, 2}, kX);
  SUBCASE("saliency does not move at all") {
    Graph g = linear({1, -2, 1, 0.5f});
    for (const char* m : {"max-sensitivity", "avg-sensitivity", "local-lipschitz", "relative-output-stability"})
      CHECK(run(g, x, {0}, "saliency", m, {{"nr_samples", "20"}}).values[0] == 0.0);
    CHECK(run(g, x, {0}, "saliency", "continuity", {{"nr_steps", "5"}}).values[0] == 0.0);
  }
  SUBCASE("input × gradient moves exactly as the input: Lipschitz |w|, relative input stability 1") {
    Graph g = linear({2, 2, 2, 2});
    const Params p{{"nr_samples", "30"}, {"normalise", "false"}};
    CHECK(run(g, x, {0}, "input-x-gradient", "local-lipschitz", p).values[0] == doctest::Approx(2.0).epsilon(1e-6));
    CHECK(run(g, x, {0}, "input-x-gradient", "relative-input-stability", {{"nr_samples", "30"}}).values[0] ==
          doctest::Approx(1.0).epsilon(1e-6));
    // ‖w ⊙ δ‖ / ‖w ⊙ x‖ with |δ_i| ≤ 0.2: positive, at most 0.2·2 / ‖x‖.
    const double ms = run(g, x, {0}, "input-x-gradient", "max-sensitivity", p).values[0];
    const double as = run(g, x, {0}, "input-x-gradient", "avg-sensitivity", p).values[0];
    CHECK(ms > 0);
    CHECK(as <= ms);
    CHECK(ms <= 0.4 / std::sqrt(9 + 1 + 4 + 0.25));
  }
}

TEST_CASE("local Lipschitz by projected search: never below its own samples, exact where the ratio is constant") {
  Graph lin = linear({2, 2, 2, 2});
  const Tensor x = tensor({1, 1, 2, 2}, kX);
  // Input × gradient of f = 2·Σx moves by 2δ: every point of the ball has ratio 2.
  const Params pgd{{"search", "pgd"}, {"nr_samples", "5"}, {"normalise", "false"}, {"pgd_steps", "3"}};
  CHECK(run(lin, x, {0}, "input-x-gradient", "local-lipschitz", pgd).values[0] == doctest::Approx(2.0).epsilon(1e-6));
  // On a ReLU net the maximum over the visited points can only grow with the steps (the same seed
  // draws the same samples and probes), and starts from the samples' maximum.
  Graph g = arch("input(1,12,12) conv(3,k=3,p=1) relu maxpool(2) flatten dense(6) relu dense(4)", 13);
  for (auto& [name, p] : g.named_params())
    if (name == "conv1.bias") std::fill_n(p->value.data(), 3, 0.05f);
  const Tensor xs = random_input(g, 2, 5);
  Params p{{"search", "pgd"}, {"nr_samples", "8"}, {"epsilon", "0.3"}, {"pgd_steps", "0"}};
  const std::vector<double> samples = run(g, xs, {0, 3}, "saliency", "local-lipschitz", p).values;
  p["pgd_steps"] = "1";
  const std::vector<double> one = run(g, xs, {0, 3}, "saliency", "local-lipschitz", p).values;
  p["pgd_steps"] = "4";
  const std::vector<double> four = run(g, xs, {0, 3}, "saliency", "local-lipschitz", p).values;
  p["pgd_steps"] = "4";
  CHECK(run(g, xs, {0, 3}, "saliency", "local-lipschitz", p).values == four);
  CHECK(four[0] + four[1] > samples[0] + samples[1]);  // the search finds larger ratios than the samples
  for (int n = 0; n < 2; ++n) {
    CHECK(samples[n] > 0);
    CHECK(one[n] >= samples[n]);
    CHECK(four[n] >= one[n]);
  }
}

// One-input models for the search: weights set by hand.
static Graph one_input(const std::string& text, const std::map<std::string, std::vector<float>>& values) {
  Graph g = arch(text);
  for (auto& [name, v] : values) set_param(g, name, v);
  return g;
}

TEST_CASE("local Lipschitz search: x itself is not a visited point (NaN when every perturbation changes the class)") {
  // Class 0 only within |x| < 0.05 of 0: every sample and probe in a ball of radius 100 is class 1,
  // so no perturbation counts. The search then starts at x and cannot move; scoring x itself
  // gave ‖a(x) − a(x)‖ / 1e-10 = 0, the best value there is.
  Graph g = one_input("input(1) dense(2) relu dense(2)", {{"dense1.weight", {1, -1}}, {"dense1.bias", {0, 0}},
                                                          {"dense2.weight", {-10, -10, 0, 0}}, {"dense2.bias", {1, 0.5f}}});
  const Tensor x0 = tensor({1, 1}, {0.f});
  for (const char* steps : {"1", "3"}) {
    INFO("pgd_steps=" << steps);
    const Params p{{"search", "pgd"}, {"nr_samples", "2"}, {"epsilon", "100"}, {"pgd_steps", steps},
                   {"return_nan_when_prediction_changes", "true"}};
    CHECK(std::isnan(run(g, x0, {0}, "saliency", "local-lipschitz", p).values[0]));
  }
}

TEST_CASE("local Lipschitz search: it moves towards larger ratios and never leaves the ball") {
  const Tensor x0 = tensor({1, 1}, {0.f});
  // f = tanh(3x − 3): its gradient changes fastest near x = 1, so the ratio |f'(x') − f'(0)| / |x'|
  // grows from 0 towards there. From one sample, the search must walk to find larger ratios.
  Graph smooth = one_input("input(1) dense(1) tanh dense(2)", {{"dense1.weight", {3}}, {"dense1.bias", {-3}},
                                                               {"dense2.weight", {1, 0}}, {"dense2.bias", {0, 0}}});
  Params p{{"search", "pgd"}, {"nr_samples", "1"}, {"epsilon", "1"}, {"normalise", "false"}, {"pgd_steps", "1"}};
  const double one = run(smooth, x0, {0}, "saliency", "local-lipschitz", p).values[0];
  p["pgd_steps"] = "6";
  CHECK(run(smooth, x0, {0}, "saliency", "local-lipschitz", p).values[0] > one * 1.05);
  // In the ball of radius 0.6 the largest ratio is at its edge x' = 0.6 (beyond it, near x' = 0.9,
  // it is twice as large): the search gets close to it and no further.
  auto grad = [](double x) { const double t = std::tanh(3 * x - 3); return 3 * (1 - t * t); };
  double sup = 0;
  for (int i = 1; i <= 6000; ++i) {
    const double xp = 0.6 * i / 6000.0;
    sup = std::max({sup, std::fabs(grad(xp) - grad(0)) / xp, std::fabs(grad(-xp) - grad(0)) / xp});
  }
  p["epsilon"] = "0.6";
  p["nr_samples"] = "4";
  const double found = run(smooth, x0, {0}, "saliency", "local-lipschitz", p).values[0];
  CHECK(found <= sup * (1 + 1e-5));
  CHECK(found > 0.95 * sup);
  // g = relu(x − 0.5) + 100 relu(x − 1.5) from x = 0.9: the gradient is 1 on the whole ball of radius
  // 0.3, so every point in it has ratio 0; it jumps to 101 beyond 1.5, inside the ball of radius 0.7.
  Graph kinks = one_input("input(1) dense(2) relu dense(2)", {{"dense1.weight", {1, 1}}, {"dense1.bias", {-0.5f, -1.5f}},
                                                               {"dense2.weight", {1, 100, 0, 0}}, {"dense2.bias", {0, 0}}});
  const Tensor x9 = tensor({1, 1}, {0.9f});
  Params q{{"search", "pgd"}, {"nr_samples", "20"}, {"epsilon", "0.3"}, {"normalise", "false"}};
  CHECK(run(kinks, x9, {0}, "saliency", "local-lipschitz", q).values[0] == 0.0);
  q["epsilon"] = "0.7";
  const double reached = run(kinks, x9, {0}, "saliency", "local-lipschitz", q).values[0];
  CHECK(reached > 100 / 0.7);
  CHECK(reached <= 100 / 0.6 + 1e-3);
}

TEST_CASE("similarity measures: scipy's and skimage's conventions") {
  const std::vector<float> a = {1, 2, 2, 3}, b = {4, 3, 2, 1};
  CHECK(average_ranks(a.data(), 4) == std::vector<double>{1, 2.5, 2.5, 4});
  CHECK(spearman(a.data(), a.data(), 4) == doctest::Approx(1.0));
  CHECK(spearman(b.data(), std::vector<float>{1, 2, 3, 4}.data(), 4) == doctest::Approx(-1.0));
  // Pearson by hand: a − mean = (−1, 0, 0, 1), b − mean = (1.5, .5, −.5, −1.5): r = −3 / √(2·5).
  CHECK(pearson(a.data(), b.data(), 4) == doctest::Approx(-3 / std::sqrt(10.0)));
  CHECK(std::isnan(pearson(a.data(), std::vector<float>{1, 1, 1, 1}.data(), 4)));
  // SSIM of one 7×7 window, by its formula with sample (co)variances.
  std::vector<float> p(49), q(49);
  for (int i = 0; i < 49; ++i) p[i] = float(i % 7), q[i] = float(i % 7) * 0.5f + 1;
  const double mp = 3, mq = 2.5, vp = 4 * 49 / 48.0, vq = 1 * 49 / 48.0, cpq = 2 * 49 / 48.0;
  const double c1 = 0.0001 * 36, c2 = 0.0009 * 36;  // data range 6
  CHECK(ssim(p.data(), q.data(), 7, 7, 6.0) ==
        doctest::Approx((2 * mp * mq + c1) * (2 * cpq + c2) / ((mp * mp + mq * mq + c1) * (vp + vq + c2))));
  CHECK(ssim(p.data(), p.data(), 7, 7, 6.0) == doctest::Approx(1.0));
  // HOG: 12×12 with 4-pixel cells holds one 3×3 block of 9 bins; a vertical edge puts all its
  // magnitude in the 0° bin of the cells it crosses, and L2-Hys caps each entry at 0.2 then
  // renormalises.
  std::vector<float> edge(144, 0.f);
  for (int y = 0; y < 12; ++y)
    for (int x = 6; x < 12; ++x) edge[y * 12 + x] = 1;
  const std::vector<float> h = hog(edge.data(), 12, 12);
  REQUIRE(h.size() == 81);
  double norm = 0;
  for (float v : h) norm += v * v;
  CHECK(norm == doctest::Approx(1.0).epsilon(1e-4));
  for (int cell = 0; cell < 9; ++cell)
    for (int bin = 1; bin < 9; ++bin) CHECK(h[cell * 9 + bin] == 0.f);
  CHECK(h[1 * 9] > 0);  // the middle column of cells holds the edge
  CHECK(h[0] == 0.f);
  CHECK(hog(edge.data(), 8, 8).empty());
}

TEST_CASE("randomisation: stages, curves and the untouched model") {
  Graph g = arch("input(1,12,12) conv(4,k=3,p=1) relu maxpool(2) flatten dense(8) relu dense(3)", 3);
  const Tensor x = random_input(g, 3, 11);
  const Tensor before = g.forward(x).clone();
  Evaluation e = run(g, x, {0, 1, 2}, "saliency", "cascading-randomisation");
  CHECK(e.stages == std::vector<std::string>{"original", "dense2", "dense1", "conv1"});
  REQUIRE(e.curves.size() == 4);
  for (const Curve& c : e.curves) {
    CHECK(c.ticks == e.stages);
    for (auto& y : c.y) CHECK(y[0] == doctest::Approx(1.0));  // the original against itself
  }
  // The value is the mean over the randomised stages of Spearman of |a|; "last" the fully random one.
  for (int n = 0; n < 3; ++n) {
    const auto& y = e.curves[1].y[n];
    CHECK(e.values[n] == doctest::Approx((y[1] + y[2] + y[3]) / 3));
    CHECK(e.extra["last"][n] == y[3]);
    CHECK(y[3] < 0.9);
  }
  const Tensor after = g.forward(x);
  for (size_t i = 0; i < after.size(); ++i) REQUIRE(after[i] == before[i]);
  // Independent: one layer at a time, the same stages; its conv1 stage equals the cascade's only
  // where the cascade has randomised everything above, so they differ.
  Evaluation ind = run(g, x, {0, 1, 2}, "saliency", "independent-randomisation");
  CHECK(ind.stages == e.stages);
  // Figures say which: the cascade's stages add up ("+ dense1"), the independent ones stand alone
  // (both read "randomised through" / "+ dense1" before).
  CHECK(e.stage_prefix == "+ ");
  CHECK(ind.stage_prefix == "only ");
  CHECK(e.curves[0].x_label != ind.curves[0].x_label);
  CHECK(ind.curves[0].x_label == "the one layer randomised");
  // Re-initialising the last layer alone: the same draw in both, so the first stage agrees.
  REQUIRE(ind.stage_attributions.size() == 4);
  for (size_t i = 0; i < e.stage_attributions[1].size(); ++i) {
    REQUIRE(ind.stage_attributions[0][i] == e.stage_attributions[0][i]);
    REQUIRE(ind.stage_attributions[1][i] == e.stage_attributions[1][i]);
  }
  // Below it the modes part: dense1 alone against dense2 and dense1, conv1 alone against all three.
  for (size_t s : {size_t(2), size_t(3)}) {
    CAPTURE(s);
    const Tensor &a = ind.stage_attributions[s], &b = e.stage_attributions[s];
    REQUIRE(a.shape() == b.shape());
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) diff += std::fabs(double(a[i]) - b[i]), norm += std::fabs(b[i]);
    REQUIRE(norm > 0);
    CHECK(diff > 0.1 * norm);
  }
  // Each layer draws from (seed, layer) alone: the cascade's last stage is every layer re-drawn at
  // once, an independent stage is that one layer re-drawn in a fresh copy.
  auto explained = [&](const std::vector<int>& layers) {
    Graph copy = clone(g);
    reinitialize(copy, layers, 42);
    return gb::explain::explain(copy, x, std::vector<int>{0, 1, 2}, "saliency").attribution;
  };
  const Tensor all = explained({g.at("conv1"), g.at("dense1"), g.at("dense2")}), conv = explained({g.at("conv1")});
  for (size_t i = 0; i < all.size(); ++i) {
    REQUIRE(e.stage_attributions[3][i] == all[i]);
    REQUIRE(ind.stage_attributions[3][i] == conv[i]);
  }
  // The seed decides the draws; the same seed the same result.
  Evaluation again = run(g, x, {0, 1, 2}, "saliency", "cascading-randomisation");
  CHECK(again.values == e.values);
  Evaluation other = run(g, x, {0, 1, 2}, "saliency", "cascading-randomisation", {{"seed", "5"}});
  CHECK(other.values != e.values);
}

TEST_CASE("random logit and data randomisation") {
  Graph g = arch("input(1,12,12) conv(4,k=3,p=1) relu maxpool(2) flatten dense(5)", 3);
  const Tensor x = random_input(g, 4, 2);
  Evaluation e = run(g, x, {1, 1, 3, 3}, "saliency", "random-logit");
  for (int n = 0; n < 4; ++n) {
    const int other = int(e.extra["other_class"][n]);
    CHECK(other >= 0);
    CHECK(other < 5);
    CHECK(other != (n < 2 ? 1 : 3));
  }
  CHECK(run(g, x, {1, 1, 3, 3}, "saliency", "random-logit").values == e.values);
  Graph same = clone(g), different = arch("input(1,12,12) conv(4,k=3,p=1) relu maxpool(2) flatten dense(5)", 99);
  Context c;
  c.label_random_model = &same;
  // A copy of the model scores a meaningless 1: refused.
  CHECK_THROWS_WITH_AS(run(g, x, {1, 1, 3, 3}, "saliency", "data-randomisation", {}, c),
                       doctest::Contains("has the same weights as the model"), std::invalid_argument);
  set_param(same, "dense1.bias", std::vector<float>(5, 1e-3f));  // one parameter apart: evaluated, close to 1
  for (double v : run(g, x, {1, 1, 3, 3}, "saliency", "data-randomisation", {}, c).values) CHECK(v == doctest::Approx(1.0));
  c.label_random_model = &different;
  for (double v : run(g, x, {1, 1, 3, 3}, "saliency", "data-randomisation", {}, c).values) CHECK(v < 0.9);
  CHECK_THROWS_WITH_AS(run(g, x, {1, 1, 3, 3}, "saliency", "data-randomisation"),
                       doctest::Contains("shuffled labels"), std::invalid_argument);
  Graph wrong = arch("input(1,12,12) flatten dense(5)");
  c.label_random_model = &wrong;
  CHECK_THROWS_WITH_AS(run(g, x, {1, 1, 3, 3}, "saliency", "data-randomisation", {}, c),
                       doctest::Contains("architecture differs"), std::invalid_argument);
}

TEST_CASE("axioms: completeness, non-sensitivity and input invariance") {
  const Tensor x = tensor({1, 1, 2, 2}, kX);
  SUBCASE("completeness: input × gradient of a bias-free linear model is complete, saliency is not") {
    Graph g = linear({1, 1, 1, 1});
    const Params zero{{"perturb_baseline", "0"}};
    CHECK(run(g, x, {0}, "input-x-gradient", "completeness", zero).values[0] == doctest::Approx(0.0).epsilon(1e-12));
    Evaluation s = run(g, x, {0}, "saliency", "completeness", zero);
    CHECK(s.extra["delta"][0] == doctest::Approx(4 - 6.5));  // Σ w − ⟨w, x⟩
    CHECK(s.values[0] == doctest::Approx(2.5));
    // Integrated gradients of a linear model is exact from its own baseline, which completeness
    // takes by default (tensor or number); against another x' it is not.
    // (0.25, not x's minimum 0.5: that is black, the default before.)
    Params ig{{"baseline", "0.25"}, {"n_steps", "4"}};
    const Evaluation own = evaluate(g, x, Target{0}, {"integrated-gradients", ig, {}}, "completeness", {});
    CHECK(own.values[0] == doctest::Approx(0.0).epsilon(1e-6));
    CHECK(evaluate(g, x, Target{0}, {"integrated-gradients", ig, {}}, "completeness", zero).values[0] == doctest::Approx(1.0));
    // A noise tunnel over IG passes the baseline it was given on to IG: completeness takes that one.
    Params tunnel{{"base", "integrated-gradients"}, {"baseline", "0.25"}, {"n_steps", "4"}, {"stdev", "0"}, {"n", "2"}};
    CHECK(evaluate(g, x, Target{0}, {"smoothgrad", tunnel, {}}, "completeness", {}).values[0] ==
          doctest::Approx(0.0).epsilon(1e-5));
    Params igt{{"n_steps", "4"}};
    igt.tensors["baseline"] = tensor({1, 1, 2, 2}, {1, 0, 2, 0});
    CHECK(evaluate(g, x, Target{0}, {"integrated-gradients", igt, {}}, "completeness", {}).values[0] ==
          doctest::Approx(0.0).epsilon(1e-6));
    // Saliency declares no baseline: black (the sample's min, 0.5), as Quantus.
    CHECK(run(g, x, {0}, "saliency", "completeness").extra["delta"][0] == doctest::Approx(4 - (6.5 - 2)));
    // The method's own baseline text is read as the method reads it: one value per channel or one.
    CHECK_THROWS_WITH_AS(evaluate(g, x, Target{0}, {"occlusion", {{"baseline", "0.5,x"}}, {}}, "completeness", {}),
                         doctest::Contains("completeness: the method's baseline=0.5,x: expected a finite float32 number"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(evaluate(g, x, Target{0}, {"occlusion", {{"baseline", "0.5,0.5"}}, {}}, "completeness", {}),
                         doctest::Contains("has 2 values for inputs of 1 channels"), std::invalid_argument);
  }
  SUBCASE("non-sensitivity: a zero pixel with nonzero saliency is the one violation") {
    Graph g = linear({1, 0, 1, 1});
    const Tensor xz = tensor({1, 1, 2, 2}, {3.f, 1.f, 2.f, 0.f});
    const Params p{{"perturb_baseline", "0"}, {"softmax", "false"}};
    CHECK(run(g, xz, {0}, "saliency", "non-sensitivity", p).values[0] == 1);
    CHECK(run(g, xz, {0}, "input-x-gradient", "non-sensitivity", p).values[0] == 0);
  }
  SUBCASE("input invariance: gradients pass, input × gradient fails, through a padded convolution") {
    Graph g = arch("input(1,6,6) conv(2,k=3,p=1) relu flatten dense(3)", 5);
    // Nonzero biases: with zero biases a unit whose pre-activation is ~1e-6 at x stays within float
    // rounding of 0 along IG's whole path, and the shifted model (same function in exact
    // arithmetic) may round it to the other side.
    set_param(g, "conv1.bias", {0.1f, -0.05f});
    const Tensor xi = random_input(g, 2, 4);
    Evaluation sal = run(g, xi, {0, 2}, "saliency", "input-invariance");
    Evaluation ixg = run(g, xi, {0, 2}, "input-x-gradient", "input-invariance");
    for (int n = 0; n < 2; ++n) {
      CHECK(sal.values[n] == 1.0);
      CHECK(sal.extra["model_difference"][n] < 1e-4);  // the shifted model is the same function
      CHECK(ixg.values[n] == 0.0);
    }
    // IG from the number 0 is not invariant; from a baseline input that moves with x it is.
    CHECK(run(g, xi, {0, 2}, "integrated-gradients", "input-invariance").values[0] == 0.0);
    Explanation ig{"integrated-gradients", {}, {}};
    ig.params.tensors["baseline"] = Tensor(Shape{1, 1, 6, 6}, 0.f);
    Evaluation igt = evaluate(g, xi, Target{0, 2}, ig, "input-invariance");
    CHECK(igt.values[0] == 1.0);
    CHECK(igt.values[1] == 1.0);
  }
}

TEST_CASE("localisation against a mask, by hand") {
  Graph g = linear({1, 1, 1, 1});
  const Tensor x = tensor({2, 1, 2, 2}, {3, 1, 2, 0.5f, 3, 1, 2, 0.5f});
  const Tensor a = tensor({2, 1, 2, 2}, {0.1f, 0.9f, 0.3f, 0.2f, 0.1f, 0.9f, 0.3f, 0.2f});
  const Tensor masks = tensor({2, 1, 2, 2}, {0, 1, 1, 0, 0, 0, 0, 0});  // the second is empty
  Context c;
  c.masks = &masks;
  auto value = [&](const std::string& m, const Params& p = {}) {
    Evaluation e = evaluate(g, x, Target{0}, {"saliency", {}, a}, m, p, c);
    CHECK(std::isnan(e.values[1]));
    return e.values[0];
  };
  CHECK(value("pointing-game") == 1);
  CHECK(value("pointing-game", {{"weighted", "true"}}) == doctest::Approx(0.5));
  CHECK(value("relevance-mass-accuracy") == doctest::Approx(1.2 / 1.5));
  CHECK(value("relevance-rank-accuracy") == 1);
  CHECK(value("top-k-intersection", {{"k", "1"}}) == 1);
  CHECK(value("top-k-intersection", {{"k", "3"}}) == doctest::Approx(2.0 / 3));
  CHECK(value("top-k-intersection", {{"k", "3"}, {"concept_influence", "true"}}) == doctest::Approx(4.0 / 3));
  CHECK(value("attribution-localisation") == doctest::Approx(0.8));
  CHECK(value("attribution-localisation", {{"weighted", "true"}}) == doctest::Approx(0.4));
  {  // A mask over everything is exactly 1 whatever the signs; an all-zero map is 0/0 (no epsilon).
    const Tensor full = tensor({2, 1, 2, 2}, std::vector<float>(8, 1));
    const Tensor signed_a = tensor({2, 1, 2, 2}, {-0.7f, 0.2f, -0.1f, 0.3f, 0, 0, 0, 0});
    Context cf;
    cf.masks = &full;
    const Evaluation ev = evaluate(g, x, Target{0}, {"saliency", {}, signed_a}, "attribution-localisation",
                                   {{"abs", "false"}, {"normalise", "false"}}, cf);
    CHECK(ev.values[0] == 1.0);
    CHECK(std::isnan(ev.values[1]));
  }
  const Tensor bad = tensor({2, 1, 1, 4}, std::vector<float>(8, 1));
  c.masks = &bad;
  CHECK_THROWS_WITH_AS(evaluate(g, x, Target{0}, {"saliency", {}, a}, "pointing-game", {}, c),
                       doctest::Contains("do not fit"), ShapeError);
  CHECK_THROWS_WITH_AS(evaluate(g, x, Target{0}, {"saliency", {}, a}, "pointing-game"), doctest::Contains("needs masks"),
                       std::invalid_argument);
}

TEST_CASE("a batch gives the same values as its samples one by one; seeds decide every draw") {
  Graph g = arch("input(1,12,12) conv(3,k=3,p=1) relu maxpool(2) flatten dense(4)", 9);
  const Tensor x = random_input(g, 3, 21);
  const std::vector<int> t = {0, 3, 1};
  const std::vector<std::pair<std::string, Params>> cases = {
      {"deletion", {{"features_in_step", "7"}}},
      {"region-perturbation", {{"patch_size", "3"}, {"order", "random"}}},
      {"faithfulness-correlation", {{"nr_runs", "10"}, {"subset_size", "20"}}},
      {"max-sensitivity", {{"nr_samples", "5"}}},
      {"infidelity", {}},
      {"cascading-randomisation", {}},
      {"random-logit", {}}};
  for (const auto& c : cases) {  // (clang 14 cannot capture structured bindings in CAPTURE)
    const std::string& metric = c.first;
    const Params& p = c.second;
    CAPTURE(metric);
    Evaluation all = run(g, x, t, "input-x-gradient", metric, p);
    for (int n = 0; n < 3; ++n) {
      Evaluation one = run(g, x.slice(n, n + 1).clone(), {t[n]}, "input-x-gradient", metric, p);
      CHECK(one.values[0] == doctest::Approx(all.values[n]).epsilon(1e-5));
    }
    Evaluation again = run(g, x, t, "input-x-gradient", metric, p);
    CHECK(again.values == all.values);
  }
  Params s{{"nr_samples", "5"}};
  const std::vector<double> a = run(g, x, t, "input-x-gradient", "max-sensitivity", s).values;
  s["seed"] = "43";
  CHECK(run(g, x, t, "input-x-gradient", "max-sensitivity", s).values != a);
}

TEST_CASE("every metric reads exactly the parameters it declares; unknown names and keys are errors") {
  Graph g = arch("input(1,12,12) conv(3,k=3,p=1) relu maxpool(2) flatten dense(4)", 9);
  Graph shuffled = arch("input(1,12,12) conv(3,k=3,p=1) relu maxpool(2) flatten dense(4)", 10);
  const Tensor x = random_input(g, 2, 3);
  Tensor masks(Shape{2, 1, 12, 12}, 0.f);
  for (int i = 0; i < 30; ++i) masks[i] = masks[144 + i] = 1;
  Context c;
  c.masks = &masks;
  c.label_random_model = &shuffled;
  // Cheap settings where a metric declares them, so the loop stays fast; the reads are the same.
  const Params cheap{{"nr_samples", "2"}, {"nr_runs", "3"}, {"n_perturb_samples", "2"}, {"nr_steps", "2"},
                     {"features_in_step", "36"}, {"subset_size", "10"}, {"n_values", "2"}, {"k", "5"}};
  REQUIRE(all_metrics().size() >= 28);
  for (const MetricInfo& m : all_metrics()) {
    CAPTURE(m.declaration.name);
    Params p;
    for (const auto& d : m.declaration.params)
      if (cheap.count(d.name)) p[d.name] = cheap.at(d.name);
    Evaluation e;
    const std::string method = m.declaration.name == "integration-error" ? "integrated-gradients" : "saliency";
    CHECK_NOTHROW(e = evaluate(g, x, Target{0, 1}, {method, {}, {}}, m.declaration.name, p, c));
    CHECK(e.values.size() == 2);
    Params bad = p;
    bad["no_such_key"] = "1";
    CHECK_THROWS_WITH_AS(evaluate(g, x, Target{0, 1}, {method, {}, {}}, m.declaration.name, bad, c),
                         doctest::Contains("unknown parameter 'no_such_key'"), std::invalid_argument);
    // A layer's attribution ([2,3,12,12] here) read as the input's was read out of bounds.
    if (method != "saliency") continue;
    try {
      evaluate(g, x, Target{0, 1}, {method, {{"layer", "conv1"}}, {}}, m.declaration.name, p, c);
      FAIL("a layer attribution was evaluated");
    } catch (const NotApplicable&) {
    } catch (const std::invalid_argument& err) {
      const std::string said = err.what();  // (input-invariance explains padded copies: other sizes)
      CHECK_MESSAGE(said.find("saliency gives attributions [2,3,") != std::string::npos, said);
      CHECK_MESSAGE(said.find("not shaped like the inputs [2,1,") != std::string::npos, said);
    }
  }
  CHECK_THROWS_WITH_AS(metric_info("delition"), doctest::Contains("known: pixel-flipping, deletion"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(evaluate(g, x, Target{0, 1}, {"salency", {}, {}}, "deletion"),
                       doctest::Contains("unknown method 'salency'"), std::invalid_argument);
  CHECK(list_text().find("insertion\n    [faithfulness, higher is better]") != std::string::npos);
  CHECK(list_text().find("--param nr_samples=200") != std::string::npos);
}

TEST_CASE("bad values are errors naming the metric, the key and the range") {
  Graph g = linear({1, 1, 1, 1});
  const Tensor x = tensor({1, 1, 2, 2}, kX);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "saliency", "deletion", {{"features_in_step", "0"}}),
                       doctest::Contains("deletion: --param features_in_step=0 outside [1, 4]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "saliency", "faithfulness-correlation", {{"subset_size", "4"}}),
                       doctest::Contains("subset_size=4 outside [1, 3]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "saliency", "deletion", {{"order", "best"}}),
                       doctest::Contains("order=best (known: morf, lerf, random)"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "saliency", "pixel-flipping", {{"perturb_baseline", "blur"}}),
                       doctest::Contains("known: black, white, mean, uniform, or a number"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "saliency", "pixel-flipping", {{"perturb_baseline", "1e308"}}),
                       doctest::Contains("perturb_baseline=1e308 is beyond float32"), std::invalid_argument);
  // A baseline inside float32 that overflows the model: an error naming the metric, not NaN values.
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "saliency", "pixel-flipping", {{"perturb_baseline", "3e38"}}),
                       doctest::Contains("pixel-flipping: the model's score of input 0 or a perturbed copy of it"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "saliency", "max-sensitivity", {{"nr_samples", "1e6"}}),
                       doctest::Contains("outside [1, 100000]"), std::invalid_argument);
  Tensor nan = x.clone();
  nan[2] = NAN;
  CHECK_THROWS_WITH_AS(run(g, nan, {0}, "saliency", "deletion"), doctest::Contains("not finite at element 2"),
                       std::invalid_argument);
  CHECK_THROWS_AS(run(g, x, {2}, "saliency", "deletion"), std::out_of_range);
  // A unit of a layer has no softmax: asking for one is an error, the default falls back to its value.
  const Target unit = Target::unit(g, 0, 1);  // flatten1[1]: a unit, not a class
  CHECK_THROWS_WITH_AS(run(g, x, unit, "saliency", "deletion", {{"softmax", "true"}}), doctest::Contains("class targets"),
                       std::invalid_argument);
  CHECK(run(g, x, unit, "saliency", "deletion").values.size() == 1);
  // A metric that cannot evaluate this target or model at all says so with its own type, which the
  // command reports as skipped.
  CHECK_THROWS_WITH_AS(run(g, x, unit, "saliency", "random-logit"), doctest::Contains("needs class targets"),
                       NotApplicable);
  Graph flat = arch("input(4) dense(3) relu dense(2)");
  CHECK_THROWS_AS(run(flat, tensor({1, 4}, kX), {0}, "saliency", "region-perturbation"), NotApplicable);
  // SSIM (random-logit's default) and HOG have no value below their window: skipped, not all NaN
  CHECK_THROWS_WITH_AS(run(flat, tensor({1, 4}, kX), {0}, "saliency", "random-logit"),
                       doctest::Contains("similarity=ssim needs images of at least 7x7 pixels, not [4]"), NotApplicable);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "saliency", "cascading-randomisation", {{"similarity", "hog"}}),
                       doctest::Contains("similarity=hog needs images of at least 12x12"), NotApplicable);
  CHECK(std::isfinite(run(flat, tensor({1, 4}, kX), {0}, "saliency", "random-logit", {{"similarity", "spearman"}}).values[0]));
  Graph one = arch("input(1) dense(2)");
  CHECK_THROWS_WITH_AS(run(one, tensor({1, 1}, {0.5f}), {0}, "saliency", "faithfulness-correlation"),
                       doctest::Contains("needs inputs of at least 2 features"), NotApplicable);
  // insertion's default baseline (blur) needs images: skipped, not an error that stops a family run
  CHECK_THROWS_WITH_AS(run(flat, tensor({1, 4}, kX), {0}, "saliency", "insertion"),
                       doctest::Contains("perturb_baseline=blur needs image inputs"), NotApplicable);
  CHECK(run(flat, tensor({1, 4}, kX), {0}, "saliency", "insertion", {{"perturb_baseline", "black"}}).values.size() == 1);
  CHECK_THROWS_WITH_AS(evaluate(g, x, Target{0}, {"saliency", {}, Tensor(Shape{1, 4})}, "sparseness"),
                       doctest::Contains("the given attribution of saliency"), ShapeError);
}

// Adebayo et al. 2018, Fig. 2 and 4: on a trained convolutional network, the gradient's map loses
// its similarity to the original as the cascade reaches the lower layers, while Guided Backprop's
// stays similar (it depends on the lower layers' activations pattern much more than on the
// weights above). A tiny conv net learns bars on 12×12 images in a few epochs.
TEST_CASE("Adebayo's finding reproduces on a trained model: saliency collapses, Guided Backprop does not") {
  Dataset d;
  d.class_names = {"horizontal", "vertical"};
  const int n = 512;
  d.x = Tensor(Shape{n, 1, 12, 12});
  Rng r(3);
  for (int i = 0; i < n; ++i) {
    const int cls = i % 2, pos = 2 + int(r.below(8));
    d.y.push_back(cls);
    for (int p = 0; p < 144; ++p) d.x[i * 144 + p] = 0.1f * r.uniform();
    for (int k = 0; k < 12; ++k) d.x[i * 144 + (cls ? k * 12 + pos : pos * 12 + k)] = 1.f;
  }
  Graph g = arch("input(1,12,12) conv(8,k=3,p=1) relu maxpool(2) conv(16,k=3,p=1) relu maxpool(2) flatten dense(32) "
                 "relu dense(2)",
                 1);
  FitOptions o;
  o.epochs = 4;
  o.batch = 32;
  o.val_fraction = 0;
  o.optimizer.kind = OptimizerKind::adam;
  o.optimizer.lr = 3e-3f;
  o.progress = gb::ProgressStyle::quiet;
  FitResult fr = fit(g, d, o);
  REQUIRE(fr.history.back().train_acc > 0.95);
  const Tensor x = d.x.slice(0, 16).clone();
  const std::vector<int> y(d.y.begin(), d.y.begin() + 16);
  // The value: Spearman of |a| to the original, averaged over the cascade's stages.
  Evaluation sal = run(g, x, y, "saliency", "cascading-randomisation");
  Evaluation gbp = run(g, x, y, "guided-backprop", "cascading-randomisation");
  const double saliency = finite_mean(sal.values), guided = finite_mean(gbp.values);
  MESSAGE("mean Spearman of |a| over the cascade: saliency " << saliency << ", guided backprop " << guided);
  CHECK(saliency < 0.3);
  CHECK(guided > 0.4);
  // Before the first convolution is re-drawn, Guided Backprop still looks like the original; the
  // gradient stopped doing so as soon as the logits' layer was.
  auto stage_mean = [](const Evaluation& e, size_t stage) {
    std::vector<double> v;
    for (auto& y : e.curves[1].y) v.push_back(y[stage]);
    return finite_mean(v);
  };
  REQUIRE(gbp.stages.size() == 5);
  CHECK(stage_mean(gbp, 3) > 0.4);
  CHECK(stage_mean(sal, 1) < 0.45);
}

// The same on the lenet5 preset trained briefly on Fashion-MNIST (skipped without the dataset).
TEST_CASE("Adebayo's finding on lenet5 trained on Fashion-MNIST") {
  if (!dataset_available("fashion-mnist")) {
    MESSAGE("skipped: Fashion-MNIST is not installed (dataset-fashion-mnist)");
    return;
  }
  const Dataset train = load_dataset("fashion-mnist", "train"), test = load_dataset("fashion-mnist", "test");
  std::vector<int> first(3000);
  std::iota(first.begin(), first.end(), 0);
  Graph g = make_preset("lenet5");
  FitOptions o;
  o.epochs = 2;
  o.val_fraction = 0;
  o.optimizer.kind = OptimizerKind::adam;
  o.optimizer.lr = 2e-3f;
  o.progress = gb::ProgressStyle::quiet;
  REQUIRE(fit(g, take(train, first), o).history.back().train_acc > 0.7);
  const Tensor x = test.x.slice(0, 16).clone();
  const std::vector<int> y(test.y.begin(), test.y.begin() + 16);
  const double saliency = finite_mean(run(g, x, y, "saliency", "cascading-randomisation").values);
  const double guided = finite_mean(run(g, x, y, "guided-backprop", "cascading-randomisation").values);
  MESSAGE("lenet5: mean Spearman of |a| over the cascade: saliency " << saliency << ", guided backprop " << guided);
  CHECK(saliency < 0.4);
  CHECK(guided > saliency + 0.2);
}
