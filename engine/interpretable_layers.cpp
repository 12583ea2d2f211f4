// The soft decision tree layer (routing by sigmoid turns, the path-weighted mixture of the leaves'
// distributions, its exact gradient, the balancing penalty) and the additive model's grouped
// dense and group-sum layers.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/blas.h"
#include "engine/interpretable_layers.h"

namespace gb {

namespace {

double sigmoid(double v) { return v >= 0 ? 1 / (1 + std::exp(-v)) : std::exp(v) / (1 + std::exp(v)); }

// One sample's routing from its inner logits a: p[i] = σ(β a_i), the probability of turning right
// at inner node i, and R[m], the probability of reaching node m (root 1; left child R·(1 − p),
// right child R·p). Children follow their parent in heap order, so one pass down fills R.
void route(const float* a, int inner, double beta, double* p, double* R) {
  R[0] = 1;
  for (int i = 0; i < inner; ++i) {
    p[i] = sigmoid(beta * a[i]);
    R[2 * i + 1] = R[i] * (1 - p[i]);
    R[2 * i + 2] = R[i] * p[i];
  }
}

// The adjoint of route(): Rbar[m] holds ∂E/∂R_m from outside the routing (the leaves' share of
// the output, a penalty's share of inner nodes); the pass up adds each node's children into it
// and writes delta[i] = ∂E/∂a_i. Children have larger indices than their parent, so going down
// the indices visits a node after both its children.
void route_backward(const double* p, const double* R, double* Rbar, int inner, double beta, float* delta) {
  for (int i = inner - 1; i >= 0; --i) {
    const double left = Rbar[2 * i + 1], right = Rbar[2 * i + 2];
    Rbar[i] += (1 - p[i]) * left + p[i] * right;
    delta[i] = float(beta * p[i] * (1 - p[i]) * R[i] * (right - left));
  }
}

int depth_of(int node) {  // root 0
  int d = 0;
  for (int m = node + 1; m > 1; m >>= 1) ++d;
  return d;
}

// Doubles from the workspace (its slots hold floats; vector storage is aligned for double).
double* doubles(Workspace& ws, int slot, size_t n) { return reinterpret_cast<double*>(ws.get(slot, 2 * n)); }

}  // namespace

void SoftTree::build(const std::vector<Shape>& in) {
  if (in[0].rank != 2)
    throw ShapeError("softtree '" + name + "' expects [N,F] input, got " + in[0].str() + " (add flatten before it)");
  features = in[0][1];
  weight.value = Tensor({inner(), features});
  weight.grad = Tensor({inner(), features});
  bias.value = Tensor({inner()});
  bias.grad = Tensor({inner()});
  leaves.value = Tensor({leaf_count(), classes});
  leaves.grad = Tensor({leaf_count(), classes});
}

Shape SoftTree::out_shape(const std::vector<Shape>& in) const {
  if (in[0].rank != 2 || (features && in[0][1] != features))
    shape_error("softtree '" + name + "' input", Shape{in[0][0], features}, in[0]);
  return {in[0][0], classes};
}

void SoftTree::prepare(Pass, Mode) {
  const int L = leaf_count(), K = classes;
  q_.resize(size_t(L) * K);
  for (int l = 0; l < L; ++l) {
    const float* phi = leaves.value.data() + size_t(l) * K;
    double* q = q_.data() + size_t(l) * K;
    const float m = *std::max_element(phi, phi + K);
    double s = 0;
    for (int k = 0; k < K; ++k) s += (q[k] = std::exp(double(phi[k]) - m));
    for (int k = 0; k < K; ++k) q[k] /= s;
  }
}

void SoftTree::inner_logits(const Tensor& x, float* a) const {
  const int N = x.batch(), I = inner();
  for (int n = 0; n < N; ++n) std::memcpy(a + size_t(n) * I, bias.value.data(), I * sizeof(float));
  gemm(false, true, N, I, features, 1.f, x.data(), weight.value.data(), 1.f, a);
}

// Workspace: slot 0 the inner logits (then, backward, the gradient at them), slot 1 one sample's
// p and R, slot 2 its R̄ and the mixture's per-class factor.
void SoftTree::forward(ForwardCall& c) {
  const int N = c.in[0]->batch(), I = inner(), L = leaf_count(), K = classes;
  float* a = c.ws.get(0, size_t(N) * I);
  inner_logits(*c.in[0], a);
  double* p = doubles(c.ws, 1, size_t(I) + nodes());
  double* R = p + I;
  const double* P = R + I;  // the leaves' reach probabilities
  for (int n = 0; n < N; ++n) {
    route(a + size_t(n) * I, I, beta, p, R);
    float* z = c.out.data() + size_t(n) * K;
    for (int k = 0; k < K; ++k) {
      double m = 0;
      for (int l = 0; l < L; ++l) m += P[l] * q_[size_t(l) * K + k];
      z[k] = float(std::log(std::max(m, DBL_MIN)));
    }
  }
}

// With g = ∂E/∂z: h_k = g_k / m_k (m the mixture), ∂E/∂P_l = Σ_k h_k Q_lk, ∂E/∂φ_lk =
// P_l Q_lk (h_k − ∂E/∂P_l), and the routing's adjoint gives ∂E/∂a, from which the filters'
// gradients and the input's follow as for a dense layer.
void SoftTree::backward(BackwardCall& c) {
  const Tensor& x = *c.in[0];
  const int N = x.batch(), I = inner(), L = leaf_count(), K = classes;
  float* a = c.ws.get(0, size_t(N) * I);
  inner_logits(x, a);
  double* p = doubles(c.ws, 1, size_t(I) + nodes());
  double* R = p + I;
  double* Rbar = doubles(c.ws, 2, size_t(nodes()) + K);
  double* h = Rbar + nodes();
  const double* P = R + I;
  float* gphi = c.param_grads ? c.grads[2]->data() : nullptr;
  for (int n = 0; n < N; ++n) {
    float* an = a + size_t(n) * I;
    route(an, I, beta, p, R);
    const float* g = c.g_out.data() + size_t(n) * K;
    for (int k = 0; k < K; ++k) {
      double m = 0;
      for (int l = 0; l < L; ++l) m += P[l] * q_[size_t(l) * K + k];
      h[k] = g[k] / std::max(m, DBL_MIN);
    }
    std::fill_n(Rbar, I, 0.0);
    for (int l = 0; l < L; ++l) {
      const double* q = q_.data() + size_t(l) * K;
      double u = 0;
      for (int k = 0; k < K; ++k) u += h[k] * q[k];
      Rbar[I + l] = u;
      if (gphi)
        for (int k = 0; k < K; ++k) gphi[size_t(l) * K + k] += float(P[l] * q[k] * (h[k] - u));
    }
    route_backward(p, R, Rbar, I, beta, an);  // an now holds ∂E/∂a for sample n
  }
  if (c.param_grads) {
    gemm(true, false, I, features, N, 1.f, a, x.data(), 1.f, c.grads[0]->data());
    float* gb = c.grads[1]->data();
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < I; ++i) gb[i] += a[size_t(n) * I + i];
  }
  if (c.g_in[0]) gemm(false, false, N, features, I, 1.f, a, weight.value.data(), 0.f, c.g_in[0]->data());
}

