// OpenBox as a ForwardRules set over the model's graph. Row 0 of every batch is a real input and
// decides the configuration; rows [0, n_affine) get the biases (values), the other rows are
// directions (linear parts only). ReLU multiplies every row by row 0's mask, max-pool gathers
// row 0's winners, conv/dense/batchnorm apply their weights (and biases to value rows only);
// avg-pool, GAP, flatten, add and eval dropout are linear and keep their own forward.
#include "explain/openbox/openbox.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "engine/architecture.h"
#include "engine/layers.h"
#include "engine/threads.h"

namespace gb::openbox {

namespace {

const std::set<std::string> kLinear = {"avgpool", "gap", "flatten", "dropout", "add"};
const std::set<std::string> kKnown = {"conv", "dense", "relu", "leakyrelu", "maxpool", "batchnorm",
                                      "avgpool", "gap", "flatten", "dropout", "add"};

// FNV-1a: simple, byte-order independent for our byte streams, and stable across platforms.
struct Hasher {
  uint64_t h = 1469598103934665603ull;
  void byte(uint8_t b) {
    h ^= b;
    h *= 1099511628211ull;
  }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) byte(uint8_t(v >> (8 * i)));
  }
};

void mix_relu(Hasher& H, int li, const uint8_t* on, size_t n) {
  H.u32(uint32_t(li));
  for (size_t i = 0; i < n; ++i) H.byte(on[i]);
}
void mix_relu_pre(Hasher& H, int li, const float* pre, size_t n) {
  H.u32(uint32_t(li));
  for (size_t i = 0; i < n; ++i) H.byte(pre[i] > 0);
}
void mix_pool(Hasher& H, int li, const int32_t* am, size_t n) {
  H.u32(uint32_t(li));
  for (size_t i = 0; i < n; ++i) H.u32(uint32_t(am[i]));
}

// Visits the in-bounds entries (flat index within the plane) of output element o of a max-pool.
template <class F>
void for_window(const MaxPool2d& P, int H, int W, int OW, int o, F&& f) {
  const int oh = o / OW, ow = o % OW;
  for (int i = 0; i < P.k; ++i) {
    int ih = oh * P.stride - P.pad + i;
    if (ih < 0 || ih >= H) continue;
    for (int j = 0; j < P.k; ++j) {
      int iw = ow * P.stride - P.pad + j;
      if (iw >= 0 && iw < W) f(ih * W + iw);
    }
  }
}

// The frozen-configuration rule set. Not movable: the rules capture `this`.
struct Prop {
  Graph& g;
  int n_affine = 1;
  bool frozen = false;  // true: keep `cfg` instead of reading it from row 0
  // >= 0: rows [n_affine, R) are the unit vectors e_{basis_k0}, e_{basis_k0 + 1}, ... Layers fed
  // straight from the input then place their weights instead of multiplying by the identity.
  int basis_k0 = -1;
  std::vector<char> from_input;  // per node: fed by the graph input (possibly through flatten)
  std::vector<LayerConfig> cfg;
  std::function<void(int li, const Tensor& pre)> on_relu;  // all rows of a ReLU's input
  std::function<void(int li, const Tensor& in)> on_pool;  // all rows of a max-pool's input
  ForwardRules rules;

  explicit Prop(Graph& graph) : g(graph) {
    check_piecewise_linear(g);
    rules.resize(g.size());
    from_input.assign(g.size(), 0);
    for (int i = 0; i < g.size(); ++i) {
      Layer& L = g.layer(i);
      const std::string k = L.kind();
      const int src = g.node(i).inputs[0];
      from_input[i] = src < 0 || (g.layer(src).kind() == "flatten" && g.node(src).inputs[0] < 0);
      if (k == "relu" || k == "leakyrelu") {
        const float slope = k == "relu" ? 0.f : static_cast<LeakyReLU&>(L).slope;
        const int li = add_config(i, L);
        rules[i] = [this, li, slope](ForwardCall& c) { relu(c, li, slope); };
      } else if (k == "maxpool") {
        const int li = add_config(i, L);
        rules[i] = [this, li](ForwardCall& c) { maxpool(c, li); };
      } else if (k == "conv") {
        rules[i] = [this](ForwardCall& c) {
          auto& C = static_cast<Conv2d&>(c.layer);
          if (basis_k0 >= 0 && conv_sparse(c)) return;
          C.conv(*c.in[0], C.weight.value, nullptr, c.out, c.ws);
          if (C.has_bias) add_bias(c.out, C.bias.value.data(), C.out_ch);
        };
      } else if (k == "dense") {
        rules[i] = [this, direct = from_input[i]](ForwardCall& c) {
          auto& Dn = static_cast<Dense&>(c.layer);
          if (direct && basis_k0 >= 0) return dense_basis(c);
          Dn.dense(*c.in[0], Dn.weight.value, nullptr, c.out);
          if (Dn.has_bias) add_bias(c.out, Dn.bias.value.data(), Dn.out_features);
        };
      } else if (k == "batchnorm") {
        rules[i] = [this](ForwardCall& c) { batchnorm(c); };
      }  // linear layers: their own forward (eval mode)
    }
  }
  Prop(const Prop&) = delete;
  Prop& operator=(const Prop&) = delete;

  int add_config(int node, const Layer& L) {
    LayerConfig lc;
    lc.node = node;
    lc.name = L.name;
    lc.kind = L.kind();
    cfg.push_back(std::move(lc));
    return int(cfg.size()) - 1;
  }

  const Tensor& run(const Tensor& batch) {
    ForwardOptions fo;
    fo.rules = &rules;
    return g.forward(batch, fo);
  }

  uint64_t id() const {
    Hasher H;
    for (size_t li = 0; li < cfg.size(); ++li) {
      if (cfg[li].kind == "maxpool")
        mix_pool(H, int(li), cfg[li].argmax.data(), cfg[li].argmax.size());
      else
        mix_relu(H, int(li), cfg[li].on.data(), cfg[li].on.size());
    }
    return H.h;
  }

