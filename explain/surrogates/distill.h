// Knowledge distillation (Hinton, Vinyals & Dean 2015): a student trained on the teacher's
// softened outputs as well as the labels, with the loss
//   α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(softmax(s), y),
// T the temperature, the T² keeping the soft term's gradient on the scale of the hard one's. The
// training loop itself is the caller's (train/fit.h, from the command line): this file gives the
// batch loss, the soft decision tree's balancing penalty for students that are trees, and the
// student's agreement with its teacher (fidelity).
#pragma once
#include <vector>

#include "engine/graph.h"
#include "engine/loss.h"

namespace gb::explain::surrogates {

struct DistillSettings {
  double temperature = 4;  // T > 0 (Hinton et al. used 2–20)
  double alpha = 0.9;      // weight of the soft term, in [0, 1]; 0 trains on the labels alone
  double penalty = 0.1;    // λ of every soft tree's balancing penalty (Frosst & Hinton; 0: none)
};

// Throws std::invalid_argument naming the setting and its range.
void check(const DistillSettings& s);

// The batch loss above (means over the batch) and its gradient at the student's logits. Keeps its
// scratch between batches. `correct` counts students agreeing with the labels.
class DistillationLoss {
 public:
  explicit DistillationLoss(const DistillSettings& s) : s_(s) { check(s); }
  LossResult operator()(const Tensor& student, const Tensor& teacher, const std::vector<int>& labels, Tensor& grad);

 private:
  DistillSettings s_;
  Tensor soft_grad_;
};

// Adds the balancing penalty of every soft tree layer of g, at the activations of g's last
// training forward, to g's parameter gradients (a tree's own filters, and through a backward pass
// the layers before it when the tree does not read the graph input). Returns Σ penalty.
double add_tree_penalties(Graph& g, double lambda);

// How a student compares with its teacher on inputs x (in the models' input space) with labels y.
struct Agreement {
  int n = 0;
  double student_accuracy = 0, teacher_accuracy = 0;
  double fidelity = 0;  // the fraction of inputs where the two predict the same class
};
Agreement agreement(Graph& student, Graph& teacher, const Tensor& x, const std::vector<int>& y, int batch = 256);

// Argmax of each row of [N, K] logits (ties to the lower class).
std::vector<int> predictions(const Tensor& logits);
// The model's predicted class for every row of x, batch by batch.
std::vector<int> predict(Graph& g, const Tensor& x, int batch = 256);

}  // namespace gb::explain::surrogates
