// LRP rules as backward rules over the graph (see lrp_rules.h). Every Dense/Conv rule runs the
// layer's own convolution / matrix product with modified weights, several weight sets stacked
// along the output channels so that one im2col and one GEMM serve them all.
#include "explain/attribution/lrp_rules.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "engine/layers.h"
#include "explain/attribution/canonizer.h"
#include "explain/attribution/method.h"

namespace gb::explain {

namespace {

// r / (z + ε·sign(z)) with sign(0) = +1 (Zennit's stabilizer); ε = 0: a safe divide, 0 where z = 0.
inline float stab_div(float r, float z, float eps) {
  if (eps == 0.f) return z == 0.f ? 0.f : r / z;
  return r / (z + (z >= 0.f ? eps : -eps));
}

void mul_inplace(Tensor& t, const Tensor& a) {
  float* d = t.data();
  const float* x = a.data();
  for (size_t i = 0; i < t.size(); ++i) d[i] *= x[i];
}

template <class F>
Tensor map(const Tensor& w, F f) {
  Tensor out(w.shape());
  for (size_t i = 0; i < w.size(); ++i) out[i] = f(w[i]);
  return out;
}

// [A; B] along dim 0 (the output channels of a weight tensor).
Tensor stack(const Tensor& a, const Tensor& b) {
  Shape s = a.shape();
  s.d[0] *= 2;
  Tensor out(s);
  std::copy(a.data(), a.data() + a.size(), out.data());
  std::copy(b.data(), b.data() + b.size(), out.data() + a.size());
  return out;
}

// A Conv2d or Dense seen as a linear map x -> x * W that can run m weight sets at once (W holds
// m·O output channels), so the shared input is unfolded once. The layer's own core operations
// do the work, through a parameter-less copy of its geometry with m·O outputs.
struct Lin {
  const Conv2d* cv = nullptr;
  const Dense* dn = nullptr;
  int O = 0;

  explicit Lin(const Layer& L) {
    cv = dynamic_cast<const Conv2d*>(&L);
    dn = dynamic_cast<const Dense*>(&L);
    if (!cv && !dn) throw std::invalid_argument("LRP linear rule on layer '" + L.name + "' (" + L.kind() + "), not conv/dense");
    O = cv ? cv->out_ch : dn->out_features;
  }
  const Tensor& weight() const { return cv ? cv->weight.value : dn->weight.value; }
  std::vector<float> bias() const {
    bool has = cv ? cv->has_bias : dn->has_bias;
    const Tensor& b = cv ? cv->bias.value : dn->bias.value;
    return has ? std::vector<float>(b.data(), b.data() + b.size()) : std::vector<float>(O, 0.f);
  }
  // y = x * W (+ b), W stacked m deep; y is [N, m·O, OH, OW] or [N, m·O].
  void fwd(const Tensor& x, const Tensor& W, const float* b, Tensor& y, Workspace& ws, int m) const {
    if (cv) {
      const int OH = (x.dim(2) + 2 * cv->pad - cv->k) / cv->stride + 1, OW = (x.dim(3) + 2 * cv->pad - cv->k) / cv->stride + 1;
      y.resize({x.batch(), m * O, OH, OW});
      Conv2d wide(m * O, cv->k, cv->stride, cv->pad, false);
      wide.in_ch = cv->in_ch;
      wide.conv(x, W, b, y, ws);
    } else {
      y.resize({x.batch(), m * O});
      Dense wide(m * O, false);
      wide.in_features = dn->in_features;
      wide.dense(x, W, b, y);
    }
  }
  // gx = s * Wᵀ summed over the m stacked weight sets; gx must already have the input's shape.
  void bwd(const Tensor& s, const Tensor& W, Tensor& gx, Workspace& ws, int m) const {
    if (cv) {
      Conv2d wide(m * O, cv->k, cv->stride, cv->pad, false);
      wide.in_ch = cv->in_ch;
      wide.conv_backward_data(s, W, gx, ws);
    } else {
      Dense wide(m * O, false);
      wide.in_features = dn->in_features;
      wide.dense_backward_data(s, W, gx);
    }
  }
};

Shape batch1(const Tensor& a) { return a.shape().with_batch(1); }

// ε / LRP-0: z is the layer's own output (bias included), so the rule costs one backward GEMM.
BackwardRule epsilon_like(const Lin& lin, float eps) {
  Tensor W = lin.weight();
  return [lin, W, eps](BackwardCall& c) {
    if (!c.g_in[0]) return;
    Tensor s(c.g_out.shape());
    for (size_t i = 0; i < s.size(); ++i) s[i] = stab_div(c.g_out[i], c.out[i], eps);
    lin.bwd(s, W, *c.g_in[0], c.ws, 1);
    mul_inplace(*c.g_in[0], *c.in[0]);
  };
}

// γ and αβ (z⁺ is αβ with α = 1, β = 0) share one shape: the input splits into a⁺ and a⁻, a
// "positive" branch uses weights Wp on a⁺ and Wn on a⁻ (plus bias bp), a "negative" branch Wn on
// a⁺ and Wp on a⁻ (plus bias bn). So a⁺ runs against [Wp; Wn] and a⁻ against [Wn; Wp].
//   γ:  Wp = w + γw⁺, Wn = w + γw⁻, bp = b + γb⁺, bn = b + γb⁻; each output uses the branch of
//       its sign (Zennit's sign-aware Gamma; z = 0 passes nothing).
//   αβ: Wp = w⁺, Wn = w⁻, bp = b⁺, bn = b⁻; R_in = α·positive share − β·negative share.
struct SignSplit {
  Lin lin;
  Tensor S1, S2;  // [Wp; Wn] and [Wn; Wp] (m = 1: Wp and Wn alone, positive branch only)
  std::vector<float> bp, bn;
  int m;
  bool gamma;
  float alpha, beta, eps;

