// The threading policy of glassbox, in one place.
//
// The graph splits a batch into groups of rows and runs every layer that treats samples
// independently on several groups at once (Graph::forward/backward); inside such a region each
// thread runs its own single-threaded GEMMs (BlasSerial). Forward passes, and backward passes
// without parameter gradients, hand groups out dynamically (a thread that finishes its share takes
// groups from the others'); a backward pass that sums parameter gradients per thread keeps one
// contiguous share per thread. Layers whose training pass needs whole-batch sums (BatchNorm) get
// partial sums per slice or per group, which the layer combines in part order at one barrier
// (Layer::partial_sums), so a thread count always gives the same bits.
// Per-sample explanation rules see their slice's row offset, so they split too (OpenBox's region()
// runs its unit directions that way). What is not split (a batch of one, rules that are not
// per-sample, runs under a few MFLOP) runs on the calling thread, and there each large GEMM is
// split over all threads (by OpenBLAS, or by gemm() for glassbox's own kernel; blas.h). set_threads() is the one knob (`--threads`, default = the number of
// cores).
#pragma once
#include <functional>
#include <string>

namespace gb {
constexpr int kMaxThreads = 1024;
void set_threads(int n);  // n <= 0: all cores; more than kMaxThreads: std::invalid_argument
int threads();
int hardware_threads();

// Runs fn(0), ..., fn(n - 1) at once, fn(0) on the calling thread and the others on the pool's
// persistent threads; returns when all have returned and rethrows the first exception. A call
// from inside fn runs its n parts one after the other on that thread.
void parallel(int n, const std::function<void(int)>& fn);
bool in_parallel();  // true inside a part of parallel()

// Part t of n equal contiguous parts of [0, size): [begin, end).
inline void part(int t, int n, int size, int& begin, int& end) {
  begin = int(long(size) * t / n);
  end = int(long(size) * (t + 1) / n);
}

// OpenBLAS chooses its GEMM kernels when it is loaded, from the CPU's model number; on CPUs it
// does not know (e.g. virtual machines that hide the model) it falls back to its SSE3 "Prescott"
// kernels, 2-3x slower than the AVX2/AVX-512 ones the CPU runs. This returns the OpenBLAS core
// name (OPENBLAS_CORETYPE) that matches the CPU's instruction sets when OpenBLAS chose a slower
// one, or an empty string when its choice is right (or was set by the user).
std::string better_blas_core();
std::string blas_core();  // the kernels OpenBLAS uses now
bool blas_core_is_avx512(const std::string& core);  // one of OpenBLAS's AVX-512 kernel sets
// The kernels in use and who chose them, for benchmark headers: a CPU's GEMM rate can differ
// 2x between kernels, so a rate means little without them. blas_description() describes this
// process; the four-argument form is its rule (env: OPENBLAS_CORETYPE or null).
std::string blas_description();
std::string blas_description(const std::string& core, const char* env, bool cpu_avx512, const std::string& better);

// Sets the thread count back to what it was at construction when it goes out of scope, also on an
// exception or a failed test: for code that changes set_threads() for a while.
struct RestoreThreads {
  int before = threads();
  RestoreThreads() = default;
  RestoreThreads(const RestoreThreads&) = delete;
  RestoreThreads& operator=(const RestoreThreads&) = delete;
  ~RestoreThreads() { set_threads(before); }
};

// While alive (on any thread; they nest), OpenBLAS runs each GEMM on the thread that calls it.
struct BlasSerial {
  BlasSerial();
  ~BlasSerial();
  BlasSerial(const BlasSerial&) = delete;
  BlasSerial& operator=(const BlasSerial&) = delete;
};
}  // namespace gb
