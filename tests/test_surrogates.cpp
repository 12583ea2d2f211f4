// The surrogates family (explain/surrogates) beyond its layers (test_surrogate_layers.cpp):
// pruning (masking a filter equals deleting it, with and without batch normalization; the reported
// drops equal evaluated ones; a saved pruned model keeps them); importance (Garson, signed Garson,
// Olden, PaD and MIV on a hand-made 2-input network with known answers, the multi-layer path sums
// against brute force, Olden's randomization test counted by hand and on a planted feature, the
// additive model's shape functions against the model's own responses); rules (CART's split on a
// planted threshold, fidelity counted by hand from the JSON tree, Anchors on models deciding by one
// planted feature or superpixel, KL bounds); every registered method reads exactly its declared
// parameters, and unknown names are errors listing the known ones.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

#include "engine/architecture.h"
#include "engine/interpretable_layers.h"
#include "engine/layers.h"
#include "engine/model_file.h"
#include "engine/threads.h"
#include "tests/interrupt_checks.h"
#include "explain/surrogates/anchors.h"
#include "explain/surrogates/distill.h"
#include "explain/surrogates/importance.h"
#include "explain/surrogates/pruning.h"
#include "explain/surrogates/rule_tree.h"
#include "explain/surrogates/rules.h"
#include "train/fit.h"
#include "train/presets.h"
#include "tests/surrogate_test_helpers.h"

using namespace gb;
using namespace gb::explain;
using namespace gb::explain::surrogates;

namespace {

void set(Tensor& t, std::vector<float> v) {
  REQUIRE(v.size() == t.size());
  std::copy(v.begin(), v.end(), t.data());
}

Dense& dense(Graph& g, const std::string& name) { return static_cast<Dense&>(g.layer(g.at(name))); }

void check_close(const Tensor& a, const Tensor& b, double tol = 1e-5) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(tol).scale(1.0));
}

}  // namespace

// ---- pruning --------------------------------------------------------------------------------------

TEST_CASE("pruning: masking a filter equals deleting it (conv, conv + batchnorm, dense)") {
  const Tensor x = noise({4, 1, 6, 6}, 5);
  SUBCASE("conv") {
    Graph g = arch("input(1,6,6) conv(3,k=3,name=c1) relu maxpool(2) conv(2,k=2,name=c2) relu flatten dense(3)");
    randomize(g, 7, 0.5f);
    Graph small = arch("input(1,6,6) conv(2,k=3,name=c1) relu maxpool(2) conv(2,k=2,name=c2) relu flatten dense(3)");
    auto &c1 = static_cast<Conv2d&>(g.layer(0)), &c2 = static_cast<Conv2d&>(g.layer(3));
    auto &s1 = static_cast<Conv2d&>(small.layer(0)), &s2 = static_cast<Conv2d&>(small.layer(3));
    const int kept[2] = {0, 2};  // filter 1 deleted
    for (int o = 0; o < 2; ++o) {
      std::copy_n(c1.weight.value.data() + kept[o] * 9, 9, s1.weight.value.data() + o * 9);
      s1.bias.value[o] = c1.bias.value[kept[o]];
      for (int out = 0; out < 2; ++out)  // the next conv loses its input channel 1
        std::copy_n(c2.weight.value.data() + (out * 3 + kept[o]) * 4, 4, s2.weight.value.data() + (out * 2 + o) * 4);
    }
    s2.bias.value.copy_from(c2.bias.value);
    static_cast<Dense&>(small.layer(6)).weight.value.copy_from(static_cast<Dense&>(g.layer(6)).weight.value);
    static_cast<Dense&>(small.layer(6)).bias.value.copy_from(static_cast<Dense&>(g.layer(6)).bias.value);
    const Tensor before = g.forward(x).clone();
    remove_filter(g, {0, 1});
    const Tensor masked = g.forward(x).clone();
    check_close(masked, small.forward(x));
    double moved = 0;
    for (size_t i = 0; i < masked.size(); ++i) moved += std::fabs(masked[i] - before[i]);
    CHECK(moved > 1e-3);  // the filter mattered
  }
  SUBCASE("conv + batchnorm: the channel after the normalization is 0") {
    Graph g = arch("input(1,6,6) conv(3,k=3,bias=false) batchnorm relu gap dense(2)");
    randomize(g, 9, 0.5f);
    auto& bn = static_cast<BatchNorm2d&>(g.layer(1));
    for (int c = 0; c < 3; ++c) bn.running_var.value[c] = 0.5f + c, bn.bias.value[c] = 0.3f;  // a non-zero shift
    Graph small = arch("input(1,6,6) conv(2,k=3,bias=false) batchnorm relu gap dense(2)");
    auto &c = static_cast<Conv2d&>(g.layer(0)), &sc = static_cast<Conv2d&>(small.layer(0));
    auto& sbn = static_cast<BatchNorm2d&>(small.layer(1));
    auto &d = static_cast<Dense&>(g.layer(4)), &sd = static_cast<Dense&>(small.layer(4));
    const int kept[2] = {1, 2};  // filter 0 deleted
    for (int o = 0; o < 2; ++o) {
      std::copy_n(c.weight.value.data() + kept[o] * 9, 9, sc.weight.value.data() + o * 9);
      for (Param* p : {&bn.weight, &bn.bias, &bn.running_mean, &bn.running_var})
        for (Param* q : {&sbn.weight, &sbn.bias, &sbn.running_mean, &sbn.running_var})
          if (p->name == q->name) q->value[o] = p->value[kept[o]];
      for (int k = 0; k < 2; ++k) sd.weight.value[k * 2 + o] = d.weight.value[k * 3 + kept[o]];
    }
    sd.bias.value.copy_from(d.bias.value);
    remove_filter(g, {0, 0});
    check_close(g.forward(x), small.forward(x));
  }
  SUBCASE("dense unit") {
    Graph g = arch("input(5) dense(4) relu dense(3)"), small = arch("input(5) dense(3) relu dense(3)");
    randomize(g, 11, 0.7f);
    auto &a = static_cast<Dense&>(g.layer(0)), &b = static_cast<Dense&>(g.layer(2));
    auto &sa = static_cast<Dense&>(small.layer(0)), &sb = static_cast<Dense&>(small.layer(2));
    const int kept[3] = {0, 1, 3};
    for (int o = 0; o < 3; ++o) {
      std::copy_n(a.weight.value.data() + kept[o] * 5, 5, sa.weight.value.data() + o * 5);
      sa.bias.value[o] = a.bias.value[kept[o]];
      for (int k = 0; k < 3; ++k) sb.weight.value[k * 3 + o] = b.weight.value[k * 4 + kept[o]];
    }
    sb.bias.value.copy_from(b.bias.value);
    remove_filter(g, {0, 2});
    const Tensor xs = noise({6, 5}, 13);
    check_close(g.forward(xs), small.forward(xs));
  }
}

