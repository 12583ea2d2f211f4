// glassbox info ARCH|PRESET|MODEL: the layers, their output shapes, parameters and FLOPs.
#include <cstdio>

#include "engine/architecture.h"
#include "tools/commands.h"

namespace gb {

void add_info_command(Command& app) {
  auto* cmd = app.add_subcommand("info", "Show a model's layers, output shapes, parameter counts and FLOPs");
  auto spec = std::make_shared<std::string>();
  auto text = std::make_shared<bool>(false);
  cmd->add_option("model", *spec, "a model file, a preset name (lenet5, camnet, ...) or an architecture text")
      ->required();
  cmd->add_flag("--arch", *text, "also print the architecture in its text form");
  cmd->callback([spec, text] {
    Model m = open_model(*spec, 42, "model");  // positional: no --model to name
    std::printf("%s", describe(m.graph).c_str());
    for (auto& [k, v] : m.metadata)
      if (k != "glassbox.architecture") std::printf("%s: %s\n", k.c_str(), v.c_str());
    if (*text) std::printf("%s\n", architecture_text(m.graph).c_str());
  });
}

}  // namespace gb
