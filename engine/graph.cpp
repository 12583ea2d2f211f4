#include "engine/graph.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>

#include "engine/interrupt.h"
#include "engine/threads.h"

namespace gb {

Graph::Graph(const Shape& input) : input_shape_(input) {
  if (input.rank < 1 || input.rank > 3) throw ShapeError("graph input must be rank 1..3 per sample, got " + input.str());
}

int Graph::add(std::unique_ptr<Layer> layer, std::vector<int> inputs) {
  const int id = size();
  if (int(inputs.size()) != layer->arity())
    throw std::invalid_argument(layer->kind() + " takes " + std::to_string(layer->arity()) + " input(s), got " +
                                std::to_string(inputs.size()));
  std::vector<Shape> in;
  for (int j : inputs) {
    if (j < -1 || j >= id) throw std::invalid_argument("layer input " + std::to_string(j) + " is not an earlier node");
    in.push_back(shape(j, 1));
  }
  if (layer->name.empty()) {
    std::map<std::string, int> count;
    for (auto& n : nodes_) count[n.layer->kind()]++;
    int k = count[layer->kind()] + 1;
    while (find(layer->kind() + std::to_string(k)) >= 0) ++k;
    layer->name = layer->kind() + std::to_string(k);
  } else if (find(layer->name) >= 0) {
    throw std::invalid_argument("duplicate layer name '" + layer->name + "'");
  }
  layer->build(in);
  shapes_.push_back(layer->out_shape(in));
  flops_.push_back(std::max(layer->flops(in), double(shapes_.back().numel())));  // at least one per output
  for (int j : inputs)
    if (j >= 0) readers_[j]++;
  nodes_.push_back({std::move(layer), std::move(inputs)});
  acts_.resize(nodes_.size());
  sigs_.resize(nodes_.size());
  readers_.push_back(0);
  in_place_.push_back(0);
  shared_signal_.push_back(0);
  return id;
}

Graph& Graph::then(std::unique_ptr<Layer> layer) {
  add(std::move(layer), {size() - 1});
  return *this;
}

int Graph::classes() const {
  if (shapes_.empty() || shapes_.back().rank != 2)
    throw std::invalid_argument("the model's output " + (shapes_.empty() ? std::string("(none)") : shape(output()).str()) +
                                " is not [N, classes] logits (end it with dense)");
  return shapes_.back()[1];
}

int Graph::find(const std::string& name) const {
  for (int i = 0; i < size(); ++i)
    if (nodes_[i].layer->name == name) return i;
  return -1;
}

int Graph::at(const std::string& name) const {
  int i = find(name);
  if (i < 0) {
    std::string names;
    for (auto& n : nodes_) names += (names.empty() ? "" : ", ") + n.layer->name;
    throw std::invalid_argument("no layer named '" + name + "' (layers: " + names + ")");
  }
  return i;
}

Shape Graph::shape(int node, int batch) const {
  if (node < 0) return Shape::batch_of(batch, input_shape_);
  return shapes_.at(node).with_batch(batch);
}

void Graph::init(uint64_t seed) {
  Rng r(seed);
  for (auto& n : nodes_) n.layer->init(r);
}

std::vector<std::pair<std::string, Param*>> Graph::named_params() const {
  std::vector<std::pair<std::string, Param*>> out;
  for (auto& n : nodes_)
    for (Param* p : n.layer->params()) out.emplace_back(n.layer->name + "." + p->name, p);
  return out;
}

size_t Graph::param_count(bool trainable_only) const {
  size_t s = 0;
  for (auto& [name, p] : named_params())
    if (p->trainable || !trainable_only) s += p->value.size();
  return s;
}

void Graph::zero_grad() {
  for (auto& [name, p] : named_params())
    if (p->trainable) p->grad.fill(0.f);
}

namespace {

// Rows [b, e) of t as a view (t itself when that is all of it).
Tensor rows(const Tensor& t, int b, int e) { return b == 0 && e == t.batch() ? t : t.slice(b, e); }

bool has_rule(const std::vector<std::function<void(BackwardCall&)>>* r, int i) {
  return r && i < int(r->size()) && (*r)[i];
}
bool has_rule(const ForwardRules* r, int i) { return r && i < int(r->size()) && (*r)[i]; }

// The groups of rows run_split walks, in one of two ways:
// - static, where threads add parameter gradients of their own (summed in thread order at the
//   end, so the rows each thread runs must not change): thread t takes blocks [b, e) of its slice
//   in groups of `group` rows; groups are numbered in thread order, thread t's from first[t];
// - dynamic, where nothing is added per thread (forward passes, and backward passes without
//   parameter gradients): the batch is cut into groups of `group` rows, at least four per thread,
//   numbered in order. Thread t starts with an equal share of them, runs it from the front, and
//   then takes groups from the back of the others' shares: a core that runs slower (another load
//   on it, an efficiency core, a virtual CPU that shares its core) runs fewer groups instead of
//   holding up the others, and each thread still walks its own rows in order (handing out the
//   groups in turn instead ran 6-10% slower). A group's rows, and so the bits, do not depend on
//   which thread runs it.
struct SplitGroups {
  int T, N, block, group;
  bool dynamic;
  std::vector<int> first;
  SplitGroups(int T_, int N_, int block_, int group_, bool dynamic_)
      : T(T_), N(N_), block(block_), dynamic(dynamic_), first(T_ + 1, 0) {
    group = std::max(1, group_ / block) * block;
    if (dynamic) group = std::min(group, std::max(1, N / block / (4 * T)) * block);
    for (int t = 0; t < T; ++t) {
      if (dynamic) {
        first[t + 1] = int(long(count()) * (t + 1) / T);
        continue;
      }
      int b, e;
      slice(t, b, e);
      first[t + 1] = first[t] + (e - b + group - 1) / group;
    }
  }
  void slice(int t, int& b, int& e) const {
    part(t, T, N / block, b, e);
    b *= block, e *= block;
  }
  int count() const { return dynamic ? (N + group - 1) / group : first[T]; }
};

// The groups [lo, hi) of one thread's share not yet taken, as one atomic word (hi << 32 | lo): its
// thread takes from the front, the others from the back.
struct Share {
  std::atomic<uint64_t> range{0};
  bool take(bool front, int& k) {
    uint64_t v = range.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t lo = uint32_t(v), hi = uint32_t(v >> 32);
      if (lo >= hi) return false;
      const uint64_t rest = front ? (uint64_t(hi) << 32 | (lo + 1)) : (uint64_t(hi - 1) << 32 | lo);
      if (range.compare_exchange_weak(v, rest, std::memory_order_relaxed)) {
        k = int(front ? lo : hi - 1);
        return true;
      }
    }
  }
};

// Runs f(t, begin, end, k) over the groups of a batch (SplitGroups) on T threads at once, each
// thread's GEMMs serial, then done(t) on each thread; k numbers the group. A thread takes a group
// through the whole run of layers, so that its activations stay in the core's cache from one
// layer to the next.
template <class F, class D>
void run_split(const SplitGroups& sg, F&& f, D&& done) {
  BlasSerial serial;
  std::vector<Share> shares(sg.dynamic ? sg.T : 0);
  for (size_t t = 0; t < shares.size(); ++t)
    shares[t].range.store(uint64_t(sg.first[t + 1]) << 32 | uint32_t(sg.first[t]), std::memory_order_relaxed);
  parallel(sg.T, [&](int t) {
    if (sg.dynamic) {
      auto run = [&](int k) { f(t, k * sg.group, std::min(sg.N, (k + 1) * sg.group), k); };
      int k;
      while (shares[t].take(true, k)) run(k);
      for (int u = 1; u < sg.T; ++u)
        while (shares[(t + u) % sg.T].take(false, k)) run(k);
    } else {
      int b, e;
      sg.slice(t, b, e);
      int k = sg.first[t];
      for (int g = b; g < e; g += sg.group, ++k) f(t, g, std::min(e, g + sg.group), k);
    }
    done(t);
  });
}

// A run of layers is worth handing to other threads from 4 MFLOP, or from 512 Ki floats of
// activations (and signals) over the batch: element-wise layers (BatchNorm, ReLU, pooling) do few
// FLOPs per float but take hundreds of microseconds to stream that many, against the tens that
// waking a thread costs.
bool worth_splitting(double flops, double floats) { return flops >= 4e6 || floats >= double(1 << 19); }

// Samples per group for a run of layers whose activations (and signals) take `floats` per
// sample: about 512 KiB per group, half a core's L2 on common CPUs.
int group_size(size_t floats) { return int(std::max<size_t>(1, (size_t(128) << 10) / std::max<size_t>(floats, 1))); }

}  // namespace