TEST_CASE("pruning: the reported drops equal evaluated ones, and the saved model keeps them") {
  Graph g = arch("input(1,8,8) conv(6,k=3,p=1) relu maxpool(2) conv(8,k=3,p=1) relu gap dense(4)", 17);
  randomize(g, 19, 0.6f);
  LabelledSet val{noise({300, 1, 8, 8}, 23), {}}, test{noise({200, 1, 8, 8}, 29), {}};
  // Labels: the unpruned model's predictions with 15% replaced, so accuracy starts at 85%.
  Rng r(31);
  for (LabelledSet* s : {&val, &test}) {
    s->y = predict(g, s->x);
    for (int& y : s->y)
      if (r.uniform() < 0.15f) y = int(r.below(4));
  }
  const Graph original = clone(g);
  PruneOptions o;
  o.max_drop = 0.03;
  o.curve = &test;
  for (int rerank : {0, 1}) {
    CAPTURE(rerank);
    Graph h = clone(original);
    o.rerank = rerank;
    const PruneResult res = prune_filters(h, val, o);
    REQUIRE(res.filters.size() == 14);
    REQUIRE(!res.steps.empty());
    CHECK(res.base_accuracy == doctest::Approx(accuracy(const_cast<Graph&>(original), val)));
    // Each filter's drop is the accuracy lost when it alone is removed from the unpruned model.
    for (size_t c = 0; c < res.filters.size(); c += 3) {
      Graph one = clone(original);
      remove_filter(one, res.filters[c]);
      CHECK(res.drop[c] == doctest::Approx(res.base_accuracy - accuracy(one, val)));
    }
    // The pruned model's accuracy is the last step's, within the target; the curve's too.
    CHECK(accuracy(h, val) == doctest::Approx(res.final_accuracy()));
    CHECK(accuracy(h, test) == doctest::Approx(res.steps.back().curve_accuracy));
    CHECK(res.base_accuracy - res.final_accuracy() <= o.max_drop + 1e-12);
    std::set<std::pair<int, int>> seen;
    for (const PruneStep& s : res.steps) CHECK(seen.insert({s.filter.node, s.filter.index}).second);
    // The next filter would have gone past the target.
    if (res.stopped_at.node >= 0) {
      Graph more = clone(h);
      remove_filter(more, res.stopped_at);
      CHECK(accuracy(more, val) == doctest::Approx(res.stopped_accuracy));
      CHECK(res.base_accuracy - res.stopped_accuracy > o.max_drop);
    }
    // Saved and loaded, the pruned model gives the same accuracy.
    const std::string path = (std::filesystem::temp_directory_path() / "surrogates_pruned_test.safetensors").string();
    save_model(path, h);
    Model back = load_model(path);
    CHECK(accuracy(back.graph, val) == doctest::Approx(res.final_accuracy()));
    std::filesystem::remove(path);
  }
  CHECK_THROWS_WITH_AS(prunable_layers(g, "conv1,nope"), doctest::Contains("no layer named 'nope'"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(prunable_layers(g, "relu1"), doctest::Contains("has no filters"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(prunable_layers(g, "dense1"), doctest::Contains("has no filters"), std::invalid_argument);
}

// ---- importance -----------------------------------------------------------------------------------

namespace {

// x → relu(W1 x + b1) → W2 h + b2 with W1 = [[1, 2], [3, -1]], W2 = [[2, -1]], b1 = 10 (every
// hidden unit active on the data below): the logit is −x0 + 5 x1 + const there.
Graph hand_network() {
  Graph g = arch("input(2) dense(2,name=h) relu dense(1,name=o)");
  set(dense(g, "h").weight.value, {1, 2, 3, -1});
  set(dense(g, "h").bias.value, {10, 10});
  set(dense(g, "o").weight.value, {2, -1});
  set(dense(g, "o").bias.value, {0.5f});
  return g;
}

std::vector<double> row(const Tensor& t, int r = 0) {
  const size_t n = t.rank() == 1 ? t.size() : t.sample_size();
  return {t.data() + r * n, t.data() + (r + 1) * n};
}

void check_values(const Tensor& t, const std::vector<double>& want) {
  const std::vector<double> got = row(t);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-5));
}

}  // namespace

TEST_CASE("importance: Garson, signed Garson, Olden, PaD and MIV on a hand-made network") {
  Graph g = hand_network();
  ImportanceRequest q;
  q.x = Tensor::from({2, 2}, {1, 2, 3, 4});
  // Garson: hidden unit shares |W1| / row sums = [1/3, 2/3], [3/4, 1/4]; weighted by |W2| = [2, 1]:
  // 2/3 + 3/4 = 17/12 and 4/3 + 1/4 = 19/12, normalized.
  check_values(importance(g, q, "garson").per_class, {17.0 / 36, 19.0 / 36});
  // Signed: [1/3, 2/3] and [3/4, -1/4] weighted by [2, -1]: -1/12 and 19/12, over their |sum| 20/12.
  check_values(importance(g, q, "garson-signed").per_class, {-1.0 / 20, 19.0 / 20});
  // Olden: W2 W1.
  const Importance olden = importance(g, q, "olden");
  check_values(olden.per_class, {-1, 5});
  check_values(olden.overall, {1, 5});
  // PaD on the logit: the derivative is (-1, 5) everywhere; squares as shares.
  const Importance pad = importance(g, q, "dimopoulos", {{"output", "logit"}});
  check_values(pad.per_class, {1.0 / 26, 25.0 / 26});
  check_values(pad.extra.at("mean_derivative"), {-1, 5});
  // MIV on the logit: raw x_j·(1 ± 0.1) changes the logit by ±0.1·CW_j·(x_j + shift_j): the mean
  // is 0.2·CW_j·mean(x_j + shift_j), means 2 and 3 plus shifts 0.5 and -1.
  q.raw_shift = {0.5f, -1.f};
  check_values(importance(g, q, "miv", {{"output", "logit"}}).per_class, {0.2 * -1 * 2.5, 0.2 * 5 * 2.0});
  CHECK_THROWS_WITH_AS(importance(g, q, "miv", {{"delta", "2"}}), doctest::Contains("delta=2 outside"), std::out_of_range);
}

namespace {

// The outputs (logits, or softmax probabilities) of a perceptron of dense, tanh, sigmoid and relu
// layers at one input, in double from its weights: the reference of the curvature test.
std::vector<double> mlp_outputs(Graph& g, std::vector<double> x, bool prob) {
  for (int i = 0; i < g.size(); ++i) {
    Layer& L = g.layer(i);
    if (auto* d = dynamic_cast<Dense*>(&L)) {
      std::vector<double> y(d->out_features);
      for (int o = 0; o < d->out_features; ++o) {
        y[o] = d->bias.value[o];
        for (size_t j = 0; j < x.size(); ++j) y[o] += double(d->weight.value[o * x.size() + j]) * x[j];
      }
      x = y;
    } else {
      for (double& v : x)
        v = L.kind() == "tanh" ? std::tanh(v) : L.kind() == "sigmoid" ? 1 / (1 + std::exp(-v)) : std::max(v, 0.0);
      REQUIRE((L.kind() == "tanh" || L.kind() == "sigmoid" || L.kind() == "relu"));
    }
  }
  if (!prob) return x;
  double m = *std::max_element(x.begin(), x.end()), total = 0;
  for (double& v : x) total += (v = std::exp(v - m));
  for (double& v : x) v /= total;
  return x;
}

// Per class k and feature j, over the samples of x: the mean and the sum of squares of the central
// second difference (y_k(x + h e_j) − 2 y_k(x) + y_k(x − h e_j)) / h², in double.
void second_differences(Graph& g, const Tensor& x, bool prob, double h, std::vector<double>& mean,
                        std::vector<double>& ssd) {
  const int N = x.batch(), F = int(x.sample_size()), K = g.classes();
  mean.assign(size_t(K) * F, 0.0), ssd.assign(size_t(K) * F, 0.0);
  for (int n = 0; n < N; ++n) {
    const std::vector<double> x0(x.data() + size_t(n) * F, x.data() + size_t(n + 1) * F);
    const std::vector<double> y0 = mlp_outputs(g, x0, prob);
    for (int j = 0; j < F; ++j) {
      std::vector<double> up = x0, down = x0;
      up[j] += h, down[j] -= h;
      const std::vector<double> yu = mlp_outputs(g, up, prob), yd = mlp_outputs(g, down, prob);
      for (int k = 0; k < K; ++k) {
        const double d2 = (yu[k] - 2 * y0[k] + yd[k]) / (h * h);
        mean[size_t(k) * F + j] += d2 / N;
        ssd[size_t(k) * F + j] += d2 * d2;
      }
    }
  }
}

}  // namespace

TEST_CASE("importance: PaD's curvature term equals central second differences; on a ReLU MLP's logits it is 0") {
  ImportanceRequest q;
  q.x = noise({5, 3}, 211);
  std::vector<double> mean, ssd;
  // A tanh/sigmoid MLP: exact second derivatives of the logits and of the softmax probabilities.
  Graph smooth = arch("input(3) dense(5) tanh dense(4) sigmoid dense(3)", 13);
  randomize(smooth, 17, 1.5f);
  for (const bool prob : {false, true}) {
    CAPTURE(prob);
    const Importance r = importance(smooth, q, "dimopoulos", {{"output", prob ? "prob" : "logit"}});
    REQUIRE(r.extra.count("mean_second_derivative"));
    CHECK(r.info.at("curvature") == 1);
    second_differences(smooth, q.x, prob, 1e-4, mean, ssd);
    const Tensor& m2 = r.extra.at("mean_second_derivative");
    double largest = 0;
    for (size_t i = 0; i < mean.size(); ++i) {
      CHECK(m2[i] == doctest::Approx(mean[i]).epsilon(1e-3).scale(1));
      largest = std::max(largest, std::fabs(mean[i]));
    }
    CHECK(largest > 0.05);  // a curved model: the comparison means something
    double total[3] = {0, 0, 0};
    for (int k = 0; k < 3; ++k)
      for (int j = 0; j < 3; ++j) total[k] += ssd[size_t(k) * 3 + j];
    const Tensor& shares = r.extra.at("curvature_shares");
    for (int k = 0; k < 3; ++k)
      for (int j = 0; j < 3; ++j) CHECK(shares[size_t(k) * 3 + j] == doctest::Approx(ssd[size_t(k) * 3 + j] / total[k]).epsilon(1e-3).scale(1));
    // The first-order PaD is unchanged by the curvature term.
    const Importance off = importance(smooth, q, "dimopoulos", {{"output", prob ? "prob" : "logit"}, {"curvature", "off"}});
    check_close(off.per_class, r.per_class, 1e-6);
    CHECK(off.info.at("curvature") == 0);
    CHECK(!off.extra.count("mean_second_derivative"));
  }
  // A ReLU MLP: its logits are piecewise linear, so their second derivative is exactly 0; the
  // softmax probabilities are still curved (the softmax's own second derivative), as differences say.
  Graph relu = arch("input(3) dense(6) relu dense(3)", 19);
  randomize(relu, 23, 1.f);
  const Importance logit = importance(relu, q, "dimopoulos", {{"output", "logit"}, {"curvature", "on"}});
  const Tensor& z2 = logit.extra.at("mean_second_derivative");
  const Tensor& zs = logit.extra.at("curvature_shares");
  for (size_t i = 0; i < z2.size(); ++i) {
    CHECK(z2[i] == 0.f);
    CHECK(zs[i] == 0.f);
  }
  const Importance prob = importance(relu, q, "dimopoulos", {{"curvature", "on"}});
  second_differences(relu, q.x, true, 1e-4, mean, ssd);
  double largest = 0;
  for (size_t i = 0; i < mean.size(); ++i) {
    CHECK(prob.extra.at("mean_second_derivative")[i] == doctest::Approx(mean[i]).epsilon(1e-3).scale(1));
    largest = std::max(largest, std::fabs(mean[i]));
  }
  CHECK(largest > 0.01);
  CHECK(prob.notes.empty());
  // Inputs so large that the softmax saturates in float32: every derivative of p is 0, and the
  // shares (0/0, left 0) are said to be no ranking; the logits' derivatives are not 0.
  ImportanceRequest huge;
  huge.x = Tensor(Shape{4, 3}, 1e4f);
  const Importance flat = importance(relu, huge, "dimopoulos", {{"output", "prob"}, {"curvature", "off"}});
  REQUIRE(flat.notes.size() == 1);
  CHECK(flat.notes[0].find("outputs have every derivative 0") != std::string::npos);
  CHECK(importance(relu, huge, "dimopoulos", {{"output", "logit"}, {"curvature", "off"}}).notes.empty());
  // curvature=on on a layer without a tangent rule names it; auto leaves the curvature out.
  Graph nam = make_preset("nam", Shape{3}, 2, 5);
  CHECK_THROWS_WITH_AS(importance(nam, q, "dimopoulos", {{"curvature", "on"}}), doctest::Contains("curvature=on"),
                       std::invalid_argument);
  CHECK(importance(nam, q, "dimopoulos").info.at("curvature") == 0);
}

TEST_CASE("importance: with two hidden layers the weights multiply along every path") {
  Graph g = arch("input(2) dense(3,name=a) tanh dense(2,name=b) relu dense(2,name=c)");
  randomize(g, 37, 1.f);
  const Tensor &A = dense(g, "a").weight.value, &B = dense(g, "b").weight.value, &C = dense(g, "c").weight.value;
  auto share = [](const Tensor& W, int rows, int cols, int r, int c, bool absolute) {
    double total = 0;
    for (int j = 0; j < cols; ++j) total += std::fabs(W[r * cols + j]);
    return (absolute ? std::fabs(W[r * cols + c]) : W[r * cols + c]) / total;
    (void)rows;
  };
  ImportanceRequest q;
  const Importance garson = importance(g, q, "garson"), olden = importance(g, q, "olden");
  for (int k = 0; k < 2; ++k) {
    std::vector<double> gar(2, 0.0), cw(2, 0.0);
    for (int j = 0; j < 2; ++j)
      for (int h1 = 0; h1 < 3; ++h1)
        for (int h2 = 0; h2 < 2; ++h2) {  // every path j -> h1 -> h2 -> k
          gar[j] += share(A, 3, 2, h1, j, true) * share(B, 2, 3, h2, h1, true) * std::fabs(C[k * 2 + h2]);
          cw[j] += double(A[h1 * 2 + j]) * B[h2 * 3 + h1] * C[k * 2 + h2];
        }
    for (int j = 0; j < 2; ++j) {
      CHECK(garson.per_class[k * 2 + j] == doctest::Approx(gar[j] / (gar[0] + gar[1])).epsilon(1e-5));
      CHECK(olden.per_class[k * 2 + j] == doctest::Approx(cw[j]).epsilon(1e-5));
    }
  }
  Graph conv = arch("input(1,4,4) conv(2,k=3) relu flatten dense(2)");
  CHECK_THROWS_WITH_AS(importance(conv, q, "garson"), doctest::Contains("layer conv1 is conv"), std::invalid_argument);
}

TEST_CASE("importance: Olden's randomization test counts the null networks as extreme as the model") {
  Graph g = hand_network();  // CW = (-1, 5)
  ImportanceRequest q;
  q.labels = {0, 1, 1, 0, 1, 0, 0, 1};
  int round = 0;
  q.retrain = [&](Graph& fresh, const std::vector<int>& labels, uint64_t) {
    std::vector<int> sorted = labels;  // a shuffle of the labels
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1});
    // Null network r: CW = (0.5·r, 2·r) (one hidden path of weight 1 per input).
    set(dense(fresh, "h").weight.value, {1, 0, 0, 1});
    set(dense(fresh, "o").weight.value, {0.5f * round, 2.f * round});
    ++round;
  };
  const Importance r = importance(g, q, "olden", {{"rounds", "4"}});  // nulls r = 0..3
  // x0: |0|, |0.5|, |1|, |1.5| >= 1 twice -> p = 3/5; x1: 0, 2, 4, 6 >= 5 once -> p = 2/5.
  CHECK(r.p_values[0] == doctest::Approx(3.0 / 5));
  CHECK(r.p_values[1] == doctest::Approx(2.0 / 5));
  // The overall row (mean |CW| over the one class) is the same here.
  CHECK(r.p_values[2] == doctest::Approx(3.0 / 5));
  CHECK(r.extra.at("null").dim(0) == 4);
  ImportanceRequest none;
  CHECK_THROWS_WITH_AS(importance(g, none, "olden", {{"rounds", "3"}}), doctest::Contains("needs the training set"),
                       std::invalid_argument);
}

