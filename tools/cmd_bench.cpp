// glassbox bench: training and inference images/s per preset, explanation images/s per method,
// OpenBox regions/s; optionally side by side with PyTorch (tools/bench/torch_baseline.py).
// Throughput does not depend on the pixel values, so the inputs are seeded uniform noise.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>

#include <unistd.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "engine/architecture.h"
#include "engine/blas.h"
#include "engine/gemm_avx512.h"
#include "engine/interrupt.h"
#include "engine/layers.h"
#include "engine/rng.h"
#include "engine/threads.h"
#include "explain/attribution/explain.h"
#include "explain/openbox/openbox.h"
#include "tools/bench.h"
#include "tools/commands.h"
#include "tools/inputs.h"
#include "engine/loss.h"
#include "train/optimizer.h"
#include "train/presets.h"

#ifndef GLASSBOX_SOURCE_DIR
#define GLASSBOX_SOURCE_DIR "."
#endif

namespace gb {

namespace {

using clock_type = std::chrono::steady_clock;

// One-thread GFLOP/s of the products the CIFAR-size presets run: by OpenBLAS and, on CPUs with
// AVX-512, by glassbox's own kernel (engine/gemm_avx512.h), both whichever gemm() would choose here.
struct GemmShape {
  const char* what;
  bool trans_a;
  int M, N, K;
};
constexpr GemmShape kGemmShapes[] = {
    {"winograd forward 32->64", false, 64, 64, 32},   {"winograd forward 64->128", false, 64, 128, 64},
    {"winograd forward 128->128", false, 64, 128, 128}, {"winograd F(2x2) 256->256", false, 16, 256, 256},
    {"winograd weight grad 32", true, 64, 32, 2048},   {"winograd weight grad 128", true, 128, 128, 1024},
    {"im2col stem 3->64", false, 64, 1024, 27},         {"im2col stride-2 64->128", false, 128, 256, 576},
    {"im2col input grad", true, 576, 256, 128},         {"dense backward", false, 64, 512, 10},
};

void bench_gemm(double seconds, const std::function<void(const std::string&, const std::string&, double)>& report) {
  BlasSerial serial;  // both on one thread
  Rng rng(5);
  for (const GemmShape& s : kGemmShapes) {
    std::vector<float> A(size_t(s.M) * s.K), B(size_t(s.K) * s.N), C(size_t(s.M) * s.N);
    for (float& x : A) x = rng.uniform();
    for (float& x : B) x = rng.uniform();
    const int lda = s.trans_a ? s.M : s.K;
    const double flop = 2.0 * s.M * s.N * s.K;
    const std::string shape = std::string(s.what) + " " + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" +
                              std::to_string(s.K) + (s.trans_a ? " A^T*B" : " A*B");
    const double blas = calls_per_second(
        [&] {
          cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, s.M, s.N, s.K, 1.f,
                      A.data(), lda, B.data(), s.N, 0.f, C.data(), s.N);
        },
        seconds);
    report(shape, "OpenBLAS " + blas_core(), blas * flop / 1e9);
    if (!avx512_gemm_supported()) continue;
    const double own = calls_per_second(
        [&] { avx512_gemm(s.trans_a, s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), s.N, 0.f, C.data(), s.N); },
        seconds);
    report(shape, "glassbox AVX-512", own * flop / 1e9);
  }
}

// One-thread samples/s of the im2col weight gradients of resnet8's stride-2 3x3 layers, through
// gemm() (engine/conv2d.cpp runs them as gwᵀ += col gyᵀ).
void bench_conv_weight_grad(double seconds, const std::function<void(const std::string&, double)>& report) {
  struct ConvShape {
    int C, H, O;
  };
  RestoreThreads guard;
  set_threads(1);
  for (const ConvShape& l : {ConvShape{16, 32, 32}, ConvShape{32, 16, 64}}) {
    Conv2d conv(l.O, 3, 2, 1, false);
    conv.build({Shape{1, l.C, l.H, l.H}});
    const int N = 32;
    const Tensor x = bench_noise(Shape{N, l.C, l.H, l.H}, 6), gy = bench_noise(conv.out_shape({x.shape()}), 7);
    Tensor gw(conv.weight.value.shape(), 0.f);
    Workspace ws;
    const double calls = calls_per_second([&] { conv.conv_backward_weight(x, gy, gw, nullptr, ws); }, seconds);
    report("conv weight grad " + std::to_string(l.C) + "x" + std::to_string(l.H) + "x" + std::to_string(l.H) +
               " -> " + std::to_string(l.O) + ", 3x3 stride 2",
           calls * N);
  }
}

