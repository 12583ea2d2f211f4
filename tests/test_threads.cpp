// Threads: gb::parallel / gb::part, the graph's batch-slice split (it happens; 1 and 2 threads agree;
// 2 threads are deterministic; stop_at / input_grad), MaxPool2d's winners, LRP rules on slices.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/architecture.h"
#include "engine/interrupt.h"
#include "engine/layers.h"
#include "engine/threads.h"
#include "explain/attribution/lrp_rules.h"
#include "train/presets.h"

using namespace gb;

namespace {

Tensor noise(const Shape& s, uint64_t seed, float lo, float hi) {
  Rng r(seed);
  Tensor t(s);
  for (size_t i = 0; i < t.size(); ++i) t[i] = lo + (hi - lo) * r.uniform();
  return t;
}

double rel_err(const Tensor& a, const Tensor& b) {  // ||a - b|| / ||b||, 0 when a == b
  REQUIRE(a.shape() == b.shape());
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) d += std::pow(double(a[i]) - b[i], 2), n += std::pow(double(b[i]), 2);
  return d == 0 ? 0 : std::sqrt(d) / std::max(std::sqrt(n), 1e-30);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Grad {
  int node;
  std::string name;
  Tensor g;
};
std::vector<Grad> grads(Graph& g) {
  std::vector<Grad> v;
  for (int i = 0; i < g.size(); ++i)
    for (Param* p : g.layer(i).params())
      if (p->trainable) v.push_back({i, g.layer(i).name + "." + p->name, p->grad.clone()});
  return v;
}
void check_close(const std::vector<Grad>& a, const std::vector<Grad>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(a[i].name);
    CHECK(rel_err(a[i].g, b[i].g) <= tol);
  }
}

struct Pass {
  Tensor logits, gx;
  std::vector<Grad> grads;
};
// At T threads: forward, zero_grad, one backward giving the input and the parameter gradients.
Pass run(Graph& g, const Tensor& x, const Tensor& seed, Mode mode, int T) {
  set_threads(T);
  Pass p{g.forward(x, mode).clone(), {}, {}};
  g.zero_grad();
  BackwardOptions o;
  o.param_grads = true;
  p.gx = g.backward(seed, o).clone();
  p.grads = grads(g);
  return p;
}

// Copies its input; records the threads and batch sizes of its forward calls.
struct Probe : Layer {
  bool sample_wise;
  double sample_flops;
  std::mutex m;
  std::set<std::thread::id> ids;
  std::vector<int> batches;
  int parallel_calls = 0;  // calls made inside a part of parallel(): the run was split
  explicit Probe(bool sample_wise, double sample_flops = 1e6) : sample_wise(sample_wise), sample_flops(sample_flops) {}
  std::string kind() const override { return "probe"; }
  bool per_sample(Mode) const override { return sample_wise; }
  double flops(const std::vector<Shape>&) const override { return sample_flops; }
  Shape out_shape(const std::vector<Shape>& in) const override { return in[0]; }
  void forward(ForwardCall& c) override {
    std::lock_guard<std::mutex> l(m);
    ids.insert(std::this_thread::get_id());
    batches.push_back(c.out.batch());
    parallel_calls += in_parallel();
    c.out.copy_from(*c.in[0]);
  }
  void backward(BackwardCall& c) override { c.g_in[0]->copy_from(c.g_out); }
};

// Window winners by a plain loop: the first maximum among in-bounds elements, row-major.
std::vector<int32_t> brute_winners(const Tensor& x, int k, int s, int p) {
  const int H = x.dim(2), W = x.dim(3), OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  std::vector<int32_t> out;
  for (int pl = 0; pl < x.dim(0) * x.dim(1); ++pl)
    for (int oh = 0; oh < OH; ++oh)
      for (int ow = 0; ow < OW; ++ow) {
        const float* xp = x.data() + size_t(pl) * H * W;
        int best = -1;
        for (int ih = std::max(oh * s - p, 0); ih < std::min(oh * s - p + k, H); ++ih)
          for (int iw = std::max(ow * s - p, 0); iw < std::min(ow * s - p + k, W); ++iw)
            if (best < 0 || xp[ih * W + iw] > xp[best]) best = ih * W + iw;
        out.push_back(best);
      }
  return out;
}

}  // namespace