TEST_CASE("importance: Olden's test separates a planted feature from noise (retrained networks)") {
  // The label is x0 > 0; x1 is noise.
  Dataset d;
  d.x = Tensor({200, 2});
  Rng r(41);
  for (int i = 0; i < 200; ++i) {
    d.x[i * 2] = 2 * r.uniform() - 1, d.x[i * 2 + 1] = 2 * r.uniform() - 1;
    d.y.push_back(d.x[i * 2] > 0);
  }
  d.class_names = {"neg", "pos"};
  auto train = [&](Graph& net, const std::vector<int>& labels, uint64_t seed) {
    FitOptions o;
    o.epochs = 15, o.batch = 20, o.optimizer.lr = 0.02f, o.val_fraction = 0, o.seed = seed;
    o.progress = ProgressStyle::quiet;
    Dataset s = d;
    s.y = labels;
    fit(net, s, o);
  };
  Graph g = arch("input(2) dense(6) tanh dense(2)", 43);
  train(g, d.y, 1);
  ImportanceRequest q;
  q.labels = d.y;
  q.retrain = train;
  const Importance res = importance(g, q, "olden", {{"rounds", "19"}});
  MESSAGE("olden p-values: x0 " << res.p_values[4] << ", x1 " << res.p_values[5]);
  CHECK(res.p_values[4] <= 0.1);  // overall row: 1/20 when no null network reaches it
  CHECK(res.p_values[5] > 0.1);
}

