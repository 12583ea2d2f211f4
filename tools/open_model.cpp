#include <filesystem>

#include "engine/architecture.h"
#include "tools/commands.h"
#include "train/presets.h"

namespace gb {

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
  return load_model(spec);
}

}  // namespace gb
