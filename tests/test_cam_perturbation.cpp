// CAM family, occlusion, RISE, SLIC and LIME: hand-computed cases, invariances, determinism, batching.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/architecture.h"
#include "engine/layers.h"
#include "explain/attribution/cam.h"
#include "explain/attribution/explain.h"
#include "explain/attribution/lime.h"
#include "explain/attribution/perturbation.h"
#include "explain/common/resize.h"
#include "explain/attribution/slic.h"
#include "train/presets.h"

using namespace gb;
using namespace gb::explain;

namespace {

// explain() is also the name of the namespace, so the tests call it through this.
Result run(Graph& g, const Tensor& x, const std::vector<int>& t, const std::string& method, const Params& p = {}) {
  return gb::explain::explain(g, x, t, method, p);
}

Tensor random_images(int N, int C, int H, int W, uint64_t seed, float lo = 0.f, float hi = 1.f) {
  Tensor x({N, C, H, W});
  Rng r(seed);
  for (size_t i = 0; i < x.size(); ++i) x[i] = lo + (hi - lo) * r.uniform();
  return x;
}

// flatten → dense(out): a model linear in its input, for hand-computed perturbation values.
Graph linear_net(const Shape& input, int out, uint64_t seed) {
  Graph g(input);
  g.then<Flatten>().then<Dense>(out);
  g.init(seed);
  return g;
}

template <class L>
L& layer_of(Graph& g, const std::string& name) {
  return dynamic_cast<L&>(g.layer(g.at(name)));
}

bool has_method(const std::string& name) {
  for (auto& m : methods())
    if (m.name == name) return true;
  return false;
}

void check_close(const Tensor& a, const Tensor& b, float tol) {
  REQUIRE(a.shape() == b.shape());
  float worst = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  CHECK(worst <= tol * std::max(1.f, scale));
}

// input(1,4,4) conv(2,k=1) relu gap dense(2) with hand-set weights: A0 = relu(x), A1 = relu(5 − x).
Graph hand_gap_net() {
  Graph g(Shape{1, 4, 4});
  g.then<Conv2d>(2, 1).then<ReLU>().then<GlobalAvgPool>().then<Dense>(2);
  auto& conv = layer_of<Conv2d>(g, "conv1");
  conv.weight.value = Tensor::from({2, 1, 1, 1}, {1.f, -1.f});
  conv.bias.value = Tensor::from({2}, {0.f, 5.f});
  auto& d = layer_of<Dense>(g, "dense1");
  d.weight.value = Tensor::from({2, 2}, {1.f, 0.5f, -1.f, 2.f});
  d.bias.value = Tensor::from({2}, {0.3f, -0.2f});
  return g;
}

}  // namespace

