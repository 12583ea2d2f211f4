// The layers of interpretable-by-design models (engine/interpretable_layers.h) and distillation:
// the soft decision tree's leaf probabilities sum to 1 and its output equals the path-weighted sum
// over leaves computed by brute force; finite-difference checks of the tree's, the grouped dense
// layer's and the group sum's input and parameter gradients and of the balancing penalty (value by
// hand, gradients, and through a layer before the tree); text/JSON/model-file round trips; the
// distillation loss by hand; a distilled student agrees with its teacher more than the same
// student trained on the labels; a soft tree distilled on a toy set.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <numeric>

#include "data/dataset.h"
#include "engine/architecture.h"
#include "engine/interpretable_layers.h"
#include "engine/layers.h"
#include "engine/loss.h"
#include "engine/model_file.h"
#include "engine/threads.h"
#include "explain/surrogates/distill.h"
#include "explain/surrogates/soft_tree.h"
#include "train/fit.h"
#include "train/presets.h"
#include "tests/surrogate_test_helpers.h"

using namespace gb;
using namespace gb::explain::surrogates;

namespace {

double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

// The largest |analytic − numeric| over the entries of `v`, relative to the largest |numeric|:
// f is a scalar function of v's entries, `analytic` its claimed gradient.
double fd_error(Tensor& v, const Tensor& analytic, const std::function<double()>& f, float h = 1e-2f) {
  double worst = 0, scale = 1e-12;
  for (size_t i = 0; i < v.size(); ++i) {
    const float keep = v[i];
    v[i] = keep + h;
    const double up = f();
    v[i] = keep - h;
    const double down = f();
    v[i] = keep;
    const double numeric = (up - down) / (2.0 * h);
    worst = std::max(worst, std::fabs(numeric - analytic[i]));
    scale = std::max(scale, std::fabs(numeric));
  }
  return worst / scale;
}

// Checks the input and every parameter gradient of ⟨seed, g(x)⟩ against central differences.
void check_gradients(Graph& g, Tensor x, uint64_t seed, double tol = 2e-3) {
  const Tensor s = noise(g.shape(g.output(), x.batch()), seed);
  auto f = [&] { return dot(s, g.forward(x)); };
  g.forward(x);
  g.zero_grad();
  BackwardOptions bo;
  bo.param_grads = true;
  const Tensor gx = g.backward(s, bo).clone();
  CHECK(fd_error(x, gx, f) < tol);
  for (const auto& named : g.named_params()) {  // (clang 14 cannot capture structured bindings in INFO)
    const std::string& name = named.first;
    Param* p = named.second;
    INFO(name);
    const Tensor analytic = p->grad.clone();
    CHECK(fd_error(p->value, analytic, f) < tol);
  }
}

double sigmoid(double v) { return 1 / (1 + std::exp(-v)); }

// P_l(x) by brute force: for leaf l, the product over its path (root first; bit d of l from the
// top says right at depth d) of σ(β(w·x + b)) or 1 − that.
double leaf_probability(const SoftTree& t, const float* x, int l) {
  double P = 1;
  int node = 0;
  for (int d = 0; d < t.depth; ++d) {
    double a = t.bias.value[node];
    for (int f = 0; f < t.features; ++f) a += double(t.weight.value[size_t(node) * t.features + f]) * x[f];
    const double right = sigmoid(t.beta * a);
    const bool go_right = (l >> (t.depth - 1 - d)) & 1;
    P *= go_right ? right : 1 - right;
    node = 2 * node + (go_right ? 2 : 1);
  }
  return P;
}

}  // namespace

