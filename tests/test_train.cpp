// Optimizers, schedules, the fit loop, checkpoints and resume, divergence handling.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/architecture.h"
#include "engine/layers.h"
#include "engine/model_file.h"
#include "engine/threads.h"
#include "train/checkpoint.h"
#include "train/fit.h"
#include "train/optimizer.h"
#include "train/presets.h"

using namespace gb;
namespace fs = std::filesystem;

namespace {

// input(2) dense(1): weight [1,2] = (1, 2), bias 0; gradients set by hand.
Graph tiny() {
  Graph g(Shape{2});
  g.then<Dense>(1);
  auto* d = static_cast<Dense*>(&g.layer(0));
  d->weight.value[0] = 1;
  d->weight.value[1] = 2;
  d->bias.value[0] = 0;
  return g;
}

Dense& dense0(Graph& g) { return static_cast<Dense&>(g.layer(0)); }

void set_grad(Graph& g, float a, float b, float gb = 0) {
  dense0(g).weight.grad[0] = a;
  dense0(g).weight.grad[1] = b;
  dense0(g).bias.grad[0] = gb;
}

void check_w(Graph& g, double a, double b, double tol = 1e-6) {
  CHECK(dense0(g).weight.value[0] == doctest::Approx(a).epsilon(tol));
  CHECK(dense0(g).weight.value[1] == doctest::Approx(b).epsilon(tol));
}

// Two Gaussian blobs per class on a circle: linearly separable enough for a small MLP.
Dataset blobs(int n, uint64_t seed, int classes = 3) {
  Dataset d;
  d.x = Tensor(Shape{n, 2});
  Rng r(seed);
  for (int i = 0; i < n; ++i) {
    int c = i % classes;
    float ang = 6.2831853f * c / classes;
    d.x[size_t(i) * 2] = 1.5f * std::cos(ang) + 0.3f * r.normal();
    d.x[size_t(i) * 2 + 1] = 1.5f * std::sin(ang) + 0.3f * r.normal();
    d.y.push_back(c);
  }
  for (int c = 0; c < classes; ++c) d.class_names.push_back("c" + std::to_string(c));
  d.name = "blobs";
  return d;
}

std::string tmpdir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("gb_test_train_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::vector<float> weights_of(const Graph& g) {
  std::vector<float> w;
  for (auto& [n, p] : g.named_params()) w.insert(w.end(), p->value.data(), p->value.data() + p->value.size());
  return w;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

FitOptions quiet_opts(int epochs) {
  FitOptions o;
  o.epochs = epochs;
  o.batch = 16;
  o.optimizer.kind = OptimizerKind::adam;
  o.optimizer.lr = 1e-2f;
  o.progress = ProgressStyle::quiet;
  o.val_fraction = 0.2f;
  return o;
}

std::string bytes_of(const std::string& path) { return read_file(path); }

}  // namespace


TEST_CASE("SGD: plain, weight decay, momentum, Nesterov (PyTorch semantics)") {
  {
    Graph g = tiny();
    Optimizer o(g, {OptimizerKind::sgd, 0.1f});
    set_grad(g, 0.5f, -1.f, 0.25f);
    o.step(0.1f);
    check_w(g, 0.95, 2.1);
    CHECK(dense0(g).bias.value[0] == doctest::Approx(-0.025));
    CHECK(o.steps() == 1);
  }
  {
    Graph g = tiny();
    OptimizerConfig c{OptimizerKind::sgd, 0.1f};
    c.weight_decay = 0.1f;  // d = g + 0.1 w = (0.6, -0.8)
    Optimizer o(g, c);
    set_grad(g, 0.5f, -1.f);
    o.step(0.1f);
    check_w(g, 0.94, 2.08);
  }
  {
    Graph g = tiny();
    OptimizerConfig c{OptimizerKind::sgd, 0.1f};
    c.momentum = 0.9f;
    Optimizer o(g, c);
    set_grad(g, 0.5f, -1.f);
    o.step(0.1f);  // buf = g
    check_w(g, 0.95, 2.1);
    o.step(0.1f);  // buf = 0.9 g + g = 1.9 g
    check_w(g, 0.855, 2.29);
  }
  {
    Graph g = tiny();
    OptimizerConfig c{OptimizerKind::sgd, 0.1f};
    c.momentum = 0.9f;
    c.nesterov = true;
    Optimizer o(g, c);
    set_grad(g, 0.5f, -1.f);
    o.step(0.1f);  // d = g + 0.9 g = 1.9 g
    check_w(g, 0.905, 2.19);
    o.step(0.1f);  // buf = 1.9 g, d = g + 0.9 * 1.9 g = 2.71 g
    check_w(g, 0.7695, 2.461);
  }
}

TEST_CASE("Adam and AdamW match torch.optim over two steps") {
  // Reference values from PyTorch's update rule evaluated in double precision, g1 = (0.5, -1),
  // g2 = (1, 0.5), lr 0.1, betas (0.9, 0.999), eps 1e-8.
  struct Case {
    OptimizerKind kind;
    float wd;
    double w0, w1;
  } cases[] = {{OptimizerKind::adam, 0.f, 0.8034818006385094, 2.1266337026290967},
               {OptimizerKind::adam, 0.1f, 0.8025029703202308, 2.1006958914927063},
               {OptimizerKind::adamw, 0.1f, 0.7845818006185094, 2.0858337026390967}};
  for (const Case& k : cases) {
    CAPTURE(optimizer_name(k.kind));
    CAPTURE(k.wd);
    Graph g = tiny();
    OptimizerConfig c{k.kind, 0.1f};
    c.weight_decay = k.wd;
    Optimizer o(g, c);
    set_grad(g, 0.5f, -1.f);
    o.step(0.1f);
    set_grad(g, 1.f, 0.5f);
    o.step(0.1f);
    check_w(g, k.w0, k.w1, 1e-5);
  }
  CHECK(default_weight_decay(OptimizerKind::adamw) == doctest::Approx(0.01));
  CHECK(default_weight_decay(OptimizerKind::adam) == 0.f);
  CHECK_THROWS_WITH_AS(optimizer_kind("rmsprop"), doctest::Contains("--optimizer 'rmsprop'"), std::invalid_argument);
}

// A model large enough that the update is split across threads (and runs the vectorized loops'
// bodies, not only their scalar remainders): every element follows the formula, at any thread count.
TEST_CASE("optimizers: every element of a 40,000-parameter model follows the formula, the same bits at 1 and 2 threads") {
  RestoreThreads guard;
  struct Case {
    OptimizerKind kind;
    float momentum, dampening, wd;
    bool nesterov;
  } cases[] = {{OptimizerKind::sgd, 0.f, 0.f, 0.f, false},
               {OptimizerKind::sgd, 0.9f, 0.f, 1e-2f, true},
               {OptimizerKind::sgd, 0.9f, 0.25f, 0.f, false},
               {OptimizerKind::adam, 0.f, 0.f, 1e-2f, false},
               {OptimizerKind::adamw, 0.f, 0.f, 1e-2f, false}};
  for (const Case& k : cases) {
    CAPTURE(optimizer_name(k.kind));
    CAPTURE(k.momentum);
    auto run = [&](int threads) {
      set_threads(threads);
      Graph g(Shape{200});
      g.then<Dense>(200);
      Dense& d = dense0(g);
      for (size_t i = 0; i < d.weight.value.size(); ++i) d.weight.value[i] = std::sin(0.1f * float(i));
      OptimizerConfig c{k.kind, 0.1f};
      c.momentum = k.momentum, c.dampening = k.dampening, c.weight_decay = k.wd, c.nesterov = k.nesterov;
      Optimizer o(g, c);
      for (int step = 1; step <= 3; ++step) {
        for (size_t i = 0; i < d.weight.grad.size(); ++i) d.weight.grad[i] = std::cos(0.37f * float(i) + float(step));
        for (size_t i = 0; i < d.bias.grad.size(); ++i) d.bias.grad[i] = 0.5f - 0.01f * float(i);
        o.step(0.05f);
      }
      return d.weight.value.clone();
    };
    const Tensor one = run(1), two = run(2);
    CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
    // The same three steps element by element, in double: PyTorch's formulas.
    for (size_t i = 0; i < one.size(); i += 997) {
      double w = std::sin(0.1f * float(i)), buf = 0, m = 0, v = 0;
      for (int step = 1; step <= 3; ++step) {
        double g = std::cos(0.37f * float(i) + float(step));
        if (k.kind == OptimizerKind::adamw) {
          w *= 1 - 0.05 * k.wd;
        } else {
          g += k.wd * w;
        }
        if (k.kind == OptimizerKind::sgd) {
          buf = step == 1 ? g : k.momentum * buf + (1 - k.dampening) * g;
          w -= 0.05 * (k.momentum == 0 ? g : k.nesterov ? g + k.momentum * buf : buf);
        } else {
          m = 0.9 * m + 0.1 * g;
          v = 0.999 * v + 0.001 * g * g;
          const double bc1 = 1 - std::pow(0.9, step), bc2 = 1 - std::pow(0.999, step);
          w -= 0.05 / bc1 * m / (std::sqrt(v) / std::sqrt(bc2) + 1e-8);
        }
      }
      CAPTURE(i);
      CHECK(one[i] == doctest::Approx(w).epsilon(1e-5));
    }
  }
}

TEST_CASE("optimizer state round-trips: restored optimizer continues identically") {
  for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adam}) {
    OptimizerConfig c{kind, 0.1f};
    c.momentum = 0.9f;
    Graph a = tiny(), b = tiny();
    Optimizer oa(a, c), ob(b, c);
    set_grad(a, 0.5f, -1.f);
    oa.step(0.1f);
    std::map<std::string, Tensor> st;
    for (auto& [n, t] : oa.state_tensors()) st[n] = t->clone();
    CHECK(!st.empty());
    ob.load_state(st, oa.steps(), "test");
    dense0(b).weight.value.copy_from(dense0(a).weight.value);
    dense0(b).bias.value.copy_from(dense0(a).bias.value);
    set_grad(a, 1.f, 0.5f);
    set_grad(b, 1.f, 0.5f);
    oa.step(0.1f);
    ob.step(0.1f);
    CHECK(bitwise_equal(weights_of(a), weights_of(b)));
    st.erase(st.begin());
    CHECK_THROWS_WITH(ob.load_state(st, 1, "ck.safetensors"), doctest::Contains("ck.safetensors"));
  }
}

