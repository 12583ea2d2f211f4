// Prototypes and criticisms: MMD-critic (Kim, Khanna & Koyejo 2016). With an RBF kernel
// k(a, b) = exp(−γ ‖a − b‖²) over n points, prototypes S are chosen greedily to maximize
//   J_b(S) = (2 / (n|S|)) Σ_{i, j∈S} k(x_i, x_j) − (1 / |S|²) Σ_{j, l∈S} k(x_j, x_l),
// (the part of −MMD²(data, S) that depends on S), and criticisms C greedily to maximize
//   Σ_{c∈C} |witness(c)| + log det K_CC,   witness(x) = (1/n) Σ_i k(x, x_i) − (1/|S|) Σ_{j∈S} k(x, x_j),
// the points the prototypes explain worst, kept diverse by the log-determinant. The kernel matrix is
// never stored: its column sums take one blocked pass (O(n² d), float GEMMs), and each selection
// adds one kernel row, so memory is O(n (d + prototypes + criticisms)).
#pragma once
#include <vector>

#include "engine/graph.h"
#include "explain/common/params.h"
#include "explain/instances/instances.h"

namespace gb::explain::instances {

struct Prototypes {
  std::vector<int> prototypes;     // row indices, in the order chosen
  std::vector<double> objective;   // J_b after each prototype
  std::vector<int> criticisms;     // row indices, in the order chosen
  std::vector<double> witness;     // witness(c) of each criticism (signed)
  double gamma = 0;                // the kernel's γ
};

// The declaration of `glassbox prototypes`' method (its --list).
const std::vector<MethodInfo>& prototype_methods();

// MMD-critic over the rows of x ([n, input...]): pixels when no layer is chosen (x as given, model
// may be null), else the model's activations at --param layer (x in the model's input space).
// 1 <= prototypes, 0 <= criticisms, prototypes + criticisms <= min(n, 1000).
Prototypes mmd_critic(Graph* model, const Tensor& x, int prototypes, int criticisms, const Params& params,
                      const Context& context = {});

// The same on feature rows [n, d] with the kernel's γ given (> 0): the algorithm itself.
Prototypes mmd_critic_features(const Tensor& features, int prototypes, int criticisms, double gamma,
                               bool logdet = true, const Context& context = {});

// The median heuristic: γ = 1 / (2 median ‖x_i − x_j‖²) over the pairs of at most 1000 seeded rows.
double median_heuristic_gamma(const Tensor& features, uint64_t seed = 0);

}  // namespace gb::explain::instances
