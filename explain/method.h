// How method families plug into explain(): each family file defines add_<family>_methods(),
// which appends its methods (name, parameters, the function that runs it) to the registry.
#pragma once
#include <functional>
#include <set>

#include "explain/explain.h"

namespace gb::explain {

using RunFn = std::function<Result(Graph&, const Tensor& x, const std::vector<int>& targets, const Params&)>;

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

// Reads method parameters with defaults; unknown keys are an error naming the key and the method.
class ParamReader {
 public:
  ParamReader(const Params& p, std::string method) : p_(p), method_(std::move(method)) {}
  double number(const std::string& key, double fallback);
  int integer(const std::string& key, int fallback);
  std::string text(const std::string& key, const std::string& fallback);
  bool flag(const std::string& key, bool fallback);
  const Tensor* tensor(const std::string& key);  // the tensor given for key, or null
  bool has(const std::string& key) const { return p_.count(key) > 0; }
  // Call after reading every known key: throws on keys the method did not read.
  void done() const;

 private:
  const Params& p_;
  std::string method_;
  std::set<std::string> read_;
};

}  // namespace gb::explain
