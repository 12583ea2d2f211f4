// Concept activation vectors (Kim et al. 2018): a linear classifier separates a concept's layer
// activations from another set's (a random set), and the CAV is the unit normal of its boundary,
// pointing toward the concept.
//
// The classifier is Captum's and tensorflow/tcav's default, scikit-learn's SGDClassifier(alpha=0.01,
// max_iter=1000, tol=1e-3), re-implemented here: plain SGD over the shuffled training rows (double
// precision), one sample per step, the "optimal" step size η_t = 1/(α (t0 + t − 1)) with t0 from
// Bottou's heuristic (η at the first step is α^(−1/4)), the L2 penalty as a shrink of w by
// (1 − η α) before each step, an unpenalized intercept, and sklearn's stopping rule: stop when the
// epoch's summed loss has not dropped below (best − tol·n) for 5 epochs in a row. Losses: hinge
// (a linear SVM, the default) or log (logistic regression).
//
// Held-out accuracy: a stratified split (tcav's train_test_split(test_size=0.33, stratify=y)):
// round(test_fraction · n) examples of each set, at least one, are held out at random.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace gb::concepts {

enum class Loss { hinge, log };

struct SgdOptions {
  Loss loss = Loss::hinge;
  double alpha = 0.01;   // L2 strength (sklearn's alpha)
  int max_iter = 1000;   // epochs at most
  double tol = 1e-3;     // stop when an epoch's summed loss improves by less than tol · n ...
  int n_iter_no_change = 5;  // ... this many epochs in a row
  uint64_t seed = 0;     // the order of each epoch
};

struct LinearFit {
  std::vector<double> w;  // D weights
  double b = 0;           // intercept
  int epochs = 0;         // epochs run
  bool converged = false; // stopped by the tolerance rule (not max_iter)
};

// A binary linear classifier on rows X ([N, D] floats) with labels y in {−1, +1}, fitted by SGD as
// above. `rows` picks which rows to train on (all when empty).
LinearFit fit_sgd(const Tensor& X, const std::vector<int>& y, const std::vector<int>& rows, const SgdOptions& o);

struct CavOptions {
  SgdOptions sgd;
  double test_fraction = 0.33;
};

struct Cav {
  std::vector<float> direction;  // the unit normal w/‖w‖, pointing toward the concept (D values)
  LinearFit fit;                 // the raw classifier (what Captum keeps as the CAV)
  double accuracy = 0;           // on the held-out rows of both sets
  double train_accuracy = 0;
  int n_train = 0, n_test = 0;
};

// The CAV of `positive` ([n1, D], the concept's activations) against `other` ([n2, D]); each set needs at least 2 rows. Throws
// when the classifier's weights are all zero (the sets cannot be told apart at this layer).
Cav train_cav(const Tensor& positive, const Tensor& other, const CavOptions& o);

}  // namespace gb::concepts
