// The im2col + GEMM and Winograd convolutions against a direct seven-loop convolution in double
// precision: forward, backward data, backward weight and bias, over random shapes, strides and
// paddings.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "engine/graph.h"
#include "engine/layers.h"
#include "engine/threads.h"
#include "engine/winograd.h"

using namespace gb;

namespace {

struct Geom {
  int N, C, H, W, O, k, s, p;
  bool bias;
  int OH() const { return (H + 2 * p - k) / s + 1; }
  int OW() const { return (W + 2 * p - k) / s + 1; }
  std::string str() const {
    std::ostringstream o;
    o << "N=" << N << " C=" << C << " H=" << H << " W=" << W << " O=" << O << " k=" << k << " s=" << s << " p=" << p
      << " bias=" << bias;
    return o.str();
  }
};

Tensor uniform(const Shape& s, Rng& r) {
  Tensor t(s);
  for (size_t i = 0; i < t.size(); ++i) t[i] = 2 * r.uniform() - 1;
  return t;
}

// Reference results, each with the sum of |terms| that entered it: float32 GEMM rounding is bounded
// relative to that sum, not to the (possibly cancelling) result.
struct Ref {
  std::vector<double> v, mag;
  explicit Ref(size_t n) : v(n, 0.0), mag(n, 0.0) {}
  void add(size_t i, double t) {
    v[i] += t;
    mag[i] += std::fabs(t);
  }
};

// Calls f(n, o, oh, ow, c, ki, kj, input index, output index, weight index) for every tap that
// reads a real (not padded) input element: the direct definition of the convolution.
template <class F>
void taps(const Geom& g, F f) {
  const int OH = g.OH(), OW = g.OW();
  for (int n = 0; n < g.N; ++n)
    for (int o = 0; o < g.O; ++o)
      for (int oh = 0; oh < OH; ++oh)
        for (int ow = 0; ow < OW; ++ow)
          for (int c = 0; c < g.C; ++c)
            for (int ki = 0; ki < g.k; ++ki)
              for (int kj = 0; kj < g.k; ++kj) {
                const int ih = oh * g.s - g.p + ki, iw = ow * g.s - g.p + kj;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                f(((size_t(n) * g.C + c) * g.H + ih) * g.W + iw, ((size_t(n) * g.O + o) * OH + oh) * OW + ow,
                  ((size_t(o) * g.C + c) * g.k + ki) * g.k + kj);
              }
}

// |got - ref| <= tol * (sum of |terms|) for every element; returns the count of violations and
// describes the first.
size_t compare(const char* what, const Tensor& got, const Ref& ref, double tol, std::string& first) {
  REQUIRE(got.size() == ref.v.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - ref.v[i]);
    if (err > tol * ref.mag[i] + 1e-30) {
      if (!bad++) {
        std::ostringstream o;
        o << what << "[" << i << "]: got " << got[i] << ", reference " << ref.v[i] << " (|terms| " << ref.mag[i] << ")";
        first = o.str();
      }
    }
  }
  return bad;
}

constexpr double kTol = 2e-6;  // ~16 float32 ulps of the terms' magnitude; errors seen stay below 5e-7
// Winograd F(2x2,3x3) adds and halves in its transforms before and after the GEMM, so its error
// bound is a few times that of the direct sum; errors seen stay below 2e-6.
constexpr double kWinogradTol = 8e-6;
// F(4x4,3x3) (training passes) multiplies by up to 8 and 1/24 in its transforms; errors seen
// stay below 4e-6, twice those of F(2x2,3x3).
constexpr double kWinograd4Tol = 2e-5;

