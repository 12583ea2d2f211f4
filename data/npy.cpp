// .npy: "\x93NUMPY", major, minor, header length (u16 in 1.0, u32 in 2.0/3.0), then a Python dict
// literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, C), } padded with spaces and '\n'.
#include "data/npy.h"

#include <bit>
#include <cstring>

#include "data/io_util.h"
#include "engine/sizes.h"

namespace gb {

static_assert(std::endian::native == std::endian::little, "the .npy code assumes a little-endian host");

using detail::fail;

size_t NpyArray::count() const { return size_t(count_of(shape, ".npy shape")); }

namespace {

size_t item_size(const std::string& path, const std::string& descr) {
  if (descr == "<f4" || descr == "<i4") return 4;
  if (descr == "<f8" || descr == "<i8") return 8;
  if (descr == "|u1" || descr == "<u1" || descr == "u1") return 1;
  if (!descr.empty() && descr[0] == '>') fail(path, "big-endian dtype '" + descr + "' is not supported");
  fail(path, "dtype '" + descr + "' is not supported (float32 '<f4', uint8 '|u1', int64 '<i8', int32 '<i4', float64 '<f8')");
}

// The value after 'key': in the header dict, as raw text up to the next top-level comma or brace.
std::string dict_value(const std::string& path, const std::string& h, const std::string& key) {
  size_t k = h.find("'" + key + "'");
  if (k == std::string::npos) k = h.find("\"" + key + "\"");
  if (k == std::string::npos) fail(path, "bad .npy header: no '" + key + "' in " + h);
  size_t colon = h.find(':', k + key.size() + 2);
  if (colon == std::string::npos) fail(path, "bad .npy header: no value for '" + key + "'");
  size_t i = colon + 1;
  while (i < h.size() && h[i] == ' ') ++i;
  size_t end = i;
  if (i < h.size() && h[i] == '(') {
    end = h.find(')', i);
    if (end == std::string::npos) fail(path, "bad .npy header: unterminated shape");
    return h.substr(i, end - i + 1);
  }
  if (i < h.size() && (h[i] == '\'' || h[i] == '"')) {
    end = h.find(h[i], i + 1);
    if (end == std::string::npos) fail(path, "bad .npy header: unterminated string");
    return h.substr(i + 1, end - i - 1);
  }
  while (end < h.size() && h[end] != ',' && h[end] != '}') ++end;
  std::string v = h.substr(i, end - i);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

std::string header_text(const std::string& descr, const std::vector<int64_t>& shape) {
  std::string s = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";  // Python's one-element tuple
  s += "), }";
  return s;
}

void write_raw(const std::string& path, const std::string& descr, const std::vector<int64_t>& shape, const void* data,
               size_t bytes) {
  std::string h = header_text(descr, shape);
  // Pad so the data starts on a 64-byte boundary, as numpy does; the header ends with '\n'.
  // Format 2.0 only when the padded header would not fit 1.0's 16-bit length.
  const bool v1 = h.size() + 1 + 63 <= 65535;
  const size_t prefix = v1 ? 10 : 12;
  h.append((64 - (prefix + h.size() + 1) % 64) % 64, ' ');
  h += '\n';
  std::vector<uint8_t> out;
  out.reserve(prefix + h.size() + bytes);
  const char magic[] = "\x93NUMPY";
  out.insert(out.end(), magic, magic + 6);
  out.push_back(v1 ? 1 : 2);
  out.push_back(0);
  uint32_t hl = uint32_t(h.size());
  out.push_back(uint8_t(hl));
  out.push_back(uint8_t(hl >> 8));
  if (!v1) {
    out.push_back(uint8_t(hl >> 16));
    out.push_back(uint8_t(hl >> 24));
  }
  out.insert(out.end(), h.begin(), h.end());
  const uint8_t* d = static_cast<const uint8_t*>(data);
  if (bytes) out.insert(out.end(), d, d + bytes);
  detail::write_atomic(path, out.data(), out.size());
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  ByteBuffer b = detail::read_all(path);
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) fail(path, "not a .npy file (no \\x93NUMPY magic)");
  int major = b[6];
  size_t hlen, start;
  if (major == 1) {
    hlen = size_t(b[8]) | size_t(b[9]) << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) fail(path, "truncated .npy header");
    hlen = size_t(b[8]) | size_t(b[9]) << 8 | size_t(b[10]) << 16 | size_t(b[11]) << 24;
    start = 12;
  } else {
    fail(path, ".npy format version " + std::to_string(major) + "." + std::to_string(b[7]) + " is not supported");
  }
  if (b.size() < start + hlen) fail(path, "truncated .npy header");
  std::string h(b.begin() + long(start), b.begin() + long(start + hlen));
  NpyArray a;
  a.descr = dict_value(path, h, "descr");
  std::string fo = dict_value(path, h, "fortran_order");
  if (fo == "True")
    fail(path, "Fortran-order (column-major) arrays are not supported; save with np.save(path, np.ascontiguousarray(a))");
  if (fo != "False") fail(path, "bad .npy header: fortran_order is '" + fo + "'");
  std::string sh = dict_value(path, h, "shape");
  if (sh.size() < 2 || sh.front() != '(') fail(path, "bad .npy header: shape " + sh);
  for (auto& part : detail::split(sh.substr(1, sh.size() - 2), ',')) {
    size_t i = part.find_first_not_of(' ');
    if (i == std::string::npos) continue;  // the empty part after a trailing comma
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(part.substr(i), &used);
    } catch (const std::exception&) {
    }
    if (v < 0 || part.find_first_not_of(' ', i + used) != std::string::npos)
      fail(path, "bad .npy header: shape " + sh);
    a.shape.push_back(v);
  }
  const size_t item = item_size(path, a.descr);
  size_t want = 0;
  try {  // (65536,65536,65536,65536) must not wrap to 0 elements
    want = size_t(mul_size(count_of(a.shape, "shape " + sh), int64_t(item), "shape " + sh));
  } catch (const SizeError& e) {
    fail(path, std::string("bad .npy header: ") + e.what());
  }
  const size_t have = b.size() - start - hlen;
  if (have < want)
    fail(path, "truncated: expected " + std::to_string(want) + " bytes of data for shape " + sh + ", got " +
                   std::to_string(have));
  if (have > want) fail(path, std::to_string(have - want) + " bytes of trailing data after the array");
  b.erase(b.begin(), b.begin() + long(start + hlen));  // in place: a copy would allocate (and fault in) it all again
  a.data = std::move(b);
  return a;
}

