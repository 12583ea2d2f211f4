// The softplus surrogate and its exact map gradients. With g(x) = ∇_x f(x) (f the class logit) and
// H(x) its Hessian, for a direction dm shaped like the map:
//   gradient             m = g                       ∇⟨dm, m⟩ = H dm
//   input × gradient     m = x ⊙ g                   ∇⟨dm, m⟩ = dm ⊙ g + H (x ⊙ dm)
//   integrated gradients m = (x − b) ⊙ Σ_k w_k g(x_k),  x_k = b + α_k (x − b)
//                        ∇⟨dm, m⟩ = dm ⊙ Σ_k w_k g(x_k) + Σ_k w_k α_k H(x_k) ((x − b) ⊙ dm)
// Each is one pass of input Hessian-vector products (IG: over the path's rows at once).
#include "explain/attacks/surrogate.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "engine/architecture.h"
#include "explain/attacks/metrics.h"
#include "explain/attribution/explain.h"
#include "explain/attribution/gradient.h"

namespace gb::attacks {

Graph softplus_surrogate(const Graph& g, double beta) {
  json arch = architecture_json(g);
  for (json& layer : arch.at("layers"))
    if (layer.at("kind") == "relu") {
      layer["kind"] = "softplus";
      layer["beta"] = beta;
      layer["threshold"] = 20.0;
    }
  Graph s = graph_from_json(arch);
  auto src = g.named_params(), dst = s.named_params();
  for (size_t i = 0; i < src.size(); ++i) dst[i].second->value.copy_from(src[i].second->value);
  check_hvp_support(s);
  return s;
}

SmoothMap smooth_map(const std::string& name) {
  if (name == "gradient") return SmoothMap::gradient;
  if (name == "input-x-gradient") return SmoothMap::input_x_gradient;
  if (name == "integrated-gradients") return SmoothMap::integrated_gradients;
  throw std::invalid_argument("surrogate map '" + name + "' (known: gradient, input-x-gradient, integrated-gradients)");
}

SmoothMap smooth_map_for(const std::string& method) {
  if (method == "integrated-gradients") return SmoothMap::integrated_gradients;
  if (method == "input-x-gradient" || method == "deeplift" || method.rfind("lrp", 0) == 0)
    return SmoothMap::input_x_gradient;
  return SmoothMap::gradient;
}

SmoothExplainer::SmoothExplainer(Graph& surrogate, SmoothMap map, int ig_steps, const Tensor& baseline)
    : g_(surrogate), map_(map), hvp_(surrogate), baseline_(baseline) {
  if (map_ == SmoothMap::integrated_gradients) explain::ig_nodes(explain::IgMethod::gausslegendre, ig_steps, alphas_, weights_);
}

void SmoothExplainer::class_seeds(const std::vector<int>& classes, int per_sample) {
  const int K = g_.classes(), R = int(classes.size()) * per_sample;
  seed_.resize(Shape{R, K});
  seed_.fill(0.f);
  for (int r = 0; r < R; ++r) seed_[size_t(r) * K + classes[r / per_sample]] = 1.f;
}

void SmoothExplainer::path_rows(const Tensor& x) {
  const int N = x.batch(), S = int(alphas_.size());
  const size_t D = x.sample_size();
  rows_.resize(Shape::batch_of(N * S, x.shape().sample()));
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < S; ++k) {
      const float *xn = x.data() + n * D, *b = baseline_.data();
      float* r = rows_.data() + (size_t(n) * S + k) * D;
      for (size_t i = 0; i < D; ++i) r[i] = b[i] + float(alphas_[k]) * (xn[i] - b[i]);
    }
}