  void operator()(BackwardCall& c) const {
    if (!c.g_in[0]) return;
    const Tensor& a = *c.in[0];
    bool has_neg = false;
    for (size_t i = 0; i < a.size() && !has_neg; ++i) has_neg = a[i] < 0;
    // After a ReLU the input is non-negative: a⁺ = a and the a⁻ half is skipped.
    Tensor ap = a, an;
    if (has_neg) {
      ap = map(a, [](float v) { return v > 0 ? v : 0.f; });
      an = map(a, [](float v) { return v < 0 ? v : 0.f; });
    }
    Tensor y1, y2;
    lin.fwd(ap, S1, nullptr, y1, c.ws, m);
    if (has_neg) lin.fwd(an, S2, nullptr, y2, c.ws, m);
    const int N = a.batch();
    const size_t OP = c.out.sample_size(), P = OP / lin.O;
    Tensor s(y1.shape());
    for (int n = 0; n < N; ++n) {
      const size_t pos = size_t(n) * m * OP, neg = pos + OP, here = size_t(n) * OP;
      for (size_t q = 0; q < OP; ++q) {
        const int o = int(q / P);
        const float R = c.g_out[here + q];
        const float zp = y1[pos + q] + (has_neg ? y2[pos + q] : 0.f) + bp[o];
        float sp, sn = 0;
        if (gamma) {
          const float z = c.out[here + q], zn = y1[neg + q] + (has_neg ? y2[neg + q] : 0.f) + bn[o];
          sp = z > 0 ? stab_div(R, zp, eps) : 0.f;
          sn = z < 0 ? stab_div(R, zn, eps) : 0.f;
        } else {
          sp = alpha * stab_div(R, zp, eps);
          if (m == 2) sn = -beta * stab_div(R, y1[neg + q] + (has_neg ? y2[neg + q] : 0.f) + bn[o], eps);
        }
        s[pos + q] = sp;
        if (m == 2) s[neg + q] = sn;
      }
    }
    Tensor& gx = *c.g_in[0];
    lin.bwd(s, S1, gx, c.ws, m);
    mul_inplace(gx, ap);
    if (has_neg) {
      Tensor t(gx.shape());
      lin.bwd(s, S2, t, c.ws, m);
      for (size_t i = 0; i < gx.size(); ++i) gx[i] += an[i] * t[i];
    }
  }
};

BackwardRule gamma_rule(const Lin& lin, float gamma, float eps) {
  const Tensor& w = lin.weight();
  Tensor Wp = map(w, [gamma](float v) { return v + gamma * std::max(v, 0.f); });
  Tensor Wn = map(w, [gamma](float v) { return v + gamma * std::min(v, 0.f); });
  std::vector<float> b = lin.bias(), bp(b.size()), bn(b.size());
  for (size_t o = 0; o < b.size(); ++o) {
    bp[o] = b[o] + gamma * std::max(b[o], 0.f);
    bn[o] = b[o] + gamma * std::min(b[o], 0.f);
  }
  return SignSplit{lin, stack(Wp, Wn), stack(Wn, Wp), bp, bn, 2, true, 1, 0, eps};
}

BackwardRule alpha_beta_rule(const Lin& lin, float alpha, float beta, float eps) {
  const Tensor& w = lin.weight();
  Tensor Wp = map(w, [](float v) { return std::max(v, 0.f); });
  Tensor Wn = map(w, [](float v) { return std::min(v, 0.f); });
  std::vector<float> b = lin.bias(), bp(b.size()), bn(b.size());
  for (size_t o = 0; o < b.size(); ++o) {
    bp[o] = std::max(b[o], 0.f);
    bn[o] = std::min(b[o], 0.f);
  }
  if (beta == 0.f) return SignSplit{lin, Wp, Wn, bp, bn, 1, false, alpha, 0, eps};  // z⁺: one branch
  return SignSplit{lin, stack(Wp, Wn), stack(Wn, Wp), bp, bn, 2, false, alpha, beta, eps};
}

// lin.fwd of a ones input (batch 1) against a weight stack: the same for every sample, so
// computed on first use and kept. Rules may run on batch slices at once, hence the lock.
struct OnesResponse {
  std::mutex m;
  Tensor u;
  const Tensor& get(const Lin& lin, const Tensor& W, int stacked, const Tensor& a, size_t size, Workspace& ws) {
    std::lock_guard<std::mutex> l(m);
    if (u.empty() || u.sample_size() != size) lin.fwd(Tensor(batch1(a), 1.f), W, nullptr, u, ws, stacked);
    return u;
  }
};

// zᴮ: z = a·w − l·w⁺ − h·w⁻ (the bias cancels). l and h are per-sample constants, so l·w⁺ and
// h·w⁻ reduce to one forward of a ones input against [w⁺; w⁻], computed once per shape.
struct ZBox {
  Lin lin;
  Tensor W, S;  // w and [w⁺; w⁻]
  std::vector<float> b;
  RuleSpec spec;
  float eps;
  std::shared_ptr<OnesResponse> ones = std::make_shared<OnesResponse>();  // ones * [w⁺; w⁻]

