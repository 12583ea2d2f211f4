// Architecture text (--model "input(1,28,28) conv(6,k=5) ...") and the JSON it becomes: parse,
// build the graph (shapes, parameter allocation), print it back and run one forward pass.
#include <nlohmann/json.hpp>

#include "engine/architecture.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = (gb::set_memory_limit(uint64_t(64) << 20), true);  // small models only
  (void)once;
  if (size > 4096) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    gb::json arch = gb::parse_architecture(text);
    gb::Graph g = gb::graph_from_json(arch);
    gb::architecture_text(g);
    // One forward pass when it is small enough to be quick.
    double work = double(g.param_count(false));
    for (int i = 0; i < g.size(); ++i) {
      std::vector<gb::Shape> in;
      for (int j : g.node(i).inputs) in.push_back(g.shape(j, 1));
      work += g.layer(i).flops(in) + double(g.shape(i, 1).numel());
    }
    if (work < 1e6) {
      g.init(1);
      gb::Tensor x(gb::Shape::batch_of(1, g.input_shape()), 0.5f);
      g.forward(x);
    }
  } catch (const std::exception&) {
  }
  // The same bytes as architecture JSON (the form stored in model files).
  try {
    gb::Graph g = gb::graph_from_json(gb::json::parse(text));
    gb::architecture_json(g);
  } catch (const std::exception&) {
  }
  return 0;
}
