// TracIn (Pruthi et al. 2020), in its checkpoint form TracInCP: score(z, z_test) =
// Σ_c lr_c ∇L_c(z_test) · ∇L_c(z), summed over saved checkpoints c with the learning rate each was
// trained at (Captum's TracInCP; `glassbox train --save-every N` keeps the checkpoints). Positive:
// a proponent (gradient steps on z lowered the test loss). Self-influence Σ_c lr_c ‖∇L_c(z)‖²
// ranks likely mislabelled training points first.
#include <algorithm>
#include <optional>
#include <stdexcept>

#include "engine/model_file.h"
#include "engine/passes.h"
#include "explain/instances/method.h"

namespace gb::explain::instances {

namespace {

// Keeps the model's parameters and puts them back when the run ends (also on an error).
struct KeepParams {
  Graph& g;
  std::map<std::string, Tensor> saved;
  explicit KeepParams(Graph& g) : g(g) {
    for (auto& [name, p] : g.named_params()) saved[name] = p->value.clone();
  }
  ~KeepParams() {
    for (auto& [name, p] : g.named_params()) p->value.copy_from(saved.at(name));
  }
};

struct Run {
  std::vector<int> nodes;
  std::optional<double> lr;  // overrides the checkpoints' rates
  const std::vector<Checkpoint>& checkpoints;
};

Run read_run(const Graph& g, ParamReader& p, const Context& ctx) {
  if (!ctx.checkpoints || ctx.checkpoints->empty())
    throw std::invalid_argument("tracin needs checkpoints saved during training (glassbox train --save-every N "
                                "writes MODEL.epochE.safetensors; glassbox influence --checkpoints FILE...)");
  Run r{chosen_layers(g, p.text("layers"), "tracin"), p.maybe_number("lr"), *ctx.checkpoints};
  if (r.lr && !(*r.lr > 0)) throw std::invalid_argument("tracin: --param lr must be > 0");
  return r;
}

// Loads checkpoint c into g and returns its learning rate.
double load(Graph& g, const Run& r, const Checkpoint& c) {
  assign_params(g, c.params, c.name);
  const double lr = r.lr ? *r.lr : c.lr;
  if (!(lr > 0))
    throw std::invalid_argument("tracin: checkpoint " + c.name + " has no learning rate (train.lr metadata); give "
                                "--param lr=");
  return lr;
}

Scores run_tracin(Graph& g, const Examples& train, const Examples& tests, ParamReader& p, const Context& ctx) {
  const Run r = read_run(g, p, ctx);
  KeepParams keep(g);
  const int N = train.size(), M = tests.size(), C = int(r.checkpoints.size());
  Scores out;
  out.scores = Tensor(Shape{M, N});
  out.details.resize(M);
  for (int c = 0; c < C; ++c) {
    const float lr = float(load(g, r, r.checkpoints[c]));
    Tensor test_grads = loss_gradients(g, tests, 0, M, r.nodes);
    for (size_t i = 0; i < test_grads.size(); ++i) test_grads[i] *= lr;
    for (int b = 0; b < N; b += ctx.batch) {
      const int e = std::min(N, b + ctx.batch);
      const Tensor dots = loss_gradient_dots(g, train, b, e, r.nodes, test_grads);  // [e − b, M]
      for (int j = b; j < e; ++j)
        for (int t = 0; t < M; ++t) out.scores[size_t(t) * N + j] += dots[size_t(j - b) * M + t];
      report(ctx, "gradients at checkpoint " + std::to_string(c + 1) + "/" + std::to_string(C), e, N);
    }
    out.info["parameters"] = test_grads.dim(1);
  }
  out.info["checkpoints"] = C;
  return out;
}

Scores self_tracin(Graph& g, const Examples& train, ParamReader& p, const Context& ctx) {
  const Run r = read_run(g, p, ctx);
  KeepParams keep(g);
  const int N = train.size(), C = int(r.checkpoints.size());
  Scores out;
  out.scores = Tensor(Shape{N});
  out.details.resize(1);
  for (int c = 0; c < C; ++c) {
    const double lr = load(g, r, r.checkpoints[c]);
    const Tensor none(Shape{0, int(param_slice(g, r.nodes).size)});
    std::vector<double> norms;
    for (int b = 0; b < N; b += ctx.batch) {
      const int e = std::min(N, b + ctx.batch);
      loss_gradient_dots(g, train, b, e, r.nodes, none, &norms);
      for (int j = b; j < e; ++j) out.scores[j] += float(lr * norms[j - b]);
      report(ctx, "self-influence at checkpoint " + std::to_string(c + 1) + "/" + std::to_string(C), e, N);
    }
  }
  out.info["checkpoints"] = C;
  return out;
}

}  // namespace

void add_tracin_method(std::vector<Method>& registry) {
  registry.push_back(
      {{"tracin",
        "TracIn: learning rate times gradient agreement, summed over training checkpoints",
        {{"layers", "all", "parameters whose gradients are compared: all, last (the last dense layer), or "
                           "comma-separated layer names"},
         {"lr", "", "learning rate for every checkpoint (default: each checkpoint's own, stored by glassbox train)"}},
        "Pruthi et al. 2020 TracInCP as Captum's TracInCP: sum over checkpoints of lr * grad L(test) . grad L(z), "
        "per-example cross-entropy at the test input's class; positive = proponent. lr is the mean rate over the "
        "steps since the previous saved model (Captum reads it from the checkpoint). Pruthi et al. derive it for SGD; with "
        "Adam (glassbox train's default) the scores are the same formula, a rougher account of the steps taken"},
       run_tracin,
       self_tracin});
}

}  // namespace gb::explain::instances
