#include "explain/common/params.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <stdexcept>

namespace gb::explain {

static std::string number_text(double v) {
  char b[32];
  // Whole numbers in full (a seed's 2147483647, not 2.14748e+09); others as %g.
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(b, sizeof b, "%.0f", v);
  else
    std::snprintf(b, sizeof b, "%g", v);
  return b;
}

static bool bounded(const ParamInfo& p) { return p.min > -ParamInfo::kUnbounded || p.max < ParamInfo::kUnbounded; }

// " [0, 1000]", " (>= 0)", " (<= 5)" or "".
static std::string range_text(const ParamInfo& p) {
  if (!bounded(p)) return "";
  if (p.max >= ParamInfo::kUnbounded) return " (>= " + number_text(p.min) + ")";
  if (p.min <= -ParamInfo::kUnbounded) return " (<= " + number_text(p.max) + ")";
  return " [" + number_text(p.min) + ", " + number_text(p.max) + "]";
}

std::string list_text(const std::vector<MethodInfo>& methods) {
  std::string s;
  for (const MethodInfo& m : methods) {
    s += m.name + "\n    " + m.summary + "\n    convention: " + m.convention + "\n";
    for (const ParamInfo& p : m.params)
      s += "    --param " + p.name + "=" + (p.default_value.empty() ? "(none)" : p.default_value) + "  " + p.help +
           range_text(p) + "\n";
  }
  return s;
}

static std::string names_of(const MethodInfo& info) {
  std::string s;
  for (const ParamInfo& p : info.params) s += (s.empty() ? "" : ", ") + p.name;
  return s.empty() ? "none" : s;
}

ParamReader::ParamReader(const Params& given, const MethodInfo& info) : p_(given), info_(info) {
  auto check = [&](const std::string& key) {
    for (const ParamInfo& p : info_.params)
      if (p.name == key) return;
    throw std::invalid_argument(info_.name + ": unknown parameter '" + key + "' (known: " + names_of(info_) + ")");
  };
  if (info_.passes_on) return;
  for (auto& [k, v] : p_) check(k);
  for (auto& [k, v] : p_.tensors) check(k);
}

Params ParamReader::rest() const {
  Params out;
  for (auto& [k, v] : p_) {
    bool own = false;
    for (const ParamInfo& d : info_.params) own |= d.name == k;
    if (!own) out[k] = v;
  }
  out.tensors = p_.tensors;
  return out;
}

const ParamInfo& ParamReader::lookup(const std::string& key) {
  for (const ParamInfo& p : info_.params)
    if (p.name == key) {
      read_.insert(key);
      return p;
    }
  throw DeclarationError(info_.name + " reads parameter '" + key + "' but does not declare it");
}

std::string ParamReader::raw(const std::string& key) {
  const ParamInfo& d = lookup(key);
  // An array given for a parameter read as text (occlusion's baseline, IG's n_steps) was dropped
  // for the default without a word.
  if (p_.tensors.count(key) && !p_.count(key))
    throw std::invalid_argument(info_.name + ": --param " + key + " takes a number or a word here, not an array");
  auto it = p_.find(key);
  return it == p_.end() ? d.default_value : it->second;
}

std::optional<double> ParamReader::maybe_number(const std::string& key) {
  const std::string v = raw(key);
  if (v.empty() && !p_.count(key)) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end) throw std::invalid_argument(info_.name + ": --param " + key + "=" + v + " is not a number");
  if (!std::isfinite(d)) throw std::invalid_argument(info_.name + ": --param " + key + "=" + v + " is not finite");
  const ParamInfo& p = lookup(key);
  if ((d < p.min && p.min > -ParamInfo::kUnbounded) || (d > p.max && p.max < ParamInfo::kUnbounded))
    throw std::invalid_argument(info_.name + ": --param " + key + "=" + v + " is out of range" + range_text(p));
  if (!float32_finite(d))  // also what the declared range leaves open
    throw std::invalid_argument(info_.name + ": --param " + key + "=" + v + " is beyond float32's range (3.4e38)");
  return d;
}

double ParamReader::number(const std::string& key) {
  std::optional<double> v = maybe_number(key);
  if (!v) throw DeclarationError(info_.name + " reads '" + key + "' as a number but declares no default");
  return *v;
}

int ParamReader::integer(const std::string& key) {
  const double v = number(key);
  if (v != std::floor(v))
    throw std::invalid_argument(info_.name + ": --param " + key + "=" + raw(key) + " is not an integer");
  if (v < INT_MIN || v > INT_MAX)
    throw std::invalid_argument(info_.name + ": --param " + key + "=" + raw(key) +
                                " is outside the 32-bit integers [-2147483648, 2147483647]");
  return int(v);
}

std::string ParamReader::text(const std::string& key) { return raw(key); }

bool ParamReader::flag(const std::string& key) {
  const std::string v = raw(key);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  throw std::invalid_argument(info_.name + ": --param " + key + "=" + v + " is not true/false");
}

const Tensor* ParamReader::tensor(const std::string& key) {
  lookup(key);
  auto it = p_.tensors.find(key);
  return it == p_.tensors.end() ? nullptr : &it->second;
}

void ParamReader::done() const {
  for (const ParamInfo& p : info_.params)
    if (!read_.count(p.name))
      throw DeclarationError(info_.name + " declares parameter '" + p.name + "' but never reads it");
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

std::string joined_names(const std::vector<MethodInfo>& methods) {
  std::string s;
  for (const MethodInfo& m : methods) s += (s.empty() ? "" : ", ") + m.name;
  return s;
}

std::string exact_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

bool float32_finite(double v) { return std::isfinite(v) && std::fabs(v) <= std::numeric_limits<float>::max(); }

std::vector<float> channel_values(const std::string& text, const std::string& what) {
  std::vector<float> values;
  for (size_t p = 0; p <= text.size();) {
    const size_t q = std::min(text.find(',', p), text.size());
    const std::string item = text.substr(p, q - p);
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end || !float32_finite(v))
      throw std::invalid_argument(what + ": expected a finite float32 number or one per channel (V0,V1,...)");
    values.push_back(float(v));
    p = q + 1;
  }
  return values;
}

}  // namespace gb::explain
