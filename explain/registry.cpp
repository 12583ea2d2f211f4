// Placeholder until the explain issue lands.
#include <stdexcept>

#include "explain/explain.h"

namespace gb::explain {
const std::vector<MethodInfo>& methods() {
  static std::vector<MethodInfo> m;
  return m;
}
const MethodInfo& method_info(const std::string& name) { throw std::invalid_argument("unknown method '" + name + "'"); }
Result explain(Graph&, const Tensor&, const std::vector<int>&, const std::string& method, const Params&) {
  method_info(method);
  return {};
}
}  // namespace gb::explain
