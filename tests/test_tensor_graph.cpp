// Tensors, the graph walk, rule hooks and the LeNet-5 shape table.
#include <doctest/doctest.h>

#include <sys/prctl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "engine/architecture.h"
#include "engine/layers.h"
#include "train/presets.h"

using namespace gb;

TEST_CASE("tensor slices are views and shape errors name both shapes") {
  Tensor t({4, 2, 3, 3});
  for (size_t i = 0; i < t.size(); ++i) t[i] = float(i);
  Tensor s = t.slice(1, 3);
  CHECK(s.shape() == Shape{2, 2, 3, 3});
  CHECK(s[0] == 18.f);
  s[0] = -1;
  CHECK(t[18] == -1.f);  // a view, not a copy
  Tensor c = t.clone();
  c[0] = 100;
  CHECK(t[0] == 0.f);
  try {
    check_shape(t, Shape{4, 1, 3, 3}, "input");
    FAIL("no exception");
  } catch (const ShapeError& e) {
    std::string m = e.what();
    CHECK(m.find("[4,1,3,3]") != std::string::npos);
    CHECK(m.find("[4,2,3,3]") != std::string::npos);
  }
}

TEST_CASE("tensor and workspace storage starts on a 64-byte boundary") {
  auto aligned = [](const float* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; };
  for (int n : {1, 3, 17, 1000, 70000}) {
    Tensor t(Shape{n});
    CHECK(aligned(t.data()));
    t.resize(Shape{2 * n + 5});  // grows: new storage
    CHECK(aligned(t.data()));
    CHECK(aligned(Tensor::from(Shape{n}, std::vector<float>(size_t(n), 1.f)).data()));
  }
  Workspace ws;
  for (size_t n : {size_t(5), size_t(4096), size_t(300000)})
    for (int slot = 0; slot < 4; ++slot) CHECK(aligned(ws.get(slot, n)));
}

// The kernel's huge-page eligibility of the mapping that holds address a: 1, 0, or -1 when
// /proc/self/smaps does not say (not Linux, or a kernel older than 5.0).
static int huge_page_eligible(const void* a) {
  std::ifstream smaps("/proc/self/smaps");
  const uintptr_t at = reinterpret_cast<uintptr_t>(a);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx ", &lo, &hi) == 2 && line.find(':') > line.find(' '))
      inside = lo <= at && at < hi;  // a mapping's header line: "start-end perms ..."
    else if (inside && line.rfind("THPeligible:", 0) == 0)
      return std::atoi(line.c_str() + 12);
  }
  return -1;
}

TEST_CASE("storage of 2 MiB and more is 2 MiB aligned, zeroed, and advised for huge pages") {
  const size_t n = (size_t(5) << 20) / sizeof(float) + 3;  // 5 MiB and a bit: two whole huge pages and more
  Tensor t(Shape{int(n)});
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % (size_t(2) << 20) == 0);
  CHECK(std::all_of(t.data(), t.data() + n, [](float v) { return v == 0.f; }));
  t[n - 1] = 1.f;  // the last float is inside the buffer (ASan checks)
  ByteBuffer bytes(size_t(3) << 20, 7);
  CHECK(reinterpret_cast<uintptr_t>(bytes.data()) % (size_t(2) << 20) == 0);
  CHECK(bytes.back() == 7);
  // Only where huge pages come on request does the advice show; elsewhere it is a no-op: huge
  // pages off or always on, 2 MiB ones off (Linux 6.8 and later), or off for this process.
  auto first_line = [](const char* path) {
    std::ifstream f(path);
    std::string line;
    std::getline(f, line);
    return line;
  };
  const std::string mode = first_line("/sys/kernel/mm/transparent_hugepage/enabled"),
                    size_2m = first_line("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled");
  const int eligible = huge_page_eligible(t.data());
  if (mode.find("[madvise]") == std::string::npos || size_2m.find("[never]") != std::string::npos ||
      prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 || eligible < 0) {
    MESSAGE("huge-page advice not checked: transparent huge pages '" << mode << "', THPeligible " << eligible);
    return;
  }
  CHECK(eligible == 1);
  CHECK(huge_page_eligible(bytes.data()) == 1);
}