void SoftTree::routes(const Tensor& x, Tensor& right, Tensor& reach) const {
  check_shape(x, Shape{x.rank() ? x.batch() : 0, features}, "softtree '" + name + "' routes");
  const int N = x.batch(), I = inner(), M = nodes();
  std::vector<float> a(size_t(N) * I);
  inner_logits(x, a.data());
  right.resize({N, I});
  reach.resize({N, M});
  std::vector<double> p(I), R(M);
  for (int n = 0; n < N; ++n) {
    route(a.data() + size_t(n) * I, I, beta, p.data(), R.data());
    std::copy(p.begin(), p.end(), right.data() + size_t(n) * I);
    std::copy(R.begin(), R.end(), reach.data() + size_t(n) * M);
  }
}

Tensor SoftTree::leaf_distributions() const {
  Tensor q({leaf_count(), classes});
  for (int l = 0; l < leaf_count(); ++l) {
    const float* phi = leaves.value.data() + size_t(l) * classes;
    float* out = q.data() + size_t(l) * classes;
    const float m = *std::max_element(phi, phi + classes);
    double s = 0;
    for (int k = 0; k < classes; ++k) s += std::exp(double(phi[k]) - m);
    for (int k = 0; k < classes; ++k) out[k] = float(std::exp(double(phi[k]) - m) / s);
  }
  return q;
}