TEST_CASE("soft tree: leaf probabilities sum to 1 and the output is the brute-force path-weighted sum") {
  Graph g = arch("input(5) softtree(3,4,beta=1.5)");
  randomize(g, 7, 1.f);
  auto& t = static_cast<SoftTree&>(g.layer(0));
  const Tensor x = noise({6, 5}, 11);
  const Tensor z = g.forward(x).clone();
  Tensor right, reach;
  t.routes(x, right, reach);
  const Tensor Q = t.leaf_distributions();
  for (int n = 0; n < 6; ++n) {
    double total = 0;
    for (int l = 0; l < t.leaf_count(); ++l) {
      const double P = leaf_probability(t, x.data() + n * 5, l);
      CHECK(reach[size_t(n) * t.nodes() + t.inner() + l] == doctest::Approx(P).epsilon(1e-6));
      total += reach[size_t(n) * t.nodes() + t.inner() + l];
    }
    CHECK(total == doctest::Approx(1.0).epsilon(1e-6));
    for (int k = 0; k < 4; ++k) {
      double m = 0;
      for (int l = 0; l < t.leaf_count(); ++l) m += leaf_probability(t, x.data() + n * 5, l) * Q[size_t(l) * 4 + k];
      CHECK(z[size_t(n) * 4 + k] == doctest::Approx(std::log(m)).epsilon(1e-5));
    }
    double s = 0;  // softmax(z) is the mixture itself
    for (int k = 0; k < 4; ++k) s += std::exp(z[size_t(n) * 4 + k]);
    CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
  }
  for (int l = 0; l < t.leaf_count(); ++l) {  // each leaf's Q is a distribution
    double s = 0;
    for (int k = 0; k < 4; ++k) s += Q[size_t(l) * 4 + k];
    CHECK(s == doctest::Approx(1.0).epsilon(1e-6));
  }
}

TEST_CASE("soft tree: the maximum-probability leaf and path") {
  Graph g = arch("input(4) softtree(3,3)");
  randomize(g, 5, 2.f);
  auto& t = static_cast<SoftTree&>(g.layer(0));
  const Tensor x = noise({5, 4}, 9);
  const Routing r = route(g, 0, x);
  const Tensor Q = t.leaf_distributions();
  const std::vector<int> pred = max_path_predictions(t, r);
  for (int n = 0; n < 5; ++n) {
    int best = 0;
    for (int l = 1; l < t.leaf_count(); ++l)
      if (leaf_probability(t, x.data() + n * 4, l) > leaf_probability(t, x.data() + n * 4, best)) best = l;
    CHECK(r.leaf[n] == best);
    const std::vector<int> path = r.path(n, t.depth);
    REQUIRE(path.size() == 4);
    CHECK(path.front() == 0);
    CHECK(path.back() == t.inner() + best);
    for (size_t d = 1; d < path.size(); ++d) CHECK((path[d] - 1) / 2 == path[d - 1]);
    const float* q = Q.data() + size_t(best) * 3;
    CHECK(pred[n] == int(std::max_element(q, q + 3) - q));
  }
}

TEST_CASE("soft tree: the figure has a colorbar for its filters' colormap at the right") {
  Graph g = arch("input(1,4,4) flatten softtree(2,3)");
  randomize(g, 5, 2.f);
  auto& t = static_cast<SoftTree&>(g.layer(1));
  const Tensor x = noise({2, 1, 4, 4}, 3);
  const Routing r = route(g, 1, x);
  const Tensor pixels = noise({1, 4, 4}, 4);
  const explain::Image im = tree_figure(t, Shape{1, 4, 4}, {"a", "b", "c"}, r, 1, pixels, 2);
  // The colorbar's ends are the colormap's: bwr at +1 (top) and -1 (bottom), in the last 150 columns.
  uint8_t red[3], blue[3];
  explain::colormap_rgb("bwr", 1.0, red);
  explain::colormap_rgb("bwr", -1.0, blue);
  auto found = [&](const uint8_t c[3]) {
    int first_row = -1;
    for (int y = 0; y < im.h && first_row < 0; ++y)
      for (int xx = std::max(0, im.w - 150); xx < im.w; ++xx)
        if (std::equal(c, c + 3, im.rgb.data() + (size_t(y) * im.w + xx) * 3)) {
          first_row = y;
          break;
        }
    return first_row;
  };
  const int top = found(red), bottom = found(blue);
  REQUIRE(top >= 0);
  REQUIRE(bottom >= 0);
  CHECK(bottom - top > 100);  // a bar, red above blue
}

