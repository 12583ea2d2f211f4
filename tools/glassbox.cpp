// glassbox: train small image models and explain them through the same graph.
#include <cstdio>
#include <exception>

#include "engine/threads.h"
#include "tools/commands.h"

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