TEST_CASE("bilinear upsampling follows PyTorch's align_corners=False") {
  Tensor s = Tensor::from({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor u = resize_bilinear(s, 4, 4);
  // torch.nn.functional.interpolate(t, size=(4,4), mode="bilinear", align_corners=False)
  const float want[16] = {1.0f, 1.25f, 1.75f, 2.0f, 1.5f, 1.75f, 2.25f, 2.5f,
                          2.5f, 2.75f, 3.25f, 3.5f, 3.0f, 3.25f, 3.75f, 4.0f};
  for (int i = 0; i < 16; ++i) CHECK(u[i] == doctest::Approx(want[i]));
  Tensor b = broadcast_channels(u, 3);
  CHECK(b.shape() == Shape{1, 3, 4, 4});
  CHECK(b[2 * 16 + 5] == u[5]);
}

TEST_CASE("CAM on a hand-set GAP net equals the hand-computed sum") {
  Graph g = hand_gap_net();
  Tensor x = Tensor::from({1, 1, 4, 4}, {0, 1, 2, 3, 4, 5, 6, 7, -1, -2, 2.5f, 3.5f, 8, 1, 0, 2});
  for (int c : {0, 1}) {
    Tensor m = cam_maps(g, x, {c});
    REQUIRE(m.shape() == Shape{1, 1, 4, 4});
    const float w0 = c == 0 ? 1.f : -1.f, w1 = c == 0 ? 0.5f : 2.f;
    for (int i = 0; i < 16; ++i) {
      const float a0 = std::max(x[i], 0.f), a1 = std::max(5.f - x[i], 0.f);
      CHECK(m[i] == doctest::Approx(w0 * a0 + w1 * a1));
    }
    // Through the registry: same map (no resizing needed at 4×4), signed, shaped like the input.
    Result r = run(g, x, {c}, "cam");
    CHECK(r.is_signed);
    check_close(r.attribution, m, 1e-6f);
  }
  // The logit is the mean of the CAM plus the bias.
  Tensor m = cam_maps(g, x, {1});
  double mean = 0;
  for (int i = 0; i < 16; ++i) mean += m[i] / 16.0;
  CHECK(g.forward(x)[1] == doctest::Approx(mean - 0.2).epsilon(1e-5));
}

TEST_CASE("the default CAM layer is the last conv's activation, found from the head") {
  Graph cam = make_preset("camnet", Shape{1, 16, 16});
  CHECK(cam.layer(default_cam_layer(cam)).name == "relu3");
  Graph lenet = make_preset("lenet5");
  CHECK(lenet.layer(default_cam_layer(lenet)).name == "relu2");
  Graph mlp = make_preset("mlp");
  CHECK_THROWS_AS(default_cam_layer(mlp), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(cam, random_images(1, 1, 16, 16, 1), {0}, "grad-cam", {{"layer", "dense1"}}),
                       doctest::Contains("not feature maps"), std::invalid_argument);
}

TEST_CASE("a gradient CAM of a unit below its layer names layer= (the default layer or the given one)") {
  Graph lenet = make_preset("lenet5");
  Tensor x = random_images(1, 1, 28, 28, 2);
  const Target conv1_mean = Target::channel_mean(lenet.at("conv1"), 0);
  for (const char* m : {"grad-cam", "grad-cam++", "guided-grad-cam"}) {
    CAPTURE(m);
    CHECK_THROWS_WITH_AS(gb::explain::explain(lenet, x, conv1_mean, m), doctest::Contains("relu2 (the default layer=)"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(gb::explain::explain(lenet, x, conv1_mean, m, {{"layer", "conv2"}}),
                         doctest::Contains("conv2 (layer=)"), std::invalid_argument);
  }
  // A layer at or below the target's works.
  CHECK(gb::explain::explain(lenet, x, conv1_mean, "grad-cam", {{"layer", "conv1"}}).attribution.shape() == x.shape());
  const Target relu2_mean = Target::channel_mean(lenet.at("relu2"), 1);
  CHECK(gb::explain::explain(lenet, x, relu2_mean, "grad-cam", {{"layer", "conv1"}}).attribution.shape() == x.shape());
}

TEST_CASE("Grad-CAM equals CAM up to a positive constant on a GAP→Dense head") {
  Graph g = make_preset("camnet", Shape{1, 16, 16}, 10, 7);
  Tensor x = random_images(2, 1, 16, 16, 3);
  std::vector<int> t = {3, 8};
  Tensor cam = cam_maps(g, x, t);
  const int layer = default_cam_layer(g);
  Tensor signed_gc = grad_cam_maps(g, x, t, layer, false);
  Tensor relu_gc = grad_cam_maps(g, x, t, layer, true);
  REQUIRE(cam.shape() == signed_gc.shape());
  const float hw = float(cam.dim(2) * cam.dim(3));  // α_k = w_k^c / (h·w)
  float scale = 0;
  for (size_t i = 0; i < cam.size(); ++i) scale = std::max(scale, std::abs(cam[i]));
  REQUIRE(scale > 0);
  for (size_t i = 0; i < cam.size(); ++i) {
    CHECK(signed_gc[i] * hw == doctest::Approx(cam[i]).epsilon(1e-4).scale(scale));
    CHECK(relu_gc[i] * hw == doctest::Approx(std::max(cam[i], 0.f)).epsilon(1e-4).scale(scale));
  }
  // The registry's map is the upsampled one, shaped like the input.
  Result r = run(g, x, t, "grad-cam");
  CHECK(r.attribution.shape() == x.shape());
  CHECK_FALSE(r.is_signed);
  CHECK(run(g, x, t, "grad-cam", {{"relu", "false"}}).is_signed);
}

TEST_CASE("cam refuses a flatten→dense head and names it") {
  Graph g = make_preset("lenet5");
  Tensor x = random_images(1, 1, 28, 28, 1);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "cam"), doctest::Contains("flatten"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "cam"), doctest::Contains("GlobalAvgPool"), std::invalid_argument);
  // Grad-CAM still works there.
  CHECK(run(g, x, {0}, "grad-cam").attribution.shape() == x.shape());
}

TEST_CASE("Grad-CAM++ weights match a hand computation") {
  // input(1,2,2) conv(2,k=1) relu flatten dense(1): A0 = relu(x), A1 = relu(5 − x), and the logit's
  // gradient at the ReLU output is the dense weights.
  Graph g(Shape{1, 2, 2});
  g.then<Conv2d>(2, 1).then<ReLU>().then<Flatten>().then<Dense>(1);
  auto& conv = layer_of<Conv2d>(g, "conv1");
  conv.weight.value = Tensor::from({2, 1, 1, 1}, {1.f, -1.f});
  conv.bias.value = Tensor::from({2}, {0.f, 5.f});
  auto& d = layer_of<Dense>(g, "dense1");
  d.weight.value = Tensor::from({1, 8}, {1, -1, 0, 2, 0.5f, 0.5f, -2, 1});
  Tensor x = Tensor::from({1, 1, 2, 2}, {1, 2, 3, 4});
  // A0 = [1,2,3,4], A1 = [4,3,2,1], Σ A = 10 for both.
  // k=0: g=1: α=1/(2+10)=1/12 → 1/12; g=−1, g=0: nothing; g=2: α=4/(8+80)=1/22 → 2/22. w0 = 23/132.
  // k=1: g=½ (twice): α=¼/(½+10/8)=1/7 → 1/14 each; g=−2: nothing; g=1: α=1/12 → 1/12. w1 = 19/84.
  const double w0 = 23.0 / 132, w1 = 19.0 / 84;
  const double A0[4] = {1, 2, 3, 4}, A1[4] = {4, 3, 2, 1};
  Tensor m = grad_cam_pp_maps(g, x, {0}, default_cam_layer(g));
  REQUIRE(m.shape() == Shape{1, 1, 2, 2});
  for (int i = 0; i < 4; ++i) CHECK(m[i] == doctest::Approx(std::max(0.0, w0 * A0[i] + w1 * A1[i])));
  CHECK_FALSE(run(g, x, {0}, "grad-cam++").is_signed);
}

TEST_CASE("Score-CAM is a [0,1] map and guided Grad-CAM is guided backprop times Grad-CAM") {
  Graph g = make_preset("camnet", Shape{1, 16, 16}, 10, 5);
  Tensor x = random_images(1, 1, 16, 16, 9);
  Result s = run(g, x, {2}, "score-cam");
  auto [lo, hi] = std::minmax_element(s.attribution.data(), s.attribution.data() + s.attribution.size());
  CHECK(*lo >= 0.f);
  CHECK(*hi <= 1.f);
  CHECK((*hi == 1.f || *hi == 0.f));
  if (has_method("guided-backprop")) {
    Tensor gbp = run(g, x, {2}, "guided-backprop").attribution;
    Tensor gc = run(g, x, {2}, "grad-cam").attribution;
    Tensor ggc = run(g, x, {2}, "guided-grad-cam").attribution;
    for (size_t i = 0; i < ggc.size(); ++i) CHECK(ggc[i] == doctest::Approx(gbp[i] * gc[i]));
  }
}

TEST_CASE("Score-CAM matches a hand computation: softmax weights of the masked inputs, ReLU, min-max") {
  // input(1,4,4) conv(2,k=2,s=2) relu flatten dense(2): 2×2 maps upsampled to 4×4. Everything
  // below is recomputed here in double from the weights: the official code's convention,
  // weight_k = softmax(f(x ⊙ minmax(up(A^k))))_c with no baseline subtracted, then
  // minmax(ReLU(Σ_k weight_k up(A^k))).
  const double Wc[2][4] = {{1, 0.5, -0.5, 0.25}, {-0.3, 1, 0.6, -1}}, bc[2] = {0, 0.2};
  const double Wd[2][8] = {{1, -0.5, 2, 0.3, -1, 0.8, 0.5, -0.2}, {-0.4, 1, 0.1, -0.6, 0.9, -0.3, 1.2, 0.4}},
               bd[2] = {0.1, -0.1};
  const std::vector<float> xv = {0.2f, 0.9f, 0.4f, 0.1f, 0.7f, 0.3f, 0.8f, 0.6f,
                                 0.5f, 1.0f, 0.2f, 0.9f, 0.1f, 0.6f, 0.7f, 0.3f};
  Graph g(Shape{1, 4, 4});
  g.then<Conv2d>(2, 2, 2).then<ReLU>().then<Flatten>().then<Dense>(2);
  auto& conv = layer_of<Conv2d>(g, "conv1");
  auto& dense = layer_of<Dense>(g, "dense1");
  conv.weight.value = Tensor({2, 1, 2, 2});
  conv.bias.value = Tensor({2});
  dense.weight.value = Tensor({2, 8});
  dense.bias.value = Tensor({2});
  for (int k = 0; k < 2; ++k) {
    for (int j = 0; j < 4; ++j) conv.weight.value[k * 4 + j] = float(Wc[k][j]);
    conv.bias.value[k] = float(bc[k]);
    for (int j = 0; j < 8; ++j) dense.weight.value[k * 8 + j] = float(Wd[k][j]);
    dense.bias.value[k] = float(bd[k]);
  }
  // The feature maps A[k][a·2 + b] of a 4×4 input, and the two logits.
  auto features = [&](const std::vector<double>& in) {
    std::vector<double> A(8);
    for (int k = 0; k < 2; ++k)
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
          double s = bc[k];
          for (int dy = 0; dy < 2; ++dy)
            for (int dx = 0; dx < 2; ++dx) s += Wc[k][dy * 2 + dx] * in[(2 * a + dy) * 4 + 2 * b + dx];
          A[k * 4 + a * 2 + b] = std::max(0.0, s);
        }
    return A;
  };
  auto prob0 = [&](const std::vector<double>& in) {  // softmax probability of class 0
    const std::vector<double> A = features(in);
    double z[2];
    for (int c = 0; c < 2; ++c) {
      z[c] = bd[c];
      for (int j = 0; j < 8; ++j) z[c] += Wd[c][j] * A[j];
    }
    return 1 / (1 + std::exp(z[1] - z[0]));
  };
  // Bilinear 2 → 4 with align_corners=False: rows (and columns) 1, ¾·1+¼·2, ¼·1+¾·2, 2.
  const double U[4][2] = {{1, 0}, {0.75, 0.25}, {0.25, 0.75}, {0, 1}};
  auto up = [&](const double* m) {
    std::vector<double> u(16, 0.0);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j)
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) u[i * 4 + j] += U[i][a] * U[j][b] * m[a * 2 + b];
    return u;
  };
  auto minmax = [](std::vector<double> v) {
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    const double a = *lo, b = *hi;
    for (double& e : v) e = (e - a) / (b - a);
    return v;
  };
  const std::vector<double> x(xv.begin(), xv.end());
  const std::vector<double> A = features(x);
  std::vector<double> sum(16, 0.0), w(2);
  for (int k = 0; k < 2; ++k) {
    const std::vector<double> u = up(A.data() + 4 * k);
    const std::vector<double> mask = minmax(u);  // (both maps are non-constant here)
    std::vector<double> masked(16);
    for (int i = 0; i < 16; ++i) masked[i] = x[i] * mask[i];
    w[k] = prob0(masked);
    for (int i = 0; i < 16; ++i) sum[i] += w[k] * u[i];
  }
  // The two channels are weighted differently, and the weighting changes the map.
  REQUIRE(std::fabs(w[0] - w[1]) > 0.1);
  for (double& v : sum) v = std::max(v, 0.0);
  const std::vector<double> want = minmax(sum);
  for (const char* batch : {"256", "1"}) {
    CAPTURE(batch);
    Result r = run(g, Tensor::from({1, 1, 4, 4}, xv), {0}, "score-cam", {{"batch", batch}});
    REQUIRE(r.attribution.shape() == Shape{1, 1, 4, 4});
    for (int i = 0; i < 16; ++i) CHECK(r.attribution[i] == doctest::Approx(want[i]).epsilon(1e-5));
    CHECK(*std::max_element(r.attribution.data(), r.attribution.data() + 16) == 1.f);
    CHECK(*std::min_element(r.attribution.data(), r.attribution.data() + 16) == 0.f);
  }
}

