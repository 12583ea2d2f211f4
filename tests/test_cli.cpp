// The `glassbox` command itself: bad flags, files and model/data pairs give a clear error that
// names the flag or file and a non-zero exit status, and a failed run leaves an existing model file
// as it was. Runs the built binary (its path in the GLASSBOX environment variable, set by Meson).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <regex>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <vector>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

struct Run {
  int status;
  std::string out, err;
};

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A scratch folder, removed at the end of the test.
struct Scratch {
  fs::path dir;
  Scratch() {
    dir = fs::temp_directory_path() / ("glassbox_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

// Runs `glassbox ARGS` (arguments without shell metacharacters) with one thread; `in_scratch`:
// in the scratch folder, for relative paths.
Run glassbox(const Scratch& s, const std::string& args, bool in_scratch = false) {
  const char* bin = std::getenv("GLASSBOX");
  REQUIRE_MESSAGE(bin, "GLASSBOX is not set (run the tests through meson test)");
  const std::string out = s / "stdout.txt", err = s / "stderr.txt";
  const std::string cmd = (in_scratch ? "cd " + s.dir.string() + " && " : std::string()) + bin + " --threads 1 " +
                          args + " >" + out + " 2>" + err;
  const int raw = std::system(cmd.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_file(out), read_file(err)};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

namespace {
// A .npy file's magic, version 1.0 and header (dtype `descr`, shape text "(2, 3, )"), padded to 64 bytes.
void write_npy_header(std::ofstream& f, const std::string& descr, const std::string& shape) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  header += std::string(63 - (10 + header.size()) % 64, ' ') + "\n";
  const uint16_t len = uint16_t(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(&len), 2);
  f << header;
}

// A float32 .npy of the given shape, values scale · i / size.
void write_npy(const std::string& path, const std::vector<int>& shape, float scale = 1.f) {
  std::string dims;
  size_t n = 1;
  for (int d : shape) dims += std::to_string(d) + ", ", n *= size_t(d);
  std::ofstream f(path, std::ios::binary);
  write_npy_header(f, "<f4", "(" + dims + ")");
  for (size_t i = 0; i < n; ++i) {
    const float v = scale * float(i) / float(n);
    f.write(reinterpret_cast<const char*>(&v), 4);
  }
}

// An int64 .npy of labels.
void write_labels(const std::string& path, const std::vector<int64_t>& labels) {
  std::ofstream f(path, std::ios::binary);
  write_npy_header(f, "<i8", "(" + std::to_string(labels.size()) + ",)");
  f.write(reinterpret_cast<const char*>(labels.data()), std::streamsize(labels.size() * 8));
}
}  // namespace

TEST_CASE("cli: bad flags and specs are refused with the flag named") {
  Scratch s;
  const std::string out = " --quiet --epochs 1 --out " + (s / "m.safetensors");
  write_npy(s / "x4.npy", {4, 2});
  write_labels(s / "y4.npy", {0, 1, 0, 1});
  write_npy(s / "x5.npy", {5, 3});
  write_labels(s / "y5.npy", {0, 1, 0, 1, 0});
  write_npy(s / "v784.npy", {784});
  write_npy(s / "x15.npy", {15, 1, 8, 8});
  write_labels(s / "y15.npy", {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2});
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {"train --model nosuch --data toy:spirals" + out, "--model 'nosuch'"},
      {"train --model toy2d --data toy:spirals --optimizer sgdx" + out, "--optimizer 'sgdx'"},
      {"train --model toy2d --data toy:spirals --schedule weekly" + out, "weekly"},
      {"train --model toy2d --data toy:nosuch" + out, "toy:nosuch"},
      {"train --model toy2d --data nosuch:dir" + out, "nosuch:dir"},
      {"train --model toy2d --data toy:spirals --lr nan" + out, "--lr: 'nan' is not a finite number"},
      {"train --model toy2d --data toy:spirals --lr 1e308" + out, "--lr: '1e308' is not a finite number"},
      {"train --model toy2d --data toy:spirals --lr -1" + out, "--lr: '-1'"},
      {"train --model toy2d --data toy:spirals --momentum 2" + out, "--momentum: '2'"},
      {"train --model toy2d --data toy:spirals --val 1" + out, "--val: '1'"},
      {"train --model toy2d --data toy:spirals --batch 0" + out, "--batch: '0' is not a whole number >= 1"},
      {"train --model toy2d --data toy:spirals --augment spin" + out, "--augment 'spin'"},
      // below float32's range: it became 0, which read as "not given" (the default rate ran)
      {"train --model toy2d --data toy:spirals --lr 1e-50" + out, "--lr: '1e-50' rounds to 0"},
      // A negative seed wrapped to 2^64 - 1; SLIC's compactness 0 failed inside SLIC, naming neither.
      {"explain --model toy2d --data toy:moons --method smoothgrad --param seed=-1 --out " + (s / "e"),
       "smoothgrad: --param seed=-1 is out of range [0, 2147483647]"},
      {"explain --model \"input(1,8,8) conv(2,k=3) relu gap dense(3)\" --input " + (s / "x15.npy") +
           " --method lime --param compactness=0 --out " + (s / "e"),
       "lime: --param compactness=0 is out of range [0.01, 1000]"},
      {"explain --model toy2d --data toy:moons --method saliency --colormap foo --out " + (s / "e"),
       "--colormap: colormap 'foo' (known: bwr, gray, hot)"},
      {"train --model toy2d --data toy:spirals --step-size 3000000000" + out,
       "--step-size = 3000000000: not a value the flag can hold (counts are whole numbers up to 2147483647)"},
      {"train --model toy2d --data toy:spirals --nesterov" + out, "--nesterov is SGD's: give --optimizer sgd (it is adam)"},
      {"distill --teacher toy2d --data toy:moons --student toy2d --lr 1e-50" + out, "--lr: '1e-50' rounds to 0"},
      {"importance --model toy2d --data toy:moons --method olden --lr 1e-50" + out, "--lr: '1e-50' rounds to 0"},
      {"train --model toy2d --data toy:spirals --schedule step --gamma 1e-50" + out, "--gamma: '1e-50' rounds to 0"},
      // crop and flip on flat samples were skipped and recorded as applied
      {"train --model toy2d --data toy:spirals --augment flip" + out, "crop and flip are for images [N,C,H,W]"},
      {"train --model lenet5 --data toy:spirals" + out, "cannot take the samples of --data toy:spirals"},
      {"train --model toy2d --data npy:" + (s / "none.npy") + "," + (s / "none_y.npy") + out, "none.npy"},
      {"predict --model toy2d --input " + (s / "none.png"), "none.png"},
      {"predict --model lenet5 --input " + (s / "v784.npy"), "v784.npy: expected N x [1,28,28] float32"},  // (no file named)
      // --range was ignored (even reversed) where the plane goes through three inputs
      {"regions --model \"input(1,8,8) conv(4,k=3,p=1) relu gap dense(3)\" --data npy:" + (s / "x15.npy") + "," + (s / "y15.npy") +
           " --split all --plane --index 0,1,2 --range 0,1,1,0 --out " + (s / "rg"),
       "--range: the window of a 2-D model's input plane"},
      {"--threads -2 info", "--threads: '-2'"},
      // 3000 classes drew a 52 GB image (std::bad_alloc)
      {"eval --model \"input(2) dense(301)\" --data toy:moons --confusion " + (s / "c.png"),
       "--confusion: 301 classes; the figure is drawn for at most 300"},
      {"eval --model toy2d --data images:" + s.dir.string() + ",h=65536", "h"},
      {"eval --model toy2d --data toy:moons,n=5,n=7", "toy:moons,n=5,n=7: 'n' given twice"},  // (7 won)
      {"train --model toy2d --data npy:" + (s / "x4.npy") + "," + (s / "y4.npy") + out,
       "every fifth sample"},  // why four samples leave no test split
      {"info nope.safetensors", "error: model 'nope.safetensors'"},  // positional: it named --model
      {"bench --models \"\" --no-explain --no-regions --no-families --seconds 0.01", "nothing to measure"},
      // An empty value ran the flag's default: sample 0, Fashion-MNIST, every report section.
      {"bench --models lenet5 --explain-models \"\" --seconds 0.01", "--explain-models: empty value"},
      {"explain --model lenet5 --data fashion-mnist --index \"\" --method saliency --out " + (s / "e"), "--index: empty value"},
      {"train --model toy2d --data \"\"" + out, "--data: empty value"},
      {"report --quick --sections \"\" --out " + (s / "r"), "--sections: empty value"},
      {"explain --model toy2d --data toy:moons --method integrated-gradients --param n_steps= --out " + (s / "e"),
       "--param n_steps=: empty value (leave n_steps out for its default)"},
      {"attack --model toy2d --data toy:moons --method fgsm --param eps= --out " + (s / "a"), "--param eps=: empty value"},
      {"--threads 5000 info toy2d", "--threads"},
      {"eval --model toy2d --data idx:/dev/zero,/dev/zero", "/dev/zero is not a regular file"},  // (was "not found")
      {"evaluate --model toy2d --data toy:moons --method saliency --metric sparseness --masks " + (s / "x4.npy") +
           " --out " + (s / "ev"), "--masks: only the localisation metrics use masks"},
      // the first mode ran and the others were ignored
      {"regions --model toy2d --data toy:moons --line 0,1 --plane --out " + (s / "rg"), "modes of their own"},
      {"regions --model toy2d --data toy:moons --range 0,1,0,1 --out " + (s / "rg"), "--range: the window of --plane"},
      // a reversed range was "not a whole number >= 0"
      {"concepts --model toy2d --layer relu1 --class 0 --concept st=data:toy:xor@index=5:3 --random pattern:noise --out " +
           (s / "cc"),
       "--concept st: index '5:3': expected I:J with 0 <= I < J"},
      // flags of another mode were ignored (--plane --pair 0,0 ran)
      {"regions --model toy2d --data toy:moons --plane --pair 0,0 --out " + (s / "rg"),
       "--pair: for the regions of single inputs, not with --stats, --line or --plane"},
      {"regions --model toy2d --data toy:moons --stats --polytope --out " + (s / "rg"), "--polytope: for the regions"},
      {"regions --model toy2d --data toy:moons --line 0,1 --size 64 --out " + (s / "rg"), "--size: for --plane"},
      {"regions --model toy2d --data toy:moons --max-regions 9 --out " + (s / "rg"), "--max-regions: for --plane"},
      {"regions --model \"input(3) dense(2)\" --data npy:" + (s / "x5.npy") + "," + (s / "y5.npy") +
           " --split train --plane --index 0,1,2,3 --out " + (s / "rg"), "--plane needs exactly three inputs (e.g. --index I,J,K), not 4"},
      // The checks of tools/flags.h: CLI11's own range, a flag that needs another.
      {"distill --model toy2d --levels 9" + out, "--levels: Value 9 not in range 1 to 6"},
      {"predict --model toy2d --index 3", "--index requires --data"},
  };
  for (const Case& c : cases) {
    INFO("glassbox " << c.args);
    const Run r = glassbox(s, c.args);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, c.expect), r.err);
    CHECK_FALSE(fs::exists(s / "m.safetensors"));
  }
  // A batch near INT_MAX overflowed the batch count: no batch ran, the loss was NaN and the
  // untrained model was saved with exit 0. Now it is one batch of the whole set.
  const Run big = glassbox(s, "train --model toy2d --data toy:moons,n=100 --batch 2147483647" + out);
  REQUIRE_MESSAGE(big.status == 0, big.err);
  const std::string log = read_file(s / "m.log.jsonl");
  CHECK_MESSAGE(!contains(log, "\"train_loss\":null"), log);
  CHECK_MESSAGE(contains(log, "\"train_loss\":"), log);
}

TEST_CASE("cli: a corrupt model file is named; failed runs leave an existing model file as it was") {
  Scratch s;
  std::ofstream(s / "bad.safetensors") << "garbage";
  Run r = glassbox(s, "eval --model " + (s / "bad.safetensors") + " --data toy:spirals");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, s / "bad.safetensors"), r.err);

  // A good model, then runs that fail before and during training with it as --out.
  r = glassbox(s, "train --model toy2d --data toy:spirals --epochs 2 --quiet --out " + (s / "m.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string before = read_file(s / "m.safetensors");
  REQUIRE(before.size() > 1000);
  r = glassbox(s, "train --model toy2d --data toy:nosuch --epochs 1 --quiet --out " + (s / "m.safetensors"));
  CHECK(r.status != 0);
  r = glassbox(s, "train --model toy2d --data toy:spirals --epochs 1 --lr 1e30 --quiet --out " + (s / "m.safetensors"));
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "diverged"), r.err);
  CHECK(read_file(s / "m.safetensors") == before);

  // The model still evaluates and predicts.
  r = glassbox(s, "eval --model " + (s / "m.safetensors") + " --data toy:spirals");
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK(contains(r.out, "accuracy"));
}


TEST_CASE("cli: explain --target takes a class or a unit of a layer, and names what is wrong") {
  Scratch s;
  write_npy(s / "x.npy", {2, 1, 8, 8});
  write_npy(s / "dir.npy", {4, 8, 8});
  write_npy(s / "bad_dir.npy", {4, 7, 7});
  const std::string base = "explain --model \"input(1,8,8) conv(4,k=3,p=1) relu(name=r) gap dense(3)\" --input " +
                           (s / "x.npy") + " --out " + (s / "out") + " --method saliency,integrated-gradients ";
  Run r = glassbox(s, base + "--target r:1");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string summary = read_file(s / "out/summary.json");
  CHECK(contains(summary, "\"target\": \"r channel 1 (mean)\""));
  CHECK(contains(summary, "\"value\""));
  r = glassbox(s, base + "--target r:2,3,4");
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK(contains(read_file(s / "out/summary.json"), "\"target\": \"r[2,3,4]\""));
  r = glassbox(s, base + "--target r:" + (s / "dir.npy"));
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK(contains(read_file(s / "out/summary.json"), "\"target\": \"a direction at r\""));
  // A finite direction whose gradients pass float32 (values near 3e38): refused, not NaN maps with
  // exit 0; --allow-nonfinite writes them.
  {
    std::ofstream f(s / "huge_dir.npy", std::ios::binary);
    write_npy_header(f, "<f4", "(4, 8, 8)");
    const float v = 3e38f;
    for (int i = 0; i < 4 * 8 * 8; ++i) f.write(reinterpret_cast<const char*>(&v), 4);
  }
  const std::string before = read_file(s / "out/summary.json");
  r = glassbox(s, base + "--target r:" + (s / "huge_dir.npy"));
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "saliency: its attribution of input x.npy[0] is not finite (--target r:"), r.err);
  CHECK(read_file(s / "out/summary.json") == before);  // nothing written
  r = glassbox(s, "--allow-nonfinite " + base + "--target r:" + (s / "huge_dir.npy"));
  CHECK_MESSAGE(r.status == 0, r.err);
  r = glassbox(s, base + "--target 2");
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK(contains(read_file(s / "out/summary.json"), "\"target_class\""));
  struct Case {
    std::string target, expect;
  };
  const Case bad[] = {
      {"r:4", "target channel 4 at layer r outside [0,4)"},
      {"r:1,2", "expected LAYER:C (a channel's mean), LAYER:C,Y,X"},
      {"r:0,8,0", "outside layer r's output"},
      {"nosuch:1", "no layer named 'nosuch'"},
      {"r:x1", "'x1' is not a whole number"},
      {"r:" + (s / "bad_dir.npy"), "--target r:"},
      {"r:" + (s / "none.npy"), "none.npy"},
      {"3", "--target 3 outside the model's classes [0,3)"},
      {"best", "--target 'best': expected pred, label, a class number, LAYER:C"},
  };
  for (const Case& c : bad) {
    INFO("--target " << c.target);
    r = glassbox(s, base + "--target " + c.target);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, c.expect), r.err);
  }
  r = glassbox(s, "explain --model \"input(1,8,8) conv(4,k=3,p=1) relu(name=r) gap dense(3)\" --input " + (s / "x.npy") +
                      " --out " + (s / "out") + " --method cam --target r:1");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "cam explains class logits"), r.err);
}

