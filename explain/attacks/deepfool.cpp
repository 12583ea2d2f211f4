// DeepFool (Moosavi-Dezfooli et al. 2016), L2, as Foolbox's L2DeepFoolAttack computes it, in pixels.
// Per input with class y, the candidates are the `candidates` − 1 classes k ≠ y with the largest
// logits at the input; while the input is not yet misclassified (at most `steps` times):
//   f_k = Z_k − Z_y,  w_k = ∇_p (Z_k − Z_y),  k* = argmin_k |f_k| / (‖w_k‖ + 1e-8)
//   r  += (|f_k*| / (‖w_k*‖ + 1e-8) + 1e-4) / (‖w_k*‖ + 1e-8) · w_k*
//   p   = clip(p0 + (1 + overshoot) · r)
// the linearized step to the nearest class boundary, accumulated and overshot. The gradients of
// one step are one forward pass and `candidates` backward passes seeded per row at its classes.
// Difference: torchattacks' DeepFool applies the overshoot to each step (x += (1 + overshoot) r_i)
// and uses all classes; the original code and Foolbox (followed here) overshoot the total.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "explain/attacks/method.h"

namespace gb::attacks {

namespace {

struct DeepFoolOptions {
  int steps = 50, candidates = 10;
  double overshoot = 0.02;
};

// Row a's DeepFool step, added to its total: to the candidate whose linearized boundary is nearest.
// grads [C, A, S] holds the gradients of the row's classes (its own first), z its logits.
void step_row(const Tensor& grads, const float* z, const std::vector<int>& classes, int a, int A, float* total) {
  const size_t S = grads.size() / grads.dim(0) / A;
  const float* gy = grads.data() + size_t(a) * S;
  int best = -1;
  double best_d = 0, best_norm = 0;
  for (int c = 1; c < int(classes.size()); ++c) {
    const float* gk = grads.data() + (size_t(c) * A + a) * S;
    double norm = 0;
    for (size_t i = 0; i < S; ++i) norm += double(gk[i] - gy[i]) * (gk[i] - gy[i]);
    norm = std::sqrt(norm) + 1e-8;
    const double d = std::fabs(double(z[classes[c]]) - z[classes[0]]) / norm;
    if (best < 0 || d < best_d) best = c, best_d = d, best_norm = norm;
  }
  if (best < 0) return;  // a single class: nowhere to go
  const float k = float((best_d + 1e-4) / best_norm);
  const float* gk = grads.data() + (size_t(best) * A + a) * S;
  for (size_t i = 0; i < S; ++i) total[i] += k * (gk[i] - gy[i]);
}

void deepfool_rows(Job& job, PixelModel& pm, int b, int e, const DeepFoolOptions& o) {
  const int R = e - b, K = pm.classes(), C = std::min(o.candidates, K);
  const size_t S = job.start.sample_size();
  const Tensor p0 = job.start.slice(b, e);
  Tensor p = p0.clone(), total(p0.shape());
  // Per row: its class first, then the other classes by their logits at the input, largest first.
  std::vector<std::vector<int>> classes(R);
  {
    const Tensor& z = pm.logits(p0);
    for (int r = 0; r < R; ++r) {
      const int y = job.label[b + r];
      std::vector<int> order(K);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int i, int j) { return row(z, r)[i] > row(z, r)[j]; });
      classes[r] = {y};
      for (int k : order)
        if (k != y && int(classes[r].size()) < C) classes[r].push_back(k);
    }
  }
  std::vector<int> active(R), still, steps(R, 0);
  std::iota(active.begin(), active.end(), 0);
  Tensor pa, seed, grads;  // the active rows' images, a seed, and their gradients per candidate [C, A, S]
  std::vector<float> za;
  for (int step = 0; step < o.steps && !active.empty(); ++step) {
    const int A = int(active.size());
    pa.resize(Shape::batch_of(A, p.shape().sample()));
    for (int a = 0; a < A; ++a) std::copy_n(row(p, active[a]), S, row(pa, a));
    const Tensor& z = pm.logits(pa);
    za.assign(z.data(), z.data() + z.size());
    // Rows already misclassified are done: their seeds stay zero and they leave the active set.
    still.clear();
    for (int a = 0; a < A; ++a) still.push_back(argmax(za.data() + size_t(a) * K, K) == job.label[b + active[a]]);
    if (std::none_of(still.begin(), still.end(), [](int v) { return v; })) break;
    grads.resize(Shape{C, A, int(S)});
    seed.resize(Shape{A, K});
    for (int c = 0; c < C; ++c) {
      seed.fill(0.f);
      for (int a = 0; a < A; ++a)
        if (still[a]) row(seed, a)[classes[active[a]][c]] = 1.f;
      std::copy_n(pm.gradient(seed).data(), size_t(A) * S, grads.data() + size_t(c) * A * S);
    }
    int kept = 0;
    for (int a = 0; a < A; ++a) {
      if (!still[a]) continue;
      const int r = active[a];
      step_row(grads, za.data() + size_t(a) * K, classes[r], a, A, row(total, r));
      float* pr = row(p, r);
      const float* q = row(p0, r);
      for (size_t i = 0; i < S; ++i)
        pr[i] = std::clamp(q[i] + float(1 + o.overshoot) * row(total, r)[i], job.pixels.lo, job.pixels.hi);
      ++steps[r];
      active[kept++] = r;
    }
    active.resize(kept);
    job.progress(b, e, step + 1, o.steps);
  }
  job.adversarial.slice(b, e).copy_from(p);
  for (int r = 0; r < R; ++r) job.values["steps"][b + r] = steps[r];
}

void run_deepfool(Job& job, ParamReader& r) {
  DeepFoolOptions o;
  o.steps = read_int(r, "steps", 1, 10000);
  o.candidates = read_int(r, "candidates", 2, 1000);
  o.overshoot = read_number(r, "overshoot", 0, 10);
  if (job.targeted()) throw std::invalid_argument("deepfool is untargeted (it goes to the nearest boundary); give no target");
  PixelModel pm(job.model, job.pixels);
  job.adversarial = Tensor(job.start.shape());
  job.values["steps"].assign(job.size(), 0);
  for_chunks(job.size(), kChunk, [&](int b, int e) { deepfool_rows(job, pm, b, e, o); });
}

}  // namespace

void add_deepfool(std::vector<Method>& reg) {
  reg.push_back({{"deepfool",
                  "DeepFool L2: linearize the logits, step to the nearest class boundary, repeat until the label "
                  "changes; the accumulated step is overshot",
                  {{"steps", "50", "at most this many steps (1..10000)"},
                   {"candidates", "10", "the input's class and the classes with the largest logits considered (2..1000)"},
                   {"overshoot", "0.02", "the total step is multiplied by 1 + overshoot"}},
                  "Foolbox L2DeepFoolAttack (steps 50, candidates 10, overshoot 0.02, loss = logit differences, "
                  "+1e-4 and +1e-8 for stability, overshoot on the accumulated step as Moosavi-Dezfooli et al.'s "
                  "code); torchattacks overshoots each step; untargeted only; 'steps' counts the steps taken"},
                 run_deepfool});
}

}  // namespace gb::attacks
