// Filter pruning by classification-accuracy reduction (Abbasi-Asl & Yu 2017, "Structural
// compression of convolutional neural networks"): a filter's importance is the accuracy the model
// loses on a validation set when that filter alone is removed; greedy pruning removes, one at a
// time, the filter whose removal costs least, and stops before the accuracy falls more than a
// target below the unpruned model's. Removing a filter masks it (engine/edit.h mask_units: its
// weights and bias zeroed) and, when a batch normalization directly follows, zeroes that channel's
// scale and shift too, so the channel is 0 wherever the filter would have fed the network: the same
// function as the network with the filter deleted. The pruned model keeps its architecture and is
// saved as a normal model file.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "explain/common/heatmap.h"
#include "explain/common/params.h"
#include "explain/visualize/image_ops.h"

namespace gb::explain::surrogates {

struct Filter {
  int node = -1, index = -1;  // a conv layer's output channel, or a dense layer's unit
  bool operator==(const Filter&) const = default;
};

// Labelled inputs in the model's input space.
struct LabelledSet {
  Tensor x;
  std::vector<int> y;
};

struct PruneOptions {
  std::vector<int> layers;  // the layers whose filters may go (conv or dense, not the output); empty: every conv layer
  double max_drop = 0.01;   // stop before validation accuracy falls more than this below the start (0..1)
  // Re-measure every remaining filter's drop, on the pruned model, after this many removals: 1 is
  // Abbasi-Asl & Yu's greedy (one measurement per filter per removal, quadratic in the filters);
  // 0 measures once and removes in that order.
  int rerank = 0;
  int batch = 256;
  const LabelledSet* curve = nullptr;  // also measured after every removal (e.g. the test split)
  std::function<void(const std::string& stage, int done, int total)> progress;
};

struct PruneStep {
  Filter filter;
  double drop = 0;              // its measured drop when it was chosen (vs the model it was removed from)
  double accuracy = 0;          // validation accuracy after removing it
  double curve_accuracy = NAN;  // accuracy on PruneOptions::curve after removing it
};

struct PruneResult {
  double base_accuracy = 0, base_curve_accuracy = NAN;
  std::vector<Filter> filters;  // every candidate
  std::vector<double> drop;     // per candidate: base accuracy − accuracy with that filter alone removed
  std::vector<PruneStep> steps; // the removals, in order
  Filter stopped_at;            // the filter whose removal would have exceeded max_drop (node −1: none)
  double stopped_accuracy = NAN;
  int evaluations = 0;          // passes over the validation set
  double final_accuracy() const { return steps.empty() ? base_accuracy : steps.back().accuracy; }
};

// The layers pruning may take filters from, by name ("" or "all": every conv layer); throws naming
// an unknown layer or one without filters or units.
std::vector<int> prunable_layers(const Graph& g, const std::string& names);

// Prunes g in place (masks the removed filters) on the validation set `val`.
PruneResult prune_filters(Graph& g, const LabelledSet& val, const PruneOptions& o);

// Removes a filter as described above.
void remove_filter(Graph& g, Filter f);

double accuracy(Graph& g, const LabelledSet& s, int batch = 256);

// Kept vs pruned filters side by side: per conv layer that had candidates, a line with up to
// `count` kept filters (the most important first) and up to `count` pruned ones (in the order they
// went), each drawn as its activation-maximization image (the visualize family's `am`, by name,
// maximizing the filter's channel mean in `original`, the unpruned model, from noise, with
// `am_params`) and captioned with its measured drop. `bounds` is the model's pixel range.
Image kept_vs_pruned(Graph& original, const PruneResult& r, const visualize::Bounds& bounds, int count,
                     const Params& am_params = {});

}  // namespace gb::explain::surrogates
