// The family's registry and the readers and checks its methods share.
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "explain/concepts/method.h"

namespace gb::concepts {

static const std::vector<Method>& registry() {
  static const std::vector<Method> r = [] {
    std::vector<Method> m;
    add_tcav_methods(m);
    add_probe_methods(m);
    add_dissect_methods(m);
    return m;
  }();
  return r;
}

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> infos = [] {
    std::vector<MethodInfo> v;
    for (auto& m : registry()) v.push_back(m.info);
    return v;
  }();
  return infos;
}

std::vector<MethodInfo> methods_of(Kind kind) {
  std::vector<MethodInfo> v;
  for (auto& m : registry())
    if (m.kind == kind) v.push_back(m.info);
  return v;
}

static std::string names(const Kind* kind) {
  std::string s;
  for (auto& m : registry())
    if (!kind || m.kind == *kind) s += (s.empty() ? "" : ", ") + m.info.name;
  return s;
}

const MethodInfo& method_info(const std::string& name) {
  for (auto& m : registry())
    if (m.info.name == name) return m.info;
  throw std::invalid_argument("unknown concept method '" + name + "' (known: " + names(nullptr) + ")");
}

Kind method_kind(const std::string& name) {
  for (auto& m : registry())
    if (m.info.name == name) return m.kind;
  throw std::invalid_argument("unknown concept method '" + name + "' (known: " + names(nullptr) + ")");
}

const Method& find_method(const std::string& name, Kind kind) {
  for (auto& m : registry())
    if (m.info.name == name && m.kind == kind) return m;
  throw std::invalid_argument("unknown method '" + name + "' here (known: " + names(&kind) + ")");
}

void validate_params(const std::string& method, const Params& params) {
  const Method& m = find_method(method, method_kind(method));
  ParamReader reader(params, m.info);
  m.read_all(reader);
  reader.done();
}

int read_int(ParamReader& r, const std::string& key, int lo, int hi) {
  const int v = r.integer(key);
  if (v < lo || v > hi)
    throw std::out_of_range(r.method() + ": --param " + key + "=" + std::to_string(v) + " outside [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

double read_number(ParamReader& r, const std::string& key, double lo, double hi) {
  const double v = r.number(key);
  if (v < lo || v > hi) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "=%g outside [%g, %g]", v, lo, hi);
    throw std::out_of_range(r.method() + ": --param " + key + buf);
  }
  return v;
}

std::string read_choice(ParamReader& r, const std::string& key, const std::vector<std::string>& choices) {
  const std::string v = r.text(key);
  std::string known;
  for (const std::string& c : choices) {
    if (c == v) return v;
    known += (known.empty() ? "" : ", ") + c;
  }
  throw std::invalid_argument(r.method() + ": --param " + key + "=" + v + " (known: " + known + ")");
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
