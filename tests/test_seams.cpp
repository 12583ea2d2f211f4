// The engine's seams for explanation families: a backward pass seeded at any node (a class, a
// channel's mean, one unit, a direction), stop_at that the walk never reaches, call-scoped hooks,
// row offsets for per-sample rules on threads, forward passes that stop early, activations of a
// whole dataset, per-sample parameter gradients, and editing a model.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <cstdlib>

#include "engine/architecture.h"
#include "engine/blas.h"
#include "engine/gemm_avx512.h"
#include "engine/edit.h"
#include "engine/layers.h"
#include "engine/loss.h"
#include "engine/passes.h"
#include "engine/target.h"
#include "engine/threads.h"

using namespace gb;

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

double max_rel_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0, scale = 1e-12;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return m / scale;
}

// Σ_n f_n(x) for a target, in double, from a fresh forward pass.
double objective(Graph& g, const Tensor& x, const Target& t) {
  g.forward(x);
  std::vector<double> v = target_values(g, t, 0, x.batch());
  double s = 0;
  for (double e : v) s += e;
  return s;
}

// The input gradient of the target by one backward pass seeded at its node.
Tensor seeded_gradient(Graph& g, const Tensor& x, const Target& t) {
  g.forward(x);
  BackwardOptions o;
  o.seed_at = t.at(g);
  return g.backward(t.seed(g, 0, x.batch()), o).clone();
}

// Central differences of Σ f_n over every input element (a smooth net: no kinks to straddle).
Tensor numeric_gradient(Graph& g, Tensor x, const Target& t, double eps = 1e-2) {
  Tensor out(x.shape());
  for (size_t i = 0; i < x.size(); ++i) {
    const float v = x[i];
    x[i] = float(v + eps);
    const double p = objective(g, x, t);
    x[i] = float(v - eps);
    const double m = objective(g, x, t);
    x[i] = v;
    out[i] = float((p - m) / (2 * eps));
  }
  return out;
}

const char* kSmooth = "input(2,6,6) conv(4,k=3,p=1) tanh(name=t1) conv(5,k=3) softplus(name=s2) gap dense(3)";

}  // namespace

TEST_CASE("a backward pass seeded at a channel mean, one unit or a direction matches finite differences") {
  Graph g = arch(kSmooth);
  const Tensor x = noise({2, 2, 6, 6}, 3);
  const int t1 = g.at("t1"), s2 = g.at("s2");
  const std::vector<Target> targets = {
      Target({2, 0}),  // class logits, one per sample
      Target::channel_mean(t1, 3),
      Target::unit(g, s2, 4, 1, 2),
      Target::along(t1, noise(g.shape(t1, 1), 9)),  // one direction for both samples
      Target::along(s2, noise(g.shape(s2, 2), 10)),  // a direction per sample
  };
  for (const Target& t : targets) {
    CAPTURE(t.describe(g));
    REQUIRE_NOTHROW(t.check(g, 2));
    const Tensor ana = seeded_gradient(g, x, t), num = numeric_gradient(g, x, t);
    CHECK(max_rel_diff(ana, num) < 2e-3);
  }
  // The seed's value is the target: ⟨seed, a⟩ read back by Target::values.
  g.forward(x);
  const Target unit = Target::unit(g, s2, 1, 0, 3);
  const Tensor& a = g.activation(s2);
  CHECK(target_values(g, unit, 0, 2)[1] == doctest::Approx(a.at(1, 1, 0, 3)));
  CHECK(unit.describe(g) == "s2[1,0,3]");
}