  // Bias per channel (conv: over each plane; dense: per feature) on the value rows only.
  void add_bias(Tensor& y, const float* b, int channels) const {
    const int R = std::min(n_affine, y.batch());
    const size_t per = y.sample_size() / channels;
    for (int r = 0; r < R; ++r)
      for (int o = 0; o < channels; ++o) {
        float* p = y.data() + (size_t(r) * channels + o) * per;
        for (size_t q = 0; q < per; ++q) p[q] += b[o];
      }
  }

  // Conv of sparse direction rows (the identity, and its images a few layers in): each nonzero
  // input scatters its taps into the outputs, instead of an im2col + GEMM over mostly zeros.
  // Returns false (doing nothing) when the rows are too dense for that to pay.
  std::vector<float> wt_, tmp_;
  std::vector<int> oh_of_, ow_of_;
  std::vector<float> mult_;
  bool conv_sparse(ForwardCall& c) {
    auto& C = static_cast<Conv2d&>(c.layer);
    const Tensor& x = *c.in[0];
    Tensor& y = c.out;
    const int R = x.batch(), nA = std::min(n_affine, R);
    const int Ci = x.dim(1), H = x.dim(2), W = x.dim(3), O = y.dim(1), OH = y.dim(2), OW = y.dim(3), k = C.k;
    const size_t in_per = x.sample_size(), per = y.sample_size(), P = size_t(OH) * OW;
    size_t nnz = 0;
    for (size_t e = size_t(nA) * in_per; e < size_t(R) * in_per; ++e) nnz += x[e] != 0;
    // Scatter: ~nnz * k^2 * O multiply-adds (taps cut by the borders ignored); GEMM: rows * O * Ci k^2 * P.
    if (double(nnz) * k * k * O * 4 > double(R - nA) * O * Ci * k * k * P) return false;
    Tensor ya = y.slice(0, nA);
    C.conv(x.slice(0, nA), C.weight.value, nullptr, ya, c.ws);
    if (C.has_bias) add_bias(ya, C.bias.value.data(), C.out_ch);
    // Weights as [ci][ki][kj][o] and outputs as [position][o], so the inner loop runs over o.
    const float* w = C.weight.value.data();
    wt_.resize(size_t(Ci) * k * k * O);
    for (int o = 0; o < O; ++o)
      for (int t = 0; t < Ci * k * k; ++t) wt_[size_t(t) * O + o] = w[size_t(o) * Ci * k * k + t];
    tmp_.resize(P * O);
    // Output row (column) reached from input row ih (column iw) through tap ki (kj), or -1:
    // tables, so the inner loops do no division.
    oh_of_.assign(size_t(H) * k, -1);
    ow_of_.assign(size_t(W) * k, -1);
    for (int ih = 0; ih < H; ++ih)
      for (int ki = 0; ki < k; ++ki) {
        const int th = ih + C.pad - ki;
        if (th >= 0 && th % C.stride == 0 && th / C.stride < OH) oh_of_[size_t(ih) * k + ki] = th / C.stride;
      }
    for (int iw = 0; iw < W; ++iw)
      for (int kj = 0; kj < k; ++kj) {
        const int tw = iw + C.pad - kj;
        if (tw >= 0 && tw % C.stride == 0 && tw / C.stride < OW) ow_of_[size_t(iw) * k + kj] = tw / C.stride;
      }
    for (int r = nA; r < R; ++r) {
      const float* xr = x.data() + size_t(r) * in_per;
      float* yr = y.data() + size_t(r) * per;
      size_t row_nnz = 0;
      for (size_t e = 0; e < in_per; ++e) row_nnz += xr[e] != 0;
      if (row_nnz * k * k * 8 < P) {
        // Very sparse (the identity itself): write straight into the NCHW row.
        std::fill(yr, yr + per, 0.f);
        for (size_t e = 0; e < in_per; ++e) {
          const float v = xr[e];
          if (v == 0) continue;
          const int ci = int(e / (size_t(H) * W)), ih = int(e / W % H), iw = int(e % W);
          for (int ki = 0; ki < k; ++ki) {
            const int oh = oh_of_[size_t(ih) * k + ki];
            if (oh < 0) continue;
            for (int kj = 0; kj < k; ++kj) {
              const int ow = ow_of_[size_t(iw) * k + kj];
              if (ow < 0) continue;
              const float* wv = wt_.data() + ((size_t(ci) * k + ki) * k + kj) * O;
              for (int o = 0; o < O; ++o) yr[size_t(o) * P + size_t(oh) * OW + ow] += v * wv[o];
            }
          }
        }
        continue;
      }
      std::fill(tmp_.begin(), tmp_.end(), 0.f);
      for (int ci = 0; ci < Ci; ++ci)
        for (int ih = 0; ih < H; ++ih)
          for (int iw = 0; iw < W; ++iw) {
            const float v = xr[(size_t(ci) * H + ih) * W + iw];
            if (v == 0) continue;
            for (int ki = 0; ki < k; ++ki) {
              const int oh = oh_of_[size_t(ih) * k + ki];
              if (oh < 0) continue;
              for (int kj = 0; kj < k; ++kj) {
                const int ow = ow_of_[size_t(iw) * k + kj];
                if (ow < 0) continue;
                float* t = tmp_.data() + (size_t(oh) * OW + ow) * O;
                const float* wv = wt_.data() + ((size_t(ci) * k + ki) * k + kj) * O;
                for (int o = 0; o < O; ++o) t[o] += v * wv[o];
              }
            }
          }
      for (size_t q = 0; q < P; ++q)
        for (int o = 0; o < O; ++o) yr[size_t(o) * P + q] = tmp_[q * O + o];
    }
    return true;
  }

