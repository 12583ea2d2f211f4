// Detection with explanations: is an input adversarial? A score per input, larger for inputs that
// look attacked, and its ROC-AUC on clean inputs against the successful adversarial inputs of a
// registered attack (run here on the same inputs). Two scores, both from importance maps
// I = Σ_c |attribution| of the input's predicted class by a registered explanation method:
//
//   class-map (default)  score(p) = 1 − cos(I(p), M_{ŷ(p)}),  M_k the mean map of the clean
//                        reference inputs (Request::data) that the model assigns to class k
//                        (and that carry label k, when labels are given): the disagreement between
//                        an input's explanation and its class's typical explanation. An adversarial
//                        input keeps the evidence of its true class, so its map rarely looks like
//                        the maps of the class it is pushed into.
//   noise                score(p) = 1 − (1/S) Σ_s ρ(I(p), I(clip(p + σ·ε_s))), ε_s ~ N(0, 1), ρ
//                        Spearman: the instability of the explanation under small noise
//                        (attribution consistency; no reference set).
//
// In the spirit of Tao et al. 2018 (attribute steering) and Fidel et al. 2020 (explanation-based
// detectors); no training. They are baselines, not defences: the ROC-AUC is the honest summary
// (0.5: chance; below 0.5: the score runs the other way for this attack and model).
#include <algorithm>
#include <cmath>

#include "engine/rng.h"
#include "explain/attacks/method.h"
#include "explain/attacks/metrics.h"
#include "explain/attacks/surrogate.h"

