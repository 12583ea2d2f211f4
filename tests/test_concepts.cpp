// Concepts and internal representations (explain/concepts/): generated patterns by their
// definition, the t-test and incomplete beta against closed forms, the SGD classifier's first steps
// by hand and a planted separating direction, TCAV on a model trained where the class depends only
// on a planted pattern (high, significant for that pattern; insignificant for random concepts), the
// directional derivative against finite differences of the logit along the CAV at the layer, batch =
// one by one, determinism per seed, the registry's declarations and every refusal; ACE's k-means on
// planted clusters, patches by hand, ace.py's cluster filter, and ACE finding a planted square.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <numeric>
#include <random>
#include <sstream>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/architecture.h"
#include "engine/layers.h"
#include "engine/passes.h"
#include "engine/threads.h"
#include "explain/concepts/ace.h"
#include "explain/concepts/cav.h"
#include "explain/concepts/concepts.h"
#include "explain/concepts/dissect.h"
#include "explain/concepts/patterns.h"
#include "explain/concepts/probe.h"
#include "explain/concepts/segmentation.h"
#include "explain/concepts/stats.h"
#include "train/fit.h"
#include "tests/interrupt_checks.h"

using namespace gb;
using namespace gb::concepts;

namespace {

Graph arch(const std::string& text, uint64_t seed = 5) {
  Graph g = graph_from_text(text);
  g.init(seed);
  return g;
}

bool throws_with(const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
  } catch (const std::exception& e) {
    if (std::string(e.what()).find(part) != std::string::npos) return true;
    MESSAGE("message was: " << e.what());
    return false;
  }
  return false;
}

float px(const Tensor& t, int n, int c, int y, int x) { return t.at(n, c, y, x); }

}  // namespace

// ---- patterns -------------------------------------------------------------------------------------

TEST_CASE("tcav's random sets are disjoint when the pool is large enough, else drawn one by one") {
  const auto a = draw_random_sets(100, 5, 20, 3);
  std::set<int> seen;
  for (const auto& set : a) {
    CHECK(set.size() == 20);
    for (int r : set) CHECK((r >= 0 && r < 100));
    seen.insert(set.begin(), set.end());
  }
  CHECK(seen.size() == 100);  // five disjoint sets cover the pool
  CHECK(draw_random_sets(100, 5, 20, 3) == a);
  CHECK(draw_random_sets(100, 5, 20, 4) != a);
  const auto b = draw_random_sets(50, 5, 20, 3);  // too small to be disjoint: each set distinct rows
  for (const auto& set : b) {
    CHECK(std::set<int>(set.begin(), set.end()).size() == 20);
    for (int r : set) CHECK((r >= 0 && r < 50));
  }
  CHECK_THROWS_WITH(draw_random_sets(10, 2, 20, 3), doctest::Contains("random pool has 10 examples"));
  CHECK_THROWS_WITH(draw_random_sets(20, 2, 20, 3), doctest::Contains("every random set would be the whole pool"));
  CHECK(draw_random_sets(21, 2, 20, 3).size() == 2);
}

TEST_CASE("patterns: stripes, checkerboard and solid follow their definitions at any size and channel count") {
  const Shape s{3, 9, 13};
  Tensor h = make_patterns(parse_pattern("stripes-h,period=4"), s, 5, 1);
  Tensor v = make_patterns(parse_pattern("stripes-v,period=4,level=0.8,background=0.2"), s, 5, 1);
  REQUIRE(h.shape() == Shape{5, 3, 9, 13});
  for (int n = 0; n < 5; ++n)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 13; ++x) {
          CHECK(px(h, n, c, y, x) == px(h, n, 0, y, 0));  // rows constant, channels equal
          CHECK(px(v, n, c, y, x) == px(v, n, 0, 0, x));  // columns constant
          if (y + 4 < 9) CHECK(px(h, n, c, y, x) == px(h, n, c, y + 4, x));  // the period
          CHECK((px(v, n, c, y, x) == doctest::Approx(0.8) || px(v, n, c, y, x) == doctest::Approx(0.2)));
        }
  // Half of each period is foreground.
  int fg = 0;
  for (int y = 0; y < 8; ++y) fg += px(h, 0, 0, y, 0) == 1.f;
  CHECK(fg == 4);
  Tensor ch = make_patterns(parse_pattern("checkerboard,period=6"), Shape{1, 12, 12}, 2, 3);
  for (int y = 0; y + 3 < 12; ++y)
    for (int x = 0; x + 3 < 12; ++x) CHECK(px(ch, 0, 0, y, x) != px(ch, 0, 0, y + 3, x));  // neighbour cells differ
  Tensor solid = make_patterns(parse_pattern("solid,level=0.25:0.75"), Shape{1, 4, 4}, 20, 4);
  for (int n = 0; n < 20; ++n) {
    const float l = px(solid, n, 0, 0, 0);
    CHECK(l >= 0.25f);
    CHECK(l <= 0.75f);
    for (int i = 0; i < 16; ++i) CHECK(solid[size_t(n) * 16 + i] == l);
  }
  // A key given twice took the last value, unlike --param, which refuses it.
  CHECK_THROWS_WITH_AS(parse_pattern("dots,period=2,period=3"), doctest::Contains("pattern dots: period given twice"),
                       std::invalid_argument);
}

TEST_CASE("patterns: every kind stays in [background, level], is seeded, and image i does not depend on n") {
  for (const std::string& kind : pattern_names()) {
    INFO(kind);
    const PatternSpec p = parse_pattern(kind + ",level=0.9,background=0.1");
    const Tensor a = make_patterns(p, Shape{2, 16, 20}, 6, 11), b = make_patterns(p, Shape{2, 16, 20}, 3, 11);
    const Tensor c = make_patterns(p, Shape{2, 16, 20}, 6, 12);
    bool differs = false, varies = false;
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i] >= 0.1f - 1e-6f);
      CHECK(a[i] <= 0.9f + 1e-6f);
      if (i < b.size()) CHECK(a[i] == b[i]);
      differs |= a[i] != c[i];
      varies |= a[i] != a[0];
    }
    if (kind != "solid") {
      CHECK(differs);
      CHECK(varies);
    }
  }
  CHECK(throws_with([] { parse_pattern("zigzag"); }, "known: stripes-h"));
  CHECK(throws_with([] { parse_pattern("dots,period=0"); }, "period=0"));
  CHECK(throws_with([] { parse_pattern("dots,level=nan"); }, "not a finite number"));
  CHECK(throws_with([] { parse_pattern("dots,level=0.9:0.1"); }, "A <= B"));
  CHECK(throws_with([] { parse_pattern("dots,size=3"); }, "unknown key"));
  CHECK_THROWS_AS(make_patterns(parse_pattern("dots"), Shape{400}, 2, 1), ShapeError);
}

// ---- statistics -----------------------------------------------------------------------------------

TEST_CASE("stats: incomplete beta and Student's t against closed forms; ttest_ind by hand") {
  for (double x : {0.0, 0.1, 0.37, 0.5, 0.93, 1.0}) {
    CHECK(incomplete_beta(1, 1, x) == doctest::Approx(x).epsilon(1e-12));
    CHECK(incomplete_beta(3, 1, x) == doctest::Approx(x * x * x).epsilon(1e-12));
    CHECK(incomplete_beta(1, 2.5, x) == doctest::Approx(1 - std::pow(1 - x, 2.5)).epsilon(1e-12));
  }
  for (double t : {0.0, 0.3, 1.0, 2.5, -7.0, 40.0}) {
    CHECK(t_two_sided_p(t, 1) == doctest::Approx(1 - 2 / M_PI * std::atan(std::fabs(t))).epsilon(1e-10));
    CHECK(t_two_sided_p(t, 2) == doctest::Approx(1 - std::fabs(t) / std::sqrt(2 + t * t)).epsilon(1e-10));
  }
  CHECK(t_two_sided_p(2.228138851986, 10) == doctest::Approx(0.05).epsilon(1e-8));  // the t table
  // a = {1,2,3}, b = {4,5,6}: pooled variance 1, t = -3 / sqrt(2/3), df 4 (scipy: p = 0.0213116411)
  const TTest r = ttest_ind({1, 2, 3}, {4, 5, 6});
  CHECK(r.t == doctest::Approx(-3 / std::sqrt(2.0 / 3)));
  CHECK(r.df == 4);
  CHECK(r.p == doctest::Approx(0.0213116411).epsilon(1e-7));
  CHECK(ttest_ind({0.5, 0.5}, {0.5, 0.5, 0.5}).p == 1);
  CHECK(ttest_ind({1, 1}, {0, 0}).p == 0);
  CHECK(stdev({1, 3}) == 1);  // population (ddof 0)
  CHECK_THROWS(ttest_ind({1}, {2}));
}

// ---- the CAV classifier ---------------------------------------------------------------------------

TEST_CASE("cav: sklearn's SGD steps by hand (optimal schedule, L2 shrink, intercept)") {
  // One row x = 2, y = +1, alpha 0.01, hinge: eta0 = alpha^-1/4, t0 = 1/(eta0 alpha).
  Tensor X = Tensor::from(Shape{1, 1}, {2.f});
  SgdOptions o;
  o.max_iter = 1;
  LinearFit f = fit_sgd(X, {1}, {}, o);
  const double eta0 = std::pow(0.01, -0.25), t0 = 1 / (eta0 * 0.01);
  CHECK(f.w[0] == doctest::Approx(eta0 * 2).epsilon(1e-12));  // the shrink of w = 0 changes nothing
  CHECK(f.b == doctest::Approx(eta0).epsilon(1e-12));
  o.max_iter = 2;  // the second step: margin 2 eta0 2 + eta0 > 1, no update; w shrinks by 1 - eta_2 alpha
  f = fit_sgd(X, {1}, {}, o);
  CHECK(f.w[0] == doctest::Approx(eta0 * 2 * (1 - 1 / (t0 + 1))).epsilon(1e-12));
  CHECK(f.b == doctest::Approx(eta0).epsilon(1e-12));
  // The log loss: dloss(0, 1) = -1/2, so the first update is eta0 / 2.
  o.loss = Loss::log;
  o.max_iter = 1;
  f = fit_sgd(X, {1}, {}, o);
  CHECK(f.b == doctest::Approx(eta0 / 2).epsilon(1e-12));
}