TEST_CASE("threads: parallel runs every part once, rethrows, nests; part tiles the range") {
  auto once_each = [](int n) {
    std::vector<std::atomic<int>> count(n);
    parallel(n, [&](int t) { count.at(t)++; });
    for (auto& c : count) CHECK(c == 1);
  };
  for (int n : {1, 2, 5}) once_each(n);
  for (int n : {2, 3}) {
    std::atomic<int> ran{0};
    auto job = [&](int t) {
      ran++;
      if (t == 1) throw std::runtime_error("part 1 failed");
    };
    CHECK_THROWS_WITH_AS(parallel(n, job), "part 1 failed", std::runtime_error);
    CHECK(ran == n);
    once_each(4);  // the pool still works
  }
  std::vector<std::atomic<int>> nested(2 * 3);
  parallel(2, [&](int t) { parallel(3, [&](int u) { nested.at(t * 3 + u)++; }); });
  for (auto& c : nested) CHECK(c == 1);
  for (int size : {0, 1, 3, 7, 64, 65, 1000})
    for (int n : {1, 2, 3, 5, 8}) {
      INFO("size " << size << ", " << n << " parts");
      int prev_end = 0, lo = size, hi = 0;
      for (int t = 0; t < n; ++t) {
        int b, e;
        part(t, n, size, b, e);
        CHECK(b == prev_end);
        lo = std::min(lo, e - b), hi = std::max(hi, e - b), prev_end = e;
      }
      CHECK(prev_end == size);
      CHECK(lo >= 0);
      CHECK(hi - lo <= 1);
    }
}

TEST_CASE("threads: jobs of changing widths run each part exactly once") {
  // A worker without a part in one job must not take a part of the next job twice (the job's
  // generation and width are published together).
  std::array<std::atomic<int>, 8> count;
  int bad = 0;
  for (int it = 0; it < 4000; ++it) {
    const int n = it % 2 ? 2 : 8;
    for (auto& c : count) c = 0;
    parallel(n, [&](int t) { count[size_t(t)]++; });
    for (int t = 0; t < 8; ++t) bad += count[size_t(t)] != (t < n ? 1 : 0);
  }
  CHECK(bad == 0);
}

TEST_CASE("threads: the graph splits per-sample runs above the FLOP or the size threshold only") {
  RestoreThreads guard;
  // 4 MFLOP over the batch, or 512 Ki floats of activations (twice that with signals, backward):
  // {features, FLOPs per sample} with one criterion or the other reached at N = 8, neither at 3.
  const std::pair<int, double> probes[] = {{4, 1e6}, {1 << 16, 0.0}};
  for (const auto& [F, flops] : probes)
    for (int N : {3, 8})
      for (bool sample_wise : {true, false}) {
        const std::string what = std::to_string(F) + " features, batch " + std::to_string(N) +
                                 (sample_wise ? ", per-sample" : ", not per-sample");
        INFO(what);
        Graph g(Shape{F});
        auto* probe = new Probe(sample_wise, flops);
        g.then(std::unique_ptr<Layer>(probe));
        set_threads(2);
        const Tensor x = noise({N, F}, 1, -1, 1);
        CHECK(rel_err(g.forward(x), x) == 0);
        const bool split = sample_wise && N == 8;
        // Split runs hand their groups to the threads as they come free (which thread runs which
        // group is not fixed), so the check is that every call ran in a part of parallel().
        CHECK(probe->parallel_calls == (split ? int(probe->batches.size()) : 0));
        CHECK(probe->ids.size() <= (split ? 2u : 1u));
        if (!split) CHECK(probe->ids.count(std::this_thread::get_id()) == 1);
        // Each thread's half, whole or in groups of rows that fit in cache.
        int rows = 0, largest = 0;
        for (int b : probe->batches) rows += b, largest = std::max(largest, b);
        CHECK(rows == N);
        if (split)
          CHECK(largest <= N / 2);
        else
          CHECK(largest == N);
        CHECK(rel_err(g.backward(x), x) == 0);
      }
}

// A per-sample layer that copies its input and, on thread `slow`, sleeps first: a core that runs
// slower than the others (another load on it, an efficiency core).
struct SlowOn : Layer {
  int slow;
  std::mutex m;
  std::vector<int> rows;  // rows run per thread (call.thread)
  explicit SlowOn(int slow) : slow(slow), rows(2, 0) {}
  std::string kind() const override { return "slow"; }
  bool per_sample(Mode) const override { return true; }
  double flops(const std::vector<Shape>&) const override { return 1e6; }
  Shape out_shape(const std::vector<Shape>& in) const override { return in[0]; }
  void forward(ForwardCall& c) override {
    if (c.thread == slow) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    {
      std::lock_guard<std::mutex> l(m);
      rows[size_t(c.thread)] += c.out.batch();
    }
    c.out.copy_from(*c.in[0]);
  }
  void backward(BackwardCall& c) override { c.g_in[0]->copy_from(c.g_out); }
};