int Graph::width(int batch, int row_block) const {
  const int blocks = batch / row_block;
  return blocks < 2 || in_parallel() ? 1 : std::min(threads(), blocks);
}

// Slices keep blocks of rows together, so a batch must hold whole blocks.
static void check_row_block(int batch, int row_block, const char* pass) {
  if (row_block < 1 || batch % row_block != 0)
    throw std::invalid_argument(std::string(pass) + ": a batch of " + std::to_string(batch) +
                                " rows does not split into blocks of " + std::to_string(row_block));
}

void Graph::grow_threads(int T) {
  if (int(ws_.size()) < T) ws_.resize(T);
  if (int(scratch_.size()) < T) scratch_.resize(T);
  if (int(calls_.size()) < T) calls_.resize(T);
  if (int(thread_grads_.size()) < T) thread_grads_.resize(T);
  if (params_.size() != nodes_.size()) {
    params_.clear();
    param_base_.clear();
    size_t count = 0;
    for (auto& n : nodes_) {
      params_.push_back(n.layer->params());
      param_base_.push_back(count);
      count += params_.back().size();
    }
  }
}

// Node i may write its output over its first input's (forward), or that input's signal over its
// own (backward).
bool Graph::may_run_in_place(int i, Layer::Pass pass) const {
  const Node& nd = nodes_[i];
  const int j = nd.inputs[0];
  if (j < 0 || readers_[j] != 1) return false;
  if (pass == Layer::Pass::backward) return nd.layer->backward_in_place();
  return nd.layer->runs_in_place() && !nodes_[j].layer->backward_reads_output();
}