TEST_CASE("cav: recovers a planted separating direction; unit normal toward the concept; seeded") {
  const int D = 6, N = 400;
  const double wstar[D] = {0.6, -0.3, 0.0, 0.5, 0.2, -0.5};
  Rng rng(3);
  std::vector<float> pos, neg;
  while (int(pos.size()) < N / 2 * D || int(neg.size()) < N / 2 * D) {
    float x[D];
    double m = 0;
    for (int d = 0; d < D; ++d) m += wstar[d] * (x[d] = rng.normal());
    if (std::fabs(m) < 0.3) continue;  // a margin
    auto& dst = m > 0 ? pos : neg;
    if (int(dst.size()) < N / 2 * D) dst.insert(dst.end(), x, x + D);
  }
  const Tensor P = Tensor::from(Shape{N / 2, D}, pos), Q = Tensor::from(Shape{N / 2, D}, neg);
  for (Loss loss : {Loss::hinge, Loss::log}) {
    CavOptions o;
    o.sgd.loss = loss;
    o.sgd.alpha = 1e-4;
    o.sgd.seed = 7;
    const Cav c = train_cav(P, Q, o);
    double norm = 0, cosine = 0, wn = 0;
    for (int d = 0; d < D; ++d) norm += c.direction[d] * c.direction[d], cosine += c.direction[d] * wstar[d], wn += wstar[d] * wstar[d];
    CHECK(norm == doctest::Approx(1).epsilon(1e-6));
    CHECK(cosine / std::sqrt(wn) > 0.97);
    CHECK(c.accuracy > 0.95);
    CHECK(c.n_test == 2 * 66);  // round(0.33 * 200) of each set
    CHECK(c.n_train + c.n_test == N);
    const Cav again = train_cav(P, Q, o);
    CHECK(again.direction == c.direction);
    o.sgd.seed = 8;
    CHECK(train_cav(P, Q, o).direction != c.direction);
    const Cav flipped = train_cav(Q, P, o);  // the other way round points the other way
    double dotp = 0;
    for (int d = 0; d < D; ++d) dotp += flipped.direction[d] * c.direction[d];
    CHECK(dotp < -0.9);
  }
  const Tensor same = Tensor::from(Shape{3, 2}, {1, 1, 1, 1, 1, 1});
  CHECK(throws_with([&] { train_cav(same, Tensor::from(Shape{1, 2}, {1, 1}), {}); }, "at least 2"));
  // Identical rows: whatever the weights (rounding noise for hinge, a multiple of the row for the log
  // loss) every projection is the same; normalized, they made a unit CAV that called the concept
  // "significant".
  Tensor ones(Shape{10, 5}, 1.f);
  for (Loss loss : {Loss::hinge, Loss::log}) {
    CavOptions o;
    o.sgd.loss = loss;
    CHECK(throws_with([&] { train_cav(ones, ones, o); }, "weights separate nothing"));
  }
}

// ---- TCAV -----------------------------------------------------------------------------------------

namespace {

// Images [1,12,12]: weak noise plus a 6x6 patch of stripes at a random place, horizontal for class 1
// and vertical for class 0: the class depends only on the planted pattern's orientation.
Dataset planted(int n, uint64_t seed) {
  Dataset d;
  d.x = Tensor(Shape{n, 1, 12, 12});
  d.class_names = {"vertical", "horizontal"};
  Rng rng(seed);
  for (int i = 0; i < n; ++i) {
    const int k = i % 2, oy = int(rng.below(7)), ox = int(rng.below(7)), phase = int(rng.below(4));
    float* p = d.x.data() + size_t(i) * 144;
    for (int j = 0; j < 144; ++j) p[j] = 0.3f * rng.uniform();
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 6; ++x)
        if ((((k ? y : x) + phase) / 2) % 2 == 0) p[(oy + y) * 12 + ox + x] = 1.f;
    d.y.push_back(k);
  }
  return d;
}

Graph trained_planted_model() {
  Graph g = arch("input(1,12,12) conv(4,k=3,p=1) relu gap dense(2)", 3);
  FitOptions o;
  o.epochs = 8;
  o.batch = 32;
  o.val_fraction = 0;
  o.progress = ProgressStyle::quiet;
  o.optimizer.kind = OptimizerKind::adam;
  o.optimizer.lr = 0.02f;
  fit(g, planted(512, 1), o);
  return g;
}

}  // namespace

TEST_CASE("tcav: a model whose class rests on a planted pattern scores it high and significant, random concepts not") {
  Graph g = trained_planted_model();
  const Dataset test = planted(200, 2);
  std::vector<int> ones;
  for (int i = 0; i < test.size(); ++i)
    if (test.y[i] == 1) ones.push_back(i);
  const Dataset cls = take(test, ones);
  int right = 0;  // the model did learn the task
  const Tensor& z = g.forward(test.x);
  for (int i = 0; i < test.size(); ++i) right += (z[size_t(i) * 2 + 1] > z[size_t(i) * 2]) == (test.y[i] == 1);
  REQUIRE(right > 190);

  TcavRequest q;
  q.concepts.push_back({"stripes-h", make_patterns(parse_pattern("stripes-h,period=4,background=0:0.3"), Shape{1, 12, 12}, 40, 1)});
  q.concepts.push_back({"stripes-v", make_patterns(parse_pattern("stripes-v,period=4,background=0:0.3"), Shape{1, 12, 12}, 40, 2)});
  const Dataset pool = planted(400, 9);
  for (int r = 0; r < 3; ++r) {  // random concepts: more draws from the random pool's distribution
    std::vector<int> idx(40);
    std::iota(idx.begin(), idx.end(), 100 * r);
    q.concepts.push_back({"random-concept-" + std::to_string(r), take(pool, idx).x});
  }
  q.random_pool = pool.x;
  q.inputs = cls.x;
  q.target = Target({1});
  q.layers = {g.at("relu1"), g.at("gap1")};
  const TcavResult r = tcav(g, q, {{"runs", "10"}, {"random_size", "40"}});
  REQUIRE(r.layers.size() == 2);
  CHECK(r.comparisons == 10);
  for (const LayerScores& l : r.layers) {
    INFO(l.layer);
    const ConceptScores& h = l.concepts[0];
    const ConceptScores& v = l.concepts[1];
    CHECK(mean(h.sign_count) > 0.9);
    CHECK(h.significant);
    CHECK(h.sign_test.p < 0.05);
    CHECK(mean(l.random.cav_accuracy) < 0.7);  // random sets cannot be told apart
    CHECK(mean(v.sign_count) < 0.1);  // vertical stripes lower the horizontal class's logit
    CHECK(v.significant);
    CHECK(mean(h.cav_accuracy) > 0.9);
    // Concepts drawn from the random pool's own distribution score near the baseline, far from the
    // planted ones. (Their t-test is not a calibrated null: each side's runs share one positive set,
    // so such concepts pass p < 0.05 more often than one time in twenty; METHODS.md.)
    for (int c = 2; c < 5; ++c) {
      INFO(l.concepts[c].name << " p " << l.concepts[c].sign_test.p);
      CHECK(std::abs(mean(l.concepts[c].sign_count) - mean(l.random.sign_count)) < 0.2);
    }
    CHECK(h.cavs.shape() == Shape{10, int(g.shape(l.node).numel())});
    CHECK(l.random.sign_count.size() == 10);
  }
}

TEST_CASE("tcav: random_baseline=pooled runs every ordered pair of random sets; the concepts' runs stay the same") {
  Graph g = trained_planted_model();
  TcavRequest q;
  q.concepts.push_back({"stripes-h", make_patterns(parse_pattern("stripes-h,period=4,background=0:0.3"), Shape{1, 12, 12}, 40, 1)});
  const Dataset pool = planted(400, 9);
  q.random_pool = pool.x;
  q.inputs = planted(40, 2).x;
  q.target = Target({1});
  q.layers = {g.at("relu1")};
  const int R = 4;
  const Params common = {{"runs", std::to_string(R)}, {"random_size", "40"}, {"seed", "3"}};
  Params pooled_params = common;
  pooled_params["random_baseline"] = "pooled";
  const LayerScores counterpart = tcav(g, q, common).layers[0], pooled = tcav(g, q, pooled_params).layers[0];
  const int D = int(g.shape(q.layers[0]).numel());
  // The concept's runs do not depend on the baseline.
  CHECK(pooled.concepts[0].sign_count == counterpart.concepts[0].sign_count);
  const Tensor &a = pooled.concepts[0].cavs, &b = counterpart.concepts[0].cavs;
  CHECK((a.shape() == b.shape() && std::equal(a.data(), a.data() + a.size(), b.data())));
  REQUIRE(counterpart.random.sign_count.size() == size_t(R));
  REQUIRE(pooled.random.sign_count.size() == size_t(R * (R - 1)));
  REQUIRE(pooled.random.cavs.shape() == Shape{R * (R - 1), D});
  // Run k is set i against set j (i != j in 1..R, i-major): each CAV points from set j's mean
  // activation toward set i's, as a CAV points toward its positive set.
  const std::vector<std::vector<int>> rows = draw_random_sets(pool.size(), R + 1, 40, 3);
  std::vector<std::vector<double>> means;
  for (const std::vector<int>& r : rows) {
    const Tensor a = activations(g, take(pool, r).x, q.layers)[0];
    std::vector<double> m(D);
    for (int n = 0; n < a.batch(); ++n)
      for (int d = 0; d < D; ++d) m[d] += a[size_t(n) * D + d] / a.batch();
    means.push_back(m);
  }
  int k = 0;
  for (int i = 1; i <= R; ++i)
    for (int j = 1; j <= R; ++j) {
      if (i == j) continue;
      double along = 0;
      for (int d = 0; d < D; ++d) along += (means[i][d] - means[j][d]) * pooled.random.cavs[size_t(k) * D + d];
      CHECK_MESSAGE(along > 0, "run " << k << ": set " << i << " against set " << j);
      ++k;
    }
  // The pooled runs include both orders of each pair, so their mean sign count is near one half.
  CHECK(std::abs(mean(pooled.random.sign_count) - 0.5) < 0.2);
  // ACE pairs run k of a concept and of the baseline: it refuses the pooled baseline with its paired test.
  CHECK_THROWS_WITH_AS(validate_params("ace", {{"random_baseline", "pooled"}}), doctest::Contains("test=paired"),
                       std::invalid_argument);
}

TEST_CASE("tcav: the directional derivative is the finite difference of the logit along the CAV at the layer") {
  Graph g = arch("input(1,8,8) conv(3,k=3) tanh flatten dense(6) tanh dense(3)", 4);
  const int layer = g.at("tanh1"), D = int(g.shape(layer).numel());
  Rng rng(5);
  Tensor x(Shape{5, 1, 8, 8});
  for (size_t i = 0; i < x.size(); ++i) x[i] = rng.normal();
  Tensor v(Shape{1, D});
  double norm = 0;
  for (int d = 0; d < D; ++d) norm += double(v[d] = rng.normal()) * v[d];
  for (int d = 0; d < D; ++d) v[d] = float(v[d] / std::sqrt(norm));
  const Target target({2});
  const std::vector<Tensor> G = layer_gradients(g, x, target, {layer});
  const Tensor S = directional_derivatives(G[0], v);
  // The logit with eps * v added to the layer's output (a forward rule on that node).
  auto logit_at = [&](float eps) {
    ForwardRules rules(g.size());
    rules[layer] = [&](ForwardCall& c) {
      c.layer.forward(c);
      for (int n = 0; n < c.out.batch(); ++n)
        for (int d = 0; d < D; ++d) c.out[size_t(n) * D + d] += eps * v[d];
    };
    ForwardOptions fo;
    fo.rules = &rules;
    const Tensor z = g.forward(x, fo).clone();
    std::vector<double> out;
    for (int n = 0; n < 5; ++n) out.push_back(z[size_t(n) * 3 + 2]);
    return out;
  };
  const float eps = 1e-2f;
  const std::vector<double> up = logit_at(eps), down = logit_at(-eps);
  for (int n = 0; n < 5; ++n) CHECK(S[n] == doctest::Approx((up[n] - down[n]) / (2 * eps)).epsilon(2e-3).scale(0));
}

