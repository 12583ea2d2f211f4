// Benchmark rows of the feature-visualization family (glassbox bench): class visualization of all
// ten lenet5 classes (256 steps, one batch), all channels of camnet's first convolution, and the
// top-9 patches of every channel of camnet's relu1 over 10,000 images with their DeconvNet
// projections. Presets are untrained and inputs seeded noise: the rates do not depend on values.
// With --compare-torch, tools/bench/torch_visualize.py runs the same loops in plain PyTorch (as
// Lucent/CS231n and Captum's Deconvolution compute them).
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/threads.h"
#include "explain/visualize/visualize.h"
#include "tools/bench.h"
#include "train/presets.h"

namespace gb {

namespace {

namespace vz = visualize;

// The am settings of every row: 256 Adam steps with jitter 1, L2, blur every 4 and clipping
// (the defaults), timed as one call.
double am_rate(Graph& g, const std::string& spec, const BenchContext& c, int& units) {
  vz::Request q;
  q.units = vz::parse_units(g, spec);
  units = int(q.units.size());
  return units * calls_per_second([&] { vz::visualize(g, q, "am", {{"steps", "256"}}); }, c.seconds);
}

double top_patches_rate(Graph& g, const BenchContext& c) {
  vz::Request q;
  q.units = vz::parse_units(g, "relu1:all");
  q.data = bench_noise(Shape{10000, 1, 28, 28}, 7);
  return 10000 * calls_per_second([&] { vz::visualize(g, q, "top-patches", {{"k", "9"}}); }, c.seconds);
}

void bench_visualize(const BenchContext& c) {
  std::map<std::string, double> torch;
  if (c.compare) torch = reference_rates(c, "torch_visualize.py");
  auto row = [&](const std::string& key, const std::string& model, const std::string& what, const std::string& detail,
                 const std::string& unit, int batch, double rate) {
    BenchRow r{model, what, detail, batch, rate, 0, "", unit};
    if (torch.count(key)) r.reference = torch[key], r.reference_name = "torch";
    c.report(r);
  };
  Graph lenet = make_preset("lenet5");
  int units = 0;
  double rate = am_rate(lenet, "class:all", c, units);
  row("lenet5/am-classes", "lenet5", "visualize am", "10 classes x 256 steps", "units/s", units, rate);
  Graph camnet = make_preset("camnet");
  rate = am_rate(camnet, "conv1:all", c, units);
  row("camnet/am-conv1", "camnet", "visualize am", "conv1 32 channels x 256 steps", "units/s", units, rate);
  rate = top_patches_rate(camnet, c);
  row("camnet/top-patches", "camnet", "visualize top-patches", "relu1 32 channels, top 9 of 10k + deconvnet", "images/s",
      10000, rate);
}

}  // namespace

static const RegisterBench registered_visualize_bench("visualize", bench_visualize);

}  // namespace gb
