// A layer is one small struct: it builds its parameters from its input shape, computes its
// output, and knows its exact gradient. Every other backward pass (DeconvNet, LRP, DeepLIFT,
// OpenBox...) is a *rule* that the graph calls in place of Layer::backward for that pass; rules
// live in explain/ and receive the same BackwardCall.
#pragma once
#include <array>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "engine/tensor.h"

namespace gb {

using json = nlohmann::json;

enum class Mode { eval, train };

struct Param {
  std::string name;  // "weight", "bias", "running_mean", "running_var"
  Tensor value, grad;
  bool trainable = true;  // false for BatchNorm running statistics
  explicit Param(std::string name, bool trainable = true) : name(std::move(name)), trainable(trainable) {}
};

// Scratch memory shared by all layers of a graph: each slot grows to its largest request and is
// then reused, so steady-state passes allocate nothing.
struct Workspace {
  std::array<FloatBuffer, 4> slots;
  float* get(int slot, size_t n) {
    if (slots[slot].size() < n) slots[slot].resize(n);
    return slots[slot].data();
  }
  // Per node: a partial parameter gradient that one thread carries from call to call through a
  // backward pass (BackwardCall::carry), empty when there is none. Emptied, not freed, so its
  // storage is reused by the next pass.
  std::vector<FloatBuffer> carried;
  FloatBuffer& carry(int node) {
    if (int(carried.size()) <= node) carried.resize(node + 1);
    return carried[node];
  }
};

struct Layer;

struct ForwardCall {
  int node;
  Layer& layer;
  std::vector<const Tensor*> in;  // forward inputs (batch first)
  Tensor& out;                    // already shaped by the graph
  Mode mode;
  Workspace& ws;
  Rng& rng;
  // Where this call's rows sit in the whole batch (the graph may run slices of it on several
  // threads), and which thread runs it: rules that depend on the row (OpenBox's reference rows,
  // DeepLIFT's input/reference pairs) or keep per-thread sums read these.
  int row0 = 0;
  int thread = 0;
};

struct BackwardCall {
  int node;
  Layer& layer;
  std::vector<const Tensor*> in;  // the forward inputs of this layer
  const Tensor& out;              // the forward output
  const Tensor& g_out;            // the incoming signal (gradient, relevance, multiplier...)
  std::vector<Tensor*> g_in;      // shaped like `in`; the rule overwrites them
  bool param_grads;               // also accumulate parameter gradients (training)
  Workspace& ws;
  Mode mode;                   // the mode of the forward pass this backward follows
  std::vector<Tensor*> grads;  // with param_grads: where to add each of params()' gradients
  // With param_grads: the graph calls this layer's end_backward on this thread after its last
  // call of the pass, so the layer may keep part of its parameter gradients in ws.carry(node)
  // until then. Never set when a rule replaces the layer's backward.
  bool carry = false;
  int row0 = 0;    // as in ForwardCall
  int thread = 0;
  // g_in[0] already holds another consumer's part of the input's gradient: backward() adds its
  // own to it instead of overwriting it. Set only for layers whose adds_input_grad() is true, and
  // never when a rule replaces the layer's backward.
  bool add_to_g_in = false;
};

using ForwardRule = std::function<void(ForwardCall&)>;
using BackwardRule = std::function<void(BackwardCall&)>;

struct Layer {
  std::string name;
  virtual ~Layer() = default;

