// Image files (PNG, JPEG, BMP, PNM through stb_image, after glassbox's header checks), then the
// conversion to a model's input (resize, channels).
#include "data/images.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool once = (fuzz::limit_memory(), true);
  (void)once;
  const std::string path = fuzz::write_input(data, size, ".img");
  try {
    gb::Image img = gb::read_image(path);
    gb::image_to_tensor(img, gb::Shape{1, 28, 28}, path);
  } catch (const std::exception&) {
  }
  return 0;
}