TEST_CASE("schedules: constant, step, cosine with linear warm-up") {
  ScheduleConfig s;
  CHECK(learning_rate(s, 0.1f, 57, 10, 100) == doctest::Approx(0.1));
  s.kind = ScheduleKind::step;
  s.step_size = 2;
  s.gamma = 0.5f;
  CHECK(learning_rate(s, 0.1f, 0, 10, 100) == doctest::Approx(0.1));
  CHECK(learning_rate(s, 0.1f, 19, 10, 100) == doctest::Approx(0.1));   // epoch 1
  CHECK(learning_rate(s, 0.1f, 20, 10, 100) == doctest::Approx(0.05));  // epoch 2
  CHECK(learning_rate(s, 0.1f, 45, 10, 100) == doctest::Approx(0.025)); // epoch 4
  s.kind = ScheduleKind::cosine;
  s.warmup = 1;  // one epoch = 10 iterations
  const double want[][2] = {{0, 0.01}, {4, 0.05}, {9, 0.1}, {10, 0.1}, {60, 0.05}, {109, 2.467198171342e-05}};
  for (auto& w : want) CHECK(learning_rate(s, 0.1f, int64_t(w[0]), 10, 110) == doctest::Approx(w[1]).epsilon(1e-5));
  CHECK_THROWS_WITH(schedule_kind("linear"), doctest::Contains("--schedule 'linear'"));
}

