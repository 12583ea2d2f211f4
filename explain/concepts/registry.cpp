// The family's registry and the checks its methods share.
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "explain/concepts/method.h"

namespace gb::concepts {

static const explain::MethodTable<Method>& table() {
  static const explain::MethodTable<Method> t("concept method", [] {
    std::vector<Method> m;
    add_tcav_methods(m);
    add_probe_methods(m);
    add_dissect_methods(m);
    add_ace_methods(m);
    return m;
  }());
  return t;
}

const std::vector<MethodInfo>& methods() { return table().infos(); }

std::vector<MethodInfo> methods_of(Kind kind) {
  std::vector<MethodInfo> v;
  for (auto& m : table().all())
    if (m.kind == kind) v.push_back(m.info);
  return v;
}

const MethodInfo& method_info(const std::string& name) { return table().find(name).info; }

Kind method_kind(const std::string& name) { return table().find(name).kind; }

const Method& find_method(const std::string& name, Kind kind) {
  for (auto& m : table().all())
    if (m.info.name == name && m.kind == kind) return m;
  throw std::invalid_argument("unknown method '" + name + "' here (known: " + explain::joined_names(methods_of(kind)) + ")");
}

void validate_params(const std::string& method, const Params& params) {
  const Method& m = find_method(method, method_kind(method));
  ParamReader reader(params, m.info);
  m.read_all(reader);
  reader.done();
}

void check_examples(const Graph& g, const Tensor& x, const std::string& what) {
  if (x.empty()) throw std::invalid_argument(what + ": no examples");
  if (x.rank() != g.input_shape().rank + 1 || x.shape().sample() != g.input_shape())
    shape_error(what, Shape::batch_of(x.batch(), g.input_shape()), x.shape());
  for (size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i]))
      throw std::invalid_argument(what + ": not finite at element " + std::to_string(i) + " (example " +
                                  std::to_string(i / x.sample_size()) + ")");
}

std::string layer_name(const Graph& g, int node) { return node < 0 ? "input" : g.layer(node).name; }

}  // namespace gb::concepts
