// Small file helpers shared by the readers (internal to data/): errors that name the file, whole-file
// reads, and atomic writes (temp file beside the target, then rename).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace gb::detail {

[[noreturn]] inline void fail(const std::string& path, const std::string& msg) { throw DataError(path + ": " + msg); }

std::string hex(uint64_t v, int digits);  // "0x00000803"
bool is_file(const std::string& path);
bool is_dir(const std::string& path);
// The whole file; errors name it (missing, a directory, unreadable, or more than max_bytes: the
// error then says `too_large`; a pipe or a device is read no further).
ByteBuffer read_all(const std::string& path, uint64_t max_bytes, const std::string& too_large);
// Appends what is left of an open file to out, up to one byte past max_bytes; false on a read error.
bool read_rest(std::FILE* f, ByteBuffer& out, uint64_t max_bytes);
// gb::atomic_write (engine/model_file.h): a malformed path is a DataError; a folder in the way, a
// failed or short write stay ModelFileError (their kinds map to IsADirectoryError/OSError).
void write_atomic(const std::string& path, const void* data, size_t n);
// Splits on sep, keeping empty parts.
std::vector<std::string> split(const std::string& s, char sep);

}  // namespace gb::detail
