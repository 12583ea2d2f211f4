// How inputs of a dataset share configurations.
#include <algorithm>
#include <unordered_map>

#include "explain/openbox/openbox.h"

namespace gb::openbox {

ConfigStats config_stats(Graph& g, const Tensor& x, int batch, int top) {
  ConfigStats st;
  std::unordered_map<uint64_t, int> count;
  for (int n0 = 0; n0 < x.batch(); n0 += batch) {
    for (uint64_t id : configuration_ids(g, x.slice(n0, std::min(x.batch(), n0 + batch)))) count[id]++;
  }
  st.inputs = x.batch();
  st.distinct = int(count.size());
  std::vector<std::pair<uint64_t, int>> v(count.begin(), count.end());
  std::sort(v.begin(), v.end(), [](auto& l, auto& r) { return l.second != r.second ? l.second > r.second : l.first < r.first; });
  for (auto& [id, c] : v) {
    st.largest = std::max(st.largest, c);
    if (c == 1) st.singletons++;
    else st.shared_inputs += c;
  }
  v.resize(std::min<size_t>(v.size(), size_t(top)));
  st.top = v;
  return st;
}

}  // namespace gb::openbox