TEST_CASE("occlusion gives zero where the model has zero weights, and the hand value on a linear model") {
  // flatten dense(2) on 1×8×8; the left four columns have zero weight.
  Graph g(Shape{1, 8, 8});
  g.then<Flatten>().then<Dense>(2);
  g.init(3);
  auto& d = layer_of<Dense>(g, "dense1");
  for (int o = 0; o < 2; ++o)
    for (int p = 0; p < 64; ++p)
      if (p % 8 < 4) d.weight.value[o * 64 + p] = 0.f;
  Tensor x = random_images(1, 1, 8, 8, 4, 0.1f, 1.f);
  Tensor a = run(g, x, {1}, "occlusion", {{"window", "2"}, {"stride", "2"}}).attribution;
  bool any_right = false;
  for (int p = 0; p < 64; ++p) {
    if (p % 8 < 4) CHECK(a[p] == 0.f);
    else any_right |= a[p] != 0.f;
  }
  CHECK(any_right);

  // Linear model, 5×5, window 2, stride 2: starts 0, 2 and 3 (the last clamped inside), baseline 0.5.
  // Each window's drop is Σ_{p∈window} w_p (x_p − 0.5); a pixel gets the mean over its windows.
  Graph lin = linear_net(Shape{1, 5, 5}, 1, 5);
  Tensor xl = random_images(1, 1, 5, 5, 6);
  const Tensor& w = layer_of<Dense>(lin, "dense1").weight.value;
  Tensor occ = occlusion(lin, xl, {0}, {2, 2, 0.5f, 3});
  const int starts[3] = {0, 2, 3};
  for (int py = 0; py < 5; ++py)
    for (int px = 0; px < 5; ++px) {
      double sum = 0;
      int n = 0;
      for (int y0 : starts)
        for (int x0 : starts) {
          if (py < y0 || py >= y0 + 2 || px < x0 || px >= x0 + 2) continue;
          double drop = 0;
          for (int yy = y0; yy < y0 + 2; ++yy)
            for (int xx = x0; xx < x0 + 2; ++xx) drop += w[yy * 5 + xx] * (xl[yy * 5 + xx] - 0.5);
          sum += drop;
          ++n;
        }
      CHECK(occ[py * 5 + px] == doctest::Approx(sum / n).epsilon(1e-4));
    }
  // A stride past the window leaves pixels no window covers: 0/0 (NaN) before, refused now.
  CHECK_THROWS_WITH_AS(occlusion(lin, xl, {0}, {2, 3, 0.5f, 3}),
                       doctest::Contains("occlusion: --param stride=3 is larger than the window (2)"),
                       std::invalid_argument);
}