// With `training`, the layer is prepared for a training pass first (F(4x4,3x3) on large planes).
void check_against_reference(const Geom& g, uint64_t seed, double tol = kTol, bool training = false) {
  INFO(g.str() << (training ? ", training" : ""));
  Rng r(seed);
  Conv2d conv(g.O, g.k, g.s, g.p, g.bias);
  conv.build({Shape{1, g.C, g.H, g.W}});
  if (training) conv.prepare(Layer::Pass::forward, Mode::train);
  const Shape ys = conv.out_shape({Shape{g.N, g.C, g.H, g.W}});
  REQUIRE(ys == Shape{g.N, g.O, g.OH(), g.OW()});
  Tensor x = uniform(Shape{g.N, g.C, g.H, g.W}, r), w = uniform(conv.weight.value.shape(), r);
  Tensor b = uniform(Shape{g.O}, r), gy = uniform(ys, r);
  Workspace ws;

  // Forward.
  Ref y_ref(ys.numel());
  taps(g, [&](size_t xi, size_t yi, size_t wi) { y_ref.add(yi, double(x[xi]) * w[wi]); });
  if (g.bias)
    for (size_t i = 0; i < y_ref.v.size(); ++i) y_ref.add(i, b[i / (size_t(g.OH()) * g.OW()) % g.O]);
  Tensor y(ys, 123.f);  // stale contents must be overwritten
  conv.conv(x, w, g.bias ? b.data() : nullptr, y, ws);
  std::string first;
  CHECK_MESSAGE(compare("y", y, y_ref, tol, first) == 0, first);

  // Backward data: gx = sum over taps of gy * w.
  Ref gx_ref(x.size());
  taps(g, [&](size_t xi, size_t yi, size_t wi) { gx_ref.add(xi, double(gy[yi]) * w[wi]); });
  Tensor gx(x.shape(), 55.f);
  conv.conv_backward_data(gy, w, gx, ws);
  CHECK_MESSAGE(compare("gx", gx, gx_ref, tol, first) == 0, first);

  // Backward weight and bias accumulate into what is there (several batches sum their gradients).
  Ref gw_ref(w.size()), gb_ref(g.O);
  Tensor gw = uniform(w.shape(), r), gbias = uniform(Shape{g.O}, r);
  for (size_t i = 0; i < gw.size(); ++i) gw_ref.add(i, gw[i]);
  for (int o = 0; o < g.O; ++o) gb_ref.add(o, gbias[o]);
  taps(g, [&](size_t xi, size_t yi, size_t wi) { gw_ref.add(wi, double(gy[yi]) * x[xi]); });
  const size_t P = size_t(g.OH()) * g.OW();
  for (size_t i = 0; i < gy.size(); ++i) gb_ref.add(i / P % g.O, gy[i]);
  conv.conv_backward_weight(x, gy, gw, g.bias ? gbias.data() : nullptr, ws);
  CHECK_MESSAGE(compare("gw", gw, gw_ref, tol, first) == 0, first);
  if (g.bias) CHECK_MESSAGE(compare("gb", gbias, gb_ref, tol, first) == 0, first);
}

}  // namespace

TEST_CASE("im2col convolution matches the direct convolution on fixed shapes") {
  const Geom cases[] = {
      {1, 1, 5, 5, 1, 3, 1, 0, true},     // the smallest useful case
      {2, 3, 7, 7, 4, 3, 1, 1, true},     // same padding
      {3, 2, 8, 9, 3, 3, 2, 1, false},    // stride 2, odd width
      {2, 3, 6, 6, 5, 1, 1, 0, true},     // 1x1
      {2, 2, 7, 6, 3, 5, 2, 2, true},     // k 5, padding 2
      {2, 2, 9, 8, 3, 4, 3, 2, false},    // even kernel, stride 3
      {2, 4, 3, 3, 2, 3, 1, 2, true},     // output larger than the input
      {3, 2, 5, 5, 2, 5, 1, 0, true},     // kernel covers the whole input: 1x1 output
      {2, 3, 1, 7, 2, 1, 1, 0, true},     // a single row
      {1, 2, 4, 4, 3, 3, 3, 1, true},     // stride larger than the step between windows
      {3, 16, 9, 9, 5, 3, 2, 1, false},   // 144 column rows: the weight gradient as gwᵀ += col gyᵀ
      {2, 80, 5, 4, 3, 1, 1, 0, true},    // 80 column rows, 1x1
      // A CIFAR ResNet's stride-2 layers: 32- and 16-wide rows, whose phases are 16 and 8 floats
      // (the vector gather and the fixed-length tap rows), and the 1x1 projection.
      {2, 3, 32, 32, 4, 3, 2, 1, false},
      {2, 3, 16, 16, 4, 3, 2, 1, true},
      {2, 3, 32, 32, 4, 1, 2, 0, false},
      {1, 2, 5, 32, 3, 3, 2, 0, true},    // no padding: phases of 16 and 15
  };
  uint64_t seed = 1;
  for (const Geom& g : cases) check_against_reference(g, seed++);
}