TEST_CASE("tcav: gradients in a batch equal one by one; results are deterministic per seed") {
  Graph g = arch("input(1,8,8) conv(4,k=3) relu maxpool(2) flatten dense(3)", 6);
  Rng rng(1);
  Tensor x(Shape{7, 1, 8, 8});
  for (size_t i = 0; i < x.size(); ++i) x[i] = rng.uniform();
  const std::vector<int> layers = {g.at("relu1"), g.at("maxpool1"), -1};
  const std::vector<Tensor> all = layer_gradients(g, x, Target({1}), layers, 256);
  const std::vector<Tensor> one = layer_gradients(g, x, Target({1}), layers, 1);
  for (size_t k = 0; k < layers.size(); ++k)
    for (size_t i = 0; i < all[k].size(); ++i) CHECK(all[k][i] == doctest::Approx(one[k][i]).epsilon(1e-6));

  TcavRequest q;
  q.concepts.push_back({"dots", make_patterns(parse_pattern("dots"), Shape{1, 8, 8}, 12, 1)});
  q.random_pool = make_patterns(parse_pattern("noise"), Shape{1, 8, 8}, 60, 2);
  q.inputs = x;
  q.target = Target({1});
  q.layers = {g.at("relu1")};
  const Params p = {{"runs", "3"}, {"random_size", "10"}};
  const TcavResult a = tcav(g, q, p), b = tcav(g, q, p);
  Params other = p;
  other["seed"] = "1";
  const TcavResult c = tcav(g, q, other);
  CHECK(a.layers[0].concepts[0].sign_count == b.layers[0].concepts[0].sign_count);
  CHECK(a.layers[0].concepts[0].mean_derivative == b.layers[0].concepts[0].mean_derivative);
  CHECK(a.layers[0].random.mean_derivative == b.layers[0].random.mean_derivative);
  CHECK(a.layers[0].concepts[0].mean_derivative != c.layers[0].concepts[0].mean_derivative);
  // A concept's CAVs do not depend on the other concepts asked for alongside it.
  q.concepts.insert(q.concepts.begin(), {"solid", make_patterns(parse_pattern("solid,level=0:1"), Shape{1, 8, 8}, 12, 3)});
  const TcavResult d = tcav(g, q, p);
  auto same = [](const Tensor& u, const Tensor& w) {
    return u.shape() == w.shape() && std::equal(u.data(), u.data() + u.size(), w.data());
  };
  CHECK(same(d.layers[0].concepts[1].cavs, a.layers[0].concepts[0].cavs));
  CHECK(same(d.layers[0].random.cavs, a.layers[0].random.cavs));
  CHECK(d.layers[0].concepts[1].sign_count == a.layers[0].concepts[0].sign_count);
}

TEST_CASE("tcav: the registry, its parameters and every refusal") {
  REQUIRE_FALSE(methods().empty());
  for (const MethodInfo& m : methods()) CHECK(method_info(m.name).name == m.name);
  CHECK(throws_with([] { method_info("nosuch"); }, "known: tcav"));
  CHECK(methods_of(Kind::tcav).size() == 1);

  Graph g = arch("input(1,8,8) conv(2,k=3) relu flatten dense(3)", 2);
  TcavRequest q;
  q.concepts.push_back({"dots", make_patterns(parse_pattern("dots"), Shape{1, 8, 8}, 6, 1)});
  q.random_pool = make_patterns(parse_pattern("noise"), Shape{1, 8, 8}, 20, 2);
  q.inputs = make_patterns(parse_pattern("blobs"), Shape{1, 8, 8}, 4, 3);
  q.target = Target({0});
  q.layers = {g.at("relu1")};
  const Params small = {{"runs", "2"}, {"random_size", "5"}};
  CHECK_NOTHROW(tcav(g, q, small));  // reads exactly its declared keys (done() would throw otherwise)
  auto with = [&](const std::string& k, const std::string& v) {
    Params p = small;
    p[k] = v;
    return p;
  };
  CHECK(throws_with([&] { tcav(g, q, with("nosuch", "1")); }, "unknown parameter 'nosuch'"));
  CHECK(throws_with([&] { tcav(g, q, with("runs", "1")); }, "runs=1 outside [2, 500]"));
  CHECK(throws_with([&] { tcav(g, q, with("classifier", "tree")); }, "known: svm, logistic"));
  CHECK(throws_with([&] { tcav(g, q, with("alpha", "nan")); }, "alpha"));
  CHECK(throws_with([&] { tcav(g, q, with("random_size", "50")); }, "random pool has 20 examples"));
  CHECK(throws_with([&] { tcav(g, q, small, "probe"); }, "unknown method 'probe'"));
  TcavRequest bad = q;
  bad.concepts[0].x = q.concepts[0].x.slice(0, 1).clone();
  CHECK(throws_with([&] { tcav(g, bad, small); }, "at least 2 examples"));
  bad = q;
  bad.concepts[0].x = q.concepts[0].x.clone();
  bad.concepts[0].x[5] = NAN;
  CHECK(throws_with([&] { tcav(g, bad, small); }, "concept 'dots': not finite"));
  bad = q;
  bad.concepts[0].name = "random";
  CHECK(throws_with([&] { tcav(g, bad, small); }, "'random'"));
  bad = q;
  bad.concepts.push_back(q.concepts[0]);
  CHECK(throws_with([&] { tcav(g, bad, small); }, "two concepts named 'dots'"));
  bad = q;
  bad.layers = {g.output()};
  CHECK(throws_with([&] { tcav(g, bad, small); }, "not below the target"));
  bad = q;
  bad.inputs = Tensor(Shape{2, 1, 9, 9});
  CHECK_THROWS_AS(tcav(g, bad, small), ShapeError);
  bad = q;
  bad.target = Target({7});
  CHECK_THROWS(tcav(g, bad, small));
}

// ---- linear probes -------------------------------------------------------------------------------

namespace {

// K Gaussian blobs in pixel space [1,6,6]: class k's mean is a bright pixel at position 3k.
void blobs(int n, int K, uint64_t seed, Tensor& x, std::vector<int>& y) {
  x = Tensor(Shape{n, 1, 6, 6});
  y.assign(n, 0);
  Rng rng(seed);
  for (int i = 0; i < n; ++i) {
    y[i] = i % K;
    for (int j = 0; j < 36; ++j) x[size_t(i) * 36 + j] = 0.8f * rng.normal() + (j == 3 * y[i] ? 2.5f : 0.f);
  }
}

// A softmax regression on standardized pixels written out plainly (double precision): zero start,
// Adam as torch.optim.Adam, the probe's documented batch order.
struct Reference {
  std::vector<double> W, b;
  double train_acc = 0, test_acc = 0;
};
Reference softmax_regression(const Tensor& x, const std::vector<int>& y, const Tensor& xt, const std::vector<int>& yt,
                             int K, int epochs, int batch, double lr, uint64_t seed) {
  const int N = x.batch(), F = int(x.sample_size());
  std::vector<double> mean(F, 0), inv(F, 0);
  for (int f = 0; f < F; ++f) {
    double s = 0, ss = 0;
    for (int i = 0; i < N; ++i) s += x[size_t(i) * F + f], ss += double(x[size_t(i) * F + f]) * x[size_t(i) * F + f];
    mean[f] = s / N;
    inv[f] = 1 / std::sqrt(ss / N - mean[f] * mean[f]);
  }
  auto z = [&](const Tensor& t, int i, int f) { return (t[size_t(i) * F + f] - mean[f]) * inv[f]; };
  Reference r;
  r.W.assign(size_t(K) * F, 0);
  r.b.assign(K, 0);
  std::vector<double> mW(r.W.size()), vW(r.W.size()), mb(K), vb(K), gW(r.W.size()), gb(K), p(K);
  std::vector<int> order(N);
  std::iota(order.begin(), order.end(), 0);
  int t = 0;
  const int steps = epochs * ((N + batch - 1) / batch);
  double lr_t = lr;
  auto adam = [&](std::vector<double>& w, const std::vector<double>& g, std::vector<double>& m, std::vector<double>& v) {
    const double c1 = 1 - std::pow(0.9, t), c2 = std::sqrt(1 - std::pow(0.999, t));
    for (size_t i = 0; i < w.size(); ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      w[i] -= lr_t / c1 * m[i] / (std::sqrt(v[i]) / c2 + 1e-8);
    }
  };
  auto logits = [&](const Tensor& t, int i) {
    for (int k = 0; k < K; ++k) {
      p[k] = r.b[k];
      for (int f = 0; f < F; ++f) p[k] += r.W[size_t(k) * F + f] * z(t, i, f);
    }
  };
  for (int e = 1; e <= epochs; ++e) {
    Rng rng(mix_seed(seed, uint64_t(e)));
    for (int i = N - 1; i > 0; --i) std::swap(order[i], order[rng.below(uint32_t(i + 1))]);
    for (int b0 = 0; b0 < N; b0 += batch) {
      const int B = std::min(N, b0 + batch) - b0;
      std::fill(gW.begin(), gW.end(), 0.0);
      std::fill(gb.begin(), gb.end(), 0.0);
      for (int j = 0; j < B; ++j) {
        const int i = order[b0 + j];
        logits(x, i);
        const double top = *std::max_element(p.begin(), p.end());
        double total = 0;
        for (double& v : p) total += v = std::exp(v - top);
        for (int k = 0; k < K; ++k) {
          const double d = (p[k] / total - (k == y[i])) / B;
          gb[k] += d;
          for (int f = 0; f < F; ++f) gW[size_t(k) * F + f] += d * z(x, i, f);
        }
      }
      lr_t = lr * 0.5 * (1 + std::cos(M_PI * t / steps));  // cosine annealing to 0 over the steps
      ++t;
      adam(r.W, gW, mW, vW);
      adam(r.b, gb, mb, vb);
    }
  }
  auto accuracy = [&](const Tensor& t, const std::vector<int>& labels) {
    int right = 0;
    for (int i = 0; i < t.batch(); ++i) {
      logits(t, i);
      right += int(std::max_element(p.begin(), p.end()) - p.begin()) == labels[i];
    }
    return double(right) / t.batch();
  };
  r.train_acc = accuracy(x, y);
  r.test_acc = accuracy(xt, yt);
  return r;
}

}  // namespace

TEST_CASE("probe: the input layer's probe is a softmax regression on pixels trained the same way") {
  Tensor x, xt;
  std::vector<int> y, yt;
  blobs(300, 4, 1, x, y);
  blobs(200, 4, 2, xt, yt);
  Graph g = arch("input(1,6,6) conv(2,k=3) relu flatten dense(4)", 3);
  ProbeRequest q{x, xt, y, yt, 4, {-1}, {}};
  const ProbeResult r = probe(g, q, {{"epochs", "4"}, {"batch", "32"}, {"lr", "0.01"}, {"seed", "5"}});
  const Reference ref = softmax_regression(x, y, xt, yt, 4, 4, 32, 0.01, 5);
  const LayerProbe& p = r.layers[0];
  CHECK(p.layer == "input");
  CHECK(p.features == 36);
  double worst = 0;
  for (size_t i = 0; i < ref.W.size(); ++i) worst = std::max(worst, std::fabs(p.weight[i] - ref.W[i]));
  for (int k = 0; k < 4; ++k) worst = std::max(worst, std::fabs(p.bias[k] - ref.b[k]));
  CHECK(worst < 2e-4);
  CHECK(p.train_accuracy == doctest::Approx(ref.train_acc).epsilon(1.0 / 300));
  CHECK(p.test_accuracy == doctest::Approx(ref.test_acc).epsilon(1.0 / 200));
  CHECK(p.test_accuracy > 0.7);  // the blobs are separable well above chance (0.25)
}

