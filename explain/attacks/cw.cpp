// Carlini & Wagner's L2 attack (2017), as their reference code l2_attack.py computes it, in pixels:
//   p(w) = tanh(w) · (hi − lo)/2 + (hi + lo)/2,   w = atanh((p0 − (hi + lo)/2) / ((hi − lo)/2) · 0.999999) + m
//   minimize over m   ‖p(w) − p(w0)‖² + c · max(0, max_{k≠t} Z_k − Z_t + κ)   (targeted at t)
//                     ‖p(w) − p(w0)‖² + c · max(0, Z_y − max_{k≠y} Z_k + κ)   (untargeted, label y)
// with Adam (TensorFlow's form, lr 0.01) for max_iterations steps from m = 0, and a binary search
// over c per input (from initial_const: ×10 until a success, then bisection). The answer is the
// successful iterate with the smallest L2 over all searches (κ-adjusted argmax, as `compare`).
// Differences: abort_early is decided per input (the reference compares the whole batch's summed
// loss, so its result depends on the batch); an input never fooled is returned unchanged (the
// reference returns zeros); default max_iterations 1000 (reference 10000; torchattacks and
// CleverHans' PyTorch port use 1000 and fewer).
#include <cmath>
#include <limits>

#include "explain/attacks/method.h"

namespace gb::attacks {

namespace {

struct CwOptions {
  double confidence = 0, lr = 1e-2, initial_const = 1e-3;
  int search_steps = 9, max_iterations = 1000;
  bool abort_early = true;
};

// TensorFlow's Adam (tf.train.AdamOptimizer): lr_t = lr·√(1 − β2ᵗ)/(1 − β1ᵗ), θ −= lr_t·m/(√v + ε).
struct Adam {
  static constexpr double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  int t = 0;
  void step(float* theta, float* m, float* v, const float* g, size_t n, double lr) const {
    const double lr_t = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    for (size_t i = 0; i < n; ++i) {
      m[i] = float(b1 * m[i] + (1 - b1) * g[i]);
      v[i] = float(b2 * v[i] + (1 - b2) * double(g[i]) * g[i]);
      theta[i] -= float(lr_t * m[i] / (std::sqrt(double(v[i])) + eps));
    }
  }
};

// The reference's `compare`: the κ-adjusted argmax is the target (targeted) or not the label.
bool fooled(const float* z, int K, int y, bool targeted, double kappa) {
  int best = 0;
  double top = -std::numeric_limits<double>::infinity();
  for (int k = 0; k < K; ++k) {
    const double v = z[k] + (k == y ? (targeted ? -kappa : kappa) : 0.0);
    if (v > top) top = v, best = k;
  }
  return targeted ? best == y : best != y;
}

// The largest logit other than y's.
int runner_up(const float* z, int K, int y) {
  int best = -1;
  for (int k = 0; k < K; ++k)
    if (k != y && (best < 0 || z[k] > z[best])) best = k;
  return best;
}

// One chunk of inputs [b, e): their whole binary search, the rows still descending gathered into
// one batch at each iteration.
class CwRows {
 public:
  CwRows(Job& job, PixelModel& pm, int b, int e, const CwOptions& o)
      : job_(job), pm_(pm), o_(o), b_(b), R_(e - b), S_(job.start.sample_size()), K_(pm.classes()) {}

  void run() {
    const PixelSpace& s = job_.pixels;
    mul_ = (s.hi - s.lo) / 2, plus_ = (s.hi + s.lo) / 2;
    const Tensor p0 = job_.start.slice(b_, b_ + R_);
    w0_ = Tensor(p0.shape()), base_ = Tensor(p0.shape());
    for (size_t i = 0; i < p0.size(); ++i) {
      w0_[i] = std::atanh((p0[i] - plus_) / mul_ * 0.999999f);
      base_[i] = std::tanh(w0_[i]) * mul_ + plus_;
    }
    best_ = p0.clone();  // unchanged unless fooled
    best_l2_.assign(R_, 1e10);
    constant_.assign(R_, o_.initial_const);
    lower_.assign(R_, 0.0);
    upper_.assign(R_, 1e10);
    modifier_ = Tensor(p0.shape()), m1_ = Tensor(p0.shape()), m2_ = Tensor(p0.shape());
    const bool repeat = o_.search_steps >= 10;
    for (int step = 0; step < o_.search_steps; ++step) {
      if (repeat && step == o_.search_steps - 1) constant_ = upper_;
      descend(step);
      adjust_constants();
    }
    job_.adversarial.slice(b_, b_ + R_).copy_from(best_);
    for (int r = 0; r < R_; ++r) job_.values["const"][b_ + r] = upper_[r] < 1e9 ? upper_[r] : NAN;
  }

