// How the family's methods plug into the registry: each file appends its declarations; the entry
// points (tcav(), probe(), dissect()) find their method here, read its parameters through a
// ParamReader on the declaration, and check afterwards that every declared key was read.
#pragma once
#include "explain/concepts/concepts.h"

namespace gb::concepts {

struct Method {
  MethodInfo info;
  Kind kind;
  // Reads (and range-checks) every declared parameter: validate_params() runs it before any data is
  // read, and the entry point reads its options through the same function.
  std::function<void(ParamReader&)> read_all;
};

void add_tcav_methods(std::vector<Method>& registry);     // tcav.cpp
void add_probe_methods(std::vector<Method>& registry);    // probe.cpp
void add_dissect_methods(std::vector<Method>& registry);  // dissect.cpp
void add_ace_methods(std::vector<Method>& registry);      // ace.cpp (after tcav: it passes TCAV's keys on)

// The method `name` of `kind`: throws listing the known ones of that kind.
const Method& find_method(const std::string& name, Kind kind);

// Readers that bound what drives run time and memory: an error names the method, the key, the value
// and the accepted range.
using explain::read_choice;
using explain::read_int;
using explain::read_number;

// Throws naming `what` unless x is [n, model input...] with finite values.
void check_examples(const Graph& g, const Tensor& x, const std::string& what);
// The layer's name for messages and files ("input" for -1).
std::string layer_name(const Graph& g, int node);

}  // namespace gb::concepts
