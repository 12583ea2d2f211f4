#include "explain/attribution/cam.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/layers.h"
#include "explain/attribution/method.h"
#include "explain/attribution/perturbation.h"
#include "explain/common/resize.h"

namespace gb::explain {

namespace {

bool spatial(const Graph& g, int node) { return g.shape(node, 1).rank == 4; }

// "dense2 (dense) ← gap1 (gap) ← relu3 (relu)": the head as found, for error messages.
std::string describe_head(const Graph& g) {
  // Back to the first layer with feature maps (or the input), at most 8 layers.
  std::string s;
  int i = g.output();
  for (int hop = 0; hop < 8 && i >= 0; ++hop) {
    s += (hop ? " ← " : "") + g.layer(i).name + " (" + g.layer(i).kind() + ")";
    if (spatial(g, i)) return s;
    i = g.node(i).inputs.empty() ? -1 : g.node(i).inputs[0];
  }
  return s + (i < 0 ? " ← input" : " ← ...");
}

// Forward, then the gradient of each sample's target at `layer`'s output (one batched backward
// pass: the samples' gradients are independent in eval mode).
struct ActGrad {
  Tensor act, grad;
};
ActGrad act_grad(Graph& g, const Tensor& x, const Target& target, int layer) {
  ForwardOptions fo;
  fo.until = target.at(g);
  g.forward(x, fo);
  ActGrad r;
  r.act = g.activation(layer).clone();
  BackwardOptions opt;
  opt.seed_at = target.at(g);
  opt.stop_at = layer;  // a layer the target does not depend on is an error naming it
  opt.input_grad = false;
  r.grad = g.backward(target.seed(g, 0, x.batch()), opt).clone();
  return r;
}

// L[n] = Σ_k w[n,k] A[n,k] over [N,K,h,w] activations; optionally ReLU'd. Returns [N,1,h,w].
Tensor weighted_sum(const Tensor& A, const std::vector<double>& w, bool relu) {
  const int N = A.dim(0), K = A.dim(1);
  const size_t HW = size_t(A.dim(2)) * A.dim(3);
  Tensor L({N, 1, A.dim(2), A.dim(3)});
  std::vector<double> acc(HW);
  for (int n = 0; n < N; ++n) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int k = 0; k < K; ++k) {
      const float* a = A.data() + (size_t(n) * K + k) * HW;
      const double wk = w[size_t(n) * K + k];
      for (size_t i = 0; i < HW; ++i) acc[i] += wk * a[i];
    }
    for (size_t i = 0; i < HW; ++i) L[n * HW + i] = float(relu ? std::max(acc[i], 0.0) : acc[i]);
  }
  return L;
}

void minmax_inplace(float* p, size_t n) {
  auto [lo, hi] = std::minmax_element(p, p + n);
  const float a = *lo, b = *hi;
  if (b == a) {
    std::fill(p, p + n, 0.f);  // a flat map carries no ranking (the official code returns None)
    return;
  }
  for (size_t i = 0; i < n; ++i) p[i] = (p[i] - a) / (b - a);
}

// True when node `top`'s output depends on node `layer`'s (walking the graph's inputs down).
bool feeds(const Graph& g, int layer, int top) {
  std::vector<int> todo{top};
  std::vector<char> seen(g.size(), 0);
  while (!todo.empty()) {
    const int i = todo.back();
    todo.pop_back();
    if (i == layer) return true;
    if (i < 0 || seen[i]) continue;
    seen[i] = 1;
    for (int j : g.node(i).inputs) todo.push_back(j);
  }
  return false;
}

}  // namespace

int default_cam_layer(const Graph& g) {
  int i = g.output();
  while (i >= 0 && !spatial(g, i)) i = g.node(i).inputs.empty() ? -1 : g.node(i).inputs[0];
  if (i < 0)
    throw std::invalid_argument("the CAM family needs a layer with [N,C,H,W] feature maps; the head is " +
                                describe_head(g));
  // Back through pooling and dropout to the activation that follows the last conv.
  for (;;) {
    const Layer& L = g.layer(i);
    if (!dynamic_cast<const MaxPool2d*>(&L) && !dynamic_cast<const AvgPool2d*>(&L) && !dynamic_cast<const Dropout*>(&L))
      break;
    int p = g.node(i).inputs[0];
    if (p < 0) break;
    i = p;
  }
  return i;
}

int cam_layer(const Graph& g, const std::string& name, const char* method, const Target* target) {
  const int i = name.empty() ? default_cam_layer(g) : g.at(name);
  if (!spatial(g, i))
    throw std::invalid_argument(std::string(method) + ": layer " + name + " outputs " + g.shape(i, 1).str() +
                                ", not feature maps [N,C,H,W]");
  if (target && !feeds(g, i, target->at(g)))
    throw std::invalid_argument(std::string(method) + ": the target " + target->describe(g) + " does not depend on layer " +
                                g.layer(i).name + (name.empty() ? " (the default layer=)" : " (layer=)") +
                                "; give layer= a layer with feature maps below the target's");
  return i;
}

