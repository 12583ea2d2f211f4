#include <algorithm>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "engine/architecture.h"
#include "tools/commands.h"
#include "train/presets.h"

namespace gb {

void check_class_names(const std::vector<std::string>& names, int outputs, const std::string& what) {
  auto fail = [&](const std::string& why) { throw DataError(what + " " + why); };
  if (names.size() > size_t(outputs))
    fail("has " + std::to_string(names.size()) + " names for the model's " + std::to_string(outputs) + " outputs");
  std::set<std::string> seen;
  for (const std::string& n : names) {
    if (std::any_of(n.begin(), n.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
      fail("name " + nlohmann::json(n).dump() + " holds a control character");
    if (!seen.insert(n).second) fail("repeats the name " + nlohmann::json(n).dump());
  }
}

namespace {

// glassbox.classes, when present: a list of names check_class_names accepts. Unreadable names
// used to fall back to numbers without a word.
void check_stored_class_names(const Model& m, const std::string& path) {
  auto it = m.metadata.find("glassbox.classes");
  if (it == m.metadata.end()) return;
  std::vector<std::string> names;
  try {
    names = nlohmann::json::parse(it->second).get<std::vector<std::string>>();
  } catch (const std::exception&) {
    throw DataError(path + ": glassbox.classes is not a list of names: " + it->second.substr(0, 80));
  }
  check_class_names(names, m.graph.classes(), path + ": glassbox.classes");
}

}  // namespace

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
  check_stored_class_names(m, path);
  return m;
}

bool is_architecture_text(const std::string& spec) {
  const std::string ext = ".safetensors";
  const bool named_file = spec.size() >= ext.size() && spec.compare(spec.size() - ext.size(), ext.size(), ext) == 0;
  return spec.find('(') != std::string::npos && !named_file;
}

Model open_model(const std::string& spec, uint64_t seed, const std::string& flag) {
  // A path that exists is a file, whatever its name ("model (copy).safetensors", "input.safetensors").
  std::error_code ec;
  const bool exists = std::filesystem::exists(spec, ec);
  if (is_preset(spec)) {
    // `train --out lenet5` writes a file of that name; taking the preset would silently give
    // untrained weights, taking the file would hide the preset: the user says which.
    if (std::filesystem::is_regular_file(spec, ec))
      throw std::invalid_argument(flag + " '" + spec + "' is both a preset and a file in this folder: write ./" + spec +
                                  " for the file, or rename it to use the preset");
    return {make_preset(spec, {}, 0, seed), {}};
  }
  if (!exists && is_architecture_text(spec)) {
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