TEST_CASE("soft tree: input and parameter gradients against finite differences") {
  Graph g = arch("input(6) softtree(3,4,beta=0.7)");
  randomize(g, 13, 0.6f);
  check_gradients(g, noise({5, 6}, 17), 19);
  // After a flatten and a dense layer, with a larger beta.
  Graph h = arch("input(1,3,3) flatten dense(5) tanh softtree(2,3,beta=2)");
  randomize(h, 23, 0.5f);
  check_gradients(h, noise({4, 1, 3, 3}, 29), 31);
}

TEST_CASE("soft tree: one thread and two give the same output and gradients") {
  Graph g = arch("input(8) softtree(4,5)");
  randomize(g, 41, 0.5f);
  const Tensor x = noise({37, 8}, 43), s = noise({37, 5}, 47);
  std::vector<Tensor> outs, grads;
  for (int threads : {1, 2}) {
    set_threads(threads);
    outs.push_back(g.forward(x).clone());
    g.zero_grad();
    BackwardOptions bo;
    bo.param_grads = true;
    grads.push_back(g.backward(s, bo).clone());
    grads.push_back(static_cast<SoftTree&>(g.layer(0)).leaves.grad.clone());
  }
  set_threads(0);
  for (size_t i = 0; i < outs[0].size(); ++i) CHECK(outs[0][i] == outs[1][i]);
  for (size_t i = 0; i < grads[0].size(); ++i) CHECK(grads[0][i] == doctest::Approx(grads[2][i]).epsilon(1e-5));
  for (size_t i = 0; i < grads[1].size(); ++i) CHECK(grads[1][i] == doctest::Approx(grads[3][i]).epsilon(1e-5));
}

TEST_CASE("soft tree: the balancing penalty by hand and its gradients") {
  Graph g = arch("input(4) softtree(2,3)");
  randomize(g, 53, 1.f);
  auto& t = static_cast<SoftTree&>(g.layer(0));
  Tensor x = noise({7, 4}, 59);
  const double lambda = 0.3;
  // By hand: α_i = Σ_n P^i p_i / Σ_n P^i, with P^root = 1 and P^child = the product of turns.
  double want = 0;
  for (int i = 0; i < t.inner(); ++i) {
    double A = 0, B = 0;
    for (int n = 0; n < 7; ++n) {
      const float* xn = x.data() + n * 4;
      auto right_at = [&](int node) {
        double a = t.bias.value[node];
        for (int f = 0; f < 4; ++f) a += double(t.weight.value[node * 4 + f]) * xn[f];
        return sigmoid(t.beta * a);
      };
      const double reach = i == 0 ? 1 : i == 1 ? 1 - right_at(0) : right_at(0);
      A += reach * right_at(i), B += reach;
    }
    const double alpha = A / B, weight = lambda * (i == 0 ? 1 : 0.5);
    want -= weight * 0.5 * (std::log(alpha) + std::log(1 - alpha));
  }
  CHECK(t.penalty(x, lambda, nullptr, nullptr, nullptr) == doctest::Approx(want).epsilon(1e-6));
  Tensor gw(t.weight.value.shape()), gb(t.bias.value.shape()), gx;
  t.penalty(x, lambda, &gw, &gb, &gx);
  auto f = [&] { return t.penalty(x, lambda, nullptr, nullptr, nullptr); };
  CHECK(fd_error(t.weight.value, gw, f, 1e-3f) < 2e-3);
  CHECK(fd_error(t.bias.value, gb, f, 1e-3f) < 2e-3);
  CHECK(fd_error(x, gx, f, 1e-3f) < 2e-3);
}