  // Dense of the identity rows: row e_d is column d of the weights.
  void dense_basis(ForwardCall& c) const {
    auto& Dn = static_cast<Dense&>(c.layer);
    const Tensor& x = *c.in[0];
    Tensor& y = c.out;
    const int R = x.batch(), nA = std::min(n_affine, R), O = Dn.out_features, I = Dn.in_features;
    Tensor ya = y.slice(0, nA);
    Dn.dense(x.slice(0, nA), Dn.weight.value, nullptr, ya);
    if (Dn.has_bias) add_bias(ya, Dn.bias.value.data(), O);
    const float* w = Dn.weight.value.data();
    for (int r = nA; r < R; ++r) {
      const int d = basis_k0 + r - nA;
      float* yr = y.data() + size_t(r) * O;
      for (int o = 0; o < O; ++o) yr[o] = w[size_t(o) * I + d];
    }
  }

  void batchnorm(ForwardCall& c) const {
    auto& B = static_cast<BatchNorm2d&>(c.layer);
    std::vector<float> scale, shift;
    B.eval_affine(scale, shift);
    const Tensor& x = *c.in[0];
    const int R = x.batch(), C = x.dim(1);
    const size_t per = x.sample_size() / C;
    for (int r = 0; r < R; ++r)
      for (int ch = 0; ch < C; ++ch) {
        const float* p = x.data() + (size_t(r) * C + ch) * per;
        float* q = c.out.data() + (size_t(r) * C + ch) * per;
        const float s = scale[ch], t = r < n_affine ? shift[ch] : 0.f;
        for (size_t e = 0; e < per; ++e) q[e] = p[e] * s + t;
      }
  }

  void relu(ForwardCall& c, int li, float slope) {
    const Tensor& x = *c.in[0];
    LayerConfig& L = cfg[li];
    const size_t n = x.sample_size();
    const int R = x.batch();
    if (!frozen) {
      L.on.resize(n);
      int act = 0;
      for (size_t i = 0; i < n; ++i) act += (L.on[i] = x[i] > 0);
      L.active = act;
      L.units = int(n);
    }
    if (on_relu) on_relu(li, x);
    mult_.resize(n);  // 1 on, the slope off: one multiply per element, which vectorizes
    for (size_t i = 0; i < n; ++i) mult_[i] = L.on[i] ? 1.f : slope;
    const float* m = mult_.data();
    for (int r = 0; r < R; ++r) {
      const float* xs = x.data() + size_t(r) * n;
      float* y = c.out.data() + size_t(r) * n;
      for (size_t i = 0; i < n; ++i) y[i] = xs[i] * m[i];
    }
  }

  void maxpool(ForwardCall& c, int li) {
    auto& P = static_cast<MaxPool2d&>(c.layer);
    const Tensor& x = *c.in[0];
    Tensor& y = c.out;
    LayerConfig& L = cfg[li];
    const int R = x.batch(), C = x.dim(1), H = x.dim(2), W = x.dim(3), OW = y.dim(3);
    const int HW = H * W, OHW = y.dim(2) * OW;
    if (!frozen) {
      // The layer picks the winners of row 0 (ties: lowest index).
      L.argmax.resize(size_t(C) * OHW);
      P.winners(x.sample(0), L.argmax.data());
      L.units = C * OHW;
      int ties = 0;
      for (int ch = 0; ch < C; ++ch) {
        const float* xp = x.data() + size_t(ch) * HW;
        for (int o = 0; o < OHW; ++o) {
          const int w = L.argmax[size_t(ch) * OHW + o];
          bool tie = false;
          for_window(P, H, W, OW, o, [&](int e) { tie |= e != w && xp[e] == xp[w]; });
          ties += tie;
        }
      }
      L.ties = ties;
    }
    if (on_pool) on_pool(li, x);
    const int32_t* am = L.argmax.data();
    for (int r = 0; r < R; ++r)
      for (int ch = 0; ch < C; ++ch) {
        const float* xp = x.data() + (size_t(r) * C + ch) * HW;
        float* yp = y.data() + (size_t(r) * C + ch) * OHW;
        const int32_t* a = am + size_t(ch) * OHW;
        for (int o = 0; o < OHW; ++o) yp[o] = xp[a[o]];
      }
  }

  Configuration configuration() const {
    Configuration c;
    c.layers = cfg;
    c.id = id();
    return c;
  }
};

void check_one(const Graph& g, const Tensor& x1, const char* what) {
  if (x1.rank() != g.input_shape().rank + 1 || x1.batch() != 1 || x1.shape().sample() != g.input_shape())
    shape_error(what, Shape::batch_of(1, g.input_shape()), x1.shape());
}

// Per sample: floats of every node's output (what the graph stores per batch row).
size_t floats_per_row(const Graph& g) {
  size_t s = g.input_shape().numel();
  for (int i = 0; i < g.size(); ++i) s += g.shape(i, 1).numel();
  return s;
}

// A max-pool window's (winner, other) input pairs, flat per sample.
struct PoolPair {
  int window, win, other;
};
std::vector<PoolPair> pool_pairs(const Graph& g, const LayerConfig& L) {
  auto& P = static_cast<const MaxPool2d&>(g.layer(L.node));
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

// Copies of a graph for region()'s extra threads, kept between calls: a fresh copy would
// allocate (and page-fault in) all its activation buffers on every call. A copy is taken out while
// in use, and its weights are refreshed from the original each time.
class Replicas {
 public:
  Graph take(const Graph& g) {
    const std::string k = key(g);
    {
      std::lock_guard<std::mutex> l(m_);
      for (size_t i = 0; i < kept_.size(); ++i)
        if (kept_[i].first == k) {
          Graph c = std::move(kept_[i].second);
          kept_.erase(kept_.begin() + long(i));
          auto src = g.named_params(), dst = c.named_params();
          for (size_t j = 0; j < src.size(); ++j) dst[j].second->value.copy_from(src[j].second->value);
          return c;
        }
    }
    return clone(g);
  }
  void give(const Graph& g, Graph&& c) {
    std::lock_guard<std::mutex> l(m_);
    if (kept_.size() >= 8) kept_.erase(kept_.begin());
    kept_.emplace_back(key(g), std::move(c));
  }

 private:
  static std::string key(const Graph& g) { return architecture_json(g).dump(); }  // every hyper-parameter
  std::mutex m_;
  std::vector<std::pair<std::string, Graph>> kept_;
};
Replicas& replicas() {
  static Replicas* r = new Replicas;  // never destroyed: outlives every caller
  return *r;
}

Tensor with_batch(const Graph& g, int rows) { return Tensor(Shape::batch_of(rows, g.input_shape())); }

}  // namespace

