#include "explain/visualize/ascent.h"

#include <cmath>
#include <stdexcept>

#include "engine/finite.h"
#include "engine/rng.h"

namespace gb::visualize {

Step parse_step(const std::string& s) {
  if (s == "adam") return Step::adam;
  if (s == "sgd") return Step::sgd;
  if (s == "sgd-l2norm") return Step::sgd_l2norm;
  if (s == "sgd-meanabs") return Step::sgd_meanabs;
  throw std::invalid_argument("optimizer '" + s + "' (known: adam, sgd, sgd-l2norm, sgd-meanabs)");
}

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::vector<uint64_t> row_seeds(uint64_t seed, const std::vector<Unit>& units, int restarts) {
  std::vector<uint64_t> s;
  for (const Unit& u : units)
    for (int k = 0; k < restarts; ++k) s.push_back(mix_seed(mix_seed(seed, u.key()), uint64_t(k)));
  return s;
}

StepState::StepState(const Shape& s) : m(s), v(s), t(s.rank ? size_t(s[0]) : 0, 0) {}

void ascent_step(Step rule, double lr, float* p, const float* g, size_t D, StepState& adam, int r) {
  switch (rule) {
    case Step::sgd:
      for (size_t i = 0; i < D; ++i) p[i] += float(lr * g[i]);
      return;
    case Step::sgd_l2norm:
    case Step::sgd_meanabs: {
      double n = 0;
      for (size_t i = 0; i < D; ++i) n += rule == Step::sgd_l2norm ? double(g[i]) * g[i] : std::fabs(g[i]);
      n = rule == Step::sgd_l2norm ? std::sqrt(n) : n / double(D);
      if (!(n > 0)) return;  // a flat objective: nothing to follow
      for (size_t i = 0; i < D; ++i) p[i] += float(lr * g[i] / n);
      return;
    }
    case Step::adam: {
      const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
      const int t = ++adam.t[r];
      float *m = adam.m.data() + size_t(r) * D, *v = adam.v.data() + size_t(r) * D;
      const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
      for (size_t i = 0; i < D; ++i) {
        m[i] = float(b1 * m[i] + (1 - b1) * g[i]);
        v[i] = float(b2 * v[i] + (1 - b2) * double(g[i]) * g[i]);
        p[i] += float(lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps));
      }
      return;
    }
  }
}

namespace {

void check_options(const Graph& g, const Tensor& start, const AscentOptions& o) {
  const Shape in = g.input_shape();
  if (in.rank != 3) throw ShapeError("feature visualization needs an image model, input " + in.str());
  if (start.rank() != 4 || start.dim(1) != in[0] || start.dim(2) > in[1] || start.dim(3) > in[2] || start.dim(2) < 1 ||
      start.dim(3) < 1)
    throw ShapeError("start images: expected [R," + std::to_string(in[0]) + ",h,w] with h <= " + std::to_string(in[1]) +
                     ", w <= " + std::to_string(in[2]) + ", got " + start.shape().str());
  if (!o.row_seeds.empty() && int(o.row_seeds.size()) != start.batch())
    throw std::invalid_argument(std::to_string(o.row_seeds.size()) + " row seeds for " +
                                std::to_string(start.batch()) + " rows");
  if (o.steps < 0 || o.jitter < 0 || o.blur_every < 0 || !std::isfinite(o.lr))
    throw std::invalid_argument("ascent: steps, jitter and blur_every must be >= 0 and lr finite");
}

}  // namespace

namespace {

// What ascend() optimizes and how the model's image x follows from it: x itself (pixels), a
// low-resolution image x is the bilinear upsampling of, or x's spectrum.
struct Variable {
  enum class Kind { pixels, lowres, spectrum } kind;
  Resize up;
  Spectrum spectrum;
  Tensor row_x, row_p;  // scratch of to_image / from_image for one row

  Variable(const Tensor& start, int H, int W, double decay)
      : kind(decay > 0 ? Kind::spectrum : start.dim(2) != H || start.dim(3) != W ? Kind::lowres : Kind::pixels),
        up(start.dim(2), start.dim(3), H, W),
        spectrum(H, W, decay > 0 ? decay : 1.0) {
    if (kind == Kind::spectrum && (start.dim(2) != H || start.dim(3) != W))
      throw ShapeError("a spectrum is optimized at the model's resolution, start " + start.shape().str());
  }
  Tensor initial(const Tensor& start) {  // the variable whose image is `start`
    if (kind != Kind::spectrum) return start.clone();
    Tensor p;
    spectrum.coefficients(start, p);
    return p;
  }
  // x from p; at full-resolution pixels x shares p's storage.
  void image(const Tensor& p, Tensor& x) const {
    if (kind == Kind::pixels) x = p;
    if (kind == Kind::lowres) up.forward(p, x);
    if (kind == Kind::spectrum) spectrum.image(p, x);
  }
  const Tensor& gradient(const Tensor& gx, Tensor& gp) const {  // ∂/∂p from ∂/∂x
    if (kind == Kind::lowres) up.adjoint(gx, gp);
    if (kind == Kind::spectrum) spectrum.adjoint(gx, gp);
    return kind == Kind::pixels ? gx : gp;
  }
  // Clipping and blurring of row p_row's image (the low-resolution image stays within the bounds
  // when upsampled: bilinear weights are convex).
  void project(Tensor p_row, bool clip_it, const Bounds& b, double blur_sigma) {
    Tensor& img = kind == Kind::spectrum ? row_x : p_row;
    if (kind == Kind::spectrum) spectrum.image(p_row, row_x);
    if (clip_it) clip(img, b);
    if (blur_sigma > 0) gaussian_blur(img, blur_sigma);
    if (kind == Kind::spectrum) {
      spectrum.coefficients(row_x, row_p);
      p_row.copy_from(row_p);
    }
  }
};

}  // namespace