Tensor read_npy_f32(const std::string& path) { return npy_to_tensor(read_npy(path), path); }

Tensor npy_to_tensor(const NpyArray& a, const std::string& path) {
  if (a.shape.empty() || a.shape.size() > 4)
    fail(path, "array of rank " + std::to_string(a.shape.size()) + ", expected rank 1 to 4");
  std::vector<int> dims;
  for (auto d : a.shape) {
    if (d > INT32_MAX) fail(path, "dimension " + std::to_string(d) + " is too large");
    dims.push_back(int(d));
  }
  if (a.count() == 0) fail(path, "array of shape " + Shape::of(dims).str() + " has no elements");
  Tensor t(Shape::of(dims));
  float* o = t.data();
  const size_t n = a.count();
  const uint8_t* p = a.data.data();
  if (a.descr == "<f4") {
    if (n) std::memcpy(o, p, n * 4);
  } else if (a.descr == "<f8") {
    for (size_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      o[i] = float(v);
    }
  } else if (a.descr == "<i8") {
    for (size_t i = 0; i < n; ++i) {
      int64_t v;
      std::memcpy(&v, p + 8 * i, 8);
      o[i] = float(v);
    }
  } else if (a.descr == "<i4") {
    for (size_t i = 0; i < n; ++i) {
      int32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      o[i] = float(v);
    }
  } else {
    for (size_t i = 0; i < n; ++i) o[i] = float(p[i]);
  }
  return t;
}

std::vector<int64_t> read_npy_labels(const std::string& path) {
  NpyArray a = read_npy(path);
  if (!(a.shape.size() == 1 || (a.shape.size() == 2 && a.shape[1] == 1)))
    fail(path, "labels must be a 1-D array, got " + std::to_string(a.shape.size()) + " dimensions");
  const size_t n = a.count();
  std::vector<int64_t> out(n);
  const uint8_t* p = a.data.data();
  if (a.descr == "<i8") {
    if (n) std::memcpy(out.data(), p, n * 8);
  } else if (a.descr == "<i4") {
    for (size_t i = 0; i < n; ++i) {
      int32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      out[i] = v;
    }
  } else if (a.descr == "|u1" || a.descr == "<u1" || a.descr == "u1") {
    for (size_t i = 0; i < n; ++i) out[i] = p[i];
  } else {
    fail(path, "labels must be integers (int64 '<i8', int32 '<i4' or uint8 '|u1'), got '" + a.descr + "'");
  }
  return out;
}

void write_npy(const std::string& path, const Tensor& t) {
  std::vector<int64_t> shape;
  for (int i = 0; i < t.rank(); ++i) shape.push_back(t.dim(i));
  write_raw(path, "<f4", shape, t.data(), t.size() * sizeof(float));
}

void write_npy_u8(const std::string& path, const std::vector<int64_t>& shape, const uint8_t* data) {
  write_raw(path, "|u1", shape, data, size_t(count_of(shape, path + ": shape")));
}

void write_npy_labels(const std::string& path, const std::vector<int64_t>& labels) {
  write_raw(path, "<i8", {int64_t(labels.size())}, labels.data(), labels.size() * 8);
}

}  // namespace gb
