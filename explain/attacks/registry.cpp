// The family's registry, attack() with its checks and measurements, the pixel space, the model
// seen from it, and the readers and helpers the attacks share.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "engine/loss.h"
#include "explain/attacks/method.h"

namespace gb::attacks {

// ---- the pixel space -----------------------------------------------------------------------

bool PixelSpace::bounded() const { return std::isfinite(lo) && std::isfinite(hi); }

void PixelSpace::check(int channels) const {
  for (auto* v : {&mean, &std})
    if (!v->empty() && v->size() != 1 && int(v->size()) != channels)
      throw std::invalid_argument("pixel space: " + std::to_string(v->size()) + " normalization values for " +
                                  std::to_string(channels) + " channels");
  if (mean.size() != std.size() && !mean.empty() && !std.empty())
    throw std::invalid_argument("pixel space: the normalization has " + std::to_string(mean.size()) + " means and " +
                                std::to_string(std.size()) + " standard deviations");
  for (float s : std)
    if (!(s > 0) || !std::isfinite(s)) throw std::invalid_argument("pixel space: a standard deviation is not positive");
  for (float m : mean)
    if (!std::isfinite(m)) throw std::invalid_argument("pixel space: a mean is not finite");
  if (std::isnan(lo) || std::isnan(hi) || !(lo < hi))
    throw std::invalid_argument("pixel space: the pixel range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                "] is empty");
}

// Calls fn(c, begin, end) for every channel plane of every row of t ([N, C, ...]; [N, F]: F channels of one value).
template <class Fn>
static void each_plane(const Tensor& t, Fn fn) {
  const int C = t.rank() > 1 ? t.dim(1) : 1;
  const size_t P = t.sample_size() / C;
  for (int n = 0; n < t.batch(); ++n)
    for (int c = 0; c < C; ++c) fn(c, (size_t(n) * C + c) * P, (size_t(n) * C + c + 1) * P);
}

void PixelSpace::to_pixels(const Tensor& x, Tensor& p) const {
  p.resize(x.shape());
  each_plane(x, [&](int c, size_t b, size_t e) {
    const float m = mean_of(c), s = std_of(c);
    for (size_t i = b; i < e; ++i) p[i] = x[i] * s + m;
  });
}

void PixelSpace::to_input(const Tensor& p, Tensor& x) const {
  x.resize(p.shape());
  each_plane(p, [&](int c, size_t b, size_t e) {
    const float m = mean_of(c), inv = 1.f / std_of(c);
    for (size_t i = b; i < e; ++i) x[i] = (p[i] - m) * inv;
  });
}

void PixelSpace::gradient_to_pixels(Tensor& g) const {
  if (std.empty()) return;
  each_plane(g, [&](int c, size_t b, size_t e) {
    const float inv = 1.f / std_of(c);
    for (size_t i = b; i < e; ++i) g[i] *= inv;
  });
}

void clamp_pixels(Tensor& p, const PixelSpace& s) {
  for (size_t i = 0; i < p.size(); ++i) p[i] = std::clamp(p[i], s.lo, s.hi);
}

// ---- the model seen from pixels ------------------------------------------------------------

const Tensor& PixelModel::logits(const Tensor& p) {
  s_.to_input(p, x_);
  return g_.forward(x_);
}

const Tensor& PixelModel::gradient(const Tensor& seed) {
  grad_.resize(x_.shape());
  grad_.copy_from(g_.backward(seed));
  s_.gradient_to_pixels(grad_);
  return grad_;
}

const Tensor& PixelModel::loss_gradient(const Tensor& p, const int* classes, std::vector<double>* losses) {
  const Tensor& z = logits(p);
  classes_.assign(classes, classes + p.batch());
  const LossResult l = softmax_cross_entropy(z, classes_, &seed_, Reduction::sum);
  if (losses) *losses = l.per_sample;
  return gradient(seed_);
}

std::vector<int> PixelModel::predict(const Tensor& p, int batch) {
  std::vector<int> out(p.batch());
  for_chunks(p.batch(), batch, [&](int b, int e) {
    const Tensor& z = logits(p.slice(b, e));
    for (int n = b; n < e; ++n) out[n] = argmax(row(z, n - b), z.dim(1));
  });
  return out;
}

// ---- helpers -------------------------------------------------------------------------------

void for_chunks(int n, int chunk, const std::function<void(int, int)>& fn) {
  for (int b = 0; b < n; b += chunk) fn(b, std::min(n, b + chunk));
}

void Job::progress(int b, int e, int done, int total) const {
  if (!request.progress || total <= 0) return;
  request.progress(b + int(double(e - b) * done / total), size());
}


// ---- the registry --------------------------------------------------------------------------

static const explain::MethodTable<Method>& table() {
  static const explain::MethodTable<Method> t("attack", [] {
    std::vector<Method> m;
    add_gradient_attacks(m);
    add_cw(m);
    add_deepfool(m);
    add_jsma(m);
    add_explanation_attacks(m);
    add_detection(m);
    add_substitute(m);
    return m;
  }());
  return t;
}

const std::vector<MethodInfo>& methods() { return table().infos(); }

const MethodInfo& method_info(const std::string& name) { return table().find(name).info; }

std::string epsilon_key(const std::string& method) {
  for (const ParamInfo& p : table().find(method).info.params)
    if (p.name == "epsilon" || p.name == "radius") return p.name;
  return "";
}

bool reads_reference_set(const std::string& method, const Params& params) {
  if (method == "substitute") return true;
  if (method != "detect-explanation") return false;
  const auto score = params.find("score");
  return score == params.end() || score->second == "class-map";
}

double success_rate(const Result& r) {
  if (r.success.empty()) return 0;
  double s = 0;
  for (char c : r.success) s += c;
  return s / double(r.success.size());
}

int initially_correct_count(const Result& r) {
  int c = 0;
  for (size_t n = 0; n < r.before.size(); ++n) c += initially_correct(r, int(n));
  return c;
}

double success_rate_initially_correct(const Result& r) {
  int correct = 0, s = 0;
  for (size_t n = 0; n < r.success.size(); ++n)
    if (initially_correct(r, int(n))) ++correct, s += r.success[n] != 0;
  return correct ? double(s) / correct : NAN;
}

// ---- attack() ------------------------------------------------------------------------------

static void check_classes(const std::vector<int>& v, int N, int K, const std::string& what) {
  if (!v.empty() && int(v.size()) != N)
    throw std::invalid_argument(what + ": " + std::to_string(v.size()) + " values for " + std::to_string(N) + " inputs");
  for (size_t n = 0; n < v.size(); ++n)
    if (v[n] >= K || (v[n] < 0 && what != "labels"))
      throw std::out_of_range(what + ": class " + std::to_string(v[n]) + " of input " + std::to_string(n) +
                              " outside the model's classes [0, " + std::to_string(K) + ")");
}

// The inputs in pixels, checked: finite and inside the range (to float rounding of the
// normalization, then clamped onto it).
static Tensor input_pixels(const Request& q) {
  Tensor p;
  q.pixels.to_pixels(q.inputs, p);
  const float tol = q.pixels.bounded() ? 1e-4f * (q.pixels.hi - q.pixels.lo) : 0.f;
  const size_t S = p.sample_size();
  const auto name = [&](size_t n) { return n < q.names.size() ? q.names[n] : "input " + std::to_string(n); };
  for (size_t i = 0; i < p.size(); ++i) {
    if (!std::isfinite(q.inputs[i]))
      throw std::invalid_argument(name(i / S) + ": not finite at element " + std::to_string(i % S));
    if (p[i] < q.pixels.lo - tol || p[i] > q.pixels.hi + tol) {
      char buf[240];
      std::snprintf(buf, sizeof buf, ": pixel value %g at element %zu outside the valid range [%g, %g] (0..255 values "
                    "go divided by 255; the model's inputs are these pixels through its normalization)",
                    p[i], i % S, q.pixels.lo, q.pixels.hi);
      throw std::out_of_range(name(i / S) + buf);
    }
  }
  clamp_pixels(p, q.pixels);
  return p;
}

static void check_request(Graph& model, const Request& q) {
  const Shape& in = model.input_shape();
  if (q.inputs.empty()) throw std::invalid_argument("attack: no inputs");
  if (q.inputs.rank() != in.rank + 1 || q.inputs.shape().sample() != in)
    shape_error("inputs to attack", Shape::batch_of(q.inputs.rank() ? q.inputs.batch() : 1, in), q.inputs.shape());
  if (model.shape(model.output()).rank != 2)
    throw ShapeError("attacks need a classifier with [N, classes] logits, this model outputs " +
                     model.shape(model.output()).str());
  q.pixels.check(in.rank > 0 ? in[0] : 1);
  const int N = q.inputs.batch(), K = model.classes();
  check_classes(q.labels, N, K, "labels");
  check_classes(q.targets, N, K, "targets");
  if (!q.names.empty() && q.names.size() != size_t(N))
    throw std::invalid_argument("attack: " + std::to_string(q.names.size()) + " input names for " + std::to_string(N) + " inputs");
  if (!q.data.empty() && (q.data.rank() != in.rank + 1 || q.data.shape().sample() != in))
    shape_error("attack data", Shape::batch_of(q.data.batch(), in), q.data.shape());
  if (!q.data.empty()) check_classes(q.data_labels, q.data.batch(), K, "data labels");
}

// Elements whose change is at most this are unchanged for L0 (float rounding of the pixel range).
constexpr double kL0Tolerance = 1e-6;

static void measure(const Job& job, Result& r) {
  const int N = job.size();
  const size_t S = job.start.sample_size();
  r.l0.assign(N, 0), r.l2.assign(N, 0), r.linf.assign(N, 0);
  for (int n = 0; n < N; ++n) {
    const float *a = row(job.start, n), *b = row(job.adversarial, n);
    double l0 = 0, l2 = 0, linf = 0;
    for (size_t i = 0; i < S; ++i) {
      const double d = std::fabs(double(b[i]) - a[i]);
      l0 += d > kL0Tolerance;
      l2 += d * d;
      linf = std::max(linf, d);
    }
    r.l0[n] = l0, r.l2[n] = std::sqrt(l2), r.linf[n] = linf;
  }
}

Result attack(Graph& model, const Request& q, const std::string& method, const Params& params) {
  const Method& m = table().find(method);
  check_request(model, q);
  ParamReader reader(params, m.info);
  Job job{model, q, q.pixels, input_pixels(q), {}, {}, q.targets, {}, {}, {}, {}, {}, {}};
  PixelModel pm(model, q.pixels);
  const std::vector<int> before = pm.predict(job.start);
  job.predicted = job.label = before;
  for (size_t n = 0; n < q.labels.size(); ++n)
    if (q.labels[n] >= 0) job.label[n] = q.labels[n];
  for (size_t n = 0; n < job.target.size(); ++n)
    if (job.target[n] == job.label[n])
      throw std::invalid_argument("targets: input " + std::to_string(n) + "'s target " + std::to_string(job.target[n]) +
                                  " is its own class; a targeted attack needs another class");
  m.run(job, reader);
  reader.done();
  if (job.adversarial.shape() != job.start.shape())
    throw std::logic_error(method + " returned " + job.adversarial.shape().str() + " for inputs " + job.start.shape().str());

  Result r;
  q.pixels.to_input(job.adversarial, r.adversarial);
  r.label = job.label;
  r.target = job.targeted() ? job.target : std::vector<int>(job.size(), -1);
  r.before = before;
  r.after = pm.predict(job.adversarial);
  r.success = job.success;
  if (r.success.empty()) {
    r.success.resize(job.size());
    for (int n = 0; n < job.size(); ++n)
      r.success[n] = job.targeted() ? r.after[n] == job.target[n] : r.after[n] != job.label[n];
  }
  measure(job, r);
  r.values = std::move(job.values);
  r.maps = std::move(job.maps);
  r.totals = std::move(job.totals);
  r.notes = std::move(job.notes);
  return r;
}

}  // namespace gb::attacks
