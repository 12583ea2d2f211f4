// Model files: bitwise round trips, every kind of corrupt file rejected with its reason, atomic
// saves that never damage an existing file, and PyTorch state dicts matched in order.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "engine/architecture.h"
#include "engine/layers.h"
#include "engine/model_file.h"
#include "train/presets.h"

using namespace gb;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int count = 0;
    dir = fs::temp_directory_path() / ("glassbox-test-" + std::to_string(::getpid()) + "-" + std::to_string(count++));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> v;
    for (auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
  }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(out.good());
}

// The 8-byte little-endian header length, the header, the data.
std::string pack(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return out + header + data;
}

struct Unpacked {
  json header;
  std::string data;
};

Unpacked unpack(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  return {json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

std::string load_error(const std::string& path, const json* arch = nullptr) {
  return error_of([&] { load_model(path, arch); });
}

void fill_random(Tensor& t, Rng& r, float lo = -1, float hi = 1) {
  for (size_t i = 0; i < t.size(); ++i) t[i] = lo + (hi - lo) * r.uniform();
}

// Same names, shapes and bit patterns for every parameter (running statistics included).
void expect_bitwise_equal(const Graph& a, const Graph& b) {
  auto pa = a.named_params(), pb = b.named_params();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(pa[i].first);
    CHECK(pa[i].first == pb[i].first);
    REQUIRE(pa[i].second->value.shape() == pb[i].second->value.shape());
    CHECK(std::memcmp(pa[i].second->value.data(), pb[i].second->value.data(), pa[i].second->value.size() * 4) == 0);
  }
}

// A small net with every kind of parameter: dense weight and bias, batchnorm's four.
Graph tiny() {
  Graph g = graph_from_text("input(2) dense(3) batchnorm");
  Rng r(3);
  for (auto& [name, p] : g.named_params()) fill_random(p->value, r, 0.1f, 1.f);
  return g;
}

}  // namespace

TEST_CASE("save/load round trip is bitwise, keeps the architecture, running statistics and metadata") {
  TempDir tmp;
  Rng r(1);
  for (const char* preset : {"lenet5", "resnet8", "cifar-convnet"}) {
    CAPTURE(preset);
    Graph g = make_preset(preset);
    // Non-default running statistics (a training forward, then random values), and awkward bit
    // patterns that only a byte-exact format preserves.
    Tensor x(Shape::batch_of(2, g.input_shape()));
    fill_random(x, r);
    g.forward(x, Mode::train);
    for (auto& [name, p] : g.named_params())
      if (!p->trainable) fill_random(p->value, r, 0.5f, 2.f);
    Tensor& w0 = g.named_params()[0].second->value;
    w0[0] = -0.f;
    w0[1] = std::numeric_limits<float>::denorm_min();
    w0[2] = 1.f / 3;
    const Metadata extra = {{"glassbox.classes", "zero,one,two"}, {"note", "quotes \" and\nnewlines, ünïcode"}};
    const std::string path = tmp.file(std::string(preset) + ".safetensors");
    save_model(path, g, extra);
    Model m = load_model(path);
    CHECK(architecture_json(m.graph) == architecture_json(g));
    expect_bitwise_equal(g, m.graph);
    CHECK(m.metadata.at("glassbox.classes") == "zero,one,two");
    CHECK(m.metadata.at("note") == extra.at("note"));
    CHECK(m.metadata.at("glassbox.format") == "1");
    // The same numbers out (eval mode uses the running statistics).
    Tensor a = g.forward(x).clone();
    const Tensor& b = m.graph.forward(x);
    REQUIRE(a.shape() == b.shape());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
    // Saving the loaded model reproduces the file byte for byte.
    const std::string again = tmp.file("again.safetensors");
    save_model(again, m.graph, extra);
    CHECK(read_file(again) == read_file(path));
  }
  CHECK(tmp.entries().size() == 4);  // three models and the re-save, no temporaries left behind
}

