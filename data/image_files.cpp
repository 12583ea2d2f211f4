// Image files: decoding (stb_image), channel conversion and resizing (stb_image_resize), PNG output
// (stb_image_write), and class-per-subfolder image datasets.
#include <climits>
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "data/images.h"
#include "data/io_util.h"

namespace gb {

namespace fs = std::filesystem;
using detail::fail;

namespace {

uint32_t le(std::span<const uint8_t> b, size_t at, int n) {
  uint32_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint32_t(b[at + i]) << (8 * i);
  return v;
}

// Binary PGM/PPM (P5/P6), read here before stb sees it: stb's header parser overflows int on long
// numbers (found by fuzz_image), and decodes a truncated file from uninitialized memory. The
// header fields are bounded, and the pixel bytes it declares must be in the file.
void check_pnm(const std::string& path, std::span<const uint8_t> b) {
  size_t i = 2;
  int64_t f[3] = {0, 0, 0};  // width, height, maxval
  for (int k = 0; k < 3; ++k) {
    while (i < b.size() && (std::isspace(b[i]) || b[i] == '#')) {
      if (b[i] == '#')
        while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
      else
        ++i;
    }
    const size_t start = i;
    while (i < b.size() && std::isdigit(b[i]) && i - start < 9) f[k] = f[k] * 10 + (b[i++] - '0');
    if (i == start || (i < b.size() && std::isdigit(b[i])))
      fail(path, "bad PNM header: " + std::string(k == 0 ? "width" : k == 1 ? "height" : "maximum value") +
                     (i == start ? " missing" : " too large"));
  }
  ++i;  // the single whitespace before the pixels
  const int64_t w = f[0], h = f[1], maxval = f[2];
  if (w <= 0 || h <= 0 || maxval <= 0 || maxval > 65535)
    fail(path, "bad PNM header: " + std::to_string(w) + "x" + std::to_string(h) + " pixels, maximum value " +
                   std::to_string(maxval));
  if (w > kMaxImageSide || h > kMaxImageSide || w * h > kMaxImagePixels)  // w, h < 10^9: no overflow
    fail(path, "image of " + std::to_string(w) + "x" + std::to_string(h) + " pixels is larger than the limit (" +
                   std::to_string(kMaxImageSide) + " pixels a side, " + std::to_string(kMaxImagePixels) +
                   " pixels in all)");
  const int64_t channels = b[1] == '6' ? 3 : 1, depth = maxval > 255 ? 2 : 1;
  const int64_t need = w * h * channels * depth;
  const int64_t have = i <= b.size() ? int64_t(b.size() - i) : 0;
  if (have < need)
    fail(path, "truncated: the PNM header declares " + std::to_string(w) + "x" + std::to_string(h) + " pixels (" +
                   std::to_string(need) + " bytes), the file holds " + std::to_string(have));
}

// Uncompressed BMP: rows of the declared size must be in the file.
void check_bmp_data(const std::string& path, std::span<const uint8_t> b, int64_t w, int64_t h) {
  if (b.size() < 34) fail(path, "truncated BMP header");
  const int64_t offset = le(b, 10, 4), bpp = le(b, 28, 2), compression = le(b, 30, 4);
  // stb refuses RLE (1, 2) itself and reads every other value as uncompressed rows: a 66-byte file
  // with compression 0xFFFFFFFF decoded 4867x10498 pixels from nothing (found by fuzz_image).
  if (compression == 1 || compression == 2) return;
  const int64_t row = (w * bpp + 31) / 32 * 4;
  const int64_t need = offset + row * h;
  if (int64_t(b.size()) < need)
    fail(path, "truncated: the BMP header declares " + std::to_string(w) + "x" + std::to_string(h) + " pixels at " +
                   std::to_string(bpp) + " bits (" + std::to_string(need) + " bytes), the file holds " +
                   std::to_string(b.size()));
}

// PNG chunks must fit in the file: stb grows its buffer to what an IDAT chunk declares (a 100-byte
// file claimed 2^30 bytes and stb allocated 2 GB; found by fuzz_image). It also copies an empty
// first IDAT chunk from a null buffer (undefined behaviour); no encoder writes one, so it is refused.
void check_png_chunks(const std::string& path, std::span<const uint8_t> b) {
  bool seen_data = false;
  for (uint64_t at = 8; at + 8 <= b.size();) {
    const uint64_t len = uint64_t(b[at]) << 24 | uint64_t(b[at + 1]) << 16 | uint64_t(b[at + 2]) << 8 | b[at + 3];
    const std::string type(reinterpret_cast<const char*>(&b[at + 4]), 4);
    if (at + 12 + len > b.size())
      fail(path, "truncated PNG: chunk '" + type + "' declares " + std::to_string(len) + " bytes, the file holds " +
                     std::to_string(b.size() - at - 8));
    if (type == "IDAT") {
      if (len == 0 && !seen_data) fail(path, "PNG whose first IDAT chunk is empty (not supported)");
      seen_data = true;
    }
    if (type == "IEND") return;
    at += 12 + len;
  }
}

// JPEG Huffman tables (DHT segments) may define at most 256 codes: Debian's stb_image fills its
// 257-entry tables by the declared counts before checking them (an out-of-bounds write found by
// fuzz_image). stb finds markers more loosely than the standard: any run of 0xFF before a marker
// byte (also before SOI), padding between header segments, and any marker inside entropy-coded
// data once it stops decoding. So this walk follows stb up to the first scan and, from there on,
// checks every 0xFF..0xC4 in the file: a false alarm needs that pair inside a later APP segment.
void check_dht_tables(const std::string& path, std::span<const uint8_t> b, uint64_t at) {
  auto byte = [&](uint64_t i) -> unsigned { return i < b.size() ? b[i] : 0; };  // stb reads 0 past the end
  int64_t left = int64_t(byte(at) << 8 | byte(at + 1)) - 2;
  for (at += 2; left > 0;) {
    const unsigned q = byte(at);
    if ((q >> 4) > 1 || (q & 15) > 3) return;  // stb refuses the header itself
    uint64_t codes = 0;
    for (int i = 1; i <= 16; ++i) codes += byte(at + i);
    if (codes > 256) fail(path, "bad JPEG Huffman table: " + std::to_string(codes) + " codes (at most 256)");
    at += 17 + codes;
    left -= int64_t(17 + codes);
  }
}

void check_jpeg_huffman(const std::string& path, std::span<const uint8_t> b) {
  uint64_t at = 0;
  while (at < b.size() && b[at] == 0xFF) ++at;
  if (at == 0 || at >= b.size() || b[at] != 0xD8) return;  // not a JPEG to stb
  for (++at; at < b.size();) {
    if (b[at] != 0xFF) {  // padding between segments (stb skips it in the header)
      ++at;
      continue;
    }
    while (at < b.size() && b[at] == 0xFF) ++at;  // fill bytes
    if (at + 1 > b.size()) return;
    const uint8_t m = b[at++];
    if (m == 0xD9) return;                                  // EOI
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;  // no length (stb refuses most)
    if (at + 2 > b.size()) fail(path, "truncated JPEG: a segment header runs past the end of the file");
    const uint64_t end = at + (uint64_t(b[at]) << 8 | b[at + 1]);
    if (end > b.size()) fail(path, "truncated JPEG: a segment runs past the end of the file");
    if (m == 0xC4) check_dht_tables(path, b, at);
    at = std::max(end, at + 2);
    if (m == 0xDA) break;  // a scan: its data may hide a marker wherever stb stops decoding
  }
  for (; at + 1 < b.size(); ++at)
    if (b[at] == 0xFF) {
      uint64_t m = at + 1;
      while (m < b.size() && b[m] == 0xFF) ++m;
      if (m < b.size() && b[m] == 0xC4) check_dht_tables(path, b, m + 1);
    }
}

}  // namespace

void check_image_header(const std::string& path, std::span<const uint8_t> bytes) {
  int w = 0, h = 0, c = 0;
  if (bytes.size() > size_t(INT32_MAX)) fail(path, "too large for an image file");
  if (bytes.size() >= 2 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6')) return check_pnm(path, bytes);
  // Before stb reads any JPEG header: its header reader builds the Huffman tables.
  if (!bytes.empty() && bytes[0] == 0xFF) check_jpeg_huffman(path, bytes);
  if (!stbi_info_from_memory(bytes.data(), int(bytes.size()), &w, &h, &c)) return;  // stb_load names the problem
  // A top-down BMP stores its height negative (a valid layout; stb reports it as stored and flips
  // the rows when it decodes): the image is |h| rows.
  const bool bmp = bytes.size() >= 2 && bytes[0] == 'B' && bytes[1] == 'M';
  if (bmp && h < 0 && h != INT_MIN) h = -h;
  if (w <= 0 || h <= 0) fail(path, "image of " + std::to_string(w) + "x" + std::to_string(h) + " pixels");
  if (w > kMaxImageSide || h > kMaxImageSide || int64_t(w) * h > kMaxImagePixels)
    fail(path, "image of " + std::to_string(w) + "x" + std::to_string(h) + " pixels is larger than the limit (" +
                   std::to_string(kMaxImageSide) + " pixels a side, " + std::to_string(kMaxImagePixels) +
                   " pixels in all)");
  if (bmp) check_bmp_data(path, bytes, w, h);
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), "\x89PNG", 4) == 0) check_png_chunks(path, bytes);
  // PNG and JPEG are compressed: their decoders stop at the end of the data, and the pixel cap
  // bounds what a small file can make them allocate.
}

