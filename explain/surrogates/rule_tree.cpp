#include "explain/surrogates/rule_tree.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "engine/interrupt.h"
#include "engine/threads.h"

namespace gb::explain::surrogates {

namespace {

// 1 − Σ_c count_c² / n², the sum of squares an exact integer.
double gini_of(long long squares, int n) { return n ? 1 - double(squares) / (double(n) * n) : 0; }

long long squares(const std::vector<int>& counts) {
  long long s = 0;
  for (int c : counts) s += (long long)c * c;
  return s;
}

struct Split {
  int feature = -1;
  float threshold = 0;
  double impurity = INFINITY;  // weighted Gini of the two sides
};

// The order of a float as an unsigned key: negative values bit-flipped, others with the sign bit set.
uint32_t sort_key(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u & 0x80000000u ? ~u : u | 0x80000000u;
}

// Sorts by value: least significant 11 bits first, three counting passes (n log n comparisons of
// std::sort took most of a fit). Equal values end up adjacent, which is all a split needs: it is
// only placed between different values, and what lies left of it does not depend on the order
// of the equal ones.
void sort_by_value(std::vector<std::pair<float, int>>& v, std::vector<std::pair<float, int>>& scratch) {
  if (v.size() < 256) return std::sort(v.begin(), v.end());
  scratch.resize(v.size());
  for (int shift = 0; shift < 33; shift += 11) {
    size_t count[2049] = {};
    for (const auto& e : v) ++count[((sort_key(e.first) >> shift) & 2047) + 1];
    for (int b = 0; b < 2048; ++b) count[b + 1] += count[b];
    for (const auto& e : v) scratch[count[(sort_key(e.first) >> shift) & 2047]++] = e;
    v.swap(scratch);
  }
}

// The features: value(f, i) = at[f * feature_step + i * sample_step]. A feature-major copy
// (sample_step 1) reads a feature's values of a node's samples, in ascending order, forward through
// one row; X itself (feature_step 1) strides F floats per sample.
struct FeatureView {
  const float* at;
  size_t feature_step, sample_step;
};

// One node's samples and the buffers a scan of its features needs (one per thread).
struct NodeScan {
  const FeatureView& X;
  const std::vector<int>& y;
  const std::vector<int>& idx;
  const std::vector<int>& total;  // class counts of idx
  long long total_squares;
  int min_leaf;
  std::vector<std::pair<float, int>> sorted, scratch;
  std::vector<int> left, right;

