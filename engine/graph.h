// The graph: layers in topological order, each node naming its inputs (-1 = the graph input).
// forward() records every activation; backward() walks the nodes in reverse and, at each node,
// calls that node's rule for this pass (by default the layer's exact gradient). Training,
// saliency, LRP, DeconvNet, DeepLIFT and OpenBox are all this one walk with other rules.
//
// Runs of per-sample layers (Layer::per_sample) are split across threads by groups of rows: a
// thread takes a group through the whole run with its own workspace, so a forward pass of a plain
// conv net costs one hand-off between threads, not one per layer (engine/threads.h).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/layer.h"

namespace gb {

struct Node {
  std::unique_ptr<Layer> layer;
  std::vector<int> inputs;  // node ids; -1 is the graph input
};

using ForwardRules = std::vector<ForwardRule>;    // one per node; an empty function = Layer::forward
using BackwardRules = std::vector<BackwardRule>;  // one per node; an empty function = Layer::backward

// Called with a node id and that node's output (forward) or signal (backward) once it is
// complete; -1 is the graph input. Hooks belong to one call and never stop the graph from
// splitting a batch across threads: inside a split run they are called after the run, in order.
using NodeHook = std::function<void(int node, const Tensor&)>;

struct ForwardOptions {
  Mode mode = Mode::eval;
  const ForwardRules* rules = nullptr;
  // The rules treat each row on its own (reading ForwardCall::row0 where the row matters) and
  // write only the call's tensors and workspace: the graph may run them on batch slices at once.
  bool per_sample_rules = false;
  int row_block = 1;  // slices keep blocks of this many consecutive rows together
  int until = -1;     // stop after this node (-1: run the whole graph)
  NodeHook on_node;
};

struct BackwardOptions {
  const BackwardRules* rules = nullptr;
  bool param_grads = false;  // accumulate parameter gradients (training)
  bool input_grad = true;    // compute the signal at the graph input
  int seed_at = -1;          // the node whose output the seed is shaped like (-1: the graph output)
  // Stop once the signal at this node's output is known (-1: go to the input). A node that no
  // signal from seed_at reaches is an error naming it.
  int stop_at = -1;
  // As in ForwardOptions: rules that treat each row on its own may run on batch slices at once.
  bool per_sample_rules = false;
  int row_block = 1;
  NodeHook on_node;
};

class Graph {
 public:
  explicit Graph(const Shape& input);  // the per-sample input shape, e.g. {1, 28, 28}
  Graph(Graph&&) = default;
  Graph& operator=(Graph&&) = default;

  // Adds a layer fed by `inputs`; names it <kind><count> when it has no name. Returns its id.
  int add(std::unique_ptr<Layer> layer, std::vector<int> inputs);
  // Sequential builder: the new layer is fed by the last node (or the input).
  Graph& then(std::unique_ptr<Layer> layer);
  template <class L, class... A>
  Graph& then(A&&... args) {
    return then(std::make_unique<L>(std::forward<A>(args)...));
  }

  const Shape& input_shape() const { return input_shape_; }
  int size() const { return int(nodes_.size()); }
  int output() const { return size() - 1; }
  const Node& node(int i) const { return nodes_.at(i); }
  Layer& layer(int i) const { return *nodes_.at(i).layer; }
  int find(const std::string& name) const;  // -1 when absent
  int at(const std::string& name) const;    // throws naming the layer when absent
  Shape shape(int node, int batch = 1) const;  // output shape of a node (-1: the input)
  // K of a classifier's [N, K] logits; a model whose output is not rank 2 (one ending with a
  // convolution) throws std::invalid_argument saying so: its output is no [N, K] to index.
  int classes() const;
  bool has_classes() const { return !shapes_.empty() && shapes_.back().rank == 2; }

  void init(uint64_t seed);
  std::vector<std::pair<std::string, Param*>> named_params() const;  // "conv1.weight", ...
  size_t param_count(bool trainable_only = true) const;
  void zero_grad();

  // Runs x ([N, input...]) through the graph (up to opt.until) and returns the last node's
  // output. `x` must stay alive and unchanged until the backward pass that uses this forward.
  const Tensor& forward(const Tensor& x, const ForwardOptions& opt);
  const Tensor& forward(const Tensor& x, Mode mode = Mode::eval);
  // Propagates `seed` (shaped like the output of opt.seed_at, the graph output by default) back
  // to the input. Returns the signal at the input, or at `stop_at`'s output.
  const Tensor& backward(const Tensor& seed, const BackwardOptions& opt = {});