struct Row {
  std::string model, what, detail;
  int batch;
  double rate;  // images (or regions, walks) per second; see unit_of
  std::string unit;  // a family's row: what its rate counts (BenchRow::unit)
};

// What a row's number counts, for the JSON rows (per_second held GFLOP/s and ratios unmarked).
std::string unit_of(const Row& r) {
  if (!r.unit.empty()) return r.unit;
  if (r.what == "ratio-vs-torch") return "ratio";
  if (r.model == "gemm") return "GFLOP/s";
  if (r.model == "conv") return "samples/s";
  if (r.what == "regions") return "regions/s";
  if (r.what == "segment walks") return "walks/s";
  if (r.what == "train" || r.what == "infer" || r.what == "explain") return "images/s";
  return "items/s";
}

// Methods that evaluate hundreds of perturbed copies per image run at a small batch.
bool is_perturbation(const std::string& m) {
  return m == "occlusion" || m == "rise" || m == "lime" || m == "score-cam";
}

// OpenBox: region() per input (configuration + W_x, b_x + constraints with the nearest
// boundary), and segment walks between consecutive inputs.
struct OpenBoxTiming {
  double region_ms = 0;
  double walk_ms = 0;
  double pieces_per_walk = 0;
};

// Times region() over the samples of x (`reps` calls after one warm-up call) and `walks` walks
// between consecutive samples.
OpenBoxTiming time_openbox(Graph& g, const Tensor& x, int reps, int walks) {
  OpenBoxTiming T;
  openbox::RegionOptions o;
  o.keep_constraints = false;
  openbox::region(g, x.sample(0), o);  // warm up: workspace and activation buffers
  auto t0 = clock_type::now();
  for (int r = 0; r < reps; ++r) openbox::region(g, x.sample(r % x.batch()), o);
  T.region_ms = 1000 * seconds_since(t0) / std::max(reps, 1);
  if (x.batch() >= 2 && walks > 0) {
    double pieces = 0;
    t0 = clock_type::now();
    for (int r = 0; r < walks; ++r)
      pieces += double(openbox::walk(g, x.sample(r % x.batch()), x.sample((r + 1) % x.batch())).pieces.size());
    T.walk_ms = 1000 * seconds_since(t0) / walks;
    T.pieces_per_walk = pieces / walks;
  }
  return T;
}

std::map<std::string, double> torch_rates(const std::string& models, int train_batch, int infer_batch,
                                          int explain_batch, double secs, const std::string& python,
                                          const std::string& script) {
  std::string args = "--threads " + std::to_string(threads());
  for (const std::string& name : split_list(models, "--models"))  // the same architecture text, built in PyTorch
    args += " --arch '" + name + "=" + architecture_text(make_preset(name)) + "'";
  args += " --train-batch " + std::to_string(train_batch) + " --infer-batch " + std::to_string(infer_batch) +
          " --explain-batch " + std::to_string(explain_batch) + " --seconds " + std::to_string(secs);
  std::map<std::string, double> out;
  for (const std::string& line : run_python(python, script, args)) {
    auto j = nlohmann::json::parse(line);
    out[j["model"].get<std::string>() + "/" + j["what"].get<std::string>()] = j["images_per_s"].get<double>();
  }
  return out;
}

struct BenchOpts {
  std::string models = "lenet5,camnet,mlp", explain_models = "lenet5", methods, json_path;
  int train_batch = 64, infer_batch = 256;
  std::string explain_batches = "64,256";
  int perturbation_batch = 8;
  double seconds = 2.0;
  bool compare_torch = false, no_explain = false, no_regions = false, no_families = false, gemm = false;
  std::string families;  // the registered explanation families' rows (tools/bench_<family>.cpp); empty: all
  std::string python = "/usr/bin/python3", script = std::string(GLASSBOX_SOURCE_DIR) + "/tools/bench/torch_baseline.py";
};