namespace {

// An objective that overflowed float32 (a huge rate, a huge --unit direction) made every later
// value NaN and the run still succeeded: an error instead, as training's divergence is, unless
// non-finite values are allowed on purpose.
void check_objective(double value, int row, int steps) {
  if (nonfinite_allowed() || std::isfinite(value)) return;
  const std::string v = std::isnan(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf", r = "row " + std::to_string(row);
  if (steps == 0)
    throw std::runtime_error("the objective of " + r + " is " + v + " at the start: the unit's values overflow " +
                             "float32 (a --unit direction or a start this large?)");
  throw std::runtime_error("the ascent diverged: the objective of " + r + " is " + v + " after " + std::to_string(steps) +
                           (steps == 1 ? " step" : " steps") +
                           " (try a lower --param lr, clip=true, or a --unit direction of smaller norm)");
}

}  // namespace

AscentResult ascend(Graph& g, const Objective& obj, const Tensor& start, const AscentOptions& o) {
  check_options(g, start, o);
  const int R = start.batch(), H = g.input_shape()[1], W = g.input_shape()[2];
  Variable var(start, H, W, o.fourier_decay);
  AscentResult res;
  res.param = var.initial(start);
  Tensor& p = res.param;
  Tensor x;
  var.image(p, x);
  res.start = evaluate(g, obj, x);
  res.start_penalty.assign(R, 0.0);
  penalties(x, o.penalties, res.start_penalty.data(), nullptr);
  for (int r = 0; r < R; ++r) check_objective(res.start[r] - res.start_penalty[r], r, 0);
  res.steps.assign(R, 0);
  res.curve.assign(R, {});

  std::vector<Rng> rng;
  for (int r = 0; r < R; ++r) rng.emplace_back(o.row_seeds.empty() ? uint64_t(r) : o.row_seeds[r]);
  std::vector<int> dy(R, 0), dx(R, 0);
  std::vector<char> active(R, 1);
  std::vector<double> S(R), pen(R, 0.0);
  StepState adam(p.shape());
  Tensor xj, gx, gp, seed;
  ForwardOptions fo;
  fo.until = obj.node;
  BackwardOptions bo;
  bo.seed_at = obj.node;
  const size_t D = p.sample_size();

  for (int t = 0; t < o.steps; ++t) {
    for (int r = 0; r < R; ++r) {  // drawn for every row and step, so a row's stream never depends on others
      dy[r] = o.jitter ? int(rng[r].below(2 * o.jitter + 1)) - o.jitter : 0;
      dx[r] = o.jitter ? int(rng[r].below(2 * o.jitter + 1)) - o.jitter : 0;
    }
    roll(x, dy, dx, xj);
    const Tensor& a = g.forward(xj, fo);
    obj.eval(a, 0, S.data(), seed);
    bool any = false;
    for (int r = 0; r < R; ++r) {
      if (active[r] && o.done && o.done(r, a.data() + size_t(r) * a.sample_size())) active[r] = 0;
      if (!active[r]) std::fill_n(seed.data() + size_t(r) * seed.sample_size(), seed.sample_size(), 0.f);
      any |= active[r] != 0;
    }
    if (!any) break;
    roll(g.backward(seed, bo), dy, dx, gx, -1);
    if (o.penalties.any()) penalties(x, o.penalties, pen.data(), &gx);
    for (int r = 0; r < R; ++r)  // S, pen: the image after t steps
      if (active[r]) check_objective(S[r] - pen[r], r, t);
    const Tensor& grad = var.gradient(gx, gp);
    const bool blur_now = o.blur_every && (t + 1) % o.blur_every == 0;
    for (int r = 0; r < R; ++r) {
      if (!active[r]) continue;
      res.curve[r].push_back(S[r] - pen[r]);
      ascent_step(o.step, o.lr, p.data() + size_t(r) * D, grad.data() + size_t(r) * D, D, adam, r);
      ++res.steps[r];
      var.project(p.slice(r, r + 1), o.clip, o.bounds, blur_now ? o.blur_sigma : 0.0);
    }
    var.image(p, x);
    if (o.progress) o.progress(t + 1, o.steps);
  }
  res.x = x.clone();
  res.value = evaluate(g, obj, res.x);
  res.penalty.assign(R, 0.0);
  penalties(res.x, o.penalties, res.penalty.data(), nullptr);
  for (int r = 0; r < R; ++r) check_objective(res.value[r] - res.penalty[r], r, res.steps[r]);
  return res;
}

}  // namespace gb::visualize
