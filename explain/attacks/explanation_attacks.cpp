// Attacks on explanations. Ghorbani et al. (2019), "Interpretation of neural networks is fragile",
// as their code (InterpretationFragility, utils.py iterative_attack) runs them, in pixels: from the
// input p0 with predicted class y, `steps` times
//   p_{t+1} = clip(p0 + clamp(p_t + α·sign(∇_p D(I(p_t))) − p0, −ε, ε))
// and the answer is the iterate with the best criterion among those the model still assigns to y
// (an iterate that changes the label is never accepted; the walk itself goes on). I is the
// importance map (Σ_c |attribution|, scaled to sum H·W), D the attack's goal:
//   explanation-topk     D = −Σ_{i ∈ top-k(I(p0))} I_i        criterion: top-k intersection, lower is better
//   explanation-mass     D = ‖C(I) − C(I_surrogate(p0))‖²      criterion: center-of-mass shift, higher
//   explanation-region   D = Σ_i M_i I_i (a target region M)   criterion: the map's mass in M, higher
// ∇_p D comes from the softplus surrogate (surrogate.h), whose map stands for the attacked method;
// the criterion and the label are judged on the original model with the registered method itself.
// direction=random takes random sign steps instead (the paper's random-perturbation baseline).
//
// adv2: Zhang et al. (2020), "Interpretable deep learning under fire": PGD (L∞, sign steps) on
//   ℓ_prd(p) + λ·‖I_surrogate(p) − I_surrogate(p0)‖² / (H·W)
// with ℓ_prd the target's cross-entropy (targeted) or minus the label's (untargeted) and the map
// distance the mean over the H·W pixels of the squared difference: an adversarial
// example whose explanation stays close to the benign one. Each map explains the model's
// prediction at its input (the benign map the original class, an adversarial input's map its new
// class), as Zhang et al.'s interpreter does. The answer is the successful iterate whose map
// (registered method, original model) is closest to the benign map in L2; the last iterate when
// none succeeded.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "engine/rng.h"
#include "explain/attacks/method.h"
#include "explain/attacks/metrics.h"
#include "explain/attacks/surrogate.h"
#include "explain/attribution/explain.h"