TEST_CASE("im2col convolution matches the direct convolution on random shapes") {
  Rng r(2024);
  for (int t = 0; t < 40; ++t) {
    Geom g;
    g.N = 1 + int(r.below(4));
    g.C = 1 + int(r.below(4));
    g.O = 1 + int(r.below(5));
    g.k = 1 + int(r.below(5));
    g.s = 1 + int(r.below(3));
    g.p = int(r.below(uint32_t(g.k)));
    g.H = std::max(1, g.k - 2 * g.p) + int(r.below(8));
    g.W = std::max(1, g.k - 2 * g.p) + int(r.below(8));
    g.bias = r.below(2);
    check_against_reference(g, 100 + t);
  }
}

TEST_CASE("im2col convolution matches the direct convolution over strides 1-3, kernels 1, 3, 5, paddings 0-2") {
  // Strides >= 2 run through phase planes (conv2d.cpp): k <= s writes them straight into the
  // column matrix, k > s copies taps out of them. Sizes from the smallest the kernel fits (a
  // one-pixel-wide output) up, odd and even, so every phase plane is sometimes longer than the
  // output and sometimes all padding.
  uint64_t seed = 500;
  for (int s : {1, 2, 3})
    for (int k : {1, 3, 5})
      for (int p = 0; p <= 2; ++p) {
        const int m = std::max(1, k - 2 * p);  // the smallest input the padded kernel fits
        for (int H : {m, m + 1, 7, 8})
          for (int W : {m, m + 2, 8, 9}) {
            const Geom g{2, 3, H, W, 2, k, s, p, (H + W) % 2 == 0};
            check_against_reference(g, seed++);
          }
      }
}

TEST_CASE("im2col convolution matches the direct convolution across column chunks") {
  // 16 MiB of columns is 4Mi floats. 8 channels, k 3 on 32x32: 72 x 1024 per sample, so a chunk
  // holds 56 samples and a batch of 60 runs as chunks of 56 and 4.
  check_against_reference({60, 8, 32, 32, 2, 3, 1, 1, true}, 7);
  // 16 channels, k 3 on 176x176: 144 x 30976 > 4Mi floats per sample, one sample per chunk.
  check_against_reference({2, 16, 176, 176, 1, 3, 1, 1, true}, 8);
}

TEST_CASE("Winograd convolution (3x3, stride 1, >= 16 channels) matches the direct convolution") {
  const Geom cases[] = {
      {2, 16, 14, 14, 16, 3, 1, 1, true},   // even output: whole tiles
      {1, 16, 7, 7, 20, 3, 1, 1, true},     // odd output: the last tile row and column hang over
      {3, 17, 9, 6, 16, 3, 1, 0, false},    // valid convolution, odd output height
      {2, 16, 5, 8, 18, 3, 1, 2, true},     // output larger than the input
      {1, 16, 1, 1, 16, 3, 1, 1, true},     // a 1x1 plane
      {1, 19, 3, 3, 17, 3, 1, 0, true},     // 1x1 output from a valid convolution
  };
  uint64_t seed = 300;
  for (const Geom& g : cases) check_against_reference(g, seed++, kWinogradTol);
  Rng r(77);
  for (int t = 0; t < 12; ++t) {
    Geom g{1 + int(r.below(3)), 16 + int(r.below(9)), 1 + int(r.below(12)), 1 + int(r.below(12)),
           16 + int(r.below(9)), 3, 1, int(r.below(3)), bool(r.below(2))};
    g.H = std::max(g.H, 3 - 2 * g.p);
    g.W = std::max(g.W, 3 - 2 * g.p);
    check_against_reference(g, 400 + t, kWinogradTol);
  }
}

