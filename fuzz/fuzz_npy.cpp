// .npy arrays: read_npy, the float conversion and the labels reader.
#include "data/npy.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = (fuzz::limit_memory(), true);
  (void)once;
  const std::string path = fuzz::write_input(data, size, ".npy");
  try {
    gb::read_npy_f32(path);
  } catch (const std::exception&) {
  }
  try {
    gb::read_npy_labels(path);
  } catch (const std::exception&) {
  }
  return 0;
}
