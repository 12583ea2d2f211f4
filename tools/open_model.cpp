#include <filesystem>

#include "data/dataset.h"
#include "engine/architecture.h"
#include "tools/commands.h"
#include "train/presets.h"

namespace gb {

Model open_model_file(const std::string& path) {
  Model m = load_model(path);
  // The stored normalization is read here, so a malformed one is named with its file before any
  // work, not when an input first goes through it (or never, for commands that take no pixels).
  Normalization norm;
  try {
    norm = Normalization::of_model(m.metadata);
  } catch (const std::exception& e) {
    throw DataError(path + ": " + e.what());
  }
  const Shape in = m.graph.input_shape();
  if (!norm.empty() && in.rank >= 1 && norm.mean.size() != size_t(in[0]))
    throw DataError(path + ": glassbox.normalize has " + std::to_string(norm.mean.size()) + " channels, the model's input " +
                    in.str() + " has " + std::to_string(in[0]));
  return m;
}

Model open_model(const std::string& spec, uint64_t seed, const std::string& flag) {
  if (is_preset(spec)) return {make_preset(spec, {}, 0, seed), {}};
  // A path that exists is a file, whatever its name ("model (copy).safetensors", "input.safetensors").
  std::error_code ec;
  const bool exists = std::filesystem::exists(spec, ec);
  if (!exists && (spec.find('(') != std::string::npos || spec.rfind("input", 0) == 0)) {
    Graph g = graph_from_text(spec);
    g.init(seed);
    return {std::move(g), {}};
  }
  if (!exists)
    throw std::invalid_argument(flag + " '" + spec + "': no such file, preset or architecture (presets: " + [] {
      std::string s;
      for (auto& n : preset_names()) s += (s.empty() ? "" : ", ") + n;
      return s;
    }() + ")");
  return open_model_file(spec);
}

}  // namespace gb
