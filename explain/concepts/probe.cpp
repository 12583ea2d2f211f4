// Linear probes of every chosen layer, trained together: each mini-batch runs the model once (up to
// the highest probed layer) and every probe takes an Adam step on its layer's features. Passes: the
// training split's feature statistics, `epochs` training passes, then the final probes' accuracy
// and loss on the training and test splits.
#include "explain/concepts/probe.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <stdexcept>

#include "engine/argmax.h"
#include "engine/blas.h"
#include "engine/rng.h"
#include "engine/threads.h"
#include "explain/concepts/method.h"
#include "explain/concepts/patterns.h"

namespace gb::concepts {

namespace {

// A probe's weights are K × F floats, kept three times (value and Adam's two moments).
constexpr double kMaxWeights = 50e6;

struct ProbeOptions {
  bool gap = false, cosine = true;
  int epochs = 3, batch = 128;
  double lr = 0.01, l2 = 0;
  uint64_t seed = 0;
};

ProbeOptions read_probe_options(ParamReader& r) {
  ProbeOptions o;
  o.gap = read_choice(r, "features", {"flatten", "gap"}) == "gap";
  o.epochs = read_int(r, "epochs", 1, 1000);
  o.batch = read_int(r, "batch", 1, 65536);
  o.lr = read_number(r, "lr", 1e-12, 10);
  o.cosine = read_choice(r, "schedule", {"cosine", "constant"}) == "cosine";
  o.l2 = read_number(r, "l2", 0, 1e6);
  o.seed = uint64_t(read_number(r, "seed", 0, 9007199254740992.0));
  return o;
}

}  // namespace

void add_probe_methods(std::vector<Method>& registry) {
  registry.push_back(
      {{"probe",
        "Linear probes: a softmax classifier per layer on its activations, trained on the training split, "
        "accuracy on the test split",
        {{"features", "flatten", "flatten (every unit, Alain & Bengio) or gap (each channel's mean over positions)"},
         {"epochs", "3", "passes over the training split, 1..1000"},
         {"batch", "128", "examples per Adam step (one model forward per step), 1..65536"},
         {"lr", "0.01", "Adam's (initial) learning rate, [1e-12, 10]"},
         {"schedule", "cosine", "cosine (the rate falls from lr to 0 over the steps, as CosineAnnealingLR) or constant"},
         {"l2", "0", "L2 penalty on the weights (added to the gradient, as torch.optim.Adam's weight_decay), 0..1e6"},
         explain::seed_param("0", "seed of the mini-batch order")},
        "Alain & Bengio 2016: softmax regression on a layer's features, train split for fitting, test split for "
        "the score. Difference: features standardized by the training split's mean and std (the paper does not "
        "say; it makes one step size fit every layer); Adam from zero weights, a fixed number of epochs"},
       Kind::probe,
       [](ParamReader& r) { read_probe_options(r); }});
}

namespace {

// One layer's probe and its Adam state.
struct Probe {
  int node = -1, F = 0, K = 0, C = 1, HW = 1;  // gap: C channels of HW positions
  bool gap = false;
  std::vector<double> sum, sumsq;  // the statistics pass
  std::vector<float> mean, inv_scale;
  Tensor W, b, mW, vW, mb, vb;
  Tensor z, logits;  // per batch: standardized features [B, F], logits then their gradient [B, K]
  double loss = 0;
  int correct = 0;
};

// Row i's features of the layer's output a ([B, node shape...]) into dst (F values).
void features_of(const Probe& p, const Tensor& a, int i, float* dst) {
  const float* src = a.data() + size_t(i) * a.sample_size();
  if (!p.gap) {
    std::copy_n(src, p.F, dst);
    return;
  }
  for (int c = 0; c < p.C; ++c) dst[c] = float(sum(src + size_t(c) * p.HW, p.HW) / p.HW);
}

// The rows' standardized features into p.z ([B, F]).
void standardize(Probe& p, const Tensor& a, int B) {
  p.z.resize(Shape{B, p.F});
  for (int i = 0; i < B; ++i) {
    float* z = p.z.data() + size_t(i) * p.F;
    features_of(p, a, i, z);
    for (int f = 0; f < p.F; ++f) z[f] = (z[f] - p.mean[f]) * p.inv_scale[f];
  }
}

// Logits of p.z into p.logits, then (with labels) the mean cross-entropy's gradient in their place;
// adds the batch's summed loss and correct count.
void forward_loss(Probe& p, const int* labels, int B, bool gradient) {
  p.logits.resize(Shape{B, p.K});
  for (int i = 0; i < B; ++i) std::copy_n(p.b.data(), p.K, p.logits.data() + size_t(i) * p.K);
  gemm(false, true, B, p.K, p.F, 1.f, p.z.data(), p.W.data(), 1.f, p.logits.data());
  for (int i = 0; i < B; ++i) {
    float* z = p.logits.data() + size_t(i) * p.K;
    const float top = *std::max_element(z, z + p.K);
    double total = 0;
    for (int k = 0; k < p.K; ++k) total += std::exp(double(z[k]) - top);
    p.loss += top + std::log(total) - z[labels[i]];
    p.correct += argmax(z, p.K) == labels[i];
    if (!gradient) continue;
    for (int k = 0; k < p.K; ++k) z[k] = float((std::exp(double(z[k]) - top) / total - (k == labels[i])) / B);
  }
}

// torch.optim.Adam's step (β 0.9, 0.999, ε 1e-8, bias-corrected; weight_decay as L2 in the gradient).
void adam(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr, double l2, int t) {
  const double c1 = 1 - std::pow(0.9, t), c2 = std::sqrt(1 - std::pow(0.999, t));
  for (size_t i = 0; i < w.size(); ++i) {
    const float gi = float(g[i] + l2 * w[i]);
    m[i] = 0.9f * m[i] + 0.1f * gi;
    v[i] = 0.999f * v[i] + 0.001f * gi * gi;
    w[i] -= float(lr / c1 * m[i] / (std::sqrt(double(v[i])) / c2 + 1e-8));
  }
}

void step(Probe& p, const int* labels, int B, double lr, const ProbeOptions& o, int t, Tensor& gW, Tensor& gb) {
  forward_loss(p, labels, B, true);
  gemm(true, false, p.K, p.F, B, 1.f, p.logits.data(), p.z.data(), 0.f, gW.data());
  gb.fill(0.f);
  for (int i = 0; i < B; ++i)
    for (int k = 0; k < p.K; ++k) gb[k] += p.logits[size_t(i) * p.K + k];
  adam(p.W, gW, p.mW, p.vW, lr, o.l2, t);
  adam(p.b, gb, p.mb, p.vb, lr, 0, t);
}

// Runs rows order[0..n) of x through the model in batches, calling fn(batch activations per probe,
// the batch's first position in `order`, rows). One forward per batch, up to the highest layer.
template <class Fn>
void each_batch(Graph& g, const Tensor& x, const std::vector<int>& order, int batch, const std::vector<Probe>& probes,
                Tensor& xb, Fn&& fn) {
  int top = -1;
  for (const Probe& p : probes) top = std::max(top, p.node);
  ForwardOptions fo;
  fo.until = top;
  const size_t s = x.sample_size();
  const int n = int(order.size());
  std::vector<const Tensor*> acts(probes.size());
  for (int b = 0; b < n; b += batch) {
    const int B = std::min(n, b + batch) - b;
    xb.resize(x.shape().with_batch(B));
    for (int i = 0; i < B; ++i) std::copy_n(x.data() + size_t(order[b + i]) * s, s, xb.data() + size_t(i) * s);
    if (top >= 0) g.forward(xb, fo);
    for (size_t k = 0; k < probes.size(); ++k) acts[k] = probes[k].node < 0 ? &xb : &g.activation(probes[k].node);
    fn(acts, b, B);
  }
}

// fn(k) for every probe, the probes shared out among the threads (largest first, each to the
// least loaded thread), each thread's GEMMs on that thread: a probe's GEMMs are too thin (K rows)
// for OpenBLAS's own threads to pay off. Every probe is computed the same way at any thread count.
template <class Fn>
void for_each_probe(const std::vector<Probe>& probes, Fn&& fn) {
  const int T = std::max(1, std::min(threads(), int(probes.size())));
  std::vector<std::vector<size_t>> share(T);
  std::vector<double> load(T, 0.0);
  std::vector<size_t> by_size(probes.size());
  std::iota(by_size.begin(), by_size.end(), 0);
  std::stable_sort(by_size.begin(), by_size.end(), [&](size_t a, size_t b) { return probes[a].F > probes[b].F; });
  for (size_t k : by_size) {
    const int t = int(std::min_element(load.begin(), load.end()) - load.begin());
    share[t].push_back(k);
    load[t] += probes[k].F;
  }
  parallel(T, [&](int t) {
    BlasSerial serial;
    for (size_t k : share[t]) fn(k);
  });
}

std::vector<int> identity(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

void check_labels(const std::vector<int>& y, int n, int K, const std::string& what) {
  if (int(y.size()) != n)
    throw std::invalid_argument(what + ": " + std::to_string(y.size()) + " labels for " + std::to_string(n) + " examples");
  for (size_t i = 0; i < y.size(); ++i)
    if (y[i] < 0 || y[i] >= K)
      throw std::out_of_range(what + ": label " + std::to_string(y[i]) + " of example " + std::to_string(i) +
                              " outside [0, " + std::to_string(K) + ")");
}

std::vector<Probe> make_probes(const Graph& g, const std::vector<int>& layers, int K, bool gap) {
  std::vector<Probe> probes;
  std::set<int> seen;
  for (int node : layers) {
    if (node < -1 || node >= g.size()) throw std::invalid_argument("probe: node " + std::to_string(node) + " is not a layer");
    if (!seen.insert(node).second) throw std::invalid_argument("probe: layer " + layer_name(g, node) + " given twice");
    Probe p;
    p.node = node;
    p.K = K;
    const Shape s = g.shape(node).sample();
    p.gap = gap && s.rank == 3;
    p.C = p.gap ? s[0] : 1;
    p.HW = p.gap ? s[1] * s[2] : 1;
    p.F = p.gap ? p.C : int(s.numel());
    if (double(p.F) * K > kMaxWeights)
      throw std::invalid_argument("probe: layer " + layer_name(g, node) + " has " + std::to_string(p.F) + " features x " +
                                  std::to_string(K) + " classes, more than 50 million weights (try --param features=gap)");
    p.sum.assign(p.F, 0.0);
    p.sumsq.assign(p.F, 0.0);
    for (Tensor* t : {&p.W, &p.mW, &p.vW}) *t = Tensor(Shape{K, p.F});
    for (Tensor* t : {&p.b, &p.mb, &p.vb}) *t = Tensor(Shape{K});
    probes.push_back(std::move(p));
  }
  return probes;
}

// The mean and standard deviation per feature over the training split (at most kStatisticsRows
// rows, evenly spaced: they only set the scale). A feature constant over them is dropped (scale
// 0): it carries nothing a linear probe can use beyond its bias, and with scale 1 the last bits in
// which a batch's activations differ from these statistics' would be learnt as signal.
constexpr int kStatisticsRows = 10000;
void feature_statistics(Graph& g, const ProbeRequest& q, std::vector<Probe>& probes, int batch, Tensor& xb) {
  const int total = q.train_x.batch(), N = std::min(total, kStatisticsRows);
  std::vector<int> rows(N);
  for (int i = 0; i < N; ++i) rows[i] = int(int64_t(i) * total / N);
  std::vector<float> f;
  each_batch(g, q.train_x, rows, batch, probes, xb, [&](const std::vector<const Tensor*>& acts, int b, int B) {
    for (size_t k = 0; k < probes.size(); ++k) {
      Probe& p = probes[k];
      f.resize(p.F);
      for (int i = 0; i < B; ++i) {
        features_of(p, *acts[k], i, f.data());
        for (int j = 0; j < p.F; ++j) p.sum[j] += f[j], p.sumsq[j] += double(f[j]) * f[j];
      }
    }
    if (q.progress) q.progress("feature statistics", b + B, N);
  });
  for (Probe& p : probes) {
    p.mean.resize(p.F);
    p.inv_scale.resize(p.F);
    for (int j = 0; j < p.F; ++j) {
      const double m = p.sum[j] / N, var = std::max(0.0, p.sumsq[j] / N - m * m);
      p.mean[j] = float(m);
      p.inv_scale[j] = var > 1e-12 * (1 + m * m) ? float(1 / std::sqrt(var)) : 0.f;
    }
  }
}

// Mean loss and accuracy of every probe over a split.
void evaluate(Graph& g, const Tensor& x, const std::vector<int>& y, std::vector<Probe>& probes, int batch, Tensor& xb,
              const StageProgress& progress, const std::string& stage) {
  for (Probe& p : probes) p.loss = 0, p.correct = 0;
  const int N = x.batch();
  each_batch(g, x, identity(N), batch, probes, xb, [&](const std::vector<const Tensor*>& acts, int b, int B) {
    for_each_probe(probes, [&](size_t k) {
      standardize(probes[k], *acts[k], B);
      forward_loss(probes[k], y.data() + b, B, false);
    });
    if (progress) progress(stage, b + B, N);
  });
}

}  // namespace

ProbeResult probe(Graph& g, const ProbeRequest& q, const Params& params, const std::string& method) {
  const Method& m = find_method(method, Kind::probe);
  ParamReader reader(params, m.info);
  const ProbeOptions o = read_probe_options(reader);
  reader.done();
  check_examples(g, q.train_x, "probe training data");
  check_examples(g, q.test_x, "probe test data");
  if (q.layers.empty()) throw std::invalid_argument("probe: no layers given");
  int K = q.classes;
  if (K <= 0)
    for (int y : q.train_y) K = std::max(K, y + 1);
  if (K < 2) throw std::invalid_argument("probe: needs at least 2 classes, has " + std::to_string(K));
  check_labels(q.train_y, q.train_x.batch(), K, "probe training labels");
  check_labels(q.test_y, q.test_x.batch(), K, "probe test labels");

  std::vector<Probe> probes = make_probes(g, q.layers, K, o.gap);
  Tensor xb;
  feature_statistics(g, q, probes, o.batch, xb);
  const int N = q.train_x.batch();
  std::vector<int> order = identity(N), labels(o.batch);
  std::vector<Tensor> gW, gb;
  for (const Probe& p : probes) gW.emplace_back(Shape{p.K, p.F}), gb.emplace_back(Shape{p.K});
  int t = 0;
  const int steps = o.epochs * ((N + o.batch - 1) / o.batch);
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    Rng rng(mix_seed(o.seed, uint64_t(epoch)));
    for (int i = N - 1; i > 0; --i) std::swap(order[i], order[rng.below(uint32_t(i + 1))]);  // Fisher-Yates
    const std::string stage = "epoch " + std::to_string(epoch) + "/" + std::to_string(o.epochs);
    each_batch(g, q.train_x, order, o.batch, probes, xb, [&](const std::vector<const Tensor*>& acts, int b, int B) {
      for (int i = 0; i < B; ++i) labels[i] = q.train_y[order[b + i]];
      // CosineAnnealingLR(T_max = every step, eta_min = 0), stepped after each update.
      const double lr = o.cosine ? o.lr * 0.5 * (1 + std::cos(M_PI * t / steps)) : o.lr;
      ++t;
      for_each_probe(probes, [&](size_t k) {
        standardize(probes[k], *acts[k], B);
        step(probes[k], labels.data(), B, lr, o, t, gW[k], gb[k]);
      });
      if (q.progress) q.progress(stage, b + B, N);
    });
    for (const Probe& p : probes)
      for (size_t i = 0; i < p.W.size(); ++i)
        if (!std::isfinite(p.W[i]))
          throw std::runtime_error("probe of " + layer_name(g, p.node) + ": training diverged (try a lower --param lr)");
  }

