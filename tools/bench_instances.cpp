// Benchmark rows of the instances family: training points per second of last-layer influence over
// 60,000 training images for one test image (lenet5), all-parameter influence by LiSSA, TracIn over
// 3 checkpoints, and MMD-critic over one class's 6,000 images. With --compare-torch,
// tools/bench/torch_instances.py times the same computations the way Captum (NaiveInfluenceFunction,
// TracInCP), Koh & Liang (LiSSA) and Kim (MMD-critic) compute them (the Captum rates per training
// point, timed on fewer points: their cost per point does not depend on the count).
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/threads.h"
#include "explain/instances/instances.h"
#include "explain/instances/mmd_critic.h"
#include "tools/bench.h"
#include "train/presets.h"

namespace gb {

namespace {

namespace inst = explain::instances;

constexpr int kTrain = 60000, kClass = 6000, kLissaDepth = 5000;
// Koh & Liang's scale 25 is for trained models; the untrained preset's per-sample Hessians on
// noise have eigenvalues past 2·10⁴ (at 10⁴ the recursion diverged and the whole bench stopped), and
// the rate does not depend on the scale.
constexpr const char* kLissaScale = "100000";

inst::Examples noise_examples(const Graph& g, int n, uint64_t seed) {
  inst::Examples e{bench_noise(g.shape(-1, n), seed), std::vector<int>(n)};
  for (int i = 0; i < n; ++i) e.y[i] = (7 * i + 3) % g.classes();
  return e;
}

// The reference rates, keyed by "what/detail".
std::map<std::string, double> influence_reference_rates(const BenchContext& c) {
  std::map<std::string, double> out;
  const std::string args = "--bench --threads " + std::to_string(threads()) + " --train " + std::to_string(kTrain) +
                           " --lissa-depth " + std::to_string(kLissaDepth) + " --lissa-scale " + kLissaScale + " --mmd-points " + std::to_string(kClass);
  for (const std::string& line : run_reference_script(c, "torch_instances.py", args)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    out[j["what"].get<std::string>() + "/" + j["detail"].get<std::string>()] = j["per_second"].get<double>();
  }
  return out;
}

void bench_instances(const BenchContext& c) {
  std::map<std::string, double> ref;
  if (c.compare) ref = influence_reference_rates(c);
  // A row of training points per second, with the reference's rate under `key` when there is one.
  auto report = [&](const std::string& model, const std::string& what, const std::string& detail, double rate,
                    const std::string& key, const std::string& who) {
    BenchRow r;
    r.model = model, r.what = what, r.detail = detail, r.rate = rate;
    r.unit = model == "pixels" ? "images/s" : "training points/s";
    if (ref.count(key)) r.reference = ref[key], r.reference_name = who;
    c.report(r);
  };
  Graph g = make_preset("lenet5");
  const inst::Examples train = noise_examples(g, kTrain, 11), test = noise_examples(g, 1, 12);
  auto run = [&](const std::string& method, const explain::Params& p, const inst::Context& ctx) {
    inst::explain(g, train, test, method, p, ctx);
  };
  report("lenet5", "influence", "last layer, direct, 60000 points",
         items_per_second([&] { run("influence", {}, {}); }, kTrain, c.seconds), "influence/last layer", "captum");
  const explain::Params lissa = {{"layers", "all"}, {"solver", "lissa"}, {"lissa_samples", "1"}, {"lissa_scale", kLissaScale}};
  report("lenet5", "influence", "all parameters, lissa depth 5000 batch 1",
         items_per_second([&] { run("influence", lissa, {}); }, kTrain, c.seconds), "influence/all parameters, lissa",
         "torch");
  std::vector<inst::Checkpoint> ckpts;
  for (uint64_t seed : {1, 2, 3}) {
    Graph ck = make_preset("lenet5", {}, 0, seed);
    inst::Checkpoint k{"seed " + std::to_string(seed), {}, 0.01};
    for (auto& [name, p] : ck.named_params()) k.params[name] = p->value.clone();
    ckpts.push_back(std::move(k));
  }
  inst::Context tracin_ctx;
  tracin_ctx.checkpoints = &ckpts;
  report("lenet5", "tracin", "3 checkpoints, all parameters, 60000 points",
         items_per_second([&] { run("tracin", {}, tracin_ctx); }, kTrain, c.seconds), "tracin/3 checkpoints", "captum");
  const Tensor one_class = bench_noise(Shape{kClass, 784}, 13);
  report("pixels", "mmd-critic", "6000 images, 10 prototypes, 5 criticisms",
         items_per_second([&] { inst::mmd_critic_features(one_class, 10, 5, 1.0 / 784); }, kClass, c.seconds),
         "mmd-critic/one class", "mmd-critic (numpy)");
}

}  // namespace

static const RegisterBench registered_instances_bench("instances", bench_instances);

}  // namespace gb