// Whether node i's activation holds its own output wherever its signal in the backward under way
// is nonzero, decided from the graph's shape alone, so that passes with and without in-place
// layers give the same bits: i's one reader keeps its input wherever it passes a gradient (ReLU),
// this backward runs it (its signal is all of i's), and nothing ran in place over the reader's own
// output (which would also be i's buffer).
bool Graph::output_intact(int i) const {
  if (forward_rules_ || backward_rules_ || readers_[i] != 1) return false;
  for (int r = i + 1; r < size(); ++r) {
    const std::vector<int>& in = nodes_[r].inputs;
    if (std::find(in.begin(), in.end(), i) == in.end()) continue;
    if (r > backward_from_ || !nodes_[r].layer->keeps_input_where_gradient()) return false;
    for (int q = r + 1; q < size(); ++q)
      if (in_place_[q] && nodes_[q].inputs[0] == r) return false;
    return true;
  }
  return false;
}

void Graph::forward_node(int i, int b, int e, int t, const ForwardRules* rules) {
  Node& nd = nodes_[i];
  CallScratch& sc = calls_[t];  // reused: a node call allocates nothing once the vectors are sized
  const size_t k = nd.inputs.size();
  sc.ins.resize(std::max(sc.ins.size(), k));
  sc.in.resize(k);
  for (size_t a = 0; a < k; ++a) {
    sc.ins[a] = rows(activation(nd.inputs[a]), b, e);
    sc.in[a] = &sc.ins[a];
  }
  Tensor out = rows(acts_[i], b, e);
  ForwardCall call{i, *nd.layer, std::move(sc.in), out, mode_, ws_[t], rng, b, t};
  if (has_rule(rules, i))
    (*rules)[i](call);
  else
    nd.layer->forward(call);
  sc.in = std::move(call.in);
  for (size_t a = 0; a < k; ++a) sc.ins[a] = Tensor();  // views hold their buffer: let go, so resize() can reuse it
}

const Tensor& Graph::forward(const Tensor& x, Mode mode) {
  ForwardOptions opt;
  opt.mode = mode;
  return forward(x, opt);
}