TEST_CASE("occlusion with one baseline value per channel: the hand value on a linear model, and baseline=V0,V1") {
  // Linear model on 2x4x4, window 4 (one window): the drop is Σ_c Σ_p w_cp (x_cp − b_c).
  Graph lin = linear_net(Shape{2, 4, 4}, 1, 9);
  Tensor x = random_images(1, 2, 4, 4, 10);
  const Tensor& w = layer_of<Dense>(lin, "dense1").weight.value;
  const float b[2] = {-0.7f, 1.3f};
  double drop = 0;
  for (int c = 0; c < 2; ++c)
    for (int p = 0; p < 16; ++p) drop += w[c * 16 + p] * (x[c * 16 + p] - b[c]);
  OcclusionOptions o{4, 4, 0.f, 8};
  o.channel_baseline = {b[0], b[1]};
  Tensor occ = occlusion(lin, x, {0}, o);
  for (size_t i = 0; i < occ.size(); ++i) CHECK(occ[i] == doctest::Approx(drop).epsilon(1e-4));
  Tensor by_name = run(lin, x, {0}, "occlusion", {{"window", "4"}, {"baseline", "-0.7,1.3"}}).attribution;
  for (size_t i = 0; i < occ.size(); ++i) CHECK(by_name[i] == occ[i]);
  // The same value for both channels equals the one-value form.
  Tensor one = run(lin, x, {0}, "occlusion", {{"window", "4"}, {"baseline", "0.25"}}).attribution;
  Tensor two = run(lin, x, {0}, "occlusion", {{"window", "4"}, {"baseline", "0.25,0.25"}}).attribution;
  for (size_t i = 0; i < one.size(); ++i) CHECK(one[i] == two[i]);
  CHECK_THROWS_WITH_AS(run(lin, x, {0}, "occlusion", {{"baseline", "1,2,3"}}),
                       doctest::Contains("3 baseline values for inputs of 2 channels"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(lin, x, {0}, "occlusion-map", {{"baseline", "1,x"}}),
                       doctest::Contains("occlusion-map: baseline=1,x: expected a finite float32 number"), std::invalid_argument);
}

TEST_CASE("occlusion-map is the class's score with the occluder centred on each pixel, clipped at the borders") {
  // Linear 2-class model on 1x5x5, window 3, baseline 0.25: the logit with the window at (y, x)
  // occluded is f(x) - sum over the clipped window of w_p (x_p - 0.25).
  Graph lin = linear_net(Shape{1, 5, 5}, 2, 7);
  Tensor x = random_images(1, 1, 5, 5, 9);
  const Tensor& w = layer_of<Dense>(lin, "dense1").weight.value;
  const Tensor& bias = layer_of<Dense>(lin, "dense1").bias.value;
  OcclusionOptions o;
  o.window = 3;
  o.baseline = 0.25f;
  const Tensor logit = occlusion_map(lin, x, {1}, o);
  o.prob = true;
  const Tensor prob = occlusion_map(lin, x, {1}, o);
  for (int py = 0; py < 5; ++py)
    for (int px = 0; px < 5; ++px) {
      double z[2];
      for (int k = 0; k < 2; ++k) {
        z[k] = bias[k];
        for (int p = 0; p < 25; ++p) {
          const int yy = p / 5, xx = p % 5;
          const bool hidden = std::abs(yy - py) <= 1 && std::abs(xx - px) <= 1;
          z[k] += w[k * 25 + p] * (hidden ? 0.25 : x[p]);
        }
      }
      CHECK(logit[py * 5 + px] == doctest::Approx(z[1]).epsilon(1e-5));
      CHECK(prob[py * 5 + px] == doctest::Approx(1 / (1 + std::exp(z[0] - z[1]))).epsilon(1e-5));
    }
  // Through the registry: prob is the default, and the map is unsigned.
  Result r = run(lin, x, {1}, "occlusion-map", {{"window", "3"}, {"baseline", "0.25"}});
  CHECK(!r.is_signed);
  for (size_t i = 0; i < 25; ++i) CHECK(r.attribution[i] == prob[i]);
}

TEST_CASE("occlusion with the default window fills every channel alike") {
  Graph g = make_preset("cifar-convnet", Shape{3, 14, 14}, 4, 2);
  Tensor x = random_images(1, 3, 14, 14, 8);
  Tensor a = run(g, x, {1}, "occlusion").attribution;  // window 2, stride 1
  const size_t HW = 14 * 14;
  for (size_t i = 0; i < HW; ++i) {
    CHECK(a[HW + i] == a[i]);
    CHECK(a[2 * HW + i] == a[i]);
  }
}

TEST_CASE("occlusion's default window fits a 1x1 input (it was 2, refused as larger than the input)") {
  Graph g = graph_from_text("input(1,1,1) conv(2,k=1) relu gap dense(2)");
  g.init(3);
  const Tensor x = random_images(2, 1, 1, 1, 4);
  for (const char* m : {"occlusion", "occlusion-map"}) {
    CAPTURE(m);
    Params p;
    if (std::string(m) == "occlusion-map") p["output"] = "logit";
    CHECK(gb::explain::explain(g, x, std::vector<int>{0, 1}, m, p).attribution.shape() == x.shape());
  }
}

TEST_CASE("RISE masks and saliency: seeded, and ≈ P_c everywhere for a model that ignores its input") {
  Rng r(1);
  std::vector<float> m(28 * 28);
  double mean = 0;
  for (int i = 0; i < 200; ++i) {
    rise_mask(r, 7, 0.5f, 28, 28, m.data());
    for (float v : m) {
      CHECK_MESSAGE((v >= 0.f && v <= 1.f), "mask value out of [0,1]");
      mean += v;
    }
  }
  CHECK(mean / (200.0 * m.size()) == doctest::Approx(0.5).epsilon(0.05));

  // A constant model: saliency = P_c · mean_i M_i / p ≈ P_c.
  Graph g(Shape{1, 12, 12});
  g.then<Flatten>().then<Dense>(3);
  auto& d = layer_of<Dense>(g, "dense1");
  d.weight.value.fill(0.f);
  d.bias.value = Tensor::from({3}, {0.f, 1.f, -1.f});
  Tensor x = random_images(1, 1, 12, 12, 2);
  Tensor s = rise(g, x, {1}, {1000, 5, 0.5f, 11, 128});
  const double pc = std::exp(1.0) / (1 + std::exp(1.0) + std::exp(-1.0));
  for (size_t i = 0; i < s.size(); ++i) CHECK(s[i] == doctest::Approx(pc).epsilon(0.15));

  Graph net = make_preset("camnet", Shape{1, 12, 12}, 10, 3);
  Tensor y = random_images(1, 1, 12, 12, 5);
  Params p = {{"n", "300"}, {"seed", "4"}};
  Tensor a = run(net, y, {0}, "rise", p).attribution;
  Tensor b = run(net, y, {0}, "rise", p).attribution;
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == b[i]);
  Tensor c = run(net, y, {0}, "rise", {{"n", "300"}, {"seed", "5"}}).attribution;
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) differs |= a[i] != c[i];
  CHECK(differs);
}

