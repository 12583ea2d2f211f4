// Each subcommand of `glassbox` lives in its own cmd_*.cpp and registers itself here.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "engine/model_file.h"

namespace gb {

void add_info_command(CLI::App& app);
void add_train_commands(CLI::App& app);  // train, eval, predict
void add_explain_command(CLI::App& app);
void add_regions_command(CLI::App& app);
void add_bench_command(CLI::App& app);

// The subcommands of explanation families (tools/cmd_<family>.cpp) register themselves with one
// line at namespace scope, `static const RegisterCommand reg("visualize", add_visualize_command);`,
// and glassbox adds them in name order after the commands above.
using AddCommand = void (*)(CLI::App&);
struct RegisterCommand {
  RegisterCommand(const char* name, AddCommand add);
};
void add_registered_commands(CLI::App& app);

// Flag checks whose messages name the value and the range: a finite number in [lo, hi] (an end
// excluded when open; CLI11's own range checks let "nan" through), and an integer >= n.
CLI::Validator finite(double lo, double hi, bool lo_open, bool hi_open);
CLI::Validator at_least(long n);
CLI::Validator int_in(long lo, long hi);  // a whole number in [lo, hi]: for values that drive time or memory
// True when the whole of `text` is one number (std::stod / std::stol syntax), then stored in v.
bool parse_number(const std::string& text, double& v);
bool parse_number(const std::string& text, long& v);

// --model accepts a model file (.safetensors), a preset name, or an architecture text.
// Presets and architectures come initialized (seeded) and carry no metadata.
Model open_model(const std::string& spec, uint64_t seed = 42);

}  // namespace gb