TEST_CASE("the double-precision sums cover exactly their slices of a channel") {
  // 5 slices of n floats, `stride` apart; the gaps between them hold values that would show.
  for (size_t n : {1, 7, 16, 64, 100}) {
    INFO("n = " << n);
    const size_t slices = 5, stride = n + 13;
    std::vector<float> x(slices * stride, 1e30f), g(slices * stride, -1e30f);
    long double sx = 0, sg = 0;
    for (size_t s = 0; s < slices; ++s)
      for (size_t i = 0; i < n; ++i) {
        x[s * stride + i] = float(std::sin(0.37 * double(s * n + i))) + 2.f;
        g[s * stride + i] = float(std::cos(0.11 * double(s * n + i)));
        sx += x[s * stride + i], sg += g[s * stride + i];
      }
    const long double mean = sx / (slices * n);
    long double ss = 0, sgx = 0;
    for (size_t s = 0; s < slices; ++s)
      for (size_t i = 0; i < n; ++i) {
        const long double d = x[s * stride + i] - mean;
        ss += d * d, sgx += g[s * stride + i] * d;
      }
    CHECK(sum(x.data(), n, slices, stride) == doctest::Approx(double(sx)).epsilon(1e-13));
    CHECK(sum_squared_deviations(x.data(), n, double(mean), slices, stride) == doctest::Approx(double(ss)).epsilon(1e-12));
    double a = 0, b = 0;
    sum_and_centered_dot(g.data(), x.data(), n, double(mean), a, b, slices, stride);
    CHECK(a == doctest::Approx(double(sg)).epsilon(1e-12).scale(1));
    CHECK(b == doctest::Approx(double(sgx)).epsilon(1e-12).scale(1));
    // One slice is the plain form.
    CHECK(sum(x.data(), n) == sum(x.data(), n, 1, 0));
  }
}

TEST_CASE("lenet5 has 61,706 parameters and the expected output shapes") {
  Graph g = make_preset("lenet5");
  CHECK(g.param_count() == 61706);
  CHECK(g.shape(g.at("maxpool2"), 1) == Shape{1, 16, 5, 5});
  CHECK(g.shape(g.output(), 7) == Shape{7, 10});
  std::string table = describe(g);
  CHECK(table.find("61706") != std::string::npos);
}

TEST_CASE("a backward rule replaces one layer's gradient for one pass only") {
  Graph g(Shape{3});
  g.then<ReLU>();
  Tensor x = Tensor::from({1, 3}, {-1.f, 2.f, -3.f});
  g.forward(x);
  Tensor seed = Tensor::from({1, 3}, {5.f, -6.f, 7.f});
  Tensor grad = g.backward(seed).clone();
  CHECK(grad[0] == 0.f);
  CHECK(grad[1] == -6.f);
  CHECK(grad[2] == 0.f);
  // DeconvNet-style ReLU: pass max(signal, 0), ignoring the forward mask.
  BackwardRules rules(1, [](BackwardCall& c) {
    for (size_t i = 0; i < c.g_out.size(); ++i) (*c.g_in[0])[i] = std::max(c.g_out[i], 0.f);
  });
  BackwardOptions opt;
  opt.rules = &rules;
  Tensor deconv = g.backward(seed, opt).clone();
  CHECK(deconv[0] == 5.f);
  CHECK(deconv[1] == 0.f);
  CHECK(deconv[2] == 7.f);
  CHECK(g.backward(seed)[0] == 0.f);  // the default rule is back
}

TEST_CASE("a node feeding two consumers receives the sum of their signals") {
  // y = relu(x) + x: dy/dx = 1[x>0] + 1
  Graph g(Shape{2});
  int r = g.add(std::make_unique<ReLU>(), {-1});
  g.add(std::make_unique<Add>(), {r, -1});
  Tensor x = Tensor::from({1, 2}, {-1.f, 2.f});
  Tensor y = g.forward(x).clone();
  CHECK(y[0] == -1.f);
  CHECK(y[1] == 4.f);
  Tensor gx = g.backward(Tensor::from({1, 2}, {1.f, 1.f}));
  CHECK(gx[0] == 1.f);
  CHECK(gx[1] == 2.f);
}

