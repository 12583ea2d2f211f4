// DeepLIFT (Rescale) as backward rules over a [x; x'] batch; see deeplift.h for the conventions.
#include "explain/attribution/deeplift.h"

#include <algorithm>
#include <cmath>

#include "engine/layers.h"
#include "explain/attribution/gradient.h"

namespace gb::explain {

static constexpr double kEps = 1e-10;  // |Δin| below this: use the gradient (Captum's eps)

static void rescale(const Activation& act, BackwardCall& c) {
  if (!c.g_in[0]) return;
  const size_t half = c.g_out.size() / 2;
  const float *x = c.in[0]->data(), *y = c.out.data(), *gy = c.g_out.data();
  float* gx = c.g_in[0]->data();
  for (size_t k = 0; k < half; ++k) {
    const double dx = double(x[k]) - x[half + k];
    const float m = std::fabs(dx) < kEps ? gy[k] * act.df(x[k], y[k]) : float(gy[k] * ((double(y[k]) - y[half + k]) / dx));
    gx[k] = gx[half + k] = m;
  }
}

static void maxpool_rule(const MaxPool2d& mp, BackwardCall& c) {
  if (!c.g_in[0]) return;
  Tensor& gx = *c.g_in[0];
  gx.fill(0.f);
  const Tensor& x = *c.in[0];
  const int HW = gx.dim(2) * gx.dim(3), OHW = c.g_out.dim(2) * c.g_out.dim(3);
  const size_t planes = size_t(gx.dim(0)) * gx.dim(1) / 2;  // planes of the input half
  std::vector<double> u(HW), grad(HW);
  std::vector<int32_t> winners(c.out.size());
  mp.winners(x, winners.data());
  for (size_t pl = 0; pl < planes; ++pl) {
    const size_t pr = pl + planes;  // the same plane of the reference
    const float *g = c.g_out.data() + pl * OHW, *y = c.out.data() + pl * OHW, *yr = c.out.data() + pr * OHW;
    const int32_t *am = winners.data() + pl * OHW, *amr = winners.data() + pr * OHW;
    std::fill(u.begin(), u.end(), 0.0);
    std::fill(grad.begin(), grad.end(), 0.0);
    for (int o = 0; o < OHW; ++o) {
      const double ymax = std::max(y[o], yr[o]);
      u[am[o]] += g[o] * (ymax - yr[o]);
      u[amr[o]] += g[o] * (y[o] - ymax);
      grad[am[o]] += g[o];
    }
    const float *xp = x.data() + pl * HW, *xr = x.data() + pr * HW;
    float *d = gx.data() + pl * HW, *dr = gx.data() + pr * HW;
    for (int i = 0; i < HW; ++i) {
      const double dx = double(xp[i]) - xr[i];
      d[i] = dr[i] = float(std::fabs(dx) < kEps ? grad[i] : u[i] / dx);
    }
  }
}

BackwardRules deeplift_rules(const Graph& g) {
  BackwardRules rules(g.size());
  for (int i = 0; i < g.size(); ++i) {
    Layer& l = g.layer(i);
    if (auto* a = dynamic_cast<const Activation*>(&l))
      rules[i] = [a](BackwardCall& c) { rescale(*a, c); };
    else if (auto* mp = dynamic_cast<const MaxPool2d*>(&l))
      rules[i] = [mp](BackwardCall& c) { maxpool_rule(*mp, c); };
  }
  return rules;
}

Result deeplift(Graph& g, const Tensor& x, const std::vector<int>& targets, const DeepLiftOptions& o) {
  const int N = x.batch(), chunk = std::max(1, o.internal_batch);
  Tensor base = full_baseline(x, o.baseline, o.baseline_value, "deeplift");
  BackwardRules rules = deeplift_rules(g);
  Result res;
  res.attribution = Tensor(o.layer < 0 ? x.shape() : g.shape(o.layer, N));
  const size_t A = res.attribution.sample_size();
  const int K = g.classes();
  for (int b = 0; b < N; b += chunk) {
    const int e = std::min(N, b + chunk), n = e - b;
    Tensor pair = concat({x.slice(b, e), base.slice(b, e)});
    std::vector<int> tg(targets.begin() + b, targets.begin() + e);
    tg.insert(tg.end(), targets.begin() + b, targets.begin() + e);
    // One chunk of 2n rows, so the activations below belong to this pair batch.
    Tensor m = backprop(g, pair, tg, &rules, o.layer, 2 * n);
    const Tensor& a = g.activation(o.layer);
    const Tensor& logits = g.activation(g.output());
    for (int s = 0; s < n; ++s) {
      double sum = 0;
      float* d = res.attribution.data() + size_t(b + s) * A;
      const float *ms = m.data() + size_t(s) * A, *as = a.data() + size_t(s) * A, *ar = a.data() + size_t(n + s) * A;
      for (size_t i = 0; i < A; ++i) sum += d[i] = (as[i] - ar[i]) * ms[i];
      const double df = double(logits[size_t(s) * K + targets[b + s]]) - logits[size_t(n + s) * K + targets[b + s]];
      res.delta.push_back(sum - df);
    }
  }
  return res;
}

void add_deeplift_methods(std::vector<Method>& reg) {
  reg.push_back({{"deeplift",
                  "DeepLIFT Rescale: multipliers Δout/Δin at nonlinearities, (x − x')·m; delta = summation-to-delta error",
                  {{"baseline", "0", "constant reference value in the model's input space, or a tensor (glassbox explain: black, white, a number or FILE.npy; default black)"},
                   {"layer", "", "stop at this layer: (a − a')·m at its output (shaped like it)"},
                   {"internal_batch", "128", "samples per forward (each with its reference: 2x rows)"}},
                  "Captum DeepLift (Rescale, eps 1e-10, input and reference as one 2N batch); max-pool per Captum's "
                  "rule with mirrored reference multipliers, so summation-to-delta is exact. A constant baseline gives "
                  "constant feature maps whose max-pool windows tie; which element wins a tie then depends on float "
                  "rounding, and attributions may differ from Captum's by a few percent (summation-to-delta still holds)"},
                 [](Graph& g, const Tensor& x, const std::vector<int>& t, ParamReader& r) {
                   DeepLiftOptions o;
                   if (const Tensor* b = r.tensor("baseline"))
                     o.baseline = *b;
                   else
                     o.baseline_value = float(r.number("baseline"));
                   o.layer = read_layer(r, g);
                   o.internal_batch = r.integer("internal_batch");
                   return deeplift(g, x, t, o);
                 }});
}

}  // namespace gb::explain
