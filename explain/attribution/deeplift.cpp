// DeepLIFT (Rescale) as backward rules over a [x; x'] batch; see deeplift.h for the conventions.
#include "explain/attribution/deeplift.h"

#include <algorithm>
#include <cmath>

#include "engine/layers.h"
#include "explain/attribution/gradient.h"

namespace gb::explain {

static constexpr double kEps = 1e-10;  // |Δin| below this: use the gradient (Captum's eps)

// Each call holds whole pairs: rows 2p (input) and 2p + 1 (reference). Both rows of a pair get
// the same multipliers.
static void rescale(const Activation& act, BackwardCall& c) {
  if (!c.g_in[0]) return;
  const int pairs = c.g_out.batch() / 2;
  const size_t D = c.g_out.sample_size();
  for (int p = 0; p < pairs; ++p) {
    const size_t i0 = 2 * size_t(p) * D, r0 = i0 + D;
    const float *x = c.in[0]->data(), *y = c.out.data(), *gy = c.g_out.data();
    float* gx = c.g_in[0]->data();
    for (size_t k = 0; k < D; ++k) {
      const double dx = double(x[i0 + k]) - x[r0 + k];
      const float m = std::fabs(dx) < kEps ? gy[i0 + k] * act.df(x[i0 + k], y[i0 + k])
                                           : float(gy[i0 + k] * ((double(y[i0 + k]) - y[r0 + k]) / dx));
      gx[i0 + k] = gx[r0 + k] = m;
    }
  }
}

static void maxpool_rule(const MaxPool2d& mp, BackwardCall& c) {
  if (!c.g_in[0]) return;
  Tensor& gx = *c.g_in[0];
  gx.fill(0.f);
  const Tensor& x = *c.in[0];
  const int C = gx.dim(1), HW = gx.dim(2) * gx.dim(3), OHW = c.g_out.dim(2) * c.g_out.dim(3);
  std::vector<double> u(HW), grad(HW);
  std::vector<int32_t> winners(c.out.size());
  mp.winners(x, winners.data());
  for (int p = 0; p < gx.dim(0) / 2; ++p)
    for (int ch = 0; ch < C; ++ch) {
      const size_t pl = size_t(2 * p) * C + ch, pr = pl + C;  // the same plane of the input and the reference
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

Result deeplift(Graph& g, const Tensor& x, const Target& target, const DeepLiftOptions& o) {
  const int N = x.batch(), chunk = std::max(1, o.internal_batch);
  Tensor base = full_baseline(x, o.baseline, o.baseline_value, "deeplift");
  const BackwardRules rules = deeplift_rules(g);
  Result res;
  res.attribution = Tensor(o.layer < 0 ? x.shape() : g.shape(o.layer, N));
  const size_t A = res.attribution.sample_size(), D = x.sample_size();
  BackpropOptions bo;
  bo.rules = &rules;
  bo.layer = o.layer;
  bo.per_sample_rules = true;  // each call holds whole (input, reference) pairs
  bo.row_block = 2;
  for (int b = 0; b < N; b += chunk) {
    const int e = std::min(N, b + chunk), n = e - b;
    Tensor pairs(Shape::batch_of(2 * n, g.input_shape()));
    std::vector<int> samples;
    for (int s = 0; s < n; ++s) {
      std::copy_n(x.data() + size_t(b + s) * D, D, pairs.data() + size_t(2 * s) * D);
      std::copy_n(base.data() + size_t(b + s) * D, D, pairs.data() + size_t(2 * s + 1) * D);
      samples.insert(samples.end(), {b + s, b + s});
    }
    const Target pair_target = target.gather(samples);
    bo.chunk = 2 * n;  // one chunk, so the activations below belong to these pairs
    const Tensor m = backprop(g, pairs, pair_target, bo);
    const Tensor& a = g.activation(o.layer);
    std::vector<double> f(2 * n);
    pair_target.values(g.activation(target.at(g)), 0, 2 * n, f.data());
    for (int s = 0; s < n; ++s) {
      double sum = 0;
      float* d = res.attribution.data() + size_t(b + s) * A;
      const float *ms = m.data() + size_t(2 * s) * A, *as = a.data() + size_t(2 * s) * A, *ar = as + A;
      for (size_t i = 0; i < A; ++i) sum += d[i] = (as[i] - ar[i]) * ms[i];
      res.delta.push_back(sum - (f[2 * s] - f[2 * s + 1]));
    }
  }
  return res;
}

void add_deeplift_methods(std::vector<Method>& reg) {
  reg.push_back({{"deeplift",
                  "DeepLIFT Rescale: multipliers Δout/Δin at nonlinearities, (x − x')·m; delta = summation-to-delta error",
                  {{"baseline", "0", "constant reference value in the model's input space, or a tensor (glassbox explain and Python: black (default), white, gray, mean, blur[:SIGMA], uniform:SEED, a number or FILE.npy)"},
                   {"layer", "", "stop at this layer: (a − a')·m at its output (shaped like it)"},
                   {"internal_batch", "128", "samples per forward (each with its reference: 2x rows)", 1, 65536}},
                  "Captum DeepLift (Rescale, eps 1e-10, input and reference as one batch of 2N rows, interleaved); max-pool per Captum's "
                  "rule with mirrored reference multipliers, so summation-to-delta is exact. A constant baseline gives "
                  "constant feature maps whose max-pool windows tie; which element wins a tie then depends on float "
                  "rounding, and attributions may differ from Captum's by a few percent (summation-to-delta still holds)"},
                 [](Graph& g, const Tensor& x, const Target& t, ParamReader& r) {
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
