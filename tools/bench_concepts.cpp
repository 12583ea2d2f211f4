// Benchmark rows of the concepts family (glassbox bench --families concepts): a TCAV run of 3
// concepts x 10 random runs at lenet5's relu2 (100 examples per set, 500 inputs: 40 CAVs, one
// backward per batch of inputs); linear probes of all 13 layers of lenet5 (input to logits) for one
// epoch over 2,000 training images (with the statistics pass and the train/test evaluations); Network
// Dissection of lenet5's relu1 and relu2 on 500 generated segmentation images; ACE (automatic concept
// discovery) of 40 generated images at relu2 with ace.py's defaults but 10 runs, and its clustering
// step alone (patch activations, channel means, k-means with 10 restarts). Presets are untrained
// and the sets generated: the rates do not depend on the values. With --compare-torch,
// tools/bench/torch_concepts.py times the same runs the way Captum's TCAV computes it (sklearn's
// SGDClassifier re-implemented in NumPy), as plain PyTorch probes (forward hooks, nn.Linear, Adam),
// as NetDissect-Lite computes a dissection (vectorized in PyTorch), and checks the IoUs agree; ACE's
// clustering step as ace.py runs it (a hooked forward, channel means, KMeans: scikit-learn is absent,
// so k-means++ and Lloyd are re-implemented in PyTorch; skimage too, so SLIC is not timed there).
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "data/npy.h"
#include "engine/model_file.h"
#include "engine/threads.h"
#include "explain/concepts/ace.h"
#include "explain/concepts/concepts.h"
#include "explain/concepts/dissect.h"
#include "explain/concepts/patterns.h"
#include "explain/concepts/probe.h"
#include "explain/concepts/segmentation.h"
#include "tools/bench.h"
#include "train/presets.h"