const Tensor& SmoothExplainer::attribution(const Tensor& x, const std::vector<int>& classes) {
  const int N = x.batch();
  const size_t D = x.sample_size();
  out_.resize(x.shape());
  if (map_ != SmoothMap::integrated_gradients) {
    class_seeds(classes, 1);
    g_.forward(x);
    out_.copy_from(g_.backward(seed_));
    if (map_ == SmoothMap::input_x_gradient)
      for (size_t i = 0; i < out_.size(); ++i) out_[i] *= x[i];
    return out_;
  }
  const int S = int(alphas_.size());
  path_rows(x);
  class_seeds(classes, S);
  g_.forward(rows_);
  const Tensor& g = g_.backward(seed_);
  out_.fill(0.f);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < S; ++k) {
      const float* gk = g.data() + (size_t(n) * S + k) * D;
      float* o = out_.data() + n * D;
      for (size_t i = 0; i < D; ++i) o[i] += float(weights_[k]) * gk[i];
    }
  for (int n = 0; n < N; ++n)
    for (size_t i = 0; i < D; ++i) out_[n * D + i] *= x[n * D + i] - baseline_[i];
  return out_;
}

const Tensor& SmoothExplainer::vjp(const Tensor& x, const std::vector<int>& classes, const Tensor& dm) {
  const int N = x.batch();
  const size_t D = x.sample_size();
  out_.resize(x.shape());
  if (map_ == SmoothMap::gradient) {
    class_seeds(classes, 1);
    hvp_(x, dm, seed_, grad_, hv_);
    out_.copy_from(hv_);
    return out_;
  }
  if (map_ == SmoothMap::input_x_gradient) {
    class_seeds(classes, 1);
    v_.resize(x.shape());
    for (size_t i = 0; i < v_.size(); ++i) v_[i] = x[i] * dm[i];
    hvp_(x, v_, seed_, grad_, hv_);
    for (size_t i = 0; i < out_.size(); ++i) out_[i] = dm[i] * grad_[i] + hv_[i];
    return out_;
  }
  const int S = int(alphas_.size());
  path_rows(x);
  class_seeds(classes, S);
  v_.resize(rows_.shape());
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < S; ++k) {
      float* v = v_.data() + (size_t(n) * S + k) * D;
      const float c = float(weights_[k] * alphas_[k]);
      for (size_t i = 0; i < D; ++i) v[i] = c * (x[n * D + i] - baseline_[i]) * dm[n * D + i];
    }
  hvp_(rows_, v_, seed_, grad_, hv_);
  out_.fill(0.f);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < S; ++k) {
      const float *gk = grad_.data() + (size_t(n) * S + k) * D, *hk = hv_.data() + (size_t(n) * S + k) * D;
      float* o = out_.data() + n * D;
      const float* d = dm.data() + n * D;
      for (size_t i = 0; i < D; ++i) o[i] += float(weights_[k]) * d[i] * gk[i] + hk[i];
    }
  return out_;
}

MethodMaps::MethodMaps(Graph& model, const PixelSpace& s, const std::string& method) : g_(model), s_(s), method_(method) {
  const explain::MethodInfo& info = explain::method_info(method);
  bool low = false, high = false;
  for (const ParamInfo& p : info.params) {
    if (p.name == "baseline" && (method == "integrated-gradients" || method == "deeplift"))
      params_.tensors["baseline"] = black(model, s);
    low |= p.name == "low", high |= p.name == "high";
  }
  if (low && high && s.bounded()) {
    const Shape& in = model.input_shape();
    float lo = INFINITY, hi = -INFINITY;
    for (int c = 0; c < (in.rank ? in[0] : 1); ++c) {
      lo = std::min(lo, (s.lo - s.mean_of(c)) / s.std_of(c));
      hi = std::max(hi, (s.hi - s.mean_of(c)) / s.std_of(c));
    }
    params_["low"] = std::to_string(lo), params_["high"] = std::to_string(hi);
  }
}

Tensor MethodMaps::black(const Graph& g, const PixelSpace& s) {
  Tensor p(Shape::batch_of(1, g.input_shape()), s.bounded() ? s.lo : 0.f), x;
  s.to_input(p, x);
  return x;
}

Tensor MethodMaps::maps(const Tensor& p, const std::vector<int>& classes) {
  s_.to_input(p, x_);
  return importance(explain::explain(g_, x_, Target(classes), method_, params_).attribution);
}

}  // namespace gb::attacks
