// Each subcommand of `glassbox` lives in its own cmd_*.cpp and registers itself here.
#pragma once
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "engine/model_file.h"
#include "tools/flags.h"

namespace gb {

void add_info_command(Command& app);
void add_train_commands(Command& app);  // train, eval, predict
void add_explain_command(Command& app);
void add_regions_command(Command& app);
void add_bench_command(Command& app);

// The subcommands of explanation families (tools/cmd_<family>.cpp) register themselves with one
// line at namespace scope, `static const RegisterCommand registered_visualize_cmd("visualize",
// add_visualize_commands);` (a name of its own: the sanitizer build compiles sources together),
// and glassbox adds them in name order after the commands above.
using AddCommand = void (*)(Command&);
struct RegisterCommand {
  RegisterCommand(const char* name, AddCommand add);
};
void add_registered_commands(Command& app);

// A Ctrl-C or SIGTERM the command gets also goes to this child process (0: none): report's
// running step, which a SIGTERM to report alone left running to its end (tools/glassbox.cpp).
void forward_stop_signal_to(pid_t child);

// --model accepts a model file (.safetensors), a preset name, or an architecture text.
// Presets and architectures come initialized (seeded) and carry no metadata.
// Errors name `flag`.
Model open_model(const std::string& spec, uint64_t seed = 42, const std::string& flag = "--model");
// Class names a model can store (glassbox.classes): distinct, one line each, no more than its
// outputs (fewer are numbered on); DataError starting with `what` otherwise. Checked at load and
// before training, so glassbox never writes a model it would refuse to read.
void check_class_names(const std::vector<std::string>& names, int outputs, const std::string& what);
// An architecture text rather than a file name: it has layer parentheses and is no .safetensors
// ("input_model.safetensors", missing, was parsed as an architecture).
bool is_architecture_text(const std::string& spec);
// A model file, its stored normalization checked against its input.
Model open_model_file(const std::string& path);

}  // namespace gb
