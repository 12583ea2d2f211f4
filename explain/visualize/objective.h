// What a visualization maximizes: a unit of the model (a class score, a channel's mean, one
// neuron, a whole layer's energy, or a direction at a layer) turned into an objective S_r(x) per
// row r of a batch, read at one node of the graph. Its gradient with respect to that node's
// output is the seed of the graph's backward pass (BackwardOptions::seed_at), so every method of
// this family is the model's own forward and backward, never a copy of its layers.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/graph.h"

namespace gb::visualize {

struct Unit {
  enum class Kind {
    class_score,  // the output node, element `index` (a class); scored by Score below
    channel,      // channel `index`'s mean at `node` (Lucent's objectives.channel)
    neuron,       // the element (index, y, x) of `node` (Lucent's objectives.neuron at a position)
    layer,        // ½·mean(a²) over the whole layer (DeepDream's L2 objective)
    direction     // ⟨d, a⟩ (linear; Lucent's objectives.direction is a cosine, see METHODS.md)
  };
  Kind kind = Kind::class_score;
  int node = -1;  // -1: the graph output
  int index = 0, y = 0, x = 0;
  Tensor direction;  // Kind::direction: shaped like the node's output for one sample

  static Unit cls(int k);
  static Unit channel(int node, int c);
  static Unit neuron(int node, int c, int y, int x);
  static Unit whole(int node);
  static Unit along(int node, Tensor d);

  int at(const Graph& g) const { return node < 0 ? g.output() : node; }
  std::string name(const Graph& g) const;      // for file names: "class3", "relu2_c5", "conv1_c2_y4_x4"
  std::string describe(const Graph& g) const;  // "class 3", "relu2 channel 5", "conv1[2,4,4]"
  uint64_t key() const;                        // random streams are drawn per (seed, unit, restart)
  void check(const Graph& g) const;            // throws naming the layer and the range
};

// --unit specs: class:K, class:all, LAYER:C, LAYER:all, LAYER:C,Y,X, LAYER (the whole layer),
// LAYER:FILE.npy (a direction shaped like the layer's output). Errors name the spec and what
// it accepts. class:pred and class:label depend on inputs and are resolved by the caller.
// `read` loads a direction file (the command line's .npy reader); without it such specs fail.
using ReadTensor = std::function<Tensor(const std::string& path)>;
std::vector<Unit> parse_units(const Graph& g, const std::string& spec, const ReadTensor& read = {});
// Methods that explain each input's class (mask, minimal-image): their unit defaults to the
// predicted class of each input.
bool explains_each_input(const std::string& method);
// Each input's predicted class (argmax, NaN first as torch.argmax): one unit per input for methods
// that explain each input, else each distinct class once, in input order.
std::vector<Unit> predicted_units(Graph& g, const Tensor& x, const std::string& method);

// How a class is scored (class units only): its logit (CS231n, Simonyan et al.), its softmax
// probability, or its log-probability (what fooling images ascend to reach a probability).
enum class Score { logit, prob, logprob };
Score parse_score(const std::string& s);  // throws naming the accepted names

// S_r on the output a of `node` for rows [row0, row0 + a.batch()) of the batch it was made for:
// values[r] = S_{row0+r} and seed row r = ∂S/∂a_r.
struct Objective {
  int node = -1;
  std::function<void(const Tensor& a, int row0, double* values, Tensor& seed)> eval;
};

// The unit's scalar on one sample's output `a` of its node (shape `sample`); with seed non-null
// (zeroed, shaped like a), also writes its gradient there.
double unit_value(const Unit& u, Score score, const float* a, const Shape& sample, float* seed = nullptr);

// Row r maximizes units[r] (all units at one node; a class score per `score`).
Objective unit_objective(const Graph& g, const std::vector<Unit>& units, Score score = Score::logit);
// Network inversion (Mahendran & Vedaldi 2015): S_r = −‖a_r − ref_r‖² / ‖ref_r‖², ref [R, node shape...].
Objective inversion_objective(const Graph& g, int node, Tensor reference);

// Forward x (rows of at most `chunk`) up to obj.node and evaluate it: S_r per row.
std::vector<double> evaluate(Graph& g, const Objective& obj, const Tensor& x, int chunk = 256);

}  // namespace gb::visualize