namespace {
// Every label in [0,count) is used and each segment is one 4-connected component.
void check_segmentation(const Segmentation& s) {
  const int H = s.height, W = s.width;
  REQUIRE(int(s.labels.size()) == H * W);
  std::vector<int> size(s.count, 0);
  for (int l : s.labels) {
    REQUIRE(l >= 0);
    REQUIRE(l < s.count);
    size[l]++;
  }
  for (int k = 0; k < s.count; ++k) {
    REQUIRE(size[k] > 0);
    int start = int(std::find(s.labels.begin(), s.labels.end(), k) - s.labels.begin());
    std::vector<char> seen(H * W, 0);
    std::vector<int> q = {start};
    seen[start] = 1;
    for (size_t i = 0; i < q.size(); ++i) {
      int p = q[i], y = p / W, x = p % W;
      const int ny[4] = {y - 1, y + 1, y, y}, nx[4] = {x, x, x - 1, x + 1};
      for (int d = 0; d < 4; ++d) {
        if (ny[d] < 0 || ny[d] >= H || nx[d] < 0 || nx[d] >= W) continue;
        int np = ny[d] * W + nx[d];
        if (!seen[np] && s.labels[np] == k) seen[np] = 1, q.push_back(np);
      }
    }
    CHECK_MESSAGE(int(q.size()) == size[k], "segment ", k, " is not connected");
  }
}
}  // namespace