Image read_image(const std::string& path) {
  // (An uncompressed 64 Mpx image of 4 channels of 16 bits and its header; /dev/zero ends here.)
  const ByteBuffer bytes = detail::read_all(path, 8 * uint64_t(kMaxImagePixels) + (1 << 20),
                                            "larger than an image of the pixel limit (" +
                                                std::to_string(kMaxImagePixels) + " pixels) could be");
  if (bytes.empty()) fail(path, "empty file, not an image");
  check_image_header(path, bytes);
  Image img;
  uint8_t* p = stbi_load_from_memory(bytes.data(), int(bytes.size()), &img.w, &img.h, &img.channels, 0);
  if (!p) {
    std::string why = stbi_failure_reason() ? stbi_failure_reason() : "";
    if (why.empty()) why = "truncated or corrupt image data";  // (a PNG cut inside a chunk header said nothing)
    // ASCII PNM (P1-P3) is PNM too, but only binary P5/P6 is read.
    if (why == "unknown image type") why = "not a PNG, JPEG, BMP or binary PNM (P5/P6) image";
    fail(path, "cannot read image: " + why);
  }
  img.pixels.assign(p, p + size_t(img.w) * img.h * img.channels);
  stbi_image_free(p);
  return img;
}

Tensor image_to_tensor(const Image& img, const Shape& sample, const std::string& what) {
  int C, H, W;
  if (sample.rank == 0) {
    C = img.channels <= 2 ? 1 : 3;
    H = img.h;
    W = img.w;
  } else {
    if (sample.rank != 3 || sample[1] <= 0 || sample[2] <= 0)
      throw DataError(what + ": cannot convert an image to input shape " + sample.str() + " (expected [C,H,W])");
    C = sample[0];
    H = sample[1];
    W = sample[2];
    if (C != 1 && C != 3)
      throw DataError(what + ": cannot convert a " + std::to_string(img.channels) + "-channel image to " +
                      std::to_string(C) + " channels (input shape " + sample.str() + "; only 1 = gray or 3 = RGB)");
  }
  if (img.w <= 0 || img.h <= 0 || img.channels < 1 || img.channels > 4 ||
      img.pixels.size() != size_t(img.w) * img.h * img.channels)
    throw DataError(what + ": malformed image in memory");
  // Interleaved float [h,w,C] first: stb_image_resize works on interleaved pixels.
  const size_t np = size_t(img.w) * img.h;
  std::vector<float> hwc(np * C);
  const uint8_t* p = img.pixels.data();
  const int sc = img.channels;
  const bool src_gray = sc <= 2;
  for (size_t i = 0; i < np; ++i, p += sc) {
    if (src_gray) {
      float v = p[0] / 255.f;
      for (int c = 0; c < C; ++c) hwc[i * C + c] = v;
    } else if (C == 3) {
      for (int c = 0; c < 3; ++c) hwc[i * 3 + c] = p[c] / 255.f;
    } else {
      hwc[i] = (0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]) / 255.f;
    }
  }
  if (H != img.h || W != img.w) {
    std::vector<float> out(size_t(H) * W * C);
    if (!stbir_resize_float(hwc.data(), img.w, img.h, 0, out.data(), W, H, 0, C))
      throw DataError(what + ": cannot resize " + std::to_string(img.w) + "x" + std::to_string(img.h) + " to " +
                      std::to_string(W) + "x" + std::to_string(H));
    hwc.swap(out);
  }
  Tensor t(Shape{1, C, H, W});
  float* o = t.data();
  const size_t plane = size_t(H) * W;
  for (int c = 0; c < C; ++c)
    for (size_t i = 0; i < plane; ++i)  // resampling filters overshoot a little at edges
      o[c * plane + i] = std::clamp(hwc[i * C + c], 0.f, 1.f);
  return t;
}

