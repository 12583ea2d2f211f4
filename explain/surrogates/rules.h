// Rules that explain a model, one registry:
//   anchors  per input, an Anchor (anchors.h): over SLIC superpixels for images (a superpixel is
//            kept or, perturbed, replaced by its mean colour as LIME hides it), or over quantile
//            ranges of flat features (the anchor package's tabular explainer: quartiles of the
//            training data, perturbations drawn from it).
//   tree     globally, a CART tree (rule_tree.h) fitted to the model's predictions over
//            interpretable features (the flat input's coordinates, pooled pixels, or a layer's
//            channel means), its fidelity (agreement with the model) on the fitting set and on
//            held-out inputs, and its rules.
// Rules are stated in data units: the model's normalization is undone for thresholds.
#pragma once
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "explain/common/heatmap.h"
#include "explain/common/params.h"

namespace gb::explain::surrogates {

struct RulesRequest {
  Tensor inputs;                         // anchors: [N, input...], the model's input space
  std::vector<std::string> input_names;  // for result names (default input0, input1, ...)
  Tensor data;                           // [M, input...]: anchors' distribution for flat features; the tree's fitting set
  Tensor test;                           // tree: held-out inputs for its fidelity (may be empty)
  std::vector<std::string> class_names;
  // Per input channel, data units = model input · scale + shift (the normalization undone); empty:
  // the identity.
  std::vector<float> raw_scale, raw_shift;
};

struct RuleSet {
  std::string name;                 // the input's name, or "tree"
  std::vector<std::string> rules;   // readable, one per line
  nlohmann::json details;           // everything measured
  std::map<std::string, Tensor> arrays;  // e.g. "segments" (anchors on images: [H, W] labels)
  Image figure;                     // w == 0 when the method draws none
};

const std::vector<MethodInfo>& rule_methods();
const MethodInfo& rule_method(const std::string& name);  // throws listing the known methods

// Throws on an unknown method or parameter, a parameter outside its documented range, or inputs
// and data that do not fit the model (naming them).
std::vector<RuleSet> rules(Graph& model, const RulesRequest& q, const std::string& method, const Params& params = {});

}  // namespace gb::explain::surrogates
