// .npy: "\x93NUMPY", major, minor, header length (u16 in 1.0, u32 in 2.0/3.0), then a Python dict
// literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, C), } padded with spaces and '\n'.
#include "data/npy.h"

#include <sys/stat.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "data/io_util.h"
#include "engine/sizes.h"

namespace gb {

static_assert(std::endian::native == std::endian::little, "the .npy code assumes a little-endian host");

using detail::fail;

size_t NpyArray::count() const { return size_t(count_of(shape, ".npy shape")); }

bool is_uint8(const std::string& descr) { return descr == "|u1" || descr == "<u1" || descr == "u1"; }

void uint8_to_unit(Tensor& t, const std::string& descr) {
  if (is_uint8(descr))
    for (size_t i = 0; i < t.size(); ++i) t[i] /= 255.f;
}

bool is_channel_last(const Shape& s) {
  return s.rank == 4 && (s[3] == 1 || s[3] == 3 || s[3] == 4) && s[1] != 1 && s[1] != 3 && s[3] < s[1] && s[2] > 1;
}

Tensor channel_last_to_nchw(const Tensor& x) {
  const int n = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  Tensor t(Shape{n, C, H, W});
  for (int i = 0; i < n; ++i)
    for (int y = 0; y < H; ++y)
      for (int xx = 0; xx < W; ++xx)
        for (int c = 0; c < C; ++c)
          t.data()[((size_t(i) * C + c) * H + y) * W + xx] = x.data()[((size_t(i) * H + y) * W + xx) * C + c];
  return t;
}

namespace {

size_t item_size(const std::string& path, const std::string& descr) {
  if (descr == "<f4" || descr == "<i4") return 4;
  if (descr == "<f8" || descr == "<i8") return 8;
  if (is_uint8(descr) || descr == "|b1") return 1;  // bool: one byte, 0 or 1
  if (!descr.empty() && descr[0] == '>') fail(path, "big-endian dtype '" + descr + "' is not supported");
  fail(path, "dtype '" + descr + "' is not supported (float32 '<f4', uint8 '|u1', int64 '<i8', int32 '<i4', float64 '<f8', bool '|b1')");
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
  if (i < h.size() && h[i] == '[') {  // a structured dtype: its whole field list
    int depth = 0;
    for (end = i; end < h.size(); ++end) {
      depth += h[end] == '[' || h[end] == '(';
      depth -= h[end] == ']' || h[end] == ')';
      if (depth == 0) return h.substr(i, end - i + 1);
    }
    fail(path, "bad .npy header: unterminated dtype list");
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

// The header of an .npy file: what the data is and where it starts.
struct Header {
  std::string descr;
  std::vector<int64_t> shape;
  std::string shape_text;  // as in the header, for messages
  size_t data_offset = 0;  // bytes before the data
  size_t data_bytes = 0;   // what the shape and dtype need
};

// Magic and version from the file's first bytes (n of them, up to 12): the dict's offset and length.
void parse_prefix(const std::string& path, const uint8_t* b, size_t n, size_t& start, size_t& hlen) {
  if (n < 10 || std::memcmp(b, "\x93NUMPY", 6) != 0) fail(path, "not a .npy file (no \\x93NUMPY magic)");
  const int major = b[6];
  if (major == 1) {
    hlen = size_t(b[8]) | size_t(b[9]) << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (n < 12) fail(path, "truncated .npy header");
    hlen = size_t(b[8]) | size_t(b[9]) << 8 | size_t(b[10]) << 16 | size_t(b[11]) << 24;
    start = 12;
  } else {
    fail(path, ".npy format version " + std::to_string(major) + "." + std::to_string(b[7]) + " is not supported");
  }
}

// The dict {'descr': ..., 'fortran_order': ..., 'shape': (...)}; the data starts at `data_offset`.
Header parse_dict(const std::string& path, const std::string& h, size_t data_offset) {
  Header a;
  a.data_offset = data_offset;
  a.descr = dict_value(path, h, "descr");
  if (!a.descr.empty() && a.descr[0] == '[')
    fail(path, "a structured dtype (record array with fields " + a.descr +
                   ") is not supported; save one numeric field, e.g. np.save(path, a['name'])");
  std::string fo = dict_value(path, h, "fortran_order");
  if (fo == "True")
    fail(path, "Fortran-order (column-major) arrays are not supported; save with np.save(path, np.ascontiguousarray(a))");
  if (fo != "False") fail(path, "bad .npy header: fortran_order is '" + fo + "'");
  const std::string sh = a.shape_text = dict_value(path, h, "shape");
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
  try {  // (65536,65536,65536,65536) must not wrap to 0 elements
    a.data_bytes = size_t(mul_size(count_of(a.shape, "shape " + sh), int64_t(item), "shape " + sh));
  } catch (const SizeError& e) {
    fail(path, std::string("bad .npy header: ") + e.what());
  }
  return a;
}

// `have` bytes follow the header: exactly what the shape needs, or an error.
void check_data_size(const std::string& path, const Header& h, size_t have) {
  if (have < h.data_bytes)
    fail(path, "truncated: expected " + std::to_string(h.data_bytes) + " bytes of data for shape " + h.shape_text + ", got " +
                   std::to_string(have));
  if (have > h.data_bytes) fail(path, std::to_string(have - h.data_bytes) + " bytes of trailing data after the array");
}

// An open .npy file with its header parsed and its size checked, so the data can be read straight
// into its destination (a tensor's storage): no copy of the whole file first. The size check comes
// before any allocation, so a header that claims more than the file holds is refused cheaply. A
// pipe or other non-regular file has no size up front; it is read whole first, as before.
class NpyFile {
 public:
  explicit NpyFile(const std::string& path) : path_(path) {
    if (detail::is_dir(path)) fail(path, "is a directory, expected a file");
    f_.reset(std::fopen(path.c_str(), "rb"));
    if (!f_) fail(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st;  // of the file opened, so the size and the header come from the same file
    const bool regular = ::fstat(fileno(f_.get()), &st) == 0 && S_ISREG(st.st_mode);
    uint8_t prefix[12];
    const size_t n = std::fread(prefix, 1, sizeof prefix, f_.get());
    if (!regular) {
      size_t start = 0, hlen = 0;
      parse_prefix(path, prefix, n, start, hlen);  // a stream that is not .npy (/dev/zero) ends here
      whole_.assign(prefix, prefix + n);
      if (!detail::read_rest(f_.get(), whole_, memory_limit())) fail(path, "read error");
      if (whole_.size() > memory_limit())
        fail(path, "a stream of more than " + bytes_text(memory_limit()) + ", the memory limit (--max-memory)");
      f_.reset();
      parse(whole_.data(), whole_.size(), whole_.size());
      return;
    }
    parse(prefix, n, size_t(st.st_size));
  }

  const Header& header() const { return h_; }
  // Reads the data (header().data_bytes of it) into dst.
  void read(void* dst) {
    if (!h_.data_bytes) return;
    if (!f_) {
      std::memcpy(dst, whole_.data() + h_.data_offset, h_.data_bytes);
      return;
    }
    if (std::fseek(f_.get(), long(h_.data_offset), SEEK_SET) != 0 ||
        std::fread(dst, 1, h_.data_bytes, f_.get()) != h_.data_bytes)
      fail(path_, "read error (did the file change while it was read?)");
  }

 private:
  // b holds the first n bytes of a file of `total` bytes (all of it when it was read whole).
  void parse(const uint8_t* b, size_t n, size_t total) {
    size_t start = 0, hlen = 0;
    parse_prefix(path_, b, n, start, hlen);
    if (total < start + hlen) fail(path_, "truncated .npy header");
    std::string dict(hlen, '\0');
    if (f_) {
      if (std::fseek(f_.get(), long(start), SEEK_SET) != 0 || std::fread(dict.data(), 1, hlen, f_.get()) != hlen)
        fail(path_, "read error");
    } else {
      std::memcpy(dict.data(), b + start, hlen);
    }
    h_ = parse_dict(path_, dict, start + hlen);
    check_data_size(path_, h_, total - start - hlen);
  }

  std::string path_;
  // Closed by the member's destructor, which also runs when the constructor throws (a bad header).
  struct Close {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Close> f_;
  ByteBuffer whole_;  // the non-regular file's bytes
  Header h_;
};

// The tensor shape for an array of rank 1..4 with at least one element.
Shape tensor_shape(const Header& h, const std::string& path) {
  if (h.shape.empty() || h.shape.size() > 4)
    fail(path, "array of rank " + std::to_string(h.shape.size()) + ", expected rank 1 to 4");
  std::vector<int> dims;
  for (auto d : h.shape) {
    if (d > INT32_MAX) fail(path, "dimension " + std::to_string(d) + " is too large");
    dims.push_back(int(d));
  }
  if (h.data_bytes == 0) fail(path, "array of shape " + Shape::of(dims).str() + " has no elements");
  return Shape::of(dims);
}

NpyArray read_array(NpyFile& f) {
  NpyArray a;
  a.descr = f.header().descr;
  a.shape = f.header().shape;
  a.data.resize(f.header().data_bytes);
  f.read(a.data.data());
  return a;
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  NpyFile f(path);
  return read_array(f);
}

Tensor read_npy_f32(const std::string& path, std::string* descr) {
  NpyFile f(path);
  if (descr) *descr = f.header().descr;
  if (f.header().descr != "<f4") return npy_to_tensor(read_array(f), path);
  Tensor t(tensor_shape(f.header(), path));  // float32 data goes straight into the tensor
  f.read(t.data());
  return t;
}

Tensor npy_to_tensor(const NpyArray& a, const std::string& path) {
  Header h;
  h.shape = a.shape;
  h.data_bytes = a.data.size();
  Tensor t(tensor_shape(h, path));
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
  } else if (a.descr == "|b1") {  // bool (masks) as 0 or 1
    for (size_t i = 0; i < n; ++i) o[i] = float(p[i] != 0);
  } else {  // uint8
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
  } else if (is_uint8(a.descr)) {
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
