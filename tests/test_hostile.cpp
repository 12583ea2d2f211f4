// Hostile inputs (issue 13): one regression case per root cause. Sizes are computed in 64 bits and
// checked (no wrapped counts, no int overflow in shape arithmetic, a memory budget instead of
// bad_alloc); readers check declared sizes against the bytes present; values are checked for
// finiteness and range; outputs go through one checked atomic writer. The CLI cases run the built
// command (GLASSBOX, set by Meson) and check the exit status and that the message names the flag,
// file or value.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/architecture.h"
#include "engine/argmax.h"
#include "engine/finite.h"
#include "engine/layers.h"
#include "engine/loss.h"
#include "engine/model_file.h"
#include "engine/rng.h"
#include "engine/sizes.h"
#include "explain/attribution/explain.h"
#include "explain/common/params.h"

using namespace gb;
namespace fs = std::filesystem;

namespace {

struct Scratch {
  fs::path dir;
  Scratch() {
    dir = fs::temp_directory_path() / ("glassbox_hostile_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void put(const std::string& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The message of what f throws (any std::exception), or "" when it does not throw.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A .npy v1.0 file: header dict, padded to 64 bytes, then the payload.
std::string npy(const std::string& descr, const std::string& shape, const std::string& payload) {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  h.append((64 - (10 + h.size() + 1) % 64) % 64, ' ');
  h += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += char(h.size() & 0xff);
  out += char(h.size() >> 8);
  return out + h + payload;
}

std::string floats(std::initializer_list<float> v) {
  return std::string(reinterpret_cast<const char*>(std::data(v)), v.size() * sizeof(float));
}

Graph small_dense() {
  Graph g = graph_from_text("input(2) dense(3) relu dense(2)");
  g.init(1);
  return g;
}

struct Run {
  int status;
  std::string out, err;
};

// `glassbox ARGS` (no shell metacharacters besides the quoting done here) with one thread.
Run glassbox(const Scratch& s, const std::string& args) {
  const char* bin = std::getenv("GLASSBOX");
  REQUIRE_MESSAGE(bin, "GLASSBOX is not set (run the tests through meson test)");
  const std::string out = s / "stdout.txt", err = s / "stderr.txt";
  const std::string cmd = std::string(bin) + " --threads 1 " + args + " >" + out + " 2>" + err;
  const int raw = std::system(cmd.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
}

}  // namespace

// ---- sizes -------------------------------------------------------------------------------------

TEST_CASE("hostile: size arithmetic is checked, never wrapped or truncated") {
  CHECK(count_of({2, 3, 4}, "x") == 24);
  CHECK(count_of({}, "x") == 1);
  CHECK(count_of({5, 0, 7}, "x") == 0);
  // 65536^4 = 2^64 wraps to 0 in size_t arithmetic.
  CHECK_THROWS_AS(count_of({65536, 65536, 65536, 65536}, "shape"), SizeError);
  CHECK(contains(error_of([] { count_of({65536, 65536, 65536, 65536}, "shape"); }), "shape"));
  CHECK_THROWS_AS(count_of({-1, 2}, "x"), SizeError);
  CHECK(to_int(INT32_MAX, "x") == INT32_MAX);
  CHECK(contains(error_of([] { to_int(int64_t(1) << 32 | 6, "dense 'out'"); }), "dense 'out' = 4294967302"));
  CHECK_THROWS_AS(Shape({65536, 65536, 65536, 65536}), ShapeError);
  CHECK_THROWS_AS(Shape({2, -3}), ShapeError);
  CHECK(Shape({46341, 46341}).numel() == size_t(46341) * 46341);  // beyond int, fine in 64 bits
}

TEST_CASE("hostile: the empty tensor has batch 0, and zero-element parts copy nothing") {
  Tensor empty;
  CHECK(empty.batch() == 0);  // was 1: regions --plane without --data read a sample that was not there
  CHECK(empty.size() == 0);
  Tensor a = Tensor::from({2, 2}, {1, 2, 3, 4});
  Tensor none(Shape{0, 2});
  Tensor c = concat({none, a, none});  // memcpy from a null pointer was UB
  CHECK(c.shape() == Shape({2, 2}));
  CHECK(c[3] == 4);
  none.fill(1.f);
  CHECK(none.clone().size() == 0);
}

TEST_CASE("hostile: the memory budget names what needs how much instead of bad_alloc") {
  const uint64_t before = memory_limit();
  set_memory_limit(uint64_t(64) << 20);
  const std::string e = error_of([] { Tensor t(Shape{100000, 1000}); });
  CHECK(contains(e, "[100000,1000]"));
  CHECK(contains(e, "381.5 MB"));
  CHECK(contains(e, "memory limit of 64.0 MB"));
  // A model declaring dense(2000000000): the layer is named.
  const std::string d = error_of([] { graph_from_text("input(1000) dense(2000000000)"); });
  CHECK(contains(d, "dense1"));
  CHECK(contains(d, "memory limit"));
  Tensor ok(Shape{1000, 1000});  // 4 MB: within the budget
  CHECK(ok.size() == 1000000);
  // Every tensor is held to the budget: below 64 MiB none was checked (--max-memory 1M let a 31 MB
  // weight matrix through).
  set_memory_limit(uint64_t(1) << 20);
  CHECK(contains(error_of([] { Tensor t(Shape{10000, 784}); }), "a tensor of shape [10000,784] needs 29.9 MB"));
  Tensor small(Shape{100, 100});
  CHECK(small.size() == 10000);
  {  // A model file's tensor past the budget: the message names the file and the tensor.
    set_memory_limit(before);
    const std::string path = (std::filesystem::temp_directory_path() / "gb_hostile_budget.safetensors").string();
    const Tensor w(Shape{600, 600});
    write_safetensors(path, {{"w", &w}}, {});
    set_memory_limit(uint64_t(1) << 20);
    const std::string m = error_of([&] { read_safetensors(path); });
    CHECK_MESSAGE(contains(m, path + ": tensor 'w': a tensor of shape [600,600] needs 1.4 MB"), m);
    std::filesystem::remove(path);
  }
  set_memory_limit(before);
  CHECK(parse_bytes("512M", "x") == uint64_t(512) << 20);
  CHECK(parse_bytes("2G", "x") == uint64_t(2) << 30);
  CHECK_THROWS_AS(parse_bytes("lots", "--max-memory"), SizeError);
  CHECK_THROWS_AS(parse_bytes("-5G", "--max-memory"), SizeError);
  CHECK_THROWS_AS(parse_bytes("nan", "--max-memory"), SizeError);
  CHECK(parse_bytes("1", "x") == 1);
  for (const char* below_one_byte : {"0.5", "0", "0.0001k", ""})  // 0.5 became 0: "not set", the default
    CHECK_THROWS_AS(parse_bytes(below_one_byte, "--max-memory"), SizeError);
}

TEST_CASE("hostile: architecture integers beyond int and shape arithmetic overflow are errors") {
  // dense(4294967306) became dense(10).
  CHECK(contains(error_of([] { parse_architecture("input(2) dense(4294967306)"); }), "a positive integer for 'out' (at most 2147483647)"));
  json arch = parse_architecture("input(2) dense(3)");
  arch["layers"][0]["out"] = (int64_t(1) << 32) + 6;  // became 6
  CHECK(contains(error_of([&] { graph_from_json(arch); }), "'out' = 4294967302 is out of range"));
  arch["layers"][0]["out"] = uint64_t(1) << 63;
  CHECK(contains(error_of([&] { graph_from_json(arch); }), "out of range"));
  arch = parse_architecture("input(2) dense(3)");
  arch["layers"][0]["name"] = 5;  // was nlohmann's "type must be string", no layer named
  CHECK(contains(error_of([&] { graph_from_json(arch); }), "architecture layer 0 (dense): \"name\" must be a string, got 5"));
  arch = parse_architecture("input(2) dense(3)");
  arch["input"] = {int64_t(1) << 32};
  CHECK(contains(error_of([&] { graph_from_json(arch); }), "\"input\" dimension 4294967296"));
  // conv p=2000000000: 28 + 2p overflowed int.
  CHECK(contains(error_of([] { graph_from_text("input(1,28,28) conv(2,k=3,p=2000000000)"); }),
                 "output height"));
  CHECK(contains(error_of([] { graph_from_text("input(1,28,28) upsample(100000000)"); }),
                 "upsample"));
  CHECK(contains(error_of([] { graph_from_text("input(1,4,4) convt(1,k=3,s=2000000000)"); }),
                 "convt"));
  // The im2col geometry counts taps and positions in int.
  CHECK(contains(error_of([] { graph_from_text("input(3000,8,8) conv(1,k=1000,p=500)"); }),
                 "kernel taps"));
  CHECK(contains(error_of([] { graph_from_text("input(1,50000,50000) conv(1,k=1)"); }),
                 "output positions"));
  // convt s=2000 on 28x28: 54003 x 54003 positions wrapped to a negative count (no bias added).
  CHECK(contains(error_of([] { graph_from_text("input(1,28,28) convt(1,k=3,s=2000)"); }),
                 "output positions (height x width)"));
  {  // its initialization's s² (s = 100000) overflowed int (UBSan); a 1x1 input keeps the output small
    Graph t = graph_from_text("input(1,1,1) convt(2,k=3,s=100000)");
    t.init(1);
    CHECK(t.shape(t.size() - 1, 1) == Shape({1, 2, 3, 3}));
  }
  CHECK(contains(error_of([] { graph_from_text("input(1,8,8) maxpool(3,p=2000000000)"); }),
                 "padding must be between 0 and k/2"));
  // The same layers with sane values still build.
  Graph g = graph_from_text("input(1,28,28) conv(2,k=3,p=1) maxpool(2,p=1) upsample(2)");
  CHECK(g.shape(g.size() - 1, 1) == Shape({1, 2, 30, 30}));
}

TEST_CASE("hostile: an add layer with fewer than two inputs is refused (it segfaulted)") {
  json arch = parse_architecture("input(2) dense(2) relu add(dense1)");
  arch["layers"][2]["inputs"] = json::array();
  CHECK(contains(error_of([&] { graph_from_json(arch); }), "add: needs at least 2 inputs, got 0"));
  arch["layers"][2]["inputs"] = {"relu1"};
  CHECK(contains(error_of([&] { graph_from_json(arch); }), "got 1"));
  arch["layers"][2]["inputs"] = "relu1";
  CHECK(contains(error_of([&] { graph_from_json(arch); }), "must be a list"));
}

TEST_CASE("hostile: non-finite or out-of-range layer hyper-parameters are refused before training") {
  // Each was saved as JSON null, and the model could never be loaded.
  for (const char* text : {"input(2) softplus(1,threshold=inf) dense(2)", "input(2) leakyrelu(inf) dense(2)",
                           "input(1,4,4) batchnorm(nan,nan) flatten dense(2)", "input(2) leakyrelu(1e39) dense(2)",
                           "input(2) softplus(-nan) dense(2)"}) {
    CAPTURE(text);
    CHECK(contains(error_of([&] { parse_architecture(text); }), "(finite, within float range)"));
  }
  json arch = parse_architecture("input(2) leakyrelu(0.1) dense(2)");
  arch["layers"][0]["slope"] = nullptr;
  CHECK(contains(error_of([&] { graph_from_json(arch); }), "must be a number"));
  arch["layers"][0]["slope"] = 1e300;  // finite as a double, infinite as the float it is stored in
  CHECK(contains(error_of([&] { graph_from_json(arch); }), "finite number"));
  CHECK(contains(error_of([] { graph_from_text("input(2) softplus(0) dense(2)"); }), "beta must be > 0"));
  CHECK(contains(error_of([] { graph_from_text("input(1,2,2) batchnorm(0)"); }), "eps must be > 0"));
  CHECK(contains(error_of([] { graph_from_text("input(1,2,2) batchnorm(1e-5,2)"); }), "momentum"));
}

// ---- readers -----------------------------------------------------------------------------------

TEST_CASE("hostile: .npy shapes whose count wraps, and zero-element arrays, are refused") {
  Scratch s;
  // 128 bytes claiming (65536,65536,65536,65536): the count wrapped to 0 and the reader accepted it.
  const std::string wrap = npy("<f4", "(65536, 65536, 65536, 65536)", "");
  put(s / "wrap.npy", wrap);
  CHECK(contains(error_of([&] { read_npy(s / "wrap.npy"); }), "wrap.npy: bad .npy header"));
  CHECK(contains(error_of([&] { read_npy(s / "wrap.npy"); }), "overflows"));
  put(s / "empty.npy", npy("<f4", "(0, 3)", ""));
  CHECK(read_npy(s / "empty.npy").count() == 0);  // a valid file...
  CHECK(contains(error_of([&] { read_npy_f32(s / "empty.npy"); }), "has no elements"));  // ...but no input
  put(s / "short.npy", npy("<f4", "(2, 2)", floats({1, 2, 3})));
  CHECK(contains(error_of([&] { read_npy(s / "short.npy"); }), "truncated"));
  put(s / "ok.npy", npy("<f4", "(2, 2)", floats({1, 2, 3, 4})));
  CHECK(read_npy_f32(s / "ok.npy")[3] == 4);
}

TEST_CASE("hostile: safetensors offsets must cover the data section exactly") {
  Scratch s;
  Graph g = small_dense();
  save_model(s / "m.safetensors", g);
  const std::string good = slurp(s / "m.safetensors");
  CHECK_NOTHROW(load_model(s / "m.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  json h = json::parse(good.substr(8, n));
  const std::string data = good.substr(8 + n);
  // The file with the header text padded by `pad` spaces and its length given as `len_delta` off.
  auto file = [](const std::string& header, const std::string& bytes, size_t pad, int len_delta) {
    std::string hs = header;
    hs.append(pad + (8 - (hs.size() + pad) % 8) % 8, ' ');
    const uint64_t len = hs.size() + len_delta;
    std::string out(8, '\0');
    std::memcpy(out.data(), &len, 8);
    return out + hs + bytes;
  };
  put(s / "repadded.safetensors", file(h.dump(), data, 8, 0));
  CHECK_NOTHROW(load_model(s / "repadded.safetensors"));
  // Header length one byte short: the JSON still parses (the last header byte is padding) and every
  // weight was read one byte off, giving NaN probabilities with exit 0.
  put(s / "short_header.safetensors", file(h.dump(), data, 8, -1));
  const std::string e = error_of([&] { load_model(s / "short_header.safetensors"); });
  CHECK(contains(e, "short_header.safetensors"));
  CHECK(contains(e, "data_offsets do not cover the data"));
  // Trailing bytes after the last tensor, and a hole between tensors.
  put(s / "trailing.safetensors", good + "junk");
  CHECK(contains(error_of([&] { read_safetensors(s / "trailing.safetensors"); }), "4 bytes in the data section after"));
  json holed = h;
  for (auto& [k, v] : holed.items())
    if (k != "__metadata__")
      for (int i = 0; i < 2; ++i) v["data_offsets"][i] = v["data_offsets"][i].get<uint64_t>() + 4;
  put(s / "hole.safetensors", file(holed.dump(), std::string(4, '\0') + data, 0, 0));
  CHECK(contains(error_of([&] { read_safetensors(s / "hole.safetensors"); }), "a hole of 4 bytes"));
  // A stream has no size to check: its first bytes must give a header length (/dev/zero was read
  // until memory ran out), and a model that comes through a pipe loads as from its file.
  CHECK(contains(error_of([&] { load_model("/dev/zero"); }), "/dev/zero: is not a safetensors file"));
  REQUIRE(good.size() < 65536);  // fits the pipe's buffer: written before it is read
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  REQUIRE(write(fds[1], good.data(), good.size()) == ssize_t(good.size()));
  close(fds[1]);
  const Model piped = load_model("/dev/fd/" + std::to_string(fds[0]));
  close(fds[0]);
  CHECK(piped.graph.named_params().size() == g.named_params().size());
  // After its header a stream is read for the data section it describes and one byte more: bytes
  // beyond are named (an endless stream is not read to its end).
  REQUIRE(pipe(fds) == 0);
  const std::string longer = good + std::string(1000, 'x');
  REQUIRE(write(fds[1], longer.data(), longer.size()) == ssize_t(longer.size()));
  close(fds[1]);
  const std::string trailing = error_of([&] { load_model("/dev/fd/" + std::to_string(fds[0])); });
  close(fds[0]);
  CHECK_MESSAGE(contains(trailing, "in the data section after"), trailing);
  // A file is not read whole: 6 GB after the last tensor (a sparse file: no disk used) are named
  // from the file's size (they were read into memory first: bad_alloc, naming no file).
  {
    std::filesystem::copy_file(s / "m.safetensors", s / "huge.safetensors");
    std::error_code ec;
    std::filesystem::resize_file(s / "huge.safetensors", good.size() + (uint64_t(6) << 30), ec);
    if (!ec) {
      const std::string huge = error_of([&] { load_model(s / "huge.safetensors"); });
      CHECK_MESSAGE(contains(huge, "huge.safetensors: " + std::to_string(uint64_t(6) << 30) + " bytes in the data section after"),
                    huge);
    }
  }
  // A tensor named twice (the parser kept the last).
  std::string twice = h.dump();
  const std::string first = h.begin().key() == "__metadata__" ? std::next(h.begin()).key() : h.begin().key();
  twice.insert(1, "\"" + first + "\":" + h[first].dump() + ",");
  // Tensors named with digit runs past 64 bits are matched by position in natural order, as any
  // other names (std::stol threw: "error: stol").
  {
    const TensorFile f = read_safetensors(s / "m.safetensors");
    const auto params = g.named_params();
    std::vector<std::string> names;
    for (size_t i = 0; i < params.size(); ++i) names.push_back("f." + std::to_string(i + 1) + "0000000000000000000000.w");
    std::vector<std::pair<std::string, const Tensor*>> renamed;
    for (size_t i = 0; i < params.size(); ++i) renamed.emplace_back(names[i], &f.tensors.at(params[i].first));
    write_safetensors(s / "digits.safetensors", renamed, f.metadata);
    const Model m = load_model(s / "digits.safetensors");
    const auto loaded = m.graph.named_params();
    for (size_t i = 0; i < params.size(); ++i)
      CHECK(std::equal(loaded[i].second->value.data(), loaded[i].second->value.data() + loaded[i].second->value.size(),
                       params[i].second->value.data()));
  }
  put(s / "twice.safetensors", file(twice, data, 0, 0));
  CHECK(contains(error_of([&] { read_safetensors(s / "twice.safetensors"); }), "header names '" + first + "' twice"));
}

TEST_CASE("hostile: a checkpoint given as a model says so") {
  Scratch s;
  Graph g = small_dense();
  save_model(s / "m.ckpt.safetensors", g, {{"glassbox.checkpoint", "1"}});
  const std::string e = error_of([&] { load_model(s / "m.ckpt.safetensors"); });
  CHECK(contains(e, "training checkpoint"));
  CHECK(contains(e, "--resume"));
}

TEST_CASE("hostile: image headers are checked against the file and a size limit") {
  Scratch s;
  put(s / "ok.pgm", std::string("P5\n3 2\n255\n") + std::string("\x00\x10\x20\x30\x40\x50", 6));
  Image ok = read_image(s / "ok.pgm");
  CHECK(ok.w == 3);
  CHECK(ok.pixels[5] == 0x50);
  // A truncated binary PGM decoded uninitialized memory (different predictions each run).
  put(s / "short.pgm", std::string("P5\n# comment\n30 20\n255\n") + std::string(100, '\x7f'));
  const std::string e = error_of([&] { read_image(s / "short.pgm"); });
  CHECK(contains(e, "short.pgm: truncated"));
  CHECK(contains(e, "600 bytes"));
  // stb's own header parser overflowed int on a 36-digit width (found by fuzz_image).
  put(s / "long.ppm", "P6 333333333333333333333333333333333332 2 255\n" + std::string(12, '\0'));
  CHECK(contains(error_of([&] { read_image(s / "long.ppm"); }), "long.ppm: bad PNM header: width too large"));
  // stb copied an empty first IDAT chunk from a null buffer (found by fuzz_image).
  const std::string png_sig = "\x89PNG\r\n\x1a\n";
  const std::string ihdr = std::string("\0\0\0\x0dIHDR\0\0\0\x02\0\0\0\x02\x08\0\0\0\0", 21) + std::string(4, '\0');
  put(s / "empty_idat.png", png_sig + ihdr + std::string("\0\0\0\0IDAT", 8) + std::string(4, '\0'));
  CHECK(contains(error_of([&] { read_image(s / "empty_idat.png"); }), "first IDAT chunk is empty"));
  // A 100-byte PNG whose IDAT claimed 2^30 bytes made stb allocate 2 GB (found by fuzz_image).
  put(s / "claims.png", png_sig + ihdr + std::string("\x40\0\0\0IDAT", 8) + std::string(20, '\0'));
  CHECK(contains(error_of([&] { read_image(s / "claims.png"); }), "truncated PNG: chunk 'IDAT' declares 1073741824 bytes"));
  // Debian's stb_image wrote past its 256-entry Huffman tables for a DHT segment declaring more
  // codes (found by fuzz_image); a segment longer than the file is refused too.
  put(s / "dht_long.jpg", std::string("\xFF\xD8\xFF\xC4\xC4\xC4", 6) + std::string(121, '\0') + "\xFF\x20");
  CHECK(contains(error_of([&] { read_image(s / "dht_long.jpg"); }), "dht_long.jpg: truncated JPEG"));
  put(s / "dht_codes.jpg", std::string("\xFF\xD8\xFF\xC4\x00\x13\x00", 7) + std::string(16, '\x20') + "\xFF\xD9");
  CHECK(contains(error_of([&] { read_image(s / "dht_codes.jpg"); }), "dht_codes.jpg: bad JPEG Huffman table: 512 codes"));
  // stb also takes fill bytes before SOI, padding between segments and a marker inside scan data.
  const std::string dht = std::string("\xFF\xC4\x00\x13\x00", 5) + std::string(16, '\x20');
  put(s / "dht_fill.jpg", std::string("\xFF\xFF\xFF\xD8", 4) + dht);
  CHECK(contains(error_of([&] { read_image(s / "dht_fill.jpg"); }), "dht_fill.jpg: bad JPEG Huffman table: 512 codes"));
  put(s / "dht_pad.jpg", std::string("\xFF\xD8\xFF\xFE\x00\x02\x20\x20", 8) + dht);
  CHECK(contains(error_of([&] { read_image(s / "dht_pad.jpg"); }), "dht_pad.jpg: bad JPEG Huffman table: 512 codes"));
  put(s / "dht_scan.jpg", std::string("\xFF\xD8\xFF\xDA\x00\x02\x11\x22\xFF\x00", 10) + dht);
  CHECK(contains(error_of([&] { read_image(s / "dht_scan.jpg"); }), "dht_scan.jpg: bad JPEG Huffman table: 512 codes"));
  put(s / "zero.pgm", "P5 0 2 255\n");
  CHECK(contains(error_of([&] { read_image(s / "zero.pgm"); }), "bad PNM header: 0x2 pixels"));
  put(s / "short.ppm", std::string("P6 4 4 255\n") + std::string(4 * 4 * 3 - 1, '\0'));
  CHECK(contains(error_of([&] { read_image(s / "short.ppm"); }), "truncated"));
  // A 66-byte BMP header claiming 20000x20000 allocated 2.7 GB and predicted.
  auto bmp = [](int32_t w, int32_t h, size_t data) {
    std::string b(54, '\0');
    auto le = [&](size_t at, uint32_t v, int n) {
      for (int i = 0; i < n; ++i) b[at + i] = char((v >> (8 * i)) & 0xff);
    };
    b[0] = 'B', b[1] = 'M';
    le(2, uint32_t(54 + data), 4), le(10, 54, 4), le(14, 40, 4), le(18, uint32_t(w), 4), le(22, uint32_t(h), 4);
    le(26, 1, 2), le(28, 24, 2);
    return b + std::string(data, '\x40');
  };
  put(s / "huge.bmp", bmp(20000, 20000, 12));
  CHECK(contains(error_of([&] { read_image(s / "huge.bmp"); }), "larger than the limit"));
  put(s / "short.bmp", bmp(100, 100, 100));
  CHECK(contains(error_of([&] { read_image(s / "short.bmp"); }), "short.bmp: truncated"));
  std::string odd = bmp(100, 100, 12);
  odd[30] = odd[31] = odd[32] = odd[33] = '\xff';  // compression 0xFFFFFFFF: stb reads it as uncompressed
  put(s / "odd.bmp", odd);
  CHECK(contains(error_of([&] { read_image(s / "odd.bmp"); }), "odd.bmp: truncated"));
  put(s / "ok.bmp", bmp(2, 2, 16));
  CHECK(read_image(s / "ok.bmp").w == 2);
}

// ---- values ------------------------------------------------------------------------------------

TEST_CASE("hostile: method parameters are finite and within their declared range") {
  explain::MethodInfo info{"m", "test", {{"steps", "50", "", 1, 1000}, {"sigma", "", "", 0, 10}, {"free", "0", ""}}, ""};
  auto read = [&](explain::Params p, const std::string& key) {
    explain::ParamReader r(p, info);
    return key == "steps" ? double(r.integer(key)) : r.number(key);
  };
  CHECK(read({}, "steps") == 50);
  CHECK(read({{"steps", "1000"}}, "steps") == 1000);
  CHECK(contains(error_of([&] { read({{"steps", "1001"}}, "steps"); }), "m: --param steps=1001 is out of range [1, 1000]"));
  CHECK(contains(error_of([&] { read({{"steps", "0"}}, "steps"); }), "out of range"));
  CHECK(contains(error_of([&] { read({{"sigma", "-1"}}, "sigma"); }), "sigma=-1 is out of range [0, 10]"));
  CHECK(contains(error_of([&] { read({{"sigma", "nan"}}, "sigma"); }), "not finite"));
  CHECK(contains(error_of([&] { read({{"free", "inf"}}, "free"); }), "not finite"));
  CHECK(contains(error_of([&] { read({{"steps", "1e300"}}, "steps"); }), "out of range"));
  CHECK(read({{"free", "-1e30"}}, "free") == -1e30);
  // Finite as a double but inf as the float32 every method computes in: refused, not an all-NaN result.
  CHECK(contains(error_of([&] { read({{"free", "-1e308"}}, "free"); }), "free=-1e308 is beyond float32's range"));
  CHECK(read({{"free", "3e38"}}, "free") == 3e38);
  CHECK(contains(explain::list_text({info}), "[1, 1000]"));
  // The registry's methods declare their maxima: these hung or ran for hours.
  Graph g = small_dense();
  Tensor x = Tensor::from({1, 2}, {0.5f, -0.5f});
  const std::vector<int> target{0};
  CHECK(contains(error_of([&] { explain::explain(g, x, target, "integrated-gradients", {{"n_steps", "100000000"}}); }),
                 "n_steps=100000000 is out of range [1, 100000]"));
  CHECK(contains(error_of([&] { explain::explain(g, x, target, "smoothgrad", {{"stdev", "-1"}}); }), "stdev=-1"));
  CHECK(contains(error_of([&] { explain::explain(g, x, target, "smoothgrad", {{"level", "nan"}}); }), "level=nan"));
  CHECK(contains(error_of([&] { explain::explain(g, x, target, "integrated-gradients", {{"baseline", "nan"}}); }),
                 "baseline=nan is not finite"));
  CHECK(contains(error_of([&] { explain::explain(g, x, target, "integrated-gradients", {{"baseline", "1e308"}}); }),
                 "baseline=1e308 is beyond float32's range"));
  CHECK(contains(explain::list_text(explain::methods()), "n_steps=50  integration steps (not used by method=exact) [1, 100000]"));
}

TEST_CASE("hostile: non-finite inputs and weights are refused before computing, unless allowed") {
  Tensor x = Tensor::from({2, 3}, {1, 2, 3, 4, NAN, 6});
  const std::string e = error_of([&] { check_finite(x, "x.npy"); });
  CHECK(contains(e, "x.npy: NaN at sample 1, element 1"));
  x[4] = -INFINITY;
  CHECK(contains(error_of([&] { check_finite(x, "x"); }), "-Inf at sample 1"));
  x[4] = 5;
  CHECK_NOTHROW(check_finite(x, "x"));
  Tensor big(Shape{1000, 37}, 1.f);
  big[36999] = INFINITY;  // the last element: the vectorized pass must see it
  CHECK(contains(error_of([&] { check_finite(big, "big"); }), "+Inf at sample 999, element 36"));
  allow_nonfinite(true);
  CHECK_NOTHROW(check_finite(big, "big"));
  allow_nonfinite(false);
  // A model file with a NaN weight is refused when loaded, naming the file and the parameter.
  Scratch s;
  Graph g = small_dense();
  g.named_params()[2].second->value[1] = NAN;
  save_model(s / "nan.safetensors", g);
  const std::string m = error_of([&] { load_model(s / "nan.safetensors"); });
  CHECK(contains(m, "nan.safetensors: parameter 'dense2.weight': NaN at"));
  allow_nonfinite(true);
  CHECK_NOTHROW(load_model(s / "nan.safetensors"));
  allow_nonfinite(false);
}

// Where a max-pool window's gradient goes, as PyTorch's max_pool2d: the first maximum in row-major
// order, unless a later element is NaN (then the last NaN). -1 for a window outside the plane.
static int pytorch_winner(const float* x, int H, int W, int k, int s, int p, int oh, int ow) {
  int best = -1;
  for (int ih = oh * s - p; ih < oh * s - p + k; ++ih)
    for (int iw = ow * s - p; iw < ow * s - p + k; ++iw) {
      if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
      const int i = ih * W + iw;
      if (best < 0 || x[i] > x[best] || std::isnan(x[i])) best = i;
    }
  return best;
}

// Non-finite values allowed for a scope (also when a check aborts the test case).
struct AllowNonfinite {
  AllowNonfinite() { allow_nonfinite(true); }
  ~AllowNonfinite() { allow_nonfinite(false); }
};

TEST_CASE("hostile: allowed NaNs flow through ReLU and max-pooling as in PyTorch") {
  AllowNonfinite allowed;
  // Max-pooling: 2x2 windows one at a time (W 4), in 4 and 8 lanes (W 8, 16), in an overlapping
  // last block (W 18), on odd planes (the scalar path of the gradient and of winners()), and the
  // general path (3x3, stride 2, padding 1). Values on a coarse grid, so windows hold ties (the
  // first maximum wins); a NaN at every place, and a second one two places on.
  struct Case {
    int H, W, k, s, p;
  };
  for (const Case& c : {Case{2, 4, 2, 2, 0}, Case{2, 8, 2, 2, 0}, Case{4, 16, 2, 2, 0}, Case{2, 18, 2, 2, 0},
                        Case{3, 5, 2, 2, 0}, Case{5, 7, 3, 2, 1}}) {
    Graph g = graph_from_text("input(1," + std::to_string(c.H) + "," + std::to_string(c.W) + ") maxpool(" +
                              std::to_string(c.k) + ",s=" + std::to_string(c.s) + ",p=" + std::to_string(c.p) + ")");
    const auto& pool = dynamic_cast<const MaxPool2d&>(g.layer(g.output()));
    const Shape ys = g.shape(g.output());
    const int OH = ys[2], OW = ys[3];
    for (int nans = 1; nans <= 2; ++nans)
      for (int at = 0; at < c.H * c.W; ++at) {
        CAPTURE(c.W);
        CAPTURE(at);
        CAPTURE(nans);
        Tensor x(Shape{1, 1, c.H, c.W});
        Rng rng(at + 1);
        for (size_t i = 0; i < x.size(); ++i) x[i] = std::floor(rng.uniform() * 3) - 1;
        x[at] = NAN;
        if (nans == 2) x[(at + 2) % x.size()] = NAN;
        const Tensor y = g.forward(x, Mode::train).clone();
        Tensor seed(y.shape());
        for (size_t o = 0; o < seed.size(); ++o) seed[o] = float(o + 1);
        const Tensor gx = g.backward(seed).clone();
        std::vector<int32_t> won(y.size());
        pool.winners(x, won.data());
        Tensor want_gx(x.shape(), 0.f);
        for (int oh = 0; oh < OH; ++oh)
          for (int ow = 0; ow < OW; ++ow) {
            const int win = pytorch_winner(x.data(), c.H, c.W, c.k, c.s, c.p, oh, ow), o = oh * OW + ow;
            REQUIRE(win >= 0);
            const float got = y[o], want = x[win];  // NaN where the window holds one
            CHECK((got == want || (std::isnan(got) && std::isnan(want))));
            CHECK(won[o] == win);
            want_gx[win] += seed[o];
          }
        for (size_t i = 0; i < gx.size(); ++i) CHECK(gx[i] == want_gx[i]);
      }
  }
  // ReLU: NaN stays NaN and passes its gradient; a NaN input makes that sample's logits NaN and
  // leaves the other samples' bits alone.
  Graph g = graph_from_text("input(1,8,8) conv(3,k=3,p=1) relu maxpool(2) flatten dense(4)");
  g.init(2);
  Tensor x(Shape{3, 1, 8, 8});
  Rng rng(9);
  for (size_t i = 0; i < x.size(); ++i) x[i] = rng.uniform();
  const Tensor clean = g.forward(x).clone();
  x[64 + 27] = NAN;  // sample 1
  const Tensor y = g.forward(x).clone();
  for (int j = 0; j < 4; ++j) {
    CHECK(std::isnan(y[4 + j]));
    CHECK(y[j] == clean[j]);
    CHECK(y[8 + j] == clean[8 + j]);
  }
  Graph r = graph_from_text("input(3) relu");
  const Tensor t = Tensor::from({1, 3}, {NAN, -1.f, 2.f});
  const Tensor ry = r.forward(t, Mode::train).clone();
  CHECK(std::isnan(ry[0]));
  CHECK(ry[1] == 0.f);
  CHECK(ry[2] == 2.f);
  const Tensor rg = r.backward(Tensor::from({1, 3}, {5.f, 6.f, 7.f}));
  CHECK(rg[0] == 5.f);
  CHECK(rg[1] == 0.f);
  CHECK(rg[2] == 7.f);
}

TEST_CASE("hostile: the predicted class is torch.argmax's: the first maximum, a NaN counts as the maximum") {
  const float inf = INFINITY;
  const auto pick = [](std::vector<float> v) { return argmax(v.data(), int(v.size())); };
  CHECK(pick({3, 1, 3}) == 0);           // ties: the first
  CHECK(pick({-inf, -inf}) == 0);
  CHECK(pick({1, inf, 2}) == 1);
  CHECK(pick({1, 5, NAN, 9}) == 2);      // std::max_element said 3
  CHECK(pick({1, NAN, 9, NAN}) == 1);    // the first NaN
  CHECK(pick({NAN, 9}) == 0);
  CHECK(pick({7}) == 0);
  const std::vector<double> d{0.5, 2.0, 2.0};
  CHECK(argmax(d.data(), 3) == 1);
  // Through the loss's accuracy count: a NaN logit is the prediction.
  AllowNonfinite allowed;
  const Tensor z = Tensor::from({2, 3}, {1.f, NAN, 3.f, 0.f, 4.f, 2.f});
  CHECK(softmax_cross_entropy(z, {1, 1}, nullptr).correct == 2);
  CHECK(softmax_cross_entropy(z, {2, 1}, nullptr).correct == 1);
}

// ---- outputs -----------------------------------------------------------------------------------

TEST_CASE("hostile: the atomic writer fails loudly on a full disk and keeps the old file") {
  Scratch s;
  const std::string path = s / "stats.json";
  atomic_write(path, std::string("old"));
  // A child process with a 100-byte file size limit stands in for a full disk (EFBIG as ENOSPC).
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{100, 100};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    int code = 3;
    try {
      write_json(path, json{{"big", std::string(100000, 'x')}});
      code = 1;  // no error: the bug
    } catch (const std::exception& e) {
      code = std::strstr(e.what(), "stats.json: write failed") ? 0 : 2;
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(slurp(path) == "old");  // unchanged, no short file under the name
  for (auto& e : fs::directory_iterator(s.dir)) CHECK_MESSAGE(!contains(e.path().filename().string(), "glassbox-tmp"), e.path());
}

TEST_CASE("hostile: the atomic writer refuses what is not a regular file and replaces a link, not its target") {
  Scratch s;
  put(s / "target.json", "old");
  fs::create_symlink(s / "target.json", s / "link.json");
  write_json(s / "link.json", json{{"new", true}});
  CHECK(!fs::is_symlink(s / "link.json"));  // the name now holds the new file
  CHECK(json::parse(slurp(s / "link.json"))["new"] == true);
  CHECK(slurp(s / "target.json") == "old");  // a link planted in an output folder reaches nothing

  REQUIRE(::mkfifo((s / "pipe").c_str(), 0600) == 0);  // stands in for a device such as /dev/full
  fs::create_directories(s / "folder");
  for (const std::string name : {"pipe", "folder"}) {
    INFO(name);
    CHECK_THROWS_WITH_AS(atomic_write(s / name, std::string("x")), doctest::Contains("is not a regular file"),
                         std::runtime_error);
  }
  CHECK(fs::is_fifo(s / "pipe"));
  CHECK(fs::is_directory(s / "folder"));
  for (auto& e : fs::directory_iterator(s.dir)) CHECK_MESSAGE(!contains(e.path().filename().string(), "glassbox-tmp"), e.path());
}

TEST_CASE("hostile: temporary files of killed runs are removed, those of live ones kept") {
  Scratch s;
  fs::create_directories(s / "out");
  const pid_t child = ::fork();  // a process that is gone by the time of the write
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  const std::string dead = s / ("out/summary.json.glassbox-tmp" + std::to_string(child));
  const std::string live = s / ("out/summary.json.glassbox-tmp" + std::to_string(::getppid()));
  const std::string other = s / "out/notes.tmp.txt";
  // A user's file that ends like the old temporaries (".tmp<digits>", no such process): it was removed.
  const std::string users = s / ("out/notes.tmp" + std::to_string(child));
  put(dead, "partial");
  put(live, "in progress");
  put(other, "mine");
  put(users, "precious");
  write_json(s / "out/summary.json", json{{"ok", true}});
  CHECK(!fs::exists(dead));
  CHECK(fs::exists(live));
  CHECK(fs::exists(other));
  CHECK(fs::exists(users));
  CHECK(json::parse(slurp(s / "out/summary.json"))["ok"] == true);
}

// ---- the command line --------------------------------------------------------------------------

TEST_CASE("hostile cli: the issue's examples end in a clear refusal or correct output") {
  Scratch s;
  const std::string mlp = "\"input(2) dense(16) relu dense(2)\"";
  struct Case {
    std::string args, expect;
  };
  const Case refused[] = {
      {"regions --model " + mlp + " --plane --range nan,1,0,1 --out " + (s / "r1"), "--range 'nan,1,0,1': 'nan' is not a finite"},
      {"regions --model " + mlp + " --plane --range a,b,c,d --out " + (s / "r2"), "--range 'a,b,c,d': 'a' is not a finite"},
      {"regions --model " + mlp + " --plane --range 0,inf,0,1 --out " + (s / "r3"), "'inf' is not a finite"},
      {"regions --model " + mlp + " --plane --size 0 --out " + (s / "r4"), "--size: '0' is not a whole number in [1, 8192]"},
      {"regions --model " + mlp + " --line 0,1 --eps -0.1 --data toy:moons --out " + (s / "r5"), "--eps: '-0.1'"},
      {"regions --model " + mlp + " --data toy:moons --index 0:2000000000 --out " + (s / "r6"),
       "--index '0:2000000000': J = 2000000000 is past the dataset's 1000 samples"},
      {"train --model toy2d --data toy:moons --warmup 1e30 --quiet --out " + (s / "t.safetensors"), "--warmup: '1e30'"},
      {"train --model toy2d --data toy:moons --augment crop=2000000000 --quiet --out " + (s / "t.safetensors"),
       "crop=N needs a whole padding 0 <= N <= 1024"},
      {"train --model toy2d --data toy:moons --epochs 99999999999 --quiet --out " + (s / "t.safetensors"), "--epochs"},
      {"train --model \"input(2) softplus(1,threshold=inf) dense(2)\" --data toy:moons --quiet --out " + (s / "t.safetensors"),
       "a number for 'threshold' (finite, within float range)"},
      {"train --model \"input(2) leakyrelu(inf) dense(2)\" --data toy:moons --quiet --out " + (s / "t.safetensors"),
       "a number for 'slope' (finite, within float range)"},
      {"explain --model " + mlp + " --data toy:moons --method saliency --percentile nan --out " + (s / "e1"),
       "--percentile: 'nan' is not a finite number in (0, 100]"},
      {"explain --model " + mlp + " --data toy:moons --method integrated-gradients --param n_steps=1000000000 --out " +
           (s / "e2"),
       "integrated-gradients: --param n_steps=1000000000 is out of range [1, 100000]"},
      {"--max-memory lots info lenet5", "--max-memory: 'lots' is not a byte count"},
      {"--max-memory 1M info \"input(1000) dense(2000000000)\"", "memory limit of 1.0 MB"},
  };
  for (const Case& c : refused) {
    Run r = glassbox(s, c.args);
    CAPTURE(c.args);
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, c.expect), r.err);
    CHECK_MESSAGE(!contains(r.err, "stod"), r.err);
  }
  CHECK(!fs::exists(s / "t.safetensors"));  // no unloadable model was saved

  // regions --plane of a 2-D model without --data segfaulted: it now draws the default window.
  Run plane = glassbox(s, "regions --model " + mlp + " --plane --size 64 --out " + (s / "plane"));
  CHECK_MESSAGE(plane.status == 0, plane.err);
  CHECK(json::parse(slurp(s / "plane/plane.json"))["window"][1] == 3.0);
}

TEST_CASE("hostile cli: model paths, checkpoints, NaN data and same-named inputs") {
  Scratch s;
  // A trained toy model under a name that looks like architecture text.
  Run t = glassbox(s, "train --model toy2d --data toy:moons --epochs 1 --quiet --out \"" + (s / "model (copy).safetensors") + "\"");
  REQUIRE_MESSAGE(t.status == 0, t.err);
  Run info = glassbox(s, "info \"" + (s / "model (copy).safetensors") + "\"");
  CHECK_MESSAGE(info.status == 0, info.err);
  // info/eval on the checkpoint beside it.
  const std::string ckpt = s / "model (copy).ckpt.safetensors";
  REQUIRE(fs::exists(ckpt));
  for (const std::string cmd : {"info", "eval --data toy:moons --model"}) {
    Run r = glassbox(s, cmd + " \"" + ckpt + "\"");
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "is a training checkpoint, not a model"), r.err);
  }

  // NaN training data is named as such (it was "training diverged ... try a lower --lr").
  {
    std::string xs;
    for (int i = 0; i < 20; ++i) xs += floats({float(i % 2), i == 7 ? NAN : float(i) / 20});
    std::string ys;
    for (int i = 0; i < 20; ++i) ys += std::string(1, char(i % 2)) + std::string(7, '\0');
    put(s / "x.npy", npy("<f4", "(20, 2)", xs));
    put(s / "y.npy", npy("<i8", "(20,)", ys));
    Run r = glassbox(s, "train --model toy2d --data npy:" + (s / "x.npy") + "," + (s / "y.npy") + " --quiet --out " +
                            (s / "n.safetensors"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "(train split): NaN at sample"), r.err);
    CHECK_MESSAGE(!contains(r.err, "diverged"), r.err);
    CHECK(!fs::exists(s / "n.safetensors"));
    // NaN in the test split is refused before training (it failed after the model was written).
    std::string xt;
    for (int i = 0; i < 20; ++i) xt += floats({float(i % 2), i == 4 ? NAN : float(i) / 20});
    put(s / "xt.npy", npy("<f4", "(20, 2)", xt));
    r = glassbox(s, "train --model toy2d --data npy:" + (s / "xt.npy") + "," + (s / "y.npy") + " --quiet --out " +
                        (s / "t.safetensors"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "(test split): NaN at sample 0"), r.err);
    CHECK(!fs::exists(s / "t.safetensors"));
    r = glassbox(s, "distill --teacher \"" + (s / "model (copy).safetensors") + "\" --student toy2d --data npy:" +
                        (s / "xt.npy") + "," + (s / "y.npy") + " --epochs 1 --quiet --out " + (s / "d.safetensors"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "(test split): NaN at sample 0"), r.err);
    CHECK(!fs::exists(s / "d.safetensors"));
    // Every command that reads a data set names it the same way (prototypes stopped deep inside
    // MMD-critic with "point 1 is not finite", and top-patches scanned NaN images without a word).
    r = glassbox(s, "prototypes --model \"" + (s / "model (copy).safetensors") + "\" --data npy:" + (s / "x.npy") +
                        "," + (s / "y.npy") + " --out " + (s / "p"));
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "(train split): NaN at sample"), r.err);
    // A baseline file is checked as inputs are: which sample and element, and --allow-nonfinite
    // lets it through.
    put(s / "in.npy", npy("<f4", "(2, 2)", floats({0.5f, 0.25f, 0.75f, 1.f})));
    put(s / "base.npy", npy("<f4", "(2, 2)", floats({0.f, 0.f, 0.f, -INFINITY})));
    const std::string ig = "explain --model \"" + (s / "model (copy).safetensors") + "\" --input " + (s / "in.npy") +
                           " --method integrated-gradients --param baseline=" + (s / "base.npy") + " --out " +
                           (s / "ig");
    r = glassbox(s, ig);
    CHECK(r.status == 1);
    CHECK_MESSAGE(contains(r.err, "base.npy: -Inf at sample 1, element 1"), r.err);
    r = glassbox(s, "--allow-nonfinite " + ig);
    CHECK_MESSAGE(r.status == 0, r.err);
  }