// Every name and value the run will use, checked before the first measurement (a misspelt method
// was skipped with a line of output, an unknown family ran nothing, a bad batch or --json path
// failed after minutes of timings). Returns the explanation batch sizes.
std::vector<int> check_bench_flags(const BenchOpts& o) {
  const auto known = [](const std::string& flag, const std::string& name, const std::vector<std::string>& names,
                        const std::string& what) {
    if (std::find(names.begin(), names.end(), name) != names.end()) return;
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    throw std::invalid_argument(flag + ": unknown " + what + " '" + name + "' (known: " + list + ")");
  };
  const std::vector<std::string> models = split_list(o.models, "--models");
  for (const std::string& m : models) known("--models", m, preset_names(), "preset");
  if (models.empty() && o.no_explain && o.no_regions && o.no_families && !o.gemm)  // (exit 0 after the header)
    throw std::invalid_argument("--models is empty and every other row is switched off: nothing to measure");
  std::vector<int> batches;
  if (!o.no_explain) {
    for (const std::string& m : split_list(o.explain_models, "--explain-models")) known("--explain-models", m, preset_names(), "preset");
    std::vector<std::string> methods;
    for (auto& m : explain::methods()) methods.push_back(m.name);
    for (const std::string& m : split_list(o.methods, "--methods")) known("--methods", m, methods, "method");
    for (const std::string& b : split_list(o.explain_batches, "--explain-batches")) {
      long v = 0;
      if (!parse_number(b, v) || v < 1 || v > 65536)
        throw std::invalid_argument("--explain-batches '" + o.explain_batches + "': '" + b +
                                    "' is not a whole number in [1, 65536]");
      batches.push_back(int(v));
    }
    if (batches.empty()) throw std::invalid_argument("--explain-batches: no batch size given");
  }
  if (!o.no_families) {
    std::vector<std::string> families;
    for (const auto& [name, run] : registered_benches()) families.push_back(name);
    for (const std::string& f : split_list(o.families, "--families")) known("--families", f, families, "family");
  }
  std::error_code ec;
  if (!o.json_path.empty() && o.json_path != "-" && std::filesystem::exists(o.json_path, ec) &&
      !std::filesystem::is_regular_file(o.json_path, ec))
    throw std::invalid_argument("--json " + o.json_path + ": is not a regular file (a folder, device or pipe)");
  if (!o.json_path.empty() && o.json_path != "-") {
    const std::filesystem::path parent = std::filesystem::path(o.json_path).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
      throw std::invalid_argument("--json " + o.json_path + ": its folder " + parent.string() + " does not exist");
  }
  if (o.compare_torch && !std::filesystem::is_regular_file(o.script, ec))
    throw std::invalid_argument("--torch-script " + o.script + ": no such file");
  // Before minutes of timing: the script must start in that Python (it imports torch first; the
  // rows measured were lost when it failed after them).
  if (o.compare_torch && !python_script_starts(o.python, o.script))
    throw std::invalid_argument("--compare-torch: '" + o.python + " " + o.script + " --help' fails: that Python "
                                "cannot run the baseline (install Debian's python3-torch, or give --python)");
  return batches;
}

}  // namespace

