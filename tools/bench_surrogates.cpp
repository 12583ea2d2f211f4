// Benchmark rows of the surrogates family (glassbox bench): a distillation training step into a
// depth-8 soft decision tree and into lenet5 (teacher lenet5, batch 64: forward, loss, penalty,
// backward), measuring camnet's filter drops for pruning (conv1's 32 filters on 1,000 images),
// Dimopoulos's partial derivatives and MIV on mlp, an image anchor on lenet5 and a rule tree over
// pooled pixels. Presets are untrained and inputs seeded noise: the rates do not depend on values.
// With --compare-torch, tools/bench/torch_surrogates.py runs the distillation steps, the filter
// drops, PaD and MIV the same way in plain PyTorch (there is no reference library for these; the
// soft tree is written as the PyTorch soft-tree implementations write it).
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/architecture.h"
#include "engine/threads.h"
#include "explain/surrogates/distill.h"
#include "explain/surrogates/importance.h"
#include "explain/surrogates/pruning.h"
#include "explain/surrogates/rule_tree.h"
#include "explain/surrogates/rules.h"
#include "tools/bench.h"
#include "train/presets.h"

namespace gb {

namespace {

namespace sg = explain::surrogates;

constexpr int kBatch = 64, kPruneImages = 1000, kPadSamples = 1000, kMivSamples = 100, kTreeSamples = 10000;

std::vector<int> noise_labels(int n, int classes) {
  std::vector<int> y(n);
  for (int i = 0; i < n; ++i) y[i] = (7 * i + 3) % classes;
  return y;
}

// One distillation step of `student` from `teacher` on a batch: the teacher's forward, the
// student's training forward, the loss (and the tree penalty), the backward with parameter
// gradients. No optimizer step (the reference takes none either).
double distill_rate(Graph& student, Graph& teacher, const BenchContext& c) {
  const Tensor x = bench_noise(Shape::batch_of(kBatch, teacher.input_shape()), 3);
  const std::vector<int> y = noise_labels(kBatch, teacher.classes());
  sg::DistillationLoss loss({4, 0.9, 0.1});
  Tensor grad;
  BackwardOptions bo;
  bo.param_grads = true;
  bo.input_grad = false;
  return kBatch * calls_per_second(
                      [&] {
                        student.zero_grad();
                        const Tensor& t = teacher.forward(x, Mode::eval);
                        const Tensor& s = student.forward(x, Mode::train);
                        loss(s, t, y, grad);
                        sg::add_tree_penalties(student, 0.1);
                        student.backward(grad, bo);
                      },
                      c.seconds);
}

void bench_surrogates(const BenchContext& c) {
  std::map<std::string, double> torch;
  if (c.compare) torch = reference_rates(c, "torch_surrogates.py");
  auto row = [&](const std::string& key, const std::string& model, const std::string& what, const std::string& detail,
                 const std::string& unit, int batch, double rate) {
    BenchRow r{model, what, detail, batch, rate, 0, "", unit};
    if (torch.count(key)) r.reference = torch[key], r.reference_name = "torch";
    c.report(r);
  };
  Graph lenet = make_preset("lenet5", {}, 0, 1);
  {
    Graph tree = graph_from_text("input(1,28,28) flatten softtree(8,10)");
    tree.init(2);
    row("distill/softtree8", "soft-tree:8", "distill step", "teacher lenet5, T 4, penalty 0.1", "images/s", kBatch,
        distill_rate(tree, lenet, c));
    Graph student = make_preset("lenet5", {}, 0, 2);
    row("distill/lenet5", "lenet5", "distill step", "teacher lenet5, T 4", "images/s", kBatch,
        distill_rate(student, lenet, c));
  }
  {
    // Every conv1 filter's drop measured once, with no removal allowed: 1 + 32 passes over the images.
    Graph camnet = make_preset("camnet", {}, 0, 3);
    const sg::LabelledSet val{bench_noise(Shape{kPruneImages, 1, 28, 28}, 5), noise_labels(kPruneImages, 10)};
    sg::PruneOptions o;
    o.layers = sg::prunable_layers(camnet, "conv1");
    o.max_drop = 0;
    int evaluations = 0;
    const double rate = items_per_second(
        [&] {
          Graph g = clone(camnet);
          evaluations = sg::prune_filters(g, val, o).evaluations;
        },
        1, c.seconds);
    row("prune/camnet", "camnet", "prune", "conv1 filter drops on 1000 images", "images/s", 256,
        rate * evaluations * kPruneImages);
  }
  Graph mlp = make_preset("mlp", {}, 0, 4);
  {
    sg::ImportanceRequest q;
    q.x = bench_noise(Shape{kPadSamples, 1, 28, 28}, 7);
    row("importance/dimopoulos", "mlp", "dimopoulos", "10 classes' derivatives", "samples/s", 256,
        items_per_second([&] { sg::importance(mlp, q, "dimopoulos"); }, kPadSamples, c.seconds));
    q.x = bench_noise(Shape{kMivSamples, 1, 28, 28}, 8);
    row("importance/miv", "mlp", "miv", "784 features x 2 perturbations", "samples/s", kMivSamples,
        items_per_second([&] { sg::importance(mlp, q, "miv"); }, kMivSamples, c.seconds));
  }
  {
    sg::RulesRequest q;
    q.inputs = bench_noise(Shape{1, 1, 28, 28}, 9);
    long samples = 0;
    const double calls = items_per_second(
        [&] { samples = sg::rules(lenet, q, "anchors", {{"coverage_samples", "1000"}})[0].details["samples"].get<long>(); }, 1,
        c.seconds);
    row("rules/anchors", "lenet5", "anchors", "40 superpixels", "model evaluations/s", 256, calls * double(samples));
  }
  {
    const Tensor X = bench_noise(Shape{kTreeSamples, 49}, 10);
    std::vector<int> y(kTreeSamples);
    for (int i = 0; i < kTreeSamples; ++i) y[i] = int(X[size_t(i) * 49 + 3] * 5) + (X[size_t(i) * 49 + 20] > 0.5f) * 5;
    row("rules/tree", "49 features", "rule tree", "CART depth 4 on 10000 samples", "samples/s", kTreeSamples,
        items_per_second([&] { sg::fit_tree(X, y, 10, {4, 5}); }, kTreeSamples, c.seconds));
  }
}

}  // namespace

static const RegisterBench registered_surrogates_bench("surrogates", bench_surrogates);

}  // namespace gb