  ProbeResult r;
  r.classes = K;
  r.epochs = o.epochs;
  for (const Probe& p : probes) {
    LayerProbe lp;
    lp.node = p.node;
    lp.layer = layer_name(g, p.node);
    lp.features = p.F;
    lp.weight = p.W;
    lp.bias = p.b;
    lp.mean = Tensor::from(Shape{p.F}, p.mean);
    std::vector<float> scale(p.F);
    // A dropped (constant) feature's weights stay 0, so any scale reproduces the logits; 1 is reported.
    for (int j = 0; j < p.F; ++j) scale[j] = p.inv_scale[j] > 0 ? 1 / p.inv_scale[j] : 1;
    lp.scale = Tensor::from(Shape{p.F}, scale);
    r.layers.push_back(std::move(lp));
  }
  evaluate(g, q.train_x, q.train_y, probes, o.batch, xb, q.progress, "training accuracy");
  for (size_t k = 0; k < probes.size(); ++k) {
    r.layers[k].train_accuracy = double(probes[k].correct) / N;
    r.layers[k].train_loss = probes[k].loss / N;
  }
  evaluate(g, q.test_x, q.test_y, probes, o.batch, xb, q.progress, "test accuracy");
  for (size_t k = 0; k < probes.size(); ++k) {
    r.layers[k].test_accuracy = double(probes[k].correct) / q.test_x.batch();
    r.layers[k].test_loss = probes[k].loss / q.test_x.batch();
  }
  return r;
}

}  // namespace gb::concepts