// PyTorch's BatchNorm: training normalizes with the batch's biased variance and moves the running
// statistics toward the batch mean and the unbiased variance by `momentum`; eval uses them.
TEST_CASE("BatchNorm's training output, running statistics and eval output follow PyTorch's formulas") {
  Graph g(Shape{2, 1, 2});
  g.then<BatchNorm2d>(1e-5f, 0.1f);
  auto& bn = static_cast<BatchNorm2d&>(g.layer(g.output()));
  bn.weight.value[0] = 2.f, bn.weight.value[1] = 0.5f;
  bn.bias.value[0] = 1.f, bn.bias.value[1] = -1.f;
  // Three samples of two channels with two positions each, channel by channel:
  //   channel 0: 1 2 | 3 4 | 5 6  mean 3.5, squared deviations 17.5: variance 17.5/6, unbiased 3.5
  //   channel 1: 0 0 | 0 0 | 0 3  mean 0.5, squared deviations 7.5: variance 1.25, unbiased 1.5
  const Tensor x = Tensor::from({3, 2, 1, 2}, {1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 3});
  const double mean[2] = {3.5, 0.5}, var[2] = {17.5 / 6, 1.25}, unbiased[2] = {3.5, 1.5};
  const double gamma[2] = {2, 0.5}, beta[2] = {1, -1}, eps = 1e-5;
  auto expect = [&](const Tensor& y, const double* m, const double* v) {
    for (int n = 0; n < 3; ++n)
      for (int c = 0; c < 2; ++c)
        for (int i = 0; i < 2; ++i) {
          const size_t at = size_t(n * 4 + c * 2 + i);
          CAPTURE(at);
          CHECK(y[at] == doctest::Approx(gamma[c] * (x[at] - m[c]) / std::sqrt(v[c] + eps) + beta[c]).epsilon(1e-6));
        }
  };
  expect(g.forward(x, Mode::train), mean, var);
  double rm[2], rv[2];
  for (int c = 0; c < 2; ++c) {
    rm[c] = 0.9 * 0 + 0.1 * mean[c];      // from the initial 0
    rv[c] = 0.9 * 1 + 0.1 * unbiased[c];  // from the initial 1
    CHECK(bn.running_mean.value[c] == doctest::Approx(rm[c]).epsilon(1e-6));
    CHECK(bn.running_var.value[c] == doctest::Approx(rv[c]).epsilon(1e-6));
  }
  expect(g.forward(x, Mode::train), mean, var);  // a second step moves them again
  for (int c = 0; c < 2; ++c) {
    rm[c] = 0.9 * rm[c] + 0.1 * mean[c];
    rv[c] = 0.9 * rv[c] + 0.1 * unbiased[c];
    CHECK(bn.running_mean.value[c] == doctest::Approx(rm[c]).epsilon(1e-6));
    CHECK(bn.running_var.value[c] == doctest::Approx(rv[c]).epsilon(1e-6));
  }
  expect(g.forward(x, Mode::eval), rm, rv);  // eval: the running statistics, which it leaves alone
  CHECK(bn.running_mean.value[0] == doctest::Approx(rm[0]).epsilon(1e-6));

  // [N,F] (BatchNorm1d), another momentum: the features are the channels.
  Graph h(Shape{2});
  h.then<BatchNorm2d>(1e-5f, 0.25f);
  auto& bn1 = static_cast<BatchNorm2d&>(h.layer(h.output()));
  const Tensor f = Tensor::from({4, 2}, {1, 10, 2, 10, 3, 10, 6, 14});  // means 3 and 11
  const Tensor& yf = h.forward(f, Mode::train);
  CHECK(yf[0] == doctest::Approx((1 - 3) / std::sqrt(14.0 / 4 + eps)).epsilon(1e-6));  // biased: 14/4
  CHECK(yf[7] == doctest::Approx((14 - 11) / std::sqrt(12.0 / 4 + eps)).epsilon(1e-6));
  CHECK(bn1.running_mean.value[1] == doctest::Approx(0.25 * 11).epsilon(1e-6));
  CHECK(bn1.running_var.value[0] == doctest::Approx(0.75 + 0.25 * 14.0 / 3).epsilon(1e-6));  // unbiased: 14/3
  CHECK(bn1.running_var.value[1] == doctest::Approx(0.75 + 0.25 * 12.0 / 3).epsilon(1e-6));
}