TEST_CASE("soft tree: the penalty reaches the layers before the tree") {
  Graph g = arch("input(3) dense(4) tanh softtree(2,2)");
  randomize(g, 61, 0.8f);
  const Tensor x = noise({9, 3}, 67);
  auto penalty_at = [&] {
    g.forward(x, Mode::train);
    return static_cast<SoftTree&>(g.layer(2)).penalty(g.activation(1), 0.5, nullptr, nullptr, nullptr);
  };
  g.forward(x, Mode::train);
  g.zero_grad();
  add_tree_penalties(g, 0.5);
  auto& dense = static_cast<Dense&>(g.layer(0));
  const Tensor analytic = dense.weight.grad.clone();
  CHECK(fd_error(dense.weight.value, analytic, penalty_at, 1e-3f) < 2e-3);
}

TEST_CASE("grouped dense and group sum: gradients, and each group sees only its own inputs") {
  Graph g = arch("input(6) groupdense(4,groups=3) tanh groupdense(2,groups=3) groupsum(3)");
  randomize(g, 71, 0.7f);
  check_gradients(g, noise({5, 6}, 73), 79);
  // Group g's outputs are a dense layer on its two inputs: the same as a dense layer whose weight
  // is block-diagonal.
  Graph one = arch("input(6) groupdense(4,groups=3)"), full = arch("input(6) dense(12)");
  randomize(one, 83, 1.f);
  auto& gd = static_cast<GroupDense&>(one.layer(0));
  auto& d = static_cast<Dense&>(full.layer(0));
  d.weight.value.fill(0.f);
  for (int grp = 0; grp < 3; ++grp)
    for (int o = 0; o < 4; ++o)
      for (int i = 0; i < 2; ++i)
        d.weight.value[size_t(grp * 4 + o) * 6 + grp * 2 + i] = gd.weight.value[size_t(grp * 4 + o) * 2 + i];
  d.bias.value.copy_from(gd.bias.value);
  const Tensor x = noise({3, 6}, 89);
  const Tensor a = one.forward(x).clone(), b = full.forward(x).clone();
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-5));
  // The sum over groups.
  Graph s = arch("input(6) groupsum(3)");
  const Tensor y = s.forward(x);
  for (int n = 0; n < 3; ++n)
    for (int k = 0; k < 2; ++k)
      CHECK(y[n * 2 + k] == doctest::Approx(x[n * 6 + k] + x[n * 6 + 2 + k] + x[n * 6 + 4 + k]));
}