const Tensor& Graph::forward(const Tensor& x, const ForwardOptions& opt) {
  if (nodes_.empty()) throw std::logic_error("forward through an empty graph");
  if (x.rank() != input_shape_.rank + 1 || x.shape().sample() != input_shape_)
    shape_error("model input", Shape::batch_of(x.rank() ? x.batch() : 1, input_shape_), x.shape());
  if (opt.until < -1 || opt.until >= size())
    throw std::invalid_argument("forward until node " + std::to_string(opt.until) + ": the graph has " +
                                std::to_string(size()) + " nodes");
  const int N = x.batch(), last = opt.until < 0 ? size() - 1 : opt.until;
  check_row_block(N, opt.row_block, "forward");
  poll_interrupt();  // between passes: nothing of this one has changed the graph yet
  input_ = x;
  mode_ = opt.mode;
  forward_end_ = last;
  for (int i = 0; i <= last; ++i) nodes_[i].layer->prepare(Layer::Pass::forward, mode_);
  const int T = width(N, opt.row_block);
  grow_threads(T);
  // In-place layers (see activation()): last pass's let go of their input's buffer first, so that
  // it is resized without a copy.
  const bool share = mode_ == Mode::train && !opt.rules && !opt.on_node;
  for (int i = 0; i < size(); ++i)
    if (in_place_[i]) acts_[i] = Tensor();
  for (int i = 0; i < size(); ++i) {
    in_place_[i] = share && i <= last && may_run_in_place(i, Layer::Pass::forward);
    if (in_place_[i])
      acts_[i] = acts_[nodes_[i].inputs[0]];  // resized already: inputs come first
    else if (i <= last)
      acts_[i].resize(shapes_[i].with_batch(N));
  }
  const ForwardRules* rules = opt.rules;
  forward_rules_ = rules != nullptr;
  auto needs_sums = [&](int i) {
    return !has_rule(rules, i) && nodes_[i].layer->sum_size(Layer::Pass::forward, mode_) > 0;
  };
  auto splits = [&](int i) {
    return T > 1 && (nodes_[i].layer->per_sample(mode_) || needs_sums(i)) &&
           (!has_rule(rules, i) || opt.per_sample_rules);
  };
  bool summed = false;  // node i's sums were gathered by the run before it
  for (int i = 0; i <= last;) {
    int j = i + 1;  // [i, j): a run of layers that may split the batch, or one layer
    if (splits(i))  // a layer that needs the batch's sums starts a run of its own
      while (j <= last && splits(j) && !needs_sums(j)) ++j;
    size_t floats = 0;
    double flops = 0;
    for (int k = i; k < j; ++k) floats += shapes_[k].numel(), flops += flops_[k] * N;
    const bool split = splits(i) && worth_splitting(flops, double(floats) * N);
    if (needs_sums(i) && !summed) gather_sums(i, Layer::Pass::forward, split ? T : 1, N, opt.row_block, false);
    // A split run followed by a layer that needs the batch's sums adds each group's part of them
    // while the group is still in cache, instead of reading the whole batch again.
    summed = split && j <= last && needs_sums(j);
    if (split) {
      const SplitGroups sg(T, N, opt.row_block, group_size(floats), true);
      if (summed) start_parts(j, Layer::Pass::forward, sg.count());
      run_split(
          sg,
          [&](int t, int b, int e, int k) {
            for (int q = i; q < j; ++q) forward_node(q, b, e, t, rules);
            if (summed) add_part(j, Layer::Pass::forward, b, e, k, t);
          },
          [](int) {});
      if (summed) combine_parts(j, Layer::Pass::forward, false);
    } else {
      for (int k = i; k < j; ++k) forward_node(k, 0, N, 0, rules);
    }
    if (opt.on_node)
      for (int k = i; k < j; ++k) opt.on_node(k, acts_[k]);
    i = j;
  }
  return acts_[last];
}

void Graph::param_grads_of(int i, int t, std::vector<Tensor*>& grads) {
  grads.clear();
  for (size_t p = 0; p < params_[i].size(); ++p)
    grads.push_back(t == 0 ? &params_[i][p]->grad : &thread_grads_[t][param_base_[i] + p]);
}

