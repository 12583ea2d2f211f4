// What `glassbox bench` offers the explanation families' benchmark rows. A family's rows live in
// tools/bench_<family>.cpp and register themselves with one line at namespace scope:
//   static const RegisterBench registered_visualize_bench("visualize", bench_visualize);
// glassbox bench runs them after its own rows (in name order; --families picks some, --no-families
// none). Speed is measured here, never in unit tests.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace gb {

struct BenchRow {
  std::string model, what, detail;
  int batch = 1;
  double rate = 0;        // items per second (images, units, regions...)
  double reference = 0;   // the same computation in the reference library (PyTorch/Captum/Quantus), per second; 0: none
  std::string reference_name;  // e.g. "torch", "captum"
  std::string unit;            // what rate counts: "images/s", "units/s", "training points/s"...
};

struct BenchContext {
  double seconds = 2;                              // time per measurement
  bool compare = false;                            // also run the reference scripts (--compare-torch)
  std::string python = "/usr/bin/python3";         // the Python that has torch
  std::string scripts;                             // the folder of the reference scripts (tools/bench)
  std::function<void(const BenchRow&)> report;     // prints and keeps a row
};

// Calls per second of fn: the best of five rounds of budget/5 seconds each, after one warm-up
// call. On a shared machine the best round is the one least disturbed by other processes; the
// PyTorch scripts measure the same way.
double calls_per_second(const std::function<void()>& fn, double budget);
// Items per second of fn, which handles `items` a call: one timed call when that call alone exceeds
// the budget, else the best of calls_per_second's rounds.
double items_per_second(const std::function<void()>& fn, double items, double budget);
// Seeded uniform noise in [0, 1): throughput does not depend on the pixel values.
Tensor bench_noise(const Shape& s, uint64_t seed);
// Whether `python script --help` runs (a script that imports torch first fails without it).
bool python_script_starts(const std::string& python, const std::string& script);
// Runs `python script args` and returns its JSON lines (one object per line; other lines go to
// stderr), with glibc's malloc told to keep freed memory in the process (PyTorch's speed on a
// virtual machine depends on it; see bench_common.cpp). Throws naming the command when it fails
// (e.g. python3-torch missing).
std::vector<std::string> run_python(const std::string& python, const std::string& script, const std::string& args);
// run_python with c's Python, for a script in c's folder of reference scripts.
std::vector<std::string> run_reference_script(const BenchContext& c, const std::string& script, const std::string& args);
// The rates a reference script prints as JSON lines {"key": ..., "per_second": ...}, by key; the
// script is given "--threads T --seconds S" (c's) before `args`.
std::map<std::string, double> reference_rates(const BenchContext& c, const std::string& script,
                                              const std::string& args = "");

using BenchFamily = void (*)(const BenchContext&);
struct RegisterBench {
  RegisterBench(const char* name, BenchFamily run);
};
// The registered families, in name order.
std::vector<std::pair<std::string, BenchFamily>> registered_benches();

}  // namespace gb
