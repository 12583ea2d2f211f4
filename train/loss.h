// Softmax cross-entropy on logits, computed with log-softmax numerics (max-subtracted log-sum-exp).
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace gb {

struct LossResult {
  double loss = 0;  // mean over the batch
  int correct = 0;  // argmax == label
};

// logits [N,K], labels in [0,K). Writes d(mean loss)/d(logits) into grad (resized to [N,K]).
// Throws naming the label when one is out of range.
LossResult softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels, Tensor* grad);

}  // namespace gb
