// Benchmark rows of the metrics family (glassbox bench): deletion + insertion curves of 784
// one-pixel steps for 256 lenet5 images, a full cascading sanity check of 5 methods, and the
// metrics Quantus has, side by side with tools/bench/torch_metrics.py (Quantus's loops re-implemented
// in plain PyTorch/NumPy, run on the same weights, inputs and attributions; --compare-torch).
// Rates are images per second; a row whose single run takes more than a third of the time budget
// is timed by that one run (and its warm-up) instead of five rounds.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/npy.h"
#include "engine/model_file.h"
#include "engine/threads.h"
#include "explain/attribution/explain.h"
#include "explain/metrics/metrics.h"
#include "tools/bench.h"
#include "tools/inputs.h"
#include "train/presets.h"

namespace gb {

namespace {

double seconds_of(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return seconds_since(t0);
}

// Runs per second: five rounds when a run is short, else the better of two single runs.
double runs_per_second(const std::function<void()>& fn, double budget) {
  const double first = seconds_of(fn);
  if (first < budget / 3) return calls_per_second(fn, budget);
  return 1.0 / std::min(first, seconds_of(fn));
}

struct Setup {
  Graph g = make_preset("lenet5");
  Tensor x;
  std::vector<int> y;
  Tensor a;  // saliency of x (Quantus's a_batch)
  explicit Setup(int n) : x(bench_noise(g.shape(-1, n), 7)) {
    for (int i = 0; i < n; ++i) y.push_back(i % g.classes());
    a = explain::explain(g, x, y, "saliency").attribution;
  }
  metrics::Evaluation run(const std::string& metric, const metrics::Params& p = {}, const Tensor& xs = {}) {
    const Tensor& in = xs.empty() ? x : xs;
    std::vector<int> t(y.begin(), y.begin() + in.batch());
    return metrics::evaluate(g, in, t, {"saliency", {}, a.slice(0, in.batch()).clone()}, metric, p);
  }
};

BenchRow row(const std::string& what, const std::string& detail, int batch) {
  BenchRow r;
  r.model = "lenet5", r.what = what, r.detail = detail, r.batch = batch, r.unit = "images/s";
  return r;
}

// The largest |glassbox − reference| over the per-sample values of a row.
double max_difference(const std::vector<double>& ours, const nlohmann::json& theirs) {
  double m = 0;
  for (size_t i = 0; i < ours.size() && i < theirs.size(); ++i) m = std::max(m, std::fabs(ours[i] - theirs[i].get<double>()));
  return m;
}

void bench_metrics(const BenchContext& c) {
  Setup s(256);
  const Tensor x64 = s.x.slice(0, 64).clone();
  metrics::Evaluation del, ins, flip;
  BenchRow curves = row("deletion+insertion", "(784 steps of 1 pixel)", 256);
  curves.rate = 256 * runs_per_second([&] { del = s.run("deletion"), ins = s.run("insertion"); }, c.seconds);
  BenchRow pixel = row("pixel-flipping", "(784 steps, as Quantus)", 64);
  pixel.rate = 64 * runs_per_second([&] { flip = s.run("pixel-flipping", {}, x64); }, c.seconds);
  BenchRow sens = row("max-sensitivity", "(saliency, 200 samples)", 64);
  sens.rate = 64 * runs_per_second([&] { s.run("max-sensitivity", {}, x64); }, c.seconds);
  BenchRow mprt = row("cascading-randomisation", "(saliency, 5 layers)", 64);
  mprt.rate = 64 * runs_per_second([&] { s.run("cascading-randomisation", {}, x64); }, c.seconds);
  // The sanity check of Adebayo et al. for five methods: every stage explained, four similarity
  // measures per stage.
  BenchRow sanity = row("sanity check", "(5 methods x 6 stages)", 64);
  sanity.rate = 64 * runs_per_second(
                         [&] {
                           for (const char* m : {"saliency", "input-x-gradient", "integrated-gradients",
                                                 "guided-backprop", "smoothgrad"})
                             metrics::evaluate(s.g, x64, std::vector<int>(s.y.begin(), s.y.begin() + 64), {m, {}, {}},
                                               "cascading-randomisation");
                         },
                         c.seconds);
  if (c.compare) {
    const std::string dir = (std::filesystem::temp_directory_path() / "glassbox-bench-metrics").string();
    std::filesystem::create_directories(dir);
    save_model(dir + "/lenet5.safetensors", s.g);
    write_npy(dir + "/x.npy", s.x);
    write_npy(dir + "/a.npy", s.a);
    std::vector<int64_t> labels(s.y.begin(), s.y.end());
    write_npy_labels(dir + "/y.npy", labels);
    for (const std::string& line : run_reference_script(c, "torch_metrics.py",
                                                        "--dir " + dir + " --threads " + std::to_string(threads()))) {
      const nlohmann::json j = nlohmann::json::parse(line);
      const std::string row = j["row"];
      const nlohmann::json values = nlohmann::json::parse(read_file(j["values"].get<std::string>()));
      BenchRow* r = row == "deletion+insertion" ? &curves : row == "pixel-flipping" ? &pixel : row == "max-sensitivity" ? &sens
                    : row == "mprt" ? &mprt : nullptr;
      if (!r) continue;
      r->reference = j["per_second"];
      r->reference_name = "quantus-style torch";
      if (row == "pixel-flipping")
        r->detail += " max|AUC diff| " + std::to_string(max_difference(flip.values, values["values"]));
      if (row == "deletion+insertion")
        r->detail += " max|AUC diff| " + std::to_string(std::max(max_difference(del.values, values["deletion"]),
                                                                  max_difference(ins.values, values["insertion"])));
    }
  }
  for (const BenchRow* r : {&curves, &pixel, &sens, &mprt, &sanity}) c.report(*r);
}

const RegisterBench registered_metrics_bench("metrics", bench_metrics);

}  // namespace

}  // namespace gb
