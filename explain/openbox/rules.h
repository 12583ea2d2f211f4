// OpenBox's rule set over the model's one graph (internal to explain/openbox/).
//
// Row 0 of a batch is a real input and, unless the configuration is frozen, decides it: ReLU on
// iff z > 0, max-pool winners. Rows [0, n_affine) get the biases (values); the other rows are
// directions (linear parts only). ReLU multiplies every row by the configuration's mask,
// max-pool gathers its winners, conv/dense/batchnorm apply their weights (and biases to value
// rows only); avg-pool, GAP, flatten, add and eval dropout are linear and keep their own forward.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/conv_sparse.h"
#include "engine/graph.h"
#include "engine/layers.h"
#include "explain/openbox/openbox.h"

namespace gb::openbox {

// FNV-1a: simple, byte-order independent for our byte streams, and stable across platforms.
struct Hasher {
  uint64_t h = 1469598103934665603ull;
  void byte(uint8_t b) {
    h ^= b;
    h *= 1099511628211ull;
  }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) byte(uint8_t(v >> (8 * i)));
  }
  // One configuration layer: its index, then its ReLU mask (from the mask or the
  // pre-activations) or its max-pool winners.
  void relu(int li, const uint8_t* on, size_t n);
  void relu_pre(int li, const float* pre, size_t n);
  void pool(int li, const int32_t* argmax, size_t n);
};

// Visits the in-bounds entries (flat index within the plane) of output element o of a max-pool.
template <class F>
void for_window(const MaxPool2d& P, int H, int W, int OW, int o, F&& f) {
  const int oh = o / OW, ow = o % OW;
  for (int i = 0; i < P.k; ++i) {
    const int ih = oh * P.stride - P.pad + i;
    if (ih < 0 || ih >= H) continue;
    for (int j = 0; j < P.k; ++j) {
      const int iw = ow * P.stride - P.pad + j;
      if (iw >= 0 && iw < W) f(ih * W + iw);
    }
  }
}

// A max-pool window's (winner, other) input pairs, flat per sample: one constraint each.
struct PoolPair {
  int window, win, other;
};
std::vector<PoolPair> pool_pairs(const Graph& g, const LayerConfig& L);

void check_one(const Graph& g, const Tensor& x1, const char* what);  // x1 is one input sample
Tensor with_batch(const Graph& g, int rows);                         // zeros, [rows, input...]
size_t floats_per_row(const Graph& g);  // every node's output per sample (what the graph stores per row)

// The rule set. Not movable: the rules capture `this`.
class Rules {
 public:
  explicit Rules(Graph& graph);
  Rules(const Rules&) = delete;
  Rules& operator=(const Rules&) = delete;

  Graph& g;
  int n_affine = 1;     // rows [0, n_affine) of the whole batch get the biases
  bool frozen = false;  // true: keep the configuration of the last pass that was not frozen
  // >= 0: rows [n_affine, R) are the unit vectors e_{basis_k0}, e_{basis_k0 + 1}, ... (zero rows
  // past the last input element). Layers fed straight from the input then place their weights
  // instead of multiplying by the identity, and convolutions of these sparse rows scatter
  // (engine/conv_sparse.h).
  int basis_k0 = -1;
  // > 0: dense layers multiply the rows in blocks of this many rows of the whole batch (aligned),
  // not all rows of a call at once: OpenBLAS's results depend on a GEMM's row count, and so a
  // row's result does not depend on how the graph split the batch.
  int gemm_rows = 0;
  std::vector<LayerConfig> cfg;  // the configuration, one entry per ReLU/LeakyReLU and max-pool
  // Called with all rows of a call at a ReLU's input (pre-activations) or a max-pool's input.
  // In a split pass (run(batch, true)) the graph calls them on several threads at once, each
  // with its own rows (call.row0, call.thread): they must then write only what those rows own.
  using Hook = std::function<void(int li, const Tensor& in, const ForwardCall& call)>;
  Hook on_relu, on_pool;

  // Runs the batch through the graph. With `split` (only with a frozen configuration: otherwise
  // row 0 must decide it for all rows) the graph may run slices of the batch on several threads,
  // keeping blocks of `row_block` rows together.
  const Tensor& run(const Tensor& batch, bool split = false, int row_block = 1);

  uint64_t id() const;
  Configuration configuration() const;

 private:
  ForwardRules rules_;
  std::vector<char> from_input_;             // per node: fed by the graph input (possibly through flatten)
  std::vector<std::vector<float>> mult_;     // per configuration layer (ReLU): 1 on, the slope off
  std::vector<float> slope_;                 // per configuration layer (ReLU): the slope when off
  std::vector<std::vector<float>> bn_scale_, bn_shift_;  // per node (BatchNorm): its eval-mode affine form
  // Per node (Conv2d), while direction rows are the identity: its sparse convolution, made in
  // the first such pass; and per thread, that convolution's scratch.
  std::vector<SparseConv> sparse_conv_;
  std::vector<SparseConvScratch> conv_scratch_;

  int add_config(int node, const Layer& L, bool max_pool);
  int value_rows(const ForwardCall& c) const;  // rows of this call that get biases
  void add_bias(Tensor& y, const float* b, int channels, int rows) const;
  void dense_rows(const Dense& Dn, const ForwardCall& c, int begin, int end, Tensor& y) const;
  void prepare_sparse_convs();
  void conv(ForwardCall& c);
  void dense(ForwardCall& c, bool from_input);
  void batchnorm(ForwardCall& c) const;
  void relu(ForwardCall& c, int li);
  void maxpool(ForwardCall& c, int li);
  void decide_relu(const Tensor& x, int li);
  void decide_maxpool(const MaxPool2d& P, const Tensor& x, const Tensor& y, int li);
};

}  // namespace gb::openbox
