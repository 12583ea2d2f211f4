// Losses on a model's output, with their gradients. They live in the engine so that explanation
// families (influence functions, TracIn, distillation surrogates, attacks) use them without
// depending on train/. Log-softmax numerics throughout (max-subtracted log-sum-exp, in double).
//
// Reduction::mean is the training loss: the mean over the batch, its gradient divided by N.
// Reduction::sum adds the samples' losses, so that row n of the gradient is the gradient of
// sample n's own loss (what per-sample parameter gradients start from).
#pragma once
#include <vector>

#include "engine/argmax.h"
#include "engine/tensor.h"

namespace gb {

enum class Reduction { mean, sum };

struct LossResult {
  double loss = 0;                // reduced over the batch
  int correct = 0;                // argmax == label (classification losses)
  std::vector<double> per_sample; // each sample's own loss
};

// Cross-entropy of softmax(logits) against labels: logits [N,K], labels in [0,K). Writes
// d(loss)/d(logits) into grad when given (resized to [N,K]). Throws naming a label out of range.
// PyTorch: nn.CrossEntropyLoss(reduction='mean' | 'sum').
LossResult softmax_cross_entropy(const Tensor& logits, const std::vector<int>& labels, Tensor* grad,
                                 Reduction r = Reduction::mean);

// Squared error: sample n's loss is the mean of (out − target)² over its elements, so the batch
// mean equals PyTorch's nn.MSELoss() (the mean over every element). out and target alike.
LossResult mse(const Tensor& out, const Tensor& target, Tensor* grad, Reduction r = Reduction::mean);

// Distillation's soft-target loss (Hinton et al. 2015): T² · KL(softmax(teacher/T) ‖ softmax(student/T))
// per sample; with Reduction::mean it equals PyTorch's
// F.kl_div(F.log_softmax(s/T), F.softmax(t/T), reduction='batchmean') · T². The T² keeps its
// gradient, T·(p_student − p_teacher) per sample, on the scale of the hard loss's.
// `correct` counts students whose argmax agrees with the teacher's.
LossResult distillation_kl(const Tensor& student_logits, const Tensor& teacher_logits, double temperature,
                           Tensor* grad, Reduction r = Reduction::mean);

}  // namespace gb
