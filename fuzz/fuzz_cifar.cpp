// CIFAR-10 binary batches.
#include "data/dataset.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = (fuzz::limit_memory(), true);
  (void)once;
  const std::string path = fuzz::write_input(data, size, ".bin");
  try {
    gb::read_cifar10({path});
  } catch (const std::exception&) {
  }
  return 0;
}
