// Fitting a network to targets under the mean squared error: the loop that trains the visualize
// family's decoders (Dosovitskiy & Brox's inversion), shared by `glassbox visualize` and the
// Python package.
#pragma once
#include <cstdint>
#include <string>

#include "engine/graph.h"

namespace gb {

struct RegressionFit {
  int epochs = 3, batch = 64;
  double lr = 1e-3;
  uint64_t seed = 0;
  std::string what;  // "decoder from relu2": names it in progress lines and errors
  bool quiet = false;  // no progress lines (the Python package: C's stdout is not Python's)
};

// Adam over seeded shuffled mini-batches of (inputs, targets), one progress line per epoch on
// stdout unless quiet. A non-finite loss is an error naming `what`. Returns the last epoch's mean loss.
double fit_mse(Graph& net, const Tensor& inputs, const Tensor& targets, const RegressionFit& f);

}  // namespace gb