TEST_CASE("cli: influence and prototypes write their outputs; bad requests name the flag, parameter or file") {
  Scratch s;
  const std::string m = s / "m.safetensors", out = " --out " + (s / "out");
  Run r = glassbox(s, "train --model toy2d --data toy:xor --epochs 2 --save-every 1 --quiet --out " + m);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(fs::exists(s / "m.epoch1.safetensors"));
  CHECK(fs::exists(s / "m.epoch2.safetensors"));
  CHECK(contains(r.out, "epoch models every 1 epochs: " + (s / "m.epoch1.safetensors")));
  // An interval past the run's last epoch writes none, and says so (it named m.epoch5 as written).
  Run none = glassbox(s, "train --model toy2d --data toy:xor --epochs 2 --save-every 5 --quiet --out " + (s / "n.safetensors"));
  REQUIRE_MESSAGE(none.status == 0, none.err);
  CHECK_MESSAGE(contains(none.out, "no epoch model: --save-every 5 is past this run's last epoch (2)"), none.out);
  CHECK_FALSE(fs::exists(s / "n.epoch5.safetensors"));
  // Files that only look like epoch files (not models: TracIn would fail to load them).
  for (const char* decoy : {"m.epochx.safetensors", "m.epoch.safetensors", "xm.epoch3.safetensors", "m.epoch4.npy"})
    std::ofstream(s / decoy) << "not a model";
  const std::string base = "influence --model " + m + " --data toy:xor --index 0:2 ";
  r = glassbox(s, base + "--method knn,influence,tracin,representer --param damping=0.05" + out);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  for (const char* f : {"knn_scores.npy", "influence_scores.npy", "tracin_scores.npy", "representer_scores.npy",
                        "representer_alpha.npy", "summary.json"})
    CHECK_MESSAGE(fs::exists(s / ("out/" + std::string(f))), f);
  const std::string summary = read_file(s / "out/summary.json"), knn_scores = read_file(s / "out/knn_scores.npy");
  CHECK(contains(summary, "m.epoch1.safetensors"));  // TracIn found the epoch files beside the model
  CHECK(contains(summary, "m.epoch2.safetensors"));
  CHECK_FALSE(contains(summary, "epoch3"));
  CHECK(contains(summary, "\"residual\""));
  r = glassbox(s, base + "--method influence --loo 5 --param damping=0.05 --out " + (s / "loo"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(contains(r.out, "Pearson r"));
  CHECK(fs::exists(s / "loo/influence_loo.svg"));
  CHECK(contains(read_file(s / "loo/summary.json"), "\"leave_one_out\""));
  r = glassbox(s, base + "--self --method tracin,influence --out " + (s / "self"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(fs::exists(s / "self/tracin_self_influence.npy"));
  CHECK(fs::exists(s / "self/influence_self_influence.npy"));
  // A later run under the same --out with another seed and schedule: its own epoch 2 replaces the
  // old one, and the old epoch 1 left beside it is not taken for this run's (train.run differs).
  r = glassbox(s, "train --model toy2d --data toy:xor --epochs 2 --save-every 2 --seed 7 --quiet --out " + m);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  REQUIRE(fs::exists(s / "m.epoch1.safetensors"));
  r = glassbox(s, base + "--method tracin --out " + (s / "rerun"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK_MESSAGE(contains(r.err, "1 epoch model(s) beside " + m + " are from another training run"), r.err);
  const std::string rerun = read_file(s / "rerun/summary.json");
  CHECK(contains(rerun, "m.epoch2.safetensors"));
  CHECK_FALSE(contains(rerun, "m.epoch1.safetensors"));
  // A run resumed to more epochs keeps its id, which a fresh run of the first length shares: the
  // fresh model's history stops at its own epoch (epoch 3 came after it).
  const std::string fresh = "train --model toy2d --data toy:xor --epochs 2 --save-every 1 --quiet --out " + m;
  REQUIRE(glassbox(s, fresh).status == 0);
  r = glassbox(s, "train --model toy2d --data toy:xor --epochs 3 --save-every 1 --quiet --resume " +
                      (s / "m.ckpt.safetensors") + " --out " + m);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  REQUIRE(glassbox(s, fresh).status == 0);
  r = glassbox(s, base + "--method tracin --out " + (s / "past"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string past = read_file(s / "past/summary.json");
  CHECK(contains(past, "m.epoch1.safetensors"));
  CHECK(contains(past, "m.epoch2.safetensors"));
  CHECK_FALSE(contains(past, "m.epoch3.safetensors"));
  r = glassbox(s, "influence --list");
  CHECK(r.status == 0);
  CHECK(contains(r.out, "representer"));
  CHECK(contains(r.out, "lissa_depth"));

  std::ofstream(s / "junk.safetensors") << "junk";
  {  // An epoch file whose learning rate is past float32 (every score was NaN): same header length,
     // the value shortened and padded with spaces after its closing quote.
    std::string b = read_file(s / "m.epoch1.safetensors");
    const std::string key = "\"train.lr\":\"";
    const size_t at = b.find(key), from = at + key.size(), to = b.find('"', from);
    REQUIRE(at != std::string::npos);
    REQUIRE(to - from >= 5);
    b.replace(from, to - from + 1, "1e300\"" + std::string(to - from - 5, ' '));
    std::ofstream(s / "bigrate.safetensors", std::ios::binary) << b;
  }
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {base + "--method tracin --checkpoints " + (s / "bigrate.safetensors") + out,
       "bigrate.safetensors: train.lr '1e300' is not a rate > 0"},
      {base + "--method influenza" + out, "unknown method 'influenza' (known: knn, influence, tracin, representer)"},
      {base + "--method influence --param nosuch=1" + out,
       "--param nosuch: no chosen method declares it (influence; see glassbox influence --list)"},
      {base + "--method influence --param damping=0.1 --param damping=0.2" + out,
       "--param damping given twice (damping=0.1 and damping=0.2)"},
      {base + "--method influence --param damping=-1" + out, "damping must be >= 0"},
      {base + "--method influence --param lissa_depth=0" + out, "lissa_depth=0 outside [1, 1000000]"},
      {base + "--method influence --param damping=nan" + out, "damping=nan is not"},
      // knn (first) succeeds on other inputs; its files must not be rewritten when influence fails.
      {"influence --model " + m + " --data toy:xor --index 3:6 --method knn,influence --param solver=bogus" + out,
       "solver=bogus"},
      {base + "--method representer --param lambda=0" + out, "lambda must be > 0"},
      {base + "--method knn --target 7" + out, "--target '7'"},
      {base + "--method knn --top 0" + out, "--top"},
      {base + "--self --method knn" + out, "knn has no self-influence"},
      {base + "--method knn --loo 3" + out, "--loo checks influence"},
      {base + "--method influence --loo 101" + out, "--loo"},
      {"influence --model " + m + " --data toy:xor,n=30 --index 0:2 --method influence --loo 50" + out,
       "--loo 50: the training set holds only 30 points"},
      {base + "--method tracin --checkpoints " + (s / "junk.safetensors") + out, "junk.safetensors"},
      {base + "--method knn --checkpoints " + m + out, "--checkpoints: TracIn's saved models, and --method has no tracin"},
      {"influence --model toy2d --data toy:xor --method tracin" + out, "--save-every"},
      {"influence --model " + m + " --method knn" + out, "--data is required"},
      {"influence --model " + m + " --data toy:xor --index 9999 --method knn" + out, "--index 9999"},
      {base + "--method knn --train-limit 1" + out, "the training set holds 1 point(s); influence ranks at least 2"},
      {"prototypes --data toy:xor --class 5" + out, "--class '5'"},
      {"prototypes --data toy:xor --prototypes 900 --criticisms 200" + out, "900 prototypes and 200 criticisms"},
      {"prototypes --data toy:xor --model toy2d --param layer=nosuch" + out, "no layer named 'nosuch'"},
      {"prototypes --data toy:xor --param gamma=wide" + out, "--param gamma=wide"},
      {"prototypes --data toy:xor --param gamma=1e308" + out, "--param gamma=1e308 is beyond float32"},
      {"prototypes --data toy:xor --param gamma=1 --param gamma=2" + out, "--param gamma given twice"},
  };
  for (const Case& c : cases) {
    INFO("glassbox " << c.args);
    r = glassbox(s, c.args);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, c.expect), r.err);
  }
  CHECK(read_file(s / "out/summary.json") == summary);  // failed runs leave earlier outputs as they were
  CHECK(read_file(s / "out/knn_scores.npy") == knn_scores);
  r = glassbox(s, "prototypes --data toy:xor --prototypes 3 --criticisms 2 --out " + (s / "proto"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(contains(read_file(s / "proto/prototypes.json"), "\"criticisms\""));
}

TEST_CASE("cli: a CIFAR-10 folder in the binary format trains resnet8 end to end and evaluates") {
  Scratch s;
  fs::create_directories(s / "cifar");
  // 16 records per file; class 1 images bright, class 0 dark, so the two are separable.
  auto write_batch = [&](const std::string& name, int seed) {
    std::ofstream f(s / ("cifar/" + name), std::ios::binary);
    for (int r = 0; r < 16; ++r) {
      const unsigned char label = (r + seed) % 2;
      f.put(char(label));
      for (int i = 0; i < 3072; ++i) f.put(char((label ? 160 : 40) + (i * 7 + r * 13 + seed) % 64));
    }
  };
  for (int b = 1; b <= 5; ++b) write_batch("data_batch_" + std::to_string(b) + ".bin", b);
  write_batch("test_batch.bin", 9);
  const std::string model = s / "r8.safetensors", data = " --data cifar10:" + (s / "cifar");
  Run r = glassbox(s, "train --model resnet8 --epochs 2 --batch 16 --quiet --out " + model + data);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  r = glassbox(s, "info " + model);
  CHECK_MESSAGE(contains(r.out, "[3,32,32]"), r.out);
  r = glassbox(s, "eval --model " + model + data);
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK_MESSAGE(contains(r.out, "accuracy"), r.out);
  r = glassbox(s, "eval --model " + model + " --data cifar10:" + (s / "nosuch"));
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "nosuch"), r.err);
}

namespace {
// The values of every src="..." and href="..." in an HTML page.
std::vector<std::string> references(const std::string& html) {
  std::vector<std::string> refs;
  for (const std::string attr : {"src=\"", "href=\""})
    for (size_t at = html.find(attr); at != std::string::npos; at = html.find(attr, at + 1)) {
      const size_t begin = at + attr.size(), end = html.find('"', begin);
      refs.push_back(html.substr(begin, end - begin));
    }
  return refs;
}

// True when every non-void element is closed in order (the page's own tags; no comments/scripts).
bool well_formed(const std::string& html, std::string& why) {
  static const std::vector<std::string> void_tags = {"meta", "img", "br", "hr", "link", "!DOCTYPE"};
  std::vector<std::string> open;
  for (size_t at = html.find('<'); at != std::string::npos; at = html.find('<', at + 1)) {
    const size_t end = html.find_first_of(" >", at);
    const bool closing = html[at + 1] == '/';
    const std::string tag = html.substr(at + 1 + closing, end - at - 1 - closing);
    if (std::find(void_tags.begin(), void_tags.end(), tag) != void_tags.end()) continue;
    if (!closing) {
      open.push_back(tag);
    } else if (open.empty() || open.back() != tag) {
      why = "</" + tag + "> closes <" + (open.empty() ? std::string("nothing") : open.back()) + ">";
      return false;
    } else {
      open.pop_back();
    }
  }
  why = open.empty() ? "" : "<" + open.back() + "> is never closed";
  return open.empty();
}
}  // namespace

TEST_CASE("cli: report --quick writes a page whose every reference is a file in its folder; a rerun reuses all") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) {
    MESSAGE("skipped: Fashion-MNIST is not installed (dataset-fashion-mnist)");
    return;
  }
  Scratch s;
  const std::string args = "report --quick --sections 2,5,12 --out " + (s / "report");
  Run r = glassbox(s, args);
  REQUIRE_MESSAGE(r.status == 0, (r.out + r.err));
  const std::string html = read_file(s / "report/index.html");
  std::string why;
  CHECK_MESSAGE(well_formed(html, why), why);
  const std::vector<std::string> refs = references(html);
  CHECK(refs.size() >= 12);  // three table-of-contents anchors and at least nine figures
  for (const std::string& ref : refs) {
    if (ref.rfind("#", 0) == 0) continue;
    CHECK_MESSAGE(ref.find(':') == std::string::npos, ref);  // no http:, file:, data: or C:
    CHECK_MESSAGE(ref.find("..") == std::string::npos, ref);
    CHECK_MESSAGE(ref[0] != '/', ref);
    CHECK_MESSAGE(fs::is_regular_file(s / ("report/" + ref)), ref);
  }
  const std::string numbers = read_file(s / "report/report.json");
  CHECK(contains(numbers, "\"command\": \"glassbox regions"));
  // Section 2: DeconvNet projections of the top activations of both conv layers.
  CHECK(contains(html, "s2-top-conv1/grid.png"));
  CHECK(contains(html, "s2-top-conv2/grid.png"));
  // Section 5: the worked example's numbers as explain computed them (hand-worked: hidden 3, 2;
  // input 5, 0; 5 at every layer), and the conservation table of the composites.
  CHECK(contains(html, "<th>R(hidden 1)</th><td>3</td><td>3</td>"));
  CHECK(contains(html, "<th>R(hidden 2)</th><td>2</td><td>2</td>"));
  CHECK(contains(html, "<th>R(x1)</th><td>5</td><td>5</td>"));
  CHECK(contains(html, "<th>R(x2)</th><td>0</td><td>0</td>"));
  CHECK(contains(html, "<th>sum at relu1</th><td>5</td><td>5</td>"));
  CHECK(contains(html, "<th>layer</th><th>lrp-epsilon</th>"));
  CHECK(contains(numbers, "\"relevance_share_per_layer\""));
  CHECK(contains(numbers, "\"worked_example\""));
  r = glassbox(s, args);  // nothing changed: every step is reused
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK_MESSAGE(!contains(r.out, "(done"), r.out);  // "(done, 1.2 s)"
  CHECK_MESSAGE(contains(r.out, "(reused)"), r.out);
  r = glassbox(s, "report --sections 15 --out " + (s / "report"));
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--sections"), r.err);
}

namespace {
const char* kSmall = "\"input(1,8,8) conv(4,k=3,p=1) relu(name=r) gap dense(3)\"";

// kSmall trained one epoch on 20 noise images (labels i % 3) into s/m.safetensors; returns the
// data spec "npy:X,Y" (split by index: 16 train, 4 test).
std::string small_trained_model(const Scratch& s) {
  std::vector<int64_t> y;
  for (int i = 0; i < 20; ++i) y.push_back(i % 3);
  write_npy(s / "x.npy", {20, 1, 8, 8});
  write_labels(s / "y.npy", y);
  const std::string data = "npy:" + (s / "x.npy") + "," + (s / "y.npy");
  const Run r = glassbox(s, std::string("train --model ") + kSmall + " --data " + data + " --epochs 1 --quiet --out " +
                                (s / "m.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return data;
}
}  // namespace

TEST_CASE("cli: finite weights whose logits overflow float32 are refused by predict and eval, not printed as NaN") {
  Scratch s;
  const std::string data = small_trained_model(s);
  std::string bytes = read_file(s / "m.safetensors");
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const float huge = 3e38f;  // finite, so the file loads; every product overflows
  for (size_t at = 8 + header; at + 4 <= bytes.size(); at += 4) std::memcpy(&bytes[at], &huge, 4);
  std::ofstream(s / "huge.safetensors", std::ios::binary) << bytes;
  Run r = glassbox(s, "predict --model " + (s / "huge.safetensors") + " --input " + (s / "x.npy"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "huge.safetensors: its logits are not finite for input x.npy["), r.err);
  {  // one overflowing input after the first batch of 256: refused before any line is printed
    std::ofstream f(s / "late.npy", std::ios::binary);
    write_npy_header(f, "<f4", "(300, 1, 8, 8, )");
    for (int i = 0; i < 300 * 64; ++i) {
      const float v = i >= 299 * 64 ? 3e38f : 0.5f;
      f.write(reinterpret_cast<const char*>(&v), 4);
    }
  }
  r = glassbox(s, "predict --input-space model --model " + (s / "m.safetensors") + " --input " + (s / "late.npy"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "m.safetensors: its logits are not finite for input late.npy[299]"), r.err);
  CHECK_MESSAGE(r.out.empty(), r.out);
  r = glassbox(s, "eval --model " + (s / "huge.safetensors") + " --data " + data);
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "huge.safetensors: its loss is not finite on npy:"), r.err);
  // explain wrote NaN maps with exit 0; regions failed on "colorbar: needs finite lo <= hi".
  r = glassbox(s, "explain --method saliency --model " + (s / "huge.safetensors") + " --input " + (s / "x.npy") +
                      " --out " + (s / "e"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "huge.safetensors: its logits are not finite for input x.npy["), r.err);
  r = glassbox(s, "regions --model " + (s / "huge.safetensors") + " --input " + (s / "x.npy") + " --out " + (s / "r"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "huge.safetensors: its logits are not finite for input x.npy["), r.err);
}

TEST_CASE("cli: a feature extractor (no [N, classes] output) is explained for a unit, refused for a class") {
  Scratch s;  // (explain --target relu1:0 on such a net was a segfault)
  write_npy(s / "x.npy", {3, 1, 8, 8});
  const std::string base = "explain --input-space model --model \"input(1,8,8) conv(4,k=3,p=1) relu\" --input " +
                           (s / "x.npy") + " --method saliency,integrated-gradients --out " + (s / "e");
  Run r = glassbox(s, base + " --target relu1:0");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const nlohmann::json j = nlohmann::json::parse(read_file(s / "e/summary.json"));
  CHECK_MESSAGE(j.dump().find("relu1 channel 0") != std::string::npos, j.dump());
  r = glassbox(s, base);  // target pred
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "output [1,4,8,8] is not [N, classes] logits"), r.err);
}

TEST_CASE("cli: a checkpoint is resumed, never replaced by a model, and its state is checked") {
  Scratch s;
  const std::string data = small_trained_model(s);  // m.safetensors and m.ckpt.safetensors
  const std::string ckpt = s / "m.ckpt.safetensors", before = read_file(ckpt);
  const std::string train = std::string("train --model ") + kSmall + " --data " + data + " --epochs 2 --quiet";
  // --out the checkpoint itself: the model was written over it (no longer resumable).
  Run r = glassbox(s, train + " --resume " + ckpt + " --out " + ckpt);
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "is the checkpoint --resume reads"), r.err);
  CHECK(read_file(ckpt) == before);
  // A NaN in its weights or a negative second moment: refused naming the tensor (the first step
  // diverged, blamed on --lr).
  std::string bytes = before;
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const nlohmann::json h = nlohmann::json::parse(bytes.substr(8, header));
  for (const auto& [name, bad] : {std::pair<std::string, float>{"conv1.bias", NAN}, {"optim.conv1.bias.exp_avg_sq", -1.f}}) {
    REQUIRE_MESSAGE(h.contains(name), h.dump());
    std::string edited = bytes;
    std::memcpy(&edited[8 + header + h[name]["data_offsets"][0].get<size_t>()], &bad, 4);
    std::ofstream(s / "bad.ckpt.safetensors", std::ios::binary) << edited;
    r = glassbox(s, train + " --resume " + (s / "bad.ckpt.safetensors") + " --out " + (s / "o.safetensors"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "bad.ckpt.safetensors: tensor '" + name + "'"), r.err);
  }
  // The usual resume (its checkpoint next to --out) still runs.
  r = glassbox(s, train + " --resume " + ckpt + " --out " + (s / "m.safetensors"));
  CHECK_MESSAGE(r.status == 0, r.err);
}