TEST_CASE("probe: probes never see test data in training; gap equals a probe after global average pooling") {
  Tensor x, xt, xt2;
  std::vector<int> y, yt, yt2;
  blobs(240, 3, 3, x, y);
  blobs(120, 3, 4, xt, yt);
  blobs(90, 3, 6, xt2, yt2);
  for (int& v : yt2) v = (v + 1) % 3;  // wrong labels: a probe that learnt from them would change
  Graph g = arch("input(1,6,6) conv(3,k=3,p=1) relu gap dense(3)", 4);
  const std::vector<int> layers = {-1, g.at("conv1"), g.at("relu1"), g.at("gap1"), g.at("dense1")};
  const Params p = {{"epochs", "2"}, {"batch", "16"}};
  const ProbeResult a = probe(g, {x, xt, y, yt, 3, layers, {}}, p);
  const ProbeResult b = probe(g, {x, xt2, y, yt2, 3, layers, {}}, p);
  for (size_t k = 0; k < layers.size(); ++k) {
    INFO(a.layers[k].layer);
    CHECK(std::equal(a.layers[k].weight.data(), a.layers[k].weight.data() + a.layers[k].weight.size(), b.layers[k].weight.data()));
    CHECK(a.layers[k].train_accuracy == b.layers[k].train_accuracy);
    CHECK(b.layers[k].test_accuracy < a.layers[k].test_accuracy);
  }
  // features=gap on relu1 averages each channel: the features gap1 holds.
  const ProbeResult c = probe(g, {x, xt, y, yt, 3, {g.at("relu1"), g.at("gap1")}, {}}, {{"epochs", "2"}, {"batch", "16"}, {"features", "gap"}});
  CHECK(c.layers[0].features == 3);
  for (size_t i = 0; i < c.layers[0].weight.size(); ++i)
    CHECK(c.layers[0].weight[i] == doctest::Approx(c.layers[1].weight[i]).epsilon(1e-4));
  CHECK(c.layers[0].test_accuracy == c.layers[1].test_accuracy);
  CHECK(a.layers[3].features == 3);
  // Seeded: the same seed gives the same probes, another seed another order.
  const ProbeResult d = probe(g, {x, xt, y, yt, 3, layers, {}}, {{"epochs", "2"}, {"batch", "16"}, {"seed", "9"}});
  CHECK_FALSE(std::equal(a.layers[0].weight.data(), a.layers[0].weight.data() + a.layers[0].weight.size(), d.layers[0].weight.data()));
}

TEST_CASE("probe: features constant over the training split are dropped, not learnt from rounding") {
  // Every training row is the same image: no feature varies, so every probe can only learn the
  // class frequencies in its bias. Batches of 7 and the statistics pass's batches of 64 see the
  // layers' activations at other batch positions, where the last bits can differ.
  Tensor one, xt;
  std::vector<int> unused, yt;
  blobs(1, 3, 8, one, unused);
  blobs(60, 3, 9, xt, yt);
  Tensor x(Shape{90, 1, 6, 6});
  std::vector<int> y(90);
  for (int i = 0; i < 90; ++i) std::copy(one.data(), one.data() + 36, x.data() + size_t(i) * 36), y[i] = i % 3 == 0 ? 0 : 1 + i % 2;
  Graph g = arch("input(1,6,6) conv(3,k=3,p=1) relu flatten dense(8) relu dense(3)", 4);
  const std::vector<int> layers = {-1, g.at("relu1"), g.at("dense1"), g.at("relu2"), g.at("dense2")};
  const ProbeResult r = probe(g, {x, xt, y, yt, 3, layers, {}}, {{"epochs", "3"}, {"batch", "7"}});
  for (const LayerProbe& p : r.layers) {
    INFO(p.layer);
    CHECK(std::all_of(p.weight.data(), p.weight.data() + p.weight.size(), [](float w) { return w == 0; }));
    CHECK(std::all_of(p.scale.data(), p.scale.data() + p.scale.size(), [](float v) { return v == 1; }));
    CHECK(p.test_accuracy == r.layers[0].test_accuracy);  // the bias alone decides, as for the input
  }
}

TEST_CASE("probe: declared parameters, bad labels, shapes and values are refused") {
  Tensor x, xt;
  std::vector<int> y, yt;
  blobs(40, 2, 1, x, y);
  blobs(20, 2, 2, xt, yt);
  Graph g = arch("input(1,6,6) conv(2,k=3) relu flatten dense(2)", 3);
  const ProbeRequest q{x, xt, y, yt, 2, {-1, g.at("relu1")}, {}};
  CHECK_NOTHROW(probe(g, q, {{"epochs", "1"}}));
  CHECK(methods_of(Kind::probe).size() == 1);
  CHECK_NOTHROW(validate_params("probe", {{"features", "gap"}}));
  CHECK(throws_with([&] { probe(g, q, {{"epochs", "0"}}); }, "epochs=0 outside [1, 1000]"));
  CHECK(throws_with([&] { probe(g, q, {{"features", "max"}}); }, "known: flatten, gap"));
  CHECK(throws_with([&] { probe(g, q, {{"runs", "3"}}); }, "unknown parameter 'runs'"));
  CHECK(throws_with([&] { validate_params("probe", {{"lr", "-1"}}); }, "lr=-1 outside"));
  ProbeRequest bad = q;
  bad.test_y[3] = 2;
  CHECK(throws_with([&] { probe(g, bad, {}); }, "label 2 of example 3 outside [0, 2)"));
  bad = q;
  bad.train_y.pop_back();
  CHECK(throws_with([&] { probe(g, bad, {}); }, "39 labels for 40 examples"));
  bad = q;
  bad.train_x = x.clone();
  bad.train_x[7] = INFINITY;
  CHECK(throws_with([&] { probe(g, bad, {}); }, "training data: not finite at element 7"));
  bad = q;
  bad.layers = {g.at("relu1"), g.at("relu1")};
  CHECK(throws_with([&] { probe(g, bad, {}); }, "given twice"));
  bad = q;
  bad.test_x = Tensor(Shape{2, 1, 5, 5});
  CHECK_THROWS_AS(probe(g, bad, {}), ShapeError);
}

// ---- Network Dissection --------------------------------------------------------------------------

TEST_CASE("dissect: thresholds are the quantile by definition") {
  std::vector<float> v(1000);
  std::iota(v.begin(), v.end(), 0.f);
  std::shuffle(v.begin(), v.end(), std::mt19937(3));
  // numpy.percentile(range(1000), 99.5) = 994.005: five values lie above it, P(a > T) = 0.005.
  CHECK(upper_quantile(v, 0.005) == doctest::Approx(994.005));
  CHECK(upper_quantile(v, 0.5) == doctest::Approx(499.5));
  CHECK(upper_quantile({7.f}, 0.005) == 7.0);
  // Random values: the linear interpolation between the order statistics around (1 - q)(M - 1).
  Rng rng(4);
  std::vector<float> r(777);
  for (float& x : r) x = rng.normal();
  std::vector<float> sorted = r;
  std::sort(sorted.begin(), sorted.end());
  for (double q : {0.005, 0.01, 0.2}) {
    const double pos = (1 - q) * 776;
    const size_t lo = size_t(pos);
    const double want = sorted[lo] + (pos - lo) * (sorted[lo + 1] - sorted[lo]);
    CHECK(upper_quantile(r, q) == doctest::Approx(want).epsilon(1e-12));
    const long above = std::count_if(r.begin(), r.end(), [&](float x) { return x > upper_quantile(r, q); });
    CHECK(above == long(std::ceil(q * 776 - 1e-9)));
  }
}

namespace {

// PyTorch's bilinear upsampling (align_corners=False) of one pixel, written out.
double bilinear_at(const float* m, int h, int w, int H, int W, int Y, int X) {
  auto src = [](int d, int from, int to) { return std::max(0.0, (d + 0.5) * from / to - 0.5); };
  const double sy = src(Y, h, H), sx = src(X, w, W);
  const int y0 = std::min(int(sy), h - 1), x0 = std::min(int(sx), w - 1);
  const int y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
  const double fy = sy - y0, fx = sx - x0;
  return (1 - fy) * ((1 - fx) * m[y0 * w + x0] + fx * m[y0 * w + x1]) + fy * ((1 - fx) * m[y1 * w + x0] + fx * m[y1 * w + x1]);
}

}  // namespace

TEST_CASE("dissect: IoU equals a brute-force count on a small hand-made case") {
  // Two units (maxpool of two input channels, 3x3 maps of 6x6 images), three concepts in two
  // categories, one image not annotated for the second category.
  Graph g = arch("input(2,6,6) maxpool(2)");
  const int N = 5, H = 6, W = 6, HW = 36;
  SegmentationSet s;
  s.x = Tensor(Shape{N, 2, H, W});
  Rng rng(11);
  for (size_t i = 0; i < s.x.size(); ++i) s.x[i] = rng.uniform();
  s.categories = {"a", "b"};
  s.concepts = {{"left", 0}, {"top", 0}, {"speckle", 1}};
  s.masks.assign(size_t(N) * 3 * HW, 0);
  for (int n = 0; n < N; ++n)
    for (int p = 0; p < HW; ++p) {
      s.masks[(size_t(n) * 3 + 0) * HW + p] = p % W < 3;
      s.masks[(size_t(n) * 3 + 1) * HW + p] = p / W < 2 + n % 2;
      s.masks[(size_t(n) * 3 + 2) * HW + p] = rng.uniform() < 0.3f;
    }
  s.annotated = {1, 1, 1, 1, 1, 0, 1, 1, 1, 1};  // image 2 has no labels of category b
  const double q = 0.1;
  const DissectResult r = dissect(g, {&s, {g.at("maxpool1")}, {}}, {{"quantile", "0.1"}, {"iou_threshold", "0.2"}});
  REQUIRE(r.layers.size() == 1);
  const Tensor a = activations(g, s.x, {g.at("maxpool1")})[0];
  for (int k = 0; k < 2; ++k) {
    INFO("unit " << k);
    std::vector<float> all;
    for (int n = 0; n < N; ++n)
      for (int p = 0; p < 9; ++p) all.push_back(a[(size_t(n) * 2 + k) * 9 + p]);
    std::sort(all.begin(), all.end());
    const double pos = (1 - q) * (all.size() - 1);
    const double T = all[size_t(pos)] + (pos - size_t(pos)) * (all[size_t(pos) + 1] - all[size_t(pos)]);
    const UnitResult& u = r.layers[0].units[k];
    CHECK(u.threshold == doctest::Approx(T));
    for (int c = 0; c < 3; ++c) {
      long inter = 0, uni = 0;
      for (int n = 0; n < N; ++n) {
        if (c == 2 && n == 2) continue;
        for (int p = 0; p < HW; ++p) {
          const bool m = bilinear_at(a.data() + (size_t(n) * 2 + k) * 9, 3, 3, H, W, p / W, p % W) > T;
          const bool l = s.masks[(size_t(n) * 3 + c) * HW + p];
          inter += m && l, uni += m || l;
        }
      }
      CHECK(u.ious[c] == doctest::Approx(double(inter) / uni).epsilon(1e-12));
    }
    const int best = int(std::max_element(u.ious.begin(), u.ious.end()) - u.ious.begin());
    CHECK(u.best == best);
    CHECK(u.detector == (u.ious[best] > 0.2));
    // Top images by the unit's largest activation.
    for (size_t i = 1; i < u.top_maxima.size(); ++i) CHECK(u.top_maxima[i - 1] >= u.top_maxima[i]);
  }
  int detectors = 0;
  for (const UnitResult& u : r.layers[0].units) detectors += u.detector;
  CHECK(r.layers[0].detectors_by_category[0] + r.layers[0].detectors_by_category[1] == detectors);
}

