// The explanation API, Captum-style: explain(model, input, targets, method, params) returns a
// tensor shaped like the input, batch first. Every method is a set of backward (or forward) rules
// over the model's one graph, or a batched perturbation of its input.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "explain/common/params.h"

namespace gb::explain {

struct Result {
  Tensor attribution;         // shaped like the input: [N, C, H, W]
  std::vector<double> delta;  // completeness delta per sample where defined (IG, DeepLIFT, LRP), else empty
  bool is_signed = true;      // signed maps are drawn blue-white-red, unsigned in gray/hot
  // Per-sample values a method reports besides the map (LIME: "weights" per superpixel,
  // "intercept", "score", and "segments", the H*W superpixel label of each pixel); empty otherwise.
  std::vector<std::map<std::string, std::vector<double>>> details;
};

const std::vector<MethodInfo>& methods();
const MethodInfo& method_info(const std::string& name);  // throws listing the known methods

// targets: one class per sample. Throws on an unknown method or parameter, a target out of range,
// or an input whose shape does not fit the model.
Result explain(Graph& model, const Tensor& x, const std::vector<int>& targets, const std::string& method,
               const Params& params = {});

}  // namespace gb::explain
