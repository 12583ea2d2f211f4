// Non-finite values (NaN, Inf) in inputs and weights are refused before any computation: one
// cheap pass over the values, with an error naming what holds them and where. Those who study
// such values can allow them (glassbox --allow-nonfinite).
#pragma once
#include <string>

#include "engine/graph.h"
#include "engine/tensor.h"

namespace gb {

bool nonfinite_allowed();
void allow_nonfinite(bool allow);

// Throws std::invalid_argument("<what>: <nan|inf> at sample N, element I (...)") unless every value
// of t is finite or non-finite values are allowed.
void check_finite(const Tensor& t, const std::string& what);
// The same for every parameter (and buffer, e.g. running statistics) of g, naming the parameter.
void check_finite_params(const Graph& g, const std::string& what);

}  // namespace gb