void check_piecewise_linear(const Graph& g) {
  for (int i = 0; i < g.size(); ++i) {
    const Layer& L = g.layer(i);
    if (!L.piecewise_linear())
      throw std::invalid_argument("OpenBox needs a piecewise-linear network: layer '" + L.name + "' (" + L.kind() +
                                  ") is smooth, so the network has no linear regions");
    if (!kKnown.count(L.kind()))
      throw std::invalid_argument("OpenBox cannot freeze layer '" + L.name + "' (" + L.kind() +
                                  ") into an affine map");
  }
}

std::string hex_id(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}
std::string Configuration::hex() const { return hex_id(id); }

std::vector<uint64_t> configuration_ids(Graph& g, const Tensor& x, std::vector<int>* labels) {
  check_piecewise_linear(g);
  std::vector<int> nodes;
  for (int i = 0; i < g.size(); ++i) {
    const std::string k = g.layer(i).kind();
    if (k == "relu" || k == "leakyrelu" || k == "maxpool") nodes.push_back(i);
  }
  const int N = x.batch();
  std::vector<uint64_t> ids(N);
  std::vector<std::vector<int32_t>> winners(nodes.size());  // per max-pool node, for the chunk
  const int chunk = 256;
  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int nb = std::min(chunk, N - n0);
    Tensor xb = x.slice(n0, n0 + nb);
    const Tensor& y = g.forward(xb, Mode::eval);
    if (labels) {
      const int K = g.classes();
      labels->resize(N);
      for (int n = 0; n < nb; ++n) (*labels)[n0 + n] = int(std::max_element(y.data() + n * K, y.data() + (n + 1) * K) - (y.data() + n * K));
    }
    for (size_t li = 0; li < nodes.size(); ++li)
      if (g.layer(nodes[li]).kind() == "maxpool") {
        winners[li].resize(g.activation(nodes[li]).size());
        static_cast<const MaxPool2d&>(g.layer(nodes[li])).winners(g.activation(g.node(nodes[li]).inputs[0]), winners[li].data());
      }
    for (int n = 0; n < nb; ++n) {
      Hasher H;
      for (size_t li = 0; li < nodes.size(); ++li) {
        const int i = nodes[li];
        if (g.layer(i).kind() == "maxpool") {
          const size_t per = g.shape(i, 1).numel();
          mix_pool(H, int(li), winners[li].data() + size_t(n) * per, per);
        } else {
          const Tensor& pre = g.activation(g.node(i).inputs[0]);
          const size_t per = pre.sample_size();
          mix_relu_pre(H, int(li), pre.data() + size_t(n) * per, per);
        }
      }
      ids[n0 + n] = H.h;
    }
  }
  return ids;
}

Configuration configuration(Graph& g, const Tensor& x1) {
  check_one(g, x1, "openbox input");
  Prop p(g);
  p.run(x1);
  return p.configuration();
}

std::vector<double> Region::affine_logits(const float* z) const {
  const int K = W.dim(0), D = W.dim(1);
  std::vector<double> out(K);
  for (int k = 0; k < K; ++k) {
    double s = b[k];
    const float* w = W.data() + size_t(k) * D;
    for (int d = 0; d < D; ++d) s += double(w[d]) * z[d];
    out[k] = s;
  }
  return out;
}