namespace gb::attacks {

namespace {

struct DetectOptions {
  std::string attack, explanation, score;
  double epsilon = 0.1, stdev = 0.1;
  int samples = 8;
  uint64_t seed = 0;
};

// score() of each row of p for its class.
std::vector<double> instability(MethodMaps& maps, const Tensor& p, const std::vector<int>& classes,
                                const DetectOptions& o, const PixelSpace& s) {
  const int N = p.batch(), P = p.dim(2) * p.dim(3);
  const size_t D = p.sample_size();
  std::vector<double> score(N, 0.0);
  const Tensor I = maps.maps(p, classes);
  std::vector<Rng> rng;
  for (int n = 0; n < N; ++n) rng.emplace_back(values_seed(row(p, n), D, o.seed));
  Tensor noisy(p.shape());
  for (int k = 0; k < o.samples; ++k) {
    for (int n = 0; n < N; ++n)
      for (size_t i = 0; i < D; ++i) row(noisy, n)[i] = row(p, n)[i] + float(o.stdev) * rng[n].normal();
    clamp_pixels(noisy, s);
    const Tensor In = maps.maps(noisy, classes);
    for (int n = 0; n < N; ++n) score[n] += spearman(I.data() + size_t(n) * P, In.data() + size_t(n) * P, P);
  }
  for (double& v : score) v = 1.0 - v / o.samples;
  return score;
}

// The mean importance map of each class over the clean reference inputs the model assigns to it
// (and that carry that label, when labels are given); a class without any gets the mean of all.
std::vector<std::vector<double>> class_maps(MethodMaps& maps, Job& job) {
  const Request& q = job.request;
  Tensor ref;
  job.pixels.to_pixels(q.data, ref);
  clamp_pixels(ref, job.pixels);
  PixelModel pm(job.model, job.pixels);
  const std::vector<int> pred = pm.predict(ref);
  const int K = job.model.classes(), P = ref.dim(2) * ref.dim(3);
  std::vector<std::vector<double>> mean(K + 1, std::vector<double>(P, 0.0));
  std::vector<int> count(K + 1, 0);
  for_chunks(ref.batch(), 64, [&](int b, int e) {
    const Tensor I = maps.maps(ref.slice(b, e), {pred.begin() + b, pred.begin() + e});
    for (int n = b; n < e; ++n) {
      if (!q.data_labels.empty() && q.data_labels[n] >= 0 && q.data_labels[n] != pred[n]) continue;
      for (int k : {pred[n], K}) {
        ++count[k];
        for (int i = 0; i < P; ++i) mean[k][i] += I[size_t(n - b) * P + i];
      }
    }
  });
  if (count[K] == 0) throw std::invalid_argument("detect-explanation: no reference input is classified as labelled");
  for (int k = 0; k <= K; ++k)
    for (double& v : mean[k]) v /= std::max(count[k], 1);
  for (int k = 0; k < K; ++k)
    if (count[k] == 0) mean[k] = mean[K];
  mean.pop_back();
  return mean;
}

std::vector<double> disagreement(MethodMaps& maps, const Tensor& p, const std::vector<int>& classes,
                                 const std::vector<std::vector<double>>& typical) {
  const int N = p.batch(), P = p.dim(2) * p.dim(3);
  const Tensor I = maps.maps(p, classes);
  std::vector<double> score(N);
  for (int n = 0; n < N; ++n) {
    const std::vector<double>& m = typical[classes[n]];
    double dot = 0, a = 0, b = 0;
    for (int i = 0; i < P; ++i) {
      const double v = I[size_t(n) * P + i];
      dot += v * m[i], a += v * v, b += m[i] * m[i];
    }
    score[n] = a > 0 && b > 0 ? 1.0 - dot / std::sqrt(a * b) : 1.0;
  }
  return score;
}

void run_detect(Job& job, ParamReader& r) {
  if (job.model.input_shape().rank != 3)
    throw std::invalid_argument("detect-explanation explains images; this model takes " + job.model.input_shape().str());
  DetectOptions o;
  o.attack = read_choice(r, "attack", {"fgsm", "pgd", "cw", "deepfool", "jsma"});
  o.epsilon = read_number(r, "epsilon", 0, 1e6);
  o.explanation = r.text("explanation");
  o.score = read_choice(r, "score", {"class-map", "noise"});
  o.samples = read_int(r, "samples", 1, 256);
  o.stdev = read_number(r, "stdev", 0, 1e3);
  o.seed = uint64_t(read_int(r, "seed", 0, 1 << 30));
  MethodMaps maps(job.model, job.pixels, o.explanation);  // an unknown method fails before the attack runs
  std::vector<std::vector<double>> typical;
  if (o.score == "class-map") {
    if (job.request.data.empty())
      throw std::invalid_argument("detect-explanation: score=class-map needs clean reference inputs (--ref-data), or "
                                  "use score=noise");
    typical = class_maps(maps, job);
  }

  // The attack, with its defaults and this epsilon (attacks without one ignore it).
  Params ap;
  const std::string key = epsilon_key(o.attack);
  if (!key.empty()) ap[key] = explain::exact_text(o.epsilon);
  Request q = job.request;
  q.progress = nullptr;
  const Result adv = attack(job.model, q, o.attack, ap);
  job.pixels.to_pixels(adv.adversarial, job.adversarial);
  clamp_pixels(job.adversarial, job.pixels);  // float rounding of the round trip through the normalization
  job.success = adv.success;

  const int N = job.size();
  std::vector<double> clean(N), attacked(N);
  for_chunks(N, 64, [&](int b, int e) {
    const std::vector<int> c0(job.predicted.begin() + b, job.predicted.begin() + e), c1(adv.after.begin() + b, adv.after.begin() + e);
    const bool noise = o.score == "noise";
    const Tensor p0 = job.start.slice(b, e), p1 = job.adversarial.slice(b, e);
    const std::vector<double> s0 = noise ? instability(maps, p0, c0, o, job.pixels) : disagreement(maps, p0, c0, typical);
    const std::vector<double> s1 = noise ? instability(maps, p1, c1, o, job.pixels) : disagreement(maps, p1, c1, typical);
    std::copy(s0.begin(), s0.end(), clean.begin() + b);
    std::copy(s1.begin(), s1.end(), attacked.begin() + b);
    job.progress(b, e, 1, 1);
  });
  std::vector<double> positives;
  for (int n = 0; n < N; ++n)
    if (adv.success[n]) positives.push_back(attacked[n]);
  job.values["score_clean"] = clean;
  job.values["score_adversarial"] = attacked;
  job.totals["attack_success_rate"] = success_rate(adv);
  job.totals["roc_auc"] = positives.empty() ? NAN : roc_auc(clean, positives);
  if (positives.empty())
    job.notes["roc_auc"] = "undefined: no attack succeeded, so there are no adversarial inputs to rank against the clean ones";
}

}  // namespace

void add_detection(std::vector<Method>& reg) {
  reg.push_back(
      {{"detect-explanation",
        "detect adversarial inputs by their explanation (unlike their class's typical one, or unstable under "
        "noise); ROC-AUC on clean inputs vs. "
        "the successful adversarial inputs of an attack",
        {{"attack", "pgd", "the attack that makes the adversarial inputs: fgsm, pgd, cw, deepfool or jsma (its defaults)"},
         {"epsilon", "0.1", "that attack's epsilon (fgsm) or radius (pgd), pixels; ignored by the others", 0, 1e6},
         {"explanation", "saliency", "the attribution method whose maps are compared (glassbox explain --list)"},
         {"score", "class-map", "class-map (1 - cosine to the class's mean map over clean reference inputs) or noise "
                                "(1 - mean Spearman correlation with the maps of noisy copies)"},
         {"samples", "8", "score=noise: noise draws per input (1..256)"},
         {"stdev", "0.1", "score=noise: noise standard deviation, pixels"},
         explain::seed_param("0", "noise seed (each input draws from its own stream)")},
        "importance maps (sum_c |attribution|) of the predicted class; class-map: 1 - cosine to the mean map of "
        "the clean reference inputs of that class (the disagreement with the class's typical explanation); noise: "
        "1 - mean Spearman correlation with the maps of noisy copies (attribution consistency); in the spirit of "
        "Tao et al. 2018 and Fidel et al. 2020, no training; ROC-AUC = Mann-Whitney statistic with ties 1/2, "
        "positives: only the successful adversarial inputs; the adversarial inputs, success and norms reported "
        "are the attack's"},
       run_detect});
}

}  // namespace gb::attacks
