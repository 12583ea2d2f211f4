// The surrogates family (explain/surrogates): pruning, importance, rules. The layers and
// distillation are in test_surrogate_layers.cpp.
#include <doctest/doctest.h>