TEST_CASE("cli: report --data on a generated set: the figures that name a class or a sample follow the data") {
  // Runs without Fashion-MNIST. The report once named Fashion-MNIST's class "Trouser" and its first
  // test image "ankle-boot_0", and scanned 2,000 test images, so other data failed three steps.
  Scratch s;
  const int n = 600;
  std::vector<int64_t> y;
  uint64_t state = 12345;
  for (int i = 0; i < n; ++i) y.push_back(int64_t((state = state * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % 10);
  write_npy(s / "x.npy", {n, 1, 28, 28});
  write_labels(s / "y.npy", y);
  const std::string data = "npy:" + (s / "x.npy") + "," + (s / "y.npy");
  const Run r = glassbox(s, "report --quick --sections 2,9,11 --data " + data + " --out " + (s / "report"));
  REQUIRE_MESSAGE(r.status == 0, (r.out + r.err));
  const std::string html = read_file(s / "report/index.html");
  std::string why;
  CHECK_MESSAGE(well_formed(html, why), why);
  for (const std::string& ref : references(html))
    if (ref.rfind("#", 0) != 0) CHECK_MESSAGE(fs::is_regular_file(s / ("report/" + ref)), ref);
  CHECK(contains(html, "TCAV scores for class 1,"));  // the set's second class, by its own name
  // Figures keep their size (scrolled sideways when wide): shrunk to the page, their text was unreadable.
  CHECK(contains(html, "img{max-width:none"));
  CHECK(!contains(html, "max-width:100%"));
  const std::string first = std::to_string(y[4]) + "_0";  // the test split's sample 0 is the file's sample 4
  CHECK_MESSAGE(fs::is_regular_file(s / ("report/s11-rules/" + first + "_anchors.png")), first);
  CHECK_MESSAGE(contains(read_file(s / "report/s2-top-conv1/summary.json"), "\"end\": 120"),
                read_file(s / "report/s2-top-conv1/summary.json"));  // --scan 0:2000 stopped at the split's 120
}

TEST_CASE("cli: explain sweeps a parameter into labelled columns; a repeated --param key is an error") {
  Scratch s;
  write_npy(s / "x.npy", {2, 1, 8, 8});
  const std::string base = std::string("explain --model ") + kSmall + " --input " + (s / "x.npy") + " --out " + (s / "out") + " ";
  Run r = glassbox(s, base + "--method occlusion --param window=2 --param window=4");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--param window given twice (window=2 and window=4)"), r.err);
  CHECK_MESSAGE(contains(r.err, "--sweep window="), r.err);

  // Clean names for .npy rows (x_0_..., not x.npy_0_...), one column per swept value, and methods
  // that do not take the key run once.
  r = glassbox(s, base + "--method occlusion,saliency --sweep window=2,4 --target 1");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  for (const char* f : {"x_0_occlusion_window-2.npy", "x_1_occlusion_window-4.npy", "x_0_saliency.npy", "grid.png"})
    CHECK_MESSAGE(fs::exists(s / ("out/" + std::string(f))), f);
  CHECK(!fs::exists(s / "out/x.npy_0_saliency.npy"));
  const std::string summary = read_file(s / "out/summary.json");
  CHECK(contains(summary, "\"occlusion window=2\""));
  CHECK(contains(summary, "\"occlusion window=4\""));
  // The two columns differ (different windows), and each equals its own single run.
  const std::string w2 = read_file(s / "out/x_0_occlusion_window-2.npy"), w4 = read_file(s / "out/x_0_occlusion_window-4.npy");
  CHECK(w2 != w4);
  r = glassbox(s, base + "--method occlusion --param window=4 --target 1");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(read_file(s / "out/x_0_occlusion.npy") == w4);

  r = glassbox(s, base + "--method saliency --sweep window=2,4");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--sweep window: no selected method accepts it"), r.err);
  r = glassbox(s, base + "--method saliency,saliency");  // run once and counted twice
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "'saliency' given twice"), r.err);
  r = glassbox(s, base + "--method occlusion --sweep window=2,2");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "'2' given twice"), r.err);
  r = glassbox(s, base + "--method saliency --stdev 0.2");  // a shorthand is named as typed
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--stdev 0.2: no selected method accepts stdev (saliency;"), r.err);
  r = glassbox(s, base + "--method occlusion --sweep window=2,4 --param window=3");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "both given"), r.err);
}

TEST_CASE("cli: explain --target per sample and label with --labels; occlusion output=prob") {
  Scratch s;
  write_npy(s / "x.npy", {3, 1, 8, 8});
  write_labels(s / "y.npy", {2, 0, 1});
  const std::string base = std::string("explain --model ") + kSmall + " --input " + (s / "x.npy") + " --out " + (s / "out") +
                           " --method saliency ";
  Run r = glassbox(s, base + "--target 2,0,1");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string per_sample = read_file(s / "out/x_1_saliency.npy"), summary = read_file(s / "out/summary.json");
  CHECK(contains(summary, "\"target\": 0"));
  CHECK(contains(summary, "\"target\": 2"));
  // Row 1 with target 0 equals the run that explains class 0 for every row.
  r = glassbox(s, base + "--target 0");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(read_file(s / "out/x_1_saliency.npy") == per_sample);
  r = glassbox(s, base + "--target label --labels " + (s / "y.npy"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(read_file(s / "out/x_1_saliency.npy") == per_sample);

  r = glassbox(s, base + "--target 2,0");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--target 2,0: 2 classes for 3 inputs"), r.err);
  r = glassbox(s, base + "--target 2,0,7");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--target 7 outside the model's classes"), r.err);
  r = glassbox(s, base + "--target label");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "has no label (give --labels"), r.err);
  write_labels(s / "y2.npy", {1, 2});
  r = glassbox(s, base + "--target label --labels " + (s / "y2.npy"));
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "2 labels for 3 --input rows"), r.err);

  // Occlusion's drop in probability: within [-1, 1], and not the logit drop.
  const std::string occ = std::string("explain --model ") + kSmall + " --input " + (s / "x.npy") + " --out " + (s / "out") +
                          " --method occlusion --target 1 ";
  r = glassbox(s, occ + "--param output=prob");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string prob = read_file(s / "out/x_0_occlusion.npy");
  r = glassbox(s, occ);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(read_file(s / "out/x_0_occlusion.npy") != prob);
  r = glassbox(s, occ + "--param output=odds");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "output=odds: use logit or prob"), r.err);
  r = glassbox(s, std::string("explain --model ") + kSmall + " --input " + (s / "x.npy") + " --out " + (s / "out") +
                      " --method occlusion --target r:1 --param output=prob");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "output=prob needs a class target"), r.err);
}

TEST_CASE("cli: train --out makes its folder; predict --logits prints the logits") {
  Scratch s;
  Run r = glassbox(s, "train --model toy2d --data toy:moons --epochs 1 --quiet --out " + (s / "new/dir/m.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(fs::exists(s / "new/dir/m.safetensors"));
  CHECK(fs::exists(s / "new/dir/m.best.safetensors"));
  r = glassbox(s, "predict --model " + (s / "new/dir/m.safetensors") + " --data toy:moons --index 0:2 --top 2 --logits --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(contains(r.out, "\"logits\":["));
  CHECK(contains(r.out, "\"logit\":"));
  r = glassbox(s, "predict --model " + (s / "new/dir/m.safetensors") + " --data toy:moons --index 0 --logits");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(contains(r.out, "(logit "));
  r = glassbox(s, "predict --model " + (s / "new/dir/m.safetensors") + " --data toy:moons --index 0");
  CHECK(!contains(r.out, "logit"));
  // eval draws its confusion matrix (2 classes: a 2 x 2 table, a colorbar, labels) into a new folder.
  r = glassbox(s, "eval --model " + (s / "new/dir/m.safetensors") + " --data toy:moons --confusion " + (s / "cm/c.png"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string png = read_file(s / "cm/c.png");
  REQUIRE(png.size() > 24);
  CHECK(png.compare(1, 3, "PNG") == 0);
}

TEST_CASE("cli: .npy inputs and baselines are pixels unless --input-space model; baseline keywords") {
  Scratch s;
  small_trained_model(s);  // trained with --normalize std: a stored mean and std
  Run r;
  const std::string model = " --model " + (s / "m.safetensors");
  const std::string data = " --data npy:" + (s / "x.npy") + "," + (s / "y.npy") + " --split all --index 0:2";
  auto run = [&](const std::string& args, const std::string& out) {
    Run q = glassbox(s, "explain" + model + " --target 0 --method saliency,integrated-gradients --out " + (s / out) + " " + args);
    REQUIRE_MESSAGE(q.status == 0, q.err);
  };
  // The same pixels as a .npy input and as dataset samples give the same explanations.
  run("--input " + (s / "x.npy"), "npy");
  run(data, "data");
  CHECK(read_file(s / "npy/x_0_saliency.npy") == read_file(s / "data/0_0_saliency.npy"));
  CHECK(read_file(s / "npy/x_1_integrated-gradients.npy") == read_file(s / "data/1_1_integrated-gradients.npy"));
  CHECK(contains(read_file(s / "npy/summary.json"), "\"input_space\": \"pixels\""));
  // Taken as already normalized, the same file is another input.
  run("--input " + (s / "x.npy") + " --input-space model", "model");
  CHECK(read_file(s / "model/x_0_saliency.npy") != read_file(s / "npy/x_0_saliency.npy"));
  CHECK(contains(read_file(s / "model/summary.json"), "\"input_space\": \"model\""));
  // Baselines: a number is a pixel value (0 = black, 0.5 = gray); mean is the training mean, which
  // the normalization maps to 0 in the model's input space.
  const std::string ig = " --method integrated-gradients";
  run(data + " --baseline 0", "b0");
  run(data + " --baseline black", "black");
  CHECK(read_file(s / "b0/0_0_integrated-gradients.npy") == read_file(s / "black/0_0_integrated-gradients.npy"));
  run(data + " --baseline 0.5", "b05");
  run(data + " --baseline gray", "gray");
  CHECK(read_file(s / "b05/0_0_integrated-gradients.npy") == read_file(s / "gray/0_0_integrated-gradients.npy"));
  CHECK(read_file(s / "gray/0_0_integrated-gradients.npy") != read_file(s / "black/0_0_integrated-gradients.npy"));
  run(data + " --baseline mean", "mean");
  run(data + " --baseline 0 --input-space model", "m0");
  CHECK(read_file(s / "mean/0_0_integrated-gradients.npy") == read_file(s / "m0/0_0_integrated-gradients.npy"));
  CHECK(read_file(s / "m0/0_0_integrated-gradients.npy") != read_file(s / "b0/0_0_integrated-gradients.npy"));
  // Seeded noise and blurred inputs: the same seed gives the same baseline, another seed another.
  run(data + " --baseline uniform:3", "u3");
  run(data + " --baseline uniform:3", "u3b");
  run(data + " --baseline uniform:4", "u4");
  CHECK(read_file(s / "u3/0_0_integrated-gradients.npy") == read_file(s / "u3b/0_0_integrated-gradients.npy"));
  CHECK(read_file(s / "u3/0_0_integrated-gradients.npy") != read_file(s / "u4/0_0_integrated-gradients.npy"));
  run(data + " --baseline blur:1", "blur");
  CHECK(read_file(s / "blur/0_0_integrated-gradients.npy") != read_file(s / "black/0_0_integrated-gradients.npy"));
  // 3.4e38 is a float32, but not once the normalization divides it by a std below 1.
  for (const char* bad : {"blur:0", "uniform:x", "purple", "nan", "3.4e38"}) {
    r = glassbox(s, "explain" + model + data + ig + " --out " + (s / "bad") + " --baseline " + bad);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, std::string("--param baseline=") + bad), r.err);
  }
  r = glassbox(s, "explain" + model + data + ig + " --out " + (s / "bad") + " --input-space normalized");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--input-space"), r.err);
  // A model without a stored normalization has no training mean.
  r = glassbox(s, std::string("explain --model ") + kSmall + data + ig + " --out " + (s / "bad") + " --baseline mean");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "no training mean"), r.err);
}

namespace {
// Width and height of a PNG file (from its IHDR chunk).
std::pair<int, int> png_size(const std::string& path) {
  const std::string b = read_file(path);
  REQUIRE(b.size() >= 24);
  auto be32 = [&](size_t at) {
    return int(uint32_t(uint8_t(b[at])) << 24 | uint32_t(uint8_t(b[at + 1])) << 16 | uint32_t(uint8_t(b[at + 2])) << 8 |
               uint8_t(b[at + 3]));
  };
  return {be32(16), be32(20)};
}
}  // namespace

TEST_CASE("cli: explain figures stand alone: enlarged maps, pages of 16 inputs, a colorbar, settings in headers") {
  Scratch s;
  write_npy(s / "x.npy", {17, 1, 8, 8});
  Run r = glassbox(s, std::string("explain --model ") + kSmall + " --input " + (s / "x.npy") + " --out " + (s / "out") +
                          " --method saliency,integrated-gradients --param n_steps=8");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(png_size(s / "out/x_0_saliency.png") == std::pair{112, 112});  // 8 x 8 maps, enlarged 14 times
  CHECK(fs::exists(s / "out/grid.png"));
  CHECK(fs::exists(s / "out/grid_2.png"));  // inputs 17.. on a second page
  CHECK(!fs::exists(s / "out/grid_3.png"));
  const auto [w1, h1] = png_size(s / "out/grid.png");
  const auto [w2, h2] = png_size(s / "out/grid_2.png");
  CHECK(w1 == w2);
  CHECK(h1 > 4 * h2);  // 16 rows against 1 (whose page the colorbar makes 268 px tall)
  CHECK(w1 > 3 * (112 + 4) + 60);  // three columns and a colorbar beside them
  // Signed and unsigned maps together: two colorbars, and a title line saying which columns read
  // which (one text line, 20 px, and 8 px around it); one colorbar, no title.
  write_npy(s / "x1.npy", {1, 1, 8, 8});
  auto grid_size = [&](const std::string& methods) {
    const std::string o = s / ("g-" + methods);
    Run run = glassbox(s, std::string("explain --model ") + kSmall + " --input " + (s / "x1.npy") + " --out " +
                              o + " --method " + methods);
    REQUIRE_MESSAGE(run.status == 0, run.err);
    return png_size(o + "/grid.png");
  };
  const auto one_bar = grid_size("saliency,deconvnet"), two_bars = grid_size("saliency,grad-cam");
  CHECK(two_bars.first > one_bar.first);  // the second colorbar
  CHECK(two_bars.second == one_bar.second + 28);
}