  // A stored normalization that does not fit the model's input is named with its file when the
  // model is opened (it failed later without the file's name, or never, for commands without pixels).
  {
    Graph g = small_dense();
    save_model(s / "norm7.safetensors", g,
               {{"glassbox.normalize", R"({"mean": [0, 0, 0, 0, 0, 0, 0], "std": [1, 1, 1, 1, 1, 1, 1]})"}});
    save_model(s / "normbad.safetensors", g, {{"glassbox.normalize", "{not json"}});
    for (const std::string& cmd : {std::string("eval --data toy:moons --model"),
                                  "importance --data toy:moons --method garson --out " + (s / "imp") + " --model"}) {
      Run r = glassbox(s, cmd + " " + (s / "norm7.safetensors"));
      CHECK(r.status == 1);
      CHECK_MESSAGE(contains(r.err, "norm7.safetensors: glassbox.normalize has 7 channels, the model's input [2] has 2"), r.err);
      r = glassbox(s, cmd + " " + (s / "normbad.safetensors"));
      CHECK(r.status == 1);
      CHECK_MESSAGE(contains(r.err, "normbad.safetensors: model metadata glassbox.normalize is not JSON"), r.err);
    }
  }

  // NaN inputs are refused before any computation, and allowed on request.
  const std::string model = "\"" + (s / "model (copy).safetensors") + "\"";
  put(s / "nan.npy", npy("<f4", "(1, 2)", floats({NAN, 1})));
  Run p = glassbox(s, "predict --model " + model + " --input " + (s / "nan.npy"));
  CHECK(p.status == 1);
  CHECK_MESSAGE(contains(p.err, "nan.npy: NaN at sample 0, element 0"), p.err);
  Run allowed = glassbox(s, "--allow-nonfinite predict --model " + model + " --input " + (s / "nan.npy"));
  CHECK_MESSAGE(allowed.status == 0, allowed.err);
  // A finite float32 that the model's normalization, (x - mean) / std with std < 1, takes past
  // float32's range: refused as well (it gave NaN predictions).
  put(s / "big.npy", npy("<f4", "(1, 2)", floats({3.4e38f, 3.4e38f})));
  Run big = glassbox(s, "predict --model " + model + " --input " + (s / "big.npy"));
  CHECK(big.status == 1);
  CHECK_MESSAGE(contains(big.err, "big.npy after the model's normalization ((x - mean) / std): +Inf"), big.err);