TEST_CASE("corrupt model files are rejected with the reason") {
  TempDir tmp;
  const std::string good = tmp.file("good.safetensors");
  save_model(good, tiny());
  REQUIRE_NOTHROW(load_model(good));
  const std::string bytes = read_file(good);
  const Unpacked base = unpack(bytes);
  const std::string path = tmp.file("bad.safetensors");

  struct Case {
    const char* what;
    std::function<std::string()> make;
    std::vector<std::string> phrases;
  };
  auto with_header = [&](const std::function<void(json&)>& edit) {
    json h = base.header;
    edit(h);
    return pack(h.dump(), base.data);
  };
  const std::string arch = base.header["__metadata__"]["glassbox.architecture"];
  const std::vector<Case> cases = {
      {"shorter than the length field", [&] { return bytes.substr(0, 5); }, {"truncated", "5 bytes"}},
      {"empty", [&] { return std::string(); }, {"truncated"}},
      {"data cut short", [&] { return bytes.substr(0, bytes.size() - 7); }, {"truncated", "out of range"}},
      {"header cut short", [&] { return bytes.substr(0, 8 + 20); }, {"header length", "exceeds the file"}},
      {"header length larger than the file",
       [&] {
         std::string b = bytes;
         const uint64_t n = b.size();  // larger than the file minus the 8-byte field
         for (int i = 0; i < 8; ++i) b[i] = char((n >> (8 * i)) & 0xff);
         return b;
       },
       {"header length", "exceeds the file"}},
      {"header length near 2^64",
       [&] {
         std::string b = bytes;
         for (int i = 0; i < 8; ++i) b[i] = char(0xff);
         return b;
       },
       {"header length"}},
      {"header not JSON", [&] { return pack("{\"dense1.weight\": {\"dtype\": ", base.data); }, {"not valid JSON"}},
      {"header JSON but not an object", [&] { return pack("[1, 2, 3]", base.data); }, {"not a JSON object"}},
      {"offsets out of range",
       [&] {
         return with_header([&](json& h) { h["dense1.bias"]["data_offsets"] = {0, base.data.size() + 4}; });
       },
       {"dense1.bias", "out of range"}},
      {"offsets reversed", [&] { return with_header([](json& h) { h["dense1.bias"]["data_offsets"] = {24, 12}; }); },
       {"dense1.bias", "bad data_offsets"}},
      {"offsets overlapping",
       [&] {
         return with_header([](json& h) { h["batchnorm1.bias"]["data_offsets"] = h["dense1.bias"]["data_offsets"]; });
       },
       {"overlap", "dense1.bias", "batchnorm1.bias"}},
      {"offsets overlapping partly",
       [&] {
         return with_header([](json& h) {
           auto o = h["dense1.weight"]["data_offsets"].get<std::vector<size_t>>();
           h["dense1.bias"]["data_offsets"] = {o[1] - 4, o[1] + 8};  // the weight's last float
         });
       },
       {"overlap"}},
      {"shape disagrees with the offsets", [&] { return with_header([](json& h) { h["dense1.weight"]["shape"] = {3, 3}; }); },
       {"dense1.weight", "needs 36 bytes"}},
      {"negative shape", [&] { return with_header([](json& h) { h["dense1.weight"]["shape"] = {-3, -2}; }); },
       {"dense1.weight", "bad shape"}},
      {"dtype F16", [&] { return with_header([](json& h) { h["dense1.weight"]["dtype"] = "F16"; }); },
       {"dense1.weight", "dtype F16", "F32"}},
      {"dtype I64 on a parameter", [&] { return with_header([](json& h) { h["batchnorm1.running_var"]["dtype"] = "I64"; }); },
       {"batchnorm1.running_var", "dtype I64"}},
      {"tensor without dtype", [&] { return with_header([](json& h) { h["dense1.bias"].erase("dtype"); }); },
       {"dense1.bias", "lacks"}},
      {"malformed offsets", [&] { return with_header([](json& h) { h["dense1.bias"]["data_offsets"] = "0-12"; }); },
       {"dense1.bias", "malformed"}},
      // json's get<> would convert these floats to integers (1.44e94: undefined behaviour; a fuzz find).
      {"float offset", [&] { return with_header([](json& h) { h["dense1.bias"]["data_offsets"] = {0, 1.44e94}; }); },
       {"dense1.bias", "malformed"}},
      {"fractional dimension", [&] { return with_header([](json& h) { h["dense1.bias"]["shape"] = {2.5}; }); },
       {"dense1.bias", "malformed"}},
      {"negative offset", [&] { return with_header([](json& h) { h["dense1.bias"]["data_offsets"] = {-4, 12}; }); },
       {"dense1.bias", "malformed"}},
      {"missing tensor", [&] { return with_header([](json& h) { h.erase("batchnorm1.running_var"); }); },
       {"missing", "batchnorm1.running_var"}},
      {"tensor not in the architecture",
       [&] {
         json h = base.header;
         h["extra.weight"] = {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {base.data.size(), base.data.size() + 4}}};
         return pack(h.dump(), base.data + std::string(4, '\0'));
       },
       {"extra.weight", "not a parameter"}},
      {"metadata not a string map", [&] { return with_header([](json& h) { h["__metadata__"]["x"] = 3; }); },
       {"__metadata__"}},
      {"no architecture", [&] { return with_header([](json& h) { h["__metadata__"].erase("glassbox.architecture"); }); },
       {"no glassbox.architecture"}},
      {"architecture not JSON",
       [&] { return with_header([](json& h) { h["__metadata__"]["glassbox.architecture"] = "{\"input\": [2"; }); },
       {"glassbox.architecture is not valid JSON"}},
      {"architecture with a bad layer",
       [&] {
         return with_header([&](json& h) {
           json a = json::parse(arch);
           a["layers"][0]["out"] = -3;
           h["__metadata__"]["glassbox.architecture"] = a.dump();
         });
       },
       {"bad architecture", "layer 'dense1'"}},
      {"unknown format version", [&] { return with_header([](json& h) { h["__metadata__"]["glassbox.format"] = "2"; }); },
       {"glassbox.format 2"}},
  };
  for (const Case& c : cases) {
    const std::string what = c.what;
    CAPTURE(what);
    write_bytes(path, c.make());
    const std::string msg = load_error(path);
    CAPTURE(msg);
    CHECK(msg.rfind(path + ": ", 0) == 0);  // every message starts with the file
    for (const std::string& phrase : c.phrases) CHECK_MESSAGE(msg.find(phrase) != std::string::npos, phrase);
  }

  // A tensor whose shape does not fit the architecture (the file itself is well formed).
  Graph g = tiny();
  Tensor wrong(Shape{4});
  std::vector<std::pair<std::string, const Tensor*>> ts;
  for (auto& [name, p] : g.named_params()) ts.emplace_back(name, name == "dense1.bias" ? &wrong : &p->value);
  write_safetensors(path, ts, base.header["__metadata__"].get<Metadata>());
  std::string msg = load_error(path);
  CHECK(msg.find("dense1.bias") != std::string::npos);
  CHECK(msg.find("[4]") != std::string::npos);
  CHECK(msg.find("needs [3]") != std::string::npos);

  CHECK(load_error(tmp.file("absent.safetensors")).find("cannot open") != std::string::npos);
}