namespace {
// correlations.csv rows by "method_a,method_b": the mean, then r per input.
std::map<std::string, std::vector<double>> read_correlations(const std::string& path) {
  std::map<std::string, std::vector<double>> rows;
  std::istringstream in(read_file(path));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) f.push_back(c);
    REQUIRE(f.size() >= 4);
    std::vector<double> v{std::stod(f[2])};
    for (size_t i = 4; i < f.size(); ++i) v.push_back(std::stod(f[i]));
    rows[f[0] + "," + f[1]] = v;
  }
  return rows;
}
}  // namespace

TEST_CASE("cli: explain correlates every two methods' maps per input (Ancona et al.); LRP sums per layer") {
  Scratch s;
  write_npy(s / "x.npy", {3, 1, 4, 4});
  // A linear model: IG from a black baseline is exactly x ⊙ ∇f = input×gradient, and ε-LRP is
  // x ⊙ w scaled by z / (z + ε) per input: proportional to it. Saliency |w| is not.
  const std::string base = "explain --model \"input(1,4,4) flatten dense(3)\" --input " + (s / "x.npy") + " --out " +
                           (s / "out") + " --target 1 ";
  Run r = glassbox(s, base + "--method input-x-gradient,integrated-gradients,lrp-epsilon,saliency");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  auto rows = read_correlations(s / "out/correlations.csv");
  CHECK(rows.size() == 6);  // 4 methods: 6 pairs
  for (const char* pair : {"input-x-gradient,integrated-gradients", "input-x-gradient,lrp-epsilon"}) {
    CAPTURE(pair);
    REQUIRE(rows.count(pair));
    REQUIRE(rows[pair].size() == 4);  // mean and 3 inputs
    for (double v : rows[pair]) CHECK(v == doctest::Approx(1).epsilon(1e-5));
  }
  const std::vector<double>& sal = rows.at("input-x-gradient,saliency");
  CHECK(std::abs(sal[1]) < 0.999);
  CHECK(sal[0] == doctest::Approx((sal[1] + sal[2] + sal[3]) / 3).epsilon(1e-5));  // the mean over inputs
  const std::string summary = read_file(s / "out/summary.json");
  CHECK(contains(summary, "\"correlations\""));
  // LRP: the relevance at every layer of the same pass, named input first.
  CHECK(contains(summary, "\"relevance_per_layer\""));
  CHECK(contains(summary, "\"detail_layers\""));
  // One method: nothing to correlate.
  r = glassbox(s, "explain --model \"input(1,4,4) flatten dense(3)\" --input " + (s / "x.npy") + " --out " + (s / "one") +
                      " --method saliency");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(!fs::exists(s / "one/correlations.csv"));
  CHECK(!contains(read_file(s / "one/summary.json"), "\"correlations\""));
}

namespace {
nlohmann::json read_json(const std::string& path) {
  const std::string text = read_file(path);
  REQUIRE_MESSAGE(!text.empty(), path);
  return nlohmann::json::parse(text);
}
// The shape in a .npy file's header: "(1, 8, 8)".
std::string npy_shape(const std::string& path) {
  const std::string head = read_file(path).substr(0, 128);
  const size_t at = head.find("'shape': ("), end = head.find(')', at);
  REQUIRE_MESSAGE(at != std::string::npos, path);
  return head.substr(at + 9, end - at - 8);
}
// predict's first line as JSON: the top class of the one input.
int predicted(const Run& r) {
  REQUIRE_MESSAGE(r.status == 0, r.err);
  return nlohmann::json::parse(r.out.substr(0, r.out.find('\n')))["top"][0]["class"].get<int>();
}
}  // namespace