  // Feature f's thresholds in value order, each taken when it beats `best` by more than 1e-12.
  // Each side's Σ count² changes by 2 count ± 1 as a sample crosses, so a threshold costs O(1).
  void scan(int f, Split& best) {
    const int n = int(idx.size());
    const float* column = X.at + size_t(f) * X.feature_step;
    sorted.resize(size_t(n));
    for (int j = 0; j < n; ++j) sorted[j] = {column[size_t(idx[j]) * X.sample_step], idx[j]};
    sort_by_value(sorted, scratch);
    left.assign(total.size(), 0);
    right = total;
    long long left_squares = 0, right_squares = total_squares;
    for (int k = 0; k + 1 < n; ++k) {
      const int c = y[sorted[k].second];
      right_squares -= 2LL * right[c]-- - 1;
      left_squares += 2LL * left[c]++ + 1;
      const float a = sorted[k].first, b = sorted[k + 1].first;
      if (a == b || k + 1 < min_leaf || n - k - 1 < min_leaf) continue;
      const double imp = (double(k + 1) * gini_of(left_squares, k + 1) + double(n - k - 1) * gini_of(right_squares, n - k - 1)) / n;
      if (imp < best.impurity - 1e-12) {
        const float mid = a + (b - a) / 2;
        best = {f, mid < b ? mid : a, imp};  // a midpoint that rounds up to b would send b left
      }
    }
  }
};

// The best split of the samples `idx`: every feature's thresholds in (feature, value) order, each
// taken when it beats the best so far by more than 1e-12. From 256 samples the features are first
// scanned on all threads, each from no split; feature f's result b_f is within 1e-12 above its
// smallest impurity, so only a feature with b_f below the best so far can hold a threshold the
// ordered walk would take, and the walk rescans just those (a few of hundreds): the same split.
Split best_split(const FeatureView& X, int F, const std::vector<int>& y, const std::vector<int>& total,
                 const std::vector<int>& idx, int min_leaf) {
  const long long total_squares = squares(total);
  auto scanner = [&] { return NodeScan{X, y, idx, total, total_squares, min_leaf, {}, {}, {}, {}}; };
  NodeScan walk = scanner();
  Split best;
  const int T = idx.size() >= 256 ? std::min(threads(), F) : 1;
  if (T <= 1) {
    for (int f = 0; f < F; ++f) walk.scan(f, best);
    return best;
  }
  std::vector<double> alone(F);
  parallel(T, [&](int t) {
    NodeScan mine = scanner();
    int first, last;
    part(t, T, F, first, last);
    for (int f = first; f < last; ++f) {
      Split s;
      mine.scan(f, s);
      alone[f] = s.impurity;
    }
  });
  for (int f = 0; f < F; ++f)
    if (alone[f] < best.impurity) walk.scan(f, best);
  return best;
}

std::string threshold_text(float v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", double(v));
  return b;
}

std::string name_of(const std::vector<std::string>& names, int i, const char* prefix) {
  return i < int(names.size()) ? names[i] : prefix + std::to_string(i);
}

// Two leaves of one parent that predict the same class become their parent, bottom up (no
// prediction changes; the rules get shorter), and the nodes are renumbered without them.
void merge_equal_leaves(RuleTree& t) {
  for (int i = int(t.nodes.size()) - 1; i >= 0; --i) {
    TreeNode& n = t.nodes[i];
    if (n.leaf()) continue;
    const TreeNode &l = t.nodes[n.left], &r = t.nodes[n.right];
    if (l.leaf() && r.leaf() && l.prediction == r.prediction && l.prediction == n.prediction)
      n.feature = -1, n.left = n.right = -1;
  }
  std::vector<int> id(t.nodes.size(), -1);
  std::vector<TreeNode> kept;
  std::vector<int> stack = {0};  // reachable nodes, in their old order
  std::vector<int> reachable;
  while (!stack.empty()) {
    const int i = stack.back();
    stack.pop_back();
    reachable.push_back(i);
    if (!t.nodes[i].leaf()) stack.push_back(t.nodes[i].right), stack.push_back(t.nodes[i].left);
  }
  std::sort(reachable.begin(), reachable.end());
  for (int i : reachable) id[i] = int(kept.size()), kept.push_back(t.nodes[i]);
  for (TreeNode& n : kept)
    if (!n.leaf()) n.left = id[n.left], n.right = id[n.right];
  t.nodes = std::move(kept);
}

}  // namespace

RuleTree fit_tree(const Tensor& X, const std::vector<int>& y, int classes, const TreeOptions& o) {
  if (X.rank() != 2 || X.batch() != int(y.size()) || y.empty())
    throw std::invalid_argument("rule tree: features [N, F] and N labels expected, got " + X.shape().str() + " and " +
                                std::to_string(y.size()));
  if (o.max_depth < 1 || o.max_depth > 20) throw std::invalid_argument("rule tree: max_depth must be in [1, 20]");
  if (o.min_leaf < 1) throw std::invalid_argument("rule tree: min_leaf must be >= 1");
  for (int v : y)
    if (v < 0 || v >= classes) throw std::out_of_range("rule tree: label " + std::to_string(v) + " outside the classes");
  const int N = X.batch(), F = X.dim(1);
  // A feature-major copy (the gathers from X were much of a fit's time), up to o.copy_limit values.
  std::vector<float> Xt;
  FeatureView features{X.data(), 1, size_t(F)};
  if (size_t(N) * F <= o.copy_limit) {
    Xt.resize(size_t(N) * F);
    for (int i = 0; i < N; ++i)
      for (int f = 0; f < F; ++f) Xt[size_t(f) * N + i] = X[size_t(i) * F + f];
    features = {Xt.data(), size_t(N), 1};
  }
  RuleTree t;
  // Nodes to split, with their samples; a node's children are appended after it.
  std::vector<std::vector<int>> samples = {std::vector<int>(y.size())};
  std::iota(samples[0].begin(), samples[0].end(), 0);
  t.nodes.push_back({});
  for (size_t i = 0; i < t.nodes.size(); ++i) {
    poll_interrupt();  // fits have no forward passes to stop at
    TreeNode& node = t.nodes[i];
    const std::vector<int> idx = std::move(samples[i]);
    node.counts.assign(classes, 0);
    for (int s : idx) ++node.counts[y[s]];
    node.prediction = int(std::max_element(node.counts.begin(), node.counts.end()) - node.counts.begin());
    node.gini = gini_of(squares(node.counts), int(idx.size()));
    if (node.depth >= o.max_depth || node.gini == 0 || int(idx.size()) < 2 * o.min_leaf) continue;
    const Split s = best_split(features, F, y, node.counts, idx, o.min_leaf);
    if (s.feature < 0 || s.impurity >= node.gini - 1e-12) continue;
    std::vector<int> left, right;
    for (int v : idx) (X[size_t(v) * X.dim(1) + s.feature] <= s.threshold ? left : right).push_back(v);
    const int depth = node.depth;
    t.nodes[i].feature = s.feature;
    t.nodes[i].threshold = s.threshold;
    t.nodes[i].left = int(t.nodes.size());
    t.nodes[i].right = int(t.nodes.size()) + 1;
    for (auto* side : {&left, &right}) {
      TreeNode child;
      child.depth = depth + 1;
      t.nodes.push_back(child);  // invalidates `node`: only indices are used from here
      samples.push_back(std::move(*side));
    }
  }
  merge_equal_leaves(t);
  return t;
}

int RuleTree::predict(const float* x) const {
  int i = 0;
  while (!nodes[i].leaf()) i = x[nodes[i].feature] <= nodes[i].threshold ? nodes[i].left : nodes[i].right;
  return nodes[i].prediction;
}

std::vector<int> RuleTree::predict(const Tensor& X) const {
  std::vector<int> out(X.batch());
  for (int n = 0; n < X.batch(); ++n) out[n] = predict(X.data() + size_t(n) * X.dim(1));
  return out;
}

std::vector<std::string> RuleTree::rules(const std::vector<std::string>& features,
                                         const std::vector<std::string>& classes) const {
  struct Condition {
    int feature;
    bool at_most;  // x <= threshold; else x > threshold
    float threshold;
  };
  std::vector<std::pair<int, std::string>> leaves;  // (samples, rule)
  std::vector<std::pair<int, std::vector<Condition>>> stack = {{0, {}}};  // depth first
  while (!stack.empty()) {
    auto [i, path] = stack.back();
    stack.pop_back();
    const TreeNode& n = nodes[i];
    if (!n.leaf()) {
      auto right = path;
      right.push_back({n.feature, false, n.threshold});
      path.push_back({n.feature, true, n.threshold});
      stack.push_back({n.right, right});
      stack.push_back({n.left, path});
      continue;
    }
    // Per feature and side, the tightest condition on the path, in the order first met.
    std::vector<Condition> tight;
    for (const Condition& c : path) {
      auto same = std::find_if(tight.begin(), tight.end(),
                               [&](const Condition& t) { return t.feature == c.feature && t.at_most == c.at_most; });
      if (same == tight.end())
        tight.push_back(c);
      else
        same->threshold = c.at_most ? std::min(same->threshold, c.threshold) : std::max(same->threshold, c.threshold);
    }
    std::string cond;
    for (const Condition& c : tight)
      cond += (cond.empty() ? "" : " AND ") + name_of(features, c.feature, "x") + (c.at_most ? " <= " : " > ") +
              threshold_text(c.threshold);
    const int total = std::accumulate(n.counts.begin(), n.counts.end(), 0);
    char tail[96];
    std::snprintf(tail, sizeof tail, " (n = %d, %.0f%%)", total, total ? 100.0 * n.counts[n.prediction] / total : 0.0);
    leaves.emplace_back(total, (cond.empty() ? "ALWAYS" : "IF " + cond) + " THEN " +
                                   name_of(classes, n.prediction, "class ") + tail);
  }
  std::stable_sort(leaves.begin(), leaves.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& [n, r] : leaves) out.push_back(r);
  return out;
}

nlohmann::json RuleTree::to_json(const std::vector<std::string>& features, const std::vector<std::string>& classes) const {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const TreeNode& n = nodes[i];
    nlohmann::json j = {{"id", i}, {"depth", n.depth}, {"counts", n.counts}, {"gini", n.gini},
                        {"prediction", n.prediction}, {"class", name_of(classes, n.prediction, "class ")}};
    if (!n.leaf()) {
      j["feature"] = n.feature;
      j["feature_name"] = name_of(features, n.feature, "x");
      j["threshold"] = n.threshold;
      j["left"] = n.left;
      j["right"] = n.right;
    }
    out.push_back(j);
  }
  return out;
}

}  // namespace gb::explain::surrogates
