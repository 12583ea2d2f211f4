// Data readers, specs and transforms, on small files the tests write themselves (plus real
// Fashion-MNIST when it is installed).
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/images.h"
#include "data/npy.h"
#include "engine/model_file.h"
#include "engine/sizes.h"

using namespace gb;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test case, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("glassbox-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}

std::vector<uint8_t> idx_images(int n, int h, int w, std::vector<uint8_t> pixels = {}) {
  std::vector<uint8_t> b;
  put_be32(b, 0x00000803);
  put_be32(b, uint32_t(n));
  put_be32(b, uint32_t(h));
  put_be32(b, uint32_t(w));
  if (pixels.empty())
    for (int i = 0; i < n * h * w; ++i) pixels.push_back(uint8_t(i * 7 % 256));
  b.insert(b.end(), pixels.begin(), pixels.end());
  return b;
}

std::vector<uint8_t> idx_labels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> b;
  put_be32(b, 0x00000801);
  put_be32(b, uint32_t(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

void write_gz(const std::string& path, const std::vector<uint8_t>& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, b.data(), unsigned(b.size())) == int(b.size()));
  gzclose(f);
}

// The message of the DataError fn throws ("" when it throws nothing).
template <class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    return e.what();
  } catch (const ModelFileError& e) {  // the writer's own (a folder in the way keeps its kind)
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("IDX round trip, plain and gzip") {
  TempDir t;
  auto im = idx_images(3, 2, 4);
  auto lb = idx_labels({0, 9, 4});
  write_bytes(t / "im", im);
  write_bytes(t / "lb", lb);
  write_gz(t / "im.gz", im);
  write_gz(t / "lb.gz", lb);
  for (auto [ip, lp] : {std::pair{t / "im", t / "lb"}, std::pair{t / "im.gz", t / "lb.gz"}}) {
    Dataset d = read_idx(ip, lp, mnist_classes());
    CHECK(d.x.shape() == Shape{3, 1, 2, 4});
    CHECK(d.y == std::vector<int>{0, 9, 4});
    CHECK(d.classes() == 10);
    for (size_t i = 0; i < d.x.size(); ++i) REQUIRE(d.x[i] == float(uint8_t(i * 7 % 256)) / 255.f);
  }
  // 3.9 MB of pixels: read in growing pieces (1, 1, 2 MB), whose seams must not show.
  const int big = 5000;
  std::vector<uint8_t> many(big);
  for (int i = 0; i < big; ++i) many[i] = uint8_t(i % 10);
  write_bytes(t / "big_im", idx_images(big, 28, 28));
  write_bytes(t / "big_lb", idx_labels(many));
  write_gz(t / "big_im.gz", idx_images(big, 28, 28));
  for (const std::string& ip : {t / "big_im", t / "big_im.gz"}) {
    Dataset d = read_idx(ip, t / "big_lb");
    REQUIRE(d.x.shape() == Shape{big, 1, 28, 28});
    CHECK(d.y[big - 1] == (big - 1) % 10);
    size_t wrong = 0;
    for (size_t i = 0; i < d.x.size(); ++i) wrong += d.x[i] != float(uint8_t(i * 7 % 256)) / 255.f;
    CHECK(wrong == 0);
  }
  // Without class names the classes are 0..max label.
  CHECK(read_idx(t / "im", t / "lb").classes() == 10);
  {  // A header of 1000 x 1024 x 1024 is held to the memory limit before any pixel is read (a small
     // gzip file of zeros filled 1.5 GB first), naming the file.
    const uint64_t limit = memory_limit();
    set_memory_limit(uint64_t(100) << 20);
    std::vector<uint8_t> header;
    for (uint32_t v : {0x00000803u, 1000u, 1024u, 1024u}) put_be32(header, v);
    write_bytes(t / "huge_im", header);
    std::string e;
    try {
      read_idx(t / "huge_im", t / "lb");
    } catch (const std::exception& x) {  // (a SizeError, as a tensor past the limit)
      e = x.what();
    }
    set_memory_limit(limit);
    CHECK_MESSAGE(contains(e, "huge_im: 1048576000 IDX image bytes (and their float32 copy) needs"), e);
    CHECK_MESSAGE(contains(e, "memory limit"), e);
  }
  Dataset by_spec = load_dataset("idx:" + t / "im.gz" + "," + t / "lb.gz", "all");
  CHECK(by_spec.size() == 3);
  CHECK(by_spec.name == "idx:" + t / "im.gz" + "," + t / "lb.gz" + ":all");
}

TEST_CASE("bad IDX files are rejected with a message naming the file") {
  TempDir t;
  write_bytes(t / "lb", idx_labels({1, 2, 3}));
  auto im = idx_images(3, 2, 4);

  auto cut = im;
  cut.resize(cut.size() - 4);
  write_bytes(t / "short", cut);
  std::string m = error_of([&] { read_idx(t / "short", t / "lb"); });
  CHECK(contains(m, t / "short" + ": truncated: expected 24 bytes of image data, got 20"));

  // A header that claims a gigabyte over 20 bytes of pixels: refused as truncated (the reader
  // grows its buffer with the data it finds, not with the claim).
  auto claims = idx_images(1000, 1000, 1000, std::vector<uint8_t>(20, 1));
  write_bytes(t / "claims", claims);
  m = error_of([&] { read_idx(t / "claims", t / "lb"); });
  CHECK(contains(m, t / "claims" + ": truncated: expected 1000000000 bytes of image data, got 20"));

  write_gz(t / "short.gz", cut);
  m = error_of([&] { read_idx(t / "short.gz", t / "lb"); });
  CHECK(contains(m, t / "short.gz" + ": truncated"));

  // A gzip stream cut in the middle.
  write_gz(t / "full.gz", im);
  auto gz = std::vector<uint8_t>(fs::file_size(t / "full.gz"));
  std::ifstream(t / "full.gz", std::ios::binary).read(reinterpret_cast<char*>(gz.data()), std::streamsize(gz.size()));
  gz.resize(gz.size() / 2);
  write_bytes(t / "cut.gz", gz);
  m = error_of([&] { read_idx(t / "cut.gz", t / "lb"); });
  CHECK(contains(m, t / "cut.gz" + ": "));

  auto magic = im;
  magic[2] = 0x0d;  // float elements
  write_bytes(t / "float", magic);
  m = error_of([&] { read_idx(t / "float", t / "lb"); });
  CHECK(contains(m, t / "float" + ": IDX element type 0x0D"));

  auto garbage = im;
  garbage[0] = 0x89;
  write_bytes(t / "png", garbage);
  m = error_of([&] { read_idx(t / "png", t / "lb"); });
  CHECK(contains(m, t / "png" + ": wrong magic 0x89000803"));

  // Labels file given as the images file: rank 1, not 3.
  m = error_of([&] { read_idx(t / "lb", t / "lb"); });
  CHECK(contains(m, t / "lb" + ": wrong magic 0x00000801"));

  auto extra = im;
  extra.push_back(0);
  write_bytes(t / "long", extra);
  m = error_of([&] { read_idx(t / "long", t / "lb"); });
  CHECK(contains(m, t / "long" + ": trailing data"));

  write_bytes(t / "im", im);
  write_bytes(t / "lb2", idx_labels({1, 2}));
  m = error_of([&] { read_idx(t / "im", t / "lb2"); });
  CHECK(contains(m, t / "lb2" + ": 2 labels but " + t / "im" + " holds 3 images"));

  write_bytes(t / "lb12", idx_labels({1, 12, 3}));
  m = error_of([&] { read_idx(t / "im", t / "lb12", mnist_classes()); });
  CHECK(contains(m, t / "lb12" + ": label 12 at index 1 is out of range for 10 classes"));

  m = error_of([&] { read_idx(t / "missing", t / "lb"); });
  CHECK(contains(m, t / "missing" + ": cannot open"));

  write_bytes(t / "empty", {});
  m = error_of([&] { read_idx(t / "empty", t / "lb"); });
  CHECK(contains(m, t / "empty" + ": truncated"));
}

TEST_CASE("mnist:DIR accepts .gz and plain names and uses digit class names") {
  TempDir t;
  write_gz(t / "train-images-idx3-ubyte.gz", idx_images(4, 3, 3));
  write_bytes(t / "train-labels-idx1-ubyte", idx_labels({0, 1, 2, 3}));
  write_bytes(t / "t10k-images.idx3-ubyte", idx_images(2, 3, 3));  // MNIST's own spelling
  write_gz(t / "t10k-labels-idx1-ubyte.gz", idx_labels({5, 9}));
  std::string spec = "mnist:" + t.path.string();
  CHECK(dataset_available(spec));
  Dataset tr = load_dataset(spec, "train"), te = load_dataset(spec, "test"), all = load_dataset(spec, "all");
  CHECK(tr.size() == 4);
  CHECK(te.size() == 2);
  CHECK(all.size() == 6);
  CHECK(te.y == std::vector<int>{5, 9});
  CHECK(te.class_names[9] == "9");
  CHECK(te.name == spec + ":test");
  fs::remove(t / "t10k-labels-idx1-ubyte.gz");
  CHECK_FALSE(dataset_available(spec));
  CHECK(contains(error_of([&] { load_dataset(spec, "test"); }), "t10k-labels-idx1-ubyte[.gz] not found"));
}

TEST_CASE("CIFAR-10 records and a file of the wrong size") {
  TempDir t;
  std::vector<uint8_t> b;
  for (int r = 0; r < 2; ++r) {
    b.push_back(uint8_t(r == 0 ? 3 : 8));
    for (int k = 0; k < 3072; ++k) b.push_back(uint8_t((k + r) % 256));
  }
  for (int i = 1; i <= 5; ++i) write_bytes(t / ("data_batch_" + std::to_string(i) + ".bin"), b);
  write_bytes(t / "test_batch.bin", b);
  Dataset d = load_dataset("cifar10:" + t.path.string(), "test");
  CHECK(d.x.shape() == Shape{2, 3, 32, 32});
  CHECK(d.y == std::vector<int>{3, 8});
  CHECK(d.class_names[3] == "cat");
  CHECK(d.class_names.size() == 10);
  CHECK(d.x.at(1, 2, 0, 5) == float((2048 + 5 + 1) % 256) / 255.f);  // blue plane, record 1
  CHECK(load_dataset("cifar10:" + t.path.string(), "train").size() == 10);

  b.pop_back();
  write_bytes(t / "bad.bin", b);
  std::string m = error_of([&] { read_cifar10({t / "bad.bin"}); });
  CHECK(contains(m, t / "bad.bin" + ": size 6145 bytes is not a whole number of 3073-byte CIFAR-10 records"));

  std::vector<uint8_t> label(3073, 0);
  label[0] = 10;
  write_bytes(t / "label.bin", label);
  CHECK(contains(error_of([&] { read_cifar10({t / "label.bin"}); }), t / "label.bin" + ": label 10 in record 0"));
  fs::remove(t / "data_batch_4.bin");
  CHECK(contains(error_of([&] { load_dataset("cifar10:" + t.path.string(), "train"); }), "data_batch_4.bin not found"));
}

TEST_CASE("a top-down BMP (negative height) reads as the same image as its bottom-up form") {
  // 3x2 pixels, 24-bit: rows padded to 12 bytes; pixel (x, y) has B = 10y + x, G = 100, R = 200.
  auto bmp = [](bool top_down) {
    const int W = 3, H = 2, row = 12;
    std::vector<uint8_t> b(54 + row * H, 0);
    auto le32 = [&](size_t at, int32_t v) {
      for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(uint32_t(v) >> (8 * i));
    };
    b[0] = 'B', b[1] = 'M';
    le32(2, int32_t(b.size()));
    le32(10, 54);
    le32(14, 40);
    le32(18, W);
    le32(22, top_down ? -H : H);
    b[26] = 1, b[28] = 24;
    le32(34, row * H);
    for (int y = 0; y < H; ++y) {
      const int stored = top_down ? y : H - 1 - y;  // bottom-up files store the last row first
      for (int x = 0; x < W; ++x) {
        uint8_t* p = b.data() + 54 + stored * row + 3 * x;
        p[0] = uint8_t(10 * y + x), p[1] = 100, p[2] = 200;
      }
    }
    return b;
  };
  TempDir t;
  write_bytes(t / "up.bmp", bmp(false));
  write_bytes(t / "down.bmp", bmp(true));
  const Image up = read_image(t / "up.bmp"), down = read_image(t / "down.bmp");  // down was refused ("3x-2 pixels")
  CHECK(down.w == 3);
  CHECK(down.h == 2);
  CHECK(down.pixels == up.pixels);
  CHECK(up.pixels[3 * (1 * 3 + 2) + 2] == 12);  // (x 2, y 1): B = 12, the third byte as RGB
  // A PNG cut inside a chunk header said "cannot read image: " and nothing; ASCII PNM was "not PNM".
  const std::vector<uint8_t> px(12 * 12, 7);
  write_png(t / "whole.png", 12, 12, 1, px.data());
  const std::string whole = read_file(t / "whole.png");
  write_bytes(t / "cut.png", std::vector<uint8_t>(whole.begin(), whole.begin() + 36));
  CHECK(contains(error_of([&] { read_image(t / "cut.png"); }), "cut.png: cannot read image: truncated or corrupt"));
  const std::string ascii = "P2\n2 2\n255\n0 1 2 3\n";
  write_bytes(t / "a.pgm", std::vector<uint8_t>(ascii.begin(), ascii.end()));
  CHECK(contains(error_of([&] { read_image(t / "a.pgm"); }), "binary PNM (P5/P6)"));
  // An endless stream is read only as far as the largest image could be (it was read until memory
  // ran out: std::bad_alloc, naming no file).
  CHECK(contains(error_of([&] { read_image("/dev/zero"); }), "/dev/zero: more than"));
}

TEST_CASE("image files: PNG round trip, gray/RGB conversion, resizing, unreadable files") {
  TempDir t;
  // 4x2 RGB: pure colours and greys.
  std::vector<uint8_t> px = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255,
                             0,   0, 0, 10, 20, 30, 128, 128, 128, 200, 100, 50};
  write_png(t / "a.png", 4, 2, 3, px.data());
  Image raw = read_image(t / "a.png");
  CHECK(raw.w == 4);
  CHECK(raw.h == 2);
  CHECK(raw.channels == 3);
  CHECK(raw.pixels == px);

  Tensor rgb = load_image(t / "a.png", Shape{});
  CHECK(rgb.shape() == Shape{1, 3, 2, 4});
  CHECK(rgb.at(0, 0, 0, 0) == 1.f);
  CHECK(rgb.at(0, 1, 0, 1) == 1.f);
  CHECK(rgb.at(0, 2, 1, 1) == doctest::Approx(30 / 255.f));

  Tensor gray = load_image(t / "a.png", Shape{1, 2, 4});
  CHECK(gray.shape() == Shape{1, 1, 2, 4});
  CHECK(gray.at(0, 0, 0, 0) == doctest::Approx(0.299f));
  CHECK(gray.at(0, 0, 0, 1) == doctest::Approx(0.587f));
  CHECK(gray.at(0, 0, 1, 3) == doctest::Approx((0.299f * 200 + 0.587f * 100 + 0.114f * 50) / 255.f));

  // A gray image to RGB repeats the channel; resizing a constant image keeps it constant.
  std::vector<uint8_t> flat(6 * 5, 77);
  write_png(t / "g.png", 6, 5, 1, flat.data());
  Tensor up = load_image(t / "g.png", Shape{3, 12, 9});
  CHECK(up.shape() == Shape{1, 3, 12, 9});
  for (size_t i = 0; i < up.size(); ++i) REQUIRE(up[i] == doctest::Approx(77 / 255.f).epsilon(1e-4));

  CHECK(contains(error_of([&] { load_image(t / "g.png", Shape{4, 8, 8}); }), t / "g.png" + ": cannot convert"));
  write_bytes(t / "junk.png", {1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(contains(error_of([&] { load_image(t / "junk.png", Shape{}); }), t / "junk.png" + ": cannot read image"));
  CHECK(contains(error_of([&] { load_image(t / "none.png", Shape{}); }), t / "none.png" + ": cannot open"));
  CHECK(contains(error_of([&] { write_png(t / "nodir/x.png", 6, 5, 1, flat.data()); }), t / "nodir/x.png"));

  // A hand-made 24-bit BMP, 2x2, bottom-up rows of BGR padded to 4 bytes.
  std::vector<uint8_t> bmp = {'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0,
                              1, 0, 24, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0x13, 0x0b, 0, 0, 0x13, 0x0b, 0, 0, 0, 0, 0, 0,
                              0, 0, 0, 0};
  for (uint8_t v : {0, 0, 255, 0, 255, 0, 0, 0, /* bottom row: red, green */ 255, 0, 0, 9, 9, 9, 0, 0 /* top: blue, grey */})
    bmp.push_back(v);
  write_bytes(t / "b.bmp", bmp);
  Tensor b = load_image(t / "b.bmp", Shape{});
  CHECK(b.shape() == Shape{1, 3, 2, 2});
  CHECK(b.at(0, 2, 0, 0) == 1.f);  // top left is blue
  CHECK(b.at(0, 0, 1, 0) == 1.f);  // bottom left is red
  CHECK(b.at(0, 1, 0, 1) == doctest::Approx(9 / 255.f));

  // Writes are atomic: a failed write leaves no temporary file and names the target.
  fs::create_directories(t.path / "taken.png");
  CHECK(contains(error_of([&] { write_png(t / "taken.png", 6, 5, 1, flat.data()); }), t / "taken.png" + ": is not a regular file"));
  write_png(t / "keep.png", 6, 5, 1, flat.data());
  auto before = fs::file_size(t / "keep.png");
  CHECK_THROWS_AS(write_png(t / "keep.png", 0, 5, 1, flat.data()), DataError);
  CHECK(fs::file_size(t / "keep.png") == before);
  for (auto& e : fs::directory_iterator(t.path)) REQUIRE(!contains(e.path().filename().string(), ".tmp."));

  // Tensor to PNG and back.
  write_png(t / "t.png", rgb);
  Tensor back = load_image(t / "t.png", Shape{});
  for (size_t i = 0; i < back.size(); ++i) REQUIRE(back[i] == rgb[i]);
}

TEST_CASE("images:DIR: one subfolder per class, sorted, resized to the first image") {
  TempDir t;
  for (std::string cls : {"dog", "cat"}) {
    fs::create_directories(t.path / cls);
    for (int i = 0; i < 5; ++i) {
      std::vector<uint8_t> px(cls == "cat" ? 8 * 8 * 3 : 4 * 4 * 3, uint8_t(cls == "cat" ? 10 * i : 200));
      int s = cls == "cat" ? 8 : 4;
      write_png((t.path / cls / (std::to_string(i) + ".png")).string(), s, s, 3, px.data());
    }
  }
  write_bytes((t.path / "cat" / "notes.txt").string(), {'h', 'i'});  // skipped: not an image
  std::string spec = "images:" + t.path.string();
  Dataset all = load_dataset(spec, "all");
  CHECK(all.class_names == std::vector<std::string>{"cat", "dog"});
  CHECK(all.x.shape() == Shape{10, 3, 8, 8});  // the first image (cat/0.png) is 8x8
  CHECK(all.y[0] == 0);
  CHECK(all.y[9] == 1);
  CHECK(all.x.at(9, 0, 7, 7) == doctest::Approx(200 / 255.f).epsilon(1e-4));
  Dataset tr = load_dataset(spec, "train"), te = load_dataset(spec, "test");
  CHECK(tr.size() == 8);
  CHECK(te.size() == 2);
  CHECK(te.y == std::vector<int>{0, 1});  // image 4 of each class
  CHECK(te.x.at(0, 0, 0, 0) == doctest::Approx(40 / 255.f));
  Dataset small = load_dataset(spec + ",c=1,h=2,w=3", "all");
  CHECK(small.x.shape() == Shape{10, 1, 2, 3});
  // Sizes within the image readers' cap (65536 a side made a 17 GB tensor, and as much to resize).
  CHECK(contains(error_of([&] { load_dataset(spec + ",h=65536", "all"); }), "h"));
  CHECK_THROWS_AS(load_dataset(spec + ",h=65536", "all"), DataError);
  CHECK(contains(error_of([&] { load_dataset(spec + ",h=16384,w=16384", "all"); }), "more than images may have"));
  CHECK_THROWS_AS(load_dataset(spec + ",c=2", "all"), DataError);
  write_bytes((t.path / "dog" / "5.png").string(), {0, 0, 0});
  CHECK(contains(error_of([&] { load_dataset(spec, "all"); }), (t.path / "dog" / "5.png").string() + ": cannot read image"));
}

TEST_CASE(".npy round trips for float32, uint8 and int64, and bad headers") {
  TempDir t;
  Tensor x({2, 3, 4});
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i) * 0.25f - 3.f;
  write_npy(t / "x.npy", x);
  Tensor x2 = read_npy_f32(t / "x.npy");
  CHECK(x2.shape() == x.shape());
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(x2[i] == x[i]);
  NpyArray raw = read_npy(t / "x.npy");
  CHECK(raw.descr == "<f4");
  CHECK(fs::file_size(t / "x.npy") % 64 == (24 * 4) % 64);  // header padded to a 64-byte boundary

  std::vector<uint8_t> bytes = {0, 1, 2, 254, 255, 128};
  write_npy_u8(t / "u.npy", {6}, bytes.data());
  Tensor u = read_npy_f32(t / "u.npy");
  CHECK(u.shape() == Shape{6});
  CHECK(u[3] == 254.f);  // as is, not scaled
  CHECK(read_npy(t / "u.npy").descr == "|u1");
  CHECK(read_npy_labels(t / "u.npy") == std::vector<int64_t>{0, 1, 2, 254, 255, 128});

  std::vector<int64_t> labels = {3, 0, -1, int64_t(1) << 40};
  write_npy_labels(t / "y.npy", labels);
  CHECK(read_npy_labels(t / "y.npy") == labels);
  CHECK(read_npy(t / "y.npy").shape == std::vector<int64_t>{4});

  // A header as numpy writes it, by hand: format 2.0, shape (2,), trailing comma.
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  h.append(64 - (12 + h.size() + 1) % 64, ' ');
  h += '\n';
  std::string v2("\x93NUMPY\x02\x00", 8);
  v2 += char(h.size());
  v2.append(3, '\0');
  v2 += h;
  float vals[2] = {1.5f, -2.f};
  v2.append(reinterpret_cast<const char*>(vals), 8);
  write_bytes(t / "v2.npy", std::vector<uint8_t>(v2.begin(), v2.end()));
  Tensor v = read_npy_f32(t / "v2.npy");
  CHECK(v.shape() == Shape{2});
  CHECK(v[1] == -2.f);

  auto with_header = [&](const std::string& name, std::string header, size_t data_bytes) {
    header += '\n';
    std::string f("\x93NUMPY\x01\x00", 8);
    f += char(header.size() & 0xff);
    f += char(header.size() >> 8);
    f += header;
    f.append(data_bytes, '\0');
    write_bytes(t / name, std::vector<uint8_t>(f.begin(), f.end()));
    return t / name;
  };
  {  // numpy's bool masks: one byte each, read as 0 or 1 (a nonzero byte is true)
    std::string b = "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }\n";
    std::string f("\x93NUMPY\x01\x00", 8);
    f += char(b.size() & 0xff);
    f += char(b.size() >> 8);
    f += b;
    f += std::string("\x00\x01\x02", 3);
    write_bytes(t / "b.npy", std::vector<uint8_t>(f.begin(), f.end()));
    const Tensor m = read_npy_f32(t / "b.npy");
    CHECK(m.shape() == Shape{3});
    CHECK((m[0] == 0.f && m[1] == 1.f && m[2] == 1.f));
  }
  std::string p = with_header("f.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16);
  CHECK(contains(error_of([&] { read_npy(p); }), p + ": Fortran-order"));
  p = with_header("t.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 12);
  CHECK(contains(error_of([&] { read_npy(p); }), p + ": truncated: expected 16 bytes"));
  p = with_header("d.npy", "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16);
  CHECK(contains(error_of([&] { read_npy(p); }), p + ": dtype '<c8' is not supported"));
  // A record array's dtype is a list: named whole (its first field's text was cut at the comma).
  p = with_header("r.npy", "{'descr': [('a', '<f4'), ('b', '<i8', (2,))], 'fortran_order': False, 'shape': (2,), }", 40);
  CHECK(contains(error_of([&] { read_npy(p); }),
                 p + ": a structured dtype (record array with fields [('a', '<f4'), ('b', '<i8', (2,))]) is not supported"));
  p = with_header("u.npy", "{'descr': [('a', '<f4'), 'fortran_order': False, 'shape': (2,), }", 8);
  CHECK(contains(error_of([&] { read_npy(p); }), p + ": bad .npy header"));
  p = with_header("s.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 16);
  CHECK(contains(error_of([&] { read_npy(p); }), p + ": bad .npy header"));
  p = with_header("n.npy", "{'descr': '<f4', 'fortran_order': False}", 0);
  CHECK(contains(error_of([&] { read_npy(p); }), p + ": bad .npy header: no 'shape'"));
  write_bytes(t / "m.npy", {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0});
  CHECK(contains(error_of([&] { read_npy(t / "m.npy"); }), t / "m.npy" + ": not a .npy file"));
  CHECK(contains(error_of([&] { read_npy_labels(t / "x.npy"); }), t / "x.npy" + ": labels must be a 1-D array"));
}

TEST_CASE(".npy: a header claiming more than the file holds is refused before allocating; pipes are read whole") {
  TempDir t;
  auto npy_bytes = [](const std::string& shape, size_t data_bytes) {
    std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }\n";
    std::string f("\x93NUMPY\x01\x00", 8);
    f += char(h.size() & 0xff);
    f += char(h.size() >> 8);
    f += h;
    for (size_t i = 0; i < data_bytes; ++i) f += char(i * 7);
    return f;
  };
  // 4e12 bytes claimed, 16 present: allocating the tensor first would fail on memory, not name the file.
  std::string huge = npy_bytes("(1000000, 1000000)", 16);
  write_bytes(t / "huge.npy", std::vector<uint8_t>(huge.begin(), huge.end()));
  CHECK(contains(error_of([&] { read_npy_f32(t / "huge.npy"); }),
                 t / "huge.npy" + ": truncated: expected 4000000000000 bytes of data for shape (1000000, 1000000), got 16"));
  CHECK(contains(error_of([&] { read_npy(t / "huge.npy"); }), t / "huge.npy" + ": truncated"));

  // A pipe has no size up front: its bytes are read whole, then checked like a file's.
  auto through_pipe = [](const std::string& bytes, auto&& read) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    REQUIRE(bytes.size() < 65536);  // fits the pipe's buffer: written before it is read
    REQUIRE(write(fds[1], bytes.data(), bytes.size()) == ssize_t(bytes.size()));
    close(fds[1]);
    struct Close {
      int fd;
      ~Close() { close(fd); }
    } closer{fds[0]};
    return read("/dev/fd/" + std::to_string(fds[0]));
  };
  Tensor x({3, 5});
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i) - 6.5f;
  write_npy(t / "x.npy", x);
  std::ifstream in(t / "x.npy", std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Tensor back = through_pipe(file, [](const std::string& p) { return read_npy_f32(p); });
  REQUIRE(back.shape() == x.shape());
  for (size_t i = 0; i < x.size(); ++i) CHECK(back[i] == x[i]);
  const std::string cut = file.substr(0, file.size() - 4);
  CHECK(contains(error_of([&] { through_pipe(cut, [](const std::string& p) { return read_npy_f32(p); }); }),
                 "truncated: expected 60 bytes of data for shape (3, 5), got 56"));
  const std::string longer = file + "xy";
  CHECK(contains(error_of([&] { through_pipe(longer, [](const std::string& p) { return read_npy(p); }); }),
                 "2 bytes of trailing data after the array"));
  CHECK(contains(error_of([&] { read_npy_f32(t.path.string()); }), "is a directory"));
  // An endless stream that is not .npy is refused from its first bytes, not read to the end.
  CHECK(contains(error_of([&] { read_npy_f32("/dev/zero"); }), "/dev/zero: not a .npy file"));

  // Refused files are closed: a reader that kept them open ran out of descriptors under the fuzzer.
  auto open_files = [] {
    int n = 0;
    for (auto it = fs::directory_iterator("/proc/self/fd"); it != fs::directory_iterator(); ++it) ++n;
    return n;
  };
  const int before = open_files();
  for (int i = 0; i < 50; ++i) {
    CHECK_THROWS(read_npy(t / "huge.npy"));
    CHECK_THROWS(read_npy_f32(t / "huge.npy"));
  }
  CHECK(open_files() == before);
}

TEST_CASE("npy:X,Y: uint8 images scaled, NHWC transposed, 80/20 index split") {
  TempDir t;
  std::vector<uint8_t> px(10 * 4 * 5 * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i % 251);
  write_npy_u8(t / "x.npy", {10, 4, 5, 3}, px.data());  // NHWC
  std::vector<int64_t> y;
  for (int i = 0; i < 10; ++i) y.push_back(i % 3);
  write_npy_labels(t / "y.npy", y);
  std::string spec = "npy:" + t / "x.npy" + "," + t / "y.npy";
  Dataset all = load_dataset(spec, "all");
  CHECK(all.x.shape() == Shape{10, 3, 4, 5});
  CHECK(all.classes() == 3);
  // x[n=2, c=1, h=3, w=4] is NHWC element ((2*4+3)*5+4)*3+1.
  CHECK(all.x.at(2, 1, 3, 4) == float((((2 * 4 + 3) * 5 + 4) * 3 + 1) % 251) / 255.f);
  Dataset te = load_dataset(spec, "test");
  CHECK(te.size() == 2);
  CHECK(te.y == std::vector<int>{4 % 3, 9 % 3});
  // The training split (compacted in place) is samples 0-3 and 5-8 of the whole set, in order.
  Dataset tr = load_dataset(spec, "train");
  REQUIRE(tr.size() == 8);
  const size_t per = all.x.sample_size();
  const int kept[] = {0, 1, 2, 3, 5, 6, 7, 8};
  for (int j = 0; j < 8; ++j) {
    CAPTURE(j);
    CHECK(tr.y[j] == all.y[kept[j]]);
    CHECK(std::equal(tr.x.data() + j * per, tr.x.data() + (j + 1) * per, all.x.data() + kept[j] * per));
  }
  write_npy_labels(t / "y9.npy", std::vector<int64_t>(9, 0));
  CHECK(contains(error_of([&] { load_dataset("npy:" + t / "x.npy" + "," + t / "y9.npy", "all"); }),
                 t / "y9.npy" + ": 9 labels but"));
}

TEST_CASE("npy:X,Y reads [N,4,4,4] and [N,C,1,1] as NCHW and [N,H,W,C] images channel-last") {
  TempDir t;
  write_npy_labels(t / "y.npy", {0, 1, 0, 1, 0});
  auto load_x = [&](const Shape& s) {
    Tensor x(s);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i);
    write_npy(t / "x.npy", x);
    return load_dataset("npy:" + t / "x.npy" + "," + t / "y.npy", "all").x;
  };
  // Read as NCHW, element for element (they were taken for channel-last and transposed).
  for (const Shape& nchw : {Shape{5, 4, 4, 4}, Shape{5, 6, 1, 1}, Shape{5, 2, 3, 3}, Shape{5, 3, 4, 4}, Shape{5, 3, 10, 1}}) {
    CAPTURE(nchw.str());
    Tensor x = load_x(nchw);
    CHECK(x.shape() == nchw);
    CHECK(x[x.size() - 7] == float(x.size() - 7));
  }
  Tensor x = load_x(Shape{5, 6, 7, 3});
  REQUIRE(x.shape() == Shape{5, 3, 6, 7});
  CHECK(x.at(4, 2, 5, 6) == float(((4 * 6 + 5) * 7 + 6) * 3 + 2));
  CHECK(is_channel_last(Shape{8, 28, 28, 1}));
  CHECK_FALSE(is_channel_last(Shape{8, 1, 28, 28}));
  CHECK_FALSE(is_channel_last(Shape{8, 3, 32, 32}));
}

TEST_CASE("--split all of train and test images of different sizes names the set and both shapes") {
  TempDir t;
  write_bytes(t / "train-images-idx3-ubyte", idx_images(4, 3, 3));
  write_bytes(t / "train-labels-idx1-ubyte", idx_labels({0, 1, 2, 3}));
  write_bytes(t / "t10k-images-idx3-ubyte", idx_images(2, 2, 2));
  write_bytes(t / "t10k-labels-idx1-ubyte", idx_labels({1, 0}));
  const std::string spec = "mnist:" + t.path.string();
  CHECK(load_dataset(spec, "test").x.shape() == Shape{2, 1, 2, 2});
  const std::string m = error_of([&] { load_dataset(spec, "all"); });
  CHECK(contains(m, spec + ": the train split's samples are [1,3,3], the test split's [1,2,2]"));
  CHECK_THROWS_AS(load_dataset(spec, "all"), DataError);
}

TEST_CASE("toy sets are deterministic per seed, balanced, and train/test differ") {
  for (std::string name : {"moons", "circles", "spirals", "xor"}) {
    CAPTURE(name);
    ToyParams p;
    p.name = name;
    p.n = 301;
    p.seed = 7;
    Dataset a = make_toy(p), b = make_toy(p);
    CHECK(a.x.shape() == Shape{301, 2});
    for (size_t i = 0; i < a.x.size(); ++i) REQUIRE(a.x[i] == b.x[i]);
    std::vector<int> count(a.classes());
    for (int c : a.y) count[c]++;
    CHECK(*std::max_element(count.begin(), count.end()) - *std::min_element(count.begin(), count.end()) <= 1);
    for (size_t i = 0; i < a.x.size(); ++i) REQUIRE(std::isfinite(a.x[i]));
    p.seed = 8;
    Dataset c = make_toy(p);
    CHECK(c.x[0] != a.x[0]);
  }
  Dataset tr = load_dataset("toy:spirals,n=400,k=4,noise=0.01,seed=3", "train");
  Dataset te = load_dataset("toy:spirals,n=400,k=4,noise=0.01,seed=3", "test");
  CHECK(tr.classes() == 4);
  CHECK(tr.size() == 400);
  CHECK(tr.x[0] != te.x[0]);
  CHECK(load_dataset("toy:spirals,n=400,k=4,noise=0.01,seed=3", "all").size() == 800);
  // Spirals: radius in about [0.15, 1] (noise 0.01), arm c at angle 2*pi*(c/k + t).
  for (int i = 0; i < tr.size(); ++i) {
    float r = std::hypot(tr.x[2 * i], tr.x[2 * i + 1]);
    REQUIRE(r > 0.1f);
    REQUIRE(r < 1.06f);
  }
  CHECK(contains(error_of([] { load_dataset("toy:blobs", "train"); }), "toy:blobs: unknown toy set"));
  CHECK(contains(error_of([] { load_dataset("toy:moons,k=3", "train"); }), "k=3 is only for spirals"));
  CHECK(contains(error_of([] { load_dataset("toy:moons,n=abc", "train"); }), "bad value for n: 'abc'"));
  CHECK(contains(error_of([] { load_dataset("toy:moons,m=3", "train"); }), "unknown option 'm=3'"));
}

TEST_CASE("spec errors list the forms and name what is missing") {
  std::string m = error_of([] { load_dataset("mnist", "train"); });
  CHECK(contains(m, "unknown dataset spec 'mnist'"));
  CHECK(contains(m, "cifar10:DIR"));
  CHECK(contains(m, "toy:NAME"));
  CHECK(contains(error_of([] { load_dataset("toy:moons", "val"); }), "split must be train, test or all"));
  CHECK(contains(error_of([] { load_dataset("fashion-mnist:/nonexistent", "test"); }),
                 "/nonexistent/train-images-idx3-ubyte[.gz] not found"));
  CHECK(contains(error_of([] { load_dataset("idx:/nonexistent/a", "test"); }), "expected idx:IMAGES,LABELS"));
  CHECK_FALSE(dataset_available("fashion-mnist:/nonexistent"));
  CHECK_FALSE(dataset_available("nonsense"));
  CHECK(dataset_available("toy:xor"));
}

TEST_CASE("normalization: channel stats, apply then invert is the identity, JSON round trip") {
  Dataset d;
  d.x = Tensor({50, 3, 4, 4});
  Rng rng(5);
  for (size_t i = 0; i < d.x.size(); ++i) d.x[i] = rng.uniform() * float(1 + (i / 16) % 3);
  Normalization n = channel_stats(d);
  REQUIRE(n.mean.size() == 3);
  Tensor x = d.x.clone();
  n.apply(x);
  Dataset nd;
  nd.x = x;
  Normalization after = channel_stats(nd);
  for (int c = 0; c < 3; ++c) {
    CHECK(after.mean[c] == doctest::Approx(0.0).epsilon(1e-4).scale(1));
    CHECK(after.std[c] == doctest::Approx(1.0).epsilon(1e-4));
  }
  n.invert(x);
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(x[i] == doctest::Approx(d.x[i]).epsilon(1e-5));

  Normalization back = Normalization::from_json(n.to_json());
  CHECK(back.mean == n.mean);
  CHECK(back.std == n.std);
  CHECK(Normalization::from_json(Normalization{}.to_json()).empty());
  CHECK(Normalization::from_json(nlohmann::json()).empty());
  CHECK_THROWS_AS(Normalization::from_json(nlohmann::json{{"mean", {0.5}}, {"std", {0.0}}}), DataError);
  CHECK_THROWS_AS(Normalization::from_json(nlohmann::json{{"mean", {0.5, 1}}, {"std", {1}}}), DataError);
  Tensor wrong({2, 2, 4, 4});
  CHECK_THROWS_AS(n.apply(wrong), ShapeError);
}

TEST_CASE("make_batch copies exactly without augmentation, reuses storage, and augments reproducibly") {
  Dataset d;
  d.x = Tensor({6, 2, 5, 5});
  for (size_t i = 0; i < d.x.size(); ++i) d.x[i] = float(i % 97) / 97.f + 0.01f;
  d.y = {0, 1, 2, 0, 1, 2};
  d.class_names = {"a", "b", "c"};
  std::vector<int> order = {5, 3, 1, 0, 2, 4};
  Rng rng(1);
  Tensor x;
  std::vector<int> y;
  make_batch(d, order, 1, 4, Normalization{}, nullptr, rng, x, y);
  CHECK(x.shape() == Shape{3, 2, 5, 5});
  CHECK(y == std::vector<int>{0, 1, 0});
  for (int i = 0; i < 3; ++i)
    for (size_t j = 0; j < x.sample_size(); ++j) REQUIRE(x[i * x.sample_size() + j] == d.x[order[1 + i] * 50 + j]);
  const float* storage = x.data();
  make_batch(d, order, 3, 6, Normalization{}, nullptr, rng, x, y);
  CHECK(x.data() == storage);  // same size: no new allocation
  make_batch(d, order, 0, 2, Normalization{}, nullptr, rng, x, y);
  CHECK(x.data() == storage);  // smaller: reuses the storage too

  // Flip only: each sample is itself or its mirror image, and some of each show up.
  Augment flip;
  flip.hflip = true;
  int mirrored = 0, same = 0;
  std::vector<int> many(60);
  for (int i = 0; i < 60; ++i) many[i] = i % 6;
  make_batch(d, many, 0, 60, Normalization{}, &flip, rng, x, y);
  for (int i = 0; i < 60; ++i) {
    bool is_same = true, is_mirror = true;
    for (int c = 0; c < 2; ++c)
      for (int r = 0; r < 5; ++r)
        for (int w = 0; w < 5; ++w) {
          float v = x.at(i, c, r, w);
          is_same &= v == d.x.at(many[i], c, r, w);
          is_mirror &= v == d.x.at(many[i], c, r, 4 - w);
        }
    REQUIRE((is_same || is_mirror));
    mirrored += is_mirror;
    same += is_same;
  }
  CHECK(mirrored > 10);
  CHECK(same > 10);

  // Crop with padding: every value is 0 (padding) or a pixel of the same sample and channel;
  // the same seed gives the same batch.
  Augment crop;
  crop.crop_pad = 2;
  Rng r1(9), r2(9);
  Tensor xa, xb;
  make_batch(d, many, 0, 60, Normalization{}, &crop, r1, xa, y);
  make_batch(d, many, 0, 60, Normalization{}, &crop, r2, xb, y);
  int zeros = 0;
  for (size_t i = 0; i < xa.size(); ++i) {
    REQUIRE(xa[i] == xb[i]);
    zeros += xa[i] == 0.f;
  }
  CHECK(zeros > 0);

  // Normalization and noise: mean of (batch - normalized copy) is ~0 and its std is noise_std.
  Normalization norm{{0.5f, 0.25f}, {2.f, 4.f}};
  Augment noise;
  noise.noise_std = 0.1f;
  Tensor clean;
  make_batch(d, many, 0, 60, norm, nullptr, rng, clean, y);
  CHECK(clean.at(0, 1, 0, 0) == doctest::Approx((d.x.at(0, 1, 0, 0) - 0.25f) / 4.f));
  make_batch(d, many, 0, 60, norm, &noise, rng, x, y);
  double s = 0, s2 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double e = x[i] - clean[i];
    s += e;
    s2 += e * e;
  }
  double mean = s / double(x.size()), sd = std::sqrt(s2 / double(x.size()) - mean * mean);
  CHECK(std::abs(mean) < 0.01);
  CHECK(sd == doctest::Approx(0.1).epsilon(0.05));
  CHECK_THROWS(make_batch(d, many, 50, 61, norm, nullptr, rng, x, y));
}

TEST_CASE("absolute_spec makes a spec's files and folders absolute and keeps the rest") {
  const std::string cwd = fs::current_path().string();
  CHECK(absolute_spec("npy:x.npy,sub/y.npy") == "npy:" + cwd + "/x.npy," + cwd + "/sub/y.npy");
  CHECK(absolute_spec("idx:../i,l") == "idx:" + cwd + "/../i," + cwd + "/l");
  CHECK(absolute_spec("images:my,dir,c=3,h=8") == "images:" + cwd + "/my,dir,c=3,h=8");  // a folder with a comma
  CHECK(absolute_spec("mnist:./m") == "mnist:" + cwd + "/./m");
  CHECK(absolute_spec("cifar10:/data/c") == "cifar10:/data/c");
  for (const std::string same : {"fashion-mnist", "toy:xor,n=10", "npy:only-one.npy", "nosuch:x", "images:c=3"})
    CHECK(absolute_spec(same) == same);
}

TEST_CASE("seeded shuffling gives the same permutation for the same Rng state") {
  Rng a(3), b(3), c(4);
  std::vector<int> pa = shuffled_order(1000, a), pb = shuffled_order(1000, b), pc = shuffled_order(1000, c);
  CHECK(pa == pb);
  CHECK(pa != pc);
  std::vector<int> sorted = pa;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 1000; ++i) REQUIRE(sorted[i] == i);
  int fixed = 0;
  for (int i = 0; i < 1000; ++i) fixed += pa[i] == i;
  CHECK(fixed < 10);  // a shuffle, not the identity (expected ~1 fixed point)
  CHECK(shuffled_order(0, a).empty());
}

