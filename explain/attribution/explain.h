// The explanation API, Captum-style: explain(model, input, target, method, params) returns a
// tensor shaped like the input, batch first. Every method is a set of backward (or forward) rules
// over the model's one graph, or a batched perturbation of its input.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/target.h"
#include "explain/common/params.h"

namespace gb::explain {

struct Result {
  Tensor attribution;         // shaped like the input: [N, C, H, W]
  std::vector<double> delta;  // completeness delta per sample where defined (IG, DeepLIFT, LRP), else empty
  bool is_signed = true;      // signed maps are drawn blue-white-red, unsigned in gray/hot
  // Per-sample values a method reports besides the map (LIME: "weights" per superpixel,
  // "intercept", "score", and "segments", the H*W superpixel label of each pixel); empty otherwise.
  std::vector<std::map<std::string, std::vector<double>>> details;
  // What the entries of a per-layer detail refer to, input first (LRP: "relevance_per_layer", the
  // relevance summed at the input and at each layer's output the backward pass reached).
  std::vector<std::string> detail_layers = {};  // (a default: aggregate initializations may leave it out)
};

const std::vector<MethodInfo>& methods();
const MethodInfo& method_info(const std::string& name);  // throws listing the known methods

// target: one class per sample (a std::vector<int> converts), or a unit at a layer (Captum's
// neuron attribution: a channel's mean, one unit, a direction; engine/target.h). Throws on an
// unknown method or parameter, a target that does not fit the model, a method that explains
// class logits only (CAM), or an input whose shape does not fit the model.
Result explain(Graph& model, const Tensor& x, const Target& target, const std::string& method,
               const Params& params = {});

}  // namespace gb::explain