Tensor cam_maps(Graph& g, const Tensor& x, const Target& target) {
  if (!target.is_class(g))
    throw std::invalid_argument("cam explains class logits through the dense head's weights, not " +
                                target.describe(g) + " (use grad-cam for a unit)");
  const int out = g.output();
  auto refuse = [&] {
    throw std::invalid_argument("cam needs a conv → (activation) → GlobalAvgPool → Dense head; found " +
                                describe_head(g) + " (use grad-cam for other heads)");
  };
  auto* dense = dynamic_cast<Dense*>(&g.layer(out));
  if (!dense) refuse();
  int p = g.node(out).inputs[0];
  while (p >= 0 && dynamic_cast<const Dropout*>(&g.layer(p))) p = g.node(p).inputs[0];  // identity in eval
  if (p < 0 || !dynamic_cast<const GlobalAvgPool*>(&g.layer(p))) refuse();
  const int a = g.node(p).inputs[0];
  if (a < 0) refuse();  // GAP straight on the input: there are no learned feature maps
  g.forward(x);
  const Tensor& A = g.activation(a);
  const int N = A.dim(0), K = A.dim(1);
  std::vector<double> w(size_t(N) * K);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) w[size_t(n) * K + k] = dense->weight.value[size_t(target.element(n)) * K + k];
  return weighted_sum(A, w, false);
}

Tensor grad_cam_maps(Graph& g, const Tensor& x, const Target& target, int layer, bool relu) {
  ActGrad ag = act_grad(g, x, target, layer);
  const int N = ag.act.dim(0), K = ag.act.dim(1);
  const size_t HW = size_t(ag.act.dim(2)) * ag.act.dim(3);
  std::vector<double> alpha(size_t(N) * K);
  for (size_t nk = 0; nk < alpha.size(); ++nk) {
    double s = 0;
    for (size_t i = 0; i < HW; ++i) s += ag.grad[nk * HW + i];
    alpha[nk] = s / double(HW);
  }
  return weighted_sum(ag.act, alpha, relu);
}

Tensor grad_cam_pp_maps(Graph& g, const Tensor& x, const Target& target, int layer) {
  ActGrad ag = act_grad(g, x, target, layer);
  const int N = ag.act.dim(0), K = ag.act.dim(1);
  const size_t HW = size_t(ag.act.dim(2)) * ag.act.dim(3);
  std::vector<double> w(size_t(N) * K);
  for (size_t nk = 0; nk < w.size(); ++nk) {
    const float* a = ag.act.data() + nk * HW;
    const float* gr = ag.grad.data() + nk * HW;
    double S = 0;
    for (size_t i = 0; i < HW; ++i) S += a[i];
    double wk = 0;
    for (size_t i = 0; i < HW; ++i) {
      const double g1 = gr[i], g2 = g1 * g1, den = 2 * g2 + S * g2 * g1;
      if (den != 0 && g1 > 0) wk += g2 / den * g1;
    }
    w[nk] = wk;
  }
  return weighted_sum(ag.act, w, true);
}

Tensor score_cam_maps(Graph& g, const Tensor& x, const Target& target, int layer, int batch) {
  require_images(x, "score-cam");
  if (batch < 1) throw std::invalid_argument("score-cam: batch must be positive");
  const int N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const size_t HW = size_t(H) * W, CHW = C * HW;
  g.forward(x);
  const Tensor A = g.activation(layer).clone();  // [N,K,h,w]
  const int K = A.dim(1), h = A.dim(2), w = A.dim(3);
  // Masked inputs of all samples and channels are packed into batches; a channel whose upsampled
  // map is constant is skipped (weight 0), as in the official code.
  std::vector<double> weight(size_t(N) * K, 0.0);
  std::vector<size_t> pending;  // n·K + k of the inputs in `masked`
  Tensor masked({int(std::min(size_t(batch), size_t(N) * K)), C, H, W});
  std::vector<float> up(HW);
  auto flush = [&] {
    if (pending.empty()) return;
    const int B = int(pending.size());
    std::vector<int> samples(B);
    for (int b = 0; b < B; ++b) samples[b] = int(pending[b] / K);
    std::vector<float> sc = target_scores(g, masked.slice(0, B), target.gather(samples), true);
    for (int b = 0; b < B; ++b) weight[pending[b]] = sc[b];
    pending.clear();
  };
  for (size_t nk = 0; nk < size_t(N) * K; ++nk) {
    resize_bilinear(A.data() + nk * h * w, h, w, up.data(), H, W);
    auto [lo, hi] = std::minmax_element(up.begin(), up.end());
    if (!(*hi > *lo)) continue;
    minmax_inplace(up.data(), HW);
    const float* xs = x.data() + (nk / K) * CHW;
    float* d = masked.data() + pending.size() * CHW;
    for (int c = 0; c < C; ++c)
      for (size_t i = 0; i < HW; ++i) d[c * HW + i] = xs[c * HW + i] * up[i];
    pending.push_back(nk);
    if (int(pending.size()) == batch) flush();
  }
  flush();
  // Σ_k weight_k · upsample(A^k) = upsample(Σ_k weight_k A^k): bilinear resizing is linear.
  Tensor out = resize_bilinear(weighted_sum(A, weight, false), H, W);
  for (int n = 0; n < N; ++n) {
    float* o = out.data() + n * HW;
    for (size_t i = 0; i < HW; ++i) o[i] = std::max(o[i], 0.f);
    minmax_inplace(o, HW);
  }
  return out;
}

