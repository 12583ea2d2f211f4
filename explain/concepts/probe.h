// Linear probes (Alain & Bengio 2016): for each chosen layer, a softmax linear classifier on the
// layer's activations (flattened, or averaged over positions per channel), trained on the training
// split and scored on the test split. Every layer's probe learns from the same forward passes: one
// pass per epoch over the training set runs the model once and updates every probe.
//
// Features are standardized by the training split's per-feature mean and standard deviation (one
// pass over up to 10,000 evenly spaced training rows before training), so every layer's probe
// trains with the same step size whatever its scale; a feature constant over those rows is dropped
// (its weights stay 0; its scale is reported as 1). Each probe minimizes the mean cross-entropy
// (+ l2/2 ‖W‖²) with Adam (PyTorch's torch.optim.Adam, bias-corrected) and a cosine learning-rate
// schedule (CosineAnnealingLR over all steps, to 0), from zero weights, over mini-batches in a seeded
// order shared by every layer: epoch e visits the training rows in the Fisher-Yates order of
// Rng(mix_seed(seed, e)).
#pragma once
#include <string>
#include <vector>

#include "explain/concepts/concepts.h"

namespace gb::concepts {

struct ProbeRequest {
  Tensor train_x, test_x;  // [N, input...] in the model's input space
  std::vector<int> train_y, test_y;
  int classes = 0;          // 0: 1 + the largest training label
  std::vector<int> layers;  // node ids (-1: the input)
  StageProgress progress;
};

struct LayerProbe {
  int node = -1;
  std::string layer;
  int features = 0;
  double train_accuracy = 0, test_accuracy = 0, train_loss = 0, test_loss = 0;  // of the final probe
  // The probe on standardized features z = (a − mean) / scale: logits = W z + b.
  Tensor weight, bias, mean, scale;  // [K, F], [K], [F], [F]
};

struct ProbeResult {
  std::vector<LayerProbe> layers;
  int classes = 0, epochs = 0;
};

// Throws on an unknown method or key, a parameter outside its range, data that does not fit the
// model, labels outside [0, classes), non-finite values, or a layer with more features than allowed.
ProbeResult probe(Graph& model, const ProbeRequest& request, const Params& params = {},
                  const std::string& method = "probe");

}  // namespace gb::concepts
