// Hessian-vector products as tangent rules over the graph's passes (see hvp.h). Every rule sees
// whole (sample, tangent) pairs: row 2p holds a sample's activation or gradient, row 2p + 1 its
// tangent. With Ẇ the parameter tangents of a layer (zero for layers not chosen):
//   affine    y = W x + b        ẏ = W ẋ + Ẇ x + ḃ       ġ_x = Wᵀ ġ + Ẇᵀ g     Hv_W += ġ xᵀ + g ẋᵀ, Hv_b += ġ
//   f         y = f(x)           ẏ = f'(x) ẋ             ġ_x = f'(x) ġ + f''(x) ẋ g
//   max-pool  routes by the sample's winners, tangents included
//   linear    avgpool, gap, flatten, add, dropout (eval): the layer itself on both rows
//   batchnorm y = s x + t        ẏ = s ẋ + ṡ x + ṫ       ġ_x = s ġ + ṡ g        (s = γ/σ, t = β − μ s)
// and at the logits the cross-entropy's Hessian: ġ = (diag p − p pᵀ) ż.
#include "engine/hvp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "engine/blas.h"
#include "engine/layers.h"
#include "engine/threads.h"

namespace gb {

namespace {

Tensor row(const Tensor& t, int r) { return t.slice(r, r + 1); }

// dst = the rows of t with this parity (0: samples, 1: tangents).
void gather_parity(const Tensor& t, int parity, Tensor& dst) {
  const int m = t.batch() / 2;
  const size_t S = t.sample_size();
  dst.resize(Shape::batch_of(m, t.shape().sample()));
  for (int p = 0; p < m; ++p) std::memcpy(dst.data() + p * S, t.data() + (2 * p + parity) * S, S * sizeof(float));
}

// The rows of t with this parity += src's rows.
void scatter_add_parity(const Tensor& src, int parity, Tensor& t) {
  const size_t S = t.sample_size();
  for (int p = 0; p < t.batch() / 2; ++p) {
    float* d = t.data() + (2 * p + parity) * S;
    const float* s = src.data() + p * S;
    for (size_t i = 0; i < S; ++i) d[i] += s[i];
  }
}

// dst = t with the two rows of every pair swapped: [ġ0, g0, ġ1, g1, ...].
void swap_pairs(const Tensor& t, Tensor& dst) {
  const size_t S = t.sample_size();
  dst.resize(t.shape());
  for (int r = 0; r < t.batch(); ++r) std::memcpy(dst.data() + r * S, t.data() + (r ^ 1) * S, S * sizeof(float));
}

// Channels are dim 1; a channel's plane is the rest of the sample (1 for [N,F]).
size_t plane(const Tensor& t) { return t.sample_size() / t.dim(1); }

// Rows of t with this parity: channel c += scale * v[c] over its plane.
void add_per_channel(Tensor& t, int parity, const float* v, float scale) {
  const int C = t.dim(1);
  const size_t P = plane(t);
  for (int r = parity; r < t.batch(); r += 2)
    for (int c = 0; c < C; ++c) {
      float* d = t.data() + (size_t(r) * C + c) * P;
      for (size_t i = 0; i < P; ++i) d[i] += scale * v[c];
    }
}

// out[c] += the sum over rows of t with this parity and over channel c's plane.
void add_channel_sums(const Tensor& t, int parity, float* out) {
  const int C = t.dim(1);
  const size_t P = plane(t);
  for (int c = 0; c < C; ++c) {
    double s = 0;
    for (int r = parity; r < t.batch(); r += 2) s += sum(t.data() + (size_t(r) * C + c) * P, P);
    out[c] += float(s);
  }
}

// Scratch per thread: rules run on several threads at once.
struct Scratch {
  Tensor a, b;
  std::vector<int32_t> winners;
  std::vector<float> scale, shift, dscale, dshift;
};

// The affine layers' operations with explicit weights.
const Tensor& weight_of(const Layer& L) {
  if (auto* c = dynamic_cast<const Conv2d*>(&L)) return c->weight.value;
  return static_cast<const Dense&>(L).weight.value;
}

const float* bias_of(const Layer& L) {
  if (auto* c = dynamic_cast<const Conv2d*>(&L)) return c->has_bias ? c->bias.value.data() : nullptr;
  auto& d = static_cast<const Dense&>(L);
  return d.has_bias ? d.bias.value.data() : nullptr;
}

void affine(const Layer& L, const Tensor& x, const Tensor& w, const float* b, Tensor& y, Workspace& ws) {
  if (auto* c = dynamic_cast<const Conv2d*>(&L))
    c->conv(x, w, b, y, ws);
  else
    static_cast<const Dense&>(L).dense(x, w, b, y);
}

void affine_data_grad(const Layer& L, const Tensor& gy, const Tensor& w, Tensor& gx, Workspace& ws) {
  if (auto* c = dynamic_cast<const Conv2d*>(&L))
    c->conv_backward_data(gy, w, gx, ws);
  else
    static_cast<const Dense&>(L).dense_backward_data(gy, w, gx);
}

// gw += Σ_rows gy ⊗ x.
void affine_weight_grad(const Layer& L, const Tensor& x, const Tensor& gy, Tensor& gw, Workspace& ws) {
  if (auto* c = dynamic_cast<const Conv2d*>(&L)) {
    c->conv_backward_weight(x, gy, gw, nullptr, ws);
    return;
  }
  auto& d = static_cast<const Dense&>(L);
  gemm(true, false, d.out_features, d.in_features, gy.batch(), 1.f, gy.data(), x.data(), 1.f, gw.data());
}

// dp: the layer's parameter tangents in params() order (empty: not chosen).
void affine_forward(ForwardCall& c, const std::vector<Tensor>& dp, Scratch& s) {
  c.layer.forward(c);  // samples: W x + b; tangents: W ẋ + b
  if (const float* b = bias_of(c.layer)) add_per_channel(c.out, 1, b, -1.f);
  if (dp.empty()) return;
  gather_parity(*c.in[0], 0, s.a);
  s.b.resize(c.layer.out_shape({s.a.shape()}));
  affine(c.layer, s.a, dp[0], dp.size() > 1 ? dp[1].data() : nullptr, s.b, c.ws);
  scatter_add_parity(s.b, 1, c.out);  // + Ẇ x + ḃ
}

void affine_backward(BackwardCall& c, const std::vector<Tensor>& dp, Scratch& s) {
  if (c.g_in[0]) {
    affine_data_grad(c.layer, c.g_out, weight_of(c.layer), *c.g_in[0], c.ws);  // Wᵀ g, Wᵀ ġ
    if (!dp.empty()) {
      gather_parity(c.g_out, 0, s.a);
      s.b.resize(Shape::batch_of(s.a.batch(), c.in[0]->shape().sample()));
      affine_data_grad(c.layer, s.a, dp[0], s.b, c.ws);
      scatter_add_parity(s.b, 1, *c.g_in[0]);  // + Ẇᵀ g
    }
  }
  if (!c.param_grads || dp.empty()) return;
  swap_pairs(c.g_out, s.a);
  affine_weight_grad(c.layer, *c.in[0], s.a, *c.grads[0], c.ws);  // Σ ġ xᵀ + g ẋᵀ
  if (dp.size() > 1) add_channel_sums(c.g_out, 1, c.grads[1]->data());  // Σ ġ
}

// f''(x) of an activation with y = f(x).
using SecondDerivative = float (*)(const Activation&, float x, float y);
float d2_zero(const Activation&, float, float) { return 0.f; }
float d2_tanh(const Activation&, float, float y) { return -2.f * y * (1.f - y * y); }
float d2_sigmoid(const Activation&, float, float y) { return y * (1.f - y) * (1.f - 2.f * y); }
float d2_softplus(const Activation& a, float x, float) {
  const Softplus& s = static_cast<const Softplus&>(a);
  if (s.beta * x > s.threshold) return 0.f;  // the linear branch
  const float q = 1.f / (1.f + std::exp(-s.beta * x));
  return s.beta * q * (1.f - q);
}

void activation_forward(ForwardCall& c) {
  c.layer.forward(c);
  const Activation& A = static_cast<const Activation&>(c.layer);
  const bool relu = dynamic_cast<const ReLU*>(&A) != nullptr;
  const size_t S = c.out.sample_size();
  for (int p = 0; p < c.out.batch() / 2; ++p) {
    const float *x = c.in[0]->data() + 2 * p * S, *xd = x + S, *y = c.out.data() + 2 * p * S;
    float* yd = c.out.data() + (2 * p + 1) * S;
    if (relu)
      for (size_t i = 0; i < S; ++i) yd[i] = relu_passes(x[i]) ? xd[i] : 0.f;
    else
      for (size_t i = 0; i < S; ++i) yd[i] = A.df(x[i], y[i]) * xd[i];
  }
}

void activation_backward(BackwardCall& c, SecondDerivative d2) {
  if (!c.g_in[0]) return;
  const Activation& A = static_cast<const Activation&>(c.layer);
  const bool relu = dynamic_cast<const ReLU*>(&A) != nullptr;
  const size_t S = c.out.sample_size();
  for (int p = 0; p < c.out.batch() / 2; ++p) {
    const size_t at = 2 * p * S;
    const float *x = c.in[0]->data() + at, *xd = x + S, *y = c.out.data() + at;
    const float *g = c.g_out.data() + at, *gd = g + S;
    float *gx = c.g_in[0]->data() + at, *gxd = gx + S;
    if (relu) {
      for (size_t i = 0; i < S; ++i) {
        gx[i] = relu_passes(x[i]) ? g[i] : 0.f;
        gxd[i] = relu_passes(x[i]) ? gd[i] : 0.f;
      }
      continue;
    }
    for (size_t i = 0; i < S; ++i) {
      const float d = A.df(x[i], y[i]);
      gx[i] = d * g[i];
      gxd[i] = d * gd[i] + d2(A, x[i], y[i]) * xd[i] * g[i];
    }
  }
}

void maxpool_forward(ForwardCall& c, Scratch& s) {
  c.layer.forward(c);  // samples exact; tangent rows overwritten below
  const MaxPool2d& L = static_cast<const MaxPool2d&>(c.layer);
  const Tensor& x = *c.in[0];
  const size_t C = x.dim(1), HW = size_t(x.dim(2)) * x.dim(3), OHW = size_t(c.out.dim(2)) * c.out.dim(3);
  s.winners.resize(C * OHW);
  for (int p = 0; p < x.batch() / 2; ++p) {
    L.winners(row(x, 2 * p), s.winners.data());
    const float* xd = x.data() + (2 * p + 1) * C * HW;
    float* yd = c.out.data() + (2 * p + 1) * C * OHW;
    for (size_t pl = 0; pl < C; ++pl)
      for (size_t o = 0; o < OHW; ++o) yd[pl * OHW + o] = xd[pl * HW + s.winners[pl * OHW + o]];
  }
}

void maxpool_backward(BackwardCall& c, Scratch& s) {
  if (!c.g_in[0]) return;
  c.layer.backward(c);  // samples routed through their winners; tangent rows redone below
  const MaxPool2d& L = static_cast<const MaxPool2d&>(c.layer);
  const Tensor& x = *c.in[0];
  const size_t C = x.dim(1), HW = size_t(x.dim(2)) * x.dim(3), OHW = size_t(c.g_out.dim(2)) * c.g_out.dim(3);
  s.winners.resize(C * OHW);
  for (int p = 0; p < x.batch() / 2; ++p) {
    L.winners(row(x, 2 * p), s.winners.data());
    const float* gd = c.g_out.data() + (2 * p + 1) * C * OHW;
    float* gxd = c.g_in[0]->data() + (2 * p + 1) * C * HW;
    std::fill(gxd, gxd + C * HW, 0.f);
    for (size_t pl = 0; pl < C; ++pl)
      for (size_t o = 0; o < OHW; ++o) gxd[pl * HW + s.winners[pl * OHW + o]] += gd[pl * OHW + o];
  }
}

// Eval-mode BatchNorm, y = s x + t per channel with s = γ/σ, t = β − μ s: ṡ = γ̇/σ, ṫ = β̇ − μ ṡ.
void batchnorm_tangents(const BatchNorm2d& L, const std::vector<Tensor>& dp, Scratch& s) {
  L.eval_affine(s.scale, s.shift);
  s.dscale.assign(L.channels, 0.f);
  s.dshift.assign(L.channels, 0.f);
  if (dp.empty()) return;
  for (int ch = 0; ch < L.channels; ++ch) {
    s.dscale[ch] = dp[0][ch] / std::sqrt(L.running_var.value[ch] + L.eps);
    s.dshift[ch] = dp[1][ch] - L.running_mean.value[ch] * s.dscale[ch];
  }
}

void batchnorm_forward(ForwardCall& c, const std::vector<Tensor>& dp, Scratch& s) {
  batchnorm_tangents(static_cast<const BatchNorm2d&>(c.layer), dp, s);
  const Tensor& x = *c.in[0];
  const int C = x.dim(1);
  const size_t P = plane(x);
  for (int p = 0; p < x.batch() / 2; ++p)
    for (int ch = 0; ch < C; ++ch) {
      const size_t at = (size_t(2 * p) * C + ch) * P, tan = at + C * P;
      const float *xi = x.data() + at, *xd = x.data() + tan;
      float *y = c.out.data() + at, *yd = c.out.data() + tan;
      for (size_t i = 0; i < P; ++i) {
        y[i] = s.scale[ch] * xi[i] + s.shift[ch];
        yd[i] = s.scale[ch] * xd[i] + s.dscale[ch] * xi[i] + s.dshift[ch];
      }
    }
}

void batchnorm_backward(BackwardCall& c, const std::vector<Tensor>& dp, Scratch& s) {
  const BatchNorm2d& L = static_cast<const BatchNorm2d&>(c.layer);
  batchnorm_tangents(L, dp, s);
  const Tensor& x = *c.in[0];
  const int C = x.dim(1);
  const size_t P = plane(x);
  for (int ch = 0; ch < C; ++ch) {
    const float mean = L.running_mean.value[ch], invstd = 1.f / std::sqrt(L.running_var.value[ch] + L.eps);
    double dgamma = 0, dbeta = 0;
    for (int p = 0; p < x.batch() / 2; ++p) {
      const size_t at = (size_t(2 * p) * C + ch) * P, tan = at + C * P;
      const float *xi = x.data() + at, *xd = x.data() + tan, *g = c.g_out.data() + at, *gd = c.g_out.data() + tan;
      if (c.g_in[0]) {
        float *gx = c.g_in[0]->data() + at, *gxd = c.g_in[0]->data() + tan;
        for (size_t i = 0; i < P; ++i) {
          gx[i] = s.scale[ch] * g[i];
          gxd[i] = s.scale[ch] * gd[i] + s.dscale[ch] * g[i];
        }
      }
      for (size_t i = 0; i < P; ++i) {
        dgamma += (double(gd[i]) * (xi[i] - mean) + double(g[i]) * xd[i]) * invstd;
        dbeta += gd[i];
      }
    }
    if (c.param_grads && !dp.empty()) {
      (*c.grads[0])[ch] += float(dgamma);
      (*c.grads[1])[ch] += float(dbeta);
    }
  }
}

const char* kSupported = "conv, dense, relu, leakyrelu, tanh, sigmoid, softplus, maxpool, avgpool, gap, flatten, add, "
                         "dropout, batchnorm";

SecondDerivative second_derivative(const Layer& L) {
  if (dynamic_cast<const ReLU*>(&L) || dynamic_cast<const LeakyReLU*>(&L)) return d2_zero;
  if (dynamic_cast<const Tanh*>(&L)) return d2_tanh;
  if (dynamic_cast<const Sigmoid*>(&L)) return d2_sigmoid;
  if (dynamic_cast<const Softplus*>(&L)) return d2_softplus;
  return nullptr;
}

bool is_affine(const Layer& L) { return dynamic_cast<const Conv2d*>(&L) || dynamic_cast<const Dense*>(&L); }

bool is_linear(const Layer& L) {
  return dynamic_cast<const AvgPool2d*>(&L) || dynamic_cast<const GlobalAvgPool*>(&L) ||
         dynamic_cast<const Flatten*>(&L) || dynamic_cast<const Add*>(&L) || dynamic_cast<const Dropout*>(&L);
}

}  // namespace

// The tangent rules: the parameter tangents (views of v, the direction's copy) and scratch.
struct HessianVectorProduct::State {
  Tensor v;                                   // the direction, rewritten by each product
  std::vector<std::vector<Tensor>> dparams;   // per node, in params() order; empty when not chosen
  std::vector<Scratch> scratch;
  ForwardRules forward;
  BackwardRules backward;
  Tensor pairs, seed;                         // the interleaved input and the seed at the logits
  std::vector<double> probs;

