// How method families plug into explain(): each family file defines add_<family>_methods(),
// which appends its methods to the registry: the declaration (name, parameters with defaults,
// convention) and the function that runs it. explain() builds a ParamReader on the declaration,
// so the function reads exactly the declared keys, and checks afterwards that it read them all.
#pragma once
#include <functional>

#include "explain/attribution/explain.h"

namespace gb::explain {

using RunFn = std::function<Result(Graph&, const Tensor& x, const Target& target, ParamReader&)>;

struct Method {
  MethodInfo info;
  RunFn run;
};

void add_gradient_methods(std::vector<Method>& registry);      // gradient.cpp: saliency, IG, SmoothGrad...
void add_relu_rule_methods(std::vector<Method>& registry);     // relu_rules.cpp: deconvnet, guided-backprop
void add_deeplift_methods(std::vector<Method>& registry);      // deeplift.cpp
void add_lrp_methods(std::vector<Method>& registry);           // lrp.cpp
void add_cam_methods(std::vector<Method>& registry);           // cam.cpp: cam, grad-cam, ...
void add_perturbation_methods(std::vector<Method>& registry);  // perturbation.cpp: occlusion, rise
void add_lime_methods(std::vector<Method>& registry);          // lime.cpp

}  // namespace gb::explain