TEST_CASE("real Fashion-MNIST: 60000/10000 samples, 6000/1000 per class") {
  if (!dataset_available("fashion-mnist")) {
    MESSAGE("skipped: Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)");
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  Dataset te = load_dataset("fashion-mnist", "test");
  auto t1 = std::chrono::steady_clock::now();
  Dataset tr = load_dataset("fashion-mnist", "train");
  auto t2 = std::chrono::steady_clock::now();
  MESSAGE("Fashion-MNIST load: test " << std::chrono::duration<double>(t1 - t0).count() << " s, train "
                                      << std::chrono::duration<double>(t2 - t1).count() << " s");
  CHECK(tr.size() == 60000);
  CHECK(te.size() == 10000);
  CHECK(tr.x.shape() == Shape{60000, 1, 28, 28});
  CHECK(te.class_names == fashion_mnist_classes());
  CHECK(te.class_names[9] == "Ankle boot");
  CHECK(te.name == "fashion-mnist:test");
  std::vector<int> htr(10), hte(10);
  for (int v : tr.y) htr[v]++;
  for (int v : te.y) hte[v]++;
  CHECK(htr == std::vector<int>(10, 6000));
  CHECK(hte == std::vector<int>(10, 1000));
  float lo = 1, hi = 0;
  for (size_t i = 0; i < te.x.size(); ++i) lo = std::min(lo, te.x[i]), hi = std::max(hi, te.x[i]);
  CHECK(lo == 0.f);
  CHECK(hi == 1.f);
  Normalization n = channel_stats(tr);
  CHECK(n.mean[0] == doctest::Approx(0.2860).epsilon(0.01));  // the usual Fashion-MNIST statistics
  CHECK(n.std[0] == doctest::Approx(0.3530).epsilon(0.01));
}