TEST_CASE("Winograd F(4x4,3x3), used in training passes, matches the direct convolution") {
  CHECK(winograd::tile(true, 32, 32, 16, 16) == 4);
  CHECK(winograd::tile(true, 8, 30, 16, 16) == 4);
  CHECK(winograd::tile(true, 14, 14, 16, 16) == 2);  // 16x16 of tiles: 31% past the edge
  CHECK(winograd::tile(true, 7, 40, 16, 16) == 2);
  CHECK(winograd::tile(false, 32, 32, 16, 16) == 2);
  // Few tiles, and transformed weights over 1 MiB (36 * 64 * 128 floats) or not (36 * 64 * 64).
  CHECK(winograd::tile(true, 8, 8, 64, 128) == 2);
  CHECK(winograd::tile(true, 8, 8, 128, 128) == 2);
  CHECK(winograd::tile(true, 8, 8, 64, 64) == 4);
  CHECK(winograd::tile(true, 16, 16, 128, 128) == 4);  // 16 tiles
  const Geom cases[] = {
      {2, 16, 16, 16, 16, 3, 1, 1, true},   // whole 4x4 tiles
      {1, 16, 30, 31, 20, 3, 1, 1, true},   // the last tile row and column hang over by 2 and 1
      {2, 17, 33, 26, 16, 3, 1, 0, false},  // valid convolution: 31x24 output
      {1, 16, 10, 10, 18, 3, 1, 2, true},   // output (12x12) larger than the input
      {1, 24, 32, 32, 40, 3, 1, 1, true},   // a CIFAR-size plane
  };
  uint64_t seed = 500;
  // Planes of fewer than 16 tiles: several samples per GEMM (8 of 8x8's 4 tiles, 4 of 12x12's or
  // 6x6's 9), over batches that end with a shorter chunk; 16 tiles or more: one sample.
  CHECK(winograd::samples_per_gemm(winograd::geometry(16, 8, 8, 16, 1, 4)) == 8);
  CHECK(winograd::samples_per_gemm(winograd::geometry(16, 6, 6, 16, 1, 2)) == 4);
  CHECK(winograd::samples_per_gemm(winograd::geometry(16, 16, 16, 16, 1, 4)) == 1);
  check_against_reference({11, 16, 8, 8, 16, 3, 1, 1, true}, 700, kWinograd4Tol, true);
  check_against_reference({6, 32, 12, 12, 24, 3, 1, 1, false}, 701, kWinograd4Tol, true);
  check_against_reference({11, 16, 6, 6, 20, 3, 1, 1, true}, 702, kWinogradTol);
  for (const Geom& g : cases) {
    CHECK(winograd::tile(true, g.OH(), g.OW(), g.C, g.O) == 4);
    check_against_reference(g, seed++, kWinograd4Tol, true);
  }
  Rng r(78);
  for (int t = 0; t < 8; ++t) {
    Geom g{1 + int(r.below(3)), 16 + int(r.below(9)), 24 + int(r.below(17)), 24 + int(r.below(17)),
           16 + int(r.below(9)), 3, 1, 1 + int(r.below(2)), bool(r.below(2))};
    check_against_reference(g, 600 + t, kWinograd4Tol, true);
  }
}

TEST_CASE("A training pass runs the other Winograd transform: its outputs differ from eval's in rounding only") {
  // Both passes are checked against the direct convolution above; here the point is that they are
  // two computations (F(4x4,3x3) in training, F(2x2,3x3) in eval), not one.
  const Geom g{2, 16, 16, 16, 16, 3, 1, 1, false};
  Graph net(Shape{g.C, g.H, g.W});
  net.then<Conv2d>(g.O, 3, 1, 1, false);
  net.init(5);
  Rng r(6);
  Tensor x = uniform(Shape{g.N, g.C, g.H, g.W}, r);
  const Tensor y_eval = net.forward(x, Mode::eval).clone();
  const Tensor& y_train = net.forward(x, Mode::train);
  size_t differ = 0;
  double worst = 0;
  for (size_t i = 0; i < y_eval.size(); ++i) {
    differ += y_eval[i] != y_train[i];
    worst = std::max(worst, double(std::fabs(y_eval[i] - y_train[i])));
  }
  CHECK(differ > y_eval.size() / 10);
  CHECK(worst < 1e-4);
}

// The direct convolution with the layer's own weights and bias.
static Ref layer_reference(const Geom& g, const Tensor& x, const Conv2d& conv) {
  const size_t P = size_t(g.OH()) * g.OW();
  Ref y(size_t(g.N) * g.O * P);
  taps(g, [&](size_t xi, size_t yi, size_t wi) { y.add(yi, double(x[xi]) * conv.weight.value[wi]); });
  for (size_t i = 0; i < y.v.size(); ++i) y.add(i, conv.bias.value[i / P % g.O]);
  return y;
}