TEST_CASE("fit reaches high accuracy on separable blobs; same seed gives the same model bitwise") {
  Dataset train = blobs(600, 1), test = blobs(300, 2);
  Graph g1 = make_preset("toy2d", Shape{2}, 3, 7), g2 = make_preset("toy2d", Shape{2}, 3, 7);
  FitOptions o = quiet_opts(4);
  FitResult r1 = fit(g1, train, o);
  FitResult r2 = fit(g2, train, o);
  REQUIRE(r1.history.size() == 4);
  CHECK(r1.history.back().val_acc > 0.95);
  CHECK(r1.history.back().train_loss < r1.history.front().train_loss);
  EvalResult e = evaluate(g1, test, {});
  CHECK(e.accuracy > 0.95);
  CHECK(e.n == 300);
  int total = 0;
  for (auto& row : e.confusion)
    for (int v : row) total += v;
  CHECK(total == 300);
  CHECK(bitwise_equal(weights_of(g1), weights_of(g2)));
  // A different seed gives a different model.
  Graph g3 = make_preset("toy2d", Shape{2}, 3, 7);
  o.seed = 43;
  fit(g3, train, o);
  CHECK(!bitwise_equal(weights_of(g1), weights_of(g3)));
}

TEST_CASE("2 epochs == 1 epoch, interrupted, then --resume for the rest (bitwise)") {
  Dataset train = blobs(300, 3);
  const std::string dir = tmpdir("resume");
  for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adamw}) {
    CAPTURE(optimizer_name(kind));
    FitOptions o = quiet_opts(3);
    o.optimizer.kind = kind;
    o.optimizer.momentum = kind == OptimizerKind::sgd ? 0.9f : 0.f;
    o.schedule.kind = ScheduleKind::cosine;  // depends on the global step: a real test of resume
    o.schedule.warmup = 0.5f;
    o.augment.noise_std = 0.05f;  // uses the data RNG
    // toy2d with a dropout layer, so the graph's RNG matters too.
    const std::string arch = "input(2) dense(32) relu dropout(0.2) dense(32) relu dense(3)";
    Graph full = graph_from_text(arch);
    full.init(5);
    fit(full, train, o);

    Graph part = graph_from_text(arch);
    part.init(5);
    o.out = dir + "/m.safetensors";
    o.on_epoch = [](const EpochStats& s) { return s.epoch < 2; };  // "killed" after epoch 2
    FitResult r1 = fit(part, train, o);
    CHECK(r1.history.size() == 2);
    REQUIRE(fs::exists(dir + "/m.ckpt.safetensors"));
    CHECK(fs::exists(dir + "/m.best.safetensors"));
    CHECK(!bitwise_equal(weights_of(full), weights_of(part)));

    Graph resumed = graph_from_text(arch);
    resumed.init(999);  // whatever: the checkpoint overwrites it
    o.on_epoch = nullptr;
    o.resume = dir + "/m.ckpt.safetensors";
    FitResult r2 = fit(resumed, train, o);
    REQUIRE(r2.history.size() == 1);
    CHECK(r2.history[0].epoch == 3);
    CHECK(bitwise_equal(weights_of(full), weights_of(resumed)));
    // The model file at --out is the resumed run's final model.
    Model m = load_model(o.out);
    CHECK(bitwise_equal(weights_of(full), weights_of(m.graph)));
    // The log has one line per epoch, across the interruption.
    std::ifstream log(dir + "/m.log.jsonl");
    int lines = 0;
    for (std::string l; std::getline(log, l); ++lines) CHECK(nlohmann::json::parse(l)["epoch"] == lines + 1);
    CHECK(lines == 3);

    // Resuming with different settings is refused, naming what differs.
    o.batch = 8;
    Graph again = graph_from_text(arch);
    CHECK_THROWS_WITH(fit(again, train, o), doctest::Contains("batch was 16, now 8"));
    // A checkpoint at or past --epochs has nothing left to train (it ran no epoch and wrote nothing).
    o.batch = 16;
    o.epochs = 3;
    Graph done = graph_from_text(arch);
    CHECK_THROWS_WITH(fit(done, train, o), doctest::Contains("the checkpoint is at epoch 3 and --epochs is 3"));
  }
  fs::remove_all(dir);
}

