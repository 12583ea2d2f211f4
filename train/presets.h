// Model presets: named architectures with their initialization.
#pragma once
#include <string>
#include <vector>

#include "engine/graph.h"

namespace gb {

std::vector<std::string> preset_names();
bool is_preset(const std::string& name);
// Whether a model trains with the toy defaults (10x the rate, 30 epochs): the 2-D toy sets are small,
// a few steps per epoch, so toy2d, and the additive model on flat samples, get them.
bool toy_defaults(const std::string& model, const Shape& sample);
// The preset's architecture text for a per-sample input shape and class count (input empty: the
// preset's default, e.g. 1x28x28; classes 0: 10, or 2 for toy2d).
std::string preset_architecture(const std::string& name, const Shape& input = {}, int classes = 0);
// Builds and initializes the preset (seeded).
Graph make_preset(const std::string& name, const Shape& input = {}, int classes = 0, uint64_t seed = 42);

}  // namespace gb
