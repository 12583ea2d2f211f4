// IDX (MNIST) files, plain or gzip: the input is split at its first byte into an images file and
// a labels file, so both headers and their agreement are explored.
#include <algorithm>

#include "data/dataset.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = (fuzz::limit_memory(), true);
  (void)once;
  if (size < 1) return 0;
  const size_t cut = std::min(size - 1, size_t(data[0]) * 4);
  const std::string images = fuzz::write_input(data + 1, cut, "-images.idx");
  const std::string labels = fuzz::write_input(data + 1 + cut, size - 1 - cut, "-labels.idx");
  try {
    gb::read_idx(images, labels);
  } catch (const std::exception&) {
  }
  return 0;
}
