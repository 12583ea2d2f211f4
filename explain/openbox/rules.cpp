#include "explain/openbox/rules.h"

#include <algorithm>

#include "engine/threads.h"

namespace gb::openbox {

// The loops hash into a local copy of the state: `h` itself could be written through the byte
// pointers, so the compiler would store and reload it at every byte.
void Hasher::relu(int li, const uint8_t* on, size_t n) {
  u32(uint32_t(li));
  Hasher H{h};
  for (size_t i = 0; i < n; ++i) H.byte(on[i]);
  h = H.h;
}
void Hasher::relu_pre(int li, const float* pre, size_t n) {
  u32(uint32_t(li));
  Hasher H{h};
  for (size_t i = 0; i < n; ++i) H.byte(relu_passes(pre[i]));
  h = H.h;
}
void Hasher::pool(int li, const int32_t* argmax, size_t n) {
  u32(uint32_t(li));
  Hasher H{h};
  for (size_t i = 0; i < n; ++i) H.u32(uint32_t(argmax[i]));
  h = H.h;
}

std::vector<PoolPair> pool_pairs(const Graph& g, const LayerConfig& L) {
  auto& P = dynamic_cast<const MaxPool2d&>(g.layer(L.node));
  const Shape in = g.shape(g.node(L.node).inputs[0], 1), out = g.shape(L.node, 1);
  const int C = in[1], H = in[2], W = in[3], OW = out[3], OHW = out[2] * OW;
  std::vector<PoolPair> v;
  for (int ch = 0; ch < C; ++ch)
    for (int o = 0; o < OHW; ++o) {
      const int w = L.argmax[size_t(ch) * OHW + o];
      for_window(P, H, W, OW, o, [&](int e) {
        if (e != w) v.push_back({ch * OHW + o, ch * H * W + w, ch * H * W + e});
      });
    }
  return v;
}

void check_one(const Graph& g, const Tensor& x1, const char* what) {
  if (x1.rank() != g.input_shape().rank + 1 || x1.batch() != 1 || x1.shape().sample() != g.input_shape())
    shape_error(what, Shape::batch_of(1, g.input_shape()), x1.shape());
}

Tensor with_batch(const Graph& g, int rows) { return Tensor(Shape::batch_of(rows, g.input_shape())); }

size_t floats_per_row(const Graph& g) {
  size_t s = g.input_shape().numel();
  for (int i = 0; i < g.size(); ++i) s += g.shape(i, 1).numel();
  return s;
}

Rules::Rules(Graph& graph) : g(graph) {
  check_piecewise_linear(g);
  rules_.resize(g.size());
  from_input_.assign(g.size(), 0);
  bn_scale_.resize(g.size());
  bn_shift_.resize(g.size());
  for (int i = 0; i < g.size(); ++i) {
    Layer& L = g.layer(i);
    const int src = g.node(i).inputs[0];
    from_input_[i] = src < 0 || (dynamic_cast<const Flatten*>(&g.layer(src)) && g.node(src).inputs[0] < 0);
    if (auto* leaky = dynamic_cast<LeakyReLU*>(&L)) {
      const int li = add_config(i, L, false);
      slope_[li] = leaky->slope;
      rules_[i] = [this, li](ForwardCall& c) { relu(c, li); };
    } else if (dynamic_cast<ReLU*>(&L)) {
      const int li = add_config(i, L, false);
      rules_[i] = [this, li](ForwardCall& c) { relu(c, li); };
    } else if (dynamic_cast<MaxPool2d*>(&L)) {
      const int li = add_config(i, L, true);
      rules_[i] = [this, li](ForwardCall& c) { maxpool(c, li); };
    } else if (dynamic_cast<Conv2d*>(&L)) {
      rules_[i] = [this](ForwardCall& c) { conv(c); };
    } else if (dynamic_cast<Dense*>(&L)) {
      rules_[i] = [this, direct = bool(from_input_[i])](ForwardCall& c) { dense(c, direct); };
    } else if (auto* bn = dynamic_cast<BatchNorm2d*>(&L)) {
      bn->eval_affine(bn_scale_[i], bn_shift_[i]);
      rules_[i] = [this](ForwardCall& c) { batchnorm(c); };
    }  // linear layers: their own forward (eval mode)
  }
}

int Rules::add_config(int node, const Layer& L, bool max_pool) {
  LayerConfig lc;
  lc.node = node;
  lc.name = L.name;
  lc.kind = L.kind();
  lc.max_pool = max_pool;
  cfg.push_back(std::move(lc));
  mult_.emplace_back();
  slope_.push_back(0.f);
  return int(cfg.size()) - 1;
}

// Made once per rule set, not per call: a split pass calls each layer many times per thread.
void Rules::prepare_sparse_convs() {
  if (!sparse_conv_.empty()) return;
  sparse_conv_.resize(g.size());
  for (int i = 0; i < g.size(); ++i)
    if (auto* C = dynamic_cast<const Conv2d*>(&g.layer(i)))
      sparse_conv_[i] = sparse_conv(*C, g.shape(g.node(i).inputs[0]));
}

const Tensor& Rules::run(const Tensor& batch, bool split, int row_block) {
  if (basis_k0 >= 0) prepare_sparse_convs();
  conv_scratch_.resize(std::max<size_t>(conv_scratch_.size(), size_t(threads())));
  ForwardOptions fo;
  fo.rules = &rules_;
  fo.per_sample_rules = split && frozen;
  fo.row_block = row_block;
  return g.forward(batch, fo);
}

uint64_t Rules::id() const {
  Hasher H;
  for (size_t li = 0; li < cfg.size(); ++li) {
    if (cfg[li].max_pool)
      H.pool(int(li), cfg[li].argmax.data(), cfg[li].argmax.size());
    else
      H.relu(int(li), cfg[li].on.data(), cfg[li].on.size());
  }
  return H.h;
}

Configuration Rules::configuration() const {
  Configuration c;
  c.layers = cfg;
  c.id = id();
  return c;
}

int Rules::value_rows(const ForwardCall& c) const { return std::clamp(n_affine - c.row0, 0, c.out.batch()); }

// Bias per channel (conv: over each plane; dense: per feature) on the first `rows` rows of y.
void Rules::add_bias(Tensor& y, const float* b, int channels, int rows) const {
  const size_t per = y.sample_size() / channels;
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < channels; ++o) {
      float* p = y.data() + (size_t(r) * channels + o) * per;
      for (size_t q = 0; q < per; ++q) p[q] += b[o];
    }
}

