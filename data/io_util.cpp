#include "data/io_util.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/model_file.h"

namespace gb::detail {

namespace fs = std::filesystem;

std::string hex(uint64_t v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llX", digits, (unsigned long long)v);
  return buf;
}

bool is_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

bool is_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

ByteBuffer read_all(const std::string& path, uint64_t max_bytes, const std::string& too_large) {
  if (is_dir(path)) fail(path, "is a directory, expected a file");
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
  ByteBuffer out;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);  // (none for a pipe or a device)
  if (!ec && size > max_bytes) {
    std::fclose(f);
    fail(path, std::to_string(size) + " bytes: " + too_large);
  }
  if (!ec) out.reserve(size);
  const bool bad = !read_rest(f, out, max_bytes);
  std::fclose(f);
  if (bad) fail(path, "read error");
  if (out.size() > max_bytes) fail(path, "more than " + std::to_string(max_bytes) + " bytes: " + too_large);
  return out;
}

bool read_rest(std::FILE* f, ByteBuffer& out, uint64_t max_bytes) {
  // By chunks (not by a size taken up front): this also works for pipes and files that change size.
  // Stops one byte past max_bytes (an endless stream such as /dev/zero).
  uint8_t chunk[1 << 16];
  size_t got;
  while (out.size() <= max_bytes && (got = std::fread(chunk, 1, sizeof chunk, f)) > 0)
    out.insert(out.end(), chunk, chunk + std::min<uint64_t>(got, max_bytes + 1 - out.size()));
  return !std::ferror(f);
}

void write_atomic(const std::string& path, const void* data, size_t n) {
  try {
    atomic_write(path, data, n);
  } catch (const ModelFileError& e) {
    // Kept: a folder is IsADirectoryError in Python and a failed write (a full disk) OSError, as
    // save()'s.
    if (e.kind == ModelFileError::Kind::folder || e.kind == ModelFileError::Kind::io) throw;
    throw DataError(e.what());
  } catch (const std::runtime_error& e) {
    throw DataError(e.what());
  }
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    parts.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) return parts;
    start = p + 1;
  }
}

}  // namespace gb::detail
