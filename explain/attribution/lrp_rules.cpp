// LRP rules as backward rules over the graph (see lrp_rules.h). Every Dense/Conv rule runs the
// layer's own convolution / matrix product with modified weights, several weight sets stacked
// along the output channels so that one im2col and one GEMM serve them all.
#include "explain/attribution/lrp_rules.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "engine/layers.h"
#include "explain/attribution/canonizer.h"
#include "explain/common/params.h"
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
  float low, high;
  bool low_sample, high_sample;  // each sample's own min / max instead of low / high
  float eps;
  std::shared_ptr<OnesResponse> ones = std::make_shared<OnesResponse>();  // ones * [w⁺; w⁻]

  void operator()(BackwardCall& c) const {
    if (!c.g_in[0]) return;
    const Tensor& a = *c.in[0];
    const int N = a.batch();
    const Tensor* u = &ones->get(lin, S, 2, a, 2 * c.out.sample_size(), c.ws);
    std::vector<float> lo(N, low), hi(N, high);
    const size_t D = a.sample_size();
    for (int n = 0; n < N; ++n) {
      const float* x = a.data() + n * D;
      if (low_sample) lo[n] = *std::min_element(x, x + D);
      if (high_sample) hi[n] = *std::max_element(x, x + D);
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

// A rule argument as a number, or (for zbox's bounds) the word meaning "each sample's own".
double argument(const std::string& rule, const std::string& key, const std::string& v, const char* word, bool& sample) {
  sample = word && v == word;
  if (sample) return 0;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !float32_finite(d))  // (1e308 would be inf in the float32 maps)
    throw std::invalid_argument("LRP rule " + rule + ": " + key + " '" + v + "' is not a finite float32 number" +
                                (word ? std::string(" (or '") + word + "')" : std::string()));
  return d;
}

// Zennit's stabilizer of every rule's denominator but ε (its own ε) and LRP-0 (a safe divide).
constexpr float kStabilizer = 1e-6f;

// The Dense/Conv rules: name, parameters (positional in "name:a:b", with defaults), and the
// function that checks the arguments and builds the rule.
struct RuleKind {
  std::string name;
  std::vector<ParamInfo> params;
  std::function<BackwardRule(const Lin&, const RuleSpec&)> make;
};

// β defaults to α − 1 when only α is given.
double beta_of(const RuleSpec& r) {
  return r.args.count("beta") || !r.args.count("alpha") ? r.number("beta") : r.number("alpha") - 1;
}

BackwardRule zbox_rule(const Lin& lin, const RuleSpec& r) {
  bool low_sample, high_sample;
  const double low = argument(r.name, "low", r.args.count("low") ? r.args.at("low") : "0", "min", low_sample);
  const double high = argument(r.name, "high", r.args.count("high") ? r.args.at("high") : "1", "max", high_sample);
  if (!low_sample && !high_sample && low > high) throw std::invalid_argument("LRP rule zbox: low must be <= high");
  const Tensor& w = lin.weight();
  Tensor S = stack(map(w, [](float v) { return std::max(v, 0.f); }), map(w, [](float v) { return std::min(v, 0.f); }));
  return ZBox{lin, w, S, lin.bias(), float(low), float(high), low_sample, high_sample, kStabilizer};
}

const std::vector<RuleKind>& rule_table() {
  static const std::vector<RuleKind> table = {
      {"epsilon",
       {{"epsilon", "1e-6", "ε of the epsilon rule (denominator z + ε·sign(z), sign(0) = +1)"}},
       [](const Lin& lin, const RuleSpec& r) {
         const double e = r.number("epsilon");
         if (e < 0) throw std::invalid_argument("LRP rule epsilon: epsilon must be >= 0");
         return epsilon_like(lin, float(e));
       }},
      {"zero", {}, [](const Lin& lin, const RuleSpec&) { return epsilon_like(lin, 0.f); }},
      {"gamma",
       {{"gamma", "0.25", "γ of the sign-aware gamma rule"}},
       [](const Lin& lin, const RuleSpec& r) {
         const double gm = r.number("gamma");
         if (gm < 0) throw std::invalid_argument("LRP rule gamma: gamma must be >= 0");
         return gamma_rule(lin, float(gm), kStabilizer);
       }},
      {"alpha-beta",
       {{"alpha", "2", "α of the αβ rule (α − β = 1)"}, {"beta", "1", "β of the αβ rule (default α − 1)"}},
       [](const Lin& lin, const RuleSpec& r) {
         const double al = r.number("alpha"), be = beta_of(r);
         if (be < 0 || std::abs(al - be - 1) > 1e-6)
           throw std::invalid_argument("LRP rule alpha-beta: alpha - beta must be 1 with beta >= 0");
         return alpha_beta_rule(lin, float(al), float(be), kStabilizer);
       }},
      {"zplus", {}, [](const Lin& lin, const RuleSpec&) { return alpha_beta_rule(lin, 1.f, 0.f, kStabilizer); }},
      {"zbox",
       {{"low", "0",
         "zᴮ lower bound of the input domain, in the model's input space ('min': per-sample min; glassbox "
         "explain's default: pixel 0 through the model's normalization, the lowest over the channels: one "
         "scalar box, wider than a channel's own range under a per-channel normalization, where Zennit "
         "takes per-channel bounds)"},
        {"high", "1",
         "zᴮ upper bound of the input domain, in the model's input space ('max': per-sample max; glassbox "
         "explain's default: pixel 1 through the model's normalization, the highest over the channels)"}},
       zbox_rule},
      {"wsquare", {},
       [](const Lin& lin, const RuleSpec&) {
         return BackwardRule(InputFree{lin, map(lin.weight(), [](float v) { return v * v; }), kStabilizer});
       }},
      {"flat", {},
       [](const Lin& lin, const RuleSpec&) {
         return BackwardRule(InputFree{lin, map(lin.weight(), [](float) { return 1.f; }), kStabilizer});
       }},
  };
  return table;
}

const RuleKind& rule_kind(const std::string& name) {
  for (const RuleKind& k : rule_table())
    if (k.name == name) return k;
  std::string names;
  for (const RuleKind& k : rule_table()) names += (names.empty() ? "" : ", ") + k.name;
  throw std::invalid_argument("LRP: unknown rule '" + name + "' (known: " + names + ")");
}

}  // namespace

