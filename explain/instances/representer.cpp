// Representer points (Yeh et al. 2018). The last layer Θ (its bias as the weight of a constant
// input 1) is refitted to minimize (1/n) Σ_i CE(Θ f̃_i, t_i) + λ‖Θ‖²; at the stationary point
// Θ* = Σ_i α_i f̃_iᵀ with α_i = −(p_i − t_i) / (2λn), so the refitted logit of class c at a test
// input is Σ_i α_ic f̃_iᵀ f̃_test: a sum of one representer value per training point. Positive:
// excitatory; negative: inhibitory. Newton's method on the exact Hessian reaches the stationary
// point to rounding, and the decomposition's residual is reported.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/argmax.h"
#include "explain/instances/method.h"
#include "explain/instances/softmax_regression.h"

namespace gb::explain::instances {

namespace {

std::vector<double> to_double(const Tensor& t) { return std::vector<double>(t.data(), t.data() + t.size()); }


Scores run_representer(Graph& g, const Examples& train, const Examples& tests, ParamReader& p, const Context& ctx) {
  const double lambda = p.number("lambda");
  if (!(lambda > 0)) throw std::invalid_argument("representer: --param lambda must be > 0");
  const std::string target_kind = p.text("targets");
  if (target_kind != "model" && target_kind != "labels")
    throw std::invalid_argument("representer: --param targets=" + target_kind + " (use model or labels)");
  const int iterations = p.integer("iterations");
  if (iterations < 1 || iterations > 1000) throw std::invalid_argument("representer: --param iterations outside [1, 1000]");
  const double tolerance = p.number("tolerance");
  if (!(tolerance > 0)) throw std::invalid_argument("representer: --param tolerance must be > 0");

  const int dense = last_dense(g, "representer");
  const Dense& layer = static_cast<const Dense&>(g.layer(dense));
  const int N = train.size(), M = tests.size(), K = g.classes(), D = layer.in_features;
  const LastLayerActivations tr = last_layer_activations(g, dense, train.x, ctx, "features of the training set");
  const LastLayerActivations te = last_layer_activations(g, dense, tests.x, ctx, "features of the test inputs");
  const SoftmaxRegression model(tr.features, K, layer.has_bias);

  // Targets: the model's own probabilities (Yeh's code) or the labels.
  std::vector<double> original, targets(size_t(N) * K, 0.0);
  SoftmaxRegression::softmax(to_double(tr.logits), K, original);
  if (target_kind == "model")
    targets = original;
  else
    for (int i = 0; i < N; ++i) targets[size_t(i) * K + train.y[i]] = 1.0;
  report(ctx, "Newton fit of the last layer", 0, 1);
  const SoftmaxFit fit = fit_softmax_regression(model, targets, nullptr, 2 * lambda, dense_theta(layer), iterations,
                                                tolerance);
  report(ctx, "Newton fit of the last layer", 1, 1);
  std::vector<double> z, fitted, alpha(size_t(N) * K);
  model.logits(fit.theta, z);
  SoftmaxRegression::softmax(z, K, fitted);
  for (size_t i = 0; i < alpha.size(); ++i) alpha[i] = -(fitted[i] - targets[i]) / (2 * lambda * N);

  // k(j, t) = f̃_jᵀ f̃_t, in double: the decomposition is checked to rounding.
  const std::vector<double> Ftr = to_double(tr.features), Fte = to_double(te.features);
  std::vector<double> kernel(size_t(M) * N);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, D, 1.0, Fte.data(), D, Ftr.data(), D, 0.0, kernel.data(), N);
  if (layer.has_bias)
    for (double& k : kernel) k += 1.0;

  Scores out;
  out.scores = Tensor(Shape{M, N});
  out.details.resize(M);
  std::vector<double> decomposed(K);
  for (int t = 0; t < M; ++t) {
    const int c = tests.y[t];
    const double* k = kernel.data() + size_t(t) * N;
    std::fill(decomposed.begin(), decomposed.end(), 0.0);
    for (int j = 0; j < N; ++j) {
      for (int q = 0; q < K; ++q) decomposed[q] += alpha[size_t(j) * K + q] * k[j];
      out.scores[size_t(t) * N + j] = float(alpha[size_t(j) * K + c] * k[j]);
    }
    double residual = 0, scale = 0;
    for (int q = 0; q < K; ++q) {
      double logit = layer.has_bias ? fit.theta[size_t(K) * D + q] : 0.0;
      for (int d = 0; d < D; ++d) logit += fit.theta[size_t(q) * D + d] * Fte[size_t(t) * D + d];
      residual = std::max(residual, std::fabs(logit - decomposed[q]));
      scale = std::max(scale, std::fabs(logit));
      if (q == c) out.details[t]["logit_refitted"] = logit;
    }
    out.details[t]["logit_representer_sum"] = decomposed[c];
    out.details[t]["logit_original"] = te.logits[size_t(t) * K + c];
    out.details[t]["residual"] = residual;  // max over classes of |Θ* f̃ − Σ α f̃ᵀ f̃|
    out.details[t]["relative_residual"] = scale > 0 ? residual / scale : residual;
  }
  int agree = 0;
  for (int i = 0; i < N; ++i) agree += argmax(fitted.data() + size_t(i) * K, K) == argmax(original.data() + size_t(i) * K, K);
  out.info["newton_iterations"] = fit.iterations;
  out.info["gradient_norm"] = fit.gradient_norm;
  out.info["objective"] = fit.objective;
  out.info["agreement_with_model"] = double(agree) / N;          // same predicted class on the training set
  out.info["pearson_with_model"] = pearson(original, fitted);    // Yeh's check, over every probability
  out.info["lambda"] = lambda;
  Tensor a(Shape{N, K});
  for (size_t i = 0; i < alpha.size(); ++i) a[i] = float(alpha[i]);
  out.extra["alpha"] = a;
  return out;
}

}  // namespace

void add_representer_method(std::vector<Method>& registry) {
  registry.push_back(
      {{"representer",
        "representer points: the refitted last layer's logit as a sum over training points",
        {{"lambda", "0.003", "L2 weight of the refit, lambda * ||W||^2 (Yeh's default)"},
         {"targets", "model", "model (the model's own softmax outputs, as Yeh's code) or labels (one-hot)"},
         {"iterations", "50", "Newton iterations at most (1..1000)"},
         {"tolerance", "1e-10", "stop when every component of the objective's gradient is below this"}},
        "Yeh et al. 2018 and their code: features with a constant 1 for the bias (penalized too), objective "
        "mean soft cross-entropy + lambda ||W||^2 started from the model's weights, alpha = -(p - t)/(2 lambda n), "
        "score = alpha_{z,c} f_z . f_test for the explained class c; positive = excitatory. Yeh's code stops "
        "gradient descent early (mean |grad| < 1/200 of its start); glassbox runs Newton's method to the "
        "stationary point, so the decomposition reproduces the refitted logits to rounding (residual reported)"},
       run_representer,
       {}});
}

}  // namespace gb::explain::instances
