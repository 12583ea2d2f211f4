// A CART classification tree (Breiman et al. 1984; scikit-learn's DecisionTreeClassifier with
// the Gini criterion and best splits): the global rule extraction of the surrogates family, fitted
// to a model's predictions over interpretable features, read as one if-then rule per leaf.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace gb::explain::surrogates {

struct TreeNode {
  int feature = -1;        // inner nodes: go left when x[feature] <= threshold
  float threshold = 0;
  int left = -1, right = -1;
  int depth = 0;
  int prediction = 0;      // the majority class of the node's samples (ties: the lower class)
  std::vector<int> counts; // samples per class
  double gini = 0;
  bool leaf() const { return feature < 0; }
};

struct RuleTree {
  std::vector<TreeNode> nodes;  // nodes[0] is the root
  int predict(const float* x) const;
  std::vector<int> predict(const Tensor& X) const;  // X [N, F]
  // One rule per leaf, most samples first: "IF a <= 0.5 AND b > 2 THEN class (n = 40, 95%)", each
  // feature's tightest bound on either side only.
  std::vector<std::string> rules(const std::vector<std::string>& features, const std::vector<std::string>& classes) const;
  nlohmann::json to_json(const std::vector<std::string>& features, const std::vector<std::string>& classes) const;
};

struct TreeOptions {
  int max_depth = 4;     // 1..20
  int min_leaf = 5;      // samples a leaf must keep
  // Up to this many values (N * F) the fit reads a feature-major copy of X (faster); beyond, X in
  // place. The same tree either way.
  size_t copy_limit = size_t(64) << 20;
};

// Fits X [N, F] to labels y (in [0, classes)): at each node the split (feature, threshold) of
// least weighted Gini impurity among thresholds halfway between consecutive distinct values,
// both sides keeping min_leaf samples; ties go to the lower feature, then the lower threshold. A
// node stays a leaf when it is pure, at max_depth, or no split lowers the impurity. Afterwards two
// leaves of one parent that predict the parent's class are merged into it (no prediction changes).
RuleTree fit_tree(const Tensor& X, const std::vector<int>& y, int classes, const TreeOptions& o);

}  // namespace gb::explain::surrogates