TEST_CASE("threads: a slow thread's groups go to the other, and the bits stay the same") {
  RestoreThreads guard;
  set_threads(2);
  // The slow layer, then a convolution and a BatchNorm in training mode, whose batch sums the
  // groups add in group order, whichever thread ran them.
  const Tensor x = noise({16, 2, 6, 6}, 21, -1, 1);
  Tensor out[2];
  for (int slow : {1, 0}) {
    CAPTURE(slow);
    Graph g(Shape{2, 6, 6});
    auto* probe = new SlowOn(slow);
    g.then(std::unique_ptr<Layer>(probe));
    g.then(std::make_unique<Conv2d>(4, 3, 1, 1));
    g.then(std::make_unique<BatchNorm2d>());
    g.init(5);
    ForwardOptions fo;
    fo.mode = Mode::train;
    out[slow] = g.forward(x, fo).clone();
    // The 16 rows go in groups of 2 (at least four per thread); the fast thread runs its own
    // share and then takes the slow one's from the back, while the slow one sleeps in its first.
    CHECK(probe->rows[0] + probe->rows[1] == 16);
    CHECK(probe->rows[size_t(1 - slow)] >= 12);
  }
  CHECK(same_bits(out[0], out[1]));
}

TEST_CASE("threads: 1 and 2 threads give the same logits, input and parameter gradients") {
  RestoreThreads guard;
  struct Case {
    const char* preset;
    Mode mode;
    std::vector<int> batches;
  };
  const Case cases[] = {{"lenet5", Mode::eval, {1, 3, 64, 65}},
                        {"camnet", Mode::eval, {1, 3, 64, 65}},
                        {"cifar-convnet", Mode::train, {5}},
                        {"resnet8", Mode::train, {5}},
                        {"resnet8", Mode::eval, {5}}};
  for (const Case& c : cases)
    for (int N : c.batches) {
      INFO(c.preset << (c.mode == Mode::train ? " train" : " eval") << ", batch " << N);
      Graph g = make_preset(c.preset, {}, 0, 7);
      const Tensor x = noise(g.shape(-1, N), 100 + N, 0, 1), seed = noise(g.shape(g.output(), N), 200 + N, -1, 1);
      Pass a = run(g, x, seed, c.mode, 1), b = run(g, x, seed, c.mode, 2);
      CHECK(rel_err(b.logits, a.logits) <= 1e-4);
      CHECK(rel_err(b.gx, a.gx) <= 1e-4);
      check_close(b.grads, a.grads, 1e-4);
    }
}

TEST_CASE("threads: parameter gradients at 2 threads are bit-identical from pass to pass") {
  RestoreThreads guard;
  for (const std::string preset : {"lenet5", "camnet", "resnet8"}) {  // camnet: Winograd gradients carried per thread
    INFO(preset);
    const bool train = preset == "resnet8";
    const int N = train ? 6 : 64;
    Graph g = make_preset(preset, {}, 0, 5);
    const Tensor x = noise(g.shape(-1, N), 1, 0, 1), seed = noise(g.shape(g.output(), N), 2, -1, 1);
    const Mode mode = train ? Mode::train : Mode::eval;
    Pass a = run(g, x, seed, mode, 2), b = run(g, x, seed, mode, 2);
    for (size_t i = 0; i < a.grads.size(); ++i)
      CHECK_MESSAGE(same_bits(a.grads[i].g, b.grads[i].g), a.grads[i].name);
    // Without zero_grad, another backward adds the same gradients again (thread buffers restart at 0).
    BackwardOptions o;
    o.param_grads = true;
    g.backward(seed, o);
    for (auto& gr : b.grads)
      for (size_t q = 0; q < gr.g.size(); ++q) gr.g[q] *= 2;
    check_close(grads(g), b.grads, 1e-5);
  }
}