TEST_CASE("SLIC: about the requested number of connected segments, every pixel labeled") {
  // A grayscale digit-like image: a bright ring on a dark background plus noise.
  Tensor x({1, 1, 28, 28});
  Rng r(3);
  for (int y = 0; y < 28; ++y)
    for (int xx = 0; xx < 28; ++xx) {
      double rad = std::hypot(y - 13.5, xx - 13.5);
      x[y * 28 + xx] = (rad > 6 && rad < 10 ? 0.9f : 0.05f) + 0.05f * r.uniform();
    }
  for (int want : {20, 40, 80}) {
    SlicOptions o;
    o.segments = want;
    Segmentation s = slic(x, o);
    CAPTURE(want);
    CAPTURE(s.count);
    CHECK(s.count >= want * 0.5);
    CHECK(s.count <= want * 1.5);
    check_segmentation(s);
    Segmentation again = slic(x, o);
    CHECK(again.labels == s.labels);
  }
  // Colour (Lab) on a 3×32×32 image with two coloured halves.
  Tensor c = random_images(1, 3, 32, 32, 4, 0.f, 0.1f);
  for (int y = 0; y < 32; ++y)
    for (int xx = 16; xx < 32; ++xx) c[y * 32 + xx] += 0.8f;
  SlicOptions o;
  o.segments = 30;
  Segmentation s = slic(c, o);
  CHECK(s.count >= 15);
  CHECK(s.count <= 45);
  check_segmentation(s);
  // No segment straddles the colour edge.
  for (int y = 0; y < 32; ++y) CHECK(s.labels[y * 32 + 15] != s.labels[y * 32 + 16]);
}