  void operator()(BackwardCall& c) const {
    if (!c.g_in[0]) return;
    const Tensor& a = *c.in[0];
    const int N = a.batch();
    const Tensor* u = &ones->get(lin, S, 2, a, 2 * c.out.sample_size(), c.ws);
    std::vector<float> lo(N, float(spec.low)), hi(N, float(spec.high));
    const size_t D = a.sample_size();
    for (int n = 0; n < N; ++n) {
      const float* x = a.data() + n * D;
      if (spec.low_sample) lo[n] = *std::min_element(x, x + D);
      if (spec.high_sample) hi[n] = *std::max_element(x, x + D);
    }
    const size_t OP = c.out.sample_size(), P = OP / lin.O;
    Tensor s(c.out.shape()), s2(u->shape().with_batch(N));
    for (int n = 0; n < N; ++n)
      for (size_t q = 0; q < OP; ++q) {
        const size_t i = n * OP + q;
        const float z = c.out[i] - b[q / P] - lo[n] * (*u)[q] - hi[n] * (*u)[OP + q];
        s[i] = stab_div(c.g_out[i], z, eps);
        s2[2 * n * OP + q] = lo[n] * s[i];
        s2[(2 * n + 1) * OP + q] = hi[n] * s[i];
      }
    Tensor& gx = *c.g_in[0];
    lin.bwd(s, W, gx, c.ws, 1);
    mul_inplace(gx, a);
    Tensor t(gx.shape());
    lin.bwd(s2, S, t, c.ws, 2);
    for (size_t i = 0; i < gx.size(); ++i) gx[i] -= t[i];
  }
};

// w² and flat: the input is replaced by ones, so z = 1 * W' (no bias) is the same for every sample
// and R_in = (R / z) * W'ᵀ with no input factor. Zennit's WSquare also adds b² to z; the rule of
// METHODS.md (Montavon et al.'s DTD w²-rule) has no bias, and that is what this follows.
struct InputFree {
  Lin lin;
  Tensor W;
  float eps;
  std::shared_ptr<OnesResponse> ones = std::make_shared<OnesResponse>();

