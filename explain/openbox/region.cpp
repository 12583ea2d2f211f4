// The region of one input: its configuration, the affine map W_x z + b_x and the constraints of
// its polytope, from passes of the rule set (rules.h) over the model's one graph.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "engine/threads.h"
#include "explain/openbox/openbox.h"
#include "explain/openbox/rules.h"

namespace gb::openbox {

namespace {

// Per configuration layer: what its constraints are made of.
struct LayerTerms {
  std::vector<float> at_x, at_zero;  // the constrained quantity at x, and at 0 (for c)
  std::vector<PoolPair> pairs;       // max-pool: the (winner, other) pair of each constraint
  std::vector<double> norm2;         // squared lengths of the constraints' gradients
  std::vector<float> J;              // with the polytope: the gradients, [constraint][D]
  size_t column = 0;                 // the layer's first column in UnitSums
};

// 1. x and 0 alone, in one pass that is not split, so that row 0 (x) decides the configuration:
// the logits, b_x (the zero input under that configuration) and every constraint's value at x
// and at 0.
void values_at_x_and_zero(Rules& rules, const Tensor& x1, std::vector<LayerTerms>& terms, Region& R) {
  Graph& g = rules.g;
  rules.n_affine = 2;
  rules.on_relu = [&](int li, const Tensor& pre, const ForwardCall&) {
    const size_t n = pre.sample_size();
    terms[li].at_x.assign(pre.data(), pre.data() + n);
    terms[li].at_zero.assign(pre.data() + n, pre.data() + 2 * n);
  };
  rules.on_pool = [&](int li, const Tensor& in, const ForwardCall&) {
    LayerTerms& t = terms[li];
    const size_t n = in.sample_size();
    t.pairs = pool_pairs(g, rules.cfg[li]);
    t.at_x.resize(t.pairs.size());
    t.at_zero.resize(t.pairs.size());
    for (size_t j = 0; j < t.pairs.size(); ++j) {
      t.at_x[j] = in[t.pairs[j].win] - in[t.pairs[j].other];
      t.at_zero[j] = in[n + t.pairs[j].win] - in[n + t.pairs[j].other];
    }
  };
  Tensor pair = with_batch(g, 2);
  std::memcpy(pair.data(), x1.data(), x1.size() * sizeof(float));
  const Tensor& out = rules.run(pair);
  const int K = g.classes();
  std::memcpy(R.logits.data(), out.data(), K * sizeof(float));
  std::memcpy(R.b.data(), out.data() + K, K * sizeof(float));
  rules.on_relu = nullptr;
  rules.on_pool = nullptr;
}

// Per unit of direction rows of a pass (DirectionUnits), the sums of the squared gradients of
// every constraint, [unit][column] (a layer's constraints from its LayerTerms::column on). A
// call holds whole units and writes only theirs, so the threads of a split pass never write the
// same sums; the norms add the units' sums in unit order.
class UnitSums {
 public:
  UnitSums(std::vector<LayerTerms>& terms, int unit, int units_per_pass) : unit_(unit) {
    for (LayerTerms& t : terms) {
      t.column = columns_;
      columns_ += t.at_x.size();
    }
    sums_.resize(size_t(units_per_pass) * columns_);
    norm2_.assign(columns_, 0.0);
  }
  // The sums of t's constraints over the unit holding row `row` of the pass, zeroed.
  float* unit(const LayerTerms& t, int row) {
    float* s = sums_.data() + size_t(row / unit_) * columns_ + t.column;
    std::fill(s, s + t.at_x.size(), 0.f);
    return s;
  }
  // Adds the pass's units, in order, into the squared norms; the columns are split across
  // threads (each column's sum keeps its order).
  void add_pass(int units) {
    const int T = size_t(units) * columns_ >= (size_t(1) << 15) ? threads() : 1;  // else a hand-off costs more
    parallel(T, [&](int t) {
      int lo, hi;
      part(t, T, int(columns_), lo, hi);
      for (int u = 0; u < units; ++u) {
        const float* s = sums_.data() + size_t(u) * columns_;
        for (int j = lo; j < hi; ++j) norm2_[j] += s[j];
      }
    });
  }
  // t's squared norms.
  std::vector<double> norm2(const LayerTerms& t) const {
    return {norm2_.begin() + long(t.column), norm2_.begin() + long(t.column + t.at_x.size())};
  }