void Graph::backward_node(int i, int b, int e, int t, const BackwardOptions& opt, bool carry) {
  Node& nd = nodes_[i];
  const size_t k = nd.inputs.size();
  const std::vector<char>& route = route_[i];
  std::vector<Tensor>& scratch = scratch_[t];
  if (scratch.size() < k) scratch.resize(k);
  CallScratch& sc = calls_[t];  // reused: a node call allocates nothing once the vectors are sized
  sc.ins.resize(std::max(sc.ins.size(), k));
  sc.outs.resize(std::max(sc.outs.size(), k));
  sc.in.resize(k);
  sc.g_in.assign(k, nullptr);
  for (size_t a = 0; a < k; ++a) {
    const int j = nd.inputs[a];
    sc.ins[a] = rows(activation(j), b, e);
    sc.in[a] = &sc.ins[a];
    if (route[a] == 1 || route[a] == 3) {
      sc.outs[a] = rows(j < 0 ? input_sig_ : sigs_[j], b, e);
      sc.g_in[a] = &sc.outs[a];
    } else if (route[a] == 0) {
      scratch[a].resize(sc.ins[a].shape());
      sc.g_in[a] = &scratch[a];
    }
  }
  sc.grads.clear();
  if (opt.param_grads) param_grads_of(i, t, sc.grads);
  Tensor out = rows(acts_[i], b, e), g_out = rows(sigs_[i], b, e);
  BackwardCall call{i,      *nd.layer, std::move(sc.in),    out,   g_out, std::move(sc.g_in), opt.param_grads,
                    ws_[t], mode_,     std::move(sc.grads), carry, b,     t, k == 1 && route[0] == 3};
  if (has_rule(opt.rules, i))
    (*opt.rules)[i](call);
  else
    nd.layer->backward(call);
  sc.in = std::move(call.in);
  sc.g_in = std::move(call.g_in);
  sc.grads = std::move(call.grads);
  for (size_t a = 0; a < k; ++a) sc.ins[a] = sc.outs[a] = Tensor();  // let go of the views (see forward_node)
  for (size_t a = 0; a < k; ++a) {
    if (route[a] != 0) continue;
    const int j = nd.inputs[a];
    Tensor dst = rows(j < 0 ? input_sig_ : sigs_[j], b, e);
    float* d = dst.data();
    const float* s = scratch[a].data();
    for (size_t q = 0; q < dst.size(); ++q) d[q] += s[q];
  }
}

// The per-channel sums layer i needs over the whole batch before its pass (BatchNorm in training):
// parts of them over groups of rows (start_parts, then add_part per group, on any thread), which
// the layer combines in group order (combine_parts), so a thread count always gives the same bits.
void Graph::start_parts(int i, Layer::Pass pass, int groups) {
  const size_t S = nodes_[i].layer->sum_size(pass, mode_);
  sum_parts_.assign(size_t(groups) * S, 0.0);
  part_rows_.assign(groups, 0);
  parts_read_output_ = pass == Layer::Pass::backward && output_intact(i);
}

void Graph::add_part(int i, Layer::Pass pass, int b, int e, int k, int t) {
  Layer& L = *nodes_[i].layer;
  const size_t S = L.sum_size(pass, mode_);
  CallScratch& sc = calls_[t];  // reused, as in forward_node: no allocation once sized
  const size_t n = nodes_[i].inputs.size();
  sc.ins.resize(std::max(sc.ins.size(), n));
  sc.in.resize(n);
  for (size_t a = 0; a < n; ++a) {
    sc.ins[a] = rows(activation(nodes_[i].inputs[a]), b, e);
    sc.in[a] = &sc.ins[a];
  }
  const bool backward = pass == Layer::Pass::backward;
  const Tensor g = backward ? rows(sigs_[i], b, e) : Tensor();
  const Tensor out = parts_read_output_ ? rows(acts_[i], b, e) : Tensor();
  L.partial_sums(pass, sc.in, parts_read_output_ ? &out : nullptr, backward ? &g : nullptr,
                 sum_parts_.data() + size_t(k) * S);
  for (size_t a = 0; a < n; ++a) sc.ins[a] = Tensor();  // views hold their buffer: let go
  part_rows_[k] = e - b;
}

void Graph::combine_parts(int i, Layer::Pass pass, bool param_grads) {
  const size_t S = nodes_[i].layer->sum_size(pass, mode_);
  std::vector<const double*> parts(part_rows_.size());
  for (size_t k = 0; k < parts.size(); ++k) parts[k] = sum_parts_.data() + k * S;
  nodes_[i].layer->combine_sums(pass, parts, part_rows_, param_grads);
}

// Node i's sums with one part per thread's slice.
void Graph::gather_sums(int i, Layer::Pass pass, int T, int N, int row_block, bool param_grads) {
  start_parts(i, pass, T);
  auto add = [&](int t) {
    int b, e;
    part(t, T, N / row_block, b, e);
    add_part(i, pass, b * row_block, e * row_block, t, t);
  };
  if (T > 1)
    parallel(T, add);
  else
    add(0);
  combine_parts(i, pass, param_grads);
}