TEST_CASE("targets that do not fit the model are errors naming the problem") {
  Graph g = arch(kSmooth);
  const int t1 = g.at("t1");
  CHECK_THROWS_WITH_AS(Target({0, 3}).check(g, 2), doctest::Contains("target class 3 outside [0,3)"), std::out_of_range);
  CHECK_NOTHROW(Target({1}).check(g, 2));  // one class for every sample
  CHECK_THROWS_WITH_AS(Target({0, 1, 2}).check(g, 2), doctest::Contains("3 targets for a batch of 2"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(Target::channel_mean(t1, 4).check(g, 1), doctest::Contains("channel 4 at layer t1"),
                       std::out_of_range);
  CHECK_THROWS_WITH_AS(Target::unit(g, t1, 0, 6, 0), doctest::Contains("outside layer t1's output [4,6,6]"),
                       std::out_of_range);
  CHECK_THROWS_AS(Target::along(t1, Tensor({1, 4, 5, 5})).check(g, 1), ShapeError);
  CHECK_THROWS_AS(Target::along(t1, Tensor({3, 4, 6, 6})).check(g, 2), ShapeError);
}

TEST_CASE("stop_at a node the walk never reaches is an error naming it") {
  Graph g = arch(kSmooth);
  const Tensor x = noise({1, 2, 6, 6}, 4);
  g.forward(x);
  BackwardOptions o;
  o.seed_at = g.at("t1");
  o.stop_at = g.at("s2");  // above the seed
  CHECK_THROWS_WITH_AS(g.backward(Target::channel_mean(o.seed_at, 0).seed(g, 0, 1), o),
                       doctest::Contains("no signal from t1 reaches layer s2"), std::invalid_argument);
  // A branch the output does not read: conv "side" feeds nothing.
  Graph b(Shape{4});
  const int side = b.add(std::make_unique<Dense>(3), {-1});
  b.layer(side).name = "side";
  b.add(std::make_unique<Dense>(2), {-1});
  b.init(1);
  b.forward(noise({2, 4}, 5));
  BackwardOptions ob;
  ob.stop_at = side;
  CHECK_THROWS_WITH_AS(b.backward(Tensor({2, 2}, 1.f), ob), doctest::Contains("reaches layer side"),
                       std::invalid_argument);
  // Backward from a node above where the last forward stopped.
  ForwardOptions fo;
  fo.until = g.at("t1");
  g.forward(x, fo);
  BackwardOptions os;
  os.seed_at = g.at("s2");
  CHECK_THROWS_WITH_AS(g.backward(Tensor(g.shape(os.seed_at, 1)), os), doctest::Contains("stopped below it"),
                       std::invalid_argument);
}

TEST_CASE("a forward pass that stops early computes those layers exactly") {
  Graph g = arch(kSmooth);
  const Tensor x = noise({3, 2, 6, 6}, 6);
  g.forward(x);
  const Tensor full = g.activation(g.at("t1")).clone();
  ForwardOptions fo;
  fo.until = g.at("t1");
  const Tensor& part = g.forward(x, fo);
  CHECK(max_rel_diff(part, full) == 0);
}

TEST_CASE("hooks belong to a call, see every node once, and leave the split across threads alone") {
  RestoreThreads guard;
  Graph g = arch("input(3,16,16) conv(16,k=3,p=1) relu conv(16,k=3,p=1) relu maxpool(2) flatten dense(10)");
  const Tensor x = noise({8, 3, 16, 16}, 7), seed = noise({8, 10}, 8);
  set_threads(1);
  g.forward(x);
  const Tensor gx1 = g.backward(seed).clone();
  set_threads(2);
  std::map<int, int> fwd, bwd;
  ForwardOptions fo;
  fo.on_node = [&](int i, const Tensor& a) {
    ++fwd[i];
    CHECK(a.batch() == 8);
  };
  g.forward(x, fo);
  BackwardOptions bo;
  bo.on_node = [&](int i, const Tensor& s) {
    ++bwd[i];
    CHECK(s.batch() == 8);
  };
  const Tensor gx2 = g.backward(seed, bo).clone();
  CHECK(max_rel_diff(gx2, gx1) < 1e-5);
  CHECK(fwd.size() == size_t(g.size()));
  CHECK(bwd.size() == size_t(g.size()) + 1);  // every node and the input
  for (auto& [i, n] : bwd) CHECK(n == 1);
}

TEST_CASE("per-sample rules see their rows' offsets on every thread, in whole blocks") {
  RestoreThreads guard;
  Graph g = arch("input(1,32,32) conv(32,k=3,p=1) relu(name=r) conv(8,k=3,p=1) flatten dense(4)");
  const int r = g.at("r");
  const Tensor x = noise({12, 1, 32, 32}, 11);
  std::set<std::pair<int, int>> slices;  // (row0, rows) seen by the rule
  std::set<int> thread_ids;
  std::mutex m;
  ForwardRules rules(g.size());
  rules[r] = [&](ForwardCall& c) {
    {
      std::lock_guard<std::mutex> l(m);
      slices.insert({c.row0, c.out.batch()});
      thread_ids.insert(c.thread);
    }
    const size_t D = c.out.sample_size();
    for (int k = 0; k < c.out.batch(); ++k)  // each row records which sample it is
      std::fill_n(c.out.data() + k * D, D, float(c.row0 + k));
  };
  for (int T : {1, 2, 3}) {
    set_threads(T);
    slices.clear();
    thread_ids.clear();
    ForwardOptions fo;
    fo.rules = &rules;
    fo.per_sample_rules = true;
    fo.row_block = 2;  // pairs stay together
    g.forward(x, fo);
    const Tensor& a = g.activation(r);
    for (int n = 0; n < 12; ++n) CHECK(a[size_t(n) * a.sample_size()] == float(n));
    for (auto [row0, rows] : slices) {
      CHECK(row0 % 2 == 0);
      CHECK(rows % 2 == 0);
    }
    // The rule ran on threads of this call only, and split runs in groups; which thread takes
    // which group is not fixed (see the graph's SplitGroups).
    CHECK(*thread_ids.rbegin() < T);
    if (T > 1) CHECK(slices.size() > 1);
  }
  ForwardOptions odd;
  odd.row_block = 5;
  CHECK_THROWS_WITH_AS(g.forward(x, odd), doctest::Contains("does not split into blocks of 5"), std::invalid_argument);
}

TEST_CASE("activations of a whole dataset in batches equal one forward pass, with progress") {
  Graph g = arch(kSmooth);
  const Tensor x = noise({10, 2, 6, 6}, 12);
  g.forward(x);
  const int t1 = g.at("t1"), out = g.output();
  const Tensor a_t1 = g.activation(t1).clone(), a_out = g.activation(out).clone();
  std::vector<std::pair<int, int>> calls;
  std::vector<Tensor> acts = activations(g, x, {t1, out, -1}, 3, [&](int done, int total) { calls.emplace_back(done, total); });
  REQUIRE(acts.size() == 3);
  CHECK(max_rel_diff(acts[0], a_t1) == 0);
  CHECK(max_rel_diff(acts[1], a_out) < 1e-6);
  CHECK(max_rel_diff(acts[2], x) == 0);
  CHECK(calls == std::vector<std::pair<int, int>>{{3, 10}, {6, 10}, {9, 10}, {10, 10}});
  CHECK_THROWS_AS(activations(g, x, {g.size()}), std::invalid_argument);
  CHECK_THROWS_AS(activations(g, x, {t1}, 0), std::invalid_argument);
}

TEST_CASE("per-sample parameter gradients sum to the batch gradient, and each is its sample's own") {
  RestoreThreads guard;
  // im2col and Winograd convolutions, BatchNorm (eval), dense with and without bias.
  Graph g = arch("input(3,8,8) conv(16,k=3,p=1,name=c1) batchnorm(name=bn) relu conv(16,k=3,p=1,name=c2) relu gap "
                 "dense(8,bias=false,name=d1) relu dense(4,name=d2)");
  for (auto& [name, p] : g.named_params())  // non-trivial BatchNorm statistics
    if (name == "bn.running_mean" || name == "bn.bias")
      for (size_t i = 0; i < p->value.size(); ++i) p->value[i] = 0.1f * float(i % 3);
  const Tensor x = noise({5, 3, 8, 8}, 13);
  g.forward(x);
  Tensor seed;
  std::vector<int> labels{0, 3, 1, 2, 3};
  softmax_cross_entropy(g.activation(g.output()), labels, &seed, Reduction::sum);
  const std::vector<int> nodes = {g.at("c1"), g.at("bn"), g.at("c2"), g.at("d1"), g.at("d2")};
  const ParamSlice slice = param_slice(g, nodes);
  CHECK(slice.names.front() == "c1.weight");
  CHECK(slice.names.back() == "d2.bias");
  for (int T : {1, 2}) {
    set_threads(T);
    const Tensor rows = per_sample_param_grads(g, x, seed, nodes);
    REQUIRE(rows.shape() == Shape({5, int(slice.size)}));
    // The batch gradient of the summed loss, from an ordinary training-style backward pass.
    g.forward(x);
    g.zero_grad();
    BackwardOptions o;
    o.param_grads = true;
    g.backward(seed, o);
    Tensor batch(Shape{int(slice.size)}), summed(Shape{int(slice.size)});
    size_t off = 0;
    for (Param* p : slice.params) {
      std::copy_n(p->grad.data(), p->grad.size(), batch.data() + off);
      off += p->grad.size();
    }
    for (int n = 0; n < 5; ++n)
      for (size_t i = 0; i < slice.size; ++i) summed[i] += rows[n * slice.size + i];
    CHECK(max_rel_diff(summed, batch) < 1e-5);
    // Row 3 alone: the gradient of sample 3's loss from a batch of one.
    const Tensor x3 = x.slice(3, 4);
    g.forward(x3);
    g.zero_grad();
    g.backward(seed.slice(3, 4), o);
    Tensor one(Shape{int(slice.size)});
    off = 0;
    for (Param* p : slice.params) {
      std::copy_n(p->grad.data(), p->grad.size(), one.data() + off);
      off += p->grad.size();
    }
    CHECK(max_rel_diff(rows.sample(3).reshaped(Shape{int(slice.size)}), one) < 1e-5);
    // Dot products with directions, and squared norms, without the rows (dense layers by GEMMs).
    const Tensor V = noise({3, int(slice.size)}, 14);
    std::vector<double> norms;
    const Tensor dots = per_sample_grad_dots(g, x, seed, nodes, V, &norms);
    REQUIRE(dots.shape() == Shape({5, 3}));
    Tensor want(Shape{5, 3}), want_norms(Shape{5}), got_norms(Shape{5});
    for (int n = 0; n < 5; ++n) {
      for (int t = 0; t < 3; ++t)
        for (size_t i = 0; i < slice.size; ++i) want[n * 3 + t] += rows[n * slice.size + i] * V[t * slice.size + i];
      for (size_t i = 0; i < slice.size; ++i) want_norms[n] += rows[n * slice.size + i] * rows[n * slice.size + i];
      got_norms[n] = float(norms[n]);
    }
    CHECK(max_rel_diff(dots, want) < 1e-5);
    CHECK(max_rel_diff(got_norms, want_norms) < 1e-5);
    CHECK(max_rel_diff(per_sample_loss_grad_dots(g, x, labels, nodes, V), want) < 1e-5);  // seed from its forward
  }
  CHECK_THROWS_WITH_AS(per_sample_param_grads(g, x, seed, {g.at("c1") + 2}), doctest::Contains("no trainable"),
                       std::invalid_argument);  // a ReLU
  CHECK_THROWS_AS(per_sample_grad_dots(g, x, seed, nodes, Tensor(Shape{2, 7})), ShapeError);
}

TEST_CASE("re-initializing changes exactly the chosen layers, the same way whatever else is chosen") {
  Graph g = arch("input(1,8,8) conv(4,k=3,name=a) batchnorm(name=n) relu flatten dense(6,name=b) relu dense(3,name=c)");
  for (auto& [name, p] : g.named_params())  // move every parameter off its initial value
    for (size_t i = 0; i < p->value.size(); ++i) p->value[i] += 0.5f;
  const Graph before = clone(g);
  reinitialize(g, {g.at("b"), g.at("n")}, 99);
  auto params = g.named_params(), old = before.named_params();
  for (size_t k = 0; k < params.size(); ++k) {
    const std::string& name = params[k].first;
    CAPTURE(name);
    const bool chosen = name.rfind("b.", 0) == 0 || name.rfind("n.", 0) == 0;
    const double d = max_rel_diff(params[k].second->value, old[k].second->value);
    if (chosen)
      CHECK(d > 0.1);
    else
      CHECK(d == 0);
  }
  // BatchNorm back to the identity; the dense bias back to zero.
  CHECK(static_cast<BatchNorm2d&>(g.layer(g.at("n"))).running_var.value[0] == 1.f);
  CHECK(static_cast<Dense&>(g.layer(g.at("b"))).bias.value[2] == 0.f);
  // Layer b alone, with the same seed: the same values.
  Graph h = clone(before);
  reinitialize(h, {h.at("b")}, 99);
  CHECK(max_rel_diff(static_cast<Dense&>(h.layer(h.at("b"))).weight.value,
                     static_cast<Dense&>(g.layer(g.at("b"))).weight.value) == 0);
  reinitialize(h, {h.at("b")}, 100);  // another seed, other values
  CHECK(max_rel_diff(static_cast<Dense&>(h.layer(h.at("b"))).weight.value,
                     static_cast<Dense&>(g.layer(g.at("b"))).weight.value) > 0.1);
}

TEST_CASE("masked units output zero; masking checks its layer and units") {
  Graph g = arch("input(2,6,6) conv(5,k=3,name=c) relu flatten dense(4,name=d)");
  mask_units(g, g.at("c"), {1, 3});
  mask_units(g, g.at("d"), {2});
  g.forward(noise({3, 2, 6, 6}, 14));
  const Tensor& a = g.activation(g.at("c"));
  const size_t plane = size_t(a.dim(2)) * a.dim(3);
  for (int n = 0; n < 3; ++n)
    for (int c = 0; c < 5; ++c) {
      double s = 0;
      for (size_t i = 0; i < plane; ++i) s += std::fabs(a[(size_t(n) * 5 + c) * plane + i]);
      CHECK((s == 0) == (c == 1 || c == 3));
    }
  const Tensor& y = g.activation(g.at("d"));
  for (int n = 0; n < 3; ++n) CHECK(y[size_t(n) * 4 + 2] == 0.f);
  CHECK_THROWS_WITH_AS(mask_units(g, g.at("c") + 1, {0}), doctest::Contains("no filters or units"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(mask_units(g, g.at("d"), {4}), doctest::Contains("unit 4 of layer d outside [0,4)"),
                       std::out_of_range);
}

TEST_CASE("OpenBLAS kernels: a better core is proposed only over a generic fallback, never over the user's choice") {
  const char* before = std::getenv("OPENBLAS_CORETYPE");
  const std::string saved = before ? before : "";
  ::setenv("OPENBLAS_CORETYPE", "Prescott", 1);
  CHECK(better_blas_core().empty());
  ::unsetenv("OPENBLAS_CORETYPE");
  const std::string core = better_blas_core(), now = blas_core();
  CHECK((core.empty() || core == "SkylakeX" || core == "Haswell" || core == "Sandybridge"));
  if (!core.empty()) CHECK(now != core);  // only ever an upgrade from what OpenBLAS chose
  if (before) ::setenv("OPENBLAS_CORETYPE", saved.c_str(), 1);
}

TEST_CASE("OpenBLAS kernels: the benchmark header names the kernels and who chose them") {
  CHECK(blas_description("Cooperlake", nullptr, true, "") == "OpenBLAS Cooperlake kernels");
  CHECK(blas_description("Prescott", nullptr, true, "SkylakeX") ==
        "OpenBLAS Prescott kernels (OpenBLAS's fallback; OPENBLAS_CORETYPE=SkylakeX would be faster)");
  CHECK(blas_description("SkylakeX", "SkylakeX", true, "") == "OpenBLAS SkylakeX kernels (OPENBLAS_CORETYPE=SkylakeX)");
  // A user's AVX2 choice on an AVX-512 CPU is kept, and named as such.
  const std::string haswell = blas_description("Haswell", "Haswell", true, "");
  CHECK(haswell.rfind("OpenBLAS Haswell kernels (OPENBLAS_CORETYPE=Haswell); this CPU has AVX-512", 0) == 0);
  CHECK(blas_description("Haswell", "Haswell", false, "") == "OpenBLAS Haswell kernels (OPENBLAS_CORETYPE=Haswell)");
  const std::string now = blas_description();
  CHECK(now.find("OpenBLAS " + blas_core() + " kernels") != std::string::npos);
  CHECK((now.rfind("glassbox's AVX-512 GEMM for A*B and A^T*B; for A*B^T OpenBLAS ", 0) == 0) == own_gemm_active());
}

namespace {
// C = alpha op(A) B + beta C in double, one element at a time; also the sum of |terms| per element,
// the scale of float32 rounding in it. alpha = 0 reads neither A nor B, as in BLAS.
void reference_gemm(bool ta, int M, int N, int K, float alpha, const std::vector<float>& A, int lda,
                    const std::vector<float>& B, int ldb, float beta, const std::vector<float>& C, int ldc,
                    std::vector<double>& out, std::vector<double>& scale) {
  out.assign(size_t(M) * N, 0.0);
  scale.assign(size_t(M) * N, 0.0);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0, a = 0;
      for (int k = 0; alpha != 0.f && k < K; ++k) {
        const double t = double(ta ? A[size_t(k) * lda + i] : A[size_t(i) * lda + k]) * B[size_t(k) * ldb + j];
        s += t;
        a += std::fabs(t);
      }
      const double c = beta == 0.f ? 0.0 : double(beta) * C[size_t(i) * ldc + j];
      out[size_t(i) * N + j] = alpha * s + c;
      scale[size_t(i) * N + j] = std::fabs(alpha) * a + std::fabs(c);
    }
}

// Runs C = alpha op(A) B + beta C through gemm() and, on AVX-512 CPUs, straight through the kernel,
// with padded rows: the padding of A and B is NaN (a read past a row would show), and C's padding
// must come back unchanged. Returns false after the first failed check.
bool check_gemm(bool ta, int M, int N, int K, float alpha, float beta, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  const float nan = std::nanf("");
  const int lda = (ta ? M : K) + 3, ldb = N + 2, ldc = N + 5, arows = ta ? K : M, acols = ta ? M : K;
  std::vector<float> A(size_t(arows) * lda + 1, nan), B(size_t(K) * ldb + 1, nan), C(size_t(M) * ldc);
  for (int r = 0; r < arows; ++r)
    for (int c = 0; c < acols; ++c) A[size_t(r) * lda + c] = normal(rng);
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < N; ++j) B[size_t(k) * ldb + j] = normal(rng);
  for (float& x : C) x = beta == 0.f ? nan : normal(rng);  // beta = 0 never reads C
  std::vector<double> want, scale;
  reference_gemm(ta, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, want, scale);
  auto check = [&](const char* which, const std::vector<float>& got) {
    INFO(which << " ta=" << ta << " M=" << M << " N=" << N << " K=" << K << " alpha=" << alpha << " beta=" << beta);
    for (int i = 0; i < M; ++i) {
      for (int j = 0; j < N; ++j) {
        const double g = got[size_t(i) * ldc + j], w = want[size_t(i) * N + j];
        // within the worst-case bound of float32 rounding over K + 2 operations
        if (!(std::fabs(g - w) <= (K + 2) * 6e-8 * scale[size_t(i) * N + j])) {
          FAIL_CHECK("(" << i << ", " << j << "): " << g << " vs " << w);
          return false;
        }
      }
      for (int j = N; j < ldc; ++j) {  // the padding between rows of C is left alone
        const float before = C[size_t(i) * ldc + j], after = got[size_t(i) * ldc + j];
        if (!(std::isnan(before) ? std::isnan(after) : after == before)) {
          FAIL_CHECK("wrote past column " << N << " of row " << i);
          return false;
        }
      }
    }
    return true;
  };
  std::vector<float> got = C;
  gemm(ta, false, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, got.data(), ldc);
  if (!check("gemm", got)) return false;
  if (!avx512_gemm_supported()) return true;
  got = C;
  avx512_gemm(ta, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, got.data(), ldc);
  return check("avx512_gemm", got);
}
}  // namespace

TEST_CASE("GEMM: every shape, transpose, stride, alpha and beta matches a double reference") {
  // The kernel's edges: every tile height (1-12 rows, and rows cut into several tiles), columns
  // past a 16- and 32-column vector pair, empty products.
  std::mt19937 rng(7);
  int cases = 0, failed = 0;
  const std::pair<float, float> scalars[] = {{1.f, 0.f}, {-1.5f, 0.f}, {-0.5f, 1.f}, {2.f, 0.25f}, {0.f, 0.5f}};
  for (bool ta : {false, true})
    for (int M : {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 25, 64})
      for (int N : {0, 1, 15, 16, 17, 32, 33, 70})
        for (int K : {0, 1, 3, 64})
          for (auto [alpha, beta] : scalars) {
            failed += !check_gemm(ta, M, N, K, alpha, beta, rng);
            ++cases;
          }
  CHECK(cases == 2 * 12 * 8 * 4 * 5);
  // Long k: B in more than one column chunk (64 + 36 columns; chunks of 32).
  for (bool ta : {false, true}) {
    failed += !check_gemm(ta, 13, 100, 700, 1.f, 0.f, rng);
    failed += !check_gemm(ta, 5, 70, 3000, 0.5f, 1.f, rng);
  }
  CHECK(failed == 0);
  if (!avx512_gemm_supported()) MESSAGE("this CPU has no AVX-512: only OpenBLAS's GEMM was checked");
}

TEST_CASE("GEMM: a product split over threads gives the bits of the one-thread product") {
  RestoreThreads guard;
  std::mt19937 rng(8);
  std::normal_distribution<float> normal;
  // Wide (split by columns) and tall (split by rows), without and with a transposed A, with padded
  // rows (leading dimensions past the matrix).
  for (auto [M, N, K] : {std::array{40, 700, 64}, std::array{300, 40, 96}})
    for (bool ta : {false, true}) {
      const int lda = (ta ? M : K) + 7, ldb = N + 3, ldc = N + 9;
      std::vector<float> A(size_t(ta ? K : M) * lda), B(size_t(K) * ldb), C(size_t(M) * ldc);
      for (float& x : A) x = normal(rng);
      for (float& x : B) x = normal(rng);
      for (float& x : C) x = normal(rng);
      std::vector<float> one = C, two = C;
      set_threads(1);
      gemm(ta, false, M, N, K, 0.75f, A.data(), lda, B.data(), ldb, 0.5f, one.data(), ldc);
      set_threads(2);
      gemm(ta, false, M, N, K, 0.75f, A.data(), lda, B.data(), ldb, 0.5f, two.data(), ldc);
      if (own_gemm_active()) {
        CHECK(one == two);
      } else {  // OpenBLAS's split may sum in another order
        MESSAGE("OpenBLAS runs the products here (tools/dev test runs this again with GLASSBOX_GEMM=own)");
        for (size_t i = 0; i < one.size(); ++i) CHECK(two[i] == doctest::Approx(one[i]).epsilon(1e-4));
      }
      for (int i = 0; i < M; ++i)  // both left the padding alone
        for (int j = N; j < ldc; ++j) CHECK(two[size_t(i) * ldc + j] == C[size_t(i) * ldc + j]);
    }
}
