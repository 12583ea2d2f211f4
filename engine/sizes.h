// Sizes that come from outside (file headers, architecture text and JSON, flags) are computed here:
// in 64 bits, every product and sum checked for overflow, and converted to int only when they fit,
// so a hostile header or flag ends in an error naming the field instead of a wrapped size.
// Large allocations go through check_memory first, which names what needs how much.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace gb {

// A size that overflows, is negative, or is larger than a documented limit.
struct SizeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// a*b and a+b for non-negative a, b; SizeError("<what>: ... overflows") when the result does not
// fit in int64.
int64_t mul_size(int64_t a, int64_t b, const std::string& what);
int64_t add_size(int64_t a, int64_t b, const std::string& what);
// The product of dims (each >= 0), checked; what names the field in errors.
int64_t count_of(const std::vector<int64_t>& dims, const std::string& what);
// v as an int, or SizeError("<what> = v is out of range [lo, INT_MAX]") when it does not fit.
int to_int(int64_t v, const std::string& what, int64_t lo = 0);

// The memory budget: an allocation larger than this many bytes is refused by check_memory. The
// default is the machine's physical memory; GLASSBOX_MAX_MEMORY (bytes, or with a K/M/G/T suffix)
// or glassbox --max-memory sets it.
uint64_t memory_limit();
void set_memory_limit(uint64_t bytes);
// Parses "512M", "8G", "1000000" (bytes); throws SizeError naming `what` when malformed.
uint64_t parse_bytes(const std::string& text, const std::string& what);
// SizeError("<what> needs N GB, more than the memory limit of M GB (--max-memory)") when bytes
// exceeds memory_limit().
void check_memory(uint64_t bytes, const std::string& what);
std::string bytes_text(uint64_t bytes);  // "1.5 GB"

}  // namespace gb
