#include "explain/surrogates/distill.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/argmax.h"
#include "engine/interpretable_layers.h"

namespace gb::explain::surrogates {

void check(const DistillSettings& s) {
  if (!(s.temperature > 0) || !std::isfinite(s.temperature) || s.temperature > 1000)
    throw std::invalid_argument("--temperature must be a number in (0, 1000], got " + std::to_string(s.temperature));
  if (!(s.alpha >= 0 && s.alpha <= 1))
    throw std::invalid_argument("--alpha must be in [0, 1], got " + std::to_string(s.alpha));
  if (!(s.penalty >= 0) || !std::isfinite(s.penalty))
    throw std::invalid_argument("--penalty must be a finite number >= 0, got " + std::to_string(s.penalty));
}

LossResult DistillationLoss::operator()(const Tensor& student, const Tensor& teacher, const std::vector<int>& labels,
                                        Tensor& grad) {
  LossResult hard = softmax_cross_entropy(student, labels, &grad);
  if (s_.alpha == 0) return hard;
  const LossResult soft = distillation_kl(student, teacher, s_.temperature, &soft_grad_);
  const float a = float(s_.alpha);
  for (size_t i = 0; i < grad.size(); ++i) grad[i] = a * soft_grad_[i] + (1 - a) * grad[i];
  LossResult r;
  r.correct = hard.correct;
  r.loss = s_.alpha * soft.loss + (1 - s_.alpha) * hard.loss;
  r.per_sample.resize(hard.per_sample.size());
  for (size_t n = 0; n < r.per_sample.size(); ++n)
    r.per_sample[n] = s_.alpha * soft.per_sample[n] + (1 - s_.alpha) * hard.per_sample[n];
  return r;
}

double add_tree_penalties(Graph& g, double lambda) {
  if (lambda == 0) return 0;
  double total = 0;
  for (int i = 0; i < g.size(); ++i) {
    auto* tree = dynamic_cast<SoftTree*>(&g.layer(i));
    if (!tree) continue;
    const int from = g.node(i).inputs[0];
    const Tensor& x = g.activation(from);
    bool below = false;  // trainable layers before the tree take the penalty's gradient too
    for (int j = 0; j < from + 1 && !below; ++j)
      for (Param* p : g.layer(j).params()) below |= p->trainable;
    Tensor gx;
    total += tree->penalty(x, lambda, &tree->weight.grad, &tree->bias.grad, below ? &gx : nullptr);
    if (below) {
      BackwardOptions bo;
      bo.param_grads = true;
      bo.input_grad = false;
      bo.seed_at = from;
      g.backward(gx, bo);
    }
  }
  return total;
}

std::vector<int> predictions(const Tensor& logits) {
  const int N = logits.batch(), K = logits.dim(1);
  std::vector<int> out(N);
  for (int n = 0; n < N; ++n) {
    const float* z = logits.data() + size_t(n) * K;
    out[n] = argmax(z, K);
  }
  return out;
}

std::vector<int> predict(Graph& g, const Tensor& x, int batch) {
  std::vector<int> out;
  out.reserve(x.batch());
  for (int b = 0; b < x.batch(); b += batch) {
    const std::vector<int> p = predictions(g.forward(x.slice(b, std::min(x.batch(), b + batch))));
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

Agreement agreement(Graph& student, Graph& teacher, const Tensor& x, const std::vector<int>& y, int batch) {
  if (int(y.size()) != x.batch())
    throw std::invalid_argument(std::to_string(y.size()) + " labels for " + std::to_string(x.batch()) + " inputs");
  const std::vector<int> s = predict(student, x, batch), t = predict(teacher, x, batch);
  Agreement a;
  a.n = x.batch();
  int sc = 0, tc = 0, same = 0;
  for (int n = 0; n < a.n; ++n) sc += s[n] == y[n], tc += t[n] == y[n], same += s[n] == t[n];
  a.student_accuracy = a.n ? double(sc) / a.n : NAN;
  a.teacher_accuracy = a.n ? double(tc) / a.n : NAN;
  a.fidelity = a.n ? double(same) / a.n : NAN;
  return a;
}

}  // namespace gb::explain::surrogates