TEST_CASE("cli: visualize lists its methods; am and fool write images that predict reads back; bad requests name the value") {
  Scratch s;
  const std::string data = small_trained_model(s);  // split by index: 16 train, 4 test
  Run r;
  const std::string model = " --model " + (s / "m.safetensors");

  r = glassbox(s, "visualize --list");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  for (const char* m : {"am", "deepdream", "fool", "invert", "decoder", "multifaceted", "top-patches", "filters", "maps",
                        "minimal-image", "mask"}) {
    INFO(std::string(m));
    CHECK(contains("\n" + r.out, std::string("\n") + m + "\n    "));
  }
  CHECK(contains(r.out, "--param steps="));

  // am: <unit>.npy (one image of the model's input shape, pixels), .png, grid.png and summary.json.
  r = glassbox(s, "visualize" + model + " --method am --unit class:1 --param steps=60 --param l2=0 --out " + (s / "am"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(npy_shape(s / "am/class1.npy") == "(1, 8, 8)");
  const std::string png = read_file(s / "am/class1.png");
  REQUIRE(png.size() > 24);
  CHECK(png.compare(1, 3, "PNG") == 0);
  CHECK(fs::exists(s / "am/grid.png"));
  nlohmann::json j = read_json(s / "am/summary.json");
  for (const char* k : {"model", "input_space", "method", "unit", "params", "time_s", "rows", "scan"}) CHECK_MESSAGE(j.contains(k), k);
  CHECK(j["method"] == "am");
  CHECK(j["unit"] == "class:1");
  CHECK(j["input_space"] == "pixels");
  CHECK(j["params"]["steps"] == "60");
  REQUIRE(j["rows"].size() == 1);
  const nlohmann::json& row = j["rows"][0];
  CHECK(row["name"] == "class1");
  for (const char* k : {"start", "value", "objective", "steps", "dataset_max", "curve_objective"}) CHECK_MESSAGE(row.contains(k), k);
  CHECK(row["value"].get<double>() > row["start"].get<double>());
  // class:pred over several inputs, for a method that does not explain inputs: each predicted
  // class once (two inputs of one class once stopped the run on "two rows named class0").
  r = glassbox(s, "visualize" + model + " --method am --data " + data + " --index 0:4 --unit class:pred --param steps=2 "
                  "--out " + (s / "am_pred"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const nlohmann::json jp = read_json(s / "am_pred/summary.json");
  std::set<std::string> names;
  for (const auto& rw : jp["rows"]) CHECK(names.insert(rw["name"].get<std::string>()).second);
  CHECK(!names.empty());
  CHECK(j["scan"]["split"] == "test");  // am's scale scans --split, as before
  // The image, read back as pixels, is class 1 for the model.
  CHECK(predicted(glassbox(s, "predict" + model + " --json --input " + (s / "am/class1.npy"))) == 1);

  // fool: a sample turned into class 0 (a linear model, which reaches the threshold within the
  // pixel bounds in a few steps); predict agrees with the run's own prediction, the target when reached.
  r = glassbox(s, "train --model \"input(1,8,8) flatten dense(3)\" --data " + data + " --epochs 3 --quiet --out " +
                      (s / "lin.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string lin = " --model " + (s / "lin.safetensors");
  r = glassbox(s, "visualize" + lin + " --data " + data + " --index 0 --method fool --unit class:0 --param steps=200 --out " +
                      (s / "fool"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  j = read_json(s / "fool/summary.json");
  REQUIRE(j["rows"].size() == 1);
  const std::string stem = s / ("fool/" + j["rows"][0]["name"].get<std::string>());
  CHECK(npy_shape(stem + ".npy") == "(1, 8, 8)");
  CHECK(fs::exists(stem + "_change.npy"));
  CHECK(j["rows"][0]["start_predicted"].get<double>() != 0);
  CHECK(j["rows"][0]["reached"].get<double>() == 1);
  const int cls = predicted(glassbox(s, "predict" + lin + " --json --input " + stem + ".npy"));
  CHECK(cls == int(j["rows"][0]["predicted"].get<double>()));
  if (j["rows"][0]["reached"].get<double>() == 1) CHECK(cls == 0);
  CHECK(predicted(glassbox(s, "predict" + lin + " --json --data " + data + " --index 0")) != 0);

  struct Case {
    std::string args, expect;
  };
  const std::string am = "visualize" + model + " --method am --param steps=2 --out " + (s / "bad");
  const Case bad[] = {
      {"visualize" + model + " --method nosuch --out " + (s / "bad"), "nosuch"},
      {am + " --unit nosuchlayer:3", "nosuchlayer"},
      {am + " --unit r:999", "999"},
      {am + " --unit class:7", "7"},
      {am + " --unit class:1 --param nosuchparam=1", "nosuchparam"},
      {am + " --unit class:1 --param lr=-5", "-5"},
      {am + " --unit class:1 --param restarts=1000", "1000"},
      {am + " --unit class:1 --param optimizer=rmsprop", "rmsprop"},
      {am + " --unit class:1 --param steps", "--param 'steps': expected KEY=VALUE"},
      {am + " --unit class:1 --param steps=3", "--param steps given twice (steps=2 and steps=3)"},
      {am + " --unit class:1 --scan-split validation", "--scan-split 'validation'"},
      {"visualize" + model + " --method decoder --index 0 --scan-split test --out " + (s / "bad"), "--scan-split test"},
  };
  for (const Case& c : bad) {
    INFO("glassbox " << c.args);
    r = glassbox(s, c.args);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, c.expect), r.err);
  }
  CHECK_FALSE(fs::exists(s / "bad/summary.json"));
}

TEST_CASE("cli: visualize multifaceted scans the training split by default, whatever --split says") {
  Scratch s;
  const std::string data = small_trained_model(s);  // split by index: 16 train, 4 test
  Run r;
  const std::string base = "visualize --model " + (s / "m.safetensors") +
                           " --method multifaceted --unit class:0 --param facets=2 --param top=4 --param steps=3 --out ";
  struct Case {
    std::string flags, split;
    int samples;
  };
  const Case cases[] = {
      {"", "train", 16},
      {" --split test", "train", 16},  // --split is for --index only
      {" --split train --scan 2:10", "train", 8},
      {" --scan-split test", "test", 4},
      {" --split train --scan-split test", "test", 4},
      {" --scan-split all", "all", 20},
  };
  for (const Case& c : cases) {
    INFO(c.flags);
    r = glassbox(s, base + (s / "mf") + c.flags);
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(contains(r.out, "(" + c.split + " split)"));
    const nlohmann::json j = read_json(s / "mf/summary.json");
    CHECK(j["scan"]["split"] == c.split);
    CHECK(j["scan"]["end"].get<int>() - j["scan"]["begin"].get<int>() == c.samples);
    CHECK(j["rows"].size() == 2);
    fs::remove_all(s / "mf");
  }
  // top-patches keeps scanning --split.
  r = glassbox(s, "visualize --model " + (s / "m.safetensors") + " --method top-patches --unit r:0 --param k=2 --out " + (s / "tp"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(read_json(s / "tp/summary.json")["scan"]["split"] == "test");
}

namespace {
// The output shape [N] of a layer in `glassbox info`'s table (0 when the layer is not there).
int info_width(const std::string& info, const std::string& layer) {
  std::istringstream lines(info);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind(layer + " ", 0) == 0) {
      const size_t open = line.find('[');
      return open == std::string::npos ? 0 : std::atoi(line.c_str() + open + 1);
    }
  return 0;
}

}  // namespace

TEST_CASE("cli: prune and distill write their outputs, the pruned model evaluates as reported, refusals name the flag") {
  Scratch s;
  const std::string m = s / "m.safetensors", p = s / "p.safetensors";
  Run r = glassbox(s, "train --model toy2d --data toy:moons --epochs 2 --quiet --out " + m);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  // prune: the pruned model, its report and curve, and the number of filters it reports pruned.
  r = glassbox(s, "prune --model " + m + " --layers dense2,dense3 --max-drop 0.05 --out " + p);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  for (const char* f : {"p.safetensors", "p.prune.json", "p.prune.png", "p.prune.svg"}) CHECK_MESSAGE(fs::exists(s / f), f);
  CHECK(contains(read_file(s / "p.prune.json"), "\"base_val_accuracy\""));
  // A model trained with --limit held out its validation samples among those: prune --limit takes
  // them from the same first samples (10% of 200, not of the 1,000 training samples).
  const std::string lm = s / "lm.safetensors";
  Run lr = glassbox(s, "train --model toy2d --data toy:moons --epochs 1 --limit 200 --quiet --out " + lm);
  REQUIRE_MESSAGE(lr.status == 0, lr.err);
  for (const char* limit : {"0", "200"}) {
    CAPTURE(limit);
    lr = glassbox(s, "prune --model " + lm + " --layers dense2 --limit " + limit + " --out " + (s / "lp.safetensors"));
    REQUIRE_MESSAGE(lr.status == 0, lr.err);
    const nlohmann::json j = nlohmann::json::parse(read_file(s / "lp.prune.json"));
    CHECK(j["validation"]["n"] == (std::string(limit) == "0" ? 100 : 20));
  }
  int pruned = -1, candidates = -1;
  const size_t at = r.out.find("pruned ");
  REQUIRE(at != std::string::npos);
  REQUIRE(std::sscanf(r.out.c_str() + at, "pruned %d of %d filters", &pruned, &candidates) == 2);
  CHECK(candidates == 64);
  const Run before = glassbox(s, "info " + m), after = glassbox(s, "info " + p);
  REQUIRE(after.status == 0);
  // Pruning masks units (weights and bias zeroed), so the architecture stays; the file says how many.
  CHECK(info_width(before.out, "dense2") + info_width(before.out, "dense3") == 64);
  CHECK(info_width(after.out, "dense2") + info_width(after.out, "dense3") == 64);
  CHECK_MESSAGE(contains(after.out, "glassbox.pruned: {\"filters\":" + std::to_string(pruned) + ","), after.out);
  CHECK(!contains(before.out, "glassbox.pruned"));
  // eval loads the pruned model and finds the test accuracy prune reported for it.
  const size_t arrow = r.out.find("test accuracy ");
  REQUIRE(arrow != std::string::npos);
  const size_t b = r.out.find("-> ", arrow), e = r.out.find('%', b);
  REQUIRE(b != std::string::npos);
  const std::string reported = r.out.substr(b + 3, e - b - 2);  // e.g. 91.50%
  Run ev = glassbox(s, "eval --model " + p + " --data toy:moons");
  REQUIRE_MESSAGE(ev.status == 0, ev.err);
  CHECK_MESSAGE(contains(ev.out, "accuracy " + reported), ev.out << " / prune reported " << reported);
  // distill: a soft tree (model, report, tree and figure) and a perceptron student, both evaluable.
  r = glassbox(s, "distill --teacher " + m + " --student soft-tree:2 --epochs 1 --quiet --out " + (s / "t.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  for (const char* f : {"t.safetensors", "t.distill.json", "t.tree.json", "t.tree.png"}) CHECK_MESSAGE(fs::exists(s / f), f);
  CHECK(contains(r.out, "fidelity"));
  r = glassbox(s, "distill --teacher " + m + " --student \"input(2) dense(8) relu dense(2)\" --epochs 1 --quiet --out " +
                      (s / "d.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(fs::exists(s / "d.distill.json"));
  ev = glassbox(s, "eval --model " + (s / "d.safetensors") + " --data toy:moons");
  CHECK_MESSAGE(ev.status == 0, ev.err);
  // The student records its own --data (it recorded the teacher's), which later commands default to.
  r = glassbox(s, "distill --teacher " + m + " --student \"input(2) dense(2)\" --data toy:circles --epochs 1 --quiet "
                  "--out " + (s / "c.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK_MESSAGE(contains(glassbox(s, "info " + (s / "c.safetensors")).out, "glassbox.dataset: toy:circles"), r.out);
  // A soft tree inside the student: its leaves are not classes, so no path accuracy (it compared
  // them with the labels) and no tree figure.
  r = glassbox(s, "distill --teacher " + m + " --student \"input(2) softtree(2,out=4) relu dense(2)\" --epochs 1 "
                  "--quiet --out " + (s / "inner.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK_MESSAGE(contains(r.out, "is not the output layer"), r.out);
  CHECK_FALSE(contains(r.out, "test: maximum-probability path accuracy"));
  CHECK_FALSE(fs::exists(s / "inner.tree.json"));
  // Refusals: non-zero status, the flag named, nothing written.
  const std::string q = " --out " + (s / "q.safetensors");
  std::ofstream(s / "notes.txt") << "my notes";
  write_npy(s / "x4.npy", {4, 2});
  write_labels(s / "y4.npy", {0, 1, 0, 1});
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {"prune --model " + m + " --layers nosuch" + q, "--layers: no layer named 'nosuch'"},
      {"prune --model " + m + " --layers dense2 --out " + m, "--out '" + m + "' is the --model file"},
      {"prune --model " + m + " --layers dense2 --max-drop -1" + q, "--max-drop: '-1'"},
      // a text file or folder at --out was replaced (the folder only after all the pruning)
      {"prune --model " + m + " --layers dense2 --out " + (s / "notes.txt"), "exists and is not a model file"},
      {"prune --model " + m + " --layers dense2 --out " + s.dir.string(), "exists and is not a model file"},
      {"prune --model " + m + q, "--layers"},  // a perceptron has no conv layers: name dense ones
      {"prune --model " + (s / "nosuch.safetensors") + q, "nosuch.safetensors"},
      {"distill --teacher " + m + " --student soft-tree:0" + q, "--student 'soft-tree:0'"},
      {"distill --teacher " + m + " --student \"input(2) dense(2)\" --beta 2" + q, "--beta is for soft-tree"},
      {"distill --teacher " + m + " --student soft-tree:2 --beta 1e-50" + q, "--beta: '1e-50' rounds to 0"},
      {"distill --teacher " + m + " --student soft-tree:2 --data toy:spirals,k=3" + q,
       "--teacher has 2 outputs but 'toy:spirals,k=3:train' has 3 classes"},  // (it said --model)
      {"distill --teacher " + m + " --student \"input(2) dense(2)\" --penalty 3" + q,
       "--penalty: is for soft-tree students; --student input(2) dense(2) has no soft tree"},
      {"distill --teacher " + m + " --student \"input(2) dense(2)\" --levels 2" + q, "--levels: is for soft-tree"},
      {"distill --teacher " + m + " --student \"input(2) softtree(2,out=4) relu dense(2)\" --index 0" + q,
       "--index: draws the tree figure, which only a soft tree that is the output layer has"},
      {"distill --teacher " + m + " --student soft-tree:2 --temperature 0" + q, "--temperature: '0'"},
      {"distill --teacher " + m + " --student soft-tree:2 --alpha 2" + q, "--alpha: '2'"},
      {"distill --teacher " + m + " --student \"input(3) dense(2)\"" + q, "--student takes [3], the teacher [2]"},
      {"distill --teacher " + m + " --student lenet5" + q, "--student lenet5: the preset cannot take the teacher's inputs [2]"},
      {"distill --teacher " + (s / "nosuch.safetensors") + " --student soft-tree:2" + q, "--teacher"},
      // four samples: the test split (every fifth) is empty; accuracy and fidelity were nan% with exit 0
      {"distill --teacher " + m + " --student \"input(2) dense(2)\" --data npy:" + (s / "x4.npy") + "," +
           (s / "y4.npy") + q, "the test split is empty"},
  };
  for (const Case& c : cases) {
    INFO("glassbox " << c.args);
    const Run bad = glassbox(s, c.args);
    CHECK(bad.status != 0);
    CHECK_MESSAGE(contains(bad.err, c.expect), bad.err);
    CHECK_FALSE(fs::exists(s / "q.safetensors"));
  }
  CHECK(read_file(s / "notes.txt") == "my notes");
}

TEST_CASE("cli: influence pert_test writes its maps over the test inputs, their figure and summary entries") {
  Scratch s;
  const std::string data = " --data " + small_trained_model(s);
  Run r;
  const std::string base = "influence --model " + (s / "m.safetensors") + data + " --index 0:2 --method influence ";
  r = glassbox(s, base + "--param pert_test=2 --out " + (s / "out"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  for (const char* f : {"influence_pert_test.npy", "influence_pert_test_index.npy", "influence_pert_test.png"})
    CHECK_MESSAGE(fs::exists(s / ("out/" + std::string(f))), f);
  CHECK(!fs::exists(s / "out/influence_pert.npy"));  // pert_top was not asked for
  const std::string npy = read_file(s / "out/influence_pert_test.npy");
  CHECK(contains(npy, "'shape': (8, 1, 8, 8)"));  // 2 test inputs × (2 helpful + 2 harmful), each shaped like an input
  const nlohmann::json j = nlohmann::json::parse(read_file(s / "out/summary.json"));
  const nlohmann::json& a = j["methods"]["influence"]["arrays"]["pert_test"];
  CHECK(a["file"] == "influence_pert_test.npy");
  CHECK(a["figure"] == "influence_pert_test.png");
  CHECK(a["shape"] == "[8,1,8,8]");
  for (int t = 0; t < 2; ++t) {
    const nlohmann::json& e = j["tests"][t]["methods"]["influence"];
    REQUIRE(e["pert_test_points"].size() == 4);
    CHECK(e["pert_test_points"][0]["index"] == e["top"][0]["index"]);     // the most helpful point first
    CHECK(e["pert_test_points"][2]["index"] == e["bottom"][0]["index"]);  // then the most harmful
  }
  r = glassbox(s, base + "--param pert_test=65 --out " + (s / "bad"));
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "pert_test=65 outside [0, 64]"), r.err);
  r = glassbox(s, "influence --list");
  CHECK(contains(r.out, "pert_test"));
}

TEST_CASE("cli: evaluate lists its metrics; a small run writes metrics.json, metrics.csv and curves; refusals") {
  Scratch s;
  Run r = glassbox(s, "evaluate --list");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  // Every family, each metric beside the Quantus or Captum name it follows.
  for (const char* name : {"pixel-flipping", "deletion", "insertion", "region-perturbation", "faithfulness-correlation",
                           "sparseness", "complexity", "infidelity", "cascading-randomisation", "max-sensitivity"})
    CHECK_MESSAGE(contains(r.out, name), name);
  for (const char* ref : {"Quantus PixelFlipping", "Quantus RegionPerturbation", "Quantus FaithfulnessCorrelation",
                          "Quantus Sparseness", "Quantus Complexity", "Captum infidelity"})
    CHECK_MESSAGE(contains(r.out, ref), ref);

  // A tiny model, two inputs, two metrics (one with a curve) and two methods whose names are long.
  write_npy(s / "x.npy", {2, 1, 8, 8});
  const std::string base = std::string("evaluate --model ") + kSmall + " --input " + (s / "x.npy") + " --target 1 " +
                           "--method-param n_steps=4 --out " + (s / "out") + " ";
  const std::string methods = "--method guided-backprop,integrated-gradients ";
  r = glassbox(s, base + methods + "--metric deletion,sparseness --param features_in_step=16");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  // The printed table names each method in full (no "guided-backpro", "integrated-gra").
  const size_t table = r.out.find("metric (mean over inputs)");
  REQUIRE_MESSAGE(table != std::string::npos, r.out);
  const std::string header = r.out.substr(table, r.out.find('\n', table) - table);
  CHECK_MESSAGE(contains(header, " guided-backprop "), header);
  CHECK_MESSAGE(header.ends_with(" integrated-gradients"), header);
  const nlohmann::json j = nlohmann::json::parse(read_file(s / "out/metrics.json"));
  REQUIRE(j["inputs"].size() == 2);
  for (const char* metric : {"deletion", "sparseness"})
    for (const char* method : {"guided-backprop", "integrated-gradients"}) {
      CAPTURE(metric);
      CAPTURE(method);
      const nlohmann::json& e = j["metrics"][metric]["methods"][method];
      REQUIRE(e.contains("values"));
      REQUIRE(e["values"].size() == 2);
      double sum = 0;
      for (const auto& v : e["values"]) {
        REQUIRE(v.is_number());  // a NaN would be written as null
        sum += v.get<double>();
        CHECK(std::isfinite(v.get<double>()));
      }
      REQUIRE(e["mean"].is_number());
      CHECK(e["mean"].get<double>() == doctest::Approx(sum / 2));
      if (std::string(metric) == "sparseness") {  // a Gini index: in [0, 1)
        for (const auto& v : e["values"]) CHECK((v.get<double>() >= 0 && v.get<double>() < 1));
        CHECK(!e.contains("curves"));
      } else {  // the deletion curve: 64 features 16 at a time, from x (fraction 0) to all deleted (1)
        REQUIRE(e["curves"].size() == 1);
        const nlohmann::json& c = e["curves"][0];
        CHECK(c["x"].size() == 5);
        CHECK(c["x"][0].get<double>() == 0.0);
        CHECK(c["x"][4].get<double>() == 1.0);
        CHECK(c["mean"].size() == 5);
        CHECK(c["values"].size() == 2);
        CHECK(e["extra"]["aopc"]["values"].size() == 2);
      }
    }
  CHECK(j["metrics"]["deletion"]["better"] == "lower");
  CHECK(j["metrics"]["sparseness"]["better"] == "higher");
  CHECK(j["metrics"]["deletion"]["params"]["features_in_step"] == "16");
  CHECK(j["methods"]["integrated-gradients"]["n_steps"] == "4");
  // metrics.csv: a header, then one row per metric, method, input and quantity, every value finite.
  std::istringstream csv(read_file(s / "out/metrics.csv"));
  std::string line;
  std::getline(csv, line);
  CHECK(line == "metric,method,index,input,quantity,value");
  int values = 0, rows = 0;
  while (std::getline(csv, line)) {
    ++rows;
    const std::string value = line.substr(line.rfind(',') + 1);
    CHECK_MESSAGE(std::isfinite(std::stod(value)), line);
    values += contains(line, ",value,");
  }
  CHECK(values == 8);  // 2 metrics × 2 methods × 2 inputs
  CHECK(rows == 12);   // and deletion's aopc for each method and input
  // Curves where the metric has one.
  CHECK(fs::exists(s / "out/curve_deletion.png"));
  CHECK(contains(read_file(s / "out/curve_deletion.svg"), "integrated-gradients"));
  CHECK(!fs::exists(s / "out/curve_sparseness.png"));
  // A family's name runs every metric the registry tags with it ("faithfulness" ran 5 of its 9);
  // "complexity" is a metric of its own, its family family:complexity.
  for (const auto& [spec, want] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"complexity", {"complexity"}},
           {"family:complexity", {"sparseness", "complexity", "effective-complexity"}},
           {"localisation", {}}}) {
    const std::string& metric_spec = spec;  // (clang's lambdas cannot capture a structured binding)
    CAPTURE(metric_spec);
    r = glassbox(s, std::string("evaluate --model ") + kSmall + " --input " + (s / "x.npy") + " --target 1 --out " +
                        (s / "fam") + " --method saliency --metric " + spec);
    if (want.empty()) {  // the localisation family needs masks: all five named in the refusal
      CHECK(r.status == 1);
      CHECK_MESSAGE(contains(r.err, "pointing-game needs masks"), r.err);
      continue;
    }
    REQUIRE_MESSAGE(r.status == 0, r.err);
    const nlohmann::json f = nlohmann::json::parse(read_file(s / "fam/metrics.json"));
    CHECK(f["metrics"].size() == want.size());
    for (const std::string& m : want) CHECK_MESSAGE(f["metrics"].contains(m), m);
  }
  r = glassbox(s, "evaluate --list");
  int faithfulness = 0;
  for (size_t at = r.out.find("[faithfulness,"); at != std::string::npos; at = r.out.find("[faithfulness,", at + 1))
    ++faithfulness;
  CHECK(faithfulness == 9);

  struct Case {
    std::string args, expect;
  };
  write_labels(s / "y0.npy", {0, 0});  // one class
  const Case cases[] = {
      {base + methods + "--metric nosuch", "unknown metric 'nosuch' (known: pixel-flipping, deletion"},
      {base + "--method nosuch --metric sparseness", "unknown method 'nosuch' (known: saliency"},
      {base + "--method integrated-gradients,integrated-gradients --metric sparseness",
       "--method 'integrated-gradients,integrated-gradients': 'integrated-gradients' given twice"},
      {base + methods + "--metric sparseness --label-random-model " + kSmall,
       "--label-random-model: only --metric data-randomisation uses it"},
      {base + methods + "--metric sparseness --label-random-epochs 2", "--label-random-epochs: only data-randomisation"},
      {base + methods + "--metric sparseness --grid-inputs 5", "--grid-inputs: only the randomisation metrics"},
      // --data beside --input files added its samples to the inputs; now it only trains the label-random model
      {base + methods + "--metric sparseness --data toy:xor", "--data with --input"},
      {base + "--method integrated-gradients --metric data-randomisation --data npy:" + (s / "x.npy") + "," + (s / "y0.npy"),
       "has one class, so shuffling its labels changes nothing"},
      // the shorthand is named as typed, not as --method-param
      {base + "--method saliency --baseline white --metric sparseness",
       "--baseline white: no selected method accepts baseline (saliency;"},
      {base + methods + "--metric sparseness --param nosuch=1", "--param nosuch: no chosen metric declares it"},
      {base + methods + "--metric deletion --param order=morf --param order=lerf", "--param order given twice"},
      {base + methods + "--metric deletion --param order=sideways", "deletion: --param order=sideways"},
      {base + methods + "--metric deletion --param features_in_step=0", "--param features_in_step=0 outside [1, 64]"},
      {base + methods + "--metric deletion --param features_in_step", "--param 'features_in_step': expected KEY=VALUE"},
  };
  for (const Case& c : cases) {
    INFO("glassbox " << c.args);
    r = glassbox(s, c.args);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, c.expect), r.err);
  }
  // evaluate has no --sweep, so its repeated-key error must not advise one (explain's does).
  r = glassbox(s, base + methods + "--metric sparseness --method-param n_steps=8");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--method-param n_steps given twice (n_steps=4 and n_steps=8)"), r.err);
  CHECK_MESSAGE(!contains(r.err, "--sweep"), r.err);
}

TEST_CASE("cli: bench --gemm writes one row per product shape and GEMM, and names the GEMM in every row") {
  Scratch s;
  Run r = glassbox(s, "bench --models mlp --seconds 0.05 --no-explain --no-regions --no-families --gemm --json " +
                          (s / "rows.json"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(r.out.rfind("glassbox bench: 1 thread(s), ", 0) == 0);
  std::stringstream lines(read_file(s / "rows.json"));
  int openblas = 0, own = 0, train = 0, conv = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto row = nlohmann::json::parse(line);
    CHECK(row.contains("gemm"));
    if (row["what"] == "train") ++train;
    if (row["model"] == "conv") conv += double(row["per_second"]) > 0;
    if (row["model"] != "gemm") continue;
    const double gflops = row["per_second"];
    CHECK(std::isfinite(gflops));
    CHECK(gflops > 0);
    const std::string by = row["detail"];
    (by.rfind("OpenBLAS ", 0) == 0 ? openblas : own) += 1;
  }
  CHECK(train == 1);
  CHECK(conv == 2);
  CHECK(openblas == 10);
#if defined(__x86_64__)
  const bool avx512 = __builtin_cpu_supports("avx512f");
#else
  const bool avx512 = false;
#endif
  CHECK(own == (avx512 ? 10 : 0));
  // An unknown GLASSBOX_GEMM is refused with the variable and its value named.
  ::setenv("GLASSBOX_GEMM", "fast", 1);
  r = glassbox(s, "bench --models mlp --seconds 0.05 --no-explain --no-regions --no-families");
  ::unsetenv("GLASSBOX_GEMM");
  CHECK(r.status != 0);
  CHECK(contains(r.err, "GLASSBOX_GEMM=fast"));
}

// A stand-in for the PyTorch script: it reports, as its training rate, whether glassbox gave it
// the malloc settings that keep PyTorch's freed memory (1) or another value (2), and 0 without.
TEST_CASE("cli: bench --compare-torch runs the reference with PyTorch's memory kept, unless the user set GLIBC_TUNABLES") {
  Scratch s;
  {
    std::ofstream f(s / "fake torch.sh");  // a space in the path: passed to the shell as one word
    f << "case \"$GLIBC_TUNABLES\" in\n"
         "  *mmap_threshold=33554432*trim_threshold=*) r=1 ;;\n"
         "  '') r=0 ;;\n"
         "  *) r=2 ;;\n"
         "esac\n"
         "echo \"{\\\"model\\\": \\\"mlp\\\", \\\"what\\\": \\\"train\\\", \\\"batch\\\": 64, \\\"images_per_s\\\": $r}\"\n";
  }
  const std::string args = "bench --models mlp --seconds 0.05 --no-explain --no-regions --no-families --compare-torch "
                           "--python /bin/sh --torch-script \"" + (s / "fake torch.sh") + "\"";
  const char* before = std::getenv("GLIBC_TUNABLES");
  const std::string saved = before ? before : "";
  ::unsetenv("GLIBC_TUNABLES");
  Run r = glassbox(s, args);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(contains(r.out, "glassbox vs PyTorch"));
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex(R"(mlp +train +[0-9.]+ +([0-9.]+))")));
  CHECK(m[1] == "1.0");
  ::setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);  // the user's own: left alone
  r = glassbox(s, args);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  REQUIRE(std::regex_search(r.out, m, std::regex(R"(mlp +train +[0-9.]+ +([0-9.]+))")));
  CHECK(m[1] == "2.0");
  if (before)
    ::setenv("GLIBC_TUNABLES", saved.c_str(), 1);
  else
    ::unsetenv("GLIBC_TUNABLES");
}

TEST_CASE("cli: refusals that used to crash, hang or overwrite an input") {
  Scratch s;
  const std::string data = small_trained_model(s);  // m.safetensors: 3 classes on 8x8 images
  const std::string m = s / "m.safetensors";
  // A class pair outside the model's classes: a segfault, bad_alloc or basic_string::append before.
  for (const char* pair : {"0,3", "0,-1", "2,77", "1,1"}) {  // (1,1: an all-zero difference)
    CAPTURE(pair);
    const Run r = glassbox(s, "regions --model " + m + " --data " + data + " --index 0 --pair " + pair + " --out " +
                                  (s / "rp"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, std::string("--pair '") + pair + "'"), r.err);
    CHECK_MESSAGE(!fs::exists(s / "rp/W.npy"), "W.npy was written before --pair was refused");
  }
  // --index picks samples of --data; with --input files alone it was ignored and every row explained.
  write_npy(s / "x4.npy", {4, 1, 8, 8});
  for (const std::string& cmd : std::vector<std::string>{"explain --method saliency", "evaluate --method saliency --metric sparseness --target 0",
                                "attack --method fgsm --eps 0.1", "influence --method knn --data " + data}) {
    CAPTURE(cmd);
    const Run r = glassbox(s, cmd + " --model " + m + " --input " + (s / "x4.npy") + " --index 0 --out " + (s / "ix"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "--index: selects samples of --data; the --input files are used whole"), r.err);
  }
  // A plane through points that do not span one, and a segment of no length, reported success
  // (one "region" covering everything, or a line drawn as a map).
  for (const char* index : {"0,0,0", "0,1,1", "1,0,1"}) {
    CAPTURE(index);
    const Run r = glassbox(s, "regions --model " + m + " --data " + data + " --plane --index " + index + " --out " +
                                  (s / "rplane"));
    CHECK(r.status == 1);
    CHECK_MESSAGE((contains(r.err, "--plane: inputs ") && contains(r.err, "do not span a plane")), r.err);
  }
  const Run line = glassbox(s, "regions --model " + m + " --data " + data + " --line 2,2 --out " + (s / "rline"));
  CHECK(line.status == 1);
  CHECK_MESSAGE(contains(line.err, "are the same point: the segment has no length"), line.err);
  // (This data's samples are i/n + k 64/n: any three lie on one line, also 0,1,2. The plane tests
  // of test_hostile draw planes that exist.)
  const Run line3 = glassbox(s, "regions --model " + m + " --data " + data + " --plane --index 0,1,2 --out " + (s / "rplane"));
  CHECK_MESSAGE(contains(line3.err, "do not span a plane"), line3.err);
  // An empty item in a list was skipped ("saliency,,lime" ran two methods, "," the default).
  for (const char* methods : {"saliency,,input-x-gradient", "saliency,", ","}) {
    CAPTURE(methods);
    const Run r = glassbox(s, "explain --model " + m + " --data " + data + " --index 0 --method " + methods + " --out " +
                                  (s / "ex"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, std::string("--method '") + methods + "': an empty item in the list"), r.err);
  }
  // The report trains lenet5 and camnet on --data: 8x8 samples failed every step, after the others ran.
  Run rep = glassbox(s, "report --quick --data " + data + " --sections 2 --out " + (s / "rep"));
  CHECK(rep.status == 1);
  CHECK_MESSAGE(contains(rep.err, "its samples [1,8,8] do not fit the report's models (lenet5: "), rep.err);
  rep = glassbox(s, "report --quick --sections 2,,3 --out " + (s / "rep"));
  CHECK(rep.status == 1);
  CHECK_MESSAGE(contains(rep.err, "--sections '2,,3': an empty item in the list"), rep.err);
  // bench --seconds inf ran until killed; a batch of 0 printed 0/s.
  Run r = glassbox(s, "bench --models toy2d --no-explain --no-regions --no-families --seconds inf");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--seconds"), r.err);
  r = glassbox(s, "bench --models toy2d --no-explain --no-regions --no-families --infer-batch 0");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--infer-batch"), r.err);
  // Names and values are checked before the first measurement: a misspelt method was skipped with a
  // line of output and an unknown family ran nothing, both with exit 0; the others failed after the timings.
  fs::create_directory(s / "adir");
  for (const auto& [flags, words] : std::vector<std::pair<std::string, std::string>>{
           {"--methods salency", "--methods: unknown method 'salency' (known: saliency,"},
           {"--methods saliency --families nosuch", "--families: unknown family 'nosuch' (known: "},
           {"--methods saliency --explain-models nosuch", "--explain-models: unknown preset 'nosuch'"},
           {"--methods saliency --models toy2d,nosuch", "--models: unknown preset 'nosuch'"},
           {"--methods saliency --explain-batches 0", "--explain-batches '0': '0' is not a whole number"},
           {"--methods saliency --json " + (s / "adir"), "adir: is not a regular file"},
           {"--methods saliency --compare-torch --torch-script " + (s / "none.py"),
            "--torch-script " + (s / "none.py") + ": no such file"}}) {
    const std::string& bench_flags = flags;  // (clang's lambdas cannot capture a structured binding)
    CAPTURE(bench_flags);
    r = glassbox(s, "bench --seconds 0.01 --no-regions " + flags);
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, words), r.err);
    CHECK_MESSAGE(!contains(r.out, "train"), r.out);  // nothing was timed
  }
  // train --out an input file (the labels it trains on) replaced it before failing.
  const std::string y = read_file(s / "y.npy");
  r = glassbox(s, "train --model mlp --data " + data + " --epochs 1 --quiet --out " + (s / "y.npy"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "exists and is not a model file"), r.err);
  CHECK(read_file(s / "y.npy") == y);
  // distill --out the teacher, or a tree student's --index past the test split: refused before
  // training writes --out.
  const std::string teacher = read_file(m);
  r = glassbox(s, "distill --teacher " + m + " --student soft-tree:2 --epochs 1 --quiet --out " + m);
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "is the input model"), r.err);
  CHECK(read_file(m) == teacher);
  r = glassbox(s, "distill --teacher " + m + " --student soft-tree:2 --epochs 1 --quiet --index 999 --out " +
                      (s / "st.safetensors"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "--index 999"), r.err);
  CHECK(!fs::exists(s / "st.safetensors"));
  // explain --input OUT/grid.png --out OUT replaced its input with the new grid.
  r = glassbox(s, "explain --model " + m + " --data " + data + " --index 0 --method saliency --out " + (s / "ex"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string grid = read_file(s / "ex/grid.png");
  r = glassbox(s, "explain --model " + m + " --input " + (s / "ex/grid.png") + " --method saliency --out " + (s / "ex"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "under a name the outputs take"), r.err);
  CHECK(read_file(s / "ex/grid.png") == grid);
  r = glassbox(s, "attack --model " + m + " --data " + data + " --index 0:2 --method fgsm --eps 0.1 --out " + (s / "adv"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string adversarial = read_file(s / "adv/adversarial.npy");
  r = glassbox(s, "attack --model " + m + " --input " + (s / "adv/adversarial.npy") + " --method fgsm --eps 0.1 --out " +
                      (s / "adv"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "under a name the outputs take"), r.err);
  CHECK(read_file(s / "adv/adversarial.npy") == adversarial);
  // Errors name the flag the user gave (they said --index or --model before).
  r = glassbox(s, "regions --model " + m + " --data " + data + " --line 0,99999 --out " + (s / "rl"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "--line 99999"), r.err);
  r = glassbox(s, "distill --teacher " + m + " --student nosuch --epochs 1 --quiet --out " + (s / "st.safetensors"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "--student 'nosuch'"), r.err);
  r = glassbox(s, "attack --model " + m + " --data " + data + " --index 0 --method substitute --ref-index 5:2 --out " +
                      (s / "at"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "--ref-index '5:2'"), r.err);
  r = glassbox(s, "attack --model " + m + " --input " + (s / "adv/adversarial.npy") + " --method substitute --out " +
                      (s / "at"));  // the initial set is missing, not the inputs ("give --input FILE..." before)
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "substitute needs an initial set: give --ref-data SPEC"), r.err);
  // A step of 1e308 is finite as a double but inf as the float32 the attack computes in.
  r = glassbox(s, "attack --model " + m + " --data " + data + " --index 0 --method fgsm --eps 1e308 --out " + (s / "at"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "'1e308' is not a finite float32 number"), r.err);
  // Out of the attack's range: named as --eps (the attack named --param epsilon, which was not
  // given, after the earlier values had run); empty list items are refused, not skipped.
  r = glassbox(s, "attack --model " + m + " --data " + data + " --index 0 --method fgsm --eps 0.1,3e38 --out " + (s / "at"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "--eps '0.1,3e38': 3e+38 is outside fgsm's epsilon range [0, 1e+06]"), r.err);
  CHECK_MESSAGE(!contains(r.out, "fgsm at"), r.out);
  for (const char* list : {"0.1,,0.2", ",", "0.1,"}) {
    r = glassbox(s, "attack --model " + m + " --data " + data + " --index 0 --method fgsm --eps " + list + " --out " + (s / "at"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, std::string("--eps '") + list + "': an empty item in the list"), r.err);
  }
}

TEST_CASE("cli: an --out folder that cannot be made is named as such") {
  Scratch s;
  write_npy(s / "x.npy", {2, 1, 8, 8});
  std::ofstream(s / "file") << "not a folder";
  const Run r = glassbox(s, std::string("explain --model ") + kSmall + " --input " + (s / "x.npy") +
                                " --method saliency --out " + (s / "file"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "--out '" + (s / "file") + "': cannot create the output folder"), r.err);
}

TEST_CASE("cli: a --param key given twice is refused before any work (the last value would win unchecked)") {
  Scratch s;
  const std::string toy = " --model toy2d --data toy:xor --out " + (s / "out");
  const std::string cases[] = {
      "attack" + toy + " --method fgsm --param eps=0.1 --param eps=0.2",
      "rules" + toy + " --method tree --param max_depth=2 --param max_depth=3",
      "importance" + toy + " --method olden --param rounds=0 --param rounds=1",
      "dissect --model lenet5 --concepts generated:n=5 --param top=2 --param top=3 --out " + (s / "out"),
  };
  for (const std::string& c : cases) {
    INFO("glassbox " << c);
    const Run r = glassbox(s, c);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, " given twice ("), r.err);
    CHECK(!fs::exists(s / "out"));
  }
  // The tree alone reads no inputs: --index with it was accepted and did nothing.
  const Run r = glassbox(s, "rules" + toy + " --method tree --index 0:3");
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--index: picks the inputs anchors explains"), r.err);
}

TEST_CASE("cli: rules runs every method before it writes: a later method's failure leaves the last run's files") {
  // The anchors files were rewritten with new rules beside the older summary.json when the tree then failed.
  Scratch s;
  Run r = glassbox(s, "train --model toy2d --data toy:xor --epochs 1 --quiet --out " + (s / "t.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string args = "rules --model " + (s / "t.safetensors") + " --data toy:xor --index 0:1 --method anchors,tree --out " + (s / "r");
  r = glassbox(s, args + " --param bins=4");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  std::vector<std::pair<fs::path, std::string>> before;
  for (const auto& e : fs::directory_iterator(s / "r")) before.push_back({e.path(), read_file(e.path().string())});
  REQUIRE(before.size() >= 3);
  r = glassbox(s, args + " --param bins=2 --param features=nolayer");
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "nolayer"), r.err);
  for (const auto& file : before) CHECK_MESSAGE(read_file(file.first.string()) == file.second, file.first.string());
}

TEST_CASE("cli: an --out folder that cannot be made fails before the work, not after it") {
  Scratch s;
  std::ofstream(s / "file") << "a file where the folder would go";
  const std::string out = " --out " + (s / "file/sub");
  struct Case {
    std::string args, work;  // `work`: what the command prints once it has done its work
  };
  const Case cases[] = {
      {"attack --model toy2d --data toy:xor --method fgsm --eps 0.1" + out, "success rate"},
      {"visualize --model toy2d --method am --unit class:1" + out, "wrote"},
      {"concepts --model lenet5 --layer relu1 --class 0 --concept d=pattern:dots --random pattern:noise "
       "--inputs pattern:noise --param runs=2 --param random_size=10 --n 10" + out,
       "tcav:"},
      {"probe --model toy2d --data toy:xor --layers all" + out, "wrote"},
  };
  for (const Case& c : cases) {
    INFO("glassbox " << c.args);
    const Run r = glassbox(s, c.args);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, "cannot create the output folder"), r.err);
    CHECK_MESSAGE(!contains(r.out, c.work), r.out);
  }
}

TEST_CASE("cli: evaluate takes --labels for .npy inputs, as explain does") {
  Scratch s;
  const std::string data = small_trained_model(s);  // x.npy, y.npy (labels i % 3), m.safetensors
  write_labels(s / "y4.npy", {2, 0, 1, 1});
  const std::string base = "evaluate --model " + (s / "m.safetensors") + " --input " + (s / "x.npy") +
                           " --method saliency --metric sparseness --out " + (s / "ev");
  Run r = glassbox(s, base);
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "has no label (give --labels Y.npy"), r.err);
  r = glassbox(s, base + " --labels " + (s / "y4.npy"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "--labels " + (s / "y4.npy") + ": 4 labels for 20"), r.err);
  r = glassbox(s, base + " --labels " + (s / "y.npy"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const nlohmann::json j = read_json(s / "ev/metrics.json");
  REQUIRE(j["inputs"].size() == 20);
  for (int n = 0; n < 20; ++n) CHECK(j["inputs"][n]["label"] == n % 3);
}

TEST_CASE("cli: GLASSBOX_MAX_MEMORY is checked at start unless --max-memory replaces it") {
  Scratch s;
  REQUIRE(::setenv("GLASSBOX_MAX_MEMORY", "lots", 1) == 0);
  const Run bad = glassbox(s, "info lenet5");  // (before, only a run that checked a size noticed it)
  const Run replaced = glassbox(s, "--max-memory 1G info lenet5");
  ::unsetenv("GLASSBOX_MAX_MEMORY");
  CHECK(bad.status == 1);
  CHECK_MESSAGE(contains(bad.err, "GLASSBOX_MAX_MEMORY: 'lots' is not a byte count"), bad.err);
  CHECK_MESSAGE(replaced.status == 0, replaced.err);
  const Run empty = glassbox(s, "--max-memory \"\" info lenet5");  // given empty: not the same as absent
  CHECK(empty.status == 1);
  CHECK_MESSAGE(contains(empty.err, "--max-memory: '' is not a byte count"), empty.err);
  // --seed: CLI11 read -1 as 2^64 - 1 and clamped larger values to it (every such seed was the same).
  for (const char* seed : {"-1", "18446744073709551616", "99999999999999999999999", "+5"}) {
    CAPTURE(seed);
    const Run r = glassbox(s, std::string("train --model toy2d --data toy:moons --epochs 1 --quiet --seed ") + seed +
                                  " --out " + (s / "seed.safetensors"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "--seed: '" + std::string(seed) + "' is not a whole number in [0, 2^64 - 1]"), r.err);
  }
  const Run top = glassbox(s, "train --model toy2d --data toy:moons --epochs 1 --quiet --seed 18446744073709551615 --out " +
                                  (s / "seed.safetensors"));
  CHECK_MESSAGE(top.status == 0, top.err);
}

TEST_CASE("cli: uint8 .npy inputs are pixels 0..255; --input with --data adds no dataset sample") {
  Scratch s;
  const std::string data = small_trained_model(s), m = s / "m.safetensors";
  {  // the same image as uint8 (128) and as float (128/255)
    std::ofstream u(s / "u8.npy", std::ios::binary), f(s / "f.npy", std::ios::binary);
    write_npy_header(u, "|u1", "(1, 1, 8, 8)");
    write_npy_header(f, "<f4", "(1, 1, 8, 8)");
    const float v = 128.f / 255.f;
    for (int i = 0; i < 64; ++i) u.put(char(128)), f.write(reinterpret_cast<const char*>(&v), 4);
  }
  const Run a = glassbox(s, "predict --model " + m + " --input " + (s / "u8.npy") + " --logits --json");
  const Run b = glassbox(s, "predict --model " + m + " --input " + (s / "f.npy") + " --logits --json");
  REQUIRE_MESSAGE(a.status == 0, a.err);
  REQUIRE_MESSAGE(b.status == 0, b.err);
  const auto logits = [](const std::string& out) { return out.substr(out.find("logits")); };
  CHECK(logits(a.out) == logits(b.out));  // uint8 128 was fed as the pixel value 128.0
  // --data names the set visualize scans or regions' data; with --input it added its sample 0.
  Run r = glassbox(s, "visualize --model " + m + " --method maps --unit r:0 --input " + (s / "f.npy") + " --data " + data +
                          " --out " + (s / "v"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  int files = 0;
  for (const auto& e : fs::directory_iterator(s / "v")) files += e.path().extension() == ".npy";
  CHECK(files == 1);
  r = glassbox(s, "regions --model " + m + " --input " + (s / "f.npy") + " --data " + data + " --out " + (s / "rg"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(fs::exists(s / "rg/region.json"));  // one input: written into --out itself, not per input
  // A 2-D model's plane: --input points are drawn and spanned (they were ignored).
  r = glassbox(s, "train --model toy2d --data toy:moons --epochs 1 --quiet --out " + (s / "t.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  {
    std::ofstream p(s / "pts.npy", std::ios::binary);
    write_npy_header(p, "<f4", "(2, 2, )");
    const float v[4] = {0.5f, 0.25f, 1.5f, -0.5f};
    p.write(reinterpret_cast<const char*>(v), sizeof v);
  }
  r = glassbox(s, "regions --model " + (s / "t.safetensors") + " --input " + (s / "pts.npy") +
                      " --input-space model --plane --size 16 --out " + (s / "pl"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const nlohmann::json plane = nlohmann::json::parse(read_file(s / "pl/plane.json"));
  CHECK(plane["points"].size() == 2);
  CHECK(plane["window"][0].get<double>() <= 0.5);
  CHECK(plane["window"][1].get<double>() >= 1.5);
  // One point: a window around it, not a 0.002 box.
  r = glassbox(s, "regions --model " + (s / "t.safetensors") + " --data toy:moons --index 0 --plane --size 16 --out " +
                      (s / "pl1"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const nlohmann::json one = nlohmann::json::parse(read_file(s / "pl1/plane.json"));
  CHECK(one["window"][1].get<double>() - one["window"][0].get<double>() >= 1.9);
  CHECK(one["window"][3].get<double>() - one["window"][2].get<double>() >= 1.9);
  // A label past the model's classes is named as the input's label, not as a --target number.
  write_labels(s / "y7.npy", {7});
  r = glassbox(s, "explain --model " + m + " --input " + (s / "f.npy") + " --labels " + (s / "y7.npy") +
                      " --target label --method saliency --out " + (s / "lab"));
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--target label: input f.npy[0]'s label 7 outside the model's classes [0,3)"), r.err);
  // explain: a later method that fails leaves --out as it was (the earlier ones' files were written
  // beside an older summary.json).
  fs::create_directories(s / "ex");
  std::ofstream(s / "ex/summary.json") << "{\"old\": 1}";
  r = glassbox(s, "explain --model " + m + " --input " + (s / "f.npy") +
                      " --method integrated-gradients,occlusion-map --target r:0 --out " + (s / "ex"));
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "needs a class target"), r.err);
  int left = 0;
  for (const auto& e : fs::directory_iterator(s / "ex")) {
    ++left;
    CHECK(e.path().filename() == "summary.json");
  }
  CHECK(left == 1);
}

namespace {

// A safetensors file with one __metadata__ value replaced (the header is rewritten, the tensors kept).
void set_metadata(const std::string& path, const std::string& key, const std::string& value) {
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
  header["__metadata__"][key] = value;
  const std::string h = header.dump();
  const uint64_t m = h.size();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(&m), 8);
  f << h << bytes.substr(8 + n);
}

}  // namespace

TEST_CASE("cli: a preset name that is also a file, class names, --augment repeats, the recorded dataset") {
  Scratch s;
  // A file named like a preset is neither silently ignored (an untrained preset ran) nor taken
  // for the preset: the user says which.
  Run r = glassbox(s, "train --model toy2d --data toy:moons --epochs 1 --quiet --out toy2d", true);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  r = glassbox(s, "eval --model toy2d --data toy:moons", true);
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "--model 'toy2d' is both a preset and a file in this folder: write ./toy2d"), r.err);
  r = glassbox(s, "eval --model ./toy2d --data toy:moons", true);
  CHECK_MESSAGE(r.status == 0, r.err);
  // Elsewhere the name is the preset.
  CHECK(glassbox(s, "info toy2d").status == 0);

  // The dataset is recorded with absolute paths, so commands run elsewhere find it.
  write_npy(s / "x.npy", {20, 2});
  write_labels(s / "y.npy", {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1});
  r = glassbox(s, "train --model mlp --data npy:x.npy,y.npy --epochs 1 --quiet --out m.safetensors", true);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(contains(read_file(s / "m.safetensors"), "npy:" + (s / "x.npy") + "," + (s / "y.npy")));

  // glassbox.classes that cannot be names of the outputs are refused at load, naming the file.
  const std::string model = s / "m.safetensors";
  const std::pair<std::string, std::string> bad[] = {
      {"garbage", "is not a list of names"},
      {R"(["a","b","c"])", "has 3 names for the model's 2 outputs"},
      {R"(["a","a"])", "repeats the name \"a\""},
      {R"(["a","b\nc"])", R"(name "b\nc" holds a control character)"}};
  for (const auto& item : bad) {
    const std::string& value = item.first;
    const std::string& why = item.second;
    CAPTURE(value);
    set_metadata(model, "glassbox.classes", value);
    r = glassbox(s, "predict --model " + model + " --input " + (s / "x.npy"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, model + ": glassbox.classes " + why), r.err);
  }
  set_metadata(model, "glassbox.classes", R"(["left"])");  // fewer names: the rest are numbered
  r = glassbox(s, "predict --model " + model + " --input " + (s / "x.npy"));
  CHECK_MESSAGE(r.status == 0, r.err);

  // One crop: the last of two used to win without a word.
  for (const std::string aug : {"crop=2,crop=5", "crop,crop=8", "flip,flip"}) {
    CAPTURE(aug);
    write_npy(s / "img.npy", {10, 1, 6, 6});
    write_labels(s / "imgy.npy", {0, 1, 0, 1, 0, 1, 0, 1, 0, 1});
    r = glassbox(s, "train --model \"input(1,6,6) flatten dense(2)\" --data npy:" + (s / "img.npy") + "," +
                        (s / "imgy.npy") + " --epochs 1 --quiet --augment " + aug + " --out " + (s / "a.safetensors"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "--augment '" + aug + "'"), r.err);
    CHECK_FALSE(fs::exists(s / "a.safetensors"));
  }
}

TEST_CASE("cli: attack names files apart, refuses flags it would not read, and names what is out of range") {
  Scratch s;
  write_npy(s / "x.npy", {12, 1, 6, 6});
  write_labels(s / "y.npy", {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1});
  const std::string model = s / "m.safetensors";
  Run r = glassbox(s, "train --model \"input(1,6,6) flatten dense(2)\" --data npy:" + (s / "x.npy") + "," +
                          (s / "y.npy") + " --epochs 1 --quiet --out " + model);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  // "a b.npy" and "a_b.npy" both wrote a_b.npy_0_adv.npy: the second replaced the first.
  write_npy(s / "a b.npy", {1, 1, 6, 6}, 0.5f);
  write_npy(s / "a_b.npy", {1, 1, 6, 6});
  r = glassbox(s, "attack --model m.safetensors --method fgsm --input \"a b.npy\" a_b.npy --out adv", true);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(fs::exists(s / "adv/a_b.npy_0_adv.npy"));
  CHECK(fs::exists(s / "adv/a_b-2.npy_0_adv.npy"));
  r = glassbox(s, "explain --model m.safetensors --method saliency --input \"a b.npy\" a_b.npy --out ex", true);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(fs::exists(s / "ex/a_b_0_saliency.npy"));
  CHECK(fs::exists(s / "ex/a_b-2_0_saliency.npy"));

  const std::string base = "attack --model " + model + " --input " + (s / "a_b.npy") + " --out " + (s / "o");
  const std::pair<std::string, std::string> refused[] = {
      {" --method pgd --ref-data toy:moons", "--ref-data: only substitute, and detect-explanation"},
      {" --method pgd --ref-split test", "--ref-split: only substitute"},
      {" --method fgsm --seed 3", "--seed: seeds --target random only"},
      {" --method explanation-topk --explain integrated-gradients", "--explain: explanation-topk's grid shows"},
      {" --method explanation-region --param region=1,1,4,4,junk", "--param region=1,1,4,4,junk: expected"}};
  for (const auto& item : refused) {
    const std::string& flags = item.first;
    const std::string& message = item.second;
    CAPTURE(flags);
    r = glassbox(s, base + flags);
    CHECK(r.status != 0);
    CHECK_MESSAGE(contains(r.err, message), r.err);
  }
  // Pixels past [0, 1] are named by file (the attack named "input 0"); a wrong shape by what the file holds.
  write_npy(s / "big.npy", {1, 1, 6, 6}, 3.f);
  r = glassbox(s, "attack --model " + model + " --method fgsm --input " + (s / "big.npy") + " --out " + (s / "o"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "--input big.npy[0]: pixel value"), r.err);
  write_npy(s / "x3.npy", {2, 6, 6});
  r = glassbox(s, "attack --model " + model + " --method fgsm --input " + (s / "x3.npy") + " --out " + (s / "o"));
  CHECK_MESSAGE(contains(r.err, "got [2,6,6]"), r.err);
  // JSMA with gamma too small to change one pair returned every input unchanged, success 0.
  r = glassbox(s, "attack --model " + model + " --method jsma --param gamma=0.01 --input " + (s / "a_b.npy") +
                      " --out " + (s / "o"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "jsma: gamma=0.01 lets it change no pair of the 36 features"), r.err);
  // Detection's default reference set is "up to 1000" images: a split of 10 was refused, naming
  // --ref-index, which was not given.
  r = glassbox(s, "attack --model " + model + " --method detect-explanation --param attack=fgsm --data npy:" +
                      (s / "x.npy") + "," + (s / "y.npy") + " --index 0:2 --out " + (s / "det"));
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK_MESSAGE(contains(r.out, "(train split, 0:"), r.out);
  // --target random is drawn from the input's values: its row's position gave another target alone
  // than in a batch.
  write_npy(s / "six.npy", {6, 1, 6, 6});
  write_npy(s / "one.npy", {1, 1, 6, 6});  // not row 5 of six.npy: write the row itself
  {
    const std::string six = read_file(s / "six.npy"), one = read_file(s / "one.npy");
    const size_t header = one.size() - 36 * 4;
    std::ofstream(s / "one.npy", std::ios::binary) << one.substr(0, header) << six.substr(six.size() - 36 * 4);
  }
  const std::string five = s / "five.safetensors";  // 5 classes: a random target has 4 to pick from
  r = glassbox(s, "train --model \"input(1,6,6) flatten dense(5)\" --data npy:" + (s / "x.npy") + "," + (s / "y.npy") +
                      " --epochs 1 --quiet --out " + five);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  std::string targets[2];
  for (int k = 0; k < 2; ++k) {
    r = glassbox(s, "attack --model " + five + " --method fgsm --target random --seed 3 --input " +
                        (s / (k ? "one.npy" : "six.npy")) + " --out " + (s / ("rt" + std::to_string(k))));
    REQUIRE_MESSAGE(r.status == 0, r.err);
    const nlohmann::json j = nlohmann::json::parse(read_file(s / ("rt" + std::to_string(k)) + "/summary.json"));
    targets[k] = j["inputs"][k ? 0 : 5]["target"].dump();
  }
  CHECK(targets[0] != "null");
  CHECK(targets[0] == targets[1]);
  // A flat model's range is unbounded: null in summary.json, and no .png is claimed.
  r = glassbox(s, "train --model toy2d --data toy:moons --epochs 1 --quiet --out " + (s / "toy.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  r = glassbox(s, "attack --model " + (s / "toy.safetensors") + " --method fgsm --data toy:moons --index 0:3 --out " +
                      (s / "flat"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(contains(read_file(s / "flat/summary.json"), "\"pixel_range\": null"));
  CHECK_MESSAGE(contains(r.out, "3 inputs' .npy, summary.json"), r.out);
}

TEST_CASE("cli: occlusion's occluder is black by default, per channel on an RGB model; flat baselines are normalized") {
  Scratch s;
  write_npy(s / "x.npy", {12, 3, 6, 6});
  write_labels(s / "y.npy", {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2});
  const std::string model = s / "rgb.safetensors";
  Run r = glassbox(s, "train --model \"input(3,6,6) conv(2,k=3,p=1) relu flatten dense(3)\" --data npy:" + (s / "x.npy") +
                          "," + (s / "y.npy") + " --epochs 1 --quiet --out " + model);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  write_npy(s / "in.npy", {1, 3, 6, 6}, 0.8f);
  // Black through a per-channel normalization varies over channels: it was refused, and the
  // default was 0 in the model's input space (the training mean pixel).
  for (const std::string baseline : {"", " --baseline black", " --baseline gray", " --baseline mean"}) {
    CAPTURE(baseline);
    r = glassbox(s, "explain --model " + model + " --input " + (s / "in.npy") + " --method occlusion,occlusion-map" +
                        baseline + " --out " + (s / ("o" + std::to_string(baseline.size()))));
    CHECK_MESSAGE(r.status == 0, r.err);
  }
  CHECK(read_file(s / "o0/in_0_occlusion.npy") == read_file(s / "o17/in_0_occlusion.npy"));
  CHECK(read_file(s / "o0/in_0_occlusion.npy") != read_file(s / "o16/in_0_occlusion.npy"));
  CHECK(contains(read_file(s / "o0/summary.json"), R"("baseline": "black")"));
  // completeness measures occlusion from its own (per-channel) occluder: it read one number only.
  r = glassbox(s, "evaluate --model " + model + " --input " + (s / "in.npy") + " --target 0 --method occlusion,integrated-gradients "
                  "--metric completeness --out " + (s / "ev"));
  CHECK_MESSAGE(r.status == 0, r.err);

  // A flat model's baseline goes through its normalization as its --input does: the same array
  // as input and baseline gives f(baseline) = f(x) (the baseline skipped the normalization).
  r = glassbox(s, "train --model toy2d --data toy:moons --epochs 1 --quiet --out " + (s / "toy.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  write_npy(s / "p.npy", {1, 2}, 3.f);
  r = glassbox(s, "explain --model " + (s / "toy.safetensors") + " --input " + (s / "p.npy") + " --baseline " +
                      (s / "p.npy") + " --method integrated-gradients --out " + (s / "ig"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const nlohmann::json ig = nlohmann::json::parse(read_file(s / "ig/summary.json"));
  const nlohmann::json& m = ig["images"][0]["methods"]["integrated-gradients"];
  CHECK(m["f_baseline"].get<double>() == doctest::Approx(m["f_x"].get<double>()).epsilon(1e-6));
}

TEST_CASE("cli: a report step reruns when a file it reads changes (new data, a retrained model), not only its command") {
  Scratch s;
  std::vector<int64_t> y;
  for (int i = 0; i < 100; ++i) y.push_back(i % 10);
  write_npy(s / "x.npy", {100, 1, 28, 28});
  write_labels(s / "y.npy", y);
  const std::string cmd = "report --quick --sections 12 --data npy:" + (s / "x.npy") + "," + (s / "y.npy") + " --out " +
                          (s / "report");
  Run r = glassbox(s, cmd);
  REQUIRE_MESSAGE(r.status == 0, (r.out + r.err));
  r = glassbox(s, cmd);
  REQUIRE_MESSAGE(r.status == 0, (r.out + r.err));
  CHECK_MESSAGE(!contains(r.out + r.err, "(done"), (r.out + r.err));  // every step reused
  write_npy(s / "x.npy", {100, 1, 28, 28}, 0.5f);                   // the same path, other pixels
  r = glassbox(s, cmd);
  REQUIRE_MESSAGE(r.status == 0, (r.out + r.err));
  const std::string out = r.out + r.err;
  CHECK_MESSAGE(contains(out, "train --model lenet5") , out);
  size_t reran = 0;
  for (size_t at = out.find("(done"); at != std::string::npos; at = out.find("(done", at + 1)) ++reran;
  CHECK_MESSAGE(reran == 3, out);  // lenet5's training and the two steps that read it and the data
  CHECK_MESSAGE(contains(out, "(reused"), out);  // toy2d's steps read neither
  // Building another section keeps the current ones on the page (they were dropped from it).
  r = glassbox(s, "report --quick --sections 1 --data npy:" + (s / "x.npy") + "," + (s / "y.npy") + " --out " +
                      (s / "report"));
  REQUIRE_MESSAGE(r.status == 0, (r.out + r.err));
  const std::string html = read_file(s / "report/index.html");
  CHECK(contains(html, "<h2>1. "));
  CHECK(contains(html, "<h2>12. OpenBox regions"));
  CHECK_MESSAGE(contains(r.out, "--out s12-region  (reused)"), r.out);  // listed, not rerun
}


TEST_CASE("cli: regions' strip and plane figures are framed: title, axis, ticks and a class legend around the raster") {
  Scratch s;
  Run r = glassbox(s, "train --model toy2d --data toy:moons --epochs 1 --quiet --out " + (s / "toy.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  r = glassbox(s, "regions --model " + (s / "toy.safetensors") + " --data toy:moons --line 0,1 --out " + (s / "line"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto [lw, lh] = png_size(s / "line/line.png");
  CHECK(lw > 1000);  // the 1000 x 60 strip had no text at all
  CHECK(lh > 60 + 60);
  r = glassbox(s, "regions --model " + (s / "toy.safetensors") + " --data toy:moons --index 0:10 --plane --size 200 --out " +
                      (s / "plane"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto [pw, ph] = png_size(s / "plane/plane.png");
  CHECK(pw > 200 + 40);  // room for the y ticks
  CHECK(ph > 200 + 60);  // the title, the x ticks, its name and the legend
}

TEST_CASE("cli: bench --json - is JSON lines alone; a torch-less Python or a missing --json folder fail before timing") {
  Scratch s;
  const std::string base = "bench --models mlp --no-explain --no-regions --no-families --seconds 0.02";
  Run r = glassbox(s, base + " --json -");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  std::istringstream lines(r.out);
  int rows = 0;
  for (std::string line; std::getline(lines, line); ++rows)
    CHECK_MESSAGE(nlohmann::json::accept(line), line);  // the table went to stdout before the rows
  CHECK(rows == 2);  // mlp's train and infer
  CHECK(contains(r.err, "glassbox bench:"));
  r = glassbox(s, base + " --compare-torch --python /bin/false");
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "--compare-torch: '/bin/false "), r.err);
  CHECK_MESSAGE(contains(r.err, "that Python cannot run the baseline"), r.err);
  CHECK_MESSAGE(!contains(r.out + r.err, "train"), r.out);  // nothing was timed
  r = glassbox(s, base + " --json ''");  // (it was taken for "not given": timed, and nothing written)
  CHECK(r.status != 0);
  CHECK_MESSAGE(contains(r.err, "--json: empty value"), r.err);
  r = glassbox(s, base + " --json " + (s / "missing/rows.json"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "its folder " + (s / "missing") + " does not exist"), r.err);
}

TEST_CASE("cli: train and distill never write over the model they read; prune and distill check their side files first") {
  Scratch s;
  write_npy(s / "x.npy", {30, 2});
  std::vector<int64_t> y;
  for (int i = 0; i < 30; ++i) y.push_back(i % 2);
  write_labels(s / "y.npy", y);
  const std::string data = " --data npy:" + (s / "x.npy") + "," + (s / "y.npy") + " --epochs 1 --quiet";
  Run r = glassbox(s, "train --model mlp" + data + " --out " + (s / "m.best.safetensors"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string before = read_file(s / "m.best.safetensors");
  // m.safetensors' best epoch is written to m.best.safetensors: the model read (it was replaced).
  for (const std::string& cmd : {"train --model " + (s / "m.best.safetensors"),
                                "distill --teacher " + (s / "m.best.safetensors") + " --student mlp"}) {
    CAPTURE(cmd);
    r = glassbox(s, cmd + data + " --out " + (s / "m.safetensors"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "(written next to --out) is the input model"), r.err);
    CHECK(read_file(s / "m.best.safetensors") == before);
    CHECK_FALSE(fs::exists(s / "m.safetensors"));
  }
  r = glassbox(s, "train --model " + (s / "m.best.safetensors") + data + " --out " + (s / "m.best.safetensors"));
  CHECK_MESSAGE(contains(r.err, "--out '" + (s / "m.best.safetensors") + "' is the input model"), r.err);
  // A side file that cannot be written is refused before the work (it failed after it, with the
  // model already written).
  fs::create_directories(s / "d.distill.json");
  r = glassbox(s, "distill --teacher " + (s / "m.best.safetensors") + " --student mlp" + data + " --out " +
                      (s / "d.safetensors"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "d.distill.json: is not a regular file"), r.err);
  CHECK_FALSE(fs::exists(s / "d.safetensors"));
}

TEST_CASE("cli: explain into a folder of an earlier run leaves no correlation table that contradicts summary.json") {
  Scratch s;
  write_npy(s / "x.npy", {1, 1, 8, 8});
  const std::string base = std::string("explain --model ") + kSmall + " --input " + (s / "x.npy") + " --out " + (s / "out");
  Run r = glassbox(s, base + " --method saliency,integrated-gradients");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  REQUIRE(fs::exists(s / "out/correlations.csv"));
  r = glassbox(s, base + " --method saliency");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK_FALSE(fs::exists(s / "out/correlations.csv"));  // it stayed, with the first run's pair
  CHECK_FALSE(contains(read_file(s / "out/summary.json"), "correlations"));
  // An input named grid.npy in --out is not one of the outputs (grid*.png): it was refused.
  write_npy(s / "out/grid.npy", {1, 1, 8, 8});
  r = glassbox(s, std::string("explain --model ") + kSmall + " --input " + (s / "out/grid.npy") + " --method saliency --out " +
                      (s / "out"));
  CHECK_MESSAGE(r.status == 0, r.err);
}

TEST_CASE("cli: a file given in any flag is never replaced by the command's outputs") {
  // attack --data npy: inside --out under the name its adversarial.npy takes replaced 1000 samples
  // with 2; visualize --unit LAYER:FILE.npy replaced the direction with its image.
  Scratch s;
  fs::create_directories(s / "o");
  write_npy(s / "o/adversarial.npy", {10, 1, 28, 28});  // (every fifth sample is the test split)
  write_labels(s / "o/y.npy", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  const std::string data = read_file(s / "o/adversarial.npy");
  Run r = glassbox(s, "attack --model lenet5 --method fgsm --eps 0.1 --data npy:" + (s / "o/adversarial.npy") + "," +
                          (s / "o/y.npy") + " --index 0:2 --out " + (s / "o"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "is the input " + (s / "o/adversarial.npy") + " (given with --data); not replacing it"), r.err);
  CHECK(read_file(s / "o/adversarial.npy") == data);
  // Another spelling of the same file, and a hard link under an output's name, are the same file.
  fs::create_directories(s / "v");
  write_npy(s / "v/relu3_direction.npy", {120});
  const std::string direction = read_file(s / "v/relu3_direction.npy");
  r = glassbox(s, "visualize --model lenet5 --method am --unit relu3:" + (s / "v/../v/relu3_direction.npy") + " --out " +
                      (s / "v"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "(given with --unit); not replacing it"), r.err);
  CHECK(read_file(s / "v/relu3_direction.npy") == direction);
  fs::create_directories(s / "h");
  write_npy(s / "d.npy", {120});
  fs::create_hard_link(s / "d.npy", s / "h/relu3_direction.npy");
  r = glassbox(s, "visualize --model lenet5 --method am --unit relu3:" + (s / "d.npy") + " --out " + (s / "h"));
  CHECK(r.status == 1);
  CHECK(read_file(s / "d.npy") == direction);
  // The same command into another folder writes, and an output that was no input is replaced as before.
  r = glassbox(s, "visualize --model lenet5 --method am --unit relu3:" + (s / "d.npy") + " --out " + (s / "w"));
  CHECK_MESSAGE(r.status == 0, r.err);
  r = glassbox(s, "visualize --model lenet5 --method am --unit relu3:" + (s / "d.npy") + " --out " + (s / "w"));
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK(fs::exists(s / "w/relu3_direction.npy"));
}

TEST_CASE("cli: the images of a folder given as images:DIR are never replaced by the command's outputs") {
  // --out inside the dataset's folder: its grid.png replaced a class's image of that name.
  Scratch s;
  auto write_pgm = [](const std::string& path, int shade) {
    std::ofstream f(path, std::ios::binary);
    f << "P5\n8 8\n255\n" << std::string(64, char(shade));
  };
  for (const std::string cls : {"a", "b"}) {
    fs::create_directories(s / ("imgs/" + cls));
    for (int i = 0; i < 3; ++i) write_pgm(s / ("imgs/" + cls + "/" + std::to_string(i) + ".pgm"), 40 * i);
  }
  write_pgm(s / "imgs/a/grid.png", 200);  // stb reads the content, whatever the name says
  const std::string image = read_file(s / "imgs/a/grid.png");
  const std::string base = std::string("explain --model ") + kSmall + " --data images:" + (s / "imgs") +
                           " --split all --index 0:2 --method saliency --out ";
  Run r = glassbox(s, base + (s / "imgs/a"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "is the input " + (s / "imgs/a/grid.png") + " (given with --data); not replacing it"), r.err);
  CHECK(read_file(s / "imgs/a/grid.png") == image);
  r = glassbox(s, base + (s / "out"));  // the same run into another folder writes its grid
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK(fs::exists(s / "out/grid.png"));
  // A class folder that is a link to a folder is read, so protected.
  fs::create_directories(s / "real/c");
  for (int i = 0; i < 3; ++i) write_pgm(s / ("real/c/" + std::to_string(i) + ".pgm"), 90);
  write_pgm(s / "real/c/grid.png", 30);
  fs::create_directory_symlink(s / "real/c", s / "imgs/c");
  const std::string linked = read_file(s / "real/c/grid.png");
  r = glassbox(s, base + (s / "imgs/c"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "(given with --data); not replacing it"), r.err);
  CHECK(read_file(s / "real/c/grid.png") == linked);
  // What the dataset does not read is not protected: images beside its class folders (a second
  // run into the dataset's own folder replaces the first's grid), and a folder that is only named
  // like a value of another flag ("--method saliency --out saliency", run twice).
  for (int run = 0; run < 2; ++run) {
    r = glassbox(s, base + (s / "imgs"));
    CHECK_MESSAGE(r.status == 0, r.err);
    r = glassbox(s, std::string("explain --model ") + kSmall + " --data images:imgs --split all --index 0:2 " +
                        "--method saliency --out saliency", true);
    CHECK_MESSAGE(r.status == 0, r.err);
  }
  CHECK(fs::exists(s / "imgs/grid.png"));
  CHECK(fs::exists(s / "saliency/grid.png"));
  // A dataset split by folders (DIR/train/<class>, DIR/test/<class>) is protected two levels down.
  for (const std::string part : {"train", "test"}) {
    fs::create_directories(s / ("split/" + part + "/a"));
    for (int i = 0; i < 2; ++i) write_pgm(s / ("split/" + part + "/a/" + std::to_string(i) + ".pgm"), 60);
  }
  write_pgm(s / "split/train/a/grid.png", 10);
  const std::string split_image = read_file(s / "split/train/a/grid.png");
  r = glassbox(s, std::string("explain --model ") + kSmall + " --data images:" + (s / "split") +
                      " --split all --index 0:2 --method saliency --out " + (s / "split/train/a"));
  CHECK(r.status == 1);
  CHECK_MESSAGE(contains(r.err, "(given with --data); not replacing it"), r.err);
  CHECK(read_file(s / "split/train/a/grid.png") == split_image);
}

TEST_CASE("cli: Ctrl-C stops a run between passes: exit 128+SIGINT, no temporary left, no summary of a partial run") {
  // Killed by the signal, a run left "<file>.glassbox-tmp<PID>" files and per-input files beside an
  // older summary.json. The signal is sent once --out exists (made before the work), so a slow start
  // (the sanitizer build) is not what is interrupted.
  Scratch s;
  write_npy(s / "x.npy", {400, 1, 28, 28});
  const char* bin = std::getenv("GLASSBOX");
  REQUIRE(bin);
  const std::string o = s / "o";
  const std::string script = std::string(bin) + " --threads 1 explain --model lenet5 --input " + (s / "x.npy") +
                             " --method integrated-gradients,lime --out " + o + " >/dev/null 2>" + (s / "err.txt") +
                             " & p=$!; i=0; while [ ! -d " + o + " ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; "
                             "sleep 0.3; kill -INT $p; wait $p; echo $? >" + (s / "status.txt");
  REQUIRE(std::system(script.c_str()) == 0);
  CHECK(std::atoi(read_file(s / "status.txt").c_str()) == 128 + SIGINT);
  CHECK_MESSAGE(contains(read_file(s / "err.txt"), "glassbox: interrupted"), read_file(s / "err.txt"));
  CHECK(!fs::exists(s / "o/summary.json"));
  if (fs::exists(s / "o"))
    for (const auto& e : fs::directory_iterator(s / "o")) CHECK_MESSAGE(!contains(e.path().string(), ".glassbox-tmp"), e.path());
}

TEST_CASE("cli: a rerun into the same --out names the files an earlier run left there, and deletes nothing") {
  // Rerun with fewer methods or inputs, the earlier run's files stayed beside a summary.json that
  // does not list them, unannounced.
  Scratch s;
  write_npy(s / "x.npy", {3, 1, 28, 28});
  const std::string base = "explain --model lenet5 --input " + (s / "x.npy") + " --out " + (s / "o") + " --method ";
  Run r = glassbox(s, base + "saliency,input-x-gradient");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(!contains(r.err, "note:"));
  const std::string record = read_file(s / "o/.glassbox-explain");
  CHECK(contains(record, " x_0_input-x-gradient.npy\n"));
  std::ofstream(s / "o/notes.txt") << "the user's own file";
  r = glassbox(s, base + "saliency");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  // 3 inputs' input-x-gradient .npy and .png are left (correlations.csv, which explain itself removes, is not).
  CHECK_MESSAGE(contains(r.err, "holds 6 files an earlier `glassbox explain` run wrote and this one did not"), r.err);
  CHECK(fs::exists(s / "o/x_2_input-x-gradient.png"));
  CHECK(fs::exists(s / "o/notes.txt"));
  // Still named on the next run; a file the user changed since is no longer glassbox's.
  std::ofstream(s / "o/x_2_input-x-gradient.png") << "edited";
  r = glassbox(s, base + "saliency");
  CHECK_MESSAGE(contains(r.err, "holds 5 files"), r.err);
  CHECK(!contains(read_file(s / "o/.glassbox-explain"), "x_2_input-x-gradient.png"));
  // Another command's run into the folder keeps its own record and says nothing of explain's files.
  r = glassbox(s, "attack --model lenet5 --method fgsm --eps 0.1 --input " + (s / "x.npy") + " --out " + (s / "o"));
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(!contains(r.err, "note:"));
  CHECK(fs::exists(s / "o/.glassbox-attack"));
  // Rewriting every file again leaves nothing to name.
  r = glassbox(s, base + "saliency,input-x-gradient");
  CHECK_MESSAGE(!contains(r.err, "note:"), r.err);
}

TEST_CASE("cli: Ctrl-C stops bench (it went on, rows 'skipped: interrupted', and exited 0), and report's running step") {
  Scratch s;
  const char* bin = std::getenv("GLASSBOX");
  REQUIRE(bin);
  // The signal goes once the table's first line is out (the handler is in place by then).
  const std::string script = std::string(bin) + " --threads 1 bench --models lenet5 --no-regions --no-families --seconds 1 --json " +
                             (s / "rows.json") + " >" + (s / "out.txt") + " 2>" + (s / "err.txt") +
                             " & p=$!; i=0; while [ ! -s " + (s / "out.txt") + " ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; "
                             "sleep 0.5; kill -INT $p; wait $p; echo $? >" + (s / "status.txt");
  REQUIRE(std::system(script.c_str()) == 0);
  CHECK(std::atoi(read_file(s / "status.txt").c_str()) == 128 + SIGINT);
  CHECK_MESSAGE(contains(read_file(s / "err.txt"), "glassbox: interrupted"), read_file(s / "err.txt"));
  CHECK(!contains(read_file(s / "out.txt"), "skipped: interrupted"));
  CHECK(!fs::exists(s / "rows.json"));
}

TEST_CASE("cli: an output record that is not a regular file is not read (a FIFO blocked the command for good)") {
  Scratch s;
  fs::create_directories(s / "o");
  REQUIRE(::mkfifo((s / "o/.glassbox-explain").c_str(), 0644) == 0);
  write_npy(s / "x.npy", {1, 1, 28, 28});
  const Run r = glassbox(s, "explain --model lenet5 --method saliency --input " + (s / "x.npy") + " --out " + (s / "o"));
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK(fs::exists(s / "o/summary.json"));
  CHECK_MESSAGE(contains(r.err, "note: the list of files in"), r.err);  // the FIFO is not replaced either
  // A record line without a file's stamp ("-1 -1 ghost.png") is not named as left behind.
  fs::remove(s / "o/.glassbox-explain");
  std::ofstream(s / "o/.glassbox-explain") << "-1 -1 ghost.png\n";
  const Run again = glassbox(s, "explain --model lenet5 --method saliency --input " + (s / "x.npy") + " --out " + (s / "o"));
  CHECK_MESSAGE(!contains(again.err, "ghost.png"), again.err);
}

TEST_CASE("cli: a folder where explain's or attack's summary goes is refused before any file is written") {
  // It failed only when summary.json was reached, after every per-input file.
  Scratch s;
  write_npy(s / "x.npy", {2, 1, 28, 28});
  for (const std::string& cmd : {std::string("explain --method saliency"), std::string("attack --method fgsm --eps 0.1")}) {
    CAPTURE(cmd);
    fs::remove_all(s / "o");
    fs::create_directories(s / "o/summary.json");
    const Run r = glassbox(s, cmd + " --model lenet5 --input " + (s / "x.npy") + " --out " + (s / "o"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "summary.json: is not a regular file"), r.err);
    int files = 0;
    for (const auto& e : fs::directory_iterator(s / "o")) files += e.is_regular_file();
    CHECK(files == 0);
  }
}
