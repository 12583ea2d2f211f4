// Method parameters, shared by every family's registry. A method declares its parameters once
// (MethodInfo::params: name, default, help); `--list` prints that list, the command line routes
// `--param k=v` by it, and the method reads its values through a ParamReader built on the same
// list, so the defaults live in one place and a key can be neither read without being declared
// nor declared without being read (a test runs every registered method to check the second).
#pragma once
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace gb::explain {

// Parameter values as given on the command line (--param k=v). A parameter may instead be a
// tensor, under the same key in `tensors`: IG's and DeepLIFT's `baseline`, shaped
// [1 or N, input...] in the model's input space (glassbox explain puts a black image there).
struct Params : std::map<std::string, std::string> {
  using std::map<std::string, std::string>::map;
  std::map<std::string, Tensor> tensors;
};

struct ParamInfo {
  std::string name, default_value, help;  // default "" means "not set" (read with maybe_number)
  // The accepted range of a number (number(), integer(), maybe_number() refuse values outside it,
  // naming the method, key and range; --list prints it). Parameters that drive run time or memory
  // (steps, samples, masks) declare a documented maximum.
  double min = -kUnbounded, max = kUnbounded;
  static constexpr double kUnbounded = 1e300;
};

// A seed: a whole number in [0, 2147483647] (a negative one wrapped to 2^64 - 1 where it was read).
inline ParamInfo seed_param(const std::string& default_value, const std::string& help) {
  return {"seed", default_value, help, 0, 2147483647};
}

struct MethodInfo {
  std::string name, summary;
  std::vector<ParamInfo> params;
  std::string convention;  // which reference convention it follows (Captum/Zennit/Quantus/paper)
  // Keys it does not declare go on to the method named by its `base` parameter (a noise tunnel),
  // which checks them; ParamReader::rest() hands them over.
  bool passes_on = false;
};

// The --list text of a family: each method with its convention and parameters.
std::string list_text(const std::vector<MethodInfo>& methods);

// A method and its declaration disagree (a programming error, never a user's).
struct DeclarationError : std::logic_error {
  using std::logic_error::logic_error;
};

// Reads a method's parameters by its declaration. The constructor rejects keys the method does
// not declare (std::invalid_argument naming the key, the method and its keys; see passes_on);
// every getter
// parses the given value or else the declared default; asking for an undeclared key is a
// programming error (DeclarationError).
class ParamReader {
 public:
  ParamReader(const Params& given, const MethodInfo& info);

  double number(const std::string& key);  // finite, or an error naming method and key
  int integer(const std::string& key);
  std::string text(const std::string& key);
  bool flag(const std::string& key);
  std::optional<double> maybe_number(const std::string& key);  // unset when neither given nor defaulted
  const Tensor* tensor(const std::string& key);                 // the tensor given for key, or null
  Params rest() const;  // with MethodInfo::passes_on: the undeclared keys and every tensor
  bool given(const std::string& key) const { return p_.count(key) > 0 || p_.tensors.count(key) > 0; }
  const std::string& method() const { return info_.name; }
  const std::vector<ParamInfo>& declared() const { return info_.params; }
  // Throws DeclarationError when a declared key was never read: the declaration and the method
  // disagree. Call after reading every parameter.
  void done() const;

 private:
  const Params& p_;
  const MethodInfo& info_;
  std::set<std::string> read_;
  const ParamInfo& lookup(const std::string& key);
  std::string raw(const std::string& key);  // the given text or the default
};

// Readers for a parameter whose accepted range depends on the input (a side length, a class
// count) or which is one of a few words: the error names the method, key, value and what is
// accepted ("--param k=v outside [lo, hi]", "--param k=v (known: a, b)").
int read_int(ParamReader& r, const std::string& key, int lo, int hi);
double read_number(ParamReader& r, const std::string& key, double lo, double hi);
std::string read_choice(ParamReader& r, const std::string& key, const std::vector<std::string>& choices);
// A number as a parameter value that reads back as the same double (std::to_string keeps six
// decimals: an epsilon of 1e-7 passed on with it became 0).
std::string exact_text(double v);

// v is finite and stays finite as a float32, which every method computes in (1e308 would not).
bool float32_finite(double v);

// "V" or "V0,V1,...": one float32 number, or one per channel (occlusion's occluder, black through a
// per-channel normalization). An item that is not a finite float32 number is an error starting
// with `what` (e.g. "occlusion: baseline=...").
std::vector<float> channel_values(const std::string& text, const std::string& what);

// "a, b, c": the names of methods, for errors and help.
std::string joined_names(const std::vector<MethodInfo>& methods);
inline const std::string& name_of(const MethodInfo& info) { return info.name; }

// A family's methods, built once by its adders and found by name; an unknown name is an error
// "unknown WHAT 'name' (known: ...)". M is the family's method struct, with an `info` whose name
// name_of() reads (a MethodInfo, or a family's own info type with its own name_of).
template <class M>
class MethodTable {
 public:
  using Info = std::decay_t<decltype(std::declval<M>().info)>;
  MethodTable(std::string what, std::vector<M> methods) : what_(std::move(what)), methods_(std::move(methods)) {
    for (const M& m : methods_) infos_.push_back(m.info);
  }
  const std::vector<M>& all() const { return methods_; }
  const std::vector<Info>& infos() const { return infos_; }
  const M& find(const std::string& name) const {
    std::string known;
    for (const M& m : methods_) {
      if (name_of(m.info) == name) return m;
      known += (known.empty() ? "" : ", ") + name_of(m.info);
    }
    throw std::invalid_argument("unknown " + what_ + " '" + name + "' (known: " + known + ")");
  }

 private:
  std::string what_;
  std::vector<M> methods_;
  std::vector<Info> infos_;
};

}  // namespace gb::explain