namespace gb::attacks {

namespace {

enum class Goal { topk, mass, region };

struct Options {
  std::string explanation;
  double epsilon = 8.0 / 255, step = 0, beta = 10, lambda = 1;
  int steps = 100, k = 0, ig_steps = 16;
  SmoothMap map = SmoothMap::gradient;
  bool random = false;
  uint64_t seed = 0;
  std::vector<float> region;  // H·W weights (explanation-region)
};

struct Metrics {
  double intersection, spearman, shift, region;
};

Metrics compare(const float* benign, const float* now, int H, int W, int k, const std::vector<float>& region) {
  const int P = H * W;
  const auto c0 = center_of_mass(benign, H, W), c1 = center_of_mass(now, H, W);
  double in = 0;
  for (size_t i = 0; i < region.size(); ++i) in += region[i] * now[i];
  return {topk_intersection(benign, now, P, k), spearman(benign, now, P), std::hypot(c1[0] - c0[0], c1[1] - c0[1]),
          region.empty() ? 0.0 : in / P};
}

// ∂D/∂I for each row's surrogate map I (rows of [R,1,H,W]).
void goal_gradient(Goal goal, const Tensor& I, const std::vector<std::vector<int>>& top, const std::vector<std::array<double, 2>>& c0,
                   const std::vector<float>& region, Tensor& dI) {
  const int R = I.dim(0), H = I.dim(2), W = I.dim(3), P = H * W;
  dI.resize(I.shape());
  dI.fill(0.f);
  for (int r = 0; r < R; ++r) {
    float* d = dI.data() + size_t(r) * P;
    if (goal == Goal::topk) {
      for (int i : top[r]) d[i] = -1.f;
    } else if (goal == Goal::region) {
      std::copy(region.begin(), region.end(), d);
    } else {  // ‖C − C0‖² with C = Σ I·(i, j) / (H·W) (I sums to H·W)
      const auto c = center_of_mass(I.data() + size_t(r) * P, H, W);
      const double gy = 2 * (c[0] - c0[r][0]) / P, gx = 2 * (c[1] - c0[r][1]) / P;
      for (int i = 0; i < H; ++i)
        for (int j = 0; j < W; ++j) d[i * W + j] = float(gy * i + gx * j);
    }
  }
}

// Everything one attack on explanations needs beside the job: the surrogate and both explainers.
struct Setup {
  Graph surrogate;
  SmoothExplainer smooth;
  MethodMaps judge;
  Setup(Job& job, const Options& o)
      : surrogate(softplus_surrogate(job.model, o.beta)),
        smooth(surrogate, o.map, o.ig_steps, MethodMaps::black(job.model, job.pixels)),
        judge(job.model, job.pixels, o.explanation) {}
  // The surrogate's importance map of pixel images p (its attribution into m).
  Tensor surrogate_map(const Tensor& p, const std::vector<int>& classes, const PixelSpace& s, Tensor& x, Tensor& m) {
    s.to_input(p, x);
    m = smooth.attribution(x, classes).clone();
    return importance(m);
  }
  // ∇_p ⟨dm, m(p)⟩ through the surrogate, in pixels.
  Tensor pixel_vjp(const Tensor& x, const std::vector<int>& classes, const Tensor& dm, const PixelSpace& s) {
    Tensor g = smooth.vjp(x, classes, dm).clone();
    s.gradient_to_pixels(g);
    return g;
  }
};

// One signed step of size α from p, projected onto the L∞ ball around p0 and the pixel range.
void signed_step(Tensor& p, const Tensor& p0, const Tensor& d, double alpha, double eps, const PixelSpace& s) {
  const float a = float(alpha), e = float(eps);
  for (size_t i = 0; i < p.size(); ++i) {
    const float step = d[i] > 0 ? a : d[i] < 0 ? -a : 0.f;
    p[i] = std::clamp(p0[i] + std::clamp(p[i] + step - p0[i], -e, e), s.lo, s.hi);
  }
}

std::vector<int> rows_of(const std::vector<int>& v, int b, int e) { return {v.begin() + b, v.begin() + e}; }

void ghorbani_rows(Job& job, Setup& su, Goal goal, const Options& o, int b, int e) {
  const int R = e - b, H = job.start.dim(2), W = job.start.dim(3), P = H * W;
  const std::vector<int> classes = rows_of(job.predicted, b, e);
  const Tensor p0 = job.start.slice(b, e);
  const Tensor benign = su.judge.maps(p0, classes);
  Tensor x, m, dI, dm, direction(p0.shape());
  const Tensor I0 = su.surrogate_map(p0, classes, job.pixels, x, m);
  std::vector<std::vector<int>> top(R);
  std::vector<std::array<double, 2>> c0(R);
  for (int r = 0; r < R; ++r) {
    top[r] = top_k(benign.data() + size_t(r) * P, P, o.k);  // the reference takes top-k of the original map
    // The goal's reference center, truncated to integers as the reference's astype(int): at the
    // untruncated center the goal's gradient is zero and the walk could not start.
    c0[r] = center_of_mass(I0.data() + size_t(r) * P, H, W);
    c0[r] = {std::floor(c0[r][0]), std::floor(c0[r][1])};
  }
  Tensor p = p0.clone(), best = p0.clone(), best_map = benign.clone();
  std::vector<double> best_crit(R), accepted(R, 0);
  auto criterion = [&](const Metrics& m) {
    return goal == Goal::topk ? -m.intersection : goal == Goal::mass ? m.shift : m.region;
  };
  for (int r = 0; r < R; ++r) {
    const float* bm = benign.data() + size_t(r) * P;
    best_crit[r] = criterion(compare(bm, bm, H, W, o.k, o.region));
  }
  std::vector<Rng> rngs;
  for (int r = 0; r < R; ++r) rngs.emplace_back(values_seed(row(p0, r), p0.sample_size(), o.seed));
  PixelModel pm(job.model, job.pixels);
  for (int t = 0; t < o.steps; ++t) {
    if (o.random) {
      for (int r = 0; r < R; ++r)
        for (size_t i = 0; i < p.sample_size(); ++i) row(direction, r)[i] = rngs[r].uniform() - 0.5f;
    } else {
      const Tensor I = su.surrogate_map(p, classes, job.pixels, x, m);
      goal_gradient(goal, I, top, c0, o.region, dI);
      importance_backward(m, I, dI, dm);
      direction = su.pixel_vjp(x, classes, dm, job.pixels);
    }
    signed_step(p, p0, direction, o.step, o.epsilon, job.pixels);
    const Tensor& z = pm.logits(p);
    std::vector<char> kept(R);
    for (int r = 0; r < R; ++r) kept[r] = argmax(row(z, r), z.dim(1)) == classes[r];
    const Tensor now = su.judge.maps(p, classes);
    for (int r = 0; r < R; ++r) {
      if (!kept[r]) continue;  // a changed label is never accepted
      const double c = criterion(compare(benign.data() + size_t(r) * P, now.data() + size_t(r) * P, H, W, o.k, o.region));
      if (c <= best_crit[r]) continue;
      best_crit[r] = c;
      ++accepted[r];
      std::copy_n(row(p, r), p.sample_size(), row(best, r));
      std::copy_n(now.data() + size_t(r) * P, P, best_map.data() + size_t(r) * P);
    }
    job.progress(b, e, t + 1, o.steps);
  }
  job.adversarial.slice(b, e).copy_from(best);
  job.maps["benign"].slice(b, e).copy_from(benign);
  job.maps["attacked"].slice(b, e).copy_from(best_map);
  for (int r = 0; r < R; ++r) {
    const Metrics mt = compare(benign.data() + size_t(r) * P, best_map.data() + size_t(r) * P, H, W, o.k, o.region);
    job.values["topk_intersection"][b + r] = mt.intersection;
    job.values["spearman"][b + r] = mt.spearman;
    job.values["center_shift"][b + r] = mt.shift;
    if (goal == Goal::region) job.values["region_mass"][b + r] = mt.region;
    job.values["accepted_steps"][b + r] = accepted[r];
    job.success[b + r] = accepted[r] > 0;
  }
}

// ---- parameters --------------------------------------------------------------------------------

void require_images(const Job& job, const std::string& method) {
  if (job.model.input_shape().rank != 3)
    throw std::invalid_argument(method + " attacks image explanations; this model takes " + job.model.input_shape().str());
}

Options read_common(Job& job, ParamReader& r) {
  require_images(job, r.method());
  Options o;
  o.explanation = r.text("explanation");
  explain::method_info(o.explanation);  // unknown methods fail here, listing the known ones
  o.epsilon = read_number(r, "epsilon", 0, 1e6);
  o.steps = read_int(r, "steps", 1, 100000);
  const std::optional<double> step = r.maybe_number("step_size");
  if (step && (*step <= 0 || *step > 1e6)) throw std::out_of_range(r.method() + ": --param step_size must be in (0, 1e6]");
  o.step = step ? *step : o.epsilon / 16;
  o.beta = read_number(r, "beta", 1e-3, 1e3);
  const std::string map = r.text("surrogate_map");
  o.map = map == "auto" ? smooth_map_for(o.explanation) : smooth_map(map);
  o.ig_steps = read_int(r, "ig_steps", 1, 1000);
  return o;
}

std::vector<ParamInfo> common_params(const std::string& steps) {
  return {{"explanation", "saliency", "the attacked attribution method (any of glassbox explain --list), run with its defaults"},
          {"epsilon", "0.031", "L-inf radius in pixels (Ghorbani et al.: 8/255)", 0, 1e6},
          {"steps", steps, "iterations (1..100000)"},
          {"step_size", "", "step in pixels; default epsilon / 16 (the reference: 0.5 of 255 for epsilon 8)"},
          {"beta", "10", "softplus beta of the surrogate's activations (the reference uses Keras' softplus, beta 1)"},
          {"surrogate_map", "auto", "the surrogate map whose gradient steers: gradient, input-x-gradient, "
                                    "integrated-gradients, or auto (by explanation; see METHODS.md)"},
          {"ig_steps", "16", "Gauss-Legendre steps of the surrogate's integrated gradients (1..1000)"}};
}

void run_ghorbani(Job& job, ParamReader& r, Goal goal) {
  Options o = read_common(job, r);
  const int H = job.start.dim(2), W = job.start.dim(3);
  const std::optional<double> k = r.maybe_number("k");
  o.k = k ? int(*k) : std::max(1, H * W / 20);
  if (k && (*k != std::floor(*k) || *k < 1 || *k > H * W))
    throw std::out_of_range(r.method() + ": --param k must be a whole number in [1, " + std::to_string(H * W) + "]");
  o.random = read_choice(r, "direction", {"surrogate", "random"}) == "random";
  o.seed = uint64_t(read_int(r, "seed", 0, 1 << 30));
  if (goal == Goal::region) {
    const std::string spec = r.text("region");
    int y0 = 0, x0 = 0, y1 = 0, x1 = 0, used = 0;  // `used`: trailing text ("1,1,4,4,junk") is refused
    if (std::sscanf(spec.c_str(), "%d,%d,%d,%d%n", &y0, &x0, &y1, &x1, &used) != 4 || used != int(spec.size()) || y0 < 0 || x0 < 0 || y1 > H || x1 > W ||
        y0 >= y1 || x0 >= x1)
      throw std::invalid_argument("explanation-region: --param region=" + spec + ": expected Y0,X0,Y1,X1 with 0 <= Y0 < Y1 <= " +
                                  std::to_string(H) + " and 0 <= X0 < X1 <= " + std::to_string(W));
    o.region.assign(size_t(H) * W, 0.f);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) o.region[size_t(y) * W + x] = 1.f;
  }
  if (job.targeted()) throw std::invalid_argument(r.method() + " keeps each input's class; give no target");
  Setup su(job, o);
  const int N = job.size();
  job.adversarial = Tensor(job.start.shape());
  job.maps["benign"] = Tensor(Shape{N, 1, H, W});
  job.maps["attacked"] = Tensor(Shape{N, 1, H, W});
  for (const char* key : {"topk_intersection", "spearman", "center_shift", "accepted_steps"}) job.values[key].assign(N, 0);
  if (goal == Goal::region) job.values["region_mass"].assign(N, 0);
  job.success.assign(N, 0);
  // Chunks of 64: the surrogate's Hessian pass doubles the rows (IG: times its steps).
  for_chunks(N, 64, [&](int b, int e) { ghorbani_rows(job, su, goal, o, b, e); });
}

// ---- ADV² --------------------------------------------------------------------------------------

// Every map explains the model's prediction at its input, as a user would see it: the benign map
// the original class, an iterate's map the class the model gives that iterate (for a successful
// targeted iterate, the target).
void adv2_rows(Job& job, Setup& su, const Options& o, int b, int e) {
  const int R = e - b, H = job.start.dim(2), W = job.start.dim(3), P = H * W;
  const std::vector<int> goal(job.loss_classes() + b, job.loss_classes() + e);
  std::vector<int> shown = rows_of(job.predicted, b, e);  // the class each iterate's map explains
  const Tensor p0 = job.start.slice(b, e);
  const Tensor benign = su.judge.maps(p0, shown);
  Tensor x, m, dI, dm;
  const Tensor I0 = su.surrogate_map(p0, shown, job.pixels, x, m);
  Tensor p = p0.clone(), best = p0.clone(), best_map = benign.clone(), total(p0.shape());
  std::vector<int> best_class = shown;
  std::vector<double> best_dist(R, INFINITY);
  std::vector<char> found(R, 0);
  PixelModel pm(job.model, job.pixels);
  const float sp = job.targeted() ? 1.f : -1.f;  // minimize the target's loss, or maximize the label's
  for (int t = 0; t < o.steps; ++t) {
    const Tensor& gp = pm.loss_gradient(p, goal.data());
    for (size_t i = 0; i < total.size(); ++i) total[i] = sp * gp[i];
    // The map term: the surrogate's map of the iterate's class against the benign map.
    const Tensor I = su.surrogate_map(p, shown, job.pixels, x, m);
    dI.resize(I.shape());
    for (size_t i = 0; i < I.size(); ++i) dI[i] = float(2 * o.lambda * (I[i] - I0[i]) / P);
    importance_backward(m, I, dI, dm);
    const Tensor gi = su.pixel_vjp(x, shown, dm, job.pixels);
    for (size_t i = 0; i < total.size(); ++i) total[i] = -(total[i] + gi[i]);  // descend
    signed_step(p, p0, total, o.step, o.epsilon, job.pixels);
    const Tensor& z = pm.logits(p);
    std::vector<char> fooled(R);
    for (int r = 0; r < R; ++r) {
      shown[r] = argmax(row(z, r), z.dim(1));
      fooled[r] = job.targeted() ? shown[r] == job.target[b + r] : shown[r] != job.label[b + r];
    }
    const Tensor now = su.judge.maps(p, shown);
    for (int r = 0; r < R; ++r) {
      if (!fooled[r]) continue;
      double d = 0;
      for (int i = 0; i < P; ++i) d += std::pow(double(now[size_t(r) * P + i]) - benign[size_t(r) * P + i], 2);
      if (d >= best_dist[r]) continue;
      best_dist[r] = d, found[r] = 1, best_class[r] = shown[r];
      std::copy_n(row(p, r), p.sample_size(), row(best, r));
      std::copy_n(now.data() + size_t(r) * P, P, best_map.data() + size_t(r) * P);
    }
    job.progress(b, e, t + 1, o.steps);
  }
  // Inputs never fooled: the last iterate (a failure either way), its map of its class.
  for (int r = 0; r < R; ++r)
    if (!found[r]) std::copy_n(row(p, r), p.sample_size(), row(best, r)), best_class[r] = shown[r];
  const Tensor last = su.judge.maps(best, best_class);
  job.adversarial.slice(b, e).copy_from(best);
  job.maps["benign"].slice(b, e).copy_from(benign);
  job.maps["attacked"].slice(b, e).copy_from(last);
  for (int r = 0; r < R; ++r) {
    const Metrics mt = compare(benign.data() + size_t(r) * P, last.data() + size_t(r) * P, H, W, o.k, {});
    job.values["topk_intersection"][b + r] = mt.intersection;
    job.values["spearman"][b + r] = mt.spearman;
    job.values["center_shift"][b + r] = mt.shift;
  }
}

void run_adv2(Job& job, ParamReader& r) {
  Options o = read_common(job, r);
  o.lambda = read_number(r, "lambda", 0, 1e6);
  const int H = job.start.dim(2), W = job.start.dim(3), N = job.size();
  o.k = std::max(1, H * W / 20);
  Setup su(job, o);
  job.adversarial = Tensor(job.start.shape());
  job.maps["benign"] = Tensor(Shape{N, 1, H, W});
  job.maps["attacked"] = Tensor(Shape{N, 1, H, W});
  for (const char* key : {"topk_intersection", "spearman", "center_shift"}) job.values[key].assign(N, 0);
  for_chunks(N, 64, [&](int b, int e) { adv2_rows(job, su, o, b, e); });
}

}  // namespace

