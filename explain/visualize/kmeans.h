// k-means for multifaceted visualization: Lloyd's iterations from k-means++ seeds (Arthur &
// Vassilvitskii 2007), deterministic per seed.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace gb::visualize {

struct Clusters {
  std::vector<int> labels;  // per row of X, in [0, k)
  Tensor centers;           // [k, D]
  int iterations = 0;
};

// Clusters the rows of X ([N, D], N >= k >= 1). An empty cluster takes the point farthest from its
// center. Stops when no label changes or after max_iters iterations.
Clusters kmeans(const Tensor& X, int k, uint64_t seed, int max_iters = 100);

}  // namespace gb::visualize