TEST_CASE("interpretable layers: architecture text, JSON and model files round-trip") {
  const std::string text = "input(1,4,4) flatten softtree(3,5,beta=2.5) ";
  Graph g = arch(text);
  randomize(g, 97, 1.f);
  CHECK(architecture_text(g) == "input(1,4,4) flatten softtree(3,out=5,beta=2.5)");
  Graph nam = arch("input(3) groupdense(8,groups=3) relu groupdense(2,groups=3,bias=false) groupsum(3)");
  CHECK(architecture_text(nam) == "input(3) groupdense(8,groups=3) relu groupdense(2,groups=3,bias=false) groupsum(3)");
  const std::string path = (std::filesystem::temp_directory_path() / "surrogates_layers_test.safetensors").string();
  for (Graph* m : {&g, &nam}) {
    save_model(path, *m);
    Model back = load_model(path);
    CHECK(architecture_text(back.graph) == architecture_text(*m));
    const Tensor x = noise(Shape::batch_of(3, m->input_shape()), 101);
    const Tensor a = m->forward(x).clone(), b = back.graph.forward(x).clone();
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == b[i]);
  }
  std::filesystem::remove(path);
  CHECK_THROWS_WITH_AS(graph_from_text("input(4) softtree(13,2)"), doctest::Contains("maximum 12"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(graph_from_text("input(5) groupdense(2,groups=2)"),
                       doctest::Contains("do not split into 2 groups"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(graph_from_text("input(4) softtree(2,3,beta=-1)"),
                       doctest::Contains("beta must be"), std::invalid_argument);
}

TEST_CASE("nam preset: one network per feature, summed") {
  Graph g = make_preset("nam", Shape{3}, 2, 5);
  CHECK(architecture_text(g) ==
        "input(3) groupdense(64,groups=3) relu groupdense(32,groups=3) relu groupdense(2,groups=3) groupsum(3)");
  Graph img = make_preset("nam", Shape{1, 28, 28}, 10, 5);
  CHECK(img.input_shape() == Shape{1, 28, 28});
  CHECK(architecture_text(img).find("avgpool(4) flatten groupdense(64,groups=49)") != std::string::npos);
  // Changing feature 0 changes the logits by f_0's change only: the other features' terms stay.
  const Tensor x = noise({1, 3}, 7);
  Tensor x2 = x.clone();
  x2[0] += 0.5f;
  Tensor x3 = x.clone(), x4 = x2.clone();
  x3[1] += 0.7f, x4[1] += 0.7f;  // the same change of feature 1 on both
  const Tensor a = g.forward(x).clone(), b = g.forward(x2).clone(), c = g.forward(x3).clone(), d = g.forward(x4).clone();
  for (int k = 0; k < 2; ++k) CHECK(b[k] - a[k] == doctest::Approx(d[k] - c[k]).epsilon(1e-4));
}

TEST_CASE("distillation loss against a hand computation") {
  const Tensor s = Tensor::from({2, 3}, {1.f, 2.f, 0.5f, -1.f, 0.f, 3.f});
  const Tensor t = Tensor::from({2, 3}, {2.f, 0.f, 1.f, 0.f, 1.f, 1.f});
  const std::vector<int> y = {1, 2};
  const double T = 2, alpha = 0.7;
  double want = 0;
  std::vector<double> want_grad(6);
  for (int n = 0; n < 2; ++n) {
    double zs = 0, zt = 0, z1 = 0;
    for (int k = 0; k < 3; ++k) zs += std::exp(s[n * 3 + k] / T), zt += std::exp(t[n * 3 + k] / T), z1 += std::exp(s[n * 3 + k]);
    double kl = 0;
    for (int k = 0; k < 3; ++k) {
      const double ps = std::exp(s[n * 3 + k] / T) / zs, pt = std::exp(t[n * 3 + k] / T) / zt;
      const double p1 = std::exp(s[n * 3 + k]) / z1;
      kl += pt * std::log(pt / ps);
      want_grad[n * 3 + k] = (alpha * T * (ps - pt) + (1 - alpha) * (p1 - (k == y[n]))) / 2;
    }
    const double ce = -std::log(std::exp(s[n * 3 + y[n]]) / z1);
    want += (alpha * T * T * kl + (1 - alpha) * ce) / 2;
  }
  DistillationLoss loss({T, alpha, 0});
  Tensor grad;
  const LossResult r = loss(s, t, y, grad);
  CHECK(r.loss == doctest::Approx(want).epsilon(1e-7));
  for (int i = 0; i < 6; ++i) CHECK(grad[i] == doctest::Approx(want_grad[i]).epsilon(1e-6));
  CHECK(r.correct == 2);  // both argmaxes are the labels
  CHECK_THROWS_WITH_AS(DistillationLoss({0, 0.5, 0}), doctest::Contains("--temperature"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(DistillationLoss({2, 1.5, 0}), doctest::Contains("--alpha"), std::invalid_argument);
}

namespace {

// Points uniform in [-1.5, 1.5]² labelled by the sign of their first coordinate.
Dataset square(int n, uint64_t seed) {
  Dataset d;
  d.x = Tensor({n, 2});
  Rng r(seed);
  for (int i = 0; i < n; ++i) {
    d.x[size_t(i) * 2] = 3 * r.uniform() - 1.5f;
    d.x[size_t(i) * 2 + 1] = 3 * r.uniform() - 1.5f;
    d.y.push_back(d.x[size_t(i) * 2] > 0);
  }
  d.class_names = {"left", "right"};
  d.name = "square";
  return d;
}

FitOptions quiet_fit(int epochs, float lr) {
  FitOptions o;
  o.epochs = epochs;
  o.batch = 32;
  o.optimizer.lr = lr;
  o.val_fraction = 0;
  o.progress = ProgressStyle::quiet;
  o.seed = 1;
  return o;
}

// A random tanh network whose two classes split the square about evenly: its output bias moves the
// median logit difference over `x` to 0.
Graph random_teacher(const Tensor& x) {
  Graph t = arch("input(2) dense(16) tanh dense(2)", 11);
  randomize(t, 12, 1.2f);
  const Tensor z = t.forward(x);
  std::vector<float> d;
  for (int n = 0; n < x.batch(); ++n) d.push_back(z[n * 2 + 1] - z[n * 2]);
  std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
  static_cast<Dense&>(t.layer(2)).bias.value[1] -= d[d.size() / 2];
  return t;
}

double fidelity(Graph& student, Graph& teacher, const Tensor& x) {
  const std::vector<int> s = predict(student, x), t = predict(teacher, x);
  int same = 0;
  for (size_t i = 0; i < s.size(); ++i) same += s[i] == t[i];
  return double(same) / s.size();
}

}  // namespace

TEST_CASE("distillation: a distilled student agrees with its teacher more than one trained on the labels") {
  // The teacher's boundary (a random tanh network) is not the labels' (x > 0), so agreement with
  // the teacher measures what was learnt from it.
  const Dataset train = square(800, 1), test = square(400, 2);
  Graph teacher = random_teacher(train.x);
  const std::vector<int> tp = predict(teacher, test.x);
  const int ones = int(std::accumulate(tp.begin(), tp.end(), 0));
  REQUIRE(ones > 80);  // both classes well represented
  REQUIRE(ones < 320);
  double fid[2];
  for (int run = 0; run < 2; ++run) {
    Graph student = arch("input(2) dense(32) relu dense(32) relu dense(2)", 21);
    FitOptions o = quiet_fit(60, 1e-2f);
    DistillationLoss loss({1.0, run == 0 ? 1.0 : 0.0, 0});
    o.loss = [&](Graph&, const Tensor& x, const std::vector<int>& y, const Tensor& logits, Tensor& grad) {
      return loss(logits, teacher.forward(x), y, grad);
    };
    fit(student, train, o);
    fid[run] = fidelity(student, teacher, test.x);
  }
  MESSAGE("fidelity distilled " << fid[0] << ", trained on labels " << fid[1]);
  CHECK(fid[0] > 0.9);
  CHECK(fid[0] > fid[1] + 0.1);
}

TEST_CASE("distillation: a soft tree distilled from a toy teacher agrees with it by both predictions") {
  const Dataset train = square(800, 3), test = square(400, 4);
  Graph teacher = random_teacher(train.x);
  Graph tree = arch("input(2) softtree(4,2,beta=2)", 5);
  FitOptions o = quiet_fit(60, 2e-2f);
  DistillationLoss loss({1.0, 1.0, 0.1});
  double last_penalty = 0;
  o.loss = [&](Graph& g, const Tensor& x, const std::vector<int>& y, const Tensor& logits, Tensor& grad) {
    LossResult r = loss(logits, teacher.forward(x), y, grad);
    last_penalty = add_tree_penalties(g, 0.1);
    r.loss += last_penalty;
    return r;
  };
  fit(tree, train, o);
  const double f = fidelity(tree, teacher, test.x);
  const Routing r = route(tree, 0, test.x);
  const std::vector<int> mp = max_path_predictions(static_cast<SoftTree&>(tree.layer(0)), r), tp = predict(teacher, test.x);
  int same = 0;
  for (size_t i = 0; i < mp.size(); ++i) same += mp[i] == tp[i];
  MESSAGE("soft tree fidelity " << f << " (max path " << double(same) / mp.size() << "), last penalty " << last_penalty);
  CHECK(f > 0.85);
  CHECK(double(same) / mp.size() > 0.85);
  CHECK(last_penalty > 0);
}