TEST_CASE("dissect: the generated set's masks are exact; planted detectors are found with IoU 1") {
  const SegmentationSet s = make_segmentation(Shape{2, 20, 24}, 40, 7);
  check_segmentation(s);
  const int HW = 20 * 24, K = int(s.concepts.size());
  REQUIRE(K == 11);
  for (int n = 0; n < 40; ++n)
    for (int p = 0; p < HW; ++p) {
      const float v = s.x[size_t(n) * 2 * HW + p];
      CHECK(s.x[(size_t(n) * 2 + 1) * HW + p] == v);  // every channel the same gray
      int per_cat[3] = {0, 0, 0};
      for (int c = 0; c < K; ++c) per_cat[s.concepts[c].category] += s.mask(n, c)[p];
      CHECK(per_cat[0] + per_cat[1] <= 1);  // a pixel is texture or shape, never both
      CHECK(per_cat[2] == 1);               // intensity bins partition the pixels
      const int bin = v < 1.f / 3 ? 0 : v < 2.f / 3 ? 1 : 2;
      CHECK(s.mask(n, 8 + bin)[p] == 1);
      if (per_cat[0] + per_cat[1] == 0) CHECK(v < 0.2f);  // outside texture and shape: the background
      if (per_cat[1]) CHECK(v >= 0.6f);
    }
  // Image i does not depend on the set's size.
  const SegmentationSet small = make_segmentation(Shape{2, 20, 24}, 3, 7);
  CHECK(std::equal(small.masks.begin(), small.masks.end(), s.masks.begin()));
  CHECK(std::equal(small.x.data(), small.x.data() + small.x.size(), s.x.data()));

  // Plant the answers: input channel 0 is the disc's mask, channel 1 the checkerboard's. With the
  // quantile at each mask's pixel fraction, the thresholded maps are the masks exactly.
  SegmentationSet planted = s;
  double fraction[2] = {0, 0};
  for (int n = 0; n < 40; ++n)
    for (int p = 0; p < HW; ++p)
      for (int k = 0; k < 2; ++k) {
        const float m = s.mask(n, k == 0 ? 4 : 2)[p];
        planted.x[(size_t(n) * 2 + k) * HW + p] = m;
        fraction[k] += m / (40.0 * HW);
      }
  Graph g = arch("input(2,20,24) relu");
  for (int k = 0; k < 2; ++k) {
    INFO("unit " << k);
    char q[32];
    std::snprintf(q, sizeof q, "%.12f", fraction[k]);
    const DissectResult r = dissect(g, {&planted, {-1, g.at("relu1")}, {}}, {{"quantile", q}});
    for (const LayerDissection& l : r.layers) {
      const UnitResult& u = l.units[k];
      CHECK(s.concepts[u.best].name == (k == 0 ? "disc" : "checkerboard"));
      CHECK(u.iou == doctest::Approx(1.0));
      CHECK(u.detector);
    }
  }
  const DissectResult both = dissect(g, {&planted, {-1}, {}}, {{"quantile", "0.02"}, {"iou_threshold", "0.3"}});
  int detectors = 0;
  for (int c : both.layers[0].detectors_by_category) detectors += c;
  CHECK(detectors == int(both.layers[0].units[0].detector) + int(both.layers[0].units[1].detector));
}

TEST_CASE("dissect: a thread count gives the same result; refusals name the problem") {
  const SegmentationSet s = make_segmentation(Shape{1, 12, 12}, 30, 2);
  Graph g = arch("input(1,12,12) conv(4,k=3) relu maxpool(2) flatten dense(3)", 6);
  const std::vector<int> layers = {g.at("conv1"), g.at("maxpool1")};
  RestoreThreads guard;
  set_threads(1);
  const DissectResult one = dissect(g, {&s, layers, {}});
  set_threads(2);
  const DissectResult two = dissect(g, {&s, layers, {}});
  for (size_t l = 0; l < 2; ++l)
    for (size_t k = 0; k < 4; ++k) {
      CHECK(one.layers[l].units[k].ious == two.layers[l].units[k].ious);
      CHECK(one.layers[l].units[k].threshold == two.layers[l].units[k].threshold);
      CHECK(one.layers[l].units[k].top_images == two.layers[l].units[k].top_images);
    }
  CHECK(one.layers[0].units[0].top_images.size() == 8);
  CHECK(methods_of(Kind::dissect).size() == 1);
  CHECK(throws_with([&] { dissect(g, {&s, {g.at("dense1")}, {}}); }, "not maps [channels, height, width]"));
  CHECK(throws_with([&] { dissect(g, {&s, layers, {}}, {{"quantile", "0.9"}}); }, "quantile=0.9 outside"));
  CHECK(throws_with([&] { dissect(g, {&s, layers, {}}, {{"runs", "2"}}); }, "unknown parameter 'runs'"));
  CHECK(throws_with([&] { dissect(g, {&s, {}, {}}); }, "no layers"));
  CHECK(throws_with([&] { dissect(g, {&s, {g.at("conv1"), g.at("conv1")}, {}}); }, "given twice"));
  SegmentationSet bad = s;
  bad.masks[5] = 2;
  CHECK(throws_with([&] { dissect(g, {&bad, layers, {}}); }, "mask value 2"));
  bad = s;
  bad.masks.pop_back();
  CHECK(throws_with([&] { dissect(g, {&bad, layers, {}}); }, "mask pixels, expected"));
  bad = s;
  bad.x = s.x.clone();
  bad.x[3] = NAN;
  CHECK(throws_with([&] { dissect(g, {&bad, layers, {}}); }, "not finite at element 3"));
  const SegmentationSet other = make_segmentation(Shape{1, 10, 10}, 3, 2);
  CHECK_THROWS_AS(dissect(g, {&other, layers, {}}), ShapeError);
  CHECK_THROWS(make_segmentation(Shape{1, 5, 5}, 3, 1));
}

TEST_CASE("concepts: fits and counts without forward passes stop when asked (CAVs, k-means, dissect)") {
  Tensor X({40, 3});
  std::vector<int> y(40);
  Rng r(4);
  for (int i = 0; i < 40; ++i) {
    y[i] = i % 2 ? 1 : -1;
    for (int d = 0; d < 3; ++d) X[size_t(i) * 3 + d] = r.uniform() + (d == 0 ? float(y[i]) : 0.f);
  }
  check_stops_when_asked([&] { fit_sgd(X, y, {}, SgdOptions{}); });
  check_stops_when_asked([&] { kmeans(X, {.clusters = 2}); });
  // Dissect's counts run in rounds of units with a poll between rounds. The check says stop only once
  // the first layer's units are counted, when every forward pass (which polls anyway) is behind it,
  // and 25 ms later, so that the next poll asks.
  const SegmentationSet s = make_segmentation(Shape{1, 12, 12}, 30, 2);
  Graph g = arch("input(1,12,12) conv(4,k=3) relu maxpool(2) flatten dense(3)", 6);
  const std::vector<int> layers = {g.at("conv1"), g.at("maxpool1")};
  const DissectResult before = dissect(g, {&s, layers, {}});
  bool counted = false;
  const StageProgress after_first_layer = [&](const std::string& stage, int, int) {
    if (stage.rfind("units of", 0) != 0 || counted) return;
    counted = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  };
  {
    InterruptCheck check([&] { return counted; });
    CHECK_THROWS_AS(dissect(g, {&s, layers, after_first_layer}), Interrupted);
  }
  CHECK(counted);
  const DissectResult after = dissect(g, {&s, layers, {}});  // the model as it was
  for (size_t l = 0; l < 2; ++l)
    for (size_t k = 0; k < 4; ++k) CHECK(after.layers[l].units[k].ious == before.layers[l].units[k].ious);
}

// ---- the command line -----------------------------------------------------------------------------

namespace {

namespace fs = std::filesystem;

// The glassbox binary of this build (tools/glassbox beside tests/), or empty when it is not built.
std::string glassbox_binary() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const fs::path bin = exe.parent_path().parent_path() / "tools" / "glassbox";
  return fs::exists(bin) ? bin.string() : "";
}