TEST_CASE("importance: an additive model's shape functions are its responses to one feature") {
  Graph g = make_preset("nam", Shape{3}, 2, 5);
  randomize(g, 47, 0.4f);
  ImportanceRequest q;
  q.x = noise({40, 3}, 53);
  const Importance r = importance(g, q, "nam", {{"points", "9"}});
  const Tensor &grid = r.extra.at("grid"), &shape = r.extra.at("shape");
  REQUIRE(grid.shape() == Shape{3, 9});
  REQUIRE(shape.shape() == Shape{3, 9, 2});
  const Tensor ref = q.x.sample(0).clone();
  for (int j = 0; j < 3; ++j) {
    // Moving feature j alone from grid point 0 to p changes logit k by f_jk(p) − f_jk(0).
    Tensor a = ref.clone();
    a[j] = grid[j * 9];
    const Tensor base = g.forward(a).clone();
    for (int p = 1; p < 9; ++p) {
      Tensor b = ref.clone();
      b[j] = grid[j * 9 + p];
      const Tensor out = g.forward(b);
      for (int k = 0; k < 2; ++k)
        CHECK(out[k] - base[k] == doctest::Approx(shape[(j * 9 + p) * 2 + k] - shape[(j * 9) * 2 + k]).epsilon(1e-4));
    }
    // Importance: mean over the data of |f_j(x_j) − its mean|, from the model's responses.
    std::vector<double> resp;
    for (int n = 0; n < 40; ++n) {
      Tensor b = ref.clone();
      b[j] = q.x[n * 3 + j];
      resp.push_back(g.forward(b)[1]);
    }
    const double mean = std::accumulate(resp.begin(), resp.end(), 0.0) / 40;
    double spread = 0;
    for (double v : resp) spread += std::fabs(v - mean) / 40;
    CHECK(r.per_class[1 * 3 + j] == doctest::Approx(spread).epsilon(1e-4));
  }
  Graph mlp = arch("input(3) dense(4) relu dense(2)");
  CHECK_THROWS_WITH_AS(importance(mlp, q, "nam"), doctest::Contains("does not end with groupsum"), std::invalid_argument);
}

