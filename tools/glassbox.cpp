// glassbox: train small image models and explain them through the same graph.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <unistd.h>

#include "engine/finite.h"
#include "engine/interrupt.h"
#include "engine/sizes.h"
#include "engine/threads.h"
#include "tools/commands.h"
#include "tools/outputs.h"

namespace gb {

static std::vector<std::pair<std::string, AddCommand>>& registered() {
  static std::vector<std::pair<std::string, AddCommand>> commands;  // built before main, by static initializers
  return commands;
}

RegisterCommand::RegisterCommand(const char* name, AddCommand add) { registered().emplace_back(name, add); }

void add_registered_commands(Command& app) {
  std::sort(registered().begin(), registered().end());
  for (auto& [name, add] : registered()) add(app);
}

// Ctrl-C (or SIGTERM) asks the run to stop at its next graph pass or polled step (engine/interrupt.h),
// so no file is left half-written and no temporary beside it; a second one kills at once.
static volatile std::sig_atomic_t stop_signal = 0;
static volatile pid_t signal_child = 0;

void forward_stop_signal_to(pid_t child) { signal_child = child; }

extern "C" void on_stop_signal(int sig) {
  stop_signal = sig;
  std::signal(sig, SIG_DFL);
  if (const pid_t child = signal_child) ::kill(child, sig);  // report's running step stops too
}

}  // namespace gb

int main(int argc, char** argv) {
  // OpenBLAS picked slow fallback kernels for this CPU (engine/threads.h): start again with the
  // right ones; OPENBLAS_CORETYPE set by the user is always kept.
  if (const std::string core = gb::better_blas_core(); !core.empty()) {
    ::setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: then go on with the slow kernels
  }
  CLI::App app{"glassbox: a small neural-net engine whose models are glass boxes.\n"
               "Train Conv/ReLU/Pool/Dense networks and explain them (saliency, IG, LRP, CAM, OpenBox...)."};
  app.require_subcommand(1);
  gb::Command commands(&app);
  int threads = 0;
  commands.add_option("--threads", threads, "threads (batch slices and GEMM); default: all cores")
      ->check(gb::int_in(0, gb::kMaxThreads));
  std::string max_memory;
  app.add_option("--max-memory", max_memory,
                 "refuse allocations larger than this (e.g. 4G; default: physical memory, or GLASSBOX_MAX_MEMORY)");
  bool allow_nonfinite = false;
  app.add_flag("--allow-nonfinite", allow_nonfinite,
               "accept NaN/Inf in inputs, data and weights (refused by default, before any computation)");
  app.parse_complete_callback([&] {
    gb::set_threads(threads);
    if (app.count("--max-memory")) gb::set_memory_limit(gb::parse_bytes(max_memory, "--max-memory"));  // "" too
    else gb::memory_limit();  // a bad GLASSBOX_MAX_MEMORY fails here, before any work, naming itself
    gb::allow_nonfinite(allow_nonfinite);
  });
  gb::add_info_command(commands);
  gb::add_train_commands(commands);
  gb::add_explain_command(commands);
  gb::add_regions_command(commands);
  gb::add_bench_command(commands);
  gb::add_registered_commands(commands);
  std::signal(SIGINT, gb::on_stop_signal);
  std::signal(SIGTERM, gb::on_stop_signal);
  gb::InterruptCheck check([] { return gb::stop_signal != 0; });
  try {
    app.parse(argc, argv);
    // A command that caught the Interrupted and went on has not done what it was asked.
    if (gb::stop_signal != 0) throw gb::Interrupted();
    gb::end_output_records(true);
  } catch (const CLI::ConversionError& e) {
    // A value the checks let through that the flag's type cannot hold: a count past 32 bits.
    std::fprintf(stderr,
                 "%s: not a value the flag can hold (counts are whole numbers up to 2147483647)\n"
                 "Run with --help for more information.\n",
                 e.what());
    return 1;
  } catch (const CLI::ParseError& e) {
    // CLI11 prints the message; every refusal exits 1 (CLI11's own codes are 100-127), --help 0.
    return app.exit(e) == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    gb::end_output_records(false);
    // (An error handler may have wrapped the Interrupted on its way out.)
    if (gb::stop_signal != 0 || dynamic_cast<const gb::Interrupted*>(&e)) {
      std::fprintf(stderr, "glassbox: interrupted: every file written before is complete; the rest were not written\n");
      return 128 + (gb::stop_signal ? int(gb::stop_signal) : SIGINT);
    }
    std::fprintf(stderr, "glassbox: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