// Plans the walk from node `from`. All consumers of a node come after it, so walking the nodes in
// reverse, a node's signal is complete when the walk reaches it; its first writer overwrites each
// input's signal and later writers add to it. route_[i][a]: 1 overwrites input a's signal, 0
// writes a scratch signal that backward_node then adds, 3 has the layer add to the signal itself
// (Layer::adds_input_grad, single-input layers without a rule), 2 passes nothing to input a.
void Graph::plan_backward(int from, const BackwardOptions& opt, bool share_signals) {
  written_.assign(nodes_.size() + 1, 0);  // index j+1; slot 0 is the input
  route_.resize(nodes_.size());
  plan_.clear();
  written_[from + 1] = 1;
  for (int i = from; i >= 0; --i) {
    if (!written_[i + 1]) continue;  // no signal reaches this node
    plan_.push_back(i);
    if (i == opt.stop_at) return;
    const Node& nd = nodes_[i];
    std::vector<char>& route = route_[i];
    route.assign(nd.inputs.size(), 2);
    const bool adds = nd.inputs.size() == 1 && !has_rule(opt.rules, i) && nd.layer->adds_input_grad();
    for (size_t a = 0; a < nd.inputs.size(); ++a) {
      const int j = nd.inputs[a];
      if (j < 0 && !opt.input_grad) continue;
      bool claimed = written_[j + 1];
      for (size_t c = 0; c < a; ++c) claimed |= nd.inputs[c] == j && route[c] == 1;
      route[a] = !claimed ? 1 : adds ? 3 : 0;
      if (!claimed && a == 0 && share_signals && may_run_in_place(i, Layer::Pass::backward))
        shared_signal_[j] = i + 1;  // made to share i's signal once that is sized
      else if (!claimed)
        (j < 0 ? input_sig_ : sigs_[j]).resize(activation(j).shape());
    }
    for (size_t a = 0; a < nd.inputs.size(); ++a)
      if (route[a] != 2) written_[nd.inputs[a] + 1] = 1;
  }
  if (opt.stop_at >= 0)
    throw std::invalid_argument("backward: no signal from " + nodes_[from].layer->name + " reaches layer " +
                                nodes_[opt.stop_at].layer->name + " (it is not below it in the graph)");
}