// ---- rules ------------------------------------------------------------------------------------------

TEST_CASE("rule tree: a planted threshold, and fidelity counted by hand from the JSON tree") {
  Tensor X({100, 2});
  std::vector<int> y;
  Rng r(59);
  for (int i = 0; i < 100; ++i) {
    X[i * 2] = float(i) / 100, X[i * 2 + 1] = r.uniform();
    y.push_back(X[i * 2] > 0.305f);
  }
  const RuleTree t = fit_tree(X, y, 2, {3, 1});
  REQUIRE(t.nodes.size() == 3);  // one split, two pure leaves
  CHECK(t.nodes[0].feature == 0);
  CHECK(t.nodes[0].threshold == doctest::Approx(0.305).epsilon(1e-6));
  CHECK(t.predict(X) == y);
  CHECK(t.rules({"a", "b"}, {"no", "yes"}) ==
        std::vector<std::string>{"IF a > 0.305 THEN yes (n = 69, 100%)", "IF a <= 0.305 THEN no (n = 31, 100%)"});
  // min_leaf and max_depth hold.
  const RuleTree shallow = fit_tree(X, std::vector<int>(y.rbegin(), y.rend()), 2, {1, 40});
  for (const TreeNode& n : shallow.nodes) {
    CHECK(n.depth <= 1);
    if (n.leaf()) CHECK(std::accumulate(n.counts.begin(), n.counts.end(), 0) >= 40);
  }

  // The rules method on a model: walk the reported tree by hand over the held-out inputs.
  Graph g = arch("input(2) dense(12) tanh dense(3)", 61);
  randomize(g, 62, 1.5f);
  RulesRequest q;
  q.data = noise({400, 2}, 63);
  q.test = noise({300, 2}, 64);
  q.raw_scale = {2.f, 0.5f};  // rules in data units: x·scale + shift
  q.raw_shift = {1.f, -1.f};
  const std::vector<RuleSet> out = rules(g, q, "tree", {{"max_depth", "3"}});
  REQUIRE(out.size() == 1);
  const nlohmann::json& nodes = out[0].details["nodes"];
  const std::vector<int> model = predict(g, q.test);
  int same = 0;
  for (int n = 0; n < 300; ++n) {
    const float raw[2] = {q.test[n * 2] * 2 + 1, q.test[n * 2 + 1] * 0.5f - 1};
    int i = 0;
    while (nodes[i].contains("feature"))
      i = raw[nodes[i]["feature"].get<int>()] <= nodes[i]["threshold"].get<float>() ? nodes[i]["left"].get<int>()
                                                                                     : nodes[i]["right"].get<int>();
    same += nodes[i]["prediction"].get<int>() == model[n];
  }
  CHECK(out[0].details["test_fidelity"].get<double>() == doctest::Approx(same / 300.0));
  CHECK(out[0].details["test_fidelity"].get<double>() > 0.6);
  CHECK(out[0].figure.w > 0);  // two features: the regions are drawn
}

