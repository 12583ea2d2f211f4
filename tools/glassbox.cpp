// glassbox: train small image models and explain them through the same graph.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "engine/threads.h"
#include "tools/commands.h"

namespace gb {

static std::vector<std::pair<std::string, AddCommand>>& registered() {
  static std::vector<std::pair<std::string, AddCommand>> commands;  // built before main, by static initializers
  return commands;
}

RegisterCommand::RegisterCommand(const char* name, AddCommand add) { registered().emplace_back(name, add); }

void add_registered_commands(CLI::App& app) {
  std::sort(registered().begin(), registered().end());
  for (auto& [name, add] : registered()) add(app);
}

}  // namespace gb

int main(int argc, char** argv) {
  CLI::App app{"glassbox: a small neural-net engine whose models are glass boxes.\n"
               "Train Conv/ReLU/Pool/Dense networks and explain them (saliency, IG, LRP, CAM, OpenBox...)."};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "threads (batch slices and GEMM); default: all cores")->check(gb::at_least(0));
  app.parse_complete_callback([&] { gb::set_threads(threads); });
  gb::add_info_command(app);
  gb::add_train_commands(app);
  gb::add_explain_command(app);
  gb::add_regions_command(app);
  gb::add_bench_command(app);
  gb::add_registered_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "glassbox: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