struct Scratch {
  fs::path dir;
  Scratch() {
    dir = fs::temp_directory_path() / ("glassbox_concepts_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Run {
  int status;
  std::string out, err;
};

Run glassbox(const Scratch& s, const std::string& bin, const std::string& args) {
  const std::string out = s / "stdout.txt", err = s / "stderr.txt";
  const int raw = std::system((bin + " --threads 1 " + args + " >" + out + " 2>" + err).c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// `text` with its one occurrence of `from` replaced by `to` (a command line with one value changed).
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

// The numbers in an SVG path's d="..." (M x y L x y ...), in pairs.
std::vector<std::pair<double, double>> path_points(const std::string& svg, const std::string& cls) {
  std::vector<std::pair<double, double>> out;
  const size_t at = svg.find("<path class=\"" + cls + "\" d=\"");
  if (at == std::string::npos) return out;
  const size_t b = svg.find("d=\"", at) + 3, e = svg.find('"', b);
  std::istringstream in(svg.substr(b, e - b));
  char op;
  double x, y;
  while (in >> op >> x >> y) out.push_back({x, y});
  return out;
}

}  // namespace

TEST_CASE("cli: glassbox concepts writes its outputs from every kind of concept spec; bad requests name the flag") {
  const std::string bin = glassbox_binary();
  if (bin.empty()) {
    MESSAGE("skipped: tools/glassbox is not built beside the tests");
    return;
  }
  Scratch s;
  // A folder of concept images and a .npy concept (uint8 pixels, [N,H,W]).
  fs::create_directories(s / "folder");
  const Tensor dots = make_patterns(parse_pattern("dots"), Shape{1, 28, 28}, 6, 1);
  for (int i = 0; i < 6; ++i) write_png(s / ("folder/d" + std::to_string(i) + ".png"), dots.sample(i));
  std::vector<uint8_t> u8(8 * 28 * 28);
  const Tensor lines = make_patterns(parse_pattern("lines"), Shape{1, 28, 28}, 8, 2);
  for (size_t i = 0; i < u8.size(); ++i) u8[i] = uint8_t(std::lround(255 * lines[i]));
  write_npy_u8(s / "lines.npy", {8, 28, 28}, u8.data());
  const std::string base = "concepts --model lenet5 --layer relu2,dense1 --class 3 --random pattern:noise "
                           "--inputs pattern:blobs --n 12 --max-inputs 9 --param runs=2 --param random_size=6 ";
  Run r = glassbox(s, bin, base + "--concept stripes=pattern:stripes-v --concept dots=images:" + (s / "folder") +
                               " --concept lines=npy:" + (s / "lines.npy") + " --out " + (s / "out"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(contains(r.out, "stripes"));
  for (const char* f : {"summary.json", "tcav.png", "tcav.svg", "cav_dots_relu2.npy", "cav_lines_dense1_mean.npy"})
    CHECK_MESSAGE(fs::exists(s / ("out/" + std::string(f))), f);
  CHECK(read_npy_f32(s / "out/cav_stripes_relu2.npy").shape() == Shape{2, 16, 10, 10});
  CHECK(read_npy_f32(s / "out/cav_stripes_dense1_mean.npy").shape() == Shape{1, 120});
  const nlohmann::json j = nlohmann::json::parse(slurp(s / "out/summary.json"));
  CHECK(j["layers"].size() == 2);
  CHECK(j["concepts"][1]["n"] == 6);  // the folder's six images
  CHECK(j["concepts"][2]["n"] == 8);
  CHECK(j["inputs"]["n"] == 9);
  CHECK(j["layers"][0]["concepts"][0]["runs"]["sign_count"].size() == 2);
  CHECK(contains(slurp(s / "out/tcav.svg"), "<svg"));
  {
    // The "n.s." marks keep off the 0.5 line (labelled "chance") and off every whisker and its caps.
    const std::string svg = slurp(s / "out/tcav.svg");
    CHECK(contains(svg, ">chance</text>"));
    const auto line = path_points(svg, "hline"), whiskers = path_points(svg, "errorbar");
    REQUIRE(line.size() == 2);
    REQUIRE(whiskers.size() % 2 == 0);
    int marks = 0;
    for (size_t p = svg.find(">n.s.</text>"); p != std::string::npos; p = svg.find(">n.s.</text>", p + 1), ++marks) {
      const size_t t = svg.rfind("<text x=\"", p);
      double x = 0, y = 0;
      REQUIRE(std::sscanf(svg.c_str() + t, "<text x=\"%lf\" y=\"%lf\"", &x, &y) == 2);
      const double top = y - 14, bottom = y;  // the baseline is 14 px under the capitals' top
      CAPTURE(x);
      CAPTURE(top);
      CHECK((bottom < line[0].second - 2 || top > line[0].second + 2));
      for (size_t w = 0; w < whiskers.size(); w += 2) {  // segments: a vertical line, two caps
        const double x0 = std::min(whiskers[w].first, whiskers[w + 1].first) - 1;
        const double x1 = std::max(whiskers[w].first, whiskers[w + 1].first) + 1;
        const double y0 = std::min(whiskers[w].second, whiskers[w + 1].second) - 1;
        const double y1 = std::max(whiskers[w].second, whiskers[w + 1].second) + 1;
        const bool overlaps_x = x0 < x + 20 && x1 > x - 20, overlaps_y = y0 < bottom && y1 > top;
        CHECK_FALSE((overlaps_x && overlaps_y));
      }
    }
    MESSAGE(marks << " n.s. marks checked");
  }

  r = glassbox(s, bin, "concepts --list");
  CHECK(r.status == 0);
  CHECK(contains(r.out, "--param runs=10"));

  // Bad requests: each names its flag, parameter or file, and leaves the earlier outputs as they were.
  fs::create_directories(s / "empty");
  std::ofstream(s / "bad.npy") << "garbage";
  write_npy(s / "big.npy", Tensor(Shape{4, 1, 28, 28}, 2.f));  // 0..255 or normalized values as float
  const std::string before = slurp(s / "out/summary.json");
  const std::string out = " --out " + (s / "out");
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {base + "--concept a=pattern:zigzag" + out, "pattern 'zigzag'"},
      {base + "--concept a=pattern:dots,period=0" + out, "period=0"},
      {base + "--concept a=images:" + (s / "empty") + out, "holds no image files"},
      {base + "--concept a=images:" + (s / "nosuch") + out, "is not a folder"},
      {base + "--concept a=npy:" + (s / "bad.npy") + out, "--concept a: " + (s / "bad.npy")},
      {base + "--concept a=npy:" + (s / "nosuch.npy") + out, "nosuch.npy"},
      {base + "--concept a=npy:" + (s / "big.npy") + out, "big.npy: element 0 is 2; pixels are in [0, 1]"},
      {base + "--concept a=nosuch:x" + out, "expected pattern:KIND"},
      {base + "--concept a" + out, "expected NAME=SPEC"},
      {base + "--concept random=pattern:dots" + out, "not 'random'"},
      {base + "--concept a=pattern:dots --concept a=pattern:lines" + out, "given twice"},
      {replaced(base, "runs=2", "runs=1") + "--concept a=pattern:dots" + out, "runs=1 outside [2, 500]"},
      {base + "--concept a=pattern:dots --param runs=3" + out, "--param runs given twice (runs=2 and runs=3)"},
      {base + "--concept a=pattern:dots --param colour=red" + out, "unknown parameter 'colour'"},
      {base + "--concept a=pattern:dots --param alpha=nan" + out, "alpha"},
      {replaced(base, "random_size=6", "random_size=100000") + "--concept a=pattern:dots" + out,
       "generated images, more than"},
      {"concepts --model lenet5 --layer relu9 --class 3 --concept a=pattern:dots" + out, "--layer 'relu9'"},
      {"concepts --model lenet5 --layer dense3 --class 3 --concept a=pattern:dots" + out, "the logits themselves"},
      {"concepts --model lenet5 --layer relu2 --class 12 --concept a=pattern:dots" + out, "--class 12"},
      {"concepts --model lenet5 --layer relu2 --class 3 --concept a=pattern:dots" + out, "--random and --inputs are required"},
      {base + out, "--concept NAME=SPEC is required"},
  };
  for (const Case& c : cases) {
    INFO("glassbox " << c.args);
    r = glassbox(s, bin, c.args);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, c.expect), r.err);
  }
  CHECK(slurp(s / "out/summary.json") == before);
}

TEST_CASE("cli: glassbox probe and glassbox dissect write their outputs; bad requests name the flag") {
  const std::string bin = glassbox_binary();
  if (bin.empty()) {
    MESSAGE("skipped: tools/glassbox is not built beside the tests");
    return;
  }
  Scratch s;
  // A small labelled set as npy:X,Y (the split is by index) and a folder of images with masks.
  const Tensor x = make_patterns(parse_pattern("blobs"), Shape{1, 28, 28}, 50, 4);
  std::vector<uint8_t> u8(x.size());
  for (size_t i = 0; i < u8.size(); ++i) u8[i] = uint8_t(std::lround(255 * x[i]));
  write_npy_u8(s / "x.npy", {50, 28, 28}, u8.data());
  std::vector<int64_t> labels(50);
  for (int i = 0; i < 50; ++i) labels[i] = i % 3;
  write_npy_labels(s / "y.npy", labels);
  const std::string data = "npy:" + (s / "x.npy") + "," + (s / "y.npy");
  for (int i = 0; i < 3; ++i) {
    const std::string name = "im" + std::to_string(i);
    fs::create_directories(s / ("seg/masks/" + name + "/shape"));
    fs::create_directories(s / "seg/images");
    write_png(s / ("seg/images/" + name + ".png"), x.sample(i));
    std::vector<uint8_t> m(14 * 14);  // half the model's size: resized by nearest neighbour
    for (int p = 0; p < 14 * 14; ++p) m[p] = (p / 14 < 7) ? 255 : 0;
    write_png(s / ("seg/masks/" + name + "/shape/upper.png"), 14, 14, 1, m.data());
  }

  Run r = glassbox(s, bin, "probe --model lenet5 --data " + data + " --layers input,relu2 --param epochs=1 --out " + (s / "probe"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  for (const char* f : {"summary.json", "probe_accuracy.png", "probe_accuracy.svg"})
    CHECK_MESSAGE(fs::exists(s / ("probe/" + std::string(f))), f);
  nlohmann::json j = nlohmann::json::parse(slurp(s / "probe/summary.json"));
  CHECK(j["train_samples"] == 40);
  CHECK(j["test_samples"] == 10);
  CHECK(j["models"][0]["layers"].size() == 2);
  CHECK(j["models"][0]["layers"][1]["features"] == 1600);

  r = glassbox(s, bin, "dissect --model lenet5 --layer relu1,relu2 --concepts generated:n=30 --out " + (s / "gen"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  for (const char* f : {"summary.json", "detectors.png", "detectors.svg", "dissect_relu1.png", "iou_relu2.npy"})
    CHECK_MESSAGE(fs::exists(s / ("gen/" + std::string(f))), f);
  CHECK(read_npy_f32(s / "gen/iou_relu2.npy").shape() == Shape{16, 11});
  j = nlohmann::json::parse(slurp(s / "gen/summary.json"));
  CHECK(j["images"] == 30);
  CHECK(j["layers"][0]["units"].size() == 6);
  CHECK(j["layers"][0]["units"][0]["top_images"].size() == 8);

  r = glassbox(s, bin, "dissect --model lenet5 --layer relu1 --concepts masks:" + (s / "seg") + " --out " + (s / "seg_out"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  j = nlohmann::json::parse(slurp(s / "seg_out/summary.json"));
  CHECK(j["images"] == 3);
  CHECK(j["concepts"][0]["name"] == "upper");
  CHECK(j["concepts"][0]["category"] == "shape");
  r = glassbox(s, bin, "dissect --model lenet5 --concepts data:" + data + "@split=train,n=12 --out " + (s / "sil"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  j = nlohmann::json::parse(slurp(s / "sil/summary.json"));
  CHECK(j["images"] == 12);
  CHECK(j["concepts"].size() == 6);  // classes 0, 1, 2 and the parts top, middle, bottom
  CHECK(j["layers"].size() == 6);    // every layer with maps

  // A 32x32 model's thumbnails are enlarged to 64 px (rounded up, not down to 1x); a run where no
  // unit passes the threshold says so on its chart.
  r = glassbox(s, bin, "dissect --model 'input(3,32,32) conv(4,k=3,p=1,name=c) relu(name=r) flatten dense(3)' --layer r "
                       "--concepts generated:n=12 --param iou_threshold=1 --rows 2 --out " + (s / "c32"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const Image thumbs = read_image(s / "c32/dissect_r.png");
  CHECK(thumbs.w >= 8 * 64);  // 8 top images per unit
  CHECK(contains(slurp(s / "c32/detectors.svg"), ">no unit passed IoU &gt; 1</text>"));

  r = glassbox(s, bin, "dissect --list");
  CHECK(contains(r.out, "--param quantile=0.005"));
  r = glassbox(s, bin, "probe --list");
  CHECK(contains(r.out, "--param epochs=3"));

  const std::string before = slurp(s / "gen/summary.json");
  struct Case {
    std::string args, expect;
  };
  const std::string out = " --out " + (s / "gen");
  const Case cases[] = {
      {"dissect --model lenet5 --layer dense1" + out, "not maps [channels, height, width]"},
      {"dissect --model lenet5 --layer conv9" + out, "--layer 'conv9'"},
      {"dissect --model lenet5 --concepts generated:n=0" + out, "--concepts generated:n=0"},
      {"dissect --model lenet5 --concepts shapes" + out, "expected generated"},
      {"dissect --model lenet5 --concepts masks:" + (s / "nosuch") + out, "needs images/ and masks/"},
      {"dissect --model lenet5 --param quantile=0.9" + out, "quantile=0.9 outside"},
      {"dissect --model lenet5 --param top=0" + out, "top=0 outside"},
      {"dissect --model lenet5 --concepts generated:n=5", "--out is required"},
      {"probe --model lenet5 --data " + data + " --layers nosuch" + out, "--layers 'nosuch'"},
      {"probe --model lenet5 --data " + data + " --param epochs=0" + out, "epochs=0 outside"},
      {"probe --model 'input(1,8,8) conv(2,k=3) relu flatten dense(3)' --data " + data + out, "the model takes"},
  };
  for (const Case& c : cases) {
    INFO("glassbox " << c.args);
    r = glassbox(s, bin, c.args);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, c.expect), r.err);
  }
  CHECK(slurp(s / "gen/summary.json") == before);
}

// ---- ACE (automatic concept discovery) -----------------------------------------------------------

TEST_CASE("ace: ttest_rel by hand (scipy's ttest_rel([1,2,3],[0,0,1]): t = 5, p = 1 - 5/sqrt(27))") {
  const TTest t = ttest_rel({1, 2, 3}, {0, 0, 1});
  CHECK(t.t == doctest::Approx(5.0));
  CHECK(t.df == 2);
  CHECK(t.p == doctest::Approx(1 - 5 / std::sqrt(27.0)).epsilon(1e-10));  // df = 2: p = 1 - |t|/sqrt(2 + t^2)
  CHECK(ttest_rel({1, 2, 3, 9}, {0, 0, 1}).t == doctest::Approx(5.0));  // truncated to the shorter, as ace.py
  CHECK(ttest_rel({1, 1, 1}, {0, 0, 0}).p == 0);
  CHECK(ttest_rel({0.5, 0.5}, {0.5, 0.5}).p == 1);
  CHECK_THROWS(ttest_rel({1}, {2}));
}

TEST_CASE("ace: k-means recovers planted clusters exactly, by hand and in 5-D; deterministic per seed") {
  // By hand: {0, 1} and {10, 11} on a line.
  const KMeansResult h = kmeans(Tensor::from(Shape{4, 1}, {0, 10, 1, 11}), {.clusters = 2, .n_init = 3});
  CHECK(h.labels[0] == h.labels[2]);
  CHECK(h.labels[1] == h.labels[3]);
  CHECK(h.labels[0] != h.labels[1]);
  CHECK(h.centers[h.labels[0]] == doctest::Approx(0.5));
  CHECK(h.centers[h.labels[1]] == doctest::Approx(10.5));
  CHECK(h.inertia == doctest::Approx(1.0));
  for (double d : h.distance) CHECK(d == doctest::Approx(0.5));

  // Four well-separated Gaussian groups of unequal sizes, interleaved.
  const int K = 4, D = 5;
  const int counts[K] = {40, 25, 60, 15};
  std::vector<int> truth;
  for (int c = 0; c < K; ++c)
    for (int i = 0; i < counts[c]; ++i) truth.push_back(c);
  std::shuffle(truth.begin(), truth.end(), std::mt19937(3));
  const int N = int(truth.size());
  Tensor X({N, D});
  Rng rng(8);
  for (int n = 0; n < N; ++n)
    for (int d = 0; d < D; ++d) X[size_t(n) * D + d] = 20.f * float((truth[n] >> (d % 2)) & 1) + 7.f * float(truth[n] == d) + 0.5f * rng.normal();
  KMeansOptions o;
  o.clusters = K;
  o.seed = 11;
  const KMeansResult r = kmeans(X, o);
  std::vector<int> map(K, -1);  // planted group -> found cluster, one to one
  for (int n = 0; n < N; ++n) {
    if (map[truth[n]] < 0) map[truth[n]] = r.labels[n];
    CHECK(r.labels[n] == map[truth[n]]);
  }
  std::set<int> distinct(map.begin(), map.end());
  CHECK(distinct.size() == size_t(K));
  for (int c = 0; c < K; ++c)  // the centre is the group's mean; distances are Euclidean to it
    for (int d = 0; d < D; ++d) {
      double m = 0;
      for (int n = 0; n < N; ++n) m += truth[n] == c ? X[size_t(n) * D + d] : 0.0;
      CHECK(r.centers[size_t(map[c]) * D + d] == doctest::Approx(m / counts[c]).epsilon(1e-5));
    }
  double dist = 0;
  for (int d = 0; d < D; ++d) dist += std::pow(X[d] - r.centers[size_t(r.labels[0]) * D + d], 2);
  CHECK(r.distance[0] == doctest::Approx(std::sqrt(dist)).epsilon(1e-5));

  const KMeansResult again = kmeans(X, o);
  CHECK(again.labels == r.labels);
  CHECK(std::equal(again.centers.data(), again.centers.data() + again.centers.size(), r.centers.data()));
  set_threads(1);
  const KMeansResult one = kmeans(X, o);
  set_threads(0);
  CHECK(one.labels == r.labels);
  CHECK(one.inertia == r.inertia);

  CHECK(throws_with([&] { kmeans(X.slice(0, 3).clone(), o); }, "3 rows for 4 clusters"));
  Tensor bad = X.clone();
  bad[7] = NAN;
  CHECK(throws_with([&] { kmeans(bad, o); }, "not finite at row 1"));
}

TEST_CASE("ace: a patch holds its segment's pixels and the fill elsewhere, resized with PIL's bicubic kernel") {
  // A box the size of the output: no resampling, so the patch is the image inside the mask, fill outside.
  const Tensor img = Tensor::from(Shape{2, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18});
  const uint8_t L[9] = {1, 0, 0, 1, 0, 0, 1, 1, 1};  // an L spanning the whole image
  std::vector<float> out(18);
  patch_from_mask(img.data(), 2, 3, 3, L, 0.5f, 3, 3, out.data());
  for (int c = 0; c < 2; ++c)
    for (int p = 0; p < 9; ++p) CHECK(out[c * 9 + p] == (L[p] ? img[c * 9 + p] : 0.5f));
  // The box of a mask in a corner, [rows 1..2, col 2], upsampled to 4x4: a 2x1 column. Across, every
  // tap reads the one column (weights renormalized); down, PIL's kernel on the ramp (0, 1) gives at
  // centres 0.25, 0.75 the weights cubic(0.25) = 0.8671875, cubic(1.25) = -0.0703125 and cubic(-0.25),
  // cubic(0.75) = 0.2265625: (-0.0703125/0.796875 -> clamped 0, 0.2265625/1.09375, mirrored).
  const Tensor ramp = Tensor::from(Shape{1, 3, 3}, {9, 9, 9, 9, 9, 0, 9, 9, 1});
  const uint8_t corner[9] = {0, 0, 0, 0, 0, 1, 0, 0, 1};
  std::vector<float> up(16);
  patch_from_mask(ramp.data(), 1, 3, 3, corner, 0.5f, 4, 4, up.data());
  const double expect[4] = {0, 0.2265625 / 1.09375, 1 - 0.2265625 / 1.09375, 1};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) CHECK(up[y * 4 + x] == doctest::Approx(expect[y]).epsilon(1e-6));
  const uint8_t none[9] = {};
  CHECK(throws_with([&] { patch_from_mask(ramp.data(), 1, 3, 3, none, 0.5f, 4, 4, up.data()); }, "empty"));

  // extract_patches: two flat halves give two segments; a second run at the same resolution only
  // duplicates them (Jaccard 1 > 0.5) unless max_jaccard allows it; min_area drops both.
  Tensor halves(Shape{2, 1, 8, 8});
  for (int i = 0; i < 2; ++i)
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) halves.at(i, 0, y, x) = x < 4 ? 0.1f * i : 1.f;
  PatchOptions po;
  po.n_segments = {2};
  Patches p = extract_patches(halves, po);
  REQUIRE(p.x.batch() == 4);
  CHECK(p.image == std::vector<int>{0, 0, 1, 1});
  for (int k = 0; k < 4; ++k) {
    const uint8_t* m = p.masks.data() + k * 64;
    const bool left = m[0] == 1;
    for (int q = 0; q < 64; ++q) CHECK(m[q] == ((q % 8 < 4) == left));
    const float v = left ? 0.1f * p.image[k] : 1.f;  // the half's box is all segment: the patch is its value
    for (int q = 0; q < 64; ++q) CHECK(p.x[size_t(k) * 64 + q] == doctest::Approx(v));
  }
  po.n_segments = {2, 2};
  CHECK(extract_patches(halves, po).x.batch() == 4);
  po.max_jaccard = 1;
  CHECK(extract_patches(halves, po).x.batch() == 8);
  po.min_area = 0.5;
  CHECK(extract_patches(halves, po).x.batch() == 0);
}

TEST_CASE("ace: the cluster filter follows ace.py's three rules and min_imgs") {
  CHECK(keep_cluster(30, 16, 100, 20));        // highly common: images > size/2
  CHECK_FALSE(keep_cluster(30, 16, 100, 30));  // size must exceed min_imgs
  CHECK_FALSE(keep_cluster(30, 15, 100, 20));  // 15 is not > 15; 15 > 7.5 but not > 25 (N/4)
  CHECK(keep_cluster(100, 30, 100, 20));       // mildly common (> 25) and populated (> N/4 = 25)
  CHECK_FALSE(keep_cluster(100, 25, 100, 20));
  CHECK(keep_cluster(100, 20, 30, 20));        // in most images: > size/10 and > N/2 = 15
  CHECK_FALSE(keep_cluster(100, 10, 19, 20));  // 10 > 9.5 but not > size/10
}

namespace {

// Images [1,16,16]: noise in [0, 0.3]; class 1 also holds a 5x5 bright square (1.0) at a random place.
struct SquareImages {
  Tensor x;
  std::vector<std::vector<uint8_t>> square;  // per image, H*W: the planted square's pixels
};

SquareImages square_images(int n, bool with_square, uint64_t seed) {
  SquareImages s;
  s.x = Tensor(Shape{n, 1, 16, 16});
  Rng rng(seed);
  for (int i = 0; i < n; ++i) {
    float* p = s.x.data() + size_t(i) * 256;
    for (int j = 0; j < 256; ++j) p[j] = 0.3f * rng.uniform();
    std::vector<uint8_t> m(256, 0);
    const int oy = 1 + int(rng.below(10)), ox = 1 + int(rng.below(10));
    if (with_square)
      for (int y = oy; y < oy + 5; ++y)
        for (int x = ox; x < ox + 5; ++x) p[y * 16 + x] = 1.f, m[y * 16 + x] = 1;
    s.square.push_back(m);
  }
  return s;
}

// Hand-set: relu1 channel 0 fires only on bright 3x3 neighbourhoods (mean > 0.7: the square, never
// noise or the 117/255 fill), channel 1 on any brightness; logit 1 = 100 x channel 0's mean, logit 0
// its negative. So the class rests only on the square.
Graph square_model() {
  Graph g = arch("input(1,16,16) conv(2,k=3,p=1) relu gap dense(2)", 1);
  auto params = g.named_params();
  for (auto& [name, p] : params) {
    Tensor& v = p->value;
    if (name == "conv1.weight") std::fill(v.data(), v.data() + v.size(), 1.f / 9);
    if (name == "conv1.bias") v[0] = -0.7f, v[1] = 0.f;
    if (name == "dense1.weight") v[0] = -100, v[1] = 0, v[2] = 100, v[3] = 0;  // [2 out, 2 in]
    if (name == "dense1.bias") v[0] = v[1] = 0;
  }
  return g;
}

const Params kSmallAce = {{"n_segments", "8,16"}, {"n_clusters", "4"}, {"n_init", "3"}, {"min_imgs", "5"},
                          {"max_imgs", "20"},     {"runs", "6"},        {"random_size", "20"}};

}  // namespace

TEST_CASE("ace: on images whose class rests on a planted square, the square's concept is found, high and significant; "
          "background concepts are not") {
  Graph g = square_model();
  const SquareImages cls = square_images(24, true, 1), scored = square_images(20, true, 2);
  const Tensor z = g.forward(cls.x).clone();  // the model does rest on the square
  for (int i = 0; i < 24; ++i) REQUIRE(z[size_t(i) * 2 + 1] > 0.5f);
  const Tensor z0 = g.forward(square_images(10, false, 4).x).clone();
  for (size_t i = 0; i < z0.size(); ++i) REQUIRE(z0[i] == 0.f);
  AceRequest q;
  q.images = cls.x;
  q.inputs = scored.x;
  q.random_pool = square_images(200, false, 3).x;  // random images: other classes' (no square)
  q.target = Target({1});
  q.layer = g.at("relu1");
  const AceResult r = ace(g, q, kSmallAce);
  MESSAGE(r.patches.x.batch() << " patches, " << r.concepts.size() << " concepts");
  REQUIRE(r.concepts.size() >= 2);
  // Per concept: the fraction of its examples whose segment lies mostly on the planted square.
  auto on_square = [&](const AceConcept& c) {
    int hits = 0;
    for (int p : c.members) {
      const uint8_t* m = r.patches.masks.data() + size_t(p) * 256;
      const std::vector<uint8_t>& sq = cls.square[r.patches.image[p]];
      int in = 0, all = 0;
      for (int j = 0; j < 256; ++j) in += m[j] && sq[j], all += m[j];
      hits += 2 * in > all;
    }
    return double(hits) / double(c.members.size());
  };
  const AceConcept& top = r.concepts[0];  // sorted by TCAV score
  INFO("top " << top.name << " size " << top.size << " images " << top.images << " TCAV " << mean(top.scores.sign_count)
              << " p " << top.scores.sign_test.p);
  CHECK(on_square(top) > 0.9);
  CHECK(mean(top.scores.sign_count) > 0.9);
  CHECK(top.scores.significant);
  CHECK(top.images > 12);
  int backgrounds = 0;
  for (const AceConcept& c : r.concepts) {
    INFO(c.name << " on square " << on_square(c) << " TCAV " << mean(c.scores.sign_count) << " p " << c.scores.sign_test.p);
    CHECK(c.members.size() <= 20u);
    for (size_t i = 1; i < c.members.size(); ++i)  // nearest the centre first
      CHECK(r.clusters.distance[c.members[i - 1]] <= r.clusters.distance[c.members[i]]);
    if (on_square(c) == 0) {
      ++backgrounds;
      CHECK_FALSE(c.scores.significant);
      CHECK(mean(c.scores.sign_count) < 0.5);
    }
  }
  CHECK(backgrounds >= 1);
  CHECK(r.random.sign_count.size() == 6u);
  CHECK(top.scores.cavs.shape() == Shape{6, int(g.shape(q.layer).numel())});

  // Determinism per seed, at any thread count.
  set_threads(1);
  const AceResult again = ace(g, q, kSmallAce);
  set_threads(0);
  REQUIRE(again.concepts.size() == r.concepts.size());
  CHECK(again.clusters.labels == r.clusters.labels);
  for (size_t i = 0; i < r.concepts.size(); ++i) {
    CHECK(again.concepts[i].members == r.concepts[i].members);
    CHECK(again.concepts[i].scores.sign_count == r.concepts[i].scores.sign_count);
  }
}

TEST_CASE("ace: the registry, its parameters (TCAV's passed on) and every refusal") {
  CHECK(methods_of(Kind::ace).size() == 1);
  const MethodInfo& info = method_info("ace");
  auto default_of = [&](const std::string& k) {
    for (const ParamInfo& p : info.params)
      if (p.name == k) return p.default_value;
    return std::string("undeclared");
  };
  CHECK(default_of("n_segments") == "15,50,80");  // ace.py's defaults
  CHECK(default_of("n_clusters") == "25");
  CHECK(default_of("runs") == "20");
  CHECK(default_of("p_threshold") == "0.01");
  CHECK(default_of("classifier") == "svm");  // tcav's keys are declared here too
  CHECK(explain::list_text(methods_of(Kind::ace)).find("ace.py") != std::string::npos);
  CHECK_NOTHROW(validate_params("ace", {}));

  Graph g = square_model();
  AceRequest q;
  q.images = square_images(6, true, 1).x;
  q.inputs = square_images(4, true, 2).x;
  q.random_pool = square_images(30, false, 3).x;
  q.target = Target({1});
  q.layer = g.at("relu1");
  const Params small = {{"n_segments", "6"}, {"n_clusters", "2"}, {"n_init", "1"}, {"min_imgs", "1"}, {"runs", "2"},
                        {"random_size", "5"}};
  CHECK_NOTHROW(ace(g, q, small));  // reads exactly its declared keys (done() would throw otherwise)
  auto with = [&](const std::string& k, const std::string& v) {
    Params p = small;
    p[k] = v;
    return p;
  };
  CHECK(throws_with([&] { ace(g, q, with("nosuch", "1")); }, "unknown parameter 'nosuch'"));
  CHECK(throws_with([&] { ace(g, q, with("n_segments", "1")); }, "n_segments=1: '1' is not a whole number in 2..1000"));
  CHECK(throws_with([&] { ace(g, q, with("n_segments", "5,x")); }, "'x'"));
  CHECK(throws_with([&] { ace(g, q, with("n_segments", "2,2,2,2,2,2,2,2,2")); }, "at most 8"));
  CHECK(throws_with([&] { ace(g, q, with("n_clusters", "1")); }, "n_clusters=1 outside [2, 500]"));
  CHECK(throws_with([&] { ace(g, q, with("n_clusters", "400")); }, "patches for n_clusters=400"));
  CHECK(throws_with([&] { ace(g, q, with("test", "welch")); }, "known: paired, independent"));
  CHECK(throws_with([&] { ace(g, q, with("channel_mean", "maybe")); }, "channel_mean=maybe"));
  CHECK(throws_with([&] { ace(g, q, with("runs", "1")); }, "runs=1 outside [2, 500]"));
  // A one-patch cluster cannot be a concept (TCAV needs 2 examples); 0 let one through.
  CHECK(throws_with([&] { ace(g, q, with("min_imgs", "0")); }, "min_imgs=0 outside [1, 10000]"));
  CHECK(throws_with([&] { ace(g, q, with("random_size", "50")); }, "random pool has 30 examples"));
  CHECK(throws_with([&] { validate_params("ace", {{"fill", "2"}}); }, "fill=2"));
  AceRequest bad = q;
  bad.images = q.images.clone();
  bad.images[3] = NAN;
  CHECK(throws_with([&] { ace(g, bad, small); }, "ace images: not finite"));
  bad = q;
  bad.images = Tensor(Shape{2, 1, 9, 9});
  CHECK_THROWS_AS(ace(g, bad, small), ShapeError);
  bad = q;
  bad.layer = g.output();
  CHECK(throws_with([&] { ace(g, bad, small); }, "not below the target"));
  // No cluster passing the filter is an answer, not an error.
  const AceResult none = ace(g, q, with("min_imgs", "10000"));
  CHECK(none.concepts.empty());
  CHECK(none.patches.x.batch() > 0);
}

TEST_CASE("cli: glassbox ace writes its outputs; bad requests name the flag and keep earlier outputs") {
  const std::string bin = glassbox_binary();
  if (bin.empty()) {
    MESSAGE("skipped: tools/glassbox is not built beside the tests");
    return;
  }
  Scratch s;
  const std::string base = "ace --model lenet5 --layer relu2 --class 3 --images pattern:blobs --inputs pattern:blobs "
                           "--random pattern:noise --n 8 --max-inputs 6 --param n_segments=8,15 --param n_clusters=4 "
                           "--param n_init=2 --param min_imgs=2 --param runs=2 --param random_size=6 ";
  Run r = glassbox(s, bin, base + "--out " + (s / "out"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const nlohmann::json j = nlohmann::json::parse(slurp(s / "out/summary.json"));
  CHECK(j["images"]["n"] == 8);
  CHECK(j["cluster_sizes"].size() == 4);
  int total = 0;
  for (const auto& n : j["cluster_sizes"]) total += n.get<int>();
  CHECK(total == j["patches"].get<int>());
  REQUIRE(j["concepts"].size() >= 1);  // 8 images: at least one cluster spans more than 2 of them
  for (const auto& c : j["concepts"]) {
    const std::string name = c["name"];
    CHECK(fs::exists(s / ("out/" + name + ".png")));
    CHECK(read_npy_f32(s / ("out/cav_" + name + "_relu2.npy")).shape() == Shape{2, 16, 10, 10});
    CHECK(c["runs"]["sign_count"].size() == 2);
    CHECK(c.contains("p_value"));
    CHECK(c["images_spanned"].get<int>() <= 8);
  }
  CHECK(fs::exists(s / "out/tcav.png"));
  r = glassbox(s, bin, "ace --list");
  CHECK(r.status == 0);
  CHECK(contains(r.out, "--param n_segments=15,50,80"));

  const std::string before = slurp(s / "out/summary.json"), out = " --out " + (s / "out");
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {replaced(base, "n_clusters=4", "n_clusters=1") + out, "n_clusters=1 outside [2, 500]"},
      {base + "--param n_segments=0" + out, "n_segments=0"},
      {base + "--param colour=red" + out, "unknown parameter 'colour'"},
      {"ace --model lenet5 --layer relu2 --class 3 --images npy:" + (s / "nosuch.npy") + " --inputs pattern:blobs "
       "--random pattern:noise" + out, "nosuch.npy"},
      {"ace --model lenet5 --layer relu9 --class 3" + out, "--layer 'relu9'"},
      {"ace --model lenet5 --layer dense3 --class 3" + out, "the logits themselves"},
      {"ace --model lenet5 --layer relu2 --class 12" + out, "--class 12"},
      {"ace --model lenet5 --layer relu2 --class 3" + out, "--images, --inputs and --random are required"},
      {"ace --model lenet5 --class 3" + out, "--layer is required"},
  };
  for (const Case& c : cases) {
    INFO("glassbox " << c.args);
    r = glassbox(s, bin, c.args);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, c.expect), r.err);
  }
  CHECK(slurp(s / "out/summary.json") == before);
}