 private:
  int unit_;
  size_t columns_ = 0;
  std::vector<float> sums_;
  std::vector<double> norm2_;  // per column: the squared length of its constraint's gradient
};

// The D directions in units of consecutive rows: what a thread runs through all layers at once,
// the rows of each of the rules' GEMMs (Rules::gemm_rows), and of each float sum of squared
// gradients. OpenBLAS's results depend on a GEMM's row count, and float sums on their order; so
// units do not depend on the thread count, and a region has the same bits at every thread count.
// A unit holds about half of budget_floats of activations (they stay in a core's cache); an even
// number of units (so that two threads share them evenly), the last one padded with zero rows.
// A pass runs units_per_pass of them: about budget_floats of activations, a multiple of T.
struct DirectionUnits {
  int D, unit, count, per_pass;

  DirectionUnits(const Graph& g, size_t budget_floats, int D_, int T) : D(D_) {
    const size_t budget_rows = std::max<size_t>(budget_floats / std::max<size_t>(floats_per_row(g), 1), 2);
    count = std::max(1, int(std::lround(double(D) / double(budget_rows / 2))));
    if (count > 1) count += count % 2;
    unit = (D + count - 1) / count;
    count = (D + unit - 1) / unit;
    per_pass = std::max(1, int(budget_rows / size_t(unit)) / T) * T;
  }
};

// One pass: `units` units from direction k0 on; each thread walks its slice through all layers
// in groups of row_block rows (ForwardOptions::row_block): all its units at once when the units
// divide among the threads, else unit by unit as the graph splits them.
struct Pass {
  int k0, units, row_block;
};

std::vector<Pass> passes_of(const DirectionUnits& du, int T) {
  std::vector<Pass> v;
  for (int u0 = 0; u0 < du.count; u0 += du.per_pass) {
    const int n = std::min(du.per_pass, du.count - u0);
    v.push_back({u0 * du.unit, n, n % T == 0 ? n / T * du.unit : du.unit});
  }
  return v;
}

// What a call's direction rows hold at a configuration layer's input: per unit of rows, the sums
// of the squared gradients; with the polytope, the gradients (J's columns k0 + row, up to D:
// padding rows are zero and write nothing).
struct DirectionRecorder {
  UnitSums& sums;
  int D, unit;
  bool polytope;
  int k0 = 0;  // the pass's first direction

