// Benchmark rows of the attacks family (glassbox bench): FGSM (epsilon 0.1), PGD-40 (radius
// 0.1, step 0.01) and the top-k attack on saliency (10 steps) on 256 lenet5 images, each timed as
// one call of attacks::attack (which also predicts every input before and after). The preset is untrained and the inputs seeded noise with
// labels (7i + 3) mod 10: the rates do not depend on the values. With --compare-torch,
// tools/bench/torch_attacks.py runs captum.robust's FGSM and PGD, re-implemented in plain PyTorch,
// on the same settings.
#include <map>
#include <nlohmann/json.hpp>

#include "engine/threads.h"
#include "explain/attacks/attacks.h"
#include "tools/bench.h"
#include "train/presets.h"

namespace gb {

namespace {

void bench_attacks(const BenchContext& c) {
  std::map<std::string, double> torch;
  if (c.compare) torch = reference_rates(c, "torch_attacks.py");
  Graph g = make_preset("lenet5");
  constexpr int N = 256;
  attacks::Request q;
  q.inputs = bench_noise(g.shape(-1, N), 7);
  for (int n = 0; n < N; ++n) q.labels.push_back((7 * n + 3) % 10);
  auto row = [&](const std::string& key, const std::string& what, const std::string& detail, const attacks::Params& p,
                 const std::string& method) {
    const double rate = N * calls_per_second([&] { attacks::attack(g, q, method, p); }, c.seconds);
    BenchRow r{"lenet5", what, detail, N, rate, 0, "", "images/s"};
    if (torch.count(key)) r.reference = torch[key], r.reference_name = "captum-style torch";
    c.report(r);
  };
  row("lenet5/fgsm", "attack fgsm", "eps 0.1", {{"epsilon", "0.1"}}, "fgsm");
  row("lenet5/pgd-40", "attack pgd-40", "Linf 0.1, step 0.01",
      {{"radius", "0.1"}, {"step_size", "0.01"}, {"step_num", "40"}}, "pgd");
  // Ghorbani et al.'s top-k attack on saliency: per step, a surrogate map, one input
  // Hessian-vector product pass and the real map (no reference library computes it).
  row("lenet5/explanation-topk-10", "attack explanation-topk", "saliency, 10 steps",
      {{"epsilon", "0.03"}, {"steps", "10"}}, "explanation-topk");
}

}  // namespace

static const RegisterBench registered_attacks_bench("attacks", bench_attacks);

}  // namespace gb
