// Model files: read_safetensors, then load_model (architecture JSON from the metadata, parameters).
#include "engine/model_file.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = (fuzz::limit_memory(), true);
  (void)once;
  const std::string path = fuzz::write_input(data, size, ".safetensors");
  try {
    gb::load_model(path);
  } catch (const std::exception&) {
  }
  try {
    gb::read_safetensors(path);
  } catch (const std::exception&) {
  }
  return 0;
}