TEST_CASE("rule tree: a fit stops when asked") {
  Tensor X({50, 2});
  std::vector<int> y;
  for (int i = 0; i < 50; ++i) X[i * 2] = float(i), X[i * 2 + 1] = float(i % 7), y.push_back(i % 3);
  check_stops_when_asked([&] { fit_tree(X, y, 3, {4, 1}); });
}

TEST_CASE("rule tree: on hundreds of samples (the counting sort), each split is the brute-force best") {
  // Values on a grid of 0.05 in [-1, 1]: negative values, ties and both zeros; three classes; the
  // last two features copies of the two the labels depend on, so equal splits must go to the lower
  // feature. Four threads
  // (the parallel first pass and the ordered rescan) whatever the machine's cores.
  RestoreThreads guard;
  set_threads(4);
  const int n = 700, F = 6;
  Tensor X({n, F});
  std::vector<int> y(n);
  Rng r(71);
  for (int i = 0; i < n; ++i) {
    for (int f = 0; f < F; ++f) X[i * F + f] = std::round(float(r.uniform() * 2 - 1) * 20) / 20;
    if (i % 7 == 0) X[i * F + 1] = -0.f;
    X[i * F + 4] = X[i * F + 2];
    X[i * F + 5] = X[i * F + 0];
    y[i] = r.uniform() < 0.3 ? ((X[i * F + 2] > 0.2f) + (X[i * F + 0] < -0.4f)) % 3 : int(r.below(3));  // a weak signal
  }
  // Every threshold between two different values of every feature, in feature order, then value
  // order, the first of equal impurities (within 1e-12) kept.
  auto brute = [&](const std::vector<int>& rows, int& feature, float& threshold) {
    double best = INFINITY;
    feature = -1;
    for (int f = 0; f < F; ++f) {
      std::vector<float> v;
      for (int i : rows) v.push_back(X[i * F + f]);
      std::sort(v.begin(), v.end());
      for (size_t k = 0; k + 1 < v.size(); ++k) {
        if (v[k] == v[k + 1]) continue;
        int cl[2][3] = {};
        for (int i : rows) ++cl[X[i * F + f] > v[k]][y[i]];
        double imp = 0;
        for (auto& side : cl) {
          const double m = side[0] + side[1] + side[2];
          if (m > 0) imp += m * (1 - (side[0] * side[0] + side[1] * side[1] + side[2] * side[2]) / (m * m));
        }
        imp /= double(rows.size());
        if (imp < best - 1e-12) best = imp, feature = f, threshold = v[k] + (v[k + 1] - v[k]) / 2;
      }
    }
  };
  const RuleTree t = fit_tree(X, y, 3, {3, 1});
  TreeOptions in_place{3, 1};
  in_place.copy_limit = 0;  // X read in place: the same tree
  const RuleTree u = fit_tree(X, y, 3, in_place);
  REQUIRE(u.nodes.size() == t.nodes.size());
  for (size_t k = 0; k < t.nodes.size(); ++k)
    CHECK((u.nodes[k].feature == t.nodes[k].feature && u.nodes[k].threshold == t.nodes[k].threshold));
  std::vector<std::vector<int>> rows(t.nodes.size());
  for (int i = 0; i < n; ++i) rows[0].push_back(i);
  int checked = 0;
  for (size_t k = 0; k < t.nodes.size(); ++k) {
    const TreeNode& node = t.nodes[k];
    if (node.leaf()) continue;
    int f;
    float thr;
    brute(rows[k], f, thr);
    CHECK(node.feature == f);
    CHECK(node.threshold == thr);
    for (int i : rows[k]) rows[X[i * F + node.feature] <= node.threshold ? node.left : node.right].push_back(i);
    checked += rows[k].size() >= 256;
  }
  CHECK(checked >= 2);  // the root and at least one child large enough for the counting sort
}