TEST_CASE("save_every keeps the model of every N-th epoch with its learning rate (TracIn's checkpoints)") {
  Dataset train = blobs(200, 6);
  const std::string dir = tmpdir("every");
  Graph g = make_preset("toy2d", Shape{2}, 3, 7);
  FitOptions o = quiet_opts(5);
  o.optimizer.kind = OptimizerKind::sgd;
  o.optimizer.lr = 0.05f;
  o.schedule.kind = ScheduleKind::cosine;  // a different rate at every epoch's end
  o.out = dir + "/m.safetensors";
  o.save_every = 2;
  std::vector<std::vector<float>> weights;
  std::vector<double> rates;
  o.on_epoch = [&](const EpochStats& s) {
    weights.push_back(weights_of(g));
    rates.push_back(s.lr);
    return true;
  };
  fit(g, train, o);
  for (int e = 1; e <= 5; ++e) CHECK(fs::exists(epoch_path(o.out, e)) == (e % 2 == 0));
  for (int e : {2, 4}) {
    Model m = load_model(epoch_path(o.out, e));
    CHECK(bitwise_equal(weights_of(m.graph), weights[e - 1]));
    // train.lr: the mean rate over the steps since the previous saved model (epochs e−1 and e, 10
    // steps each: 160 training samples in batches of 16), not the last step's rate.
    REQUIRE(rates[e - 1] == learning_rate(o.schedule, o.optimizer.lr, e * 10 - 1, 10, 50));
    double mean = 0;
    for (int step = (e - 2) * 10; step < e * 10; ++step) mean += learning_rate(o.schedule, o.optimizer.lr, step, 10, 50);
    mean /= 20;
    CHECK(std::stod(m.metadata.at("train.lr")) == doctest::Approx(mean).epsilon(1e-12));
    CHECK(std::stod(m.metadata.at("train.lr")) > rates[e - 1]);  // the cosine falls within the interval
    CHECK(m.metadata.at("train.epoch") == std::to_string(e));
    CHECK(m.metadata.at("train.optimizer") == "sgd");
  }
  CHECK(rates[1] != rates[3]);
  FitOptions no_out = quiet_opts(1);
  no_out.save_every = 1;
  CHECK_THROWS_WITH(fit(g, train, no_out), doctest::Contains("--save-every needs --out"));
  fs::remove_all(dir);
}

