// OpenBox (Chu et al., KDD 2018): a piecewise-linear network is, around any input x, exactly an
// affine map W_x z + b_x valid on a convex polytope (the input's linear region).
//
// Everything here runs through the model's one graph with a ForwardRules set: row 0 of a batch
// decides the activation configuration (ReLU on iff z > 0, max-pool argmax), and the other rows
// are pushed through the same layers with that configuration frozen and without biases. With the
// identity as those rows, every node's output holds the Jacobian of that activation in the input,
// i.e. the affine form every region constraint needs. Calls overwrite the graph's recorded forward.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/graph.h"

namespace gb::openbox {

// Throws std::invalid_argument naming the first layer OpenBox cannot freeze into an affine map
// (tanh, sigmoid, softplus, or any layer kind it does not know).
void check_piecewise_linear(const Graph& g);

// The activation configuration: one entry per ReLU/LeakyReLU and per max-pool node, in graph order.
struct LayerConfig {
  int node = -1;
  std::string name, kind;          // layer name and kind ("relu", "leakyrelu", "maxpool"), as written out
  bool max_pool = false;           // a max-pool (argmax), else a ReLU or LeakyReLU (on)
  std::vector<uint8_t> on;         // relu/leakyrelu: 1 iff the pre-activation is > 0
  std::vector<int32_t> argmax;     // maxpool: per output element, flat index in its input plane
  int units = 0;                   // neurons (relu) or windows (maxpool)
  int active = 0;                  // relu: neurons on
  int ties = 0;                    // maxpool: windows whose maximum is shared (lowest index wins)
};

struct Configuration {
  std::vector<LayerConfig> layers;
  uint64_t id = 0;  // FNV-1a over every bit and argmax, stable across runs and machines
  std::string hex() const;
};
std::string hex_id(uint64_t id);

// The configuration of each sample of x ([N, input...]) from one ordinary batched forward; the
// ids equal region(...).config.id.
// `labels`, when given, receives each sample's predicted class from the same forward pass.
std::vector<uint64_t> configuration_ids(Graph& g, const Tensor& x, std::vector<int>* labels = nullptr);
Configuration configuration(Graph& g, const Tensor& x1);  // x1: one sample [1, input...]

// One inequality a·z <= c of the region: ReLU neuron `index` of `layer` keeps its side, or for a
// max-pool window the winner (input element `index`) stays >= input element `other`.
struct Constraint {
  int node = -1;     // the ReLU / max-pool node
  int index = 0;     // relu: neuron (flat, per sample); maxpool: the winning input element (flat, per sample)
  int other = -1;    // maxpool: the losing input element
  int window = -1;   // maxpool: the output element (window)
  bool on = false;   // relu: the side
  double slack = 0;  // value of the constrained quantity at x (>= 0): |z| or winner - other
  double norm = 0;   // ‖a‖: length of its gradient in the input
  double distance() const { return norm > 0 ? slack / norm : INFINITY; }
};

struct RegionOptions {
  bool polytope = false;        // materialize A and c (rows = constraints, then the box)
  bool keep_constraints = true; // keep the per-constraint list (slack, norm)
  // Optional input-domain box lo <= z <= hi (2·D more rows of A when polytope is set).
  bool box = false;
  float lo = 0.f, hi = 1.f;
  // Activations per pass of the identity's rows (4 MiB), split across the threads: each thread's
  // part stays in its core's cache.
  size_t budget_floats = size_t(1) << 20;
};

struct Region {
  Configuration config;
  Tensor logits;          // [K]: the network at x
  Tensor W;               // [K, D]: W_x; row c is the gradient of logit c
  Tensor b;               // [K]: b_x, propagated independently (the zero input with biases)
  std::vector<Constraint> constraints;  // ReLU then max-pool, in graph order (zero-gradient ones dropped)
  int constraint_count = 0;  // network constraints with a nonzero gradient
  int degenerate = 0;        // max-pool pairs whose difference is identically zero in the region (always hold)
  int box_constraints = 0;
  int through_x = 0;         // constraints with zero slack: x lies on their hyperplane (e.g. z = 0 exactly)
  Constraint nearest;        // the constraint closest to x
  double nearest_distance = INFINITY;
  // The closest constraint that does not pass through x (with zero biases, blank pixels put x
  // exactly on many ReLU hyperplanes, so `nearest` is then at distance 0).
  Constraint nearest_beyond;
  double nearest_beyond_distance = INFINITY;
  Tensor A, c;               // [rows, D], [rows] when RegionOptions::polytope
  // Logits of the region's affine map at z ([D] values): W z + b.
  std::vector<double> affine_logits(const float* z) const;
};

// The region of x1 ([1, input...]), with the same bits at every thread count.
Region region(Graph& g, const Tensor& x1, const RegionOptions& opt = {});

// "relu2[5]" or "maxpool1[12>13]" (layer name, element within the sample).
std::string describe(const Graph& g, const Constraint& k);

// Decision features: W_c - W_c' ([D]).
std::vector<float> feature_difference(const Region& r, int c, int c2);

// ---- the segment a + t (b - a), t in [0, 1] ---------------------------------------------------

struct Piece {
  double t0 = 0, t1 = 0;     // [t0, t1)
  uint64_t id = 0;           // configuration at the midpoint
  int label = -1;            // predicted class at the midpoint
  int map = -1;              // index of its affine map among the walk's distinct maps
};

struct Walk {
  std::vector<Piece> pieces;
  int regions = 0;           // distinct configurations crossed
  int affine_maps = 0;       // distinct affine maps (compared on the segment: logit slopes, bitwise)
  std::vector<double> decision_changes;  // t where the predicted class changes
  int degenerate = 0;        // pieces whose midpoint configuration differed from the probe's
};

struct WalkOptions {
  double eps = 1e-6;       // step past each crossing (in t) before re-evaluating
  int max_pieces = 1000000;
};

// Exact enumeration of the regions crossed by the segment: within a region every pre-activation
// (and max-pool difference) is affine in t; step to the nearest crossing, repeat.
Walk walk(Graph& g, const Tensor& a, const Tensor& b, const WalkOptions& opt = {});

// ---- a 2-D slice: z(u, v) = origin + u d1 + v d2 ------------------------------------------------

struct Plane {
  Tensor origin, d1, d2;                 // each [1, input...]
  double u0 = 0, u1 = 1, v0 = 0, v1 = 1; // the window
};
// The plane through three inputs (p0 at (0,0), p1 at (1,0), p2 at (0,1)) with `margin` around them;
// invalid_argument when they do not span one (two coincide, or all lie on a line).
Plane plane_through(const Tensor& p0, const Tensor& p1, const Tensor& p2, double margin = 0.25);
// The input plane of a model with 2-D inputs, over the box [u0,u1] x [v0,v1].
Plane input_plane(double u0, double u1, double v0, double v1);

struct Polygon {
  uint64_t id = 0;
  std::vector<double> u, v;  // vertices, counter-clockwise
  // Logits over the polygon: l(u, v) = l0 + u lu + v lv (each [K]).
  std::vector<double> l0, lu, lv;
  double area() const;
};

struct SliceRegions {
  std::vector<Polygon> regions;  // one per configuration met in the window
  int probes = 0;                // graph passes run
  bool truncated = false;        // stopped at max_regions: the count is a lower bound
};

// Exact enumeration of the regions of the window: breadth-first over regions, each one's polygon
// is the window clipped by its constraints restricted to the plane, and each polygon edge is
// crossed (a small step past its midpoint) to find the neighbor. Regions thinner than the step
// (`eps` of the window size) can be missed, so the count is a lower bound that becomes exact as
// eps -> 0; every region of positive width is found at small enough eps.
SliceRegions slice_regions(Graph& g, const Plane& p, double eps = 1e-6, int max_regions = 200000);

// Rasterizes the slice: per pixel (row-major, v up) the region index (-1: in no polygon) and the
// predicted class. Pixel centers are at u0 + (i + 0.5) (u1 - u0) / w.
void rasterize(const SliceRegions& s, const Plane& p, int w, int h, std::vector<int>& region_of,
               std::vector<int>& label_of);

// ---- dataset statistics -----------------------------------------------------------------------

struct ConfigStats {
  int inputs = 0, distinct = 0;
  int largest = 0;          // inputs sharing the most common configuration
  int shared_inputs = 0;    // inputs whose configuration some other input also has
  int singletons = 0;       // configurations met by exactly one input
  std::vector<std::pair<uint64_t, int>> top;  // most common configurations, with counts
};
ConfigStats config_stats(Graph& g, const Tensor& x, int batch = 256, int top = 10);

}  // namespace gb::openbox
