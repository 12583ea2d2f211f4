// CIFAR-10 binary version: each record is 1 label byte and 3072 pixel bytes (R, G, B planes of 32x32),
// which is already NCHW, so a record copies straight into x.
#include <filesystem>

#include "data/dataset.h"
#include "data/io_util.h"
#include "engine/sizes.h"

namespace gb {

using detail::fail;

const std::vector<std::string>& cifar10_classes() {
  static const std::vector<std::string> names{"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

Dataset read_cifar10(const std::vector<std::string>& files) {
  constexpr size_t kPixels = 3 * 32 * 32, kRecord = kPixels + 1;
  if (files.empty()) throw DataError("cifar10: no files given");
  // Sizes first (cheap, and every bad file is reported before anything big is allocated), then one
  // file at a time so only one raw file is in memory beside x.
  std::vector<size_t> records;
  size_t n = 0;
  for (auto& path : files) {
    std::error_code ec;
    if (detail::is_dir(path)) fail(path, "is a directory, expected a CIFAR-10 batch file");
    auto size = std::filesystem::file_size(path, ec);
    if (ec) fail(path, "cannot open: " + ec.message());
    if (size == 0) fail(path, "empty file, expected 3073-byte CIFAR-10 records");
    if (size % kRecord != 0) {
      std::string hint = size % (kRecord + 1) == 0 ? " (3074-byte records are CIFAR-100, which is not supported)" : "";
      fail(path, "size " + std::to_string(size) + " bytes is not a whole number of 3073-byte CIFAR-10 records" + hint);
    }
    records.push_back(size / kRecord);
    n += records.back();
  }
  Dataset d;
  d.class_names = cifar10_classes();
  d.x = Tensor(Shape{to_int(int64_t(n), "cifar10: records in all files"), 3, 32, 32});
  d.y.resize(n);
  float* x = d.x.data();
  size_t i = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const ByteBuffer blob = detail::read_all(files[f], records[f] * kRecord, "changed size while being read");
    if (blob.size() != records[f] * kRecord) fail(files[f], "changed size while being read");
    const uint8_t* p = blob.data();
    for (size_t r = 0; r < records[f]; ++r, ++i, p += kRecord) {
      if (p[0] >= 10)
        fail(files[f], "label " + std::to_string(p[0]) + " in record " + std::to_string(r) +
                           " is out of range (CIFAR-10 has 10 classes)");
      d.y[i] = p[0];
      float* o = x + i * kPixels;
      for (size_t k = 0; k < kPixels; ++k) o[k] = float(p[1 + k]) / 255.f;
    }
  }
  d.name = files.size() == 1 ? files[0] : files[0] + " (+" + std::to_string(files.size() - 1) + " files)";
  return d;
}

}  // namespace gb