namespace gb {

namespace {

namespace fs = std::filesystem;
namespace cc = concepts;

constexpr int kConceptSize = 100, kRuns = 10, kInputs = 500;

cc::TcavRequest tcav_request(const Graph& g) {
  cc::TcavRequest q;
  const Shape s = g.input_shape();
  for (const char* kind : {"stripes-h", "stripes-v", "dots"})
    q.concepts.push_back({kind, cc::make_patterns(cc::parse_pattern(kind), s, kConceptSize, 1)});
  q.random_pool = cc::make_patterns(cc::parse_pattern("noise"), s, (kRuns + 1) * kConceptSize, 2);
  q.inputs = cc::make_patterns(cc::parse_pattern("blobs"), s, kInputs, 3);
  q.target = Target({0});
  q.layers = {g.at("relu2")};
  return q;
}

// Runs the reference script on a scratch folder that `write` fills (the model is saved there) and
// returns its JSON lines by key.
std::map<std::string, nlohmann::json> run_torch(const BenchContext& c, const Graph& g,
                                                const std::function<void(const fs::path&)>& write) {
  const fs::path dir = fs::temp_directory_path() / ("glassbox_bench_concepts_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::map<std::string, nlohmann::json> out;
  try {
    save_model((dir / "model.safetensors").string(), g);
    write(dir);
    const std::string args = "--bench " + dir.string() + " --threads " + std::to_string(threads()) + " --seconds " +
                             std::to_string(c.seconds);
    for (const std::string& line : run_reference_script(c, "torch_concepts.py", args)) {
      const nlohmann::json j = nlohmann::json::parse(line);
      out[j.at("key").get<std::string>()] = j;
    }
  } catch (...) {
    fs::remove_all(dir);
    throw;
  }
  fs::remove_all(dir);
  return out;
}

// The reference's rates ("tcav", "tcav-scores"), from the same model and sets written to a folder.
std::map<std::string, double> tcav_reference_rates(const BenchContext& c, const Graph& g, const cc::TcavRequest& q) {
  const fs::path dir = fs::temp_directory_path() / ("glassbox_bench_concepts_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::map<std::string, double> out;
  try {
    save_model((dir / "model.safetensors").string(), g);
    std::vector<Tensor> sets;
    for (const cc::ConceptSet& s : q.concepts) sets.push_back(s.x);
    write_npy((dir / "concepts.npy").string(), concat(sets));
    write_npy((dir / "pool.npy").string(), q.random_pool);
    write_npy((dir / "inputs.npy").string(), q.inputs);
    const nlohmann::json cfg = {{"layer", "relu2"}, {"target", 0}, {"runs", kRuns},
                                {"random_size", kConceptSize}, {"concepts", q.concepts.size()}};
    atomic_write((dir / "bench.json").string(), cfg.dump());
    out = reference_rates(c, "torch_concepts.py", "--bench " + dir.string());
  } catch (...) {
    fs::remove_all(dir);
    throw;
  }
  fs::remove_all(dir);
  return out;
}

constexpr int kProbeTrain = 2000, kProbeTest = 500, kDissectImages = 500;

void bench_probe(const BenchContext& c, Graph& g) {
  cc::ProbeRequest q;
  q.train_x = cc::make_patterns(cc::parse_pattern("blobs"), g.input_shape(), kProbeTrain, 4);
  q.test_x = cc::make_patterns(cc::parse_pattern("blobs"), g.input_shape(), kProbeTest, 5);
  for (int i = 0; i < kProbeTrain; ++i) q.train_y.push_back(i % 10);
  for (int i = 0; i < kProbeTest; ++i) q.test_y.push_back(i % 10);
  q.classes = 10;
  for (int i = -1; i < g.size(); ++i) q.layers.push_back(i);
  const cc::Params params = {{"epochs", "1"}};
  const double rate = kProbeTrain * calls_per_second([&] { cc::probe(g, q, params); }, c.seconds);
  BenchRow r{"lenet5", "concepts probe", "13 layers, 1 epoch over 2000 training images + stats + evaluation",
             128, rate, 0, "", "training images/s"};
  if (c.compare) {
    const auto t = run_torch(c, g, [&](const fs::path& dir) {
      write_npy((dir / "train.npy").string(), q.train_x);
      write_npy((dir / "test.npy").string(), q.test_x);
      atomic_write((dir / "bench.json").string(), nlohmann::json{{"kind", "probe"}, {"classes", 10}}.dump());
    });
    if (t.count("probe")) r.reference = kProbeTrain * t.at("probe").at("per_second").get<double>(), r.reference_name = "torch";
  }
  c.report(r);
}

void bench_dissect(const BenchContext& c, Graph& g) {
  const cc::SegmentationSet s = cc::make_segmentation(g.input_shape(), kDissectImages, 6);
  const std::vector<int> layers = {g.at("relu1"), g.at("relu2")};
  cc::DissectResult result;
  const double rate = kDissectImages * calls_per_second([&] { result = cc::dissect(g, {&s, layers, {}}); }, c.seconds);
  BenchRow r{"lenet5", "concepts dissect", "relu1 + relu2 (22 units), 500 generated images, 11 concepts",
             256, rate, 0, "", "images/s"};
  if (c.compare) {
    const auto t = run_torch(c, g, [&](const fs::path& dir) {
      write_npy((dir / "images.npy").string(), s.x);
      const int64_t n = s.size(), k = int64_t(s.concepts.size()), h = s.height(), w = s.width();
      write_npy_u8((dir / "masks.npy").string(), {n, k, h, w}, s.masks.data());
      for (const cc::LayerDissection& d : result.layers) {
        Tensor iou(Shape{int(d.units.size()), int(k)});
        for (size_t u = 0; u < d.units.size(); ++u)
          for (int64_t j = 0; j < k; ++j) iou[u * k + j] = float(d.units[u].ious[j]);
        write_npy((dir / ("iou_" + d.layer + ".npy")).string(), iou);
      }
      atomic_write((dir / "bench.json").string(),
                   nlohmann::json{{"kind", "dissect"}, {"layers", {"relu1", "relu2"}}, {"quantile", 0.005}}.dump());
    });
    if (t.count("dissect")) {
      r.reference = kDissectImages * t.at("dissect").at("per_second").get<double>(), r.reference_name = "netdissect";
      const double diff = t.at("dissect").value("max_iou_diff", -1.0);
      std::fprintf(stderr, "concepts dissect: largest |IoU - NetDissect-Lite's| = %g%s\n", diff,
                   diff < 0 || diff > 1e-3 ? "  (MISMATCH)" : "");
    }
  }
  c.report(r);
}

constexpr int kAceImages = 40;

// ACE end to end (patches, activations, k-means, filter, TCAV of every kept cluster), and its
// clustering step alone on the same patches, where the reference has the same computation.
void bench_ace(const BenchContext& c, Graph& g) {
  cc::AceRequest q;
  q.images = cc::make_patterns(cc::parse_pattern("blobs"), g.input_shape(), kAceImages, 7);
  q.inputs = cc::make_patterns(cc::parse_pattern("blobs"), g.input_shape(), kAceImages, 8);
  q.random_pool = cc::make_patterns(cc::parse_pattern("noise"), g.input_shape(), 11 * 40, 9);
  q.target = Target({0});
  q.layer = g.at("relu2");
  const cc::Params params = {{"runs", "10"}, {"min_imgs", "5"}};
  cc::AceResult res;
  const double rate = kAceImages * calls_per_second([&] { res = cc::ace(g, q, params); }, c.seconds);
  char what[160];
  std::snprintf(what, sizeof what, "40 images, SLIC 15/50/80 -> %d patches, k=25 at relu2, %zu concepts x 10 runs",
                res.patches.x.batch(), res.concepts.size());
  c.report(BenchRow{"lenet5", "concepts ace", what, 256, rate, 0, "", "images/s"});

  const Tensor& patches = res.patches.x;
  const int P = patches.batch();
  cc::KMeansOptions ko;
  ko.clusters = 25;
  const double crate = P * calls_per_second([&] {
    const Tensor a = activations(g, patches, {q.layer})[0];
    const int C = a.dim(1), S = int(a.sample_size()) / C;
    Tensor f({P, C});  // channel means, as ace.py clusters them
    for (int p = 0; p < P; ++p)
      for (int ch = 0; ch < C; ++ch) {
        double s = 0;
        for (int j = 0; j < S; ++j) s += a[(size_t(p) * C + ch) * S + j];
        f[size_t(p) * C + ch] = float(s / S);
      }
    cc::kmeans(f, ko);
  }, c.seconds);
  BenchRow r{"lenet5", "concepts ace-cluster", std::to_string(P) + " patches: relu2 activations, channel means, "
             "k-means k=25 (10 restarts)", 256, crate, 0, "", "patches/s"};
  if (c.compare) {
    const auto t = run_torch(c, g, [&](const fs::path& dir) {
      write_npy((dir / "patches.npy").string(), patches);
      atomic_write((dir / "bench.json").string(),
                   nlohmann::json{{"kind", "ace"}, {"layer", "relu2"}, {"n_clusters", 25}, {"n_init", 10}}.dump());
    });
    if (t.count("ace-cluster")) r.reference = P * t.at("ace-cluster").at("per_second").get<double>(), r.reference_name = "ace.py";
  }
  c.report(r);
}

void bench_concepts(const BenchContext& c) {
  Graph lenet = make_preset("lenet5");
  const cc::TcavRequest q = tcav_request(lenet);
  const cc::Params params = {{"runs", std::to_string(kRuns)}, {"random_size", std::to_string(kConceptSize)}};
  const double rate = calls_per_second([&] { cc::tcav(lenet, q, params); }, c.seconds);
  std::map<std::string, double> torch;
  if (c.compare) torch = tcav_reference_rates(c, lenet, q);
  BenchRow r{"lenet5", "concepts tcav", "3 concepts x 10 runs at relu2, 100 per set, 500 inputs", kInputs, rate,
             0, "", "tcav calls/s"};
  if (torch.count("tcav")) r.reference = torch["tcav"], r.reference_name = "captum";
  c.report(r);
  bench_probe(c, lenet);
  bench_dissect(c, lenet);
  bench_ace(c, lenet);
}

}  // namespace

static const RegisterBench registered_concepts_bench("concepts", bench_concepts);

}  // namespace gb