 private:
  Job& job_;
  PixelModel& pm_;
  const CwOptions& o_;
  const int b_, R_;
  const size_t S_;
  const int K_;
  float mul_ = 0.5f, plus_ = 0.5f;
  Tensor w0_, base_, best_, modifier_, m1_, m2_;
  std::vector<double> best_l2_, constant_, lower_, upper_, step_l2_, prev_, loss_, l2_;
  std::vector<int> step_class_, active_, still_;
  Tensor p_, seed_, grad_, tanh_;  // the active rows' images, seeds, gradients and tanh(w), gathered

  bool targeted() const { return job_.targeted(); }
  int class_of(int r) const { return job_.loss_classes()[b_ + r]; }

  // Gradient descent on every row's modifier with its constant (one binary-search step).
  void descend(int step) {
    modifier_.fill(0.f), m1_.fill(0.f), m2_.fill(0.f);
    step_l2_.assign(R_, 1e10);
    step_class_.assign(R_, -1);
    prev_.assign(R_, std::numeric_limits<double>::infinity());
    active_.resize(R_);
    for (int r = 0; r < R_; ++r) active_[r] = r;
    const int check_every = std::max(1, o_.max_iterations / 10);
    Adam adam;
    for (int it = 0; it < o_.max_iterations && !active_.empty(); ++it) {
      gather_images();
      const Tensor& z = pm_.logits(p_);
      const int A = int(active_.size());
      seed_.resize(Shape{A, K_});
      seed_.fill(0.f);
      loss_.resize(A), l2_.resize(A);
      for (int a = 0; a < A; ++a) loss_[a] = row_loss(a, z, l2_[a]);
      const Tensor& g = pm_.gradient(seed_);
      ++adam.t;
      still_.clear();
      for (int a = 0; a < A; ++a) {
        const int r = active_[a];
        update(r, a, g, adam);
        if (o_.abort_early && it % check_every == 0) {
          if (loss_[a] > prev_[r] * 0.9999) continue;  // stopped improving: this row is done
          prev_[r] = loss_[a];
        }
        record(r, a, z, l2_[a]);
        still_.push_back(r);
      }
      active_.swap(still_);
      job_.progress(b_, b_ + R_, step * o_.max_iterations + it + 1, o_.search_steps * o_.max_iterations);
    }
  }

  // p = tanh(w0 + m)·mul + plus for the active rows.
  void gather_images() {
    const int A = int(active_.size());
    p_.resize(Shape::batch_of(A, job_.start.shape().sample()));
    tanh_.resize(p_.shape());
    for (int a = 0; a < A; ++a) {
      const int r = active_[a];
      const float *w = row(w0_, r), *m = row(modifier_, r);
      float *t = row(tanh_, a), *p = row(p_, a);
      for (size_t i = 0; i < S_; ++i) {
        t[i] = std::tanh(w[i] + m[i]);
        p[i] = t[i] * mul_ + plus_;
      }
    }
  }

  // Row a's loss ‖p − base‖² + c·hinge, its L2 in l2, and its seed (the hinge's gradient at the logits).
  double row_loss(int a, const Tensor& z, double& l2) {
    const int r = active_[a], y = class_of(r);
    const float *p = row(p_, a), *q = row(base_, r), *za = row(z, a);
    l2 = 0;
    for (size_t i = 0; i < S_; ++i) l2 += double(p[i] - q[i]) * (p[i] - q[i]);
    const int o = runner_up(za, K_, y);
    const double margin = targeted() ? za[o] - za[y] + o_.confidence : za[y] - za[o] + o_.confidence;
    if (margin <= 0) return l2;
    float* s = row(seed_, a);
    s[o] = float(targeted() ? constant_[r] : -constant_[r]);
    s[y] = float(targeted() ? -constant_[r] : constant_[r]);
    return l2 + constant_[r] * margin;
  }

