// The family's registry, visualize(), and the readers and checks its methods share.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/argmax.h"
#include "engine/rng.h"
#include "explain/visualize/method.h"

namespace gb::visualize {

static const explain::MethodTable<Method>& table() {
  static const explain::MethodTable<Method> t("visualization method", [] {
    std::vector<Method> m;
    add_maximize_methods(m);
    add_facet_methods(m);
    add_invert_methods(m);
    add_patch_methods(m);
    add_perturb_methods(m);
    add_decoder_methods(m);
    return m;
  }());
  return t;
}

const std::vector<MethodInfo>& methods() { return table().infos(); }

const MethodInfo& method_info(const std::string& name) { return table().find(name).info; }

static void check_images(const Graph& g, const Tensor& t, const std::string& what) {
  if (t.empty()) return;
  if (t.rank() != g.input_shape().rank + 1 || t.shape().sample() != g.input_shape())
    shape_error(what, Shape::batch_of(t.rank() ? t.batch() : 1, g.input_shape()), t.shape());
  for (size_t i = 0; i < t.size(); ++i)
    if (!std::isfinite(t[i])) throw std::invalid_argument(what + ": not finite at element " + std::to_string(i));
}

Result visualize(Graph& model, const Request& q, const std::string& method, const Params& params) {
  const Method& m = table().find(method);
  if (model.input_shape().rank != 3)
    throw ShapeError("feature visualization needs an image model [C,H,W], this one takes " + model.input_shape().str());
  check_images(model, q.inputs, "inputs");
  check_images(model, q.data, "data");
  const int C = model.input_shape()[0];
  for (auto* v : {&q.bounds.lo, &q.bounds.hi})
    if (!v->empty() && int(v->size()) != C && v->size() != 1)
      throw std::invalid_argument("bounds: " + std::to_string(v->size()) + " values for " + std::to_string(C) + " channels");
  for (int c = 0; c < C; ++c)
    if (!(q.bounds.high(c) > q.bounds.low(c)))
      throw std::invalid_argument("bounds of channel " + std::to_string(c) + ": low must be below high");
  for (const Unit& u : q.units) u.check(model);
  ParamReader reader(params, m.info);
  Result r = m.run(model, q, reader);
  reader.done();
  return r;
}

std::vector<ParamInfo> ascent_params(const AscentDefaults& d) {
  return {
      {"steps", d.steps, "gradient steps (1..100000)"},
      {"optimizer", d.optimizer, "adam (Lucent), sgd (x += lr g), sgd-l2norm (x += lr g/|g|_2, CS231n), sgd-meanabs (x += lr g/mean|g|, DeepDream)"},
      {"lr", d.lr, "step size, in the model's input space [1e-12, 1e6]"},
      {"l2", d.l2, "lambda_2 of the penalty lambda_2 |x|^2 (sum over the image, input space)"},
      {"l1", d.l1, "lambda_1 of the penalty lambda_1 |x|_1"},
      {"tv", d.tv, "lambda_TV of the total-variation penalty TV_beta(x) (Mahendran & Vedaldi)"},
      {"tv_beta", d.tv_beta, "beta of TV_beta, 1..10"},
      {"jitter", d.jitter, "each step, roll the image by a random shift in [-jitter, jitter] pixels per axis and roll the gradient back"},
      {"blur_every", d.blur_every, "Gaussian-blur the image every k steps (0: never)"},
      {"blur_sigma", d.blur_sigma, "sigma of that blur, in pixels (0..10)"},
      {"clip", "true", "clamp to the data's pixel range [0,1] (through the model's normalization) after every step"},
      {"fourier", "0", "optimize the image's spectrum with this 1/f^decay scaling (Lucent's fft_image: 1); 0: pixels"},
  };
}

AscentOptions read_ascent(ParamReader& r, const Graph& g, const Request& q) {
  AscentOptions o;
  const int side = std::max(g.input_shape()[1], g.input_shape()[2]);
  o.steps = read_int(r, "steps", 1, 100000);
  o.step = parse_step(read_choice(r, "optimizer", {"adam", "sgd", "sgd-l2norm", "sgd-meanabs"}));
  o.lr = read_number(r, "lr", 1e-12, 1e6);
  o.penalties.l2 = read_number(r, "l2", 0, 1e6);
  o.penalties.l1 = read_number(r, "l1", 0, 1e6);
  o.penalties.tv = read_number(r, "tv", 0, 1e6);
  o.penalties.tv_beta = read_number(r, "tv_beta", 1, 10);
  o.jitter = read_int(r, "jitter", 0, side / 2);
  o.blur_every = read_int(r, "blur_every", 0, 100000);
  o.blur_sigma = read_number(r, "blur_sigma", 0, 10);
  o.clip = r.flag("clip");
  o.fourier_decay = read_number(r, "fourier", 0, 4);
  o.bounds = q.bounds;
  o.progress = q.progress;
  return o;
}

Tensor start_images(const Graph& g, const std::string& kind, double value, double init_std,
                    const std::vector<uint64_t>& row_seeds, const Bounds& b) {
  const Shape in = g.input_shape();
  const int R = int(row_seeds.size()), C = in[0];
  const size_t HW = size_t(in[1]) * in[2];
  Tensor x(Shape::batch_of(R, in));
  for (int r = 0; r < R; ++r) {
    Rng rng(mix_seed(row_seeds[r], 0x5747));  // a stream of its own, apart from the row's jitter
    for (int c = 0; c < C; ++c) {
      float* p = x.data() + (size_t(r) * C + c) * HW;
      for (size_t i = 0; i < HW; ++i) {
        const double px = kind == "noise" ? 0.5 + init_std * rng.normal() : value;
        p[i] = b.from_pixel(c, float(px));
      }
    }
  }
  return x;
}

std::vector<double> dataset_max(Graph& g, const std::vector<Unit>& units, Score score, const Tensor& data,
                                const Progress& progress) {
  if (data.empty() || units.empty()) return {};
  std::vector<double> best(units.size(), -INFINITY);
  ForwardOptions fo;
  fo.until = units[0].at(g);
  const int N = data.batch();
  for (int b = 0; b < N; b += kScanBatch) {
    const int e = std::min(N, b + kScanBatch);
    const Tensor& a = g.forward(data.slice(b, e), fo);
    const size_t D = a.sample_size();
    for (int n = 0; n < e - b; ++n)
      for (size_t u = 0; u < units.size(); ++u)
        best[u] = std::max(best[u], unit_value(units[u], score, a.data() + n * D, a.shape().sample()));
    if (progress) progress(e, N);
  }
  return best;
}

void require_inputs(const Request& q, const std::string& method) {
  if (q.inputs.empty()) throw std::invalid_argument(method + " needs input images (--data with --index, or --input)");
}

std::vector<int> named_layers(const Graph& g, const std::string& spec, const std::string& method) {
  std::vector<int> nodes;
  for (size_t p = 0;;) {
    const size_t q = spec.find(',', p);
    const std::string name = spec.substr(p, q == std::string::npos ? std::string::npos : q - p);
    const int node = g.find(name);
    if (node < 0) {
      std::string names;
      for (int i = 0; i < g.size(); ++i) names += (names.empty() ? "" : ", ") + g.layer(i).name;
      throw std::invalid_argument(method + ": --param layers: no layer '" + name + "' (layers: " + names + ")");
    }
    if (std::find(nodes.begin(), nodes.end(), node) != nodes.end())
      throw std::invalid_argument(method + ": --param layers: '" + name + "' given twice");
    nodes.push_back(node);
    if (q == std::string::npos) return nodes;
    p = q + 1;
  }
}

void require_data(const Request& q, const std::string& method) {
  if (q.data.empty()) throw std::invalid_argument(method + " needs a dataset to scan (--data)");
}

std::string input_name(const Request& q, int n) {
  return n < int(q.input_names.size()) ? q.input_names[n] : "input" + std::to_string(n);
}

std::string label(const Graph& g, const Request& q, const Unit& u) {
  std::string s = u.describe(g);
  if (u.kind == Unit::Kind::class_score && u.index < int(q.class_names.size())) s += " " + q.class_names[u.index];
  return s;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

bool explains_each_input(const std::string& method) { return method == "minimal-image" || method == "mask"; }

std::vector<Unit> predicted_units(Graph& g, const Tensor& x, const std::string& method) {
  std::vector<Unit> units;
  const int N = x.batch(), K = g.classes();
  const Tensor logits = g.forward(x).clone();
  for (int n = 0; n < N; ++n) {
    const int k = argmax(logits.data() + size_t(n) * K, K);
    const bool seen = std::any_of(units.begin(), units.end(), [k](const Unit& u) { return u.index == k; });
    if (explains_each_input(method) || !seen) units.push_back(Unit::cls(k));
  }
  return units;
}

std::vector<Unit> per_input_units(const Graph& g, const Request& q, const std::string& method, bool classes_only) {
  const int N = q.inputs.batch();
  if (q.units.size() != 1 && int(q.units.size()) != N)
    throw std::invalid_argument(method + ": " + std::to_string(q.units.size()) + " units for " + std::to_string(N) +
                                " inputs (give one unit for all inputs, or one per input)");
  if (classes_only)
    for (const Unit& u : q.units)
      if (u.kind != Unit::Kind::class_score)
        throw std::invalid_argument(method + " explains a class (--unit class:K or class:pred), not " + u.describe(g));
  std::vector<Unit> out;
  for (int n = 0; n < N; ++n) out.push_back(q.units.size() == 1 ? q.units[0] : q.units[n]);
  return out;
}

}  // namespace gb::visualize