TEST_CASE("A Winograd conv in a graph follows in-place weight changes (Layer::prepare each pass)") {
  // The layer keeps its weights in the Winograd domain; an optimizer step writes the weights in
  // place between passes, and the next forward and backward must use the new ones.
  const Geom g{2, 16, 6, 6, 16, 3, 1, 1, true};
  Graph net(Shape{g.C, g.H, g.W});
  net.then<Conv2d>(g.O, 3, 1, 1, true);
  auto& conv = static_cast<Conv2d&>(net.layer(0));
  Rng r(21);
  Tensor x = uniform(Shape{g.N, g.C, g.H, g.W}, r);
  for (Param* p : conv.params()) p->value.copy_from(uniform(p->value.shape(), r));
  net.forward(x);
  for (size_t i = 0; i < conv.weight.value.size(); ++i) conv.weight.value[i] *= -0.5f;  // in place
  const Tensor& y = net.forward(x);
  const Ref y_ref = layer_reference(g, x, conv);
  std::string first;
  CHECK_MESSAGE(compare("y", y, y_ref, kWinogradTol, first) == 0, first);
  // The input gradient after another in-place change, without a forward in between.
  for (size_t i = 0; i < conv.weight.value.size(); ++i) conv.weight.value[i] += 0.25f;
  Tensor seed = uniform(y.shape(), r);
  const Tensor& gx = net.backward(seed);
  Ref gx_ref(x.size());
  taps(g, [&](size_t xi, size_t yi, size_t wi) { gx_ref.add(xi, double(seed[yi]) * conv.weight.value[wi]); });
  CHECK_MESSAGE(compare("gx", gx, gx_ref, kWinogradTol, first) == 0, first);
}

TEST_CASE("Conv2d through the graph equals the direct convolution and accumulates parameter gradients") {
  RestoreThreads guard;
  // im2col; then Winograd with planes large enough that each thread runs several groups (its
  // weight gradient is carried from group to group: Layer::end_backward), and at one thread a
  // batch of 9 (a full chunk of 8 samples per weight-gradient GEMM and a partial one); then
  // 37 x 29 filters, whose weight transform prepare() splits across threads at uneven points.
  const Geom cases[] = {
      {3, 2, 6, 5, 3, 3, 2, 1, true}, {9, 16, 40, 40, 17, 3, 1, 1, true}, {2, 29, 5, 5, 37, 3, 1, 1, true}};
  for (const Geom& g : cases)
    for (int T : {1, 2, 3})
      for (Mode mode : {Mode::eval, Mode::train}) {  // in training, F(4x4,3x3) on the 40x40 plane
      INFO(g.str() << ", " << T << " thread(s), " << (mode == Mode::train ? "training" : "eval"));
      set_threads(T);
      const double tol = g.C < 16 ? kTol : mode == Mode::train && g.H >= 12 ? kWinograd4Tol : kWinogradTol;
      Graph net(Shape{g.C, g.H, g.W});
      net.then<Conv2d>(g.O, g.k, g.s, g.p, true);
      auto& conv = static_cast<Conv2d&>(net.layer(0));
      Rng r(9);
      Tensor x = uniform(Shape{g.N, g.C, g.H, g.W}, r);
      for (Param* p : conv.params()) p->value.copy_from(uniform(p->value.shape(), r));
      const Tensor& y = net.forward(x, mode);
      const Ref y_ref = layer_reference(g, x, conv);
      std::string first;
      CHECK_MESSAGE(compare("y", y, y_ref, tol, first) == 0, first);

      Tensor seed = uniform(y.shape(), r);
      net.zero_grad();
      BackwardOptions bo;
      bo.param_grads = true;
      net.backward(seed, bo);
      const Tensor& gx = net.backward(seed, bo);  // two passes: parameter gradients add up
      Ref gw_ref(conv.weight.value.size()), gb_ref(g.O), gx_ref(x.size());
      taps(g, [&](size_t xi, size_t yi, size_t wi) {
        gw_ref.add(wi, 2.0 * seed[yi] * x[xi]);
        gx_ref.add(xi, double(seed[yi]) * conv.weight.value[wi]);
      });
      const size_t P = size_t(g.OH()) * g.OW();
      for (size_t yi = 0; yi < seed.size(); ++yi) gb_ref.add(yi / P % g.O, 2.0 * seed[yi]);
      CHECK_MESSAGE(compare("gw", conv.weight.grad, gw_ref, tol, first) == 0, first);
      CHECK_MESSAGE(compare("gb", conv.bias.grad, gb_ref, tol, first) == 0, first);
      CHECK_MESSAGE(compare("gx", gx, gx_ref, tol, first) == 0, first);
      // Without param_grads the parameter gradients stay as they are.
      Tensor before = conv.weight.grad.clone();
      net.backward(seed);
      for (size_t i = 0; i < before.size(); ++i) REQUIRE(conv.weight.grad[i] == before[i]);
    }
}