double SoftTree::penalty(const Tensor& x, double lambda, Tensor* grad_weight, Tensor* grad_bias, Tensor* grad_x) const {
  check_shape(x, Shape{x.rank() ? x.batch() : 0, features}, "softtree '" + name + "' penalty input");
  const int N = x.batch(), I = inner(), M = nodes();
  std::vector<float> a(size_t(N) * I);
  inner_logits(x, a.data());
  std::vector<double> p(size_t(N) * I), R(size_t(N) * M);
  for (int n = 0; n < N; ++n) route(a.data() + size_t(n) * I, I, beta, &p[size_t(n) * I], &R[size_t(n) * M]);
  // Per inner node: α = A/B with A the batch's reach of its right child and B its own; the
  // penalty's derivatives by R_right (1/B) and by R_i (−A/B²) are the same for every sample.
  double C = 0;
  std::vector<double> d_right(I, 0.0), d_self(I, 0.0);
  for (int i = 0; i < I; ++i) {
    double A = 0, B = 0;
    for (int n = 0; n < N; ++n) A += R[size_t(n) * M + 2 * i + 2], B += R[size_t(n) * M + i];
    if (!(B > 0)) continue;
    const double w = lambda * std::ldexp(1.0, -depth_of(i));
    const double alpha = std::clamp(A / B, 1e-12, 1 - 1e-12);
    C -= w * 0.5 * (std::log(alpha) + std::log(1 - alpha));
    const double dC_dalpha = -w * 0.5 * (1 / alpha - 1 / (1 - alpha));
    d_right[i] = dC_dalpha / B;
    d_self[i] = -dC_dalpha * A / (B * B);
  }
  if (!grad_weight && !grad_bias && !grad_x) return C;
  std::vector<double> Rbar(M);
  std::vector<float>& delta = a;  // each sample's logits are replaced by ∂C/∂a
  for (int n = 0; n < N; ++n) {
    std::fill(Rbar.begin(), Rbar.end(), 0.0);
    for (int i = 0; i < I; ++i) Rbar[2 * i + 2] += d_right[i], Rbar[i] += d_self[i];
    route_backward(&p[size_t(n) * I], &R[size_t(n) * M], Rbar.data(), I, beta, delta.data() + size_t(n) * I);
  }
  if (grad_weight) {
    check_shape(*grad_weight, weight.value.shape(), "softtree penalty weight gradient");
    gemm(true, false, I, features, N, 1.f, delta.data(), x.data(), 1.f, grad_weight->data());
  }
  if (grad_bias) {
    check_shape(*grad_bias, bias.value.shape(), "softtree penalty bias gradient");
    for (int n = 0; n < N; ++n)
      for (int i = 0; i < I; ++i) (*grad_bias)[i] += delta[size_t(n) * I + i];
  }
  if (grad_x) {
    grad_x->resize(x.shape());
    gemm(false, false, N, features, I, 1.f, delta.data(), weight.value.data(), 0.f, grad_x->data());
  }
  return C;
}

json SoftTree::hyper() const { return {{"depth", depth}, {"out", classes}, {"beta", beta}}; }

double SoftTree::flops(const std::vector<Shape>&) const {
  return 2.0 * features * inner() + 4.0 * inner() + 2.0 * leaf_count() * classes;
}

// The filters as a dense layer's (He uniform, zero bias); leaf logits small and random, so the
// leaves start near uniform but not identical.
void SoftTree::init(Rng& rng) {
  const float bound = std::sqrt(6.f / float(features));
  for (size_t i = 0; i < weight.value.size(); ++i) weight.value[i] = (2 * rng.uniform() - 1) * bound;
  bias.value.fill(0.f);
  for (size_t i = 0; i < leaves.value.size(); ++i) leaves.value[i] = 0.1f * rng.normal();
}

// ---- the additive model's layers ----------------------------------------------------------------

void GroupDense::build(const std::vector<Shape>& in) {
  if (in[0].rank != 2)
    throw ShapeError("groupdense '" + name + "' expects [N,F] input, got " + in[0].str() + " (add flatten before it)");
  if (in[0][1] % groups)
    throw ShapeError("groupdense '" + name + "': " + std::to_string(in[0][1]) + " inputs do not split into " +
                     std::to_string(groups) + " groups");
  in_per_group = in[0][1] / groups;
  weight.value = Tensor({groups * out_per_group, in_per_group});
  weight.grad = Tensor({groups * out_per_group, in_per_group});
  if (has_bias) {
    bias.value = Tensor({groups * out_per_group});
    bias.grad = Tensor({groups * out_per_group});
  }
}

