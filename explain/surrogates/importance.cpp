#include "explain/surrogates/importance.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>

#include "engine/architecture.h"
#include "engine/hvp.h"
#include "engine/interpretable_layers.h"
#include "engine/passes.h"
#include "engine/rng.h"

namespace gb::explain::surrogates {

namespace {

// ---- perceptron weights -------------------------------------------------------------------------

// A dense row-major matrix in double.
struct Matrix {
  int rows = 0, cols = 0;
  std::vector<double> v;
  Matrix(int r, int c) : rows(r), cols(c), v(size_t(r) * c, 0.0) {}
  double& at(int r, int c) { return v[size_t(r) * cols + c]; }
  double at(int r, int c) const { return v[size_t(r) * cols + c]; }
};

Matrix product(const Matrix& a, const Matrix& b) {
  Matrix c(a.rows, b.cols);
  for (int i = 0; i < a.rows; ++i)
    for (int k = 0; k < a.cols; ++k) {
      const double aik = a.at(i, k);
      for (int j = 0; j < b.cols; ++j) c.at(i, j) += aik * b.at(k, j);
    }
  return c;
}

// A dense layer's weight [out, in]: as is, in absolute value, or as shares (each unit's row
// divided by the sum of its |weights|, keeping signs unless `absolute`).
enum class Form { raw, absolute, shares, absolute_shares };
Matrix weights(const Dense& d, Form form) {
  Matrix m(d.out_features, d.in_features);
  for (int o = 0; o < m.rows; ++o) {
    double total = 0;
    for (int i = 0; i < m.cols; ++i) total += std::fabs(d.weight.value[size_t(o) * m.cols + i]);
    for (int i = 0; i < m.cols; ++i) {
      double w = d.weight.value[size_t(o) * m.cols + i];
      if (form == Form::absolute || form == Form::absolute_shares) w = std::fabs(w);
      if ((form == Form::shares || form == Form::absolute_shares) && total > 0) w /= total;
      m.at(o, i) = w;
    }
  }
  return m;
}

// The output layer's weights (raw or absolute) times every earlier layer's matrix in `inner` form:
// a sum over every path from input j to output k of the product along it. [K, F].
Matrix path_products(const std::vector<const Dense*>& layers, Form last, Form inner) {
  Matrix m = weights(*layers.back(), last);
  for (int l = int(layers.size()) - 2; l >= 0; --l) m = product(m, weights(*layers[l], inner));
  return m;
}

Tensor to_tensor(const Matrix& m) {
  Tensor t({m.rows, m.cols});
  for (size_t i = 0; i < m.v.size(); ++i) t[i] = float(m.v[i]);
  return t;
}

// Each row divided by the sum of its |values| (rows of zeros stay zero).
Matrix normalize_rows(Matrix m) {
  for (int r = 0; r < m.rows; ++r) {
    double total = 0;
    for (int c = 0; c < m.cols; ++c) total += std::fabs(m.at(r, c));
    if (total > 0)
      for (int c = 0; c < m.cols; ++c) m.at(r, c) /= total;
  }
  return m;
}

Tensor mean_abs_over_classes(const Tensor& per_class) {
  const int K = per_class.dim(0), F = per_class.dim(1);
  Tensor o({F});
  for (int j = 0; j < F; ++j) {
    double s = 0;
    for (int k = 0; k < K; ++k) s += std::fabs(per_class[size_t(k) * F + j]);
    o[j] = float(s / K);
  }
  return o;
}

Importance finish(Tensor per_class, const Graph& g, std::string meaning) {
  Importance r;
  r.overall = mean_abs_over_classes(per_class);
  r.per_class = std::move(per_class);
  r.feature_shape = g.input_shape();
  r.meaning = std::move(meaning);
  return r;
}

Importance run_garson(Graph& g, const ImportanceRequest&, ParamReader&, bool absolute) {
  const auto layers = perceptron_layers(g, absolute ? "garson" : "garson-signed");
  const Matrix m = path_products(layers, absolute ? Form::absolute : Form::raw,
                                 absolute ? Form::absolute_shares : Form::shares);
  return finish(to_tensor(normalize_rows(m)), g,
                absolute ? "share of |weights| on the paths to the class (each class sums to 1)"
                         : "signed share of the weights on the paths to the class (|values| sum to 1)");
}

// ---- Olden's connection weights and randomization test --------------------------------------------

Tensor connection_weights(const Graph& g) {
  return to_tensor(path_products(perceptron_layers(g, "olden"), Form::raw, Form::raw));
}

Importance run_olden(Graph& g, const ImportanceRequest& q, ParamReader& r) {
  const int rounds = read_int(r, "rounds", 0, 9999);
  const uint64_t seed = uint64_t(read_int(r, "seed", 0, 1 << 30));
  Importance res = finish(connection_weights(g), g, "connection weight: sum over paths of the weights' products");
  if (rounds == 0) return res;
  if (!q.retrain || q.labels.empty())
    throw std::invalid_argument("olden: rounds=" + std::to_string(rounds) +
                                " retrains on shuffled labels and needs the training set (--data)");
  const int K = res.per_class.dim(0), F = res.per_class.dim(1);
  std::vector<int> extreme(size_t(K + 1) * F, 0);
  Tensor null({rounds, K, F});
  const json arch = architecture_json(g);
  for (int round = 0; round < rounds; ++round) {
    Rng rng(seed * 0x9e3779b97f4a7c15ULL + uint64_t(round) + 1);
    std::vector<int> labels = q.labels;
    for (size_t i = labels.size(); i > 1; --i) std::swap(labels[i - 1], labels[rng.below(uint32_t(i))]);
    Graph fresh = graph_from_json(arch);
    const uint64_t init_seed = rng.next();
    fresh.init(init_seed);
    q.retrain(fresh, labels, init_seed);
    const Tensor cw = connection_weights(fresh), overall = mean_abs_over_classes(cw);
    std::copy_n(cw.data(), cw.size(), null.data() + size_t(round) * K * F);
    for (size_t i = 0; i < cw.size(); ++i) extreme[i] += std::fabs(cw[i]) >= std::fabs(res.per_class[i]);
    for (int j = 0; j < F; ++j) extreme[size_t(K) * F + j] += overall[j] >= res.overall[j];
    if (q.progress) q.progress("olden: networks retrained on shuffled labels", round + 1, rounds);
  }
  res.p_values = Tensor({K + 1, F});
  for (size_t i = 0; i < extreme.size(); ++i) res.p_values[i] = float(double(1 + extreme[i]) / (rounds + 1));
  res.extra["null"] = null;
  res.info["rounds"] = rounds;
  return res;
}

// ---- sensitivity: partial derivatives and mean impact values ------------------------------------

int check_classes(const Graph& g, const std::string& method) {
  const Shape out = g.shape(g.output());
  if (out.rank != 2) throw std::invalid_argument(method + ": the model's output " + out.str() + " is not [N, classes]");
  return out[1];
}

// Per row of logits, output k as y = logit or softmax probability.
void outputs(const Tensor& logits, bool prob, Tensor& y) {
  y = prob ? softmax(logits) : logits.clone();
}

// The curvature profile beside PaD: for each sample, class k and feature j the exact second
// derivative ∂²y_k/∂x_j², from Pearlmutter's R-operator with the tangent at the input
// (engine/hvp.h's InputHessianVectorProduct, direction e_j, one product per feature and class; the
// F directions of a batch run as F copies of each row). With y_k = z_k (output=logit) that is
// (∇²z_k e_j)_j, exactly 0 on ReLU networks (piecewise linear: the R-operator's tangents vanish).
// With y_k = p_k = softmax(z)_k (output=prob) the chain rule adds the softmax's own curvature:
//   ∂²p_k/∂x_j² = Σ_c s_c ∂²z_c/∂x_j² + p_k[(ż_k − m)² − (Σ_c p_c ż_c² − m²)],
//   s = p_k(e_k − p) (the seed of the first derivative), ż_c = ∂z_c/∂x_j, m = Σ_c p_c ż_c,
// where the first sum is one input-Hessian-vector product seeded with s, and ż is the logits'
// Jacobian (K backward passes). The second term stays on ReLU networks: p is curved in z.
struct Curvature {
  std::unique_ptr<InputHessianVectorProduct> hvp;
  std::vector<double> ssd, mean;  // [K, F]: Σ_n (∂²y_k/∂x_j²)², Σ_n ∂²y_k/∂x_j²
};

constexpr int kCurvatureAutoFeatures = 64;
constexpr int kCurvatureRows = 4096;  // rows of one batch of input-Hessian-vector products

Importance run_dimopoulos(Graph& g, const ImportanceRequest& q, ParamReader& r) {
  const bool prob = read_choice(r, "output", {"prob", "logit"}) == "prob";
  const int batch = read_int(r, "batch", 1, 4096);
  const std::string curvature = read_choice(r, "curvature", {"auto", "on", "off"});
  const int K = check_classes(g, "dimopoulos"), N = q.x.batch(), F = int(g.input_shape().numel());
  std::vector<double> ssd(size_t(K) * F, 0.0), mean(size_t(K) * F, 0.0);
  Curvature cv;
  if (curvature == "on" || (curvature == "auto" && F <= kCurvatureAutoFeatures)) {
    try {
      cv.hvp = std::make_unique<InputHessianVectorProduct>(g);
    } catch (const std::invalid_argument& e) {
      if (curvature == "on") throw std::invalid_argument(std::string("dimopoulos curvature=on: ") + e.what());
    }  // auto: a layer without a tangent rule leaves the curvature out (info curvature = 0)
    cv.ssd.assign(size_t(K) * F, 0.0);
    cv.mean.assign(size_t(K) * F, 0.0);
  }
  Tensor seed, p, xr, vr, seedr, grad, hv;
  std::vector<Tensor> jac;             // prob with curvature: ∂z_c/∂x per class c, [n, F] each
  std::vector<Tensor> seeds(static_cast<size_t>(K));  // with curvature: each class's first-derivative seed [n, K]
  for (int b = 0; b < N; b += batch) {
    const int e = std::min(N, b + batch), n = e - b;
    const Tensor xb = q.x.slice(b, e);
    outputs(g.forward(xb), true, p);
    seed.resize({n, K});
    if (cv.hvp && prob) {
      jac.resize(K);
      for (int c = 0; c < K; ++c) {
        seed.fill(0.f);
        for (int i = 0; i < n; ++i) seed[size_t(i) * K + c] = 1.f;
        jac[c] = g.backward(seed).clone();
      }
    }
    for (int k = 0; k < K; ++k) {
      for (int i = 0; i < n; ++i)  // ∂y_k/∂z: one-hot for the logit, p_k (e_k − p) for the probability
        for (int c = 0; c < K; ++c) {
          const float pk = p[size_t(i) * K + k], pc = p[size_t(i) * K + c];
          seed[size_t(i) * K + c] = prob ? pk * (float(c == k) - pc) : float(c == k);
        }
      const Tensor& gx = g.backward(seed);
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < F; ++j) {
          const double d = gx[size_t(i) * F + j];
          ssd[size_t(k) * F + j] += d * d;
          mean[size_t(k) * F + j] += d;
        }
      if (cv.hvp) seeds[k] = seed.clone();
    }
    // After every backward pass of the batch: the products run their own passes through the graph.
    for (int k = 0; cv.hvp && k < K; ++k) {
      // Row (i − i0)·F + j: sample i in direction e_j, with sample i's seed; samples in groups of
      // at most kCurvatureRows / F, so that the directions take at most kCurvatureRows · F floats.
      const int group = std::max(1, kCurvatureRows / F);
      for (int i0 = 0; i0 < n; i0 += group) {
        const int i1 = std::min(n, i0 + group), R = (i1 - i0) * F;
        const Shape rows = Shape::batch_of(R, g.input_shape());
        if (xr.shape() != rows) {
          xr.resize(rows);
          vr.resize(rows);
          vr.fill(0.f);
          for (int t = 0; t < R; ++t) vr[size_t(t) * F + t % F] = 1.f;
          seedr.resize({R, K});
        }
        for (int i = i0; i < i1; ++i)
          for (int j = 0; j < F; ++j) {
            const size_t t = size_t(i - i0) * F + j;
            std::copy_n(xb.data() + size_t(i) * F, F, xr.data() + t * F);
            std::copy_n(seeds[k].data() + size_t(i) * K, K, seedr.data() + t * K);
          }
        (*cv.hvp)(xr, vr, seedr, grad, hv);
        for (int i = i0; i < i1; ++i)
          for (int j = 0; j < F; ++j) {
            double d2 = hv[(size_t(i - i0) * F + j) * F + j];
            if (prob) {
              double m = 0, q2 = 0;
              for (int c = 0; c < K; ++c) {
                const double pc = p[size_t(i) * K + c], zc = jac[c][size_t(i) * F + j];
                m += pc * zc, q2 += pc * zc * zc;
              }
              const double zk = jac[k][size_t(i) * F + j];
              d2 += double(p[size_t(i) * K + k]) * ((zk - m) * (zk - m) - (q2 - m * m));
            }
            cv.ssd[size_t(k) * F + j] += d2 * d2;
            cv.mean[size_t(k) * F + j] += d2;
          }
      }
    }
    if (q.progress) q.progress(cv.hvp ? "dimopoulos: first and second derivatives" : "dimopoulos: derivatives", e, N);
  }
  Matrix shares(K, F);
  shares.v = ssd;
  Importance res = finish(to_tensor(normalize_rows(shares)), g,
                          std::string("share of the sum of squared derivatives of ") + (prob ? "p_k" : "z_k"));
  int flat = 0;  // outputs whose every derivative is 0: their shares (0/0) are left 0, not a ranking
  for (int k = 0; k < K; ++k)
    flat += std::all_of(ssd.begin() + size_t(k) * F, ssd.begin() + size_t(k + 1) * F, [](double v) { return v == 0; });
  if (flat)
    res.notes.push_back(std::to_string(flat) + " of " + std::to_string(K) + " outputs have every derivative 0 on these "
                        "samples (" + (prob ? "a softmax saturated in float32? try output=logit" : "dead units?") +
                        "): their shares are 0, not a ranking");
  Tensor md({K, F});
  for (size_t i = 0; i < md.size(); ++i) md[i] = float(mean[i] / N);
  res.extra["mean_derivative"] = md;
  res.info["curvature"] = cv.hvp ? 1 : 0;
  if (cv.hvp) {
    Tensor m2({K, F});
    for (size_t i = 0; i < m2.size(); ++i) m2[i] = float(cv.mean[i] / N);
    res.extra["mean_second_derivative"] = m2;
    Matrix cshares(K, F);
    cshares.v = cv.ssd;
    res.extra["curvature_shares"] = to_tensor(normalize_rows(cshares));
  }
  return res;
}

Importance run_miv(Graph& g, const ImportanceRequest& q, ParamReader& r) {
  const double delta = read_number(r, "delta", 1e-6, 1);
  const bool prob = read_choice(r, "output", {"prob", "logit"}) == "prob";
  const int batch = read_int(r, "batch", 1, 4096);
  const int K = check_classes(g, "miv"), N = q.x.batch(), F = int(g.input_shape().numel());
  const int C = g.input_shape()[0], plane = F / C;
  if (!q.raw_shift.empty() && int(q.raw_shift.size()) != C)
    throw std::invalid_argument("miv: " + std::to_string(q.raw_shift.size()) + " raw shifts for " + std::to_string(C) +
                                " input channels");
  std::vector<double> miv(size_t(K) * F, 0.0);
  Tensor copies, out;
  for (int b = 0; b < N; b += batch) {
    const int e = std::min(N, b + batch), n = e - b;
    const Tensor x = q.x.slice(b, e);
    // Several features' up and down copies of the n samples share one forward pass (about 1,024
    // rows): a pass of n rows per perturbation leaves small models' GEMMs too short to run fast.
    const int group = std::max(1, 512 / n);
    for (int j0 = 0; j0 < F; j0 += group) {
      const int j1 = std::min(F, j0 + group);
      // Written in place from the second group on (the graph holds on to its last input, so a
      // resize would allocate every time).
      if (const Shape rows = x.shape().with_batch(2 * n * (j1 - j0)); copies.shape() != rows) copies = Tensor(rows);
      for (int j = j0; j < j1; ++j) {
        const float shift = q.raw_shift.empty() ? 0.f : q.raw_shift[j / plane];
        for (int side = 0; side < 2; ++side) {  // rows of (feature, side, sample)
          float* rows = copies.data() + (size_t(2 * (j - j0) + side) * n) * F;
          std::copy(x.data(), x.data() + size_t(n) * F, rows);
          const float sign = side == 0 ? 1.f : -1.f;
          for (int i = 0; i < n; ++i) {
            const float v = rows[size_t(i) * F + j];
            rows[size_t(i) * F + j] = v + sign * float(delta) * (v + shift);
          }
        }
      }
      outputs(g.forward(copies), prob, out);
      for (int j = j0; j < j1; ++j) {
        const float* up = out.data() + size_t(2 * (j - j0)) * n * K;
        const float* down = up + size_t(n) * K;
        for (int i = 0; i < n; ++i)
          for (int k = 0; k < K; ++k) miv[size_t(k) * F + j] += double(up[size_t(i) * K + k]) - down[size_t(i) * K + k];
      }
    }
    if (q.progress) q.progress("miv: perturbed inputs", e, N);
  }
  Tensor t({K, F});
  for (size_t i = 0; i < t.size(); ++i) t[i] = float(miv[i] / N);
  return finish(t, g, std::string("mean change of ") + (prob ? "p_k" : "z_k") + " from raw x_j (1-d) to x_j (1+d)");
}

// ---- the additive model's shape functions --------------------------------------------------------

// The additive part of a neural additive model: the first grouped dense layer (one input per
// group) through the last layer before the group sum, which must end the graph.
struct Additive {
  int first = -1, last = -1, features = 0, classes = 0;
};

Additive additive_part(const Graph& g) {
  Additive a;
  const int out = g.output();
  if (!dynamic_cast<const GroupSum*>(&g.layer(out)))
    throw std::invalid_argument("nam: the model does not end with groupsum (an additive model: glassbox train --model nam)");
  for (int i = 0; i < out && a.first < 0; ++i)
    if (dynamic_cast<const GroupDense*>(&g.layer(i))) a.first = i;
  if (a.first < 0) throw std::invalid_argument("nam: the model has no groupdense layer");
  const auto& first = static_cast<const GroupDense&>(g.layer(a.first));
  if (first.in_per_group != 1)
    throw std::invalid_argument("nam: " + first.name + " gives each network " + std::to_string(first.in_per_group) +
                                " inputs; shape functions need one feature per network");
  for (int i = a.first + 1; i < out; ++i) {
    const Layer& L = g.layer(i);
    const bool per_group = dynamic_cast<const GroupDense*>(&L) || dynamic_cast<const Activation*>(&L);
    if (!per_group || g.node(i).inputs != std::vector<int>{i - 1})
      throw std::invalid_argument("nam: layer " + L.name + " (" + L.kind() +
                                  ") mixes features between the grouped layers and the group sum");
  }
  a.last = out - 1;
  a.features = first.groups;
  a.classes = g.classes();
  return a;
}

// The per-feature networks as a graph of their own ([F] in, [F·K] out: f_j's K values at column
// block j), with the model's parameters.
Graph additive_graph(const Graph& g, const Additive& a) {
  const json arch = architecture_json(g);
  json layers = json::array();
  for (int i = a.first; i <= a.last; ++i) {
    json l = arch["layers"][i];
    l["inputs"] = json::array({i == a.first ? "input" : g.layer(i - 1).name});
    layers.push_back(l);
  }
  Graph sub = graph_from_json({{"input", {a.features}}, {"layers", layers}});
  const auto from = g.named_params(), to = sub.named_params();
  for (const auto& [name, p] : to)
    for (const auto& [fname, fp] : from)
      if (fname == name) p->value.copy_from(fp->value);
  return sub;
}

Importance run_nam(Graph& g, const ImportanceRequest& q, ParamReader& r) {
  const int points = read_int(r, "points", 2, 10000);
  const Additive a = additive_part(g);
  const int from = g.node(a.first).inputs[0], F = a.features, K = a.classes, N = q.x.batch();
  if (N < 1) throw std::invalid_argument("nam: needs data (--data) for the features' ranges and the centring");
  const Tensor z = from < 0 ? q.x.reshaped({N, F}) : activations(g, q.x, {from})[0].reshaped({N, F});
  Graph sub = additive_graph(g, a);
  // Centring: f_j's mean over the data; importance: mean |f_j − mean|.
  const Tensor fz = activations(sub, z, {sub.output()})[0];
  std::vector<double> mean(size_t(F) * K, 0.0), spread(size_t(F) * K, 0.0);
  for (int n = 0; n < N; ++n)
    for (size_t i = 0; i < mean.size(); ++i) mean[i] += fz[size_t(n) * F * K + i] / N;
  for (int n = 0; n < N; ++n)
    for (size_t i = 0; i < mean.size(); ++i) spread[i] += std::fabs(fz[size_t(n) * F * K + i] - mean[i]) / N;
  Tensor grid({F, points}), zg({points, F});
  for (int j = 0; j < F; ++j) {
    float lo = z[j], hi = z[j];
    for (int n = 1; n < N; ++n) lo = std::min(lo, z[size_t(n) * F + j]), hi = std::max(hi, z[size_t(n) * F + j]);
    for (int p = 0; p < points; ++p) {
      const float v = lo + (hi - lo) * float(p) / float(points - 1);
      grid[size_t(j) * points + p] = zg[size_t(p) * F + j] = v;
    }
  }
  const Tensor fg = activations(sub, zg, {sub.output()})[0];
  Tensor shape({F, points, K}), per_class({K, F}), intercept({K});
  for (int j = 0; j < F; ++j)
    for (int k = 0; k < K; ++k) {
      per_class[size_t(k) * F + j] = float(spread[size_t(j) * K + k]);
      intercept[k] += float(mean[size_t(j) * K + k]);
      for (int p = 0; p < points; ++p)
        shape[(size_t(j) * points + p) * K + k] = float(fg[size_t(p) * F * K + size_t(j) * K + k] - mean[size_t(j) * K + k]);
    }
  Importance res = finish(per_class, g, "mean |f_j(x_j) - mean f_j| over the data (logit units)");
  res.feature_shape = Shape{F};
  if (from >= 0 && dynamic_cast<const Flatten*>(&g.layer(from))) res.feature_shape = g.shape(g.node(from).inputs[0]).sample();
  res.extra["grid"] = grid;
  res.extra["shape"] = shape;
  res.extra["intercept"] = intercept;
  return res;
}

struct ImportanceMethod {
  MethodInfo info;
  std::function<Importance(Graph&, const ImportanceRequest&, ParamReader&)> run;
};

const MethodTable<ImportanceMethod>& importance_table() {
  static const MethodTable<ImportanceMethod> t("importance method", {
      {{"garson",
        "Garson's relative importance: each hidden unit's |input weights| as shares, weighted by the |weights| "
        "to the output along every path; per class, summing to 1",
        {},
        "Garson 1991 in Goh's (1995) printed form (|W_out| . shares(|W_hidden|), each class normalized); more "
        "than one hidden layer: shares multiplied along every path; biases ignored. Not NeuralNetTools' garson, "
        "which takes shares of |w|.|v| per hidden unit, so the output weight cancels (same for every class; on "
        "the tests' hand network 13/24, 11/24 where glassbox gives 17/36, 19/36)"},
       [](Graph& g, const ImportanceRequest& q, ParamReader& r) { return run_garson(g, q, r, true); }},
      {{"garson-signed",
        "Garson with signs kept: signed weight shares along every path, per class scaled so |values| sum to 1",
        {},
        "garson without absolute values (W_out . W_hidden / sum|W_hidden| per unit): the sign says whether input j "
        "raises class k through the paths' weights; biases and nonlinearities ignored"},
       [](Graph& g, const ImportanceRequest& q, ParamReader& r) { return run_garson(g, q, r, false); }},
      {{"olden",
        "Olden's connection weights: sum over every path from input j to output k of the weights' products; "
        "rounds=R adds the randomization test (R networks retrained on shuffled labels)",
        {{"rounds", "0", "networks retrained on shuffled labels for p-values (0..9999; Olden & Jackson used 999)"},
         explain::seed_param("0", "seed of the shuffles and the retrained networks' initialization")},
        "Olden & Jackson 2002 (NeuralNetTools' olden; several hidden layers: the product W_out...W_1); p = (1 + "
        "#{|null| >= |observed|}) / (R + 1), two-sided, per class and for the mean over classes"},
       run_olden},
      {{"dimopoulos",
        "PaD: the sum over the data of the squared partial derivatives of output k by input j, as shares of "
        "their total; also the mean signed derivative",
        {{"output", "prob", "prob (softmax probability, as the papers' sigmoid output) or logit"},
         {"batch", "256", "samples per pass (1..4096)"},
         {"curvature", "auto", "the second-derivative profile d2y_k/dx_j^2 (exact, input Hessian-vector products, one "
                               "per feature and class): on, off, or auto (on for models with at most 64 input "
                               "features whose layers all have tangent rules)"}},
        "Dimopoulos et al. 1995 / Gevrey et al. 2003 (PaD: SSD_j = sum_n (dy/dx_j)^2, relative contributions); "
        "derivatives by the graph's exact backward pass; curvature: mean_second_derivative (mean_n d2y_k/dx_j^2) and "
        "curvature_shares (sum_n (d2y_k/dx_j^2)^2 as shares), exact by Pearlmutter's R-operator at the input plus, "
        "for output=prob, the softmax's own curvature; on a ReLU network the logits' second derivative is exactly 0"},
       run_dimopoulos},
      {{"miv",
        "mean impact value: the mean over the data of y_k(raw x_j * (1 + d)) - y_k(raw x_j * (1 - d))",
        {{"delta", "0.1", "relative change d of each raw feature value ([1e-6, 1])"},
         {"output", "prob", "prob (softmax probability) or logit"},
         {"batch", "256", "samples per pass (1..4096)"}},
        "MIV as in the BP-network literature (Jiang et al. 2008): +-10% of the raw (un-normalized) value, one "
        "feature at a time, the mean of the output's change; signed"},
       run_miv},
      {{"nam",
        "an additive model's shape functions f_j (logits = sum_j f_j(x_j)) over each feature's data range, centred "
        "on the data, and their importance mean |f_j - mean f_j|",
        {{"points", "101", "grid points per feature (2..10000)"}},
        "Agarwal et al. 2021 (neural additive models): shape functions centred to mean 0 over the data, feature "
        "importance mean |f_j(x_j) - mean f_j| per class; ReLU feature networks instead of ExU units"},
       run_nam},
  });
  return t;
}

}  // namespace

