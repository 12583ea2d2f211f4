// Concepts and internal representations, the family's API (Captum's captum.concept in spirit):
// TCAV with concept activation vectors and its statistical test (this header), linear probes of
// every layer (probe.h), Network Dissection (dissect.h) and ACE, automatic concept discovery (ace.h). One registry declares every method's
// parameters (methods(), --list); each entry point reads exactly its method's declared keys.
//
// Everything is a batched use of the model's one graph: activations() over concept sets, and one
// backward pass per batch of inputs seeded at the target (a class logit) and read at the layers.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/passes.h"
#include "engine/target.h"
#include "explain/common/params.h"
#include "explain/concepts/stats.h"

namespace gb::concepts {

using explain::MethodInfo;
using explain::ParamInfo;
using explain::ParamReader;
using explain::Params;

// What a method computes; each command runs the methods of one kind.
enum class Kind { tcav, probe, dissect, ace };

const std::vector<MethodInfo>& methods();            // every method of the family
std::vector<MethodInfo> methods_of(Kind kind);       // those of one kind (a command's --list)
const MethodInfo& method_info(const std::string& name);  // throws listing the known methods
Kind method_kind(const std::string& name);
// Throws as the method would on an unknown key or a value outside its documented range, without
// running it (the command line checks --param before reading any data).
void validate_params(const std::string& method, const Params& params);

// Progress of long passes: the stage ("activations", "CAVs", "gradients"...), done and total.
using StageProgress = std::function<void(const std::string& stage, int done, int total)>;

// A concept: named example images, in the model's input space, [n, input...].
struct ConceptSet {
  std::string name;
  Tensor x;
};

struct TcavRequest {
  std::vector<ConceptSet> concepts;
  // Examples the R + 1 random sets are drawn from (`runs` = R and `random_size` examples each;
  // draw_random_sets below). Concept C's run r (r = 1..R)
  // is its CAV against random set r; the random baseline's run r is random set 0 against random
  // set r (tcav's random_counterpart), or with random_baseline=pooled, R(R-1) runs: random set i
  // against set j for every i != j in 1..R (tcav's default).
  Tensor random_pool;
  Tensor inputs;  // [N, input...]: the inputs whose predictions are explained (a class's images)
  Target target;  // what is differentiated: a class logit for all inputs ({k}), or one per input
  std::vector<int> layers;  // node ids (-1: the input)
  StageProgress progress;
};

// One concept (or the random baseline) at one layer, over its runs (R; the pooled baseline R(R-1)).
struct ConceptScores {
  std::string name;  // the concept, or "random"
  // Per run: the TCAV score (fraction of inputs with S > 0), the magnitude score
  // Σ max(S, 0) / Σ |S|, the mean directional derivative S along the unit CAV, the CAV's held-out
  // accuracy and its epochs.
  std::vector<double> sign_count, magnitude, mean_derivative, cav_accuracy;
  std::vector<int> cav_epochs;
  Tensor cavs;  // [R, D]: the unit CAVs, D = the layer's size
  // Against the random baseline (unset for the baseline itself): two-sided Student t-tests of the
  // sign-count and magnitude scores over the runs, and whether p < p_threshold (and < p_threshold /
  // comparisons, Bonferroni).
  TTest sign_test, magnitude_test;
  bool significant = false, significant_bonferroni = false;
};

struct LayerScores {
  int node = -1;
  std::string layer;
  std::vector<ConceptScores> concepts;
  ConceptScores random;  // "random": random set 0 against random sets 1..R
};

struct TcavResult {
  std::vector<LayerScores> layers;
  int runs = 0;         // R
  int comparisons = 0;  // concepts × layers: the Bonferroni divisor
  double p_threshold = 0.05;
};

// TCAV (Kim et al. 2018) of every concept at every layer. Throws on an unknown method or key, a
// parameter outside its documented range, a concept set with fewer than 2 examples, a pool smaller
// than random_size, inputs or examples that do not fit the model, non-finite values, or a layer the
// target's signal does not reach.
TcavResult tcav(Graph& model, const TcavRequest& request, const Params& params = {}, const std::string& method = "tcav");

// The rows of `sets` random sets of `size` examples each from a pool of `pool`: disjoint when the
// pool holds sets·size examples (one seeded shuffle cut into consecutive sets, as tcav's separate
// random500_i folders); otherwise each set is drawn on its own (without replacement within the set,
// from the stream (seed, i)) and sets share examples. Throws when pool < size.
std::vector<std::vector<int>> draw_random_sets(int pool, int sets, int size, uint64_t seed);

// The gradient of the target at each chosen layer for every input: out[k] is [N, size of layer k],
// row n = ∂f_n/∂a_layer(x_n). One forward and one backward pass per batch of inputs, seeded with
// the target's seed and read at every chosen layer on the way down (stopping at the lowest).
std::vector<Tensor> layer_gradients(Graph& model, const Tensor& x, const Target& target, const std::vector<int>& layers,
                                    int batch = 256, const Progress& progress = {});

// S[n][m] = ⟨gradient row n, direction m⟩: directional derivatives, [N, M], for directions [M, D].
Tensor directional_derivatives(const Tensor& gradients, const Tensor& directions);

}  // namespace gb::concepts
