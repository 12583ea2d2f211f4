#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "engine/rng.h"
#include "engine/threads.h"
#include "tools/bench.h"
#include "tools/inputs.h"

namespace gb {

double calls_per_second(const std::function<void()>& fn, double budget) {
  fn();
  double best = 0;
  for (int round = 0; round < 5; ++round) {
    int n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    do {
      fn();
      ++n;
    } while (seconds_since(t0) < budget / 5);
    best = std::max(best, n / seconds_since(t0));
  }
  return best;
}

double items_per_second(const std::function<void()>& fn, double items, double budget) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  const double once = seconds_since(t0);
  return once > budget ? items / once : items * calls_per_second(fn, budget);
}

Tensor bench_noise(const Shape& s, uint64_t seed) {
  Tensor x(s);
  Rng r(seed);
  for (size_t i = 0; i < x.size(); ++i) x[i] = r.uniform();
  return x;
}

// glibc's malloc hands every freed block above its mmap threshold back to the kernel (and trims
// the heap's top), so PyTorch, which allocates each step's tensors afresh, faults all of their
// pages in again on every step. On a virtual machine a page fault is expensive: with glibc's
// defaults PyTorch trained resnet8 at 450-590 images/s here, with the memory kept 1,750-1,830
// (a quarter of its time had been page faults). PyTorch's own CPU tuning guide recommends
// jemalloc or tcmalloc for this reason; these two glibc settings do the same for the timing
// scripts without another package. The user's own GLIBC_TUNABLES, if set, are left alone.
static void keep_freed_memory_in_process() {
  setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296", 0);
}

// 'text' for the shell, so that a path with spaces or quotes stays one word.
static std::string shell_word(const std::string& text) {
  std::string q = "'";
  for (char c : text) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool python_script_starts(const std::string& python, const std::string& script) {
  return std::system((python + " " + shell_word(script) + " --help >/dev/null 2>&1").c_str()) == 0;
}

std::vector<std::string> run_python(const std::string& python, const std::string& script, const std::string& args) {
  keep_freed_memory_in_process();
  const std::string cmd = python + " " + shell_word(script) + " " + args;  // --python may be a command line
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  std::vector<std::string> lines;
  std::string line;
  char chunk[4096];
  while (std::fgets(chunk, sizeof chunk, p)) {  // lines of any length, read in chunks
    line += chunk;
    if (line.back() != '\n' && !std::feof(p)) continue;
    if (line[0] == '{')
      lines.push_back(line);
    else
      std::fputs(line.c_str(), stderr);
    line.clear();
  }
  const int status = pclose(p);
  if (status != 0)  // its own messages went to stderr above
    throw std::runtime_error("'" + cmd + "' failed (exit " +
                             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128) + "; see its messages above)");
  if (lines.empty()) throw std::runtime_error("'" + cmd + "' printed no rows (see its messages above)");
  return lines;
}

std::vector<std::string> run_reference_script(const BenchContext& c, const std::string& script, const std::string& args) {
  return run_python(c.python, c.scripts + "/" + script, args);
}

std::map<std::string, double> reference_rates(const BenchContext& c, const std::string& script, const std::string& args) {
  std::map<std::string, double> out;
  const std::string common = "--threads " + std::to_string(threads()) + " --seconds " + std::to_string(c.seconds);
  for (const std::string& line : run_reference_script(c, script, common + (args.empty() ? "" : " " + args))) {
    const nlohmann::json j = nlohmann::json::parse(line);
    out[j.at("key").get<std::string>()] = j.at("per_second").get<double>();
  }
  return out;
}

static std::vector<std::pair<std::string, BenchFamily>>& benches() {
  static std::vector<std::pair<std::string, BenchFamily>> all;  // filled before main by static initializers
  return all;
}

RegisterBench::RegisterBench(const char* name, BenchFamily run) { benches().emplace_back(name, run); }

std::vector<std::pair<std::string, BenchFamily>> registered_benches() {
  auto all = benches();
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace gb
