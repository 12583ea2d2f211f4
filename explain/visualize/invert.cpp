// Network inversion (Mahendran & Vedaldi 2015): from noise, find the image whose representation at
// layer L matches the input's,
//   x* = argmin ‖φ_L(x) − φ_L(x₀)‖² / ‖φ_L(x₀)‖² + λ_α‖x‖_α^α + λ_TV·TV_β(x),
// for every chosen layer of the model in one call: ascend() on the inversion objective, one batch
// of inputs per layer. What is lost with depth is what the layer does not keep.
#include <climits>
#include <stdexcept>

#include "explain/visualize/method.h"

namespace gb::visualize {

namespace {

// "all" (every node), or layer names separated by commas.
std::vector<int> read_layers(ParamReader& r, const Graph& g) {
  const std::string spec = r.text("layers");
  std::vector<int> nodes;
  if (spec == "all") {
    for (int i = 0; i < g.size(); ++i) nodes.push_back(i);
    return nodes;
  }
  return named_layers(g, spec, "invert");
}

Result run_invert(Graph& g, const Request& q, ParamReader& r) {
  require_inputs(q, "invert");
  if (!q.units.empty()) throw std::invalid_argument("invert inverts layers (--param layers=...), it takes no --unit");
  AscentOptions o = read_ascent(r, g, q);
  o.penalties.alpha_norm = read_number(r, "lambda_alpha", 0, 1e6);
  o.penalties.alpha = read_number(r, "alpha", 1, 12);
  const std::vector<int> layers = read_layers(r, g);
  const uint64_t seed = uint64_t(read_int(r, "seed", 0, INT_MAX));
  const std::string kind = read_choice(r, "start", {"noise", "constant"});
  const double init_std = read_number(r, "init_std", 0, 10);
  const int N = q.inputs.batch(), L = int(layers.size());
  if (long(N) * L > 4096) throw std::out_of_range("invert: " + std::to_string(N * L) + " images, at most 4096");

  Result res;
  res.panels.push_back({"input", Tensor(Shape::batch_of(N * L, g.input_shape())), Draw::pixels, true});
  res.panels.push_back({"image", Tensor(Shape::batch_of(N * L, g.input_shape())), Draw::pixels});
  res.rows.resize(N * L);
  res.per_line = L;
  const size_t D = q.inputs.sample_size();
  const Progress progress = o.progress;
  for (int l = 0; l < L; ++l) {
    const int node = layers[l];
    // The same start for every input (its seed depends on the layer only), so inputs one by one
    // give the same images as a batch.
    o.row_seeds.assign(N, mix_seed(seed, uint64_t(node)));
    if (progress) o.progress = [&, l](int done, int total) { progress(l * total + done, L * total); };
    const Tensor reference = activations(g, q.inputs, {node})[0];
    const Tensor start = start_images(g, kind == "noise" ? "noise" : "constant", 0.5, init_std, o.row_seeds, q.bounds);
    const AscentResult a = ascend(g, inversion_objective(g, node, reference), start, o);
    for (int n = 0; n < N; ++n) {
      const int i = n * L + l;
      std::copy_n(a.x.data() + size_t(n) * D, D, res.panels[1].values.data() + size_t(i) * D);
      std::copy_n(q.inputs.data() + size_t(n) * D, D, res.panels[0].values.data() + size_t(i) * D);
      Row& row = res.rows[i];
      row.name = input_name(q, n) + "_" + g.layer(node).name;
      row.values["start_error"] = -a.start[n];
      row.values["error"] = -a.value[n];  // ‖φ(x*) − φ(x₀)‖² / ‖φ(x₀)‖²
      row.values["penalty"] = a.penalty[n];
      row.values["steps"] = a.steps[n];
      row.curves["objective"] = a.curve[n];
      row.caption = g.layer(node).name + "\nerror " + number(-a.value[n]);
    }
  }
  return res;
}

}  // namespace

void add_invert_methods(std::vector<Method>& reg) {
  AscentDefaults d;
  d.steps = "200";
  d.tv = "0.001";
  d.jitter = "0";
  std::vector<ParamInfo> p = ascent_params(d);
  p.insert(p.end(), {
      {"layers", "all", "the layers to invert: all, or names separated by commas"},
      {"lambda_alpha", "1e-7", "lambda_alpha of the alpha-norm penalty lambda_alpha |x|_alpha^alpha (input space)"},
      {"alpha", "6", "alpha of that norm, 1..12 (Mahendran & Vedaldi: 6)"},
      explain::seed_param("0", "random seed of the start (the same for every input; one per layer)"),
      {"start", "noise", "noise (pixel 0.5 + N(0, init_std^2)) or constant (pixel 0.5)"},
      {"init_std", "0.1", "the pixel noise of start=noise, 0..10"},
  });
  reg.push_back({{"invert",
                  "network inversion: for each input and each chosen layer, the image whose representation there "
                  "matches the input's (normalized squared distance plus alpha-norm and TV priors)",
                  p,
                  "Mahendran & Vedaldi 2015 (loss |phi(x)-phi(x0)|^2/|phi(x0)|^2, alpha 6, TV beta 2, as "
                  "pytorch-cnn-visualizations, which weights its data term 0.1 and TV 1e-8: relative to the data "
                  "term the alpha prior is 10x weaker here, TV 1e4x stronger); priors are plain sums in the model's "
                  "input space (the paper "
                  "normalizes them by the image size and range); TV also couples the last row and column (the "
                  "trimmed sum leaves the corner pixel free); Adam instead of momentum SGD; clipping to the pixel "
                  "range"},
                 run_invert});
}

}  // namespace gb::visualize