  void operator()(BackwardCall& c) const {
    if (!c.g_in[0]) return;
    const Tensor& a = *c.in[0];
    const Tensor* u = &ones->get(lin, W, 1, a, c.out.sample_size(), c.ws);
    const size_t OP = c.out.sample_size();
    Tensor s(c.out.shape());
    for (size_t i = 0; i < s.size(); ++i) s[i] = stab_div(c.g_out[i], (*u)[i % OP], eps);
    lin.bwd(s, W, *c.g_in[0], c.ws, 1);
  }
};

double number_or_bound(const std::string& v, const std::string& what, bool& sample, const char* word) {
  sample = v == word;
  if (sample) return 0;
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end) throw std::invalid_argument("LRP: " + what + " '" + v + "' is not a number (or '" + word + "')");
  return d;
}

}  // namespace

std::string rule_name(LrpRule r) {
  switch (r) {
    case LrpRule::epsilon: return "epsilon";
    case LrpRule::zero: return "zero";
    case LrpRule::gamma: return "gamma";
    case LrpRule::alpha_beta: return "alpha-beta";
    case LrpRule::zplus: return "zplus";
    case LrpRule::zbox: return "zbox";
    case LrpRule::wsquare: return "wsquare";
    case LrpRule::flat: return "flat";
  }
  return "?";
}

