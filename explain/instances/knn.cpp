// Nearest training examples in a layer's activation space: a simple, popular baseline (Captum's
// SimilarityInfluence with cosine_similarity or euclidean_distance).
#include <cmath>
#include <stdexcept>

#include "engine/blas.h"
#include "engine/passes.h"
#include "explain/instances/method.h"

namespace gb::explain::instances {

namespace {

// Each row's activations at `node`, flattened: [N, d].
Tensor flat_activations(Graph& g, const Tensor& x, int node, const Context& ctx, const std::string& stage) {
  Tensor a = activations(g, x, {node}, ctx.batch, [&](int done, int total) { report(ctx, stage, done, total); })[0];
  return a.reshaped(Shape{a.batch(), int(a.sample_size())});
}

std::vector<double> row_norms(const Tensor& a) {
  std::vector<double> n(a.batch());
  for (int i = 0; i < a.batch(); ++i) {
    const float* r = a.data() + size_t(i) * a.dim(1);
    double s = 0;
    for (int j = 0; j < a.dim(1); ++j) s += double(r[j]) * r[j];
    n[i] = std::sqrt(s);
  }
  return n;
}

double squared_distance(const float* a, const float* b, int d) {
  double s = 0;
  for (int j = 0; j < d; ++j) s += (double(a[j]) - b[j]) * (double(a[j]) - b[j]);
  return s;
}

Scores run_knn(Graph& g, const Examples& train, const Examples& tests, ParamReader& p, const Context& ctx) {
  const int node = activation_node(g, p.text("layer"), "knn");
  const std::string metric = p.text("metric");
  if (metric != "cosine" && metric != "l2")
    throw std::invalid_argument("knn: --param metric=" + metric + " (use cosine or l2)");
  const Tensor A = flat_activations(g, train.x, node, ctx, "activations of the training set");
  const Tensor B = flat_activations(g, tests.x, node, ctx, "activations of the test inputs");
  const int N = A.batch(), M = B.batch(), d = A.dim(1);
  Scores s;
  s.scores = Tensor(Shape{M, N});
  gemm(false, true, M, N, d, 1.f, B.data(), A.data(), 0.f, s.scores.data());  // dot products
  const std::vector<double> na = row_norms(A), nb = row_norms(B);
  for (int t = 0; t < M; ++t)
    for (int i = 0; i < N; ++i) {
      float& v = s.scores[size_t(t) * N + i];
      if (metric == "cosine")  // a zero vector is similar to nothing, as Captum's replace_nan = 0
        v = na[i] > 0 && nb[t] > 0 ? float(v / (na[i] * nb[t])) : 0.f;
      else  // directly, not from the dot product: near neighbours would cancel in float
        v = -float(std::sqrt(squared_distance(A.data() + size_t(i) * d, B.data() + size_t(t) * d, d)));
    }
  s.details.resize(M);
  s.info["dimensions"] = d;
  return s;
}

}  // namespace

void add_knn_method(std::vector<Method>& registry) {
  registry.push_back(
      {{"knn",
        "nearest training examples in a layer's activation space",
        {{"layer", "", "layer whose activations are compared: a layer name, input, or empty for the input of the last "
                       "dense layer (the features the classifier reads)"},
         {"metric", "cosine", "cosine (similarity) or l2 (score = minus the Euclidean distance)"}},
        "Captum SimilarityInfluence: cosine_similarity (zero vectors score 0) or euclidean_distance; glassbox "
        "scores l2 as -distance so that larger always means nearer"},
       run_knn,
       {}});
}

}  // namespace gb::explain::instances