TEST_CASE("threads: BatchNorm's backward sums read its output behind a ReLU and agree with those over its input") {
  RestoreThreads guard;
  // Σ g·x̂ = Σ g·(y − β)/γ over the output the ReLU ran in place over, against the same sums over
  // the input (what any backward with rules takes); channel 0 (γ = 0) and channel 1 (|β| > 16 |γ|)
  // must take the input in both. The sums are in double, so the two agree to the float bits but
  // where y's rounding is magnified: channel 5, |β| = 16 |γ|, shows the output was read.
  Graph g = graph_from_text("input(3,10,10) conv(6,k=3,p=1,bias=false) batchnorm relu "
                                               "conv(4,k=3,p=1) gap dense(3)");
  g.init(3);
  auto* bn = dynamic_cast<BatchNorm2d*>(&g.layer(1));
  REQUIRE(bn);
  const float gamma[6] = {0.f, 0.1f, -0.7f, 1.3f, 0.4f, 0.1f}, beta[6] = {0.2f, 1.7f, 0.3f, -0.5f, 0.f, 1.6f};
  for (int c = 0; c < 6; ++c) bn->weight.value[c] = gamma[c], bn->bias.value[c] = beta[c];
  for (int T : {1, 2}) {
    INFO(T << " thread(s)");
    set_threads(T);
    const int N = 8;
    const Tensor x = noise(g.shape(-1, N), 7, -1, 1), seed = noise(g.shape(g.output(), N), 8, -1, 1);
    auto pass = [&](const BackwardRules* rules, int seed_at) {
      ForwardOptions fo;
      fo.mode = Mode::train;
      g.forward(x, fo);
      g.zero_grad();
      BackwardOptions bo;
      bo.param_grads = true;
      bo.rules = rules;
      bo.seed_at = seed_at;
      const Tensor s = seed_at < 0 ? seed : noise(g.shape(seed_at, N), 9, -1, 1);
      Pass p{Tensor(), g.backward(s, bo).clone(), grads(g)};
      return p;
    };
    const BackwardRules none(g.size());  // no rule on any layer, but rules: the sums read x
    // Seeded at the BatchNorm, its signal is not the ReLU's: the ReLU's zeros must not be read.
    const Pass at_bn = pass(nullptr, 1), at_bn_ref = pass(&none, 1);
    CHECK(rel_err(at_bn.gx, at_bn_ref.gx) <= 1e-5);
    check_close(at_bn.grads, at_bn_ref.grads, 1e-5);
    const Pass from_out = pass(nullptr, -1), from_in = pass(&none, -1);
    CHECK(rel_err(from_out.gx, from_in.gx) <= 1e-5);
    check_close(from_out.grads, from_in.grads, 1e-5);
    const Tensor& w_out = from_out.grads[1].g;  // batchnorm1.weight: Σ g·x̂ per channel
    const Tensor& w_in = from_in.grads[1].g;
    REQUIRE(from_out.grads[1].name == "batchnorm1.weight");
    for (int c = 0; c < 6; ++c) CHECK(std::isfinite(w_out[c]));
    CHECK(w_out[0] == w_in[0]);  // the same sums, bit for bit
    CHECK(w_out[1] == w_in[1]);
    CHECK(w_out[5] != w_in[5]);
    CHECK(w_out[5] == doctest::Approx(w_in[5]).epsilon(1e-4));
  }
}