TEST_CASE("NaN/Inf: training stops with a clear message and leaves earlier files byte-identical") {
  Dataset train = blobs(300, 4);
  const std::string dir = tmpdir("nan");
  FitOptions o = quiet_opts(1);
  o.out = dir + "/m.safetensors";
  Graph g = make_preset("toy2d", Shape{2}, 3, 1);
  fit(g, train, o);
  const std::string model = bytes_of(o.out), ckpt = bytes_of(dir + "/m.ckpt.safetensors"),
                    best = bytes_of(dir + "/m.best.safetensors"), log = bytes_of(dir + "/m.log.jsonl");

  o.optimizer.kind = OptimizerKind::sgd;
  o.optimizer.lr = 1e30f;
  o.epochs = 2;
  Graph g2 = make_preset("toy2d", Shape{2}, 3, 1);
  CHECK_THROWS_WITH_AS(fit(g2, train, o), doctest::Contains("training diverged"), DivergedError);
  CHECK(bytes_of(o.out) == model);
  CHECK(bytes_of(dir + "/m.ckpt.safetensors") == ckpt);
  CHECK(bytes_of(dir + "/m.best.safetensors") == best);
  CHECK(bytes_of(dir + "/m.log.jsonl") == log);
  for (auto& e : fs::directory_iterator(dir)) CHECK(e.path().string().find("glassbox-tmp") == std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("bad checkpoints and mismatched data give clear errors") {
  Dataset train = blobs(100, 5);
  const std::string dir = tmpdir("bad");
  FitOptions o = quiet_opts(1);
  Graph g = make_preset("toy2d", Shape{2}, 3, 1);

  o.resume = dir + "/missing.safetensors";
  CHECK_THROWS_WITH(fit(g, train, o), doctest::Contains("--resume"));

  {  // garbage bytes
    std::ofstream(dir + "/junk.safetensors") << "not a checkpoint at all";
    o.resume = dir + "/junk.safetensors";
    CHECK_THROWS_WITH(fit(g, train, o), doctest::Contains("junk.safetensors"));
  }
  {  // a model file is not a checkpoint
    save_model(dir + "/model.safetensors", g);
    o.resume = dir + "/model.safetensors";
    CHECK_THROWS_WITH(fit(g, train, o), doctest::Contains("not a glassbox checkpoint"));
  }
  {  // a checkpoint of another architecture
    FitOptions w = quiet_opts(1);
    w.out = dir + "/other.safetensors";
    Graph other = graph_from_text("input(2) dense(8) relu dense(3)");
    other.init(1);
    fit(other, train, w);
    o.resume = dir + "/other.ckpt.safetensors";
    CHECK_THROWS_WITH(fit(g, train, o), doctest::Contains("architecture differs"));
    // Truncated checkpoint.
    std::string b = bytes_of(dir + "/other.ckpt.safetensors");
    std::ofstream(dir + "/trunc.safetensors", std::ios::binary) << b.substr(0, b.size() / 2);
    o.resume = dir + "/trunc.safetensors";
    CHECK_THROWS_WITH(fit(other, train, o), doctest::Contains("trunc.safetensors"));
    // An edited best accuracy is named with its value ("bad training metadata (stod)" named neither).
    TensorFile f = read_safetensors(dir + "/other.ckpt.safetensors");
    std::vector<std::pair<std::string, const Tensor*>> tensors;
    for (const auto& [name, t] : f.tensors) tensors.emplace_back(name, &t);
    for (const char* bad : {"", "{", "0.5x"}) {
      f.metadata["train.best_val_acc"] = bad;
      write_safetensors(dir + "/edited.safetensors", tensors, f.metadata);
      o.resume = dir + "/edited.safetensors";
      const std::string expected = "train.best_val_acc '" + std::string(bad) + "' is not a number";
      CHECK_THROWS_WITH(fit(other, train, o), doctest::Contains(expected.c_str()));
    }
    f.metadata["train.best_val_acc"] = "0.5";
    // An architecture that is JSON but not a graph: the message names the checkpoint and the cause.
    f.metadata["glassbox.architecture"] = R"({"layers": [{"type": "no-such-layer"}]})";
    write_safetensors(dir + "/badarch.safetensors", tensors, f.metadata);
    o.resume = dir + "/badarch.safetensors";
    CHECK_THROWS_WITH(fit(other, train, o), doctest::Contains("badarch.safetensors"));
    CHECK_THROWS_WITH(fit(other, train, o), doctest::Contains("not a valid architecture"));
    f.metadata["glassbox.architecture"] = "{";
    write_safetensors(dir + "/badjson.safetensors", tensors, f.metadata);
    o.resume = dir + "/badjson.safetensors";
    CHECK_THROWS_WITH(fit(other, train, o), doctest::Contains("badjson.safetensors"));
    CHECK_THROWS_WITH(fit(other, train, o), doctest::Contains("not valid JSON"));
  }
  o.resume.clear();
  Graph img = make_preset("mlp");
  CHECK_THROWS_WITH(fit(img, train, o), doctest::Contains("[1,28,28]"));
  CHECK_THROWS_WITH(fit(img, train, o), doctest::Contains("[2]"));
  Graph two = make_preset("toy2d", Shape{2}, 2, 1);
  CHECK_THROWS_WITH(fit(two, train, o), doctest::Contains("3 classes"));
  fs::remove_all(dir);
}

TEST_CASE("presets: saturating LeNet variants get Glorot-scaled weights, ReLU ones keep He init") {
  auto max_abs = [](const Graph& g, const std::string& name) {
    float m = 0;
    for (auto& [n, p] : g.named_params())
      if (n == name + ".weight")
        for (size_t i = 0; i < p->value.size(); ++i) m = std::max(m, std::abs(p->value[i]));
    return m;
  };
  // dense1: 400 -> 120. He bound sqrt(2) * sqrt(3/400) = 0.1225; Glorot(tanh) 5/3 * sqrt(6/520) = 0.179;
  // Glorot(sigmoid) sqrt(6/520) = 0.107.
  const float he = std::sqrt(2.f) * std::sqrt(3.f / 400), tanh_b = 5.f / 3 * std::sqrt(6.f / 520),
              sig_b = std::sqrt(6.f / 520);
  float relu = max_abs(make_preset("lenet5"), "dense1"), th = max_abs(make_preset("lenet5-tanh"), "dense1"),
        sg = max_abs(make_preset("lenet5-sigmoid"), "dense1");
  CHECK(relu <= he);
  CHECK(relu > 0.95f * he);
  CHECK(th <= tanh_b);
  CHECK(th > 0.95f * tanh_b);
  CHECK(sg <= sig_b);
  CHECK(sg > 0.95f * sig_b);
}

TEST_CASE("fit applies the schedule per epoch and evaluate reports per-class accuracy") {
  Dataset train = blobs(200, 6);
  Graph g = make_preset("toy2d", Shape{2}, 3, 3);
  FitOptions o = quiet_opts(3);
  o.optimizer.kind = OptimizerKind::sgd;
  o.optimizer.lr = 0.1f;
  o.schedule.kind = ScheduleKind::step;
  o.schedule.step_size = 1;
  o.schedule.gamma = 0.5f;
  FitResult r = fit(g, train, o);
  REQUIRE(r.history.size() == 3);
  CHECK(r.history[0].lr == doctest::Approx(0.1));
  CHECK(r.history[1].lr == doctest::Approx(0.05));
  CHECK(r.history[2].lr == doctest::Approx(0.025));
  EvalResult e = evaluate(g, train, {});
  REQUIRE(e.per_class.size() == 3);
  for (int c = 0; c < 3; ++c) {
    int row = 0;
    for (int v : e.confusion[c]) row += v;
    CHECK(e.per_class[c] == doctest::Approx(double(e.confusion[c][c]) / row));
  }
}

TEST_CASE("a BatchNorm that would see one value per channel in a batch is refused, as PyTorch does") {
  // batch 1 on [N,F] features: the batch variance was 0, every output β, and running_var decayed
  // to 0 without a word.
  Dataset train = blobs(40, 3);
  FitOptions o = quiet_opts(1);
  o.batch = 1;
  Graph flat = graph_from_text("input(2) dense(8) batchnorm relu dense(3)");
  flat.init(3);
  CHECK_THROWS_WITH_AS(fit(flat, train, o),
                       doctest::Contains("batchnorm1: training needs more than one value per channel, and a batch of 1"),
                       std::invalid_argument);
  // A one-sample training split is named as the cause, not --batch.
  Dataset two = blobs(2, 2);
  o.batch = 64;
  o.val_fraction = 0.5f;
  CHECK_THROWS_WITH_AS(fit(flat, two, o), doctest::Contains("the training split holds 1 sample(s)"), std::invalid_argument);
  o.val_fraction = 0.2f;
  o.batch = 2;
  CHECK(fit(flat, train, o).history.size() == 1);
  // Feature maps hold H·W values per channel: a batch of one is fine there.
  Dataset images;
  images.x = Tensor(Shape{8, 1, 4, 4});
  for (size_t i = 0; i < images.x.size(); ++i) images.x[i] = float(i % 7) / 7.f;
  images.y = {0, 1, 0, 1, 0, 1, 0, 1};
  images.class_names = {"a", "b"};
  images.name = "tiny";
  Graph conv = graph_from_text("input(1,4,4) conv(2,k=3,p=1) batchnorm relu gap dense(2)");
  conv.init(4);
  o.batch = 1;
  CHECK(fit(conv, images, o).history.size() == 1);
}