  // The Adam step on row r's modifier: the loss gradient through p(w) = tanh(w)·mul + plus.
  void update(int r, int a, const Tensor& g, const Adam& adam) {
    grad_.resize(Shape{int(S_)});
    const float *gp = row(g, a), *p = row(p_, a), *q = row(base_, r), *t = row(tanh_, a);
    for (size_t i = 0; i < S_; ++i) grad_[i] = (gp[i] + 2 * (p[i] - q[i])) * mul_ * (1 - t[i] * t[i]);
    adam.step(row(modifier_, r), row(m1_, r), row(m2_, r), grad_.data(), S_, o_.lr);
  }

  // The best successful iterates, of this search step and over all (the image before the step).
  void record(int r, int a, const Tensor& z, double l2) {
    if (!fooled(row(z, a), K_, class_of(r), targeted(), o_.confidence)) return;
    if (l2 < step_l2_[r]) step_l2_[r] = l2, step_class_[r] = argmax(row(z, a), K_);
    if (l2 < best_l2_[r]) {
      best_l2_[r] = l2;
      std::copy_n(row(p_, a), S_, row(best_, r));
    }
  }

  // The reference's binary search: halve towards the known bounds, or ×10 until a first success.
  void adjust_constants() {
    for (int r = 0; r < R_; ++r) {
      if (step_class_[r] >= 0) {
        upper_[r] = std::min(upper_[r], constant_[r]);
        if (upper_[r] < 1e9) constant_[r] = (lower_[r] + upper_[r]) / 2;
      } else {
        lower_[r] = std::max(lower_[r], constant_[r]);
        constant_[r] = upper_[r] < 1e9 ? (lower_[r] + upper_[r]) / 2 : constant_[r] * 10;
      }
    }
  }
};

void run_cw(Job& job, ParamReader& r) {
  CwOptions o;
  o.confidence = read_number(r, "confidence", 0, 1e6);
  o.lr = read_number(r, "learning_rate", 1e-8, 10);
  o.search_steps = read_int(r, "binary_search_steps", 1, 30);
  o.max_iterations = read_int(r, "max_iterations", 1, 100000);
  o.initial_const = read_number(r, "initial_const", 1e-10, 1e10);
  o.abort_early = r.flag("abort_early");
  if (!job.pixels.bounded())
    throw std::invalid_argument("cw needs a bounded pixel range for its tanh box (this model's inputs are unbounded)");
  PixelModel pm(job.model, job.pixels);
  job.adversarial = Tensor(job.start.shape());
  job.values["const"].assign(job.size(), NAN);
  for_chunks(job.size(), kChunk, [&](int b, int e) { CwRows(job, pm, b, e, o).run(); });
  // The mean c over the inputs CW fooled (its const is undefined, NaN, on the others): a mean over
  // all inputs would be undefined as soon as one input fails. NaN only when none was fooled.
  double sum = 0;
  int fooled = 0;
  for (double c : job.values["const"])
    if (std::isfinite(c)) sum += c, ++fooled;
  job.totals["mean_const_successful"] = fooled ? sum / fooled : NAN;
  job.totals["const_successful_inputs"] = fooled;
}

}  // namespace

void add_cw(std::vector<Method>& reg) {
  reg.push_back({{"cw",
                  "Carlini-Wagner L2: the smallest L2 change (in tanh space, Adam) that reaches the target or leaves "
                  "the label with margin confidence, binary-searching the constant c per input",
                  {{"confidence", "0", "kappa: the margin of the adversarial logit over the others"},
                   {"learning_rate", "0.01", "Adam's learning rate on the tanh-space variable"},
                   {"binary_search_steps", "9", "binary-search steps over c (1..30; >= 10 repeats the last with the upper bound)"},
                   {"max_iterations", "1000", "Adam steps per search step (1..100000; the reference's default is 10000)"},
                   {"initial_const", "1e-3", "the first c"},
                   {"abort_early", "true", "stop an input's descent when its loss has not fallen by 0.01% over max_iterations/10 steps"}},
                  "carlini/nn_robust_attacks l2_attack.py (CarliniL2: names and defaults, TensorFlow's Adam, the "
                  "0.999999 atanh scaling, the binary search and repeat rule, the distance to tanh(w0)); differences: "
                  "abort_early per input (the reference uses the batch's summed loss), an input never fooled is returned "
                  "unchanged (the reference returns zeros), max_iterations 1000; pixel box [lo, hi]; the value 'const' "
                  "is the smallest c that succeeded (undefined on inputs never fooled); totals: mean_const_successful, its mean "
                  "over the inputs fooled, and const_successful_inputs, their number"},
                 run_cw});
}

}  // namespace gb::attacks