TEST_CASE("threads: in-place layers in training give the same bits as separate buffers, allocate nothing") {
  RestoreThreads guard;
  // Layers that share their first input's activation (ReLUs and adds that are its only reader, the
  // input's layer not reading its own output in backward: every ReLU and add in these presets),
  // and those that share its signal (also every BatchNorm, whose conv has no other reader). In
  // "mixed", the first conv's output is also read by the add: neither of its readers shares it;
  // the second ReLU follows a ReLU (whose backward reads its output): it shares only the signal.
  struct Case {
    const char* preset;
    int activations, signals;
  };
  const Case cases[] = {{"cifar-convnet", 6, 12}, {"resnet8", 10, 19}, {"camnet", 3, 3}, {"mixed", 2, 4}};
  for (const Case& c : cases)
    for (int T : {1, 2}) {
      INFO(c.preset << ", " << T << " thread(s)");
      set_threads(T);
      const bool mixed = std::string(c.preset) == "mixed";
      Graph g = mixed ? graph_from_text("input(3,12,12) conv(8,k=3,p=1,name=c) relu relu "
                                                           "conv(8,k=3,p=1) add(c) batchnorm relu gap dense(4)")
                      : make_preset(c.preset, {}, 0, 11);
      if (mixed) g.init(11);
      const int N = 6;
      const Tensor x = noise(g.shape(-1, N), 5, 0, 1), seed = noise(g.shape(g.output(), N), 6, -1, 1);
      // Hooks keep every activation and signal: the reference.
      auto keep_all = [](int, const Tensor&) {};
      ForwardOptions fo;
      fo.mode = Mode::train;
      fo.on_node = keep_all;
      BackwardOptions bo;
      bo.param_grads = true;
      bo.on_node = keep_all;
      Pass ref{g.forward(x, fo).clone(), {}, {}};
      g.zero_grad();
      ref.gx = g.backward(seed, bo).clone();
      ref.grads = grads(g);
      auto shared = [&](bool signals) {  // layers sharing their first input's activation or signal
        int n = 0;
        for (int i = 0; i < g.size(); ++i) {
          const int j = g.node(i).inputs[0];
          if (j >= 0)
            n += signals ? g.signal(i).data() == g.signal(j).data() : g.activation(i).data() == g.activation(j).data();
          for (size_t a = 1; a < g.node(i).inputs.size(); ++a) {  // only the first input's, never another's
            const int k = g.node(i).inputs[a];
            CHECK(g.activation(i).data() != g.activation(k).data());
            CHECK(g.signal(i).data() != g.signal(k).data());
          }
        }
        return n;
      };
      CHECK(shared(false) == 0);
      CHECK(shared(true) == 0);

      const Pass in = run(g, x, seed, Mode::train, T);
      CHECK(shared(false) == c.activations);
      CHECK(shared(true) == c.signals);
      CHECK(same_bits(in.logits, ref.logits));
      CHECK(same_bits(in.gx, ref.gx));
      for (size_t k = 0; k < ref.grads.size(); ++k) CHECK_MESSAGE(same_bits(in.grads[k].g, ref.grads[k].g), ref.grads[k].name);

      // The next step reuses every buffer: sharing allocates nothing from step to step.
      std::vector<const float*> acts, sigs;
      for (int i = 0; i < g.size(); ++i) acts.push_back(g.activation(i).data()), sigs.push_back(g.signal(i).data());
      run(g, x, seed, Mode::train, T);
      for (int i = 0; i < g.size(); ++i) {
        CAPTURE(g.layer(i).name);
        CHECK(g.activation(i).data() == acts[i]);
        CHECK(g.signal(i).data() == sigs[i]);
      }
      // Eval passes: every layer's own activation and signal again.
      g.forward(x);
      g.backward(seed);
      CHECK(shared(false) == 0);
      CHECK(shared(true) == 0);
    }
}

TEST_CASE("threads: stop_at and input_grad=false agree at 1 and 2 threads") {
  RestoreThreads guard;
  Graph g = make_preset("lenet5", {}, 0, 9);
  const int N = 64, mid = g.at("maxpool2");
  const Tensor x = noise(g.shape(-1, N), 3, 0, 1), seed = noise(g.shape(g.output(), N), 4, -1, 1);
  Tensor stop_sig[2];
  std::vector<Grad> stop_grads[2], noin_grads[2];
  for (int T : {1, 2}) {
    INFO(T << " threads");
    const Pass full = run(g, x, seed, Mode::eval, T);
    const Tensor full_mid = g.signal(mid).clone();
    BackwardOptions o;
    o.param_grads = true;
    o.stop_at = mid;
    g.zero_grad();
    stop_sig[T - 1] = g.backward(seed, o).clone();
    CHECK(rel_err(stop_sig[T - 1], full_mid) <= 1e-6);
    stop_grads[T - 1] = grads(g);
    for (size_t i = 0; i < full.grads.size(); ++i) {  // layers above stop_at as before, below untouched
      const Grad& s = stop_grads[T - 1][i];
      CAPTURE(s.name);
      if (s.node > mid)
        CHECK(rel_err(s.g, full.grads[i].g) <= 1e-6);
      else
        CHECK(rel_err(s.g, Tensor(s.g.shape(), 0.f)) == 0);
    }
    o.stop_at = -1;
    o.input_grad = false;
    g.zero_grad();
    g.backward(seed, o);
    noin_grads[T - 1] = grads(g);
    check_close(noin_grads[T - 1], full.grads, 1e-6);
  }
  CHECK(rel_err(stop_sig[1], stop_sig[0]) <= 1e-4);
  check_close(stop_grads[1], stop_grads[0], 1e-4);
  check_close(noin_grads[1], noin_grads[0], 1e-4);
}

