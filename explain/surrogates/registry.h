// What the family's registries (importance.cpp, rules.cpp) share: readers that bound the
// parameters driving run time and memory, with errors naming the method, the key, the value and
// the accepted range or choices.
#pragma once
#include <string>
#include <vector>

#include "explain/common/params.h"

namespace gb::explain::surrogates {

int read_int(ParamReader& r, const std::string& key, int lo, int hi);
double read_number(ParamReader& r, const std::string& key, double lo, double hi);
std::string read_choice(ParamReader& r, const std::string& key, const std::vector<std::string>& choices);

// "unknown <what> method 'x' (known: a, b, c)"
[[noreturn]] void unknown_method(const std::string& what, const std::string& name, const std::vector<MethodInfo>& known);

}  // namespace gb::explain::surrogates