void Rules::conv(ForwardCall& c) {
  auto& C = static_cast<Conv2d&>(c.layer);
  const Tensor& x = *c.in[0];
  const int R = x.batch(), nA = value_rows(c);
  if (basis_k0 < 0 || nA == R) {
    C.conv(x, C.weight.value, nullptr, c.out, c.ws);
    if (C.has_bias) add_bias(c.out, C.bias.value.data(), C.out_ch, nA);
    return;
  }
  // Direction rows that are still sparse scatter their taps.
  Tensor values = c.out.slice(0, nA), directions = c.out.slice(nA, R);
  if (nA > 0) {
    C.conv(x.slice(0, nA), C.weight.value, nullptr, values, c.ws);
    if (C.has_bias) add_bias(values, C.bias.value.data(), C.out_ch, nA);
  }
  conv_sparse(sparse_conv_[c.node], x.slice(nA, R), directions, c.ws, conv_scratch_[c.thread]);
}

// Rows [begin, end) of the call through the layer's weights, in blocks of gemm_rows rows of the
// whole batch (all at once when gemm_rows is 0).
void Rules::dense_rows(const Dense& Dn, const ForwardCall& c, int begin, int end, Tensor& y) const {
  const Tensor& x = *c.in[0];
  for (int b = begin, e; b < end; b = e) {
    e = gemm_rows > 0 ? std::min(end, b + gemm_rows - (c.row0 + b) % gemm_rows) : end;
    Tensor yb = y.slice(b, e);
    Dn.dense(x.slice(b, e), Dn.weight.value, nullptr, yb);
  }
}

// With the identity as direction rows, a layer fed by the input places its weights: row e_d is
// column d of the weights.
void Rules::dense(ForwardCall& c, bool from_input) {
  auto& Dn = static_cast<Dense&>(c.layer);
  Tensor& y = c.out;
  const int R = y.batch(), nA = value_rows(c), O = Dn.out_features, I = Dn.in_features;
  if (!from_input || basis_k0 < 0) {
    dense_rows(Dn, c, 0, R, y);
    if (Dn.has_bias) add_bias(y, Dn.bias.value.data(), O, nA);
    return;
  }
  if (nA > 0) {
    dense_rows(Dn, c, 0, nA, y);
    if (Dn.has_bias) add_bias(y, Dn.bias.value.data(), O, nA);
  }
  const float* w = Dn.weight.value.data();
  for (int r = nA; r < R; ++r) {
    const int d = basis_k0 + c.row0 + r - n_affine;
    float* yr = y.data() + size_t(r) * O;
    if (d < I)
      for (int o = 0; o < O; ++o) yr[o] = w[size_t(o) * I + d];
    else
      std::fill(yr, yr + O, 0.f);  // a zero row after the last direction
  }
}

