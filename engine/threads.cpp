#include "engine/threads.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/blas.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() {}
#endif

namespace gb {

static int g_threads = 0;

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

void set_threads(int n) {
  if (n > kMaxThreads)
    throw std::invalid_argument("threads: " + std::to_string(n) + " is more than " + std::to_string(kMaxThreads));
  g_threads = n > 0 ? n : hardware_threads();
  // OpenBLAS's threads past the cores never help, and each takes a buffer of its own (128 MB):
  // under a memory ulimit, set_threads(100) made OpenBLAS wait forever for one.
  openblas_set_num_threads(std::min(g_threads, hardware_threads()));
}

int threads() { return g_threads ? g_threads : hardware_threads(); }

extern "C" char* openblas_get_corename(void);

std::string blas_core() { return openblas_get_corename(); }

#if defined(__x86_64__)
static bool cpu_has_avx512() {  // the subsets OpenBLAS's SkylakeX kernels use
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
#endif

std::string better_blas_core() {
#if defined(__x86_64__)
  if (std::getenv("OPENBLAS_CORETYPE")) return "";  // the user's choice
  const std::string core = blas_core();
  // OpenBLAS's fallbacks for CPUs it cannot place; any named AVX2/AVX-512 core is left alone.
  const bool generic = core == "Prescott" || core == "Core2" || core == "Penryn" || core == "Nehalem" ||
                       core == "Sandybridge" || core == "Katmai" || core == "Coppermine" || core == "Northwood";
  if (!generic) return "";
  if (cpu_has_avx512()) return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  if (__builtin_cpu_supports("avx") && core != "Sandybridge") return "Sandybridge";
#endif
  return "";
}

bool blas_core_is_avx512(const std::string& core) {
  std::string c;  // OpenBLAS builds for one CPU name it in capitals ("SKYLAKEX")
  for (char ch : core) c += char(std::tolower(static_cast<unsigned char>(ch)));
  return c == "skylakex" || c == "cooperlake" || c == "sapphirerapids";
}

std::string blas_description(const std::string& core, const char* env, bool cpu_avx512, const std::string& better) {
  std::string d = "OpenBLAS " + core + " kernels";
  const bool avx512_kernels = blas_core_is_avx512(core);
  if (env) {
    d += std::string(" (OPENBLAS_CORETYPE=") + env + ")";
    // A fixed choice that leaves this CPU's AVX-512 units to OpenBLAS's AVX2 or older kernels.
    if (cpu_avx512 && !avx512_kernels)
      d += "; this CPU has AVX-512, whose kernels (OPENBLAS_CORETYPE=SkylakeX, or unset) may be faster";
  } else if (!better.empty()) {
    d += " (OpenBLAS's fallback; OPENBLAS_CORETYPE=" + better + " would be faster)";
  }
  return d;
}

std::string blas_description() {
#if defined(__x86_64__)
  const bool avx512 = cpu_has_avx512();
#else
  const bool avx512 = false;
#endif
  const std::string openblas =
      blas_description(blas_core(), std::getenv("OPENBLAS_CORETYPE"), avx512, better_blas_core());
  if (!own_gemm_active()) return openblas;
  return "glassbox's AVX-512 GEMM for A*B and A^T*B; for A*B^T " + openblas;
}

static std::mutex g_serial_m;  // BlasSerial's count and OpenBLAS's thread setting change together
static int g_serial = 0;       // live BlasSerial objects
BlasSerial::BlasSerial() {
  std::lock_guard<std::mutex> l(g_serial_m);
  if (g_serial++ == 0) openblas_set_num_threads(1);
}
BlasSerial::~BlasSerial() {
  std::lock_guard<std::mutex> l(g_serial_m);
  if (--g_serial == 0) openblas_set_num_threads(threads());
}

namespace {

thread_local bool t_inside = false;  // this thread is running a part of parallel()

// Persistent workers. A job is published as one atomic ticket, (generation << 32) | parts, so a
// worker reads which job it is and how many parts it has in one load: a worker that lags behind
// can never pair one job's generation with another's width. A worker spins for a short while
// before sleeping, because the graph publishes one job per run of layers, back to back.
struct Pool {
  std::mutex m;
  std::condition_variable wake;
  std::atomic<uint64_t> ticket{0};
  std::atomic<int> remaining{0};
  const std::function<void(int)>* job = nullptr;  // written before the ticket that announces it
  std::exception_ptr error;
  std::mutex error_m;
  std::vector<std::thread> workers;  // worker i runs part i + 1

  static uint32_t generation_of(uint64_t t) { return uint32_t(t >> 32); }

  void grow(int parts) {
    while (int(workers.size()) < parts - 1) {
      const int id = int(workers.size()) + 1;
      workers.emplace_back([this, id, seen = generation_of(ticket.load())] { loop(id, seen); });
      workers.back().detach();  // the pool lives as long as the process
    }
  }

  void run_part(int id) {
    t_inside = true;
    try {
      (*job)(id);
    } catch (...) {
      std::lock_guard<std::mutex> l(error_m);
      if (!error) error = std::current_exception();
    }
    t_inside = false;
  }

  void loop(int id, uint32_t seen) {
    using clock = std::chrono::steady_clock;
    for (;;) {
      uint64_t t = ticket.load(std::memory_order_acquire);
      auto start = clock::now();
      for (int spin = 0; generation_of(t) == seen; t = ticket.load(std::memory_order_acquire)) {
        cpu_relax();
        if (++spin % 256 == 0 && clock::now() - start > std::chrono::microseconds(50)) {
          std::unique_lock<std::mutex> l(m);
          wake.wait(l, [&] { return generation_of(ticket.load(std::memory_order_acquire)) != seen; });
        }
      }
      seen = generation_of(t);
      if (id < int(t & 0xffffffffu)) {  // this job has a part for this worker
        run_part(id);
        remaining.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  void run(int n, const std::function<void(int)>& fn) {
    grow(n);
    job = &fn;
    error = nullptr;
    remaining.store(n - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> l(m);
      const uint64_t next = uint64_t(generation_of(ticket.load()) + 1) << 32 | uint32_t(n);
      ticket.store(next, std::memory_order_release);
    }
    wake.notify_all();
    run_part(0);
    for (int spin = 0; remaining.load(std::memory_order_acquire) > 0;)
      if (++spin < 4096)
        cpu_relax();
      else
        std::this_thread::yield();
    job = nullptr;
    if (error) std::rethrow_exception(error);
  }
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: its detached threads may outlive static destructors
  return *p;
}

std::mutex g_run_m;  // one job at a time when several user threads call parallel()

}  // namespace

bool in_parallel() { return t_inside; }

void parallel(int n, const std::function<void(int)>& fn) {
  if (n <= 1 || t_inside) {
    for (int t = 0; t < n; ++t) fn(t);
    return;
  }
  std::lock_guard<std::mutex> l(g_run_m);
  pool().run(n, fn);
}

}  // namespace gb