TEST_CASE("threads: MaxPool2d winners break ties row-major; forward and backward use them") {
  const Tensor x = Tensor::from({1, 1, 4, 4}, {1, 3, 2, 2, 3, 0, 2, 1, 5, 5, -2, -2, 5, 5, -2, -2});
  std::vector<int32_t> am(4);
  MaxPool2d(2).winners(x, am.data());
  // the 3 at (0,1) before the 3 at (1,0); the first of three 2s; all 5; all -2
  CHECK(am == std::vector<int32_t>{1, 2, 8, 10});
  // 2x2 stride-2 windows run 8 or 4 at a time, the last block of a row overlapping the one
  // before: rows of 3, 7, 8, 14 and 19 windows, odd and even planes.
  const std::vector<Shape> shapes = {{2, 2, 5, 6},  {1, 2, 4, 6},  {1, 3, 6, 14},
                                     {1, 2, 4, 16}, {1, 2, 4, 28}, {2, 1, 3, 39}};
  for (const auto& ksp : {std::array<int, 3>{3, 1, 1}, {2, 2, 0}, {3, 2, 1}, {2, 1, 0}})
    for (const Shape& xs : shapes) {
      const int k = ksp[0], s = ksp[1], p = ksp[2];  // (clang 14 cannot capture structured bindings in INFO)
      if (k != 2 && xs != shapes[0]) continue;
      INFO("k=" << k << " s=" << s << " p=" << p << " x " << xs.str());
      Rng r(uint64_t(k * 100 + s * 10 + p));
      Tensor xt(xs);
      for (size_t i = 0; i < xt.size(); ++i) xt[i] = float(r.below(3)) - 1;  // many ties
      const std::vector<int32_t> want = brute_winners(xt, k, s, p);
      MaxPool2d mp(k, s, p);
      const Shape ys = mp.out_shape({xt.shape()});
      REQUIRE(ys.numel() == want.size());
      std::vector<int32_t> got(want.size());
      mp.winners(xt, got.data());
      CHECK(got == want);
      // Forward takes the winners' values; backward sends each output's gradient to its winner
      // (integer gradients: the sums are exact in any order).
      Graph g(Shape{xs[1], xs[2], xs[3]});
      g.then<MaxPool2d>(k, s, p);
      const Tensor y = g.forward(xt).clone();
      Tensor gy(y.shape()), expect(xt.shape(), 0.f);
      for (size_t o = 0; o < gy.size(); ++o) gy[o] = float(r.below(7)) - 3;
      const Tensor gx = g.backward(gy).clone();
      const size_t HW = size_t(xs[2]) * xs[3], OHW = size_t(ys[2]) * ys[3];
      for (size_t o = 0; o < want.size(); ++o) {
        CHECK(y[o] == xt[o / OHW * HW + want[o]]);
        expect[o / OHW * HW + want[o]] += gy[o];
      }
      CHECK(rel_err(gx, expect) == 0);
    }
}

TEST_CASE("threads: LRP composites give the same relevance at 1 and 2 threads") {
  RestoreThreads guard;
  Graph g = make_preset("lenet5", {}, 0, 11);
  const int N = 64;
  const Tensor x = noise(g.shape(-1, N), 5, 0, 1);
  std::vector<int> targets(N);
  for (int n = 0; n < N; ++n) targets[n] = n % g.classes();
  for (const char* comp : {"epsilon-gamma-box", "epsilon-plus-flat"}) {
    INFO(comp);
    set_threads(1);
    const Tensor a = explain::lrp(g, x, targets, comp).attribution;
    set_threads(2);
    CHECK(rel_err(explain::lrp(g, x, targets, comp).attribution, a) <= 1e-4);
  }
}

namespace {
// A BatchNorm that records which threads run its forward and backward and on how many rows.
struct BatchNormProbe : BatchNorm2d {
  std::mutex m;
  std::set<std::thread::id> fwd_ids, bwd_ids;
  std::vector<int> fwd_rows;
  int fwd_serial = 0;  // forward calls outside a part of parallel()
  void forward(ForwardCall& c) override {
    {
      std::lock_guard<std::mutex> l(m);
      fwd_ids.insert(std::this_thread::get_id());
      fwd_rows.push_back(c.out.batch());
      fwd_serial += !in_parallel();
    }
    BatchNorm2d::forward(c);
  }
  void backward(BackwardCall& c) override {
    {
      std::lock_guard<std::mutex> l(m);
      bwd_ids.insert(std::this_thread::get_id());
    }
    BatchNorm2d::backward(c);
  }
};
}  // namespace

