// Training examples as explanations: for a test input, a score for every training point saying
// how much the prediction rests on it. One registry, like the attribution family's: every method
// declares its parameters once (name, default, help, convention) and reads exactly those.
//
//   knn          similarity of a layer's activations (cosine, or −L2 distance); Captum's SimilarityInfluence
//   influence    (1/n) ∇L(z_test)ᵀ (H + λI)⁻¹ ∇L(z): the predicted change of the test loss when z is
//                removed and the model retrained (Koh & Liang 2017; Captum's NaiveInfluenceFunction)
//   tracin       Σ_checkpoints lr · ∇L(z_test) · ∇L(z)  (Pruthi et al. 2020; Captum's TracInCP)
//   representer  α_z,c f_zᵀ f_test of the last layer refitted with L2 weight λ (Yeh et al. 2018)
//
// Larger scores mean more support for the test prediction (helpful, proponent, excitatory, near).
// Prototypes and criticisms (MMD-critic) are in explain/instances/mmd_critic.h.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "explain/common/params.h"

namespace gb::explain::instances {

// A dataset as the model sees it: inputs in the model's input space (normalized as in training).
struct Examples {
  Tensor x;             // [N, input...]
  std::vector<int> y;   // training: labels; test inputs: the class explained (see each method)
  int size() const { return x.rank() ? x.batch() : 0; }
};

// A saved training state for TracIn: parameters by name and the learning rate it was trained at.
struct Checkpoint {
  std::string name;
  std::map<std::string, Tensor> params;  // as in a model file: "conv1.weight", ...
  double lr = 0;
};

// What a method needs beyond the model, the training set and the test inputs.
struct Context {
  const std::vector<Checkpoint>* checkpoints = nullptr;  // tracin
  int batch = 256;                                       // samples per pass
  // Progress of the passes over the training set: a stage name, samples done, total.
  std::function<void(const std::string& stage, int done, int total)> progress;
};

struct Scores {
  Tensor scores;  // [tests, N] (or [N] for self-influence): larger = more support
  // Per test input (or one entry for self-influence): numbers worth reporting (solver iterations
  // and residuals, the representer decomposition's residual, ...).
  std::vector<std::map<std::string, double>> details;
  std::map<std::string, double> info;   // about the whole run (fit accuracy, Hessian points, ...)
  std::map<std::string, Tensor> extra;  // arrays worth saving (representer α, I_pert maps, ...)
};

const std::vector<MethodInfo>& methods();
const MethodInfo& method_info(const std::string& name);  // throws listing the known methods

// Scores of every training point for each test input. Throws on an unknown method or parameter,
// inputs that do not fit the model, labels outside its classes, or a method's own conditions
// (named in its message).
Scores explain(Graph& model, const Examples& train, const Examples& tests, const std::string& method,
               const Params& params = {}, const Context& context = {});

// Each training point's influence on its own loss (mislabelled-example detection): tracin
// (Σ lr ‖∇L(z)‖²) and influence ((1/n) ∇L(z)ᵀ (H + λI)⁻¹ ∇L(z), direct solver); others refuse.
bool has_self_influence(const std::string& method);
Scores self_influence(Graph& model, const Examples& train, const std::string& method, const Params& params = {},
                      const Context& context = {});

// Koh & Liang's leave-one-out check (their Fig. 2) in the convex case, the last layer on the
// model's features: the layer is refitted to the optimum of (1/n) Σ L(z_i) + (λ/2)‖θ‖² (λ =
// damping > 0), influence is taken there, and for each test input the `count` (1..100) training
// points of largest |score| are left out one at a time, the layer refitted, and the actual change
// of the test loss set beside the predicted one. The model is not changed.
struct LeaveOneOut {
  std::vector<int> index;                  // the training points left out
  std::vector<double> predicted, actual;   // the score, and the test loss's change on refitting
  double pearson = 0;
};
std::vector<LeaveOneOut> leave_one_out(Graph& model, const Examples& train, const Examples& tests, double damping,
                                       int count, const Context& context = {});

}  // namespace gb::explain::instances
