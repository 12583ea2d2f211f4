#include "explain/surrogates/registry.h"

#include <cstdio>
#include <stdexcept>

namespace gb::explain::surrogates {

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

void unknown_method(const std::string& what, const std::string& name, const std::vector<MethodInfo>& known) {
  std::string names;
  for (const MethodInfo& m : known) names += (names.empty() ? "" : ", ") + m.name;
  throw std::invalid_argument("unknown " + what + " method '" + name + "' (known: " + names + ")");
}

}  // namespace gb::explain::surrogates
