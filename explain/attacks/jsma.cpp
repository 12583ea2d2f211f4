// The Jacobian-based saliency map attack (Papernot et al. 2016) as CleverHans' SaliencyMapMethod
// (jsma_symbolic) computes it, in pixels. Per input with target t, while the prediction is not t,
// at most ⌊F·gamma/2⌋ times (F = elements of the input) and while two features remain:
//   α_i = ∂Z_t/∂p_i,  β_i = Σ_{k≠t} ∂Z_k/∂p_i         (logits, as CleverHans)
//   (i, j) = argmax over pairs in the search domain of −(α_i + α_j)(β_i + β_j)
//            where α_i + α_j > 0 and β_i + β_j < 0        (theta < 0: the signs reversed)
//   p_i, p_j += theta (clipped to the range); both leave the search domain
// The search domain starts as the features below hi (theta > 0) or above lo (theta < 0), so at most
// 2·⌊F·gamma/2⌋ ≤ gamma·F features change. β needs no pass of its own: it is the gradient of Σ_k Z_k
// minus α, so a step costs one forward and two backward passes whatever the class count.
// Differences: when no pair satisfies the conditions the input stops (CleverHans' argmax over
// all-zero scores picks feature 0 twice); without --target the target is label + 1 (torchattacks;
// CleverHans draws a random one).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "explain/attacks/method.h"

namespace gb::attacks {

namespace {

struct JsmaOptions {
  double theta = 1.0, gamma = 0.1;
};

// The best admissible pair of row a's search domain, or {-1, -1}.
std::pair<int, int> best_pair(const float* alpha, const float* beta, const std::vector<int>& domain, bool increase) {
  double best = 0;
  std::pair<int, int> at{-1, -1};
  const int D = int(domain.size());
  for (int u = 0; u < D; ++u) {
    const int i = domain[u];
    for (int v = u + 1; v < D; ++v) {
      const int j = domain[v];
      const double a = double(alpha[i]) + alpha[j], b = double(beta[i]) + beta[j];
      if (increase ? (a <= 0 || b >= 0) : (a >= 0 || b <= 0)) continue;
      const double score = -a * b;
      if (score > best) best = score, at = {i, j};
    }
  }
  return at;
}

void jsma_rows(Job& job, PixelModel& pm, int b, int e, const JsmaOptions& o, const std::vector<int>& targets) {
  const int R = e - b, K = pm.classes();
  const size_t S = job.start.sample_size();
  const bool increase = o.theta > 0;
  const int max_iters = int(std::floor(double(S) * o.gamma / 2));
  if (max_iters < 1) {  // it returned every input unchanged without a word
    char buf[160];
    std::snprintf(buf, sizeof buf, "jsma: gamma=%g lets it change no pair of the %zu features (floor(S*gamma/2) = 0 "
                  "iterations): give gamma >= %g", o.gamma, S, 2.0 / double(S));
    throw std::invalid_argument(buf);
  }
  Tensor p = job.start.slice(b, e).clone();
  std::vector<std::vector<int>> domain(R);
  for (int r = 0; r < R; ++r)
    for (size_t i = 0; i < S; ++i)
      if (increase ? row(p, r)[i] < job.pixels.hi : row(p, r)[i] > job.pixels.lo) domain[r].push_back(int(i));
  std::vector<int> active, still, iters(R, 0);
  Tensor pa, seed, alpha, beta;
  for (int it = 0; it < max_iters; ++it) {
    active.clear();
    for (int r = 0; r < R; ++r)
      if (domain[r].size() >= 2 && iters[r] == it) active.push_back(r);  // rows that stopped stay stopped
    if (active.empty()) break;
    const int A = int(active.size());
    pa.resize(Shape::batch_of(A, p.shape().sample()));
    for (int a = 0; a < A; ++a) std::copy_n(row(p, active[a]), S, row(pa, a));
    const Tensor& z = pm.logits(pa);
    still.clear();
    for (int a = 0; a < A; ++a)
      if (argmax(row(z, a), K) != targets[b + active[a]]) still.push_back(a);
    if (still.empty()) break;
    seed.resize(Shape{A, K});
    seed.fill(0.f);
    for (int a : still) row(seed, a)[targets[b + active[a]]] = 1.f;
    alpha.resize(pa.shape());
    alpha.copy_from(pm.gradient(seed));  // ∂Z_t/∂p
    for (int a : still) std::fill_n(row(seed, a), K, 1.f);
    beta.resize(pa.shape());
    beta.copy_from(pm.gradient(seed));  // ∂(Σ_k Z_k)/∂p, then minus α
    for (size_t i = 0; i < beta.size(); ++i) beta[i] -= alpha[i];
    for (int a : still) {
      const int r = active[a];
      const auto [i, j] = best_pair(row(alpha, a), row(beta, a), domain[r], increase);
      if (i < 0) continue;  // no admissible pair: this input stops
      for (int f : {i, j}) {
        float& v = row(p, r)[f];
        v = std::clamp(float(v + o.theta), job.pixels.lo, job.pixels.hi);
        domain[r].erase(std::find(domain[r].begin(), domain[r].end(), f));
      }
      iters[r] = it + 1;
    }
    job.progress(b, e, it + 1, max_iters);
  }
  job.adversarial.slice(b, e).copy_from(p);
  for (int r = 0; r < R; ++r) job.values["max_changed_fraction"][b + r] = 2.0 * max_iters / double(S);
  for (int r = 0; r < R; ++r) job.values["iterations"][b + r] = iters[r];
}

void run_jsma(Job& job, ParamReader& r) {
  JsmaOptions o;
  o.theta = read_number(r, "theta", -1e6, 1e6);
  o.gamma = read_number(r, "gamma", 0, 1);
  if (o.theta == 0) throw std::invalid_argument("jsma: --param theta must not be 0");
  std::vector<int> targets = job.target;
  if (targets.empty())
    for (int n = 0; n < job.size(); ++n) targets.push_back((job.label[n] + 1) % job.model.classes());
  if (job.model.classes() < 2) throw std::invalid_argument("jsma needs a model with at least two classes");
  PixelModel pm(job.model, job.pixels);
  job.adversarial = Tensor(job.start.shape());
  job.values["iterations"].assign(job.size(), 0);
  job.values["max_changed_fraction"].assign(job.size(), 0);
  for_chunks(job.size(), kChunk, [&](int b, int e) { jsma_rows(job, pm, b, e, o, targets); });
  // Success is reaching the target, with or without --target.
  job.success.resize(job.size());
  const std::vector<int> after = pm.predict(job.adversarial);
  for (int n = 0; n < job.size(); ++n) job.success[n] = after[n] == targets[n];
  if (!job.targeted()) job.target = targets;
}

}  // namespace

void add_jsma(std::vector<Method>& reg) {
  reg.push_back({{"jsma",
                  "Jacobian-based saliency map attack: change pairs of features chosen by the saliency map of the "
                  "target's and the other classes' logit gradients, until the target is reached or gamma * F "
                  "features have changed",
                  {{"theta", "1.0", "added to each chosen feature (pixels; negative: decrease features)"},
                   {"gamma", "0.1", "the largest fraction of features changed (0..1)"}},
                  "CleverHans SaliencyMapMethod / jsma_symbolic (theta, gamma, clip to the pixel range, pairs, logits, "
                  "search domain, floor(F gamma / 2) iterations; CleverHans' default gamma is 1, its MNIST tutorial's "
                  "and torchattacks' 0.1); differences: an input with no admissible pair stops; without --target "
                  "the target is label + 1 (torchattacks); success = the target reached"},
                 run_jsma});
}

}  // namespace gb::attacks