bool RuleSpec::has(const std::string& arg) const {
  for (const ParamInfo& p : rule_kind(name).params)
    if (p.name == arg) return true;
  return false;
}

double RuleSpec::number(const std::string& arg) const {
  for (const ParamInfo& p : rule_kind(name).params)
    if (p.name == arg) {
      bool unused;
      return argument(name, arg, args.count(arg) ? args.at(arg) : p.default_value, nullptr, unused);
    }
  throw std::logic_error("LRP rule " + name + " has no parameter " + arg);
}

const std::vector<ParamInfo>& rule_params(const std::string& rule) { return rule_kind(rule).params; }

RuleSpec parse_rule(const std::string& text) {
  std::vector<std::string> parts;
  for (size_t b = 0;;) {
    const size_t e = text.find(':', b);
    parts.push_back(text.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  RuleSpec r;
  r.name = parts[0] == "alphabeta" ? "alpha-beta" : parts[0];
  const std::vector<ParamInfo>& params = rule_kind(r.name).params;
  if (parts.size() > params.size() + 1)
    throw std::invalid_argument("LRP rule '" + text + "': " + r.name + " takes at most " +
                                std::to_string(params.size()) + " parameter(s)");
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& key = params[i - 1].name;
    bool word;  // zbox's "min" / "max"; other values must be numbers (ranges are checked when the rule is built)
    argument(r.name, key, parts[i], key == "low" ? "min" : key == "high" ? "max" : nullptr, word);
    r.args[key] = parts[i];
  }
  return r;
}

BackwardRule linear_rule(Layer& layer, const RuleSpec& r) { return rule_kind(r.name).make(Lin(layer), r); }

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

}  // namespace gb::explain
