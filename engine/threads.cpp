#include "engine/threads.h"

#include <cblas.h>

#include <thread>

namespace gb {

static int g_threads = 0;

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

void set_threads(int n) {
  g_threads = n > 0 ? n : hardware_threads();
  openblas_set_num_threads(g_threads);
}

int threads() { return g_threads ? g_threads : hardware_threads(); }

}  // namespace gb
