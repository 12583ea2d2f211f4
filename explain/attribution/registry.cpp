// The method registry: every family adds its methods; explain() validates and dispatches.
#include <stdexcept>

#include "explain/attribution/method.h"

namespace gb::explain {

static const MethodTable<Method>& table() {
  static const MethodTable<Method> t("method", [] {
    std::vector<Method> m;
    add_gradient_methods(m);
    add_relu_rule_methods(m);
    add_deeplift_methods(m);
    add_lrp_methods(m);
    add_cam_methods(m);
    add_perturbation_methods(m);
    add_lime_methods(m);
    return m;
  }());
  return t;
}

const std::vector<MethodInfo>& methods() { return table().infos(); }

const MethodInfo& method_info(const std::string& name) { return table().find(name).info; }

Result explain(Graph& model, const Tensor& x, const Target& target, const std::string& method,
               const Params& params) {
  const Method& m = table().find(method);
  if (x.rank() != model.input_shape().rank + 1 || x.shape().sample() != model.input_shape())
    shape_error("input to explain", Shape::batch_of(x.rank() ? x.batch() : 1, model.input_shape()), x.shape());
  target.check(model, x.batch());
  ParamReader reader(params, m.info);
  Result r = m.run(model, x, target, reader);
  reader.done();
  return r;
}

}  // namespace gb::explain
