// The largest absolute value of a tensor and the largest absolute difference of two, for the
// tests' tolerances (shared: the sanitizer build compiles a target's test files as one).
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "engine/tensor.h"

inline double max_abs(const gb::Tensor& t) {
  double m = 0;
  for (size_t i = 0; i < t.size(); ++i) m = std::max(m, double(std::fabs(t[i])));
  return m;
}

inline double max_abs_diff(const gb::Tensor& a, const gb::Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}