TEST_CASE("weighted ridge matches the normal equations") {
  // y = 2 + 3 z0 − z1 exactly: with a tiny α the fit recovers it.
  std::vector<double> X = {0, 0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1}, y, w = {1, 2, 1, 0.5, 3, 1};
  for (int i = 0; i < 6; ++i) y.push_back(2 + 3 * X[2 * i] - X[2 * i + 1]);
  std::vector<double> coef;
  double b = 0;
  weighted_ridge(X, y, w, 2, 1e-9, coef, b);
  CHECK(coef[0] == doctest::Approx(3));
  CHECK(coef[1] == doctest::Approx(-1));
  CHECK(b == doctest::Approx(2));
  // One feature: β = Σw(x−x̄)(y−ȳ) / (Σw(x−x̄)² + α).
  std::vector<double> X1 = {0, 1, 1}, y1 = {1, 2, 4}, w1 = {1, 1, 2};
  weighted_ridge(X1, y1, w1, 1, 1.0, coef, b);
  const double xm = 3.0 / 4, ym = 11.0 / 4;
  const double sxy = 1 * (0 - xm) * (1 - ym) + (1 - xm) * (2 - ym) + 2 * (1 - xm) * (4 - ym);
  const double sxx = 1 * xm * xm + (1 - xm) * (1 - xm) + 2 * (1 - xm) * (1 - xm);
  CHECK(coef[0] == doctest::Approx(sxy / (sxx + 1)));
  CHECK(b == doctest::Approx(ym - xm * coef[0]));
}

TEST_CASE("LIME recovers the coefficients of a model linear in superpixel presence") {
  const int H = 16, W = 16;
  // A smooth image with a little noise (SLIC on pure noise fragments into few segments).
  Tensor x = random_images(1, 1, H, W, 21, 0.f, 0.05f);
  for (int i = 0; i < H * W; ++i) x[i] += 0.5f + 0.2f * float(std::sin(i / W / 3.0) + std::cos(i % W / 4.0));
  LimeOptions o;
  o.slic.segments = 8;
  o.fill_mean = false;  // fill 0: hiding superpixel s removes β_s · mean(x over s) from the logit
  o.prob = false;
  o.seed = 3;
  Segmentation seg = slic(x, o.slic);
  const int K = seg.count;
  REQUIRE(K >= 4);
  std::vector<double> beta(K), size(K, 0), mean(K, 0);
  Rng r(8);
  for (int k = 0; k < K; ++k) beta[k] = (k % 2 ? -1 : 1) * (0.5 + 3.0 * r.uniform());
  for (int i = 0; i < H * W; ++i) size[seg.labels[i]]++, mean[seg.labels[i]] += x[i];
  for (int k = 0; k < K; ++k) mean[k] /= size[k];
  // logit_0 = Σ_s β_s · mean(x over s); logit_1 = 0.
  Graph g(Shape{1, H, W});
  g.then<Flatten>().then<Dense>(2);
  auto& d = layer_of<Dense>(g, "dense1");
  d.weight.value.fill(0.f);
  d.bias.value.fill(0.f);
  for (int i = 0; i < H * W; ++i) d.weight.value[i] = float(beta[seg.labels[i]] / size[seg.labels[i]]);

  LimeExplanation e = lime(g, x, {0}, o)[0];
  REQUIRE(e.segments.labels == seg.labels);
  std::vector<int> want(K), got(K);
  std::iota(want.begin(), want.end(), 0);
  std::iota(got.begin(), got.end(), 0);
  std::sort(want.begin(), want.end(), [&](int a, int b) { return beta[a] * mean[a] > beta[b] * mean[b]; });
  std::sort(got.begin(), got.end(), [&](int a, int b) { return e.weights[a] > e.weights[b]; });
  CHECK(got == want);
  for (int k = 0; k < K; ++k) {
    CHECK((e.weights[k] > 0) == (beta[k] > 0));
    CHECK(e.weights[k] == doctest::Approx(beta[k] * mean[k]).epsilon(0.05));
  }
  CHECK(e.score > 0.99);
  // The top-2 mask covers exactly the two largest positive superpixels.
  std::vector<float> mask = e.top_mask(2);
  for (int i = 0; i < H * W; ++i) CHECK((mask[i] == 1.f) == (seg.labels[i] == want[0] || seg.labels[i] == want[1]));
  // Through the registry: the pixel map, and the top mask.
  Params p = {{"segments", "8"}, {"fill", "0"}, {"output", "logit"}, {"seed", "3"}};
  Result full = run(g, x, {0}, "lime", p);
  Tensor a = full.attribution;
  for (int i = 0; i < H * W; ++i) CHECK(a[i] == doctest::Approx(e.weights[seg.labels[i]]));
  // The per-superpixel weights and labels come with the map (glassbox explain writes them).
  REQUIRE(full.details.size() == 1);
  const auto& detail = full.details[0];
  REQUIRE(detail.at("weights").size() == e.weights.size());
  REQUIRE(detail.at("segments").size() == size_t(H * W));
  for (size_t k = 0; k < e.weights.size(); ++k) CHECK(detail.at("weights")[k] == doctest::Approx(e.weights[k]));
  for (int i = 0; i < H * W; ++i)
    CHECK(a[i] == doctest::Approx(detail.at("weights")[int(detail.at("segments")[i])]));
  p["top"] = "2";
  Result t = run(g, x, {0}, "lime", p);
  CHECK_FALSE(t.is_signed);
  for (int i = 0; i < H * W; ++i) CHECK(t.attribution[i] == mask[i]);
}