  void relu(LayerTerms& t, const Tensor& pre, int row0) {
    const size_t n = pre.sample_size();
    for (int r0 = 0; r0 < pre.batch(); r0 += unit) {
      float* s = sums.unit(t, row0 + r0);
      for (int r = r0; r < std::min(pre.batch(), r0 + unit); ++r) {
        const float* v = pre.data() + size_t(r) * n;
        for (size_t i = 0; i < n; ++i) s[i] += v[i] * v[i];
        if (polytope && k0 + row0 + r < D)
          for (size_t i = 0; i < n; ++i) t.J[i * D + k0 + row0 + r] = v[i];
      }
    }
  }
  void pool(LayerTerms& t, const Tensor& in, int row0) {
    const size_t n = in.sample_size();
    for (int r0 = 0; r0 < in.batch(); r0 += unit) {
      float* s = sums.unit(t, row0 + r0);
      for (int r = r0; r < std::min(in.batch(), r0 + unit); ++r) {
        const float* v = in.data() + size_t(r) * n;
        const bool keep = polytope && k0 + row0 + r < D;
        for (size_t j = 0; j < t.pairs.size(); ++j) {
          const float d = v[t.pairs[j].win] - v[t.pairs[j].other];
          s[j] += d * d;
          if (keep) t.J[j * D + k0 + row0 + r] = d;
        }
      }
    }
  }
};

// 2. The unit directions e_d through the frozen configuration, in passes: their images are the
// columns of W_x and of every constraint's gradient. The graph splits each pass's rows across
// threads; the rules write only what their rows own (W_x's columns k0 + row, J's columns, their
// units' sums).
void unit_directions(Rules& rules, const RegionOptions& opt, std::vector<LayerTerms>& terms, Region& R) {
  Graph& g = rules.g;
  const int K = R.W.dim(0), D = R.W.dim(1);
  const int T = in_parallel() ? 1 : threads();  // as the graph will split
  const DirectionUnits du(g, opt.budget_floats, D, T);
  UnitSums sums(terms, du.unit, du.per_pass);
  DirectionRecorder record{sums, D, du.unit, opt.polytope};
  rules.frozen = true;
  rules.n_affine = 0;  // every row is a direction: no bias
  rules.gemm_rows = du.unit;
  rules.on_relu = [&](int li, const Tensor& pre, const ForwardCall& c) { record.relu(terms[li], pre, c.row0); };
  rules.on_pool = [&](int li, const Tensor& in, const ForwardCall& c) { record.pool(terms[li], in, c.row0); };
  Tensor identity = with_batch(g, du.per_pass * du.unit);  // row r: e_{k0 + r}, set and cleared per pass
  for (const Pass& p : passes_of(du, T)) {
    const int k0 = record.k0 = p.k0, rows = std::min(p.units * du.unit, D - k0);
    Tensor batch = identity.slice(0, p.units * du.unit);
    for (int r = 0; r < rows; ++r) batch[size_t(r) * D + k0 + r] = 1.f;
    rules.basis_k0 = k0;
    const Tensor& out = rules.run(batch, true, p.row_block);
    for (int r = 0; r < rows; ++r) {
      batch[size_t(r) * D + k0 + r] = 0.f;
      for (int k = 0; k < K; ++k) R.W[size_t(k) * D + k0 + r] = out[size_t(r) * K + k];
    }
    sums.add_pass(p.units);
  }
  rules.on_relu = nullptr;
  rules.on_pool = nullptr;
  rules.gemm_rows = 0;
  for (LayerTerms& t : terms) t.norm2 = sums.norm2(t);
}

Constraint constraint_of(const LayerConfig& L, const LayerTerms& t, size_t j) {
  Constraint k;
  k.node = L.node;
  k.norm = std::sqrt(t.norm2[j]);
  if (L.max_pool) {
    k.window = t.pairs[j].window;
    k.index = t.pairs[j].win;
    k.other = t.pairs[j].other;
    k.slack = t.at_x[j] + 0.0;
  } else {
    k.index = int(j);
    k.on = L.on[j];
    k.slack = (k.on ? t.at_x[j] : -double(t.at_x[j])) + 0.0;  // + 0.0: no "-0"
  }
  return k;
}

// 3. The constraints with a nonzero gradient (the others are constant in the region and hold at
// x, hence everywhere in it), the nearest ones, and (for A) which (layer, constraint) each is.
std::vector<std::pair<int, size_t>> collect_constraints(const Rules& rules, const std::vector<LayerTerms>& terms,
                                                         const RegionOptions& opt, Region& R) {
  std::vector<std::pair<int, size_t>> rows;
  for (int li = 0; li < int(terms.size()); ++li) {
    const LayerConfig& L = rules.cfg[li];
    for (size_t j = 0; j < terms[li].norm2.size(); ++j) {
      if (terms[li].norm2[j] == 0) {
        if (L.max_pool) R.degenerate++;
        continue;
      }
      const Constraint k = constraint_of(L, terms[li], j);
      if (k.slack == 0) R.through_x++;
      if (k.distance() < R.nearest_distance) {
        R.nearest_distance = k.distance();
        R.nearest = k;
      }
      if (k.slack > 0 && k.distance() < R.nearest_beyond_distance) {
        R.nearest_beyond_distance = k.distance();
        R.nearest_beyond = k;
      }
      R.constraint_count++;
      if (opt.keep_constraints || opt.polytope) R.constraints.push_back(k);
      if (opt.polytope) rows.emplace_back(li, j);
    }
  }
  return rows;
}

// 4. A z <= c: one row per constraint, then the box.
void build_polytope(const Rules& rules, const std::vector<LayerTerms>& terms,
                    const std::vector<std::pair<int, size_t>>& rows, const RegionOptions& opt, Region& R) {
  const int D = R.W.dim(1);
  R.box_constraints = opt.box ? 2 * D : 0;
  const int M = int(rows.size()) + R.box_constraints;
  R.A = Tensor({std::max(M, 1), D});
  R.c = Tensor({std::max(M, 1)});
  for (int m = 0; m < int(rows.size()); ++m) {
    auto [li, j] = rows[m];
    // on (or pool winner): J z + beta >= 0  ->  -J z <= beta; off: J z + beta <= 0  ->  J z <= -beta.
    const bool keep_positive = rules.cfg[li].max_pool || rules.cfg[li].on[j];
    const float sgn = keep_positive ? -1.f : 1.f;
    const float* src = terms[li].J.data() + j * D;
    float* dst = R.A.data() + size_t(m) * D;
    for (int d = 0; d < D; ++d) dst[d] = sgn * src[d];
    R.c[m] = keep_positive ? terms[li].at_zero[j] : -terms[li].at_zero[j];
  }
  for (int d = 0; d < R.box_constraints / 2; ++d) {
    const size_t m0 = rows.size() + 2 * d;
    R.A[m0 * D + d] = -1.f;
    R.c[m0] = -opt.lo;
    R.A[(m0 + 1) * D + d] = 1.f;
    R.c[m0 + 1] = opt.hi;
  }
  if (!opt.keep_constraints) R.constraints.clear();  // the list was only needed to build A
}

}  // namespace

Region region(Graph& g, const Tensor& x1, const RegionOptions& opt) {
  check_one(g, x1, "openbox input");
  // Every GEMM on the thread that calls it, also in passes the graph does not split: OpenBLAS's
  // own threading would change the bits with the thread count.
  BlasSerial serial;
  Rules rules(g);
  const int D = int(x1.size()), K = g.classes();
  Region R;
  R.W = Tensor({K, D});
  R.b = Tensor({K});
  R.logits = Tensor({K});
  std::vector<LayerTerms> terms(rules.cfg.size());
  values_at_x_and_zero(rules, x1, terms, R);
  if (opt.polytope)
    for (LayerTerms& t : terms) t.J.assign(t.at_x.size() * D, 0.f);
  unit_directions(rules, opt, terms, R);
  R.config = rules.configuration();
  const auto rows = collect_constraints(rules, terms, opt, R);
  if (opt.polytope) build_polytope(rules, terms, rows, opt, R);
  return R;
}

std::vector<double> Region::affine_logits(const float* z) const {
  const int K = W.dim(0), D = W.dim(1);
  std::vector<double> out(K);
  for (int k = 0; k < K; ++k) {
    double s = b[k];
    const float* w = W.data() + size_t(k) * D;
    for (int d = 0; d < D; ++d) s += double(w[d]) * z[d];
    out[k] = s;
  }
  return out;
}

std::string describe(const Graph& g, const Constraint& k) {
  if (k.node < 0) return "none";
  std::string s = g.layer(k.node).name + "[" + std::to_string(k.index);
  if (k.other >= 0) s += ">=" + std::to_string(k.other);
  return s + "]";
}

std::vector<float> feature_difference(const Region& r, int c, int c2) {
  const int K = r.W.dim(0), D = r.W.dim(1);
  if (c < 0 || c >= K || c2 < 0 || c2 >= K)
    throw std::invalid_argument("class pair " + std::to_string(c) + "," + std::to_string(c2) + " out of range [0," +
                                std::to_string(K) + ")");
  std::vector<float> v(D);
  for (int d = 0; d < D; ++d) v[d] = r.W[size_t(c) * D + d] - r.W[size_t(c2) * D + d];
  return v;
}

}  // namespace gb::openbox