TEST_CASE("saving over a model is atomic: a failed save leaves the old file intact") {
  TempDir tmp;
  const std::string path = tmp.file("model.safetensors");
  Graph a = make_preset("lenet5", {}, 0, 1), b = make_preset("lenet5", {}, 0, 2);
  save_model(path, a);
  const std::string original = read_file(path);

  SUBCASE("the temporary file cannot be created") {
    // A directory squatting on the temporary name makes the write fail even for root.
    const std::string squat = path + ".glassbox-tmp" + std::to_string(::getpid());
    fs::create_directory(squat);
    const std::string msg = error_of([&] { save_model(path, b); });
    CHECK(msg.find("cannot write") != std::string::npos);
    fs::remove(squat);
  }
  SUBCASE("the disk fills up in the middle of the write") {
    // A file-size limit makes write() fail part way through, as a full disk would.
    struct rlimit old {};
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old;
    small.rlim_cur = 64 * 1024;  // lenet5 is ~247 KB
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    const std::string msg = error_of([&] { save_model(path, b); });
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    CHECK(msg.find("write failed") != std::string::npos);
    CHECK(msg.find("unchanged") != std::string::npos);
  }
  SUBCASE("the target directory does not exist") {
    const std::string msg = error_of([&] { save_model(tmp.file("no/such/dir/model.safetensors"), b); });
    CHECK(msg.find("cannot write") != std::string::npos);
  }
  CHECK(read_file(path) == original);
  expect_bitwise_equal(load_model(path).graph, a);
  CHECK(tmp.entries() == std::vector<std::string>{"model.safetensors"});  // no temporary left behind

  // A successful save replaces the file.
  save_model(path, b);
  expect_bitwise_equal(load_model(path).graph, b);
  CHECK(tmp.entries() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("PyTorch-style names are matched in natural order, weight before bias") {
  TempDir tmp;
  const std::string path = tmp.file("torch.safetensors");
  SUBCASE("features.10 follows features.3") {
    const json arch = parse_architecture("input(6) dense(5,bias=false) dense(4) relu dense(4) dense(4,bias=false)");
    // Natural order: classifier, features.0 (weight, bias), features.3 (weight, bias), features.10.
    // features.3 and features.10 have the same shape, so only their values tell the order apart.
    std::vector<std::pair<std::string, Tensor>> file = {
        {"features.10.weight", Tensor({4, 4})}, {"features.3.bias", Tensor({4})},  {"features.0.weight", Tensor({4, 5})},
        {"classifier.weight", Tensor({5, 6})},  {"features.3.weight", Tensor({4, 4})}, {"features.0.bias", Tensor({4})},
    };
    for (size_t t = 0; t < file.size(); ++t)
      for (size_t i = 0; i < file[t].second.size(); ++i) file[t].second[i] = float(100 * t + i);
    std::vector<std::pair<std::string, const Tensor*>> ts;
    for (auto& [name, t] : file) ts.emplace_back(name, &t);
    write_safetensors(path, ts, {});
    CHECK(load_error(path).find("no glassbox.architecture") != std::string::npos);  // needs the architecture
    Model m = load_model(path, &arch);
    const std::map<std::string, std::string> expect = {
        {"dense1.weight", "classifier.weight"}, {"dense2.weight", "features.0.weight"},
        {"dense2.bias", "features.0.bias"},     {"dense3.weight", "features.3.weight"},
        {"dense3.bias", "features.3.bias"},     {"dense4.weight", "features.10.weight"},
    };
    REQUIRE(m.graph.named_params().size() == expect.size());
    for (const auto& named : m.graph.named_params()) {  // (clang 14 cannot capture structured bindings)
      const std::string& name = named.first;
      const Param* p = named.second;
      CAPTURE(name);
      const Tensor* src = nullptr;
      for (auto& [fname, t] : file)
        if (fname == expect.at(name)) src = &t;
      REQUIRE(src);
      REQUIRE(p->value.shape() == src->shape());
      CHECK(std::memcmp(p->value.data(), src->data(), src->size() * 4) == 0);
    }
  }
  SUBCASE("a conv/batchnorm state dict with PyTorch's I64 num_batches_tracked") {
    const json arch = parse_architecture("input(1,6,6) conv(3,k=3) batchnorm relu flatten dense(2)");
    Rng r(4);
    struct T {
      std::string name;
      Shape shape;
      Tensor value{};
    };
    std::vector<T> ts = {{"features.0.weight", {3, 1, 3, 3}}, {"features.0.bias", {3}},
                         {"features.1.weight", {3}},          {"features.1.bias", {3}},
                         {"features.1.running_mean", {3}},    {"features.1.running_var", {3}},
                         {"head.weight", {2, 48}},            {"head.bias", {2}}};
    // Written by hand, as safetensors.torch.save_file would: header keys sorted, the I64 counter
    // first in the data (larger alignment), then the F32 tensors.
    json header = json::object();
    std::string data(8, '\0');
    data[0] = 7;  // num_batches_tracked = 7
    header["features.1.num_batches_tracked"] = {{"dtype", "I64"}, {"shape", json::array()}, {"data_offsets", {0, 8}}};
    for (T& t : ts) {
      t.value = Tensor(t.shape);
      fill_random(t.value, r);
      header[t.name] = {{"dtype", "F32"}, {"shape", t.shape.vec()}, {"data_offsets", {data.size(), data.size() + t.value.size() * 4}}};
      data.append(reinterpret_cast<const char*>(t.value.data()), t.value.size() * 4);
    }
    write_bytes(path, pack(header.dump(), data));
    TensorFile f = read_safetensors(path);
    CHECK(f.tensors.count("features.1.num_batches_tracked") == 0);  // skipped, not refused
    CHECK(f.tensors.size() == ts.size());
    Model m = load_model(path, &arch);
    auto params = m.graph.named_params();
    REQUIRE(params.size() == ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      CAPTURE(params[i].first);
      CAPTURE(ts[i].name);
      REQUIRE(params[i].second->value.shape() == ts[i].shape);
      CHECK(std::memcmp(params[i].second->value.data(), ts[i].value.data(), ts[i].value.size() * 4) == 0);
    }
  }
  SUBCASE("shapes that do not fit in order are named") {
    const json arch = parse_architecture("input(3) dense(2) dense(4)");
    Tensor w1({2, 3}), b1({2}), w2({4, 3}), b2({4});  // w2 should be [4,2]
    write_safetensors(path, {{"0.weight", &w1}, {"0.bias", &b1}, {"1.weight", &w2}, {"1.bias", &b2}}, {});
    const std::string msg = load_error(path, &arch);
    CHECK(msg.find("'1.weight' [4,3] does not fit parameter 'dense2.weight' [4,2]") != std::string::npos);
    CHECK(msg.find("matched in order") != std::string::npos);
  }
}