  // Two inputs with the same name in different folders no longer overwrite each other's outputs.
  fs::create_directories(s / "a");
  fs::create_directories(s / "b");
  put(s / "a/p.npy", npy("<f4", "(1, 2)", floats({0.1f, 0.2f})));
  put(s / "b/p.npy", npy("<f4", "(1, 2)", floats({-1, 1})));
  Run r = glassbox(s, "regions --model " + model + " --input " + (s / "a/p.npy") + " " + (s / "b/p.npy") + " --out " +
                          (s / "same"));
  CHECK_MESSAGE(r.status == 0, r.err);
  int regions = 0;
  for (auto& e : fs::directory_iterator(s / "same")) regions += fs::exists(e.path() / "region.json");
  CHECK(regions == 2);
}

TEST_CASE("hostile cli: training refuses a folder or foreign file beside --out before replacing anything") {
  Scratch s;
  const std::string out = s / "m.safetensors", train = "train --model toy2d --data toy:moons --epochs 2 --quiet --out " + out;
  Run r = glassbox(s, train);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string model = slurp(out), ckpt = slurp(s / "m.ckpt.safetensors"), log = slurp(s / "m.log.jsonl");
  // Each file training writes, made a folder or another file in turn: refused, naming it, and
  // the model, checkpoint and log as they were (a folder as .best used to fail after --out was replaced).
  struct Case {
    std::string path, flags, words;
  };
  for (const Case& c : {Case{"m.best.safetensors", "", "'" + (s / "m.best.safetensors") + "' (written next to --out) exists and is not a model file"},
                        Case{"m.epoch2.safetensors", " --save-every 2", "m.epoch2.safetensors' (written next to --out) exists and is not a model file"},
                        Case{"m.log.jsonl", "", "m.log.jsonl' (written next to --out) exists and is not a glassbox training log"}}) {
    for (bool folder : {true, false}) {
      CAPTURE(c.path);
      CAPTURE(folder);
      const std::string p = s / c.path;
      std::error_code ec;
      fs::remove_all(p, ec);
      if (folder)
        fs::create_directory(p);
      else
        put(p, "my notes\n");
      r = glassbox(s, train + " --seed 3" + c.flags);
      CHECK(r.status == 1);
      CHECK_MESSAGE(contains(r.err, c.words), r.err);
      CHECK(slurp(out) == model);
      CHECK(slurp(s / "m.ckpt.safetensors") == ckpt);
      CHECK(slurp(s / "m.log.jsonl") == (c.path == "m.log.jsonl" ? std::string(folder ? "" : "my notes\n") : log));
      fs::remove_all(p, ec);
    }
  }
  // Its own files are replaced as before; an empty log is taken as a log.
  put(s / "m.log.jsonl", "");
  r = glassbox(s, train + " --seed 3 --save-every 2");
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK(slurp(out) != model);
  r = glassbox(s, train);
  CHECK_MESSAGE(r.status == 0, r.err);
  CHECK(slurp(out) == model);  // the same settings: the same bits (train.run included)
}

TEST_CASE("a number passed on as a parameter value reads back as the same double") {
  // Detection and the substitute attack hand their epsilon to another method as text; with
  // std::to_string an epsilon below 5e-7 became "0.000000".
  for (double v : {1e-7, 4e-9, 0.1, 8.0 / 255, 1.0 / 3, 12345.678, 0.0, -2.5}) {
    CAPTURE(v);
    CHECK(std::stod(gb::explain::exact_text(v)) == v);
  }
}
