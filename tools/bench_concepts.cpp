// Benchmark rows of the concepts family (glassbox bench --families concepts): a TCAV run of 3
// concepts x 10 random runs at lenet5's relu2 (100 examples per set, 500 inputs: 40 CAVs, one
// backward per batch of inputs). Presets are untrained and the sets generated patterns and noise:
// the rates do not depend on the values. With --compare-torch, tools/bench/torch_concepts.py times
// the same run the way Captum's TCAV computes it (sklearn's SGDClassifier re-implemented in NumPy).
#include <unistd.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "data/npy.h"
#include "engine/model_file.h"
#include "engine/threads.h"
#include "explain/concepts/concepts.h"
#include "explain/concepts/patterns.h"
#include "tools/bench.h"
#include "train/presets.h"

namespace gb {

namespace {

namespace fs = std::filesystem;
namespace cc = concepts;

constexpr int kConceptSize = 100, kRuns = 10, kInputs = 500;

cc::TcavRequest tcav_request(const Graph& g) {
  cc::TcavRequest q;
  const Shape s = g.input_shape();
  for (const char* kind : {"stripes-h", "stripes-v", "dots"})
    q.concepts.push_back({kind, cc::make_patterns(cc::parse_pattern(kind), s, kConceptSize, 1)});
  q.random_pool = cc::make_patterns(cc::parse_pattern("noise"), s, (kRuns + 1) * kConceptSize, 2);
  q.inputs = cc::make_patterns(cc::parse_pattern("blobs"), s, kInputs, 3);
  q.target = Target({0});
  q.layers = {g.at("relu2")};
  return q;
}

// The reference's rates ("tcav", "tcav-scores"), from the same model and sets written to a folder.
std::map<std::string, double> torch_rates(const BenchContext& c, const Graph& g, const cc::TcavRequest& q) {
  const fs::path dir = fs::temp_directory_path() / ("glassbox_bench_concepts_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::map<std::string, double> out;
  try {
    save_model((dir / "model.safetensors").string(), g);
    std::vector<Tensor> sets;
    for (const cc::ConceptSet& s : q.concepts) sets.push_back(s.x);
    write_npy((dir / "concepts.npy").string(), concat(sets));
    write_npy((dir / "pool.npy").string(), q.random_pool);
    write_npy((dir / "inputs.npy").string(), q.inputs);
    const nlohmann::json cfg = {{"layer", "relu2"}, {"target", 0}, {"runs", kRuns},
                                {"random_size", kConceptSize}, {"concepts", q.concepts.size()}};
    atomic_write((dir / "bench.json").string(), cfg.dump());
    const std::string args = "--bench " + dir.string() + " --threads " + std::to_string(threads()) + " --seconds " +
                             std::to_string(c.seconds);
    for (const std::string& line : run_reference_script(c, "torch_concepts.py", args)) {
      const nlohmann::json j = nlohmann::json::parse(line);
      out[j.at("key").get<std::string>()] = j.at("per_second").get<double>();
    }
  } catch (...) {
    fs::remove_all(dir);
    throw;
  }
  fs::remove_all(dir);
  return out;
}

void bench_concepts(const BenchContext& c) {
  Graph lenet = make_preset("lenet5");
  const cc::TcavRequest q = tcav_request(lenet);
  const cc::Params params = {{"runs", std::to_string(kRuns)}, {"random_size", std::to_string(kConceptSize)}};
  const double rate = calls_per_second([&] { cc::tcav(lenet, q, params); }, c.seconds);
  std::map<std::string, double> torch;
  if (c.compare) torch = torch_rates(c, lenet, q);
  BenchRow r{"lenet5", "concepts tcav", "3 concepts x 10 runs at relu2, 100 per set, 500 inputs; runs/s", kInputs, rate,
             0, ""};
  if (torch.count("tcav")) r.reference = torch["tcav"], r.reference_name = "captum";
  c.report(r);
}

}  // namespace

static const RegisterBench reg("concepts", bench_concepts);

}  // namespace gb