Tensor load_image(const std::string& path, const Shape& sample) { return image_to_tensor(read_image(path), sample, path); }

void write_png(const std::string& path, int w, int h, int channels, const uint8_t* pixels) {
  if (w <= 0 || h <= 0 || channels < 1 || channels > 4 || !pixels)
    fail(path, "cannot write a PNG of " + std::to_string(w) + "x" + std::to_string(h) + " pixels with " +
                   std::to_string(channels) + " channels");
  std::vector<uint8_t> png;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  if (!stbi_write_png_to_func(sink, &png, w, h, channels, pixels, w * channels)) fail(path, "PNG encoding failed");
  detail::write_atomic(path, png.data(), png.size());
}

void write_png(const std::string& path, const Tensor& image) {
  Shape s = image.shape();
  if (s.rank == 4 && s[0] == 1) s = s.sample();
  if (s.rank != 3 || (s[0] != 1 && s[0] != 3))
    fail(path, "cannot write a tensor of shape " + image.shape().str() + " as a PNG (expected [C,H,W], C 1 or 3)");
  const int C = s[0], H = s[1], W = s[2];
  const size_t plane = size_t(H) * W;
  std::vector<uint8_t> px(plane * C);
  const float* x = image.data();
  for (int c = 0; c < C; ++c)
    for (size_t i = 0; i < plane; ++i) {
      float v = x[c * plane + i];
      v = std::isnan(v) ? 0.f : std::clamp(v, 0.f, 1.f);
      px[i * C + c] = uint8_t(std::lround(v * 255.f));
    }
  write_png(path, W, H, C, px.data());
}