Region region(Graph& g, const Tensor& x1, const RegionOptions& opt) {
  check_one(g, x1, "openbox input");
  Prop p(g);
  p.n_affine = 2;  // row 0: x; row 1: the zero input, whose output under the frozen configuration is b_x
  const int D = int(x1.size()), K = g.classes();
  const size_t per_row = floats_per_row(g);
  const int B = int(std::clamp<size_t>(opt.budget_floats / std::max<size_t>(per_row, 1), 1, size_t(D)));

  Region R;
  const int nl = int(p.cfg.size());
  // Per config layer: value at x and at 0 (for c), squared gradient norms, and optionally the
  // gradients themselves (rows of A before the sign).
  std::vector<std::vector<float>> z0(nl), zb(nl), J(nl);
  std::vector<std::vector<PoolPair>> pairs(nl);

  // 1. x and 0 alone: the configuration at x, and every constraint's value at x and at 0.
  p.on_relu = [&](int li, const Tensor& pre) {
    const size_t n = pre.sample_size();
    z0[li].assign(pre.data(), pre.data() + n);
    zb[li].assign(pre.data() + n, pre.data() + 2 * n);
  };
  p.on_pool = [&](int li, const Tensor& in) {
    const size_t n = in.sample_size();
    pairs[li] = pool_pairs(g, p.cfg[li]);
    const size_t m = pairs[li].size();
    z0[li].resize(m);
    zb[li].resize(m);
    for (size_t j = 0; j < m; ++j) {
      z0[li][j] = in[pairs[li][j].win] - in[pairs[li][j].other];
      zb[li][j] = in[n + pairs[li][j].win] - in[n + pairs[li][j].other];
    }
  };
  R.W = Tensor({K, D});
  R.b = Tensor({K});
  R.logits = Tensor({K});
  {
    Tensor pair = with_batch(g, 2);
    pair.fill(0.f);
    std::memcpy(pair.data(), x1.data(), size_t(D) * sizeof(float));
    const Tensor& out = p.run(pair);
    std::memcpy(R.logits.data(), out.data(), K * sizeof(float));
    std::memcpy(R.b.data(), out.data() + K, K * sizeof(float));
  }
  if (opt.polytope)
    for (int li = 0; li < nl; ++li) J[li].assign(z0[li].size() * D, 0.f);

  // 2. The unit directions e_d through the frozen configuration, in chunks of B: their images are
  // the columns of W_x and of every constraint's gradient. The directions are split across
  // threads, each with its own copy of the graph and its own sums of squared gradients (added in
  // thread order, so a thread count always gives the same result).
  const int T = in_parallel() ? 1 : std::clamp((D + B - 1) / B, 1, threads());
  std::vector<std::vector<std::vector<double>>> norm2(T, std::vector<std::vector<double>>(nl));
  std::vector<Graph> copies;
  for (int t = 1; t < T; ++t) copies.push_back(replicas().take(g));
  std::optional<BlasSerial> serial;
  if (T > 1) serial.emplace();
  parallel(T, [&](int t) {
    Prop q(t == 0 ? g : copies[t - 1]);
    q.cfg = p.cfg;
    q.frozen = true;
    q.n_affine = 0;  // every row is a direction: no bias
    std::vector<std::vector<double>>& n2 = norm2[t];
    for (int li = 0; li < nl; ++li) n2[li].assign(z0[li].size(), 0.0);
    std::vector<float> acc;  // per chunk, in float (vectorizes); summed into n2 in double
    int k0 = 0;
    q.on_relu = [&](int li, const Tensor& pre) {
      const size_t n = pre.sample_size();
      acc.assign(n, 0.f);
      float* s = acc.data();
      for (int r = 0; r < pre.batch(); ++r) {
        const float* v = pre.data() + size_t(r) * n;
        for (size_t i = 0; i < n; ++i) s[i] += v[i] * v[i];
        if (opt.polytope)
          for (size_t i = 0; i < n; ++i) J[li][i * D + k0 + r] = v[i];
      }
      for (size_t i = 0; i < n; ++i) n2[li][i] += s[i];
    };
    q.on_pool = [&](int li, const Tensor& in) {
      const size_t n = in.sample_size();
      const auto& pp = pairs[li];
      acc.assign(pp.size(), 0.f);
      float* s = acc.data();
      for (int r = 0; r < in.batch(); ++r) {
        const float* v = in.data() + size_t(r) * n;
        for (size_t j = 0; j < pp.size(); ++j) {
          const float d = v[pp[j].win] - v[pp[j].other];
          s[j] += d * d;
          if (opt.polytope) J[li][j * D + k0 + r] = d;
        }
      }
      for (size_t j = 0; j < pp.size(); ++j) n2[li][j] += s[j];
    };
    int lo, hi;
    part(t, T, D, lo, hi);
    Tensor batch;
    for (k0 = lo; k0 < hi;) {
      const int nb = std::min(B, hi - k0);
      if (batch.empty() || batch.batch() != nb) batch = with_batch(g, nb);
      batch.fill(0.f);
      for (int r = 0; r < nb; ++r) batch[size_t(r) * D + k0 + r] = 1.f;
      q.basis_k0 = k0;
      const Tensor& out = q.run(batch);
      for (int r = 0; r < nb; ++r)
        for (int k = 0; k < K; ++k) R.W[size_t(k) * D + k0 + r] = out[size_t(r) * K + k];
      k0 += nb;
    }
  });
  for (int t = 1; t < T; ++t)
    for (int li = 0; li < nl; ++li)
      for (size_t j = 0; j < norm2[0][li].size(); ++j) norm2[0][li][j] += norm2[t][li][j];
  for (Graph& c : copies) replicas().give(g, std::move(c));
  R.config = p.configuration();

  // Constraints: keep those with a nonzero gradient (the others are constant in the region and
  // hold at x, hence everywhere in it).
  std::vector<std::pair<int, size_t>> rows;  // (layer, item) for A
  for (int li = 0; li < nl; ++li) {
    const LayerConfig& L = p.cfg[li];
    const bool pool = L.kind == "maxpool";
    for (size_t j = 0; j < norm2[0][li].size(); ++j) {
      if (norm2[0][li][j] == 0) {
        if (pool) R.degenerate++;
        continue;
      }
      Constraint k;
      k.node = L.node;
      k.norm = std::sqrt(norm2[0][li][j]);
      if (pool) {
        k.window = pairs[li][j].window;
        k.index = pairs[li][j].win;
        k.other = pairs[li][j].other;
        k.slack = z0[li][j] + 0.0;
      } else {
        k.index = int(j);
        k.on = L.on[j];
        k.slack = (k.on ? z0[li][j] : -double(z0[li][j])) + 0.0;  // + 0.0: no "-0"
      }
      if (k.slack == 0) R.through_x++;
      if (k.distance() < R.nearest_distance) {
        R.nearest_distance = k.distance();
        R.nearest = k;
      }
      if (k.slack > 0 && k.distance() < R.nearest_beyond_distance) {
        R.nearest_beyond_distance = k.distance();
        R.nearest_beyond = k;
      }
      R.constraint_count++;
      if (opt.keep_constraints || opt.polytope) R.constraints.push_back(k);
      if (opt.polytope) rows.emplace_back(li, j);
    }
  }
  if (opt.polytope) {
    R.box_constraints = opt.box ? 2 * D : 0;
    const int M = int(rows.size()) + R.box_constraints;
    R.A = Tensor({std::max(M, 1), D});
    R.c = Tensor({std::max(M, 1)});
    for (int m = 0; m < int(rows.size()); ++m) {
      auto [li, j] = rows[m];
      // on (or pool winner): J z + beta >= 0  ->  -J z <= beta; off: J z + beta <= 0  ->  J z <= -beta.
      const bool keep_positive = p.cfg[li].kind == "maxpool" || p.cfg[li].on[j];
      const float sgn = keep_positive ? -1.f : 1.f;
      const float* src = J[li].data() + j * D;
      float* dst = R.A.data() + size_t(m) * D;
      for (int d = 0; d < D; ++d) dst[d] = sgn * src[d];
      R.c[m] = keep_positive ? zb[li][j] : -zb[li][j];
    }
    for (int d = 0; d < R.box_constraints / 2; ++d) {
      const size_t m0 = rows.size() + 2 * d;
      R.A[m0 * D + d] = -1.f;
      R.c[m0] = -opt.lo;
      R.A[(m0 + 1) * D + d] = 1.f;
      R.c[m0 + 1] = opt.hi;
    }
    if (!opt.keep_constraints) {
      // The list was only needed to build A; drop it as asked.
      R.constraints.clear();
    }
  }
  return R;
}