std::vector<const Dense*> perceptron_layers(const Graph& g, const std::string& method) {
  std::vector<const Dense*> layers;
  for (int i = 0; i < g.size(); ++i) {
    const Layer& L = g.layer(i);
    const bool ok_kind = (dynamic_cast<const Flatten*>(&L) && i == 0) || dynamic_cast<const Dense*>(&L) ||
                         dynamic_cast<const Activation*>(&L) || dynamic_cast<const Dropout*>(&L);
    if (!ok_kind || g.node(i).inputs != std::vector<int>{i - 1})
      throw std::invalid_argument(method + " needs a multilayer perceptron (dense layers with activations between); "
                                  "layer " + L.name + " is " + L.kind());
    if (auto* d = dynamic_cast<const Dense*>(&L)) layers.push_back(d);
  }
  if (layers.empty() || !dynamic_cast<const Dense*>(&g.layer(g.output())))
    throw std::invalid_argument(method + " needs a multilayer perceptron ending with a dense layer");
  return layers;
}

const std::vector<MethodInfo>& importance_methods() { return importance_table().infos(); }

const MethodInfo& importance_method(const std::string& name) { return importance_table().find(name).info; }

bool importance_needs_data(const std::string& method) {
  return method == "dimopoulos" || method == "miv" || method == "nam";
}

Importance importance(Graph& model, const ImportanceRequest& q, const std::string& method, const Params& params) {
  const ImportanceMethod& m = importance_table().find(method);
  if (!q.x.empty() && (q.x.rank() != model.input_shape().rank + 1 || q.x.shape().sample() != model.input_shape()))
    shape_error("importance data", Shape::batch_of(q.x.batch(), model.input_shape()), q.x.shape());
  ParamReader reader(params, m.info);
  if (importance_needs_data(method) && q.x.empty()) throw std::invalid_argument(method + " needs data (--data)");
  Importance r = m.run(model, q, reader);
  reader.done();
  return r;
}

}  // namespace gb::explain::surrogates