  virtual std::string kind() const = 0;  // as written in the architecture text: "conv", "relu", ...
  virtual int arity() const { return 1; }
  // Called once by the graph with the per-batch input shapes (batch 1): allocates parameters.
  virtual void build(const std::vector<Shape>&) {}
  // Output shape for the given input shapes; throws ShapeError naming the layer on a mismatch.
  virtual Shape out_shape(const std::vector<Shape>& in) const = 0;
  virtual void forward(ForwardCall& c) = 0;
  virtual void backward(BackwardCall& c) = 0;  // the exact gradient rule
  virtual std::vector<Param*> params() { return {}; }
  virtual json hyper() const;  // hyper-parameters, as in the architecture JSON
  // Forward FLOPs for one sample (a multiply-add counts 2).
  virtual double flops(const std::vector<Shape>&) const { return 0; }
  virtual void init(Rng&) {}
  // Called by the graph, on one thread, at the start of every forward and backward pass (so
  // after any change to the parameters): a layer may cache values derived from its parameters
  // for that pass here, e.g. Conv2d its Winograd-domain weights. `mode` is the forward pass's.
  enum class Pass { forward, backward };
  virtual void prepare(Pass, Mode /*mode*/) {}
  // Called by the graph on each thread after its last backward call of a split pass that computes
  // parameter gradients (`carry` is set in every split backward whose layer no rule replaces),
  // with that thread's workspace and gradient targets: adds what the layer carried. A layer whose
  // backward hands its call to another layer must hand this on too.
  virtual void end_backward(Workspace&, int /*node*/, const std::vector<Tensor*>& /*grads*/) {}
  // True when sample n's output depends on sample n's inputs only and forward/backward write
  // nothing but the call's tensors and workspace: the graph may then run slices of the batch at
  // once on several threads (dropout in training draws from one Rng).
  virtual bool per_sample(Mode) const { return true; }
  // A layer that mixes the batch only through per-channel sums (BatchNorm in training) still runs
  // on slices: before the layer's pass, the graph has each thread add rows into a part (per slice,
  // or per group of rows after a split run, while the group is in cache: partial_sums), then the
  // layer combines the parts in part order (combine_sums), so a thread count always gives the same
  // bits. sum_size: doubles per part for this pass (0: none needed).
  virtual size_t sum_size(Pass, Mode) const { return 0; }
  // Forward: `g_out` and `out` are null and `in` the call's inputs. Backward: also the incoming
  // signal and, unless null, the layer's output as the graph holds it: exact wherever g_out is
  // nonzero (where it is zero, a ReLU run in place over it may have written its zeros); null when
  // the graph cannot vouch for that (a forward rule replaced the layer, or an add ran over it).
  virtual void partial_sums(Pass, const std::vector<const Tensor*>& /*in*/, const Tensor* /*out*/,
                            const Tensor* /*g_out*/, double* /*part*/) const {}
  // parts[t] holds the sums of rows[t] rows. With param_grads, the backward pass adds the layer's
  // parameter gradients here, once, and its backward() adds none.
  virtual void combine_sums(Pass, const std::vector<const double*>& /*parts*/, const std::vector<int>& /*rows*/,
                            bool /*param_grads*/) {}
  // False for smooth nonlinearities (tanh, sigmoid, softplus): OpenBox refuses them.
  virtual bool piecewise_linear() const { return true; }
  // In-place training passes (Graph), when the layer is the only reader of its first input:
  // runs_in_place(): its output may share that input's memory, so forward() must work with
  // in[0] == out (ReLU: its mask is the same read from either; Add: adds the others onto it), and
  // the layer before it must not read its own output in backward(). backward_in_place(): that
  // input's signal may share its own, so backward() must work with g_in[0] == g_out.
  virtual bool runs_in_place() const { return false; }
  // backward() honours BackwardCall::add_to_g_in, so that where a node feeds several layers (a
  // residual block's input) the graph needs no scratch signal and no extra pass to add it in.
  virtual bool adds_input_grad() const { return false; }
  virtual bool backward_in_place() const { return false; }
  virtual bool backward_reads_output() const { return true; }
  // True when forward() writes each input element or zero, and backward() passes no gradient where
  // it wrote zero (ReLU): run in place, it leaves the layer before it that layer's own output
  // wherever that layer's output gradient is nonzero (see partial_sums).
  virtual bool keeps_input_where_gradient() const { return false; }
};

}  // namespace gb