  // A training forward without rules or hooks runs each ReLU or add that is the only reader of
  // its (first) input in place (Layer::runs_in_place), and a training backward without them
  // writes the input signal of such a ReLU, add or BatchNorm over its own (backward_in_place):
  // whole-batch buffers fewer to fill and read back. Then the activation of that input layer
  // (BatchNorm, conv...) holds the ReLU's or add's output, and after the backward the layer's
  // signal holds its input's. Every other pass keeps every activation and signal.
  const Tensor& input() const { return input_; }
  const Tensor& activation(int node) const { return node < 0 ? input_ : acts_.at(node); }
  const Tensor& signal(int node) const { return node < 0 ? input_sig_ : sigs_.at(node); }
  const Tensor& input_signal() const { return input_sig_; }

  Rng rng{42};  // dropout masks in training

 private:
  Shape input_shape_;
  std::vector<Node> nodes_;
  std::vector<Shape> shapes_;  // per node, batch 1
  std::vector<double> flops_;  // per node, forward FLOPs per sample
  std::vector<int> kind_count_;
  Tensor input_, input_sig_;
  std::vector<Tensor> acts_, sigs_;
  // In-place layers (see activation()): per node, how many nodes read its output; per node, 1 when
  // the last forward ran it over its first input's buffer; per node, the reader + 1 whose signal
  // its own signal shared in the last backward (0: none).
  std::vector<int> readers_;
  std::vector<char> in_place_;
  std::vector<int> shared_signal_;
  bool may_run_in_place(int i, Layer::Pass pass) const;
  bool output_intact(int i) const;
  bool forward_rules_ = false;   // the last forward had rules: a layer's activation may be its rule's
  bool backward_rules_ = false;  // the backward under way has rules
  int backward_from_ = -1;       // and starts at this node
  Mode mode_ = Mode::eval;  // of the last forward
  int forward_end_ = -1;    // the last node the last forward ran
  // Per thread: workspace, scratch for signals added into an already written input, and (threads
  // 1..) parameter gradients, added into Param::grad in thread order after the pass.
  std::vector<Workspace> ws_;
  std::vector<std::vector<Tensor>> scratch_, thread_grads_;
  struct CallScratch {  // the argument vectors of a node call, per thread
    std::vector<Tensor> ins, outs;
    std::vector<const Tensor*> in;
    std::vector<Tensor*> g_in, grads;
  };
  std::vector<CallScratch> calls_;
  std::vector<std::vector<Param*>> params_;  // per node, layer->params()
  std::vector<size_t> param_base_;           // per node, the index of its first parameter
  // The backward walk, planned before it runs: the nodes a signal reaches in order, and per node
  // and input: 1 = writes the input's signal, 0 = adds to it (through scratch), 2 = not wanted,
  // 3 = the layer adds into the input's signal itself (add_to_g_in).
  std::vector<int> plan_;
  std::vector<std::vector<char>> route_;
  std::vector<char> written_, split_;

  int width(int batch, int row_block) const;  // threads to split a batch of this size across
  void grow_threads(int T);
  void forward_node(int i, int b, int e, int t, const ForwardRules* rules);
  void plan_backward(int from, const BackwardOptions& opt, bool share_signals);
  void gather_sums(int i, Layer::Pass pass, int T, int N, int row_block, bool param_grads);
  void start_parts(int i, Layer::Pass pass, int groups);
  void add_part(int i, Layer::Pass pass, int b, int e, int k, int t);  // rows [b, e) as part k, on thread t
  void combine_parts(int i, Layer::Pass pass, bool param_grads);
  std::vector<double> sum_parts_;  // node i's sums over groups of rows, part k from part_rows_[k] rows
  std::vector<int> part_rows_;
  bool parts_read_output_ = false;  // the backward parts read the output too (output_intact, once per start_parts)
  void backward_node(int i, int b, int e, int t, const BackwardOptions& opt, bool carry);
  void param_grads_of(int i, int t, std::vector<Tensor*>& grads);  // node i's gradient targets on thread t
};

}  // namespace gb