namespace {

Tensor to_input(const Tensor& maps, const Tensor& x) {
  return broadcast_channels(resize_bilinear(maps, x.dim(2), x.dim(3)), x.dim(1));
}

const std::string kUpsample = " Maps are upsampled bilinearly to the input (PyTorch align_corners=False) and broadcast over its channels.";

}  // namespace

void add_cam_methods(std::vector<Method>& registry) {
  const ParamInfo layer_param{"layer", "", "layer whose feature maps are used (default: the output of the last conv's activation, found by walking back from the head)"};
  registry.push_back(
      {{"cam", "Class activation map: Σ_k w_k^c A^k at the GlobalAvgPool input (needs conv → GAP → Dense)", {},
        "Zhou et al. 2016; no bias term, no ReLU (signed)." + kUpsample},
       [](Graph& g, const Tensor& x, const Target& t, ParamReader&) {
         require_images(x, "cam");
         return Result{to_input(cam_maps(g, x, t), x), {}, true, {}};
       }});
  registry.push_back(
      {{"grad-cam", "Grad-CAM: ReLU(Σ_k α_k A^k), α_k = spatial mean of the target logit's gradient",
        {layer_param, {"relu", "true", "apply the ReLU (false keeps the signed map, like Captum's default)"}},
        "Selvaraju et al. 2017; Captum LayerGradCam with relu_attributions=True, then upsampled." + kUpsample},
       [](Graph& g, const Tensor& x, const Target& t, ParamReader& pr) {
         require_images(x, "grad-cam");
         int layer = cam_layer(g, pr.text("layer"), "grad-cam", &t);
         bool relu = pr.flag("relu");
         return Result{to_input(grad_cam_maps(g, x, t, layer, relu), x), {}, !relu, {}};
       }});
  registry.push_back(
      {{"guided-grad-cam", "Guided Grad-CAM: guided backprop ⊙ upsampled Grad-CAM", {layer_param},
        "Selvaraju et al. 2017 (Captum GuidedGradCam): the guided-backprop method of this registry times the "
        "ReLU'd Grad-CAM map." + kUpsample},
       [](Graph& g, const Tensor& x, const Target& t, ParamReader& pr) {
         require_images(x, "guided-grad-cam");
         int layer = cam_layer(g, pr.text("layer"), "guided-grad-cam", &t);
         Tensor cam = to_input(grad_cam_maps(g, x, t, layer, true), x);
         Tensor gbp = explain(g, x, t, "guided-backprop").attribution;
         for (size_t i = 0; i < cam.size(); ++i) cam[i] *= gbp[i];
         return Result{cam, {}, true, {}};
       }});
  registry.push_back(
      {{"grad-cam++", "Grad-CAM++: ReLU(Σ_k w_k A^k), w_k = Σ α·ReLU(g) with the closed-form α", {layer_param},
        "Chattopadhyay et al. 2018, closed form for piecewise-linear nets from the logit gradient "
        "(α = g²/(2g² + Σ_ab A_ab g³), 0 where the denominator is 0; as pytorch-grad-cam without its eps)." + kUpsample},
       [](Graph& g, const Tensor& x, const Target& t, ParamReader& pr) {
         require_images(x, "grad-cam++");
         int layer = cam_layer(g, pr.text("layer"), "grad-cam++", &t);
         return Result{to_input(grad_cam_pp_maps(g, x, t, layer), x), {}, false, {}};
       }});
  registry.push_back(
      {{"score-cam", "Score-CAM: activation maps as input masks, weighted by the target's softmax probability",
        {layer_param, {"batch", "256", "masked inputs per forward pass"}},
        "Wang et al. 2020, the official code's variant: weight_k = softmax_c(f(x ⊙ minmax(upsample(A^k)))) "
        "(the paper's increase over a baseline is not subtracted); constant maps skipped; ReLU, then min-max to [0,1]. "
        "A unit target (LAYER:C...) has no softmax: its raw value weights the maps, as RISE does." +
            kUpsample},
       [](Graph& g, const Tensor& x, const Target& t, ParamReader& pr) {
         require_images(x, "score-cam");
         int layer = cam_layer(g, pr.text("layer"), "score-cam");
         int batch = pr.integer("batch");
         return Result{broadcast_channels(score_cam_maps(g, x, t, layer, batch), x.dim(1)), {}, false, {}};
       }});
}

}  // namespace gb::explain
