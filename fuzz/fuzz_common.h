// Shared by the libFuzzer targets: the readers take paths, so each input is written to a file in
// /dev/shm (memory) first. An exception is a clean refusal; only crashes, sanitizer reports,
// hangs and out-of-memory count as findings.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "engine/sizes.h"

namespace fuzz {

inline std::string scratch(const char* suffix) {
  const char* dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/glassbox_fuzz_" + std::to_string(::getpid()) + suffix;
}

inline std::string write_input(const uint8_t* data, size_t size, const char* suffix) {
  const std::string path = scratch(suffix);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

// Inputs may claim sizes the fuzzer's RSS limit (2 GB) would kill: the engine's memory budget
// refuses them with a named error instead, as a user's --max-memory would.
inline void limit_memory() { gb::set_memory_limit(uint64_t(256) << 20); }

}  // namespace fuzz
