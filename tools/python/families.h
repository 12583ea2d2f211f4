// The explanation families and training from Python (families.cpp): methods(), visualize(),
// evaluate(), influence(), regions(), train(). Shared with module.cpp: how a target and a method's
// keyword parameters are read.
#pragma once
#include "engine/target.h"
#include "tools/python/convert.h"

namespace gb::py_glassbox {

// The CLI's --target from Python: an int, a per-sample list/array of classes, "pred", or a unit
// spec string (LAYER:C, LAYER:C,Y,X, LAYER:FILE.npy). Runs a forward for "pred" under pm.mu, which it takes without the GIL: call it without holding pm.mu.
Target target_arg(PyModel& pm, const Tensor& x, py::handle target);
// Whether a target is "pred", and that target computed (hold pm.mu; no GIL needed): callers that
// run a method resolve it under the method's own lock, so both see the same weights.
bool is_pred(py::handle target);
Target pred_target(Graph& g, const Tensor& x);
// An attribution method's keywords, routed and defaulted exactly as `glassbox explain` does.
explain::Params method_params(const PyModel& pm, const std::string& method, const py::dict& kwargs, const Tensor& x);

void bind_families(py::module_& m);
// tcav, cav, patterns, probe, dissect, segmentation_set, attack, importance, rules, soft_tree
// (concepts_attacks_surrogates.cpp).
void bind_concepts_attacks_surrogates(py::module_& m);

}  // namespace gb::py_glassbox