TEST_CASE("anchors: KL bounds") {
  for (double p : {0.0, 0.3, 0.9, 1.0})
    for (double level : {0.01, 0.1, 1.0}) {
      const double up = kl_upper(p, level), lo = kl_lower(p, level);
      CHECK(up >= p);
      CHECK(lo <= p);
      if (up < 1 - 1e-6) CHECK(kl_bernoulli(p, up) == doctest::Approx(level).epsilon(1e-4));
      if (lo > 1e-6) CHECK(kl_bernoulli(p, lo) == doctest::Approx(level).epsilon(1e-4));
    }
  CHECK(kl_upper(0.5, 0.1) > kl_upper(0.5, 0.01));
}

TEST_CASE("anchors: a model deciding by one planted feature is anchored on it with precision >= tau") {
  // Four features uniform in [-1, 1]; the model's class is x2 > 0 (logit 10·x2).
  Graph g = arch("input(4) dense(2)");
  set(dense(g, "dense1").weight.value, {0, 0, 0, 0, 0, 0, 10, 0});
  set(dense(g, "dense1").bias.value, {0, 0});
  RulesRequest q;
  q.data = Tensor({1000, 4});
  Rng r(67);
  for (size_t i = 0; i < q.data.size(); ++i) q.data[i] = 2 * r.uniform() - 1;
  q.inputs = Tensor::from({2, 4}, {0.3f, -0.6f, 0.8f, 0.1f, -0.2f, 0.5f, -0.7f, 0.9f});
  const std::vector<RuleSet> out = rules(g, q, "anchors", {{"seed", "3"}});
  REQUIRE(out.size() == 2);
  for (const RuleSet& s : out) {
    INFO(s.rules[0]);
    CHECK(s.details["found"].get<bool>());
    CHECK(s.details["precision"].get<double>() >= 0.95);
    REQUIRE(!s.details["anchor"].empty());
    for (const auto& p : s.details["anchor"]) CHECK(p["text"].get<std::string>().rfind("x2 ", 0) == 0);
  }
  CHECK(out[0].rules[0].find("x2 > ") != std::string::npos);
  CHECK(out[1].rules[0].find("x2 <= ") != std::string::npos);
  // A beam of one keeps the most precise rule of each size (x2 beyond its outer quartile, coverage
  // 1/4); a wider beam also weighs x2's median split, precise enough and covering half the data.
  CHECK(out[0].details["coverage"].get<double>() == doctest::Approx(0.25).epsilon(0.2));
  const std::vector<RuleSet> wide = rules(g, q, "anchors", {{"seed", "3"}, {"beam", "3"}});
  for (const RuleSet& s : wide) {
    INFO(s.rules[0]);
    CHECK(s.details["precision"].get<double>() >= 0.95);
    CHECK(s.details["coverage"].get<double>() == doctest::Approx(0.5).epsilon(0.15));
  }
  // The budget holds whatever the batch (one draw went 10x past it), and a rule cut short by it
  // says so rather than "below the threshold".
  // (A threshold of 1 is never established from finite samples: the budget always runs out.)
  const std::vector<RuleSet> cut =
      rules(g, q, "anchors", {{"seed", "3"}, {"max_samples", "1000"}, {"batch", "5000"}, {"threshold", "1"}});
  for (const RuleSet& s : cut) {
    INFO(s.rules[0]);
    CHECK(s.details["samples"].get<long>() <= 1000);
    CHECK(s.details["budget_exhausted"].get<bool>());
    CHECK_FALSE(s.details["found"].get<bool>());
    CHECK(s.rules[0].find("the sample budget (max_samples) ran out") != std::string::npos);
  }
}

TEST_CASE("anchors: an image model deciding by one planted region is anchored on superpixels there") {
  // Class 1 when a pixel of the top-left 4x4 quadrant exceeds 0.9: relu(x − 0.9) averaged there.
  Graph g = arch("input(1,8,8) conv(1,k=1) relu avgpool(4) flatten dense(2)");
  auto& c = static_cast<Conv2d&>(g.layer(0));
  c.weight.value[0] = 1, c.bias.value[0] = -0.9f;
  set(dense(g, "dense1").weight.value, {0, 0, 0, 0, 200, 0, 0, 0});
  set(dense(g, "dense1").bias.value, {0, -1});
  // The quadrant is a checkerboard of 1.0 and 0.2 (hidden by its mean 0.6 it loses the class); the
  // rest 0.3 with a little noise.
  Tensor x({1, 1, 8, 8});
  Rng r(71);
  for (int y = 0; y < 8; ++y)
    for (int xx = 0; xx < 8; ++xx)
      x[y * 8 + xx] = y < 4 && xx < 4 ? ((y + xx) % 2 ? 1.f : 0.2f) : 0.3f + 0.05f * r.uniform();
  REQUIRE(predict(g, x)[0] == 1);
  RulesRequest q;
  q.inputs = x;
  const std::vector<RuleSet> out =
      rules(g, q, "anchors", {{"segments", "8"}, {"seed", "1"}, {"coverage_samples", "2000"}});
  REQUIRE(out.size() == 1);
  const RuleSet& s = out[0];
  INFO(s.rules[0]);
  CHECK(s.details["found"].get<bool>());
  CHECK(s.details["precision"].get<double>() >= 0.95);
  const Tensor& seg = s.arrays.at("segments");
  REQUIRE(!s.details["anchor"].empty());
  for (const auto& p : s.details["anchor"]) {  // every anchor superpixel holds bright quadrant pixels
    const int id = p["predicate"].get<int>();
    int bright = 0;
    for (int i = 0; i < 64; ++i) bright += int(seg[i]) == id && x[i] > 0.9f;
    CHECK(bright > 0);
  }
  CHECK(s.figure.w > 0);
  // Hidden by black the quadrant loses the class too: an anchor there. Hidden by white (1 > 0.9)
  // any hidden quadrant pixel keeps the class: the empty rule holds everywhere.
  const Params common = {{"segments", "8"}, {"seed", "1"}, {"coverage_samples", "2000"}};
  Params black = common, white = common;
  black["fill"] = "0";
  white["fill"] = "1";
  const RuleSet b = rules(g, q, "anchors", black)[0], w = rules(g, q, "anchors", white)[0];
  CHECK(b.details["found"].get<bool>());
  CHECK(!b.details["anchor"].empty());
  CHECK(w.details["found"].get<bool>());
  CHECK(w.details["anchor"].empty());
  CHECK(w.details["coverage"].get<double>() == 1.0);
}