void Rules::batchnorm(ForwardCall& c) const {
  const std::vector<float>& scale = bn_scale_[c.node];
  const std::vector<float>& shift = bn_shift_[c.node];
  const Tensor& x = *c.in[0];
  const int R = x.batch(), C = x.dim(1), nA = value_rows(c);
  const size_t per = x.sample_size() / C;
  for (int r = 0; r < R; ++r)
    for (int ch = 0; ch < C; ++ch) {
      const float* p = x.data() + (size_t(r) * C + ch) * per;
      float* q = c.out.data() + (size_t(r) * C + ch) * per;
      const float s = scale[ch], t = r < nA ? shift[ch] : 0.f;
      for (size_t e = 0; e < per; ++e) q[e] = p[e] * s + t;
    }
}

// Row 0's mask, and the multiplier every row gets: 1 on, the slope off (one multiply per
// element, which vectorizes).
void Rules::decide_relu(const Tensor& x, int li) {
  LayerConfig& L = cfg[li];
  const size_t n = x.sample_size();
  L.on.resize(n);
  mult_[li].resize(n);
  // Plain pointers and a local slope: the loops then vectorize (a write through uint8_t* may
  // alias anything, so the vectors' members would be reloaded at every element).
  const float* z = x.data();
  uint8_t* on = L.on.data();
  float* mult = mult_[li].data();
  const float slope = slope_[li];
  int active = 0;
  for (size_t i = 0; i < n; ++i) active += (on[i] = relu_passes(z[i]));
  for (size_t i = 0; i < n; ++i) mult[i] = relu_passes(z[i]) ? 1.f : slope;
  L.active = active;
  L.units = int(n);
}

void Rules::relu(ForwardCall& c, int li) {
  const Tensor& x = *c.in[0];
  if (!frozen) decide_relu(x, li);
  if (on_relu) on_relu(li, x, c);
  const size_t n = x.sample_size();
  const float* m = mult_[li].data();
  for (int r = 0; r < x.batch(); ++r) {
    const float* xs = x.data() + size_t(r) * n;
    float* y = c.out.data() + size_t(r) * n;
    for (size_t i = 0; i < n; ++i) y[i] = xs[i] * m[i];
  }
}

// The layer picks the winners of row 0 (ties: lowest index), and counts the windows whose
// maximum is shared.
void Rules::decide_maxpool(const MaxPool2d& P, const Tensor& x, const Tensor& y, int li) {
  LayerConfig& L = cfg[li];
  const int C = x.dim(1), H = x.dim(2), W = x.dim(3), OW = y.dim(3), OHW = y.dim(2) * OW;
  L.argmax.resize(size_t(C) * OHW);
  P.winners(x.sample(0), L.argmax.data());
  L.units = C * OHW;
  int ties = 0;
  for (int ch = 0; ch < C; ++ch) {
    const float* xp = x.data() + size_t(ch) * H * W;
    for (int o = 0; o < OHW; ++o) {
      const int w = L.argmax[size_t(ch) * OHW + o];
      bool tie = false;
      for_window(P, H, W, OW, o, [&](int e) { tie |= e != w && xp[e] == xp[w]; });
      ties += tie;
    }
  }
  L.ties = ties;
}

void Rules::maxpool(ForwardCall& c, int li) {
  const Tensor& x = *c.in[0];
  Tensor& y = c.out;
  if (!frozen) decide_maxpool(static_cast<const MaxPool2d&>(c.layer), x, y, li);
  if (on_pool) on_pool(li, x, c);
  const int R = x.batch(), C = x.dim(1), HW = x.dim(2) * x.dim(3), OHW = y.dim(2) * y.dim(3);
  const int32_t* am = cfg[li].argmax.data();
  for (int r = 0; r < R; ++r)
    for (int ch = 0; ch < C; ++ch) {
      const float* xp = x.data() + (size_t(r) * C + ch) * HW;
      float* yp = y.data() + (size_t(r) * C + ch) * OHW;
      const int32_t* a = am + size_t(ch) * OHW;
      for (int o = 0; o < OHW; ++o) yp[o] = xp[a[o]];
    }
}

}  // namespace gb::openbox
