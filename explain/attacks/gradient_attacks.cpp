// FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018) as Captum's captum.robust computes
// them, in pixels:
//   FGSM   p' = clip(p + s·ε·sign(∇_p L(p, y)))        where |∇_p L| > zero_thresh (else unchanged)
//   PGD    p_0 = p (or a uniform point of the ball), then step_num times:
//          p_{t+1} = clip(Π_ball(p_t + s·α·step(∇_p L(p_t, y))))
// L is each input's own cross-entropy at its label (untargeted, s = +1) or at its target
// (targeted, s = −1); step is the sign (L∞), or g/‖g‖₂ per input for L2 (Madry et al.; Captum
// takes sign steps for L2 too: l2_step=sign); Π_ball clamps p − p_0 to [−r, r] (L∞) or rescales
// it to ‖·‖₂ ≤ r as torch.renorm does; clip keeps the pixel range.
#include <cmath>

#include "engine/rng.h"
#include "explain/attacks/method.h"

namespace gb::attacks {

namespace {

// Captum's FGSM step: p += s·α·sign(g) where |g| > zero_thresh.
void sign_step(Tensor& p, const Tensor& g, double s_alpha, double zero_thresh) {
  const float a = float(s_alpha), t = float(zero_thresh);
  for (size_t i = 0; i < p.size(); ++i)
    if (std::fabs(g[i]) > t) p[i] += g[i] > 0 ? a : -a;
}

// p += s·α·g/‖g‖₂ per row (no step where g = 0).
void l2_step(Tensor& p, const Tensor& g, double s_alpha) {
  const size_t S = p.sample_size();
  for (int n = 0; n < p.batch(); ++n) {
    const float* gn = row(g, n);
    double norm = 0;
    for (size_t i = 0; i < S; ++i) norm += double(gn[i]) * gn[i];
    if (norm == 0) continue;
    const float k = float(s_alpha / std::sqrt(norm));
    float* pn = row(p, n);
    for (size_t i = 0; i < S; ++i) pn[i] += k * gn[i];
  }
}

// p ← p0 + the change clamped to [−r, r] (Captum's Linf _clip).
void project_linf(Tensor& p, const Tensor& p0, double r) {
  const float rf = float(r);
  for (size_t i = 0; i < p.size(); ++i) p[i] = p0[i] + std::clamp(p[i] - p0[i], -rf, rf);
}

// p ← p0 + the change rescaled to ‖·‖₂ ≤ r per row, as torch.renorm(d, 2, 0, r): rows longer than
// r are multiplied by r / (‖d‖ + 1e-7).
void project_l2(Tensor& p, const Tensor& p0, double r) {
  const size_t S = p.sample_size();
  for (int n = 0; n < p.batch(); ++n) {
    float* pn = row(p, n);
    const float* an = row(p0, n);
    double norm = 0;
    for (size_t i = 0; i < S; ++i) norm += double(pn[i] - an[i]) * (pn[i] - an[i]);
    norm = std::sqrt(norm);
    if (norm <= r) continue;
    const float k = float(r / (norm + 1e-7));
    for (size_t i = 0; i < S; ++i) pn[i] = an[i] + (pn[i] - an[i]) * k;
  }
}

// Captum's PGD._random_point: L∞ uniform in [−r, r] per element; L2 a direction uniform on the
// sphere (normalized Gaussian) times r·u^(1/d). Each row draws from its own stream.
void random_start(Tensor& p, const Tensor& p0, double r, bool l2, uint64_t seed) {
  const size_t S = p.sample_size();
  for (int n = 0; n < p.batch(); ++n) {
    Rng rng(values_seed(row(p0, n), S, seed));
    float* pn = row(p, n);
    if (!l2) {
      for (size_t i = 0; i < S; ++i) pn[i] += float((2.0 * rng.uniform() - 1.0) * r);
      continue;
    }
    double norm = 0;
    const size_t at = size_t(n) * S;
    for (size_t i = 0; i < S; ++i) {
      const float u = rng.normal();
      pn[i] = u;
      norm += double(u) * u;
    }
    const double radius = r * std::pow(double(rng.uniform()), 1.0 / double(S));
    const double k = radius / std::max(std::sqrt(norm), 1e-12);
    for (size_t i = 0; i < S; ++i) pn[i] = float(p0[at + i] + k * pn[i]);
  }
}

struct PgdOptions {
  double radius = 0.1, step_size = 0, zero_thresh = 1e-6;
  int steps = 40;
  bool l2 = false, l2_sign = false, random = false;
  bool project = true;  // FGSM: one step of exactly epsilon, nothing to project
  uint64_t seed = 0;
};

// PGD on inputs [b, e) of the job into job.adversarial.
void pgd_rows(Job& job, PixelModel& pm, int b, int e, const PgdOptions& o) {
  const Tensor p0 = job.start.slice(b, e);
  Tensor p = p0.clone();
  const double s_alpha = job.targeted() ? -o.step_size : o.step_size;
  if (o.random) {
    random_start(p, p0, o.radius, o.l2, o.seed);
    clamp_pixels(p, job.pixels);
  }
  for (int t = 0; t < o.steps; ++t) {
    const Tensor& g = pm.loss_gradient(p, job.loss_classes() + b);
    if (o.l2 && !o.l2_sign)
      l2_step(p, g, s_alpha);
    else
      sign_step(p, g, s_alpha, o.zero_thresh);
    if (o.project && o.l2)
      project_l2(p, p0, o.radius);
    else if (o.project)
      project_linf(p, p0, o.radius);
    clamp_pixels(p, job.pixels);
    job.progress(b, e, t + 1, o.steps);
  }
  job.adversarial.slice(b, e).copy_from(p);
}

void run_fgsm(Job& job, ParamReader& r) {
  PgdOptions o;
  o.radius = o.step_size = read_number(r, "epsilon", 0, 1e6);
  o.zero_thresh = read_number(r, "zero_thresh", 0, 1e6);
  o.steps = 1;
  o.project = false;
  PixelModel pm(job.model, job.pixels);
  job.adversarial = Tensor(job.start.shape());
  for_chunks(job.size(), kChunk, [&](int b, int e) { pgd_rows(job, pm, b, e, o); });
}

void run_pgd(Job& job, ParamReader& r) {
  PgdOptions o;
  o.radius = read_number(r, "radius", 0, 1e6);
  o.steps = read_int(r, "step_num", 1, 100000);
  const std::optional<double> step = r.maybe_number("step_size");
  if (step && (*step <= 0 || *step > 1e6)) throw std::out_of_range("pgd: --param step_size must be in (0, 1e6]");
  o.step_size = step ? *step : 2.5 * o.radius / o.steps;
  o.l2 = read_choice(r, "norm", {"Linf", "L2"}) == "L2";
  o.l2_sign = read_choice(r, "l2_step", {"normalized", "sign"}) == "sign";
  o.random = r.flag("random_start");
  o.seed = uint64_t(read_int(r, "seed", 0, 1 << 30));
  o.zero_thresh = read_number(r, "zero_thresh", 0, 1e6);
  PixelModel pm(job.model, job.pixels);
  job.adversarial = Tensor(job.start.shape());
  for_chunks(job.size(), kChunk, [&](int b, int e) { pgd_rows(job, pm, b, e, o); });
}

}  // namespace

void add_gradient_attacks(std::vector<Method>& reg) {
  const ParamInfo zero_thresh{"zero_thresh", "1e-6",
                              "pixels whose loss gradient is at most this in magnitude are not moved (Captum's FGSM.zero_thresh)"};
  reg.push_back({{"fgsm",
                  "fast gradient sign method: one step of size epsilon along the sign of the loss gradient",
                  {{"epsilon", "0.1", "step size = L-inf radius, in pixels (Captum's FGSM.perturb epsilon)", 0, 1e6}, zero_thresh},
                  "captum.robust.FGSM with the cross-entropy of the logits as loss_func (per-input losses); pixel "
                  "space: epsilon in pixels, clipped to the pixel range (lower_bound/upper_bound) through the model's "
                  "normalization; targeted steps down the target's loss (Goodfellow et al. 2015)"},
                 run_fgsm});
  reg.push_back({{"pgd",
                  "projected gradient descent: step_num steps of step_size, each projected onto the ball of radius "
                  "around the input and clipped to the pixel range",
                  {{"radius", "0.1", "radius of the ball, in pixels (Captum's PGD.perturb radius)", 0, 1e6},
                   {"step_size", "", "step size in pixels; default 2.5 * radius / step_num (Madry et al.)"},
                   {"step_num", "40", "number of steps (1..100000)"},
                   {"norm", "Linf", "Linf or L2 (the ball and, for L2, the step)"},
                   {"l2_step", "normalized", "L2 steps: normalized (g/|g|_2, Madry et al., torchattacks) or sign (Captum)"},
                   {"random_start", "false", "start at a uniform random point of the ball (Captum's random_start)"},
                   explain::seed_param("0", "random start seed; each input's start depends only on the seed and its values"),
                   zero_thresh},
                  "captum.robust.PGD (radius, step_size, step_num, norm, random_start; no early stop) with the "
                  "cross-entropy of the logits; difference: L2 steps are g/|g|_2 (Madry et al.; Captum uses sign "
                  "steps for L2 too: l2_step=sign); pixel space, clipped to the pixel range"},
                 run_pgd});
}

}  // namespace gb::attacks