bool has_image_extension(const std::string& name) {
  std::string e = fs::path(name).extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".pgm" || e == ".ppm" || e == ".pnm";
}

namespace {

std::vector<fs::path> sorted_entries(const fs::path& dir, bool dirs) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // hidden files, editor droppings
    std::error_code ec2;
    if (dirs ? e.is_directory(ec2) : (e.is_regular_file(ec2) && has_image_extension(e.path().string()))) out.push_back(e.path());
  }
  if (ec) throw DataError(dir.string() + ": cannot list: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::vector<std::string> image_files_in(const std::string& dir) {
  std::vector<std::string> files;
  for (const fs::path& f : sorted_entries(dir, false)) files.push_back(f.string());
  return files;
}

std::vector<std::string> image_folder_classes(const std::string& dir) {
  if (!detail::is_dir(dir)) fail(dir, "not a directory (images:DIR expects DIR/<class>/<image files>)");
  std::vector<std::string> names;
  for (auto& sd : sorted_entries(dir, true)) names.push_back(sd.filename().string());
  if (names.empty()) fail(dir, "no class subfolders (expected DIR/<class>/<image files>)");
  return names;
}

Shape image_folder_sample(const std::string& dir) {
  image_folder_classes(dir);  // for its errors
  for (auto& sd : sorted_entries(dir, true)) {
    auto files = sorted_entries(sd, false);
    if (!files.empty()) return load_image(files[0].string(), Shape{}).shape().sample();
  }
  fail(dir, "no image files (.png, .jpg, .bmp, .pgm/.ppm) in its class subfolders");
}

Dataset load_image_folder(const std::string& dir, const Shape& sample, const std::vector<std::string>& class_names) {
  if (!detail::is_dir(dir)) fail(dir, "not a directory (images:DIR expects DIR/<class>/<image files>)");
  std::vector<fs::path> subdirs = sorted_entries(dir, true);
  if (subdirs.empty()) fail(dir, "no class subfolders (expected DIR/<class>/<image files>)");
  Dataset d;
  d.name = dir;
  std::vector<std::pair<fs::path, int>> files;
  if (!class_names.empty()) d.class_names = class_names;
  for (auto& sd : subdirs) {
    std::string cls = sd.filename().string();
    int label;
    if (class_names.empty()) {
      label = int(d.class_names.size());
      d.class_names.push_back(cls);
    } else {
      auto it = std::find(class_names.begin(), class_names.end(), cls);
      if (it == class_names.end()) fail(sd.string(), "class folder '" + cls + "' is not among the training classes");
      label = int(it - class_names.begin());
    }
    for (auto& f : sorted_entries(sd, false)) files.emplace_back(f, label);
  }
  if (files.empty()) fail(dir, "no image files (.png, .jpg, .bmp, .pgm/.ppm) in its class subfolders");
  Shape s = sample;
  Tensor first;
  if (s.rank == 0) {
    first = load_image(files[0].first.string(), Shape{});
    s = first.shape().sample();
  }
  d.x = Tensor(Shape::batch_of(int(files.size()), s));
  d.y.resize(files.size());
  const size_t per = d.x.sample_size();
  for (size_t i = 0; i < files.size(); ++i) {
    Tensor t = (i == 0 && !first.empty()) ? first : load_image(files[i].first.string(), s);
    std::memcpy(d.x.data() + i * per, t.data(), per * sizeof(float));
    d.y[i] = files[i].second;
  }
  return d;
}

}  // namespace gb