Shape GroupDense::out_shape(const std::vector<Shape>& in) const {
  if (in[0].rank != 2 || (in_per_group && in[0][1] != groups * in_per_group))
    shape_error("groupdense '" + name + "' input", Shape{in[0][0], groups * in_per_group}, in[0]);
  return {in[0][0], groups * out_per_group};
}

// One GEMM per group, reading and writing the group's columns in place (leading dimensions).
void GroupDense::forward(ForwardCall& c) {
  const Tensor& x = *c.in[0];
  const int N = x.batch(), G = groups, O = out_per_group, A = in_per_group;
  float* y = c.out.data();
  if (has_bias)
    for (int n = 0; n < N; ++n) std::memcpy(y + size_t(n) * G * O, bias.value.data(), size_t(G) * O * sizeof(float));
  for (int g = 0; g < G; ++g)
    gemm(false, true, N, O, A, 1.f, x.data() + size_t(g) * A, G * A, weight.value.data() + size_t(g) * O * A, A,
         has_bias ? 1.f : 0.f, y + size_t(g) * O, G * O);
}

void GroupDense::backward(BackwardCall& c) {
  const Tensor& x = *c.in[0];
  const int N = x.batch(), G = groups, O = out_per_group, A = in_per_group;
  const float* gy = c.g_out.data();
  for (int g = 0; g < G; ++g) {
    if (c.param_grads)
      gemm(true, false, O, A, N, 1.f, gy + size_t(g) * O, G * O, x.data() + size_t(g) * A, G * A, 1.f,
           c.grads[0]->data() + size_t(g) * O * A, A);
    if (c.g_in[0])
      gemm(false, false, N, A, O, 1.f, gy + size_t(g) * O, G * O, weight.value.data() + size_t(g) * O * A, A, 0.f,
           c.g_in[0]->data() + size_t(g) * A, G * A);
  }
  if (c.param_grads && has_bias) {
    float* gb = c.grads[1]->data();
    for (int n = 0; n < N; ++n)
      for (int j = 0; j < G * O; ++j) gb[j] += gy[size_t(n) * G * O + j];
  }
}

std::vector<Param*> GroupDense::params() {
  if (has_bias) return {&weight, &bias};
  return {&weight};
}

json GroupDense::hyper() const { return {{"out", out_per_group}, {"groups", groups}, {"bias", has_bias}}; }

double GroupDense::flops(const std::vector<Shape>&) const { return 2.0 * groups * out_per_group * in_per_group; }

// He uniform per group (fan-in: the group's own inputs), zero bias.
void GroupDense::init(Rng& rng) {
  const float bound = std::sqrt(2.f) * std::sqrt(3.f / float(in_per_group));
  for (size_t i = 0; i < weight.value.size(); ++i) weight.value[i] = (2 * rng.uniform() - 1) * bound;
  if (has_bias) bias.value.fill(0.f);
}

Shape GroupSum::out_shape(const std::vector<Shape>& in) const {
  if (in[0].rank != 2 || in[0][1] % groups)
    throw ShapeError("groupsum '" + name + "' expects [N, G*K] input with G = " + std::to_string(groups) + ", got " +
                     in[0].str());
  return {in[0][0], in[0][1] / groups};
}

void GroupSum::forward(ForwardCall& c) {
  const int N = c.out.batch(), K = c.out.dim(1);
  const float* x = c.in[0]->data();
  float* y = c.out.data();
  for (int n = 0; n < N; ++n) {
    float* yn = y + size_t(n) * K;
    std::fill_n(yn, K, 0.f);
    for (int g = 0; g < groups; ++g)
      for (int k = 0; k < K; ++k) yn[k] += x[(size_t(n) * groups + g) * K + k];
  }
}

void GroupSum::backward(BackwardCall& c) {
  if (!c.g_in[0]) return;
  const int N = c.g_out.batch(), K = c.g_out.dim(1);
  float* gx = c.g_in[0]->data();
  for (int n = 0; n < N; ++n)
    for (int g = 0; g < groups; ++g)
      std::memcpy(gx + (size_t(n) * groups + g) * K, c.g_out.data() + size_t(n) * K, K * sizeof(float));
}

json GroupSum::hyper() const { return {{"groups", groups}}; }

double GroupSum::flops(const std::vector<Shape>& in) const { return double(in[0].numel()) / in[0][0]; }

}  // namespace gb