RuleSpec parse_rule(const std::string& text) {
  std::vector<std::string> parts;
  size_t b = 0;
  for (;;) {
    size_t e = text.find(':', b);
    parts.push_back(text.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  const std::string& name = parts[0];
  auto num = [&](size_t i, const char* what) {
    bool unused;
    return number_or_bound(parts[i], std::string("rule '") + text + "' " + what, unused, "");
  };
  auto max_args = [&](size_t n) {
    if (parts.size() > n + 1)
      throw std::invalid_argument("LRP rule '" + text + "': " + name + " takes at most " + std::to_string(n) + " parameter(s)");
  };
  RuleSpec r;
  if (name == "epsilon") {
    r.kind = LrpRule::epsilon;
    max_args(1);
    if (parts.size() > 1) r.epsilon = num(1, "epsilon");
  } else if (name == "zero") {
    r.kind = LrpRule::zero;
    r.epsilon = 0;
    max_args(0);
  } else if (name == "gamma") {
    r.kind = LrpRule::gamma;
    max_args(1);
    if (parts.size() > 1) r.gamma = num(1, "gamma");
  } else if (name == "alpha-beta" || name == "alphabeta") {
    r.kind = LrpRule::alpha_beta;
    max_args(2);
    if (parts.size() > 1) r.alpha = num(1, "alpha");
    if (parts.size() > 2) r.beta = num(2, "beta");
    else if (parts.size() > 1) r.beta = r.alpha - 1;
  } else if (name == "zplus") {
    r.kind = LrpRule::zplus;
    max_args(0);
  } else if (name == "zbox") {
    r.kind = LrpRule::zbox;
    max_args(2);
    if (parts.size() > 1) r.low = number_or_bound(parts[1], "rule '" + text + "' low", r.low_sample, "min");
    if (parts.size() > 2) r.high = number_or_bound(parts[2], "rule '" + text + "' high", r.high_sample, "max");
  } else if (name == "wsquare") {
    r.kind = LrpRule::wsquare;
    max_args(0);
  } else if (name == "flat") {
    r.kind = LrpRule::flat;
    max_args(0);
  } else {
    throw std::invalid_argument("LRP: unknown rule '" + name +
                                "' (known: epsilon, zero, gamma, alpha-beta, zplus, zbox, wsquare, flat)");
  }
  if (r.epsilon < 0) throw std::invalid_argument("LRP rule '" + text + "': epsilon must be >= 0");
  if (r.gamma < 0) throw std::invalid_argument("LRP rule '" + text + "': gamma must be >= 0");
  if (r.kind == LrpRule::alpha_beta && (r.beta < 0 || std::abs(r.alpha - r.beta - 1) > 1e-6))
    throw std::invalid_argument("LRP rule '" + text + "': alpha - beta must be 1 with beta >= 0");
  return r;
}

static RuleSpec rule(LrpRule k) {
  RuleSpec r;
  r.kind = k;
  if (k == LrpRule::zero) r.epsilon = 0;
  if (k == LrpRule::zplus) r.alpha = 1, r.beta = 0;
  return r;
}

Composite composite_from_name(const std::string& name_in) {
  std::string name = name_in.rfind("lrp-", 0) == 0 ? name_in.substr(4) : name_in;
  Composite c;
  c.conv = c.dense = rule(LrpRule::epsilon);
  if (name.find('=') != std::string::npos) {  // user mapping
    size_t b = 0;
    for (;;) {
      size_t e = name.find(',', b);
      std::string item = name.substr(b, e == std::string::npos ? std::string::npos : e - b);
      size_t eq = item.find('=');
      if (eq == std::string::npos)
        throw std::invalid_argument("LRP rule mapping: '" + item + "' is not KEY=RULE (keys: conv, dense, first, norm)");
      std::string key = item.substr(0, eq), val = item.substr(eq + 1);
      if (key == "conv") {
        c.conv = parse_rule(val);
      } else if (key == "dense") {
        c.dense = parse_rule(val);
      } else if (key == "first") {
        c.first = parse_rule(val);
      } else if (key == "norm") {
        bool unused;
        c.norm_epsilon = number_or_bound(val, "norm stabilizer", unused, "");
        if (c.norm_epsilon < 0) throw std::invalid_argument("LRP rule mapping: norm must be >= 0");
      } else {
        throw std::invalid_argument("LRP rule mapping: unknown key '" + key + "' (keys: conv, dense, first, norm)");
      }
      if (e == std::string::npos) break;
      b = e + 1;
    }
    return c;
  }
  if (name == "epsilon") {
  } else if (name == "zero") {
    c.conv = c.dense = rule(LrpRule::zero);
    c.norm_epsilon = 0;
  } else if (name == "gamma") {
    c.conv = c.dense = rule(LrpRule::gamma);
  } else if (name == "alpha-beta") {
    c.conv = c.dense = rule(LrpRule::alpha_beta);
  } else if (name == "zplus") {
    c.conv = c.dense = rule(LrpRule::zplus);
  } else if (name == "epsilon-plus-flat") {
    c.conv = rule(LrpRule::zplus);
    c.first = rule(LrpRule::flat);
  } else if (name == "epsilon-gamma-box") {
    c.conv = rule(LrpRule::gamma);
    c.first = rule(LrpRule::zbox);
  } else if (name == "epsilon-alpha2-beta1") {
    c.conv = rule(LrpRule::alpha_beta);
  } else {
    throw std::invalid_argument("LRP: unknown composite '" + name_in +
                                "' (known: epsilon, zero, gamma, alpha-beta, zplus, epsilon-plus-flat, "
                                "epsilon-gamma-box, epsilon-alpha2-beta1, or a mapping conv=...,dense=...,first=...)");
  }
  return c;
}

BackwardRule linear_rule(Layer& layer, const RuleSpec& r) {
  Lin lin(layer);
  const float eps = float(r.epsilon);
  switch (r.kind) {
    case LrpRule::epsilon: return epsilon_like(lin, eps);
    case LrpRule::zero: return epsilon_like(lin, 0.f);
    case LrpRule::gamma: return gamma_rule(lin, float(r.gamma), eps);
    case LrpRule::alpha_beta: return alpha_beta_rule(lin, float(r.alpha), float(r.beta), eps);
    case LrpRule::zplus: return alpha_beta_rule(lin, 1.f, 0.f, eps);
    case LrpRule::zbox: {
      const Tensor& w = lin.weight();
      Tensor S = stack(map(w, [](float v) { return std::max(v, 0.f); }), map(w, [](float v) { return std::min(v, 0.f); }));
      return ZBox{lin, w, S, lin.bias(), r, eps};
    }
    case LrpRule::wsquare: return InputFree{lin, map(lin.weight(), [](float v) { return v * v; }), eps};
    case LrpRule::flat: return InputFree{lin, map(lin.weight(), [](float) { return 1.f; }), eps};
  }
  throw std::logic_error("unhandled LRP rule");
}

BackwardRule pass_rule() {
  return [](BackwardCall& c) {
    if (c.g_in[0]) c.g_in[0]->copy_from(c.g_out.reshaped(c.g_in[0]->shape()));
  };
}

// z-rule for parameter-free linear layers (avg-pool, GAP, Add): their output is z = Σ inputs'
// contributions, so s = R / z goes back through the layer's own gradient and each input keeps
// a ⊙ (that gradient): relevance split in proportion to the contributions.
BackwardRule norm_rule(double epsilon) {
  const float eps = float(epsilon);
  return [eps](BackwardCall& c) {
    Tensor s(c.g_out.shape());
    for (size_t i = 0; i < s.size(); ++i) s[i] = stab_div(c.g_out[i], c.out[i], eps);
    BackwardCall inner{c.node, c.layer, c.in, c.out, s, c.g_in, false, c.ws, c.mode, {}};
    c.layer.backward(inner);
    for (size_t k = 0; k < c.g_in.size(); ++k)
      if (c.g_in[k]) mul_inplace(*c.g_in[k], *c.in[k]);
  };
}

// A BatchNorm that could not be folded: y = scale·x + shift per channel; the ε rule on this map
// gives R_in = x·scale·R / (y + ε sign y), so the shift absorbs its share of relevance.
BackwardRule batchnorm_rule(Layer& layer, double epsilon) {
  auto& bn = dynamic_cast<BatchNorm2d&>(layer);
  std::vector<float> scale, shift;
  bn.eval_affine(scale, shift);
  const float eps = float(epsilon);
  return [scale, eps](BackwardCall& c) {
    if (!c.g_in[0]) return;
    const Tensor& x = *c.in[0];
    const int C = x.dim(1);
    const size_t HW = x.rank() == 4 ? size_t(x.dim(2)) * x.dim(3) : 1;
    Tensor& g = *c.g_in[0];
    for (size_t i = 0; i < g.size(); ++i) g[i] = x[i] * scale[(i / HW) % C] * stab_div(c.g_out[i], c.out[i], eps);
  };
}

BackwardRules lrp_rules(const Graph& g, const Composite& comp) {
  BackwardRules rules(g.size());
  int first = -1;
  for (int i = 0; i < g.size() && first < 0; ++i)
    if (dynamic_cast<Conv2d*>(&g.layer(i)) || dynamic_cast<Dense*>(&g.layer(i))) first = i;
  for (int i = 0; i < g.size(); ++i) {
    Layer& L = g.layer(i);
    if (dynamic_cast<Conv2d*>(&L) || dynamic_cast<Dense*>(&L)) {
      const RuleSpec& r = (i == first && comp.first) ? *comp.first : dynamic_cast<Conv2d*>(&L) ? comp.conv : comp.dense;
      rules[i] = linear_rule(L, r);
    } else if (dynamic_cast<Activation*>(&L) || dynamic_cast<Dropout*>(&L)) {
      rules[i] = pass_rule();
    } else if (dynamic_cast<AvgPool2d*>(&L) || dynamic_cast<GlobalAvgPool*>(&L) || dynamic_cast<Add*>(&L)) {
      rules[i] = norm_rule(comp.norm_epsilon);
    } else if (dynamic_cast<BatchNorm2d*>(&L)) {
      rules[i] = batchnorm_rule(L, comp.norm_epsilon);
    } else if (dynamic_cast<MaxPool2d*>(&L) || dynamic_cast<Flatten*>(&L)) {
      // Winner-take-all max-pool and flatten: the layer's own gradient (empty rule).
    } else {
      throw std::invalid_argument("LRP has no rule for layer '" + L.name + "' of kind " + L.kind());
    }
  }
  return rules;
}

Result lrp(Graph& model, const Tensor& x, const Target& target, const std::string& composite,
           const Params& params) {
  if (composite.find('=') != std::string::npos) {  // a rule mapping: method `lrp` with rule=composite
    Params with_rule = params;
    with_rule["rule"] = composite;
    return lrp(model, x, target, "lrp", with_rule);
  }
  const bool plain = composite.empty() || composite == "lrp";
  const std::string method = plain ? "lrp" : composite.rfind("lrp-", 0) == 0 ? composite : "lrp-" + composite;
  ParamReader pr(params, method_info(method));
  Result r = lrp(model, x, target, method, pr);
  pr.done();
  return r;
}

Result lrp(Graph& model, const Tensor& x, const Target& target, const std::string& method,
           ParamReader& pr) {
  const bool from_params = method == "lrp";
  const std::string short_name = from_params ? "" : method.substr(4);
  Composite comp = composite_from_name(from_params ? pr.text("rule") : short_name);

  // Rule parameters this composite exposes as params override its rules of that kind.
  auto specs = [&](LrpRule k) {
    std::vector<RuleSpec*> v;
    for (RuleSpec* r : {&comp.conv, &comp.dense, comp.first ? &*comp.first : nullptr})
      if (r && r->kind == k) v.push_back(r);
    return v;
  };
  if (!from_params && short_name != "zero") {
    if (!specs(LrpRule::epsilon).empty()) {
      double e = pr.number("epsilon");
      if (e < 0) throw std::invalid_argument(method + ": epsilon must be >= 0");
      for (RuleSpec* r : specs(LrpRule::epsilon)) r->epsilon = e;
    }
    if (!specs(LrpRule::gamma).empty()) {
      double gm = pr.number("gamma");
      if (gm < 0) throw std::invalid_argument(method + ": gamma must be >= 0");
      for (RuleSpec* r : specs(LrpRule::gamma)) r->gamma = gm;
    }
    if (!specs(LrpRule::alpha_beta).empty()) {
      const double al = pr.number("alpha");
      double be = pr.number("beta");
      if (!pr.given("beta") && pr.given("alpha")) be = al - 1;
      if (be < 0 || std::abs(al - be - 1) > 1e-6)
        throw std::invalid_argument(method + ": alpha - beta must be 1 with beta >= 0");
      for (RuleSpec* r : specs(LrpRule::alpha_beta)) r->alpha = al, r->beta = be;
    }
    for (RuleSpec* r : specs(LrpRule::zbox)) {
      r->low = number_or_bound(pr.text("low"), method + " low", r->low_sample, "min");
      r->high = number_or_bound(pr.text("high"), method + " high", r->high_sample, "max");
      if (!r->low_sample && !r->high_sample && r->low > r->high)
        throw std::invalid_argument(method + ": low must be <= high");
    }
  }
  const std::string seed_mode = pr.text("seed");
  if (seed_mode != "logit" && seed_mode != "onehot")
    throw std::invalid_argument(method + ": seed must be logit or onehot, got '" + seed_mode + "'");
  const std::string layer = pr.text("layer");

  target.check(model, x.batch());

  // LRP runs on a canonized copy only when there is BatchNorm to fold.
  std::unique_ptr<Canonized> canon;
  Graph* g = &model;
  int stop = -1;
  if (!layer.empty()) stop = model.at(layer);
  if (has_batchnorm(model)) {
    canon = std::make_unique<Canonized>(canonize(model));
    g = &canon->graph;
    if (stop >= 0) stop = canon->node_map[stop];
  }
  // The target on the canonized graph: a folded BatchNorm's node is the layer it was folded into.
  Target t = target;
  if (canon && t.node >= 0) t.node = canon->node_map[t.node];
  const BackwardRules rules = lrp_rules(*g, comp);
  ForwardOptions fo;
  fo.until = t.at(*g);
  const Tensor& out = g->forward(x, fo);
  // Relevance starts as the target's seed w (onehot) or w ⊙ a (logit: Zennit's and Captum's
  // start from the output value, so Σ relevance ≈ f(x) = ⟨w, a⟩).
  const int N = x.batch();
  Tensor seed = t.seed(*g, 0, N);
  if (seed_mode == "logit")
    for (size_t i = 0; i < seed.size(); ++i) seed[i] *= out[i];
  std::vector<double> seed_value(N);
  const size_t S = seed.sample_size();
  for (int n = 0; n < N; ++n) seed_value[n] = sum(seed.data() + n * S, S);
  BackwardOptions opt;
  opt.rules = &rules;
  opt.per_sample_rules = true;  // every rule above reads and writes its own samples only
  opt.seed_at = t.at(*g);
  opt.stop_at = stop;
  Result res;
  res.attribution = g->backward(seed, opt).clone();
  res.is_signed = true;
  const size_t D = res.attribution.sample_size();
  for (int n = 0; n < N; ++n) {
    double s = 0;
    for (size_t i = 0; i < D; ++i) s += res.attribution[n * D + i];
    res.delta.push_back(s - seed_value[n]);
  }
  return res;
}

}  // namespace gb::explain