std::string describe(const Graph& g, const Constraint& k) {
  if (k.node < 0) return "none";
  std::string s = g.layer(k.node).name + "[" + std::to_string(k.index);
  if (k.other >= 0) s += ">=" + std::to_string(k.other);
  return s + "]";
}

std::vector<float> feature_difference(const Region& r, int c, int c2) {
  const int K = r.W.dim(0), D = r.W.dim(1);
  if (c < 0 || c >= K || c2 < 0 || c2 >= K)
    throw std::invalid_argument("class pair " + std::to_string(c) + "," + std::to_string(c2) + " out of range [0," +
                                std::to_string(K) + ")");
  std::vector<float> v(D);
  for (int d = 0; d < D; ++d) v[d] = r.W[size_t(c) * D + d] - r.W[size_t(c2) * D + d];
  return v;
}

// ---- segment walk ----------------------------------------------------------------------------

namespace {

// Evaluates [a + t dir; dir] and reports, per constraint, its value and slope in t.
struct LineProbe {
  Prop& p;
  const Tensor& a;
  const Tensor& dir;
  Tensor batch;
  std::vector<std::vector<PoolPair>> pairs;

  LineProbe(Prop& prop, const Tensor& a_, const Tensor& d_) : p(prop), a(a_), dir(d_) {
    batch = with_batch(p.g, 2);
    pairs.resize(p.cfg.size());
  }
  // Runs at t; `visit(value, slope)` is called for every constraint when set.
  template <class F>
  const Tensor& run(double t, F&& visit) {
    const size_t D = a.size();
    for (size_t d = 0; d < D; ++d) {
      batch[d] = float(double(a[d]) + t * double(dir[d]));
      batch[D + d] = dir[d];
    }
    p.on_relu = [&](int li, const Tensor& pre) {
      const size_t n = pre.sample_size();
      const uint8_t* on = p.cfg[li].on.data();
      for (size_t i = 0; i < n; ++i) {
        const double z = pre[i], dz = pre[n + i];
        if (on[i])
          visit(z, dz);
        else
          visit(-z, -dz);
      }
    };
    p.on_pool = [&](int li, const Tensor& in) {
      const size_t n = in.sample_size();
      pairs[li] = pool_pairs(p.g, p.cfg[li]);
      for (const PoolPair& q : pairs[li])
        visit(double(in[q.win]) - in[q.other], double(in[n + q.win]) - in[n + q.other]);
    };
    const Tensor& out = p.run(batch);
    p.on_relu = nullptr;
    p.on_pool = nullptr;
    return out;
  }
};

int argmax_of(const float* v, int K) { return int(std::max_element(v, v + K) - v); }

uint64_t hash_floats(const float* v, int K) {
  Hasher H;
  for (int k = 0; k < K; ++k) {
    float f = v[k] == 0.f ? 0.f : v[k];  // -0 and +0 are the same map
    uint32_t u;
    std::memcpy(&u, &f, 4);
    H.u32(u);
  }
  return H.h;
}

}  // namespace

Walk walk(Graph& g, const Tensor& a, const Tensor& b, const WalkOptions& opt) {
  check_one(g, a, "segment start");
  check_one(g, b, "segment end");
  Prop p(g);
  const size_t D = a.size();
  const int K = g.classes();
  Tensor dir = with_batch(g, 1);
  for (size_t d = 0; d < D; ++d) dir[d] = b[d] - a[d];
  LineProbe probe(p, a, dir);
  Walk w;
  std::unordered_map<uint64_t, int> maps;
  std::unordered_set<uint64_t> ids;
  std::vector<float> l(K), s(K);
  int last_label = -1;
  double t = 0;
  while (t < 1 && int(w.pieces.size()) < opt.max_pieces) {
    // Probe just past the piece's start: a crossing lies exactly at t, and a (real image) may lie
    // exactly on boundaries (z = 0 for a blank background), where the configuration of t = 0
    // itself is not the one of the piece that follows.
    double tp = std::min(t + opt.eps, 0.5 * (t + 1));
    double tn = 1;
    probe.run(tp, [&](double val, double slope) {
      // val >= 0 in the region; it leaves the region when val + (t - tp) slope reaches 0.
      if (slope < 0) {
        const double tc = tp + val / -slope;
        if (tc > tp && tc < tn) tn = tc;
      }
    });
    const uint64_t probe_id = p.id();
    tn = std::max(tn, std::min(1.0, tp + opt.eps));  // progress even on a degenerate probe
    // The piece's own configuration, map and class come from its midpoint.
    const double mid = 0.5 * (t + tn);
    const Tensor& out = probe.run(mid, [](double, double) {});
    Piece pc{t, tn, p.id(), -1, -1};
    std::memcpy(l.data(), out.data(), K * sizeof(float));
    std::memcpy(s.data(), out.data() + K, K * sizeof(float));
    if (pc.id != probe_id) w.degenerate++;
    pc.label = argmax_of(l.data(), K);
    const uint64_t mh = hash_floats(s.data(), K);
    auto it = maps.find(mh);
    if (it == maps.end()) it = maps.emplace(mh, int(maps.size())).first;
    pc.map = it->second;
    // Class changes inside the piece: follow the upper envelope of the K affine logits in t.
    {
      auto at = [&](int k, double tt) { return double(l[k]) + (tt - mid) * s[k]; };
      double tt = t;
      int cur = 0;
      for (int k = 1; k < K; ++k)
        if (at(k, tt) > at(cur, tt) || (at(k, tt) == at(cur, tt) && s[k] > s[cur])) cur = k;
      if (last_label >= 0 && cur != last_label) w.decision_changes.push_back(t);
      for (;;) {
        double best = tn;
        int nxt = -1;
        for (int k = 0; k < K; ++k) {
          if (k == cur || s[k] <= s[cur]) continue;
          const double tc = tt + (at(cur, tt) - at(k, tt)) / (double(s[k]) - s[cur]);
          if (tc > tt && tc < best) best = tc, nxt = k;
        }
        if (nxt < 0) break;
        w.decision_changes.push_back(best);
        tt = best;
        cur = nxt;
      }
      last_label = cur;
    }
    const size_t n = w.pieces.size();
    if (n && w.pieces.back().id == pc.id) {
      w.pieces.back().t1 = tn;  // the same region seen twice around a degenerate probe
    } else if (n >= 2 && w.pieces[n - 2].id == pc.id && w.pieces[n - 1].t1 - w.pieces[n - 1].t0 < 10 * opt.eps) {
      // A, B, A with B a few eps wide: float32 noise flipping a neuron whose pre-activation
      // barely moves along the segment, not a region (regions are convex: A cannot come back).
      w.pieces.pop_back();
      w.pieces.back().t1 = tn;
      w.degenerate++;
    } else {
      w.pieces.push_back(pc);
    }
    t = tn;
  }
  for (auto& q : w.pieces) ids.insert(q.id);
  w.regions = int(ids.size());
  std::set<int> used;
  for (auto& pc : w.pieces) used.insert(pc.map);
  w.affine_maps = int(used.size());
  return w;
}