  State(Graph& g, const ParamSlice& slice) : v(Shape{int(slice.size)}) {
    scratch.resize(std::max(1, threads()));
    dparams.resize(g.size());
    forward.resize(g.size());
    backward.resize(g.size());
    size_t offset = 0;
    for (int i = 0; i < g.size(); ++i) {
      Layer& L = g.layer(i);
      for (Param* p : L.params()) {
        if (std::find(slice.params.begin(), slice.params.end(), p) == slice.params.end()) continue;
        dparams[i].push_back(v.slice(int(offset), int(offset + p->value.size())).reshaped(p->value.shape()));
        offset += p->value.size();
      }
      add_rules(i, L);
    }
  }

  void add_rules(int i, const Layer& L) {
    const std::vector<Tensor>& dp = dparams[i];
    if (is_affine(L)) {
      forward[i] = [&dp, this](ForwardCall& c) { affine_forward(c, dp, scratch[c.thread]); };
      backward[i] = [&dp, this](BackwardCall& c) { affine_backward(c, dp, scratch[c.thread]); };
    } else if (SecondDerivative d2 = second_derivative(L)) {
      forward[i] = [](ForwardCall& c) { activation_forward(c); };
      backward[i] = [d2](BackwardCall& c) { activation_backward(c, d2); };
    } else if (dynamic_cast<const MaxPool2d*>(&L)) {
      forward[i] = [this](ForwardCall& c) { maxpool_forward(c, scratch[c.thread]); };
      backward[i] = [this](BackwardCall& c) { maxpool_backward(c, scratch[c.thread]); };
    } else if (dynamic_cast<const BatchNorm2d*>(&L)) {
      forward[i] = [&dp, this](ForwardCall& c) { batchnorm_forward(c, dp, scratch[c.thread]); };
      backward[i] = [&dp, this](BackwardCall& c) { batchnorm_backward(c, dp, scratch[c.thread]); };
    }  // linear layers: no rule, the layer itself is right on both rows
  }
};

namespace {

// The seed at the logits [z0, ż0, z1, ż1, ...]: g = p − onehot(y) and ġ = (diag p − p pᵀ) ż.
void loss_seed(const Tensor& z, const int* labels, Tensor& seed, std::vector<double>& p) {
  const int K = z.dim(1);
  seed.resize(z.shape());
  p.resize(K);
  for (int n = 0; n < z.batch() / 2; ++n) {
    const float *zn = z.data() + 2 * n * K, *zd = zn + K;
    float *g = seed.data() + 2 * n * K, *gd = g + K;
    const double m = *std::max_element(zn, zn + K);
    double total = 0, pz = 0;
    for (int k = 0; k < K; ++k) total += p[k] = std::exp(zn[k] - m);
    for (int k = 0; k < K; ++k) pz += (p[k] /= total) * zd[k];
    for (int k = 0; k < K; ++k) {
      g[k] = float(p[k] - (k == labels[n]));
      gd[k] = float(p[k] * (zd[k] - pz));
    }
  }
}

}  // namespace

void check_hvp_support(const Graph& g) {
  for (int i = 0; i < g.size(); ++i) {
    const Layer& L = g.layer(i);
    if (is_affine(L) || dynamic_cast<const MaxPool2d*>(&L) || dynamic_cast<const BatchNorm2d*>(&L) || is_linear(L) ||
        second_derivative(L))
      continue;
    throw std::invalid_argument("Hessian-vector products: layer '" + L.name + "' (" + L.kind() +
                                ") has no tangent rule (supported: " + kSupported + ")");
  }
  const Shape out = g.shape(g.output());
  if (out.rank != 2)
    throw std::invalid_argument("Hessian-vector products: the model's output " + out.str() +
                                " is not [N, classes] logits for the cross-entropy");
}

HessianVectorProduct::HessianVectorProduct(Graph& g, const ParamSlice& slice) : g_(g), slice_(slice) {
  check_hvp_support(g);
  s_ = std::make_unique<State>(g, slice);
}

HessianVectorProduct::~HessianVectorProduct() = default;

void HessianVectorProduct::operator()(const Tensor& x, const std::vector<int>& labels, const float* v, float* out,
                                      Tensor* input_tangent, int batch) {
  const Shape sample = g_.input_shape();
  if (x.rank() != sample.rank + 1 || x.shape().sample() != sample)
    shape_error("Hessian-vector product input", Shape::batch_of(x.rank() ? x.batch() : 1, sample), x.shape());
  const int N = x.batch(), K = g_.classes();
  if (int(labels.size()) != N)
    throw std::invalid_argument("Hessian-vector product: " + std::to_string(labels.size()) + " labels for " +
                                std::to_string(N) + " samples");
  for (int y : labels)
    if (y < 0 || y >= K)
      throw std::out_of_range("Hessian-vector product: label " + std::to_string(y) + " outside [0," +
                              std::to_string(K) + ")");
  if (batch < 1) throw std::invalid_argument("Hessian-vector product: batch must be >= 1");
  State& st = *s_;
  std::copy_n(v, slice_.size, st.v.data());  // the parameter tangents are views of it
  for (Param* p : slice_.params) p->grad.fill(0.f);
  if (input_tangent) input_tangent->resize(x.shape());

  ForwardOptions fo;
  fo.rules = &st.forward;
  fo.per_sample_rules = true;
  fo.row_block = 2;
  BackwardOptions bo;
  bo.rules = &st.backward;
  bo.param_grads = true;
  bo.input_grad = input_tangent != nullptr;
  bo.per_sample_rules = true;
  bo.row_block = 2;
  const size_t S = x.sample_size();
  for (int b = 0; b < N; b += batch) {
    const int m = std::min(batch, N - b);
    if (st.pairs.shape() != Shape::batch_of(2 * m, sample)) st.pairs = Tensor(Shape::batch_of(2 * m, sample));
    st.pairs.fill(0.f);  // the input's tangent is zero: v moves the parameters only
    for (int n = 0; n < m; ++n) std::memcpy(st.pairs.data() + 2 * n * S, x.data() + (b + n) * S, S * sizeof(float));
    loss_seed(g_.forward(st.pairs, fo), labels.data() + b, st.seed, st.probs);
    const Tensor& g_in = g_.backward(st.seed, bo);
    if (input_tangent)
      for (int n = 0; n < m; ++n)
        std::memcpy(input_tangent->data() + (b + n) * S, g_in.data() + (2 * n + 1) * S, S * sizeof(float));
  }
  size_t offset = 0;
  for (Param* q : slice_.params) {
    std::copy_n(q->grad.data(), q->grad.size(), out + offset);
    offset += q->grad.size();
  }
}

InputHessianVectorProduct::InputHessianVectorProduct(Graph& g) : g_(g) {
  check_hvp_support(g);
  s_ = std::make_unique<HessianVectorProduct::State>(g, none_);
}

InputHessianVectorProduct::~InputHessianVectorProduct() = default;

void InputHessianVectorProduct::operator()(const Tensor& x, const Tensor& v, const Tensor& seed, Tensor& grad,
                                           Tensor& hv, int batch) {
  const Shape sample = g_.input_shape();
  if (x.rank() != sample.rank + 1 || x.shape().sample() != sample)
    shape_error("input Hessian-vector product input", Shape::batch_of(x.rank() ? x.batch() : 1, sample), x.shape());
  if (v.shape() != x.shape()) shape_error("input Hessian-vector product direction", x.shape(), v.shape());
  const int N = x.batch();
  const Shape out = g_.shape(g_.output(), N);
  if (seed.shape() != out) shape_error("input Hessian-vector product seed", out, seed.shape());
  if (batch < 1) throw std::invalid_argument("input Hessian-vector product: batch must be >= 1");
  HessianVectorProduct::State& st = *s_;
  grad.resize(x.shape());
  hv.resize(x.shape());
  ForwardOptions fo;
  fo.rules = &st.forward;
  fo.per_sample_rules = true;
  fo.row_block = 2;
  BackwardOptions bo;
  bo.rules = &st.backward;
  bo.per_sample_rules = true;
  bo.row_block = 2;
  const size_t S = x.sample_size(), K = seed.sample_size();
  for (int b = 0; b < N; b += batch) {
    const int m = std::min(batch, N - b);
    if (st.pairs.shape() != Shape::batch_of(2 * m, sample)) st.pairs = Tensor(Shape::batch_of(2 * m, sample));
    st.seed.resize(Shape::batch_of(2 * m, out.sample()));
    st.seed.fill(0.f);  // the seed's tangent is zero: it does not depend on x
    for (int n = 0; n < m; ++n) {
      std::memcpy(st.pairs.data() + 2 * n * S, x.data() + (b + n) * S, S * sizeof(float));
      std::memcpy(st.pairs.data() + (2 * n + 1) * S, v.data() + (b + n) * S, S * sizeof(float));
      std::memcpy(st.seed.data() + 2 * n * K, seed.data() + (b + n) * K, K * sizeof(float));
    }
    g_.forward(st.pairs, fo);
    const Tensor& g_in = g_.backward(st.seed, bo);
    for (int n = 0; n < m; ++n) {
      std::memcpy(grad.data() + (b + n) * S, g_in.data() + 2 * n * S, S * sizeof(float));
      std::memcpy(hv.data() + (b + n) * S, g_in.data() + (2 * n + 1) * S, S * sizeof(float));
    }
  }
}

void hessian_vector_product(Graph& g, const Tensor& x, const std::vector<int>& labels, const ParamSlice& slice,
                            const float* v, float* out, Tensor* input_tangent, int batch) {
  HessianVectorProduct(g, slice)(x, labels, v, out, input_tangent, batch);
}

}  // namespace gb