const Tensor& Graph::backward(const Tensor& seed, const BackwardOptions& opt) {
  const int from = opt.seed_at < 0 ? output() : opt.seed_at;
  if (from >= size()) throw std::invalid_argument("backward from node " + std::to_string(from) + ": no such node");
  if (from > forward_end_)
    throw std::invalid_argument("backward from " + nodes_[from].layer->name + ": the last forward pass stopped below it");
  if (opt.stop_at < -1 || opt.stop_at >= size())
    throw std::invalid_argument("backward: stop_at node " + std::to_string(opt.stop_at) + " does not exist");
  check_shape(seed, acts_[from].shape(), "backward seed at " + nodes_[from].layer->name);
  const int N = seed.batch();
  check_row_block(N, opt.row_block, "backward");
  for (int i = 0; i <= from; ++i) nodes_[i].layer->prepare(Layer::Pass::backward, mode_);
  backward_rules_ = opt.rules != nullptr;
  backward_from_ = from;
  for (Workspace& w : ws_)  // nothing carried over from a pass that threw
    for (FloatBuffer& c : w.carried) c.clear();
  for (int j = 0; j < size(); ++j)  // the last pass's shared signals (see forward)
    if (shared_signal_[j]) sigs_[j] = Tensor(), shared_signal_[j] = 0;
  plan_backward(from, opt, mode_ == Mode::train && !opt.rules && !opt.on_node);
  sigs_[from].resize(seed.shape());
  sigs_[from].copy_from(seed);
  for (int j = size() - 1; j >= 0; --j)  // readers come after their inputs: sized in this order
    if (shared_signal_[j]) sigs_[j] = sigs_[shared_signal_[j] - 1];

  // Run it: each run of per-sample nodes split across threads, other nodes on the whole batch.
  const int T = width(N, opt.row_block);
  grow_threads(T);
  split_.assign(nodes_.size(), 0);
  if (opt.param_grads) {
    auto& tg = thread_grads_;
    for (int t = 1; t < T; ++t) tg[t].resize(param_base_.empty() ? 0 : param_base_.back() + params_.back().size());
  }
  auto needs_sums = [&](int i) {
    return !has_rule(opt.rules, i) && nodes_[i].layer->sum_size(Layer::Pass::backward, mode_) > 0;
  };
  auto splits = [&](int i) {
    return T > 1 && i != opt.stop_at && (nodes_[i].layer->per_sample(mode_) || needs_sums(i)) &&
           (!has_rule(opt.rules, i) || opt.per_sample_rules);
  };
  bool summed = false;  // plan_[s]'s sums were gathered by the run before it (see forward)
  for (size_t s = 0; s < plan_.size();) {
    if (plan_[s] == opt.stop_at) {
      if (opt.on_node) opt.on_node(plan_[s], sigs_[plan_[s]]);
      break;
    }
    size_t r = s + 1;  // plan_[s, r): a run that may split the batch, or one node
    if (splits(plan_[s]))  // a layer that needs the batch's sums starts a run of its own
      while (r < plan_.size() && splits(plan_[r]) && !needs_sums(plan_[r])) ++r;
    size_t floats = 0;  // activations and signals
    double flops = 0;
    for (size_t q = s; q < r; ++q) floats += 2 * shapes_[plan_[q]].numel(), flops += 2 * flops_[plan_[q]] * N;
    const bool split = splits(plan_[s]) && worth_splitting(flops, double(floats) * N);
    if (needs_sums(plan_[s]) && !summed)
      gather_sums(plan_[s], Layer::Pass::backward, split ? T : 1, N, opt.row_block, opt.param_grads);
    // The next node's signal rows are complete once this run has run them: every consumer of a
    // node comes before it in the plan, in this run or an earlier one.
    const int next = r < plan_.size() ? plan_[r] : -1;
    summed = split && next >= 0 && next != opt.stop_at && needs_sums(next);
    if (split) {
      if (opt.param_grads)  // threads 1.. start these nodes' parameter gradients from zero
        for (size_t q = s; q < r; ++q)
          for (size_t p = 0; p < params_[plan_[q]].size(); ++p) {
            const Tensor& grad = params_[plan_[q]][p]->grad;
            if (grad.empty()) continue;  // BatchNorm's running statistics
            for (int t = 1; t < T; ++t) {
              Tensor& buf = thread_grads_[t][param_base_[plan_[q]] + p];
              buf.resize(grad.shape());
              buf.fill(0.f);
            }
          }
      const SplitGroups sg(T, N, opt.row_block, group_size(floats), !opt.param_grads);
      if (summed) start_parts(next, Layer::Pass::backward, sg.count());
      // A thread calls each node once per group: layers may carry parameter gradients from
      // call to call and add them once, when the thread is done (Layer::end_backward).
      run_split(
          sg,
          [&](int t, int b, int e, int k) {
            for (size_t q = s; q < r; ++q) backward_node(plan_[q], b, e, t, opt, !has_rule(opt.rules, plan_[q]));
            if (summed) add_part(next, Layer::Pass::backward, b, e, k, t);
          },
          [&](int t) {
            if (!opt.param_grads) return;
            for (size_t q = s; q < r; ++q) {
              param_grads_of(plan_[q], t, calls_[t].grads);
              nodes_[plan_[q]].layer->end_backward(ws_[t], plan_[q], calls_[t].grads);
            }
          });
      if (summed) combine_parts(next, Layer::Pass::backward, opt.param_grads);
      for (size_t q = s; q < r; ++q) split_[plan_[q]] = 1;
    } else {
      for (size_t q = s; q < r; ++q) backward_node(plan_[q], 0, N, 0, opt, false);
    }
    if (opt.on_node)  // each node's signal was complete before its backward ran, and is unchanged
      for (size_t q = s; q < r; ++q) opt.on_node(plan_[q], sigs_[plan_[q]]);
    s = r;
  }
  // Threads 1.. added their parameter gradients into their own buffers; sum them in thread order,
  // so that a given thread count always adds in the same order.
  if (opt.param_grads)
    for (int i = 0; i < size(); ++i) {
      if (!split_[i]) continue;
      for (size_t p = 0; p < params_[i].size(); ++p) {
        Tensor& g = params_[i][p]->grad;
        for (int t = 1; t < T; ++t) {
          const float* src = thread_grads_[t][param_base_[i] + p].data();
          for (size_t q = 0; q < g.size(); ++q) g[q] += src[q];
        }
      }
    }
  if (opt.on_node && opt.stop_at < 0 && opt.input_grad && written_[0]) opt.on_node(-1, input_sig_);
  return opt.stop_at >= 0 ? sigs_[opt.stop_at] : input_sig_;
}

}  // namespace gb