// ---- 2-D slices ----------------------------------------------------------------------------------

Plane plane_through(const Tensor& p0, const Tensor& p1, const Tensor& p2, double margin) {
  if (p0.shape() != p1.shape() || p0.shape() != p2.shape()) shape_error("plane point", p0.shape(), p1.shape());
  Plane P;
  P.origin = p0.clone();
  P.d1 = p0.clone();
  P.d2 = p0.clone();
  for (size_t i = 0; i < p0.size(); ++i) {
    P.d1[i] = p1[i] - p0[i];
    P.d2[i] = p2[i] - p0[i];
  }
  P.u0 = P.v0 = -margin;
  P.u1 = P.v1 = 1 + margin;
  return P;
}

Plane input_plane(double u0, double u1, double v0, double v1) {
  Plane P;
  P.origin = Tensor({1, 2});
  P.d1 = Tensor::from({1, 2}, {1.f, 0.f});
  P.d2 = Tensor::from({1, 2}, {0.f, 1.f});
  P.u0 = u0, P.u1 = u1, P.v0 = v0, P.v1 = v1;
  return P;
}

double Polygon::area() const {
  double s = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    size_t j = (i + 1) % u.size();
    s += u[i] * v[j] - u[j] * v[i];
  }
  return 0.5 * s;
}

namespace {

struct HalfPlane {
  double a, b, c;  // inside: a u + b v + c >= 0
};

// Clips a convex polygon (with one label per edge i -> i+1) by a half-plane; the new edge gets `label`.
void clip(std::vector<double>& u, std::vector<double>& v, std::vector<int>& e, const HalfPlane& h, int label) {
  const size_t n = u.size();
  std::vector<double> f(n);
  bool any_out = false;
  for (size_t i = 0; i < n; ++i) any_out |= (f[i] = h.a * u[i] + h.b * v[i] + h.c) < 0;
  if (!any_out) return;
  std::vector<double> nu, nv;
  std::vector<int> ne;
  for (size_t i = 0; i < n; ++i) {
    const size_t j = (i + 1) % n;
    auto cross = [&](int lab) {
      const double s = f[i] / (f[i] - f[j]);
      nu.push_back(u[i] + s * (u[j] - u[i]));
      nv.push_back(v[i] + s * (v[j] - v[i]));
      ne.push_back(lab);
    };
    if (f[i] >= 0) {
      nu.push_back(u[i]), nv.push_back(v[i]), ne.push_back(e[i]);
      if (f[j] < 0) cross(label);
    } else if (f[j] >= 0) {
      cross(e[i]);
    }
  }
  u.swap(nu), v.swap(nv), e.swap(ne);
}

}  // namespace

SliceRegions slice_regions(Graph& g, const Plane& P, double eps, int max_regions) {
  Prop p(g);
  const size_t D = P.origin.size();
  if (P.origin.shape() != Shape::batch_of(1, g.input_shape()) || P.d1.shape() != P.origin.shape() ||
      P.d2.shape() != P.origin.shape())
    shape_error("plane origin", Shape::batch_of(1, g.input_shape()), P.origin.shape());
  const int K = g.classes();
  Tensor batch = with_batch(g, 3);
  const double step = eps * std::max(P.u1 - P.u0, P.v1 - P.v0);
  std::vector<HalfPlane> hp;
  std::vector<std::vector<PoolPair>> pairs(p.cfg.size());
  auto add = [&](double val, double du, double dv, double u, double v) {
    hp.push_back({du, dv, val - du * u - dv * v});
  };
  SliceRegions S;
  std::unordered_set<uint64_t> seen;
  // Start off-center: the center of a plane through three inputs is (p1 + p2) / 2, which can lie
  // exactly on many boundaries (pixels blank in both), where the polygon degenerates to a point.
  std::deque<std::pair<double, double>> queue{
      {P.u0 + 0.5137 * (P.u1 - P.u0), P.v0 + 0.4771 * (P.v1 - P.v0)}};
  while (!queue.empty() && int(S.regions.size()) < max_regions) {
    auto [u, v] = queue.front();
    queue.pop_front();
    for (size_t d = 0; d < D; ++d) {
      batch[d] = float(P.origin[d] + u * double(P.d1[d]) + v * double(P.d2[d]));
      batch[D + d] = P.d1[d];
      batch[2 * D + d] = P.d2[d];
    }
    hp.clear();
    p.on_relu = [&](int li, const Tensor& pre) {
      const size_t n = pre.sample_size();
      const uint8_t* on = p.cfg[li].on.data();
      for (size_t i = 0; i < n; ++i) {
        const double sg = on[i] ? 1 : -1;
        add(sg * pre[i], sg * pre[n + i], sg * pre[2 * n + i], u, v);
      }
    };
    p.on_pool = [&](int li, const Tensor& in) {
      const size_t n = in.sample_size();
      pairs[li] = pool_pairs(g, p.cfg[li]);
      for (const PoolPair& q : pairs[li])
        add(double(in[q.win]) - in[q.other], double(in[n + q.win]) - in[n + q.other],
            double(in[2 * n + q.win]) - in[2 * n + q.other], u, v);
    };
    const Tensor& out = p.run(batch);
    S.probes++;
    const uint64_t id = p.id();
    if (!seen.insert(id).second) continue;
    Polygon poly;
    poly.id = id;
    poly.u = {P.u0, P.u1, P.u1, P.u0};
    poly.v = {P.v0, P.v0, P.v1, P.v1};
    std::vector<int> edges = {-1, -1, -1, -1};
    for (size_t k = 0; k < hp.size() && poly.u.size() >= 3; ++k)
      if (hp[k].a != 0 || hp[k].b != 0) clip(poly.u, poly.v, edges, hp[k], int(k));
    poly.l0.resize(K), poly.lu.resize(K), poly.lv.resize(K);
    for (int k = 0; k < K; ++k) {
      poly.lu[k] = out[K + k];
      poly.lv[k] = out[2 * K + k];
      poly.l0[k] = out[k] - poly.lu[k] * u - poly.lv[k] * v;
    }
    // Cross every edge that a constraint made, a small step past its midpoint.
    const size_t n = poly.u.size();
    for (size_t i = 0; i < n && n >= 3; ++i) {
      if (edges[i] < 0) continue;
      const size_t j = (i + 1) % n;
      const HalfPlane& h = hp[edges[i]];
      const double len = std::hypot(h.a, h.b);
      const double mu = 0.5 * (poly.u[i] + poly.u[j]) - step * h.a / len;
      const double mv = 0.5 * (poly.v[i] + poly.v[j]) - step * h.b / len;
      if (mu <= P.u0 || mu >= P.u1 || mv <= P.v0 || mv >= P.v1) continue;
      queue.emplace_back(mu, mv);
    }
    S.regions.push_back(std::move(poly));
  }
  p.on_relu = nullptr;
  p.on_pool = nullptr;
  S.truncated = !queue.empty();
  return S;
}

