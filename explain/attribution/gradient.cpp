// The gradient family. Every method here is one or more batched backward passes of the graph
// seeded with a one-hot on the target logit; IG's steps and SmoothGrad's noisy copies are stacked
// into large batches (bounded by `internal_batch` rows) so that n steps cost n gradient rows of GEMM.
#include "explain/attribution/gradient.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "engine/interrupt.h"
#include "engine/passes.h"
#include "engine/rng.h"
#include "explain/openbox/openbox.h"

namespace gb::explain {

int read_layer(ParamReader& r, const Graph& g) {
  std::string name = r.text("layer");
  return name.empty() ? -1 : g.at(name);
}

std::vector<double> target_outputs(Graph& g, const Tensor& x, const Target& target, int chunk) {
  std::vector<double> out(x.batch());
  ForwardOptions fo;
  fo.until = target.at(g);
  for (int b = 0; b < x.batch(); b += chunk) {
    const int e = std::min(x.batch(), b + chunk);
    target.values(g.forward(x.slice(b, e), fo), b, e, out.data() + b);
  }
  return out;
}

Tensor backprop(Graph& g, const Tensor& x, const Target& target, const BackpropOptions& o) {
  const int N = x.batch(), layer = o.layer;
  Tensor out(layer < 0 ? x.shape() : g.shape(layer, N));
  const size_t row = out.sample_size();
  ForwardOptions fo;
  fo.until = target.at(g);
  fo.row_block = o.row_block;
  BackwardOptions opt;
  opt.rules = o.rules;
  opt.per_sample_rules = o.per_sample_rules;
  opt.row_block = o.row_block;
  opt.seed_at = target.at(g);
  opt.stop_at = layer;
  opt.input_grad = layer < 0;
  const int chunk = std::max(o.row_block, o.chunk / o.row_block * o.row_block);
  Tensor seed;
  for (int b = 0; b < N; b += chunk) {
    const int e = std::min(N, b + chunk);
    g.forward(x.slice(b, e), fo);
    target.seed(g, b, e, seed);
    const Tensor& s = g.backward(seed, opt);
    const Tensor& a = g.activation(layer);
    float* d = out.data() + size_t(b) * row;
    const float *sp = s.data(), *ap = a.data();
    if (o.times_activation)
      for (size_t i = 0, n = s.size(); i < n; ++i) d[i] = sp[i] * ap[i];
    else
      std::copy(sp, sp + s.size(), d);
  }
  return out;
}

// Max over channels (dim 1) of [N,C,H,W], written back to every channel.
static void reduce_max_channels(Tensor& t) {
  if (t.rank() != 4) return;  // no channel axis to reduce
  const int N = t.dim(0), C = t.dim(1);
  const size_t HW = size_t(t.dim(2)) * t.dim(3);
  for (int n = 0; n < N; ++n) {
    float* p = t.data() + size_t(n) * C * HW;
    for (size_t i = 0; i < HW; ++i) {
      float m = p[i];
      for (int c = 1; c < C; ++c) m = std::max(m, p[c * HW + i]);
      for (int c = 0; c < C; ++c) p[c * HW + i] = m;
    }
  }
}

Tensor saliency(Graph& g, const Tensor& x, const Target& target, bool abs, bool reduce_max, int layer) {
  BackpropOptions o;
  o.layer = layer;
  Tensor a = backprop(g, x, target, o);
  if (abs)
    for (size_t i = 0; i < a.size(); ++i) a[i] = std::fabs(a[i]);
  if (reduce_max) reduce_max_channels(a);
  return a;
}

Tensor input_x_gradient(Graph& g, const Tensor& x, const Target& target, int layer) {
  BackpropOptions o;
  o.layer = layer;
  o.times_activation = true;
  return backprop(g, x, target, o);
}

IgMethod ig_method(const std::string& name) {
  if (name == "gausslegendre") return IgMethod::gausslegendre;
  if (name == "riemann_left") return IgMethod::riemann_left;
  if (name == "riemann_right") return IgMethod::riemann_right;
  if (name == "riemann_middle") return IgMethod::riemann_middle;
  if (name == "riemann_trapezoid") return IgMethod::riemann_trapezoid;
  if (name == "exact") return IgMethod::exact;
  throw std::invalid_argument("integrated-gradients: method '" + name +
                              "' (known: gausslegendre, riemann_left, riemann_right, riemann_middle, "
                              "riemann_trapezoid, exact)");
}

void ig_nodes(IgMethod m, int n, std::vector<double>& alphas, std::vector<double>& weights) {
  if (m == IgMethod::exact) throw std::invalid_argument("integrated-gradients: method=exact has no fixed nodes");
  if (n < 1 || (m == IgMethod::riemann_trapezoid && n < 2))
    throw std::invalid_argument("integrated-gradients: n_steps=" + std::to_string(n) + " is too small" +
                                (m == IgMethod::riemann_trapezoid ? " (riemann_trapezoid needs 2 or more: both ends)" : ""));
  alphas.assign(n, 0);
  weights.assign(n, 1.0 / n);
  switch (m) {
    case IgMethod::riemann_left:
      for (int k = 0; k < n; ++k) alphas[k] = double(k) / n;
      break;
    case IgMethod::riemann_right:
      for (int k = 0; k < n; ++k) alphas[k] = double(k + 1) / n;
      break;
    case IgMethod::riemann_middle:
      for (int k = 0; k < n; ++k) alphas[k] = (k + 0.5) / n;
      break;
    case IgMethod::riemann_trapezoid:
      for (int k = 0; k < n; ++k) alphas[k] = double(k) / (n - 1), weights[k] = 1.0 / (n - 1);
      weights[0] = weights[n - 1] = 0.5 / (n - 1);
      break;
    case IgMethod::exact:
      break;
    case IgMethod::gausslegendre:
      // Legendre roots by Newton's method from the Chebyshev-like guess, for the positive half:
      // the roots are symmetric about 0 and mirroring makes them exactly so, as numpy's leggauss
      // does (an odd n's middle root is 0: Newton stays there). Mapped from [-1, 1] to [0, 1] as
      // Captum does: α = (1 + ξ)/2, w/2. O(n²) (about a minute at 100,000 steps): it polls for Ctrl-C.
      for (int i = 0; i < (n + 1) / 2; ++i) {
        poll_interrupt();
        double z = 2 * i + 1 == n ? 0.0 : std::cos(M_PI * (i + 0.75) / (n + 0.5)), pp = 1;
        for (int it = 0; it < 100; ++it) {
          double p1 = 1, p2 = 0;
          for (int j = 1; j <= n; ++j) {
            double p3 = p2;
            p2 = p1;
            p1 = ((2 * j - 1) * z * p2 - (j - 1) * p3) / j;
          }
          pp = n * (z * p1 - p2) / (z * z - 1);
          double z1 = z;
          z = z1 - p1 / pp;
          if (std::fabs(z - z1) < 1e-15) break;
        }
        const double w = 1.0 / ((1 - z * z) * pp * pp);  // = (2 / ((1-z²) P'²)) / 2
        alphas[n - 1 - i] = 0.5 * (1 + z), weights[n - 1 - i] = w;  // ascending, like numpy
        alphas[i] = 0.5 * (1 - z), weights[i] = w;
      }
      break;
  }
}

Tensor full_baseline(const Tensor& x, const Tensor& b, float value, const std::string& who) {
  if (b.empty()) return Tensor(x.shape(), value);
  if (b.shape() == x.shape()) return b;
  if (b.batch() == 1 && b.shape().sample() == x.shape().sample()) {
    Tensor full(x.shape());
    for (int n = 0; n < x.batch(); ++n) std::memcpy(full.data() + n * x.sample_size(), b.data(), b.size() * 4);
    return full;
  }
  shape_error(who + " baseline", x.shape(), b.shape());
}

// acc[n] += w[k] * grad[r - first] for the rows r in [first, e) of (sample n, step k) pairs.
static void accumulate_steps(std::vector<double>& acc, const Tensor& grad, int first, int e, int S,
                             const std::vector<double>& w) {
  const size_t A = grad.sample_size();
  for (int r = first; r < e; ++r) {
    const float* gr = grad.data() + size_t(r - first) * A;
    double* ac = acc.data() + size_t(r / S) * A;
    for (size_t i = 0; i < A; ++i) ac[i] += w[r % S] * gr[i];
  }
}

// IG's attribution (a − a') ⊙ acc, where a and a' are the input (or a layer's activation) at x
// and at the baseline, and its completeness delta against f(x) − f(x').
static Result ig_result(Graph& g, const Tensor& x, const Tensor& base, const Target& target, const Tensor& a,
                        const Tensor& ab, const std::vector<double>& acc, int chunk) {
  const size_t A = a.sample_size();
  Result res;
  res.attribution = Tensor(a.shape());
  std::vector<double> fx = target_outputs(g, x, target, chunk), fb = target_outputs(g, base, target, chunk);
  for (int n = 0; n < a.batch(); ++n) {
    double sum = 0;
    for (size_t i = 0; i < A; ++i) {
      const size_t j = n * A + i;
      res.attribution[j] = float((a[j] - ab[j]) * acc[j]);
      sum += res.attribution[j];
    }
    res.delta.push_back(sum - (fx[n] - fb[n]));
  }
  return res;
}

// The target of (sample, step) rows [b, e): row r explains sample r / S.
static Target step_rows(const Target& target, int b, int e, int S) {
  std::vector<int> samples;
  for (int r = b; r < e; ++r) samples.push_back(r / S);
  return target.gather(samples);
}

// Layer IG: a forward rule at the layer replaces its output, row by row, with the point of the
// path for that row's (sample, step); the backward stops at the layer.
static Result layer_integrated_gradients(Graph& g, const Tensor& x, const Tensor& base, const Target& target,
                                         const IgOptions& o, const std::vector<double>& alpha,
                                         const std::vector<double>& w) {
  const int N = x.batch(), S = o.n_steps, L = o.layer, chunk = std::max(1, o.internal_batch);
  const Tensor a = activations(g, x, {L}, chunk)[0], ab = activations(g, base, {L}, chunk)[0];
  const size_t A = a.sample_size();
  const int rows = N * S;
  int first = 0;  // the first (sample, step) row of the current chunk
  ForwardRules rules(g.size());
  rules[L] = [&](ForwardCall& c) {  // row r of this call is row first + c.row0 + r of the chunk
    for (int r = 0; r < c.out.batch(); ++r) {
      const int n = (first + c.row0 + r) / S, k = (first + c.row0 + r) % S;
      const float t = float(alpha[k]);
      const float *pa = a.data() + n * A, *pb = ab.data() + n * A;
      float* d = c.out.data() + size_t(r) * A;
      for (size_t i = 0; i < A; ++i) d[i] = pb[i] + t * (pa[i] - pb[i]);
    }
  };
  ForwardOptions fo;
  fo.rules = &rules;
  fo.per_sample_rules = true;
  fo.until = target.at(g);
  BackwardOptions opt;
  opt.seed_at = target.at(g);
  opt.stop_at = L;
  opt.input_grad = false;
  std::vector<double> acc(size_t(N) * A, 0.0);
  Tensor xs(Shape::batch_of(std::min(chunk, rows), x.shape().sample())), seed;
  for (first = 0; first < rows; first += chunk) {
    const int e = std::min(rows, first + chunk);
    Tensor xc = xs.slice(0, e - first);
    for (int r = first; r < e; ++r)  // the layers below L still run; their output is replaced
      std::copy_n(x.data() + size_t(r / S) * x.sample_size(), x.sample_size(), xc.data() + size_t(r - first) * x.sample_size());
    g.forward(xc, fo);
    step_rows(target, first, e, S).seed(g, 0, e - first, seed);
    accumulate_steps(acc, g.backward(seed, opt), first, e, S, w);
  }
  return ig_result(g, x, base, target, a, ab, acc, chunk);
}

// Exact IG: per sample, OpenBox's walk from the baseline to x gives the pieces [t0, t1) of the
// path inside one linear region each, where the target's gradient is constant; it is taken at
// each piece's midpoint (all pieces of all samples in shared backward batches) and weighted by
// the piece's length.
static Result exact_integrated_gradients(Graph& g, const Tensor& x, const Tensor& base, const Target& target,
                                         const IgOptions& o) {
  if (o.layer >= 0) throw std::invalid_argument("integrated-gradients: method=exact attributes to the input only");
  const int N = x.batch();
  const size_t D = x.sample_size();
  struct Row {
    int sample;
    double t, weight;
  };
  std::vector<Row> rows;
  Result res;
  for (int n = 0; n < N; ++n) {
    const openbox::Walk w = openbox::walk(g, base.slice(n, n + 1), x.slice(n, n + 1));
    for (const openbox::Piece& p : w.pieces) rows.push_back({n, 0.5 * (p.t0 + p.t1), p.t1 - p.t0});
    res.details.push_back({{"regions", {double(w.regions)}}, {"pieces", {double(w.pieces.size())}}});
  }
  const int chunk = std::max(1, o.internal_batch);
  std::vector<double> acc(size_t(N) * D, 0.0);
  Tensor xs(Shape::batch_of(int(std::min<size_t>(size_t(chunk), rows.size())), x.shape().sample()));
  std::vector<int> samples;
  BackpropOptions bo;
  bo.chunk = chunk;
  for (size_t b = 0; b < rows.size(); b += size_t(chunk)) {
    const size_t e = std::min(rows.size(), b + size_t(chunk));
    Tensor xc = xs.slice(0, int(e - b));
    samples.clear();
    for (size_t r = b; r < e; ++r) {
      const float *px = x.data() + rows[r].sample * D, *pb = base.data() + rows[r].sample * D;
      float* d = xc.data() + (r - b) * D;
      for (size_t i = 0; i < D; ++i) d[i] = float(pb[i] + rows[r].t * (double(px[i]) - pb[i]));
      samples.push_back(rows[r].sample);
    }
    const Tensor grad = backprop(g, xc, target.gather(samples), bo);
    for (size_t r = b; r < e; ++r) {
      double* ac = acc.data() + rows[r].sample * D;
      const float* gr = grad.data() + (r - b) * D;
      for (size_t i = 0; i < D; ++i) ac[i] += rows[r].weight * gr[i];
    }
  }
  Result out = ig_result(g, x, base, target, x, base, acc, chunk);
  out.details = std::move(res.details);
  return out;
}

Result integrated_gradients(Graph& g, const Tensor& x, const Target& target, const IgOptions& o) {
  const int N = x.batch(), S = o.n_steps;
  const size_t D = x.sample_size();
  Tensor base = full_baseline(x, o.baseline, o.baseline_value, "integrated-gradients");
  if (o.method == IgMethod::exact) return exact_integrated_gradients(g, x, base, target, o);
  std::vector<double> alpha, w;
  ig_nodes(o.method, S, alpha, w);
  if (o.layer >= 0) return layer_integrated_gradients(g, x, base, target, o, alpha, w);

  // Rows are (sample, step) pairs, stacked in chunks of internal_batch.
  const int rows = N * S, chunk = std::max(1, o.internal_batch);
  std::vector<double> acc(size_t(N) * D, 0.0);
  Tensor xs(Shape::batch_of(std::min(chunk, rows), x.shape().sample()));
  BackpropOptions bo;
  bo.chunk = chunk;
  for (int b = 0; b < rows; b += chunk) {
    const int e = std::min(rows, b + chunk);
    Tensor xc = xs.slice(0, e - b);
    for (int r = b; r < e; ++r) {
      const int n = r / S, k = r % S;
      const float* px = x.data() + n * D;
      const float* pb = base.data() + n * D;
      float* d = xc.data() + size_t(r - b) * D;
      const float a = float(alpha[k]);
      for (size_t i = 0; i < D; ++i) d[i] = pb[i] + a * (px[i] - pb[i]);
    }
    accumulate_steps(acc, backprop(g, xc, step_rows(target, b, e, S), bo), b, e, S, w);
  }
  return ig_result(g, x, base, target, x, base, acc, chunk);
}


Result noise_tunnel(Graph& g, const Tensor& x, const Target& target, const NoiseOptions& o) {
  if (o.n < 1) throw std::invalid_argument("noise tunnel: n must be >= 1");
  const int N = x.batch(), S = o.n;
  const size_t D = x.sample_size();
  std::vector<Rng> rng;
  std::vector<float> sigma;
  for (int n = 0; n < N; ++n) {
    const float* p = x.data() + n * D;
    rng.emplace_back(values_seed(p, D, o.seed));  // a sample's noise: its values and the seed
    auto [lo, hi] = std::minmax_element(p, p + D);
    sigma.push_back(o.stdev >= 0 ? o.stdev : o.level * (*hi - *lo));
  }
  const int rows = N * S, chunk = std::max(1, o.internal_batch);
  Tensor xs(Shape::batch_of(std::min(chunk, rows), x.shape().sample()));
  std::vector<double> sum, sq;
  size_t A = 0;  // attribution size per sample (the input's, or a layer's)
  Shape ashape;
  bool is_signed = true;
  for (int b = 0; b < rows; b += chunk) {
    const int e = std::min(rows, b + chunk);
    Tensor xc = xs.slice(0, e - b);
    for (int r = b; r < e; ++r) {
      const int n = r / S;
      const float* px = x.data() + n * D;
      float* d = xc.data() + size_t(r - b) * D;
      for (size_t i = 0; i < D; ++i) d[i] = px[i] + sigma[n] * rng[n].normal();
    }
    Result part = explain(g, xc, step_rows(target, b, e, S), o.base, o.base_params);
    if (sum.empty()) {
      A = part.attribution.sample_size();
      ashape = part.attribution.shape().with_batch(N);
      sum.assign(size_t(N) * A, 0.0);
      sq.assign(size_t(N) * A, 0.0);
      is_signed = part.is_signed;
    }
    for (int r = b; r < e; ++r) {
      const float* a = part.attribution.data() + size_t(r - b) * A;
      double* s = sum.data() + size_t(r / S) * A;
      double* q = sq.data() + size_t(r / S) * A;
      for (size_t i = 0; i < A; ++i) s[i] += a[i], q[i] += double(a[i]) * a[i];
    }
  }
  Result res;
  res.attribution = Tensor(ashape);
  res.is_signed = o.kind == NoiseKind::smoothgrad && is_signed;
  for (size_t i = 0; i < res.attribution.size(); ++i) {
    const double m = sum[i] / S, m2 = sq[i] / S;
    res.attribution[i] = float(o.kind == NoiseKind::smoothgrad      ? m
                               : o.kind == NoiseKind::smoothgrad_sq ? m2
                                                                    : std::max(0.0, m2 - m * m));
  }
  return res;
}

// ---- registration ----

static const char* kLayerHelp = "stop at this layer and return the attribution at its output (shaped like it)";

void add_gradient_methods(std::vector<Method>& reg) {
  reg.push_back({{"saliency",
                  "gradient of the target logit w.r.t. the input",
                  {{"abs", "false", "absolute value of the gradient (Captum's default is true)"},
                   {"reduce", "none", "none | max: maximum over channels, written to every channel"},
                   {"layer", "", kLayerHelp}},
                  "Captum Saliency with abs=False (signed); reduce=max as CS231n (after abs when abs=true)"},
                 [](Graph& g, const Tensor& x, const Target& t, ParamReader& r) {
                   bool abs = r.flag("abs");
                   std::string reduce = r.text("reduce");
                   int layer = read_layer(r, g);
                   if (reduce != "none" && reduce != "max")
                     throw std::invalid_argument("saliency: reduce=" + reduce + " (known: none, max)");
                   Result res;
                   res.attribution = saliency(g, x, t, abs, reduce == "max", layer);
                   res.is_signed = !abs;
                   return res;
                 }});
  reg.push_back({{"input-x-gradient",
                  "input times the gradient of the target logit",
                  {{"layer", "", "stop at this layer: its activation times the gradient there"}},
                  "Captum InputXGradient"},
                 [](Graph& g, const Tensor& x, const Target& t, ParamReader& r) {
                   int layer = read_layer(r, g);
                   Result res;
                   res.attribution = input_x_gradient(g, x, t, layer);
                   return res;
                 }});
  reg.push_back({{"integrated-gradients",
                  "path integral of the gradient from a baseline to the input; delta = completeness error",
                  {{"n_steps", "50", "integration steps (not used by method=exact)", 1, 100000},
                   {"method", "gausslegendre",
                    "gausslegendre | riemann_left | riemann_right | riemann_middle | riemann_trapezoid | exact (the sum "
                    "over the linear regions the path crosses, piecewise-linear models only; details: regions, pieces)"},
                   {"baseline", "0", "constant baseline value in the model's input space, or a tensor (glassbox explain and Python: black (default), white, gray, mean, blur[:SIGMA], uniform:SEED, a number or FILE.npy)"},
                   {"internal_batch", "256", "rows (sample x step) per forward/backward", 1, 65536},
                   {"layer", "", "attribute to this layer's output (Captum LayerIntegratedGradients: the path runs "
                                 "between the layer's activations at the baseline and at x)"}},
                  "Captum IntegratedGradients (nodes and weights as Captum's approximation_methods); method=exact has no "
                  "Captum counterpart (OpenBox segment walk)"},
                 [](Graph& g, const Tensor& x, const Target& t, ParamReader& r) {
                   IgOptions o;
                   o.n_steps = r.integer("n_steps");
                   o.method = ig_method(r.text("method"));
                   if (const Tensor* b = r.tensor("baseline"))
                     o.baseline = *b;
                   else
                     o.baseline_value = float(r.number("baseline"));
                   o.internal_batch = r.integer("internal_batch");
                   o.layer = read_layer(r, g);
                   return integrated_gradients(g, x, t, o);
                 }});
  struct Variant {
    const char* name;
    NoiseKind kind;
    const char* summary;
  };
  for (Variant v : {Variant{"smoothgrad", NoiseKind::smoothgrad, "mean attribution over noisy copies"},
                    Variant{"smoothgrad-sq", NoiseKind::smoothgrad_sq, "mean squared attribution over noisy copies"},
                    Variant{"vargrad", NoiseKind::vargrad, "variance of the attribution over noisy copies"}}) {
    std::string name = v.name;
    NoiseKind kind = v.kind;
    reg.push_back(
        {{name,
          v.summary,
          {{"n", "50", "noisy copies per sample", 1, 100000},
           {"level", "0.15", "noise σ = level·(x_max − x_min) of each sample", 0, 100},
           {"stdev", "", "absolute noise σ (overrides level)", 0, 1e6},
           explain::seed_param("0", "noise seed; the noise of a sample depends only on the seed and its values"),
           {"base", "saliency", "the method under the noise (any registered method); its parameters pass through"},
           {"internal_batch", "256", "noisy rows per call of the base method", 1, 65536}},
          "Smilkov et al. (level, n = 50); Captum NoiseTunnel's smoothgrad/smoothgrad_sq/vargrad; base saliency is "
          "signed",
          true},
         [name, kind](Graph& g, const Tensor& x, const Target& t, ParamReader& r) {
           // Keys the tunnel does not declare go to the base method, which rejects what it does
           // not know.
           NoiseOptions o;
           o.kind = kind;
           o.n = r.integer("n");
           o.level = float(r.number("level"));
           if (std::optional<double> sd = r.maybe_number("stdev")) o.stdev = float(*sd);
           o.seed = uint64_t(r.integer("seed"));
           o.base = r.text("base");
           o.internal_batch = r.integer("internal_batch");
           if (o.base == "smoothgrad" || o.base == "smoothgrad-sq" || o.base == "vargrad")
             throw std::invalid_argument(name + ": base=" + o.base + " would nest noise tunnels");
           method_info(o.base);  // an unknown base fails here, listing the methods
           o.base_params = r.rest();  // tensors too, e.g. IG's baseline: one input, broadcast to every row
           return noise_tunnel(g, x, t, o);
         }});
  }
}

}  // namespace gb::explain