void add_bench_command(Command& app) {
  auto* cmd = app.add_subcommand("bench", "Measure training, inference, explanation and OpenBox throughput");
  auto o = std::make_shared<BenchOpts>();
  cmd->add_option("--models", o->models, "presets timed for training and inference ('': none)")
      ->capture_default_str()
      ->allow_empty();
  cmd->add_option("--train-batch", o->train_batch, "training batch size")->capture_default_str()->check(int_in(1, 65536));
  cmd->add_option("--infer-batch", o->infer_batch, "inference batch size")->capture_default_str()->check(int_in(1, 65536));
  cmd->add_option("--explain-models", o->explain_models, "presets timed for explanations")->capture_default_str();
  cmd->add_option("--methods", o->methods, "explanation methods (default: all registered)");
  cmd->add_option("--explain-batches", o->explain_batches, "batch sizes for explanations")->capture_default_str();
  cmd->add_option("--perturbation-batch", o->perturbation_batch,
                  "batch size for occlusion, RISE, LIME and Score-CAM (each image costs hundreds of forwards)")
      ->capture_default_str()
      ->check(int_in(1, 65536));
  cmd->add_option("--seconds", o->seconds, "time budget of a measurement (above 0, at most an hour): a warm-up call, then the best of 5 "
                  "rounds of budget/5 each, every round at least one call (a slower call sets the pace)")
      ->capture_default_str()
      ->check(finite(0, 3600, true, false));
  cmd->add_flag("--compare-torch", o->compare_torch, "also time PyTorch (python3-torch) and print the ratios");
  cmd->add_flag("--no-explain", o->no_explain, "skip explanation methods");
  cmd->add_flag("--no-regions", o->no_regions, "skip OpenBox");
  cmd->add_option("--families", o->families, "explanation families whose rows run (comma-separated; default: all)");
  cmd->add_flag("--no-families", o->no_families, "skip the explanation families' rows");
  cmd->add_flag("--gemm", o->gemm,
                "also time the CIFAR-size presets' GEMM shapes on one thread (GFLOP/s): OpenBLAS, and glassbox's "
                "AVX-512 kernel on CPUs that have AVX-512; and resnet8's stride-2 conv weight gradients (samples/s)");
  cmd->add_option("--json", o->json_path, "write the rows as JSON lines to this file ('-': stdout, and the table to "
                                          "stderr)");
  cmd->add_option("--python", o->python, "Python with torch, for --compare-torch")->capture_default_str();
  cmd->add_option("--torch-script", o->script, "the PyTorch baseline script")->capture_default_str();
  cmd->callback([o] {
    const std::vector<int> explain_batches = check_bench_flags(*o);  // before any timing
    // --json -: stdout carries the JSON lines only (jq failed on the table before them), so
    // everything printed goes to stderr and the JSON to the original stdout at the end.
    int json_fd = -1;
    if (o->json_path == "-") {
      std::fflush(stdout);
      json_fd = ::dup(1);
      ::dup2(2, 1);
    }
    std::vector<Row> rows;
    auto report = [&](const Row& r) {
      rows.push_back(r);
      std::printf("%-10s %-26s batch %4d  %10.1f %s\n", r.model.c_str(), (r.what + (r.detail.empty() ? "" : " " + r.detail)).c_str(),
                  r.batch, r.rate, unit_of(r).c_str());
      std::fflush(stdout);
    };
    std::printf("glassbox bench: %d thread(s), %s\n", threads(), blas_description().c_str());
    for (const std::string& name : split_list(o->models, "--models")) {
      Graph g = make_preset(name);
      Tensor x = bench_noise(g.shape(-1, o->train_batch), 1);
      std::vector<int> y(o->train_batch);
      for (int i = 0; i < o->train_batch; ++i) y[i] = i % g.classes();
      OptimizerConfig oc;
      oc.lr = 0.01f;
      oc.momentum = 0.9f;
      Optimizer opt(g, oc);
      Tensor grad;
      BackwardOptions bo;
      bo.param_grads = true;
      bo.input_grad = false;
      double steps = calls_per_second(
          [&] {
            g.zero_grad();
            softmax_cross_entropy(g.forward(x, Mode::train), y, &grad);
            g.backward(grad, bo);
            opt.step(oc.lr);
          },
          o->seconds);
      report({name, "train", "", o->train_batch, steps * o->train_batch, ""});
      Tensor xi = bench_noise(g.shape(-1, o->infer_batch), 2);
      double fw = calls_per_second([&] { g.forward(xi); }, o->seconds);
      report({name, "infer", "", o->infer_batch, fw * o->infer_batch, ""});
    }
    if (!o->no_explain) {
      std::vector<std::string> methods = split_list(o->methods, "--methods");
      if (methods.empty())
        for (auto& m : explain::methods()) methods.push_back(m.name);
      for (const std::string& name : split_list(o->explain_models, "--explain-models")) {
        Graph g = make_preset(name);
        for (const std::string& m : methods) {
          const std::vector<int> batches = is_perturbation(m) ? std::vector<int>{o->perturbation_batch} : explain_batches;
          for (int B : batches) {
            Tensor x = bench_noise(g.shape(-1, B), 3);
            std::vector<int> t(B);
            for (int i = 0; i < B; ++i) t[i] = i % g.classes();
            try {
              double r = calls_per_second([&] { explain::explain(g, x, t, m); }, o->seconds);
              report({name, "explain", m, B, r * B, ""});
            } catch (const Interrupted&) {
              throw;  // Ctrl-C stops the bench (it was "skipped" like a method that cannot run)
            } catch (const std::exception& e) {
              std::printf("%-10s %-26s skipped: %s\n", name.c_str(), ("explain " + m).c_str(), e.what());
            }
          }
        }
      }
    }
    if (o->gemm)
      bench_gemm(o->seconds / 4, [&](const std::string& shape, const std::string& by, double gflops) {
        rows.push_back({"gemm", shape, by, 1, gflops, ""});
        std::printf("gemm %-45s %-26s %8.1f GFLOP/s\n", shape.c_str(), by.c_str(), gflops);
        std::fflush(stdout);
      });
    if (o->gemm)
      bench_conv_weight_grad(o->seconds / 4, [&](const std::string& what, double samples) {
        rows.push_back({"conv", what, "one thread", 1, samples, ""});
        std::printf("conv %-45s %-26s %8.1f samples/s\n", what.c_str(), "one thread", samples);
        std::fflush(stdout);
      });
    if (!o->no_regions) {
      for (const std::string& name : {std::string("mlp"), std::string("lenet5")}) {
        Graph g = make_preset(name);
        Tensor x = bench_noise(g.shape(-1, 8), 4);
        const OpenBoxTiming t = time_openbox(g, x, 10, 3);
        report({name, "regions", "(config+W,b+constraints)", 1, 1000.0 / t.region_ms, ""});
        report({name, "segment walks", "(" + std::to_string(int(t.pieces_per_walk)) + " pieces)", 1, 1000.0 / t.walk_ms, ""});
      }
    }
    if (!o->no_families) {
      BenchContext ctx;
      ctx.seconds = o->seconds;
      ctx.compare = o->compare_torch;
      ctx.python = o->python;
      ctx.scripts = std::string(GLASSBOX_SOURCE_DIR) + "/tools/bench";
      ctx.report = [&](const BenchRow& b) {
        const Row row{b.model, b.what, b.detail, b.batch, b.rate, b.unit};
        report(row);
        if (b.reference > 0)
          std::printf("%-10s %-26s %s %10.1f %s, glassbox/%s %.2f\n", "", "", b.reference_name.c_str(), b.reference,
                      unit_of(row).c_str(), b.reference_name.c_str(), b.rate / b.reference);
      };
      const std::vector<std::string> wanted = split_list(o->families, "--families");
      for (const auto& [name, run] : registered_benches())
        if (wanted.empty() || std::find(wanted.begin(), wanted.end(), name) != wanted.end()) run(ctx);
    }
    auto write_rows = [&] {
      if (o->json_path.empty()) return;
      std::ostringstream js;
      for (auto& r : rows)
        js << nlohmann::json{{"model", r.model}, {"what", r.what}, {"detail", r.detail}, {"batch", r.batch},
                             {"per_second", r.rate}, {"unit", unit_of(r)}, {"threads", threads()}, {"blas", blas_core()},
                             {"gemm", own_gemm_active() ? "glassbox-avx512" : "openblas"}}
                  .dump()
           << "\n";
      if (o->json_path == "-") {
        const std::string text = js.str();
        std::fflush(stdout);
        if (::write(json_fd, text.data(), text.size()) != ssize_t(text.size()))
          throw std::runtime_error("--json -: cannot write to stdout");
        ::close(json_fd);
      } else
        atomic_write(o->json_path, js.str());
    };
    if (o->compare_torch && !split_list(o->models, "--models").empty()) {  // (the families compare their own rows above)
      std::map<std::string, double> torch;
      try {
        torch = torch_rates(o->models, o->train_batch, o->infer_batch, 64, o->seconds, o->python, o->script);
      } catch (...) {
        write_rows();  // the rows measured so far are kept
        throw;
      }
      // PyTorch runs in this environment: its own BLAS calls (when it uses OpenBLAS) get the same kernels.
      std::printf("\nglassbox vs PyTorch (%d thread(s), the same environment; ratio > 1: glassbox is faster)\n",
                  threads());
      std::printf("%-10s %-36s %12s %12s %8s\n", "model", "what", "glassbox/s", "torch/s", "ratio");
      std::vector<Row> ratios;  // appended after the loop: pushing into rows would invalidate it
      auto line = [&](const std::string& model, const std::string& what, double ours, double theirs) {
        std::printf("%-10s %-36s %12.1f %12.1f %8.2f\n", model.c_str(), what.c_str(), ours, theirs, ours / theirs);
        ratios.push_back({model, "ratio-vs-torch", what, 0, ours / theirs, ""});
      };
      for (auto& r : rows) {
        if ((r.what == "train" || r.what == "infer") && torch.count(r.model + "/" + r.what))
          line(r.model, r.what, r.rate, torch[r.model + "/" + r.what]);
        if (r.what == "explain" && r.batch == 64 && torch.count(r.model + "/grad"))
          line(r.model, r.detail + " vs input-grad", r.rate, torch[r.model + "/grad"]);
      }
      rows.insert(rows.end(), ratios.begin(), ratios.end());
    }
    write_rows();
  });
}

}  // namespace gb