void rasterize(const SliceRegions& s, const Plane& p, int w, int h, std::vector<int>& region_of,
               std::vector<int>& label_of) {
  region_of.assign(size_t(w) * h, -1);
  label_of.assign(size_t(w) * h, -1);
  const double du = (p.u1 - p.u0) / w, dv = (p.v1 - p.v0) / h;
  for (size_t r = 0; r < s.regions.size(); ++r) {
    const Polygon& q = s.regions[r];
    const size_t n = q.u.size();
    if (n < 3) continue;
    const double umin = *std::min_element(q.u.begin(), q.u.end()), umax = *std::max_element(q.u.begin(), q.u.end());
    const double vmin = *std::min_element(q.v.begin(), q.v.end()), vmax = *std::max_element(q.v.begin(), q.v.end());
    const int i0 = std::max(0, int(std::floor((umin - p.u0) / du - 0.5))), i1 = std::min(w - 1, int((umax - p.u0) / du));
    const int j0 = std::max(0, int(std::floor((vmin - p.v0) / dv - 0.5))), j1 = std::min(h - 1, int((vmax - p.v0) / dv));
    const int K = int(q.l0.size());
    for (int j = j0; j <= j1; ++j)
      for (int i = i0; i <= i1; ++i) {
        const double u = p.u0 + (i + 0.5) * du, v = p.v0 + (j + 0.5) * dv;
        bool in = true;
        for (size_t a = 0; a < n && in; ++a) {
          const size_t b = (a + 1) % n;
          in = (q.u[b] - q.u[a]) * (v - q.v[a]) - (q.v[b] - q.v[a]) * (u - q.u[a]) >= 0;
        }
        if (!in) continue;
        const size_t px = size_t(h - 1 - j) * w + i;  // row 0 is the top (v1)
        region_of[px] = int(r);
        int best = 0;
        double bv = -INFINITY;
        for (int k = 0; k < K; ++k) {
          const double l = q.l0[k] + u * q.lu[k] + v * q.lv[k];
          if (l > bv) bv = l, best = k;
        }
        label_of[px] = best;
      }
  }
}

// ---- statistics and timing --------------------------------------------------------------------------

ConfigStats config_stats(Graph& g, const Tensor& x, int batch, int top) {
  ConfigStats st;
  std::unordered_map<uint64_t, int> count;
  for (int n0 = 0; n0 < x.batch(); n0 += batch) {
    for (uint64_t id : configuration_ids(g, x.slice(n0, std::min(x.batch(), n0 + batch)))) count[id]++;
  }
  st.inputs = x.batch();
  st.distinct = int(count.size());
  std::vector<std::pair<uint64_t, int>> v(count.begin(), count.end());
  std::sort(v.begin(), v.end(), [](auto& l, auto& r) { return l.second != r.second ? l.second > r.second : l.first < r.first; });
  for (auto& [id, c] : v) {
    st.largest = std::max(st.largest, c);
    if (c == 1) st.singletons++;
    else st.shared_inputs += c;
  }
  v.resize(std::min<size_t>(v.size(), size_t(top)));
  st.top = v;
  return st;
}

Timing time_openbox(Graph& g, const Tensor& x, int reps, int walks) {
  using clock = std::chrono::steady_clock;
  Timing T;
  RegionOptions o;
  o.keep_constraints = false;
  region(g, x.sample(0), o);  // warm up: workspace and activation buffers
  auto t0 = clock::now();
  for (int r = 0; r < reps; ++r) region(g, x.sample(r % x.batch()), o);
  T.region_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count() / std::max(reps, 1);
  if (x.batch() >= 2 && walks > 0) {
    double pieces = 0;
    t0 = clock::now();
    for (int r = 0; r < walks; ++r)
      pieces += double(walk(g, x.sample(r % x.batch()), x.sample((r + 1) % x.batch())).pieces.size());
    T.walk_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count() / walks;
    T.pieces_per_walk = pieces / walks;
  }
  return T;
}

}  // namespace gb::openbox