TEST_CASE("threads: BatchNorm in training runs on slices, with the serial formula's result") {
  RestoreThreads guard;
  const int N = 7;  // uneven slices
  const Tensor x = noise({N, 16, 16, 16}, 31, -1, 3), seed = noise({N, 10}, 32, -1, 1);
  struct Out {
    Pass pass;
    std::vector<float> running_mean, running_var;
    size_t fwd_threads = 0, bwd_threads = 0, fwd_calls = 0;
    int fwd_serial = 0;
  };
  auto run_at = [&](int T) {
    // The probe is the second BatchNorm, between two convolutions: its forward run (with the
    // convolution above) and its backward run (with the one below) are large enough to split.
    Graph g(Shape{16, 16, 16});
    auto* bn = new BatchNormProbe;
    g.then<BatchNorm2d>().then<ReLU>().then<Conv2d>(16, 3, 1, 1, false).then(std::unique_ptr<Layer>(bn));
    g.then<ReLU>().then<Conv2d>(16, 3, 1, 1).then<ReLU>().then<GlobalAvgPool>().then<Dense>(10);
    g.init(3);
    for (auto& [name, p] : g.named_params())  // non-trivial affine parameters
      if (name.find("batchnorm") == 0 && p->trainable)
        for (size_t i = 0; i < p->value.size(); ++i) p->value[i] += 0.1f * float(i % 5);
    Out o{run(g, x, seed, Mode::train, T), {}, {}, bn->fwd_ids.size(), bn->bwd_ids.size(), bn->fwd_rows.size(),
          bn->fwd_serial};
    o.running_mean.assign(bn->running_mean.value.data(), bn->running_mean.value.data() + 16);
    o.running_var.assign(bn->running_var.value.data(), bn->running_var.value.data() + 16);
    return o;
  };
  const Out one = run_at(1);
  for (int T : {2, 3}) {
    INFO(T << " threads");
    const Out many = run_at(T);
    // Forward: groups of rows handed to the threads as they come free (which thread runs which
    // is not fixed). Backward, with parameter gradients: every thread's own slice.
    CHECK(many.fwd_serial == 0);
    CHECK(many.fwd_calls > 1);
    CHECK(many.fwd_threads <= size_t(T));
    CHECK(many.bwd_threads == size_t(T));
    CHECK(rel_err(many.pass.logits, one.pass.logits) <= 1e-5);
    CHECK(rel_err(many.pass.gx, one.pass.gx) <= 1e-5);
    check_close(many.pass.grads, one.pass.grads, 1e-5);  // γ, β and the convolutions below
    for (int c = 0; c < 16; ++c) {
      CHECK(many.running_mean[c] == doctest::Approx(one.running_mean[c]).epsilon(1e-5));
      CHECK(many.running_var[c] == doctest::Approx(one.running_var[c]).epsilon(1e-5));
    }
    const Out again = run_at(T);  // a thread count always gives the same bits
    CHECK(same_bits(again.pass.gx, many.pass.gx));
    for (size_t i = 0; i < many.pass.grads.size(); ++i) CHECK(same_bits(again.pass.grads[i].g, many.pass.grads[i].g));
  }
}

TEST_CASE("threads: an interrupt check stops the next forward pass, and only after 20 ms") {
  Graph g = graph_from_text("input(4) dense(3) relu dense(2)");
  g.init(1);
  const Tensor x = Tensor::from({1, 4}, {0.5f, -1.f, 2.f, 0.25f});
  const Tensor before = g.forward(x).clone();
  int asked = 0;
  {
    InterruptCheck check([&] { return ++asked > 0; });
    const auto start = std::chrono::steady_clock::now();
    g.forward(x);  // a short call does not ask
    if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(15)) CHECK(asked == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    CHECK_THROWS_AS(g.forward(x), Interrupted);
    CHECK_THROWS_AS(g.forward(x), Interrupted);  // said stop once: not asked again
    CHECK(asked == 1);
  }
  const Tensor after = g.forward(x).clone();  // no check: the model is as it was
  for (size_t i = 0; i < before.size(); ++i) CHECK(after[i] == before[i]);
}