void add_explanation_attacks(std::vector<Method>& reg) {
  const std::string ghorbani =
      "Ghorbani et al. 2019 (InterpretationFragility utils.py iterative_attack: sign steps of step_size within the "
      "L-inf ball, the best iterate that keeps the label, maps = sum_c |attribution| scaled to sum H*W, top-k of the "
      "original map, softplus surrogate for the steering gradient); differences: the surrogate's beta is 10 (1 in "
      "the reference), 100 steps (300); the mass attack's goal center is truncated to integers as the "
      "reference's, the reported shift is between untruncated centers of the original model's maps; criterion and "
      "label always on the original model with the named method";
  auto ghorbani_params = [](std::vector<ParamInfo> extra) {
    std::vector<ParamInfo> p = common_params("100");
    p.push_back({"k", "", "top-k size (pixels); default H*W/20 (the reference: 1000 of 227x227)"});
    p.push_back({"direction", "surrogate", "surrogate (the attack) or random (random sign steps: the paper's baseline)"});
    p.push_back(explain::seed_param("0", "seed of direction=random"));
    p.insert(p.end(), extra.begin(), extra.end());
    return p;
  };
  reg.push_back({{"explanation-topk",
                  "change the explanation, not the label: move importance out of the benign map's top-k pixels",
                  ghorbani_params({}), "top-k attack of " + ghorbani},
                 [](Job& j, ParamReader& r) { run_ghorbani(j, r, Goal::topk); }});
  reg.push_back({{"explanation-mass",
                  "change the explanation, not the label: move the map's center of mass",
                  ghorbani_params({}), "mass-center attack of " + ghorbani},
                 [](Job& j, ParamReader& r) { run_ghorbani(j, r, Goal::mass); }});
  reg.push_back({{"explanation-region",
                  "change the explanation, not the label: move importance into a target region",
                  ghorbani_params({{"region", "0,0,8,8", "the target region Y0,X0,Y1,X1 (pixels, half-open)"}}),
                  "targeted (target_map) attack of " + ghorbani},
                 [](Job& j, ParamReader& r) { run_ghorbani(j, r, Goal::region); }});
  std::vector<ParamInfo> adv2 = common_params("100");
  adv2.push_back({"lambda", "1", "weight of the map term ||I(x) - I(x0)||^2 / (H*W) (importance maps of mean 1)"});
  reg.push_back({{"adv2",
                  "an adversarial example whose explanation stays close to the benign one: PGD on the prediction "
                  "loss plus lambda times the map's squared distance",
                  adv2,
                  "ADV^2, Zhang et al. 2020 (PGD, L-inf, on l_prd + lambda l_int with l_int the squared L2 distance of "
                  "the maps, here divided by H*W); differences: the map term's gradient comes from the softplus surrogate (Zhang et al. "
                  "smooth ReLU's gradient with (z + sqrt(z^2 + tau))'), no PGD warm start, and the answer is the "
                  "successful iterate whose real map is closest to the benign one"},
                 run_adv2});
}

}  // namespace gb::attacks
