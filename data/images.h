// Image files through stb_image (PNG, JPEG, BMP, PNM) and PNG writing through stb_image_write.
// The stb implementations are compiled once, in data/stb_impl.cpp; other libraries call these
// functions rather than including stb's implementations themselves.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace gb {

// 8-bit pixels as stored, row-major, interleaved channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).
struct Image {
  int w = 0, h = 0, channels = 0;
  std::vector<uint8_t> pixels;
};
// Images larger than this are refused before decoding (a 66-byte header can claim 20000x20000).
constexpr int kMaxImageSide = 16384;
constexpr int64_t kMaxImagePixels = int64_t(1) << 26;  // 64 Mpx: 8192x8192
// Reads an image file. The header is checked first: dimensions within the limits above, and for
// the uncompressed formats (binary PNM, BMP) the declared pixels present in the file.
Image read_image(const std::string& path);
// The header check alone, for bytes already in memory (read_image calls it; so does the fuzzer).
void check_image_header(const std::string& path, std::span<const uint8_t> bytes);

// [1,C,H,W] in [0,1] for sample = [C,H,W] with C 1 or 3: gray <-> RGB conversion (RGB -> gray by
// luminance 0.299 R + 0.587 G + 0.114 B; alpha is dropped) and resizing with stb_image_resize.
// An empty sample (Shape{}) keeps the file's size, and C = 1 for gray files, else 3.
Tensor load_image(const std::string& path, const Shape& sample);
// The same conversion for pixels already in memory.
Tensor image_to_tensor(const Image& img, const Shape& sample, const std::string& what = "image");

// Writes a PNG; channels 1..4, pixels row-major interleaved. Atomic (temp file + rename).
void write_png(const std::string& path, int w, int h, int channels, const uint8_t* pixels);
// Writes [C,H,W] or [1,C,H,W] (C 1 or 3) with values in [0,1] (clamped) as a PNG.
void write_png(const std::string& path, const Tensor& image);

// Whether a file name ends in an image extension read above (.png, .jpg, .jpeg, .bmp, .pgm, .ppm,
// .pnm; any case): the files image folders take.
bool has_image_extension(const std::string& name);
// The image files directly in `dir`, sorted by name, hidden ones (".name") skipped, as the image
// folder readers list them (load_image_folder in each class subfolder); a folder that cannot be
// listed is a DataError.
std::vector<std::string> image_files_in(const std::string& dir);

// DIR/<class>/<image files> as one dataset, every image converted to sample ([C,H,W]) or, when it is
// empty, to the first image's size and channels. Class names = sorted subfolder names; files in
// each class are sorted by name. Files whose extension is not an image's are skipped.
// What load_image_folder would use without a sample: the first image's converted shape [C,H,W], and
// the sorted class subfolder names.
Shape image_folder_sample(const std::string& dir);
std::vector<std::string> image_folder_classes(const std::string& dir);
Dataset load_image_folder(const std::string& dir, const Shape& sample = Shape{},
                          const std::vector<std::string>& class_names = {});

}  // namespace gb
