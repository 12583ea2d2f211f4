#include "engine/sizes.h"

#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>

namespace gb {

int64_t mul_size(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (a < 0 || b < 0) throw SizeError(what + ": negative size");
  if (__builtin_mul_overflow(a, b, &r))
    throw SizeError(what + ": " + std::to_string(a) + " x " + std::to_string(b) + " overflows 64 bits");
  return r;
}

int64_t add_size(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (a < 0 || b < 0) throw SizeError(what + ": negative size");
  if (__builtin_add_overflow(a, b, &r))
    throw SizeError(what + ": " + std::to_string(a) + " + " + std::to_string(b) + " overflows 64 bits");
  return r;
}

int64_t count_of(const std::vector<int64_t>& dims, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) throw SizeError(what + ": negative dimension " + std::to_string(d));
    n = mul_size(n, d, what);
  }
  return n;
}

int to_int(int64_t v, const std::string& what, int64_t lo) {
  if (v < lo || v > INT_MAX)
    throw SizeError(what + " = " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " +
                    std::to_string(INT_MAX) + "]");
  return int(v);
}

std::string bytes_text(uint64_t bytes) {
  const char* unit[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) v /= 1024, ++u;
  char buf[48];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
  return buf;
}

uint64_t parse_bytes(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  uint64_t scale = 1;
  std::string suffix = end ? end : "";
  if (suffix == "K" || suffix == "k") scale = 1ull << 10;
  else if (suffix == "M" || suffix == "m") scale = 1ull << 20;
  else if (suffix == "G" || suffix == "g") scale = 1ull << 30;
  else if (suffix == "T" || suffix == "t") scale = 1ull << 40;
  else if (!suffix.empty()) scale = 0;
  // 2^63: the largest byte count that converts to uint64 without overflow (and is plenty). Below
  // one byte is refused: 0.5 became 0, which means "not set", so the default limit applied.
  if (text.empty() || end == text.c_str() || !scale || !(v * double(scale) >= 1) || !(v * double(scale) < 9.2e18))
    throw SizeError(what + ": '" + text + "' is not a byte count (e.g. 512M, 8G, 1000000)");
  return uint64_t(v * double(scale));
}

namespace {

uint64_t default_limit() {
  if (const char* env = std::getenv("GLASSBOX_MAX_MEMORY")) return parse_bytes(env, "GLASSBOX_MAX_MEMORY");
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : uint64_t(16) << 30;
}

std::atomic<uint64_t>& limit() {
  static std::atomic<uint64_t> l{0};  // 0: not set, and not read from the environment yet
  return l;
}

}  // namespace

// The environment is read on first use, not before a set_memory_limit (--max-memory) that makes
// it irrelevant: a bad GLASSBOX_MAX_MEMORY is an error only where it would apply.
uint64_t memory_limit() {
  uint64_t v = limit().load();
  if (v == 0) {
    v = default_limit();
    uint64_t unset = 0;
    if (!limit().compare_exchange_strong(unset, v)) v = unset;  // another thread or a set came first
  }
  return v;
}
void set_memory_limit(uint64_t bytes) { limit().store(bytes); }

void check_memory(uint64_t bytes, const std::string& what) {
  if (bytes > memory_limit())
    throw SizeError(what + " needs " + bytes_text(bytes) + ", more than the memory limit of " +
                    bytes_text(memory_limit()) + " (set by --max-memory or GLASSBOX_MAX_MEMORY)");
}

}  // namespace gb