// ---- batches and seeds ---------------------------------------------------------------------------------

TEST_CASE("importance and rules: a batch gives what its samples one by one give; a seed gives one answer") {
  Graph g = arch("input(1,4,4) flatten dense(6) tanh dense(3)", 101);
  randomize(g, 103, 0.8f);
  ImportanceRequest q;
  q.x = noise({7, 1, 4, 4}, 107);
  q.raw_shift = {0.4f};
  for (const std::string method : {"dimopoulos", "miv"}) {
    INFO(method);
    const Importance whole = importance(g, q, method, {{"batch", "256"}}), single = importance(g, q, method, {{"batch", "1"}});
    check_close(whole.per_class, single.per_class, 1e-5);
  }
  // Anchors: the same seed draws the same perturbations and finds the same rule; the sample count
  // tells whether the draws were the same.
  Graph flat = arch("input(4) dense(2)");
  set(dense(flat, "dense1").weight.value, {0, 0, 0, 0, 0, 0, 10, 0});
  RulesRequest rq;
  rq.data = noise({500, 4}, 109);
  rq.inputs = Tensor::from({1, 4}, {0.3f, -0.6f, 0.8f, 0.1f});
  const Params p = {{"seed", "5"}, {"coverage_samples", "1000"}};
  const std::vector<RuleSet> a = rules(flat, rq, "anchors", p), b = rules(flat, rq, "anchors", p);
  CHECK(a[0].rules == b[0].rules);
  CHECK(a[0].details["samples"] == b[0].details["samples"]);
  CHECK(a[0].details["precision"] == b[0].details["precision"]);
  const std::vector<RuleSet> other = rules(flat, rq, "anchors", {{"seed", "6"}, {"coverage_samples", "1000"}});
  CHECK(other[0].details["precision"].get<double>() >= 0.95);  // another draw, the same guarantee
}

// ---- the registries ----------------------------------------------------------------------------------

TEST_CASE("registries: every method reads exactly its declared parameters; unknown names list the known") {
  Graph mlp = arch("input(3) dense(4) relu dense(2)");
  Graph nam = make_preset("nam", Shape{3}, 2, 5);
  ImportanceRequest iq;
  iq.x = noise({10, 3}, 73);
  for (const MethodInfo& m : importance_methods()) {
    INFO(m.name);
    Graph& g = m.name == "nam" ? nam : mlp;
    CHECK_NOTHROW(importance(g, iq, m.name));  // DeclarationError if a declared key is not read
    CHECK_THROWS_WITH_AS(importance(g, iq, m.name, {{"nosuch", "1"}}), doctest::Contains("unknown parameter 'nosuch'"),
                         std::invalid_argument);
  }
  Graph img = arch("input(1,8,8) conv(2,k=3) relu gap dense(2)");
  RulesRequest flat, image;
  flat.inputs = noise({1, 3}, 79);
  flat.data = noise({100, 3}, 83);
  image.inputs = noise({1, 1, 8, 8}, 89);
  image.data = noise({50, 1, 8, 8}, 97);
  const Params budget = {{"max_samples", "2000"}, {"coverage_samples", "200"}};
  for (const MethodInfo& m : rule_methods()) {
    INFO(m.name);
    CHECK_NOTHROW(rules(mlp, flat, m.name, m.name == "anchors" ? budget : Params{}));
    CHECK_NOTHROW(rules(img, image, m.name, m.name == "anchors" ? budget : Params{}));
  }
  CHECK_THROWS_WITH_AS(importance(mlp, iq, "garsun"),
                       doctest::Contains("unknown importance method 'garsun' (known: garson, garson-signed, olden, "
                                         "dimopoulos, miv, nam)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(rules(mlp, flat, "anchor"), doctest::Contains("(known: anchors, tree)"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(rules(mlp, flat, "tree", {{"features", "relu9"}}), doctest::Contains("features=relu9"),
                       std::invalid_argument);
  for (const char* bad : {"pool:4abc", "pool: 6", "pool:", "pool:-2", "pool:99"})  // (4abc ran as pool:4)
    CHECK_THROWS_WITH_AS(rules(img, image, "tree", {{"features", bad}}), doctest::Contains((std::string("features=") + bad).c_str()),
                         std::invalid_argument);
  CHECK_NOTHROW(rules(img, image, "tree", {{"features", "pool:4"}}));
  CHECK_THROWS_WITH_AS(rules(mlp, flat, "anchors", {{"threshold", "1.5"}}), doctest::Contains("threshold=1.5 outside"),
                       std::out_of_range);
}