TEST_CASE("LIME is deterministic for a seed") {
  Graph g = make_preset("camnet", Shape{1, 12, 12}, 10, 3);
  Tensor x = random_images(1, 1, 12, 12, 5);
  Params p = {{"n", "200"}, {"segments", "10"}, {"seed", "7"}};
  Tensor a = run(g, x, {4}, "lime", p).attribution;
  Tensor b = run(g, x, {4}, "lime", p).attribution;
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == b[i]);
  p["seed"] = "8";
  Tensor c = run(g, x, {4}, "lime", p).attribution;
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) differs |= a[i] != c[i];
  CHECK(differs);
}

TEST_CASE("a batch gives the same result as its samples one by one") {
  Graph g = make_preset("camnet", Shape{3, 12, 12}, 10, 11);
  Tensor x = random_images(3, 3, 12, 12, 12);
  std::vector<int> t = {1, 5, 9};
  const std::vector<std::pair<std::string, Params>> cases = {
      {"cam", {}},
      {"grad-cam", {}},
      {"grad-cam", {{"relu", "false"}}},
      {"grad-cam++", {}},
      {"score-cam", {{"batch", "64"}}},
      {"occlusion", {{"batch", "64"}}},
      {"rise", {{"n", "200"}, {"batch", "64"}}},
      {"lime", {{"n", "150"}, {"segments", "10"}, {"batch", "64"}}},
  };
  for (const auto& c : cases) {  // (clang 14 cannot capture structured bindings in CAPTURE)
    const std::string& name = c.first;
    const Params& params = c.second;
    CAPTURE(name);
    Tensor all = run(g, x, t, name, params).attribution;
    REQUIRE(all.shape() == x.shape());
    for (int n = 0; n < 3; ++n) check_close(all.sample(n).clone(), run(g, x.sample(n), {t[n]}, name, params).attribution, 1e-4f);
  }
}

TEST_CASE("unknown parameters and non-image inputs are refused by name") {
  Graph g = make_preset("camnet", Shape{1, 12, 12});
  Tensor x = random_images(1, 1, 12, 12, 1);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "occlusion", {{"windw", "3"}}), doctest::Contains("windw"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "occlusion", {{"window", "13"}}), doctest::Contains("exceeds"),
                       std::invalid_argument);
  // A RISE grid finer than the pixels: each mask cost (s+1)² cells whatever the input (0.5 s at 4096).
  CHECK_THROWS_WITH_AS(run(g, x, {0}, "rise", {{"s", "4096"}, {"n", "1"}}),
                       doctest::Contains("rise: s=4096 cells a side is more than the input's 12x12 pixels (at most 12)"),
                       std::invalid_argument);
  CHECK(run(g, x, {0}, "rise", {{"s", "12"}, {"n", "2"}}).attribution.shape() == x.shape());
  Graph small = make_preset("camnet", Shape{1, 6, 6});  // the default s = 7 runs on a 6x6 input
  Tensor x6 = random_images(1, 1, 6, 6, 2);
  CHECK(run(small, x6, {0}, "rise", {{"n", "2"}}).attribution.shape() == x6.shape());
  Graph toy = make_preset("toy2d");
  Tensor p = Tensor::from({1, 2}, {0.5f, -0.5f});
  CHECK_THROWS_AS(run(toy, p, {0}, "rise"), ShapeError);
  CHECK_THROWS_AS(run(toy, p, {0}, "lime"), ShapeError);
}
