#include "engine/model_file.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <mutex>
#include <set>
#include <sstream>

#include "engine/architecture.h"
#include "engine/finite.h"
#include "engine/sizes.h"
#include <nlohmann/json.hpp>

namespace gb {

namespace {

constexpr const char* kFormat = "1";

[[noreturn]] void fail(const std::string& path, const std::string& what,
                       ModelFileError::Kind kind = ModelFileError::Kind::malformed) {
  throw ModelFileError(path + ": " + what, kind);
}

// "features.10.weight" sorts after "features.3.weight": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit((unsigned char)a[i]) && std::isdigit((unsigned char)b[j])) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit((unsigned char)a[i2])) ++i2;
      while (j2 < b.size() && std::isdigit((unsigned char)b[j2])) ++j2;
      // As numbers of any length (std::stol threw on a run of 20 digits): without leading zeros,
      // the shorter run is the smaller number, and runs of one length compare as text.
      while (i < i2 - 1 && a[i] == '0') ++i;
      while (j < j2 - 1 && b[j] == '0') ++j;
      if (i2 - i != j2 - j) return i2 - i < j2 - j;
      if (const int c = a.compare(i, i2 - i, b, j, j2 - j); c != 0) return c < 0;
      i = i2, j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// Order for pairing tensors with parameters when the names differ: layers in natural order of
// the name before the last '.', and within a layer PyTorch's order (weight, bias, running_mean,
// running_var), which plain natural order would break ("bias" < "weight").
bool param_order_less(const std::string& a, const std::string& b) {
  auto split = [](const std::string& s) {
    size_t d = s.rfind('.');
    return d == std::string::npos ? std::pair<std::string, std::string>{"", s}
                                  : std::pair<std::string, std::string>{s.substr(0, d), s.substr(d + 1)};
  };
  auto rank = [](const std::string& leaf) {
    static const char* const order[] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; ++i)
      if (leaf == order[i]) return i;
    return 4;
  };
  auto [pa, la] = split(a);
  auto [pb, lb] = split(b);
  if (natural_less(pa, pb)) return true;
  if (natural_less(pb, pa)) return false;
  if (rank(la) != rank(lb)) return rank(la) < rank(lb);
  return natural_less(la, lb);
}

}  // namespace

namespace {

// Temporary files are "<target>.glassbox-tmp<PID>". A run killed during a save leaves one behind; the
// first write of a process into a folder removes those whose process is gone, so they do not pile
// up. Only that spelling is glassbox's: a user's "notes.tmp99999" was removed by the old ".tmp<N>"
// rule. (A file whose PID was reused by a live process is left for a later run.)
const char* const kTempMark = ".glassbox-tmp";
void remove_stale_temporaries(const std::string& path) {
  static std::mutex mu;
  static std::set<std::string> cleaned;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  std::lock_guard<std::mutex> lock(mu);
  if (!cleaned.insert(fs::absolute(dir, ec).string()).second) return;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t t = name.rfind(kTempMark), mark = std::strlen(kTempMark);
    if (t == std::string::npos || t == 0 || t + mark == name.size() || name.size() - t > mark + 10) continue;
    const std::string digits = name.substr(t + mark);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::stol(digits);
    if (pid > 0 && pid != long(::getpid()) && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH) {
      std::error_code rm;
      fs::remove(it->path(), rm);
    }
  }
}

}  // namespace

void atomic_write(const std::string& path, const std::string& bytes) { atomic_write(path, bytes.data(), bytes.size()); }

// A path that exists and is neither a regular file nor a symbolic link (a device, a folder, a
// pipe) is refused: renaming over /dev/null as root would replace the device. A link is replaced
// by the new file like any other name, its target left alone.
namespace {

struct ProtectedInput {
  std::string path, given_as;
};
// By (device, inode): a folder of images given in a flag protects each of its files.
std::mutex protected_mutex;
std::map<std::pair<dev_t, ino_t>, ProtectedInput> protected_inputs;

}  // namespace

void protect_input(const std::string& path, const std::string& given_as) {
  struct stat link {}, target {};
  const bool has_link = ::lstat(path.c_str(), &link) == 0, has_target = ::stat(path.c_str(), &target) == 0;
  std::lock_guard<std::mutex> lock(protected_mutex);
  // The name itself, and where a link leads: writing replaces the name it is given, not a link's target.
  if (has_link) protected_inputs.try_emplace({link.st_dev, link.st_ino}, ProtectedInput{path, given_as});
  if (has_target && S_ISREG(target.st_mode))
    protected_inputs.try_emplace({target.st_dev, target.st_ino}, ProtectedInput{path, given_as});
}

void check_replaceable(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(path, ec);  // (a path that does not exist sets ec)
  if (fs::exists(st) && !fs::is_regular_file(st) && !fs::is_symlink(st))
    fail(path, "is not a regular file (a folder, device or pipe); glassbox writes only regular files",
         fs::is_directory(st) ? ModelFileError::Kind::folder : ModelFileError::Kind::io);
  struct stat name {};
  if (::lstat(path.c_str(), &name) != 0) return;
  std::lock_guard<std::mutex> lock(protected_mutex);
  const auto p = protected_inputs.find({name.st_dev, name.st_ino});
  if (p != protected_inputs.end())
    fail(path, "is the input " + p->second.path + " (given with " + p->second.given_as +
                   "); not replacing it: write the outputs to another folder or name",
         ModelFileError::Kind::io);
}

// "<path>.glassbox-tmp<PID>", or, where that name would pass the file system's 255-byte limit on
// a name (a legal 240-byte name did), "<16 hex digits of the name's hash>.glassbox-tmp<PID>".
static std::string temporary_name(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string suffix = kTempMark + std::to_string(::getpid());
  const std::string name = fs::path(path).filename().string();
  if (name.size() + suffix.size() <= 255) return path + suffix;
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return (fs::path(path).parent_path() / (hex + suffix)).string();
}

static std::atomic<void (*)(const std::string&)> write_hook{nullptr};

void atomic_write(const std::string& path, const void* data, size_t n) {
  check_replaceable(path);
  remove_stale_temporaries(path);
  std::string tmp = temporary_name(path);
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, std::string("cannot write (") + std::strerror(errno) + ")", ModelFileError::Kind::io);
  // Every step is checked: a full disk must fail the run, never leave a short file under the name.
  bool ok = std::fwrite(data, 1, n, f) == n;
  ok &= std::fflush(f) == 0;
  ok &= ::fsync(fileno(f)) == 0;
  int err = errno;
  ok &= std::fclose(f) == 0;
  if (!ok) {
    std::remove(tmp.c_str());
    fail(path, "write failed (" + std::string(std::strerror(err ? err : EIO)) + "); any previous file is unchanged",
         ModelFileError::Kind::io);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    fail(path, "cannot replace it with the new file (" + std::string(std::strerror(err)) + "); any previous file is unchanged",
         ModelFileError::Kind::io);
  }
  if (void (*hook)(const std::string&) = write_hook.load()) hook(path);
}

void set_write_hook(void (*hook)(const std::string& path)) { write_hook.store(hook); }

void write_json(const std::string& path, const json& j, int indent) { atomic_write(path, j.dump(indent) + "\n"); }

// The file opened for reading, or an error naming why not (missing, unreadable, a folder).
static std::ifstream open_for_reading(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    fail(path, std::string("cannot open (") + std::strerror(err) + ")",
         err == ENOENT ? ModelFileError::Kind::missing : ModelFileError::Kind::io);
  }
  // A folder opens on Linux and then reads as zero bytes ("truncated").
  if (std::error_code ec; std::filesystem::is_directory(path, ec))
    fail(path, "is a folder, not a file", ModelFileError::Kind::folder);
  return in;
}

// A safetensors header's length: the file's first 8 bytes, little-endian.
static uint64_t header_length(const char* first8) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(first8[i])) << (8 * i);
  return n;
}

std::string read_file(const std::string& path) {
  std::ifstream in = open_for_reading(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const Metadata& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t off = 0;
  for (auto& [name, t] : tensors) {
    size_t bytes = t->size() * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", t->shape().vec()}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as safetensors does
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  out += h;
  out.reserve(out.size() + off);
  for (auto& [name, t] : tensors) out.append(reinterpret_cast<const char*>(t->data()), t->size() * sizeof(float));
  atomic_write(path, out);
}

namespace {

// The 8-byte length and the JSON header of a safetensors stream, or null where they are not one (a
// header is at most 100 MB, the format's limit).
static std::optional<json> read_header(std::istream& in, std::string& bytes) {
  bytes.assign(8, '\0');
  in.read(bytes.data(), 8);
  const uint64_t n = header_length(bytes.data());
  if (in.gcount() < 8 || n < 2 || n > 100'000'000) return std::nullopt;
  std::string text(n, '\0');
  in.read(text.data(), std::streamsize(n));
  if (in.gcount() < std::streamsize(n)) return std::nullopt;
  bytes += text;
  json h = json::parse(text, nullptr, false);
  if (!h.is_object()) return std::nullopt;
  return h;
}

// The data section of a safetensors file, read tensor by tensor after the header is checked, so a
// file is never read whole: a large file that is not a glassbox model (a language model's weights,
// a file with gigabytes after its last tensor) is refused from its header alone. A stream (a pipe,
// a device) has no size: it is read in order up to the last offset the header names, and one byte
// more for the trailing-data check, so an endless one (/dev/zero) ends there.
class DataSection {
 public:
  DataSection(const std::string& path, std::ifstream& in, uint64_t start, std::optional<uint64_t> file_size)
      : path_(path), in_(in), start_(start), regular_(file_size.has_value()),
        size_(file_size ? *file_size - start : 0) {}

  // A stream's section up to `end` (the largest offset) and one byte more; a file's size is known.
  void read_stream(uint64_t end) {
    if (regular_) return;
    if (end > (uint64_t(1) << 40)) fail(path_, "a data section of " + std::to_string(end) + " bytes from a stream");
    char chunk[1 << 16];
    while (stream_.size() <= end) {
      in_.read(chunk, std::streamsize(std::min<uint64_t>(sizeof chunk, end + 1 - stream_.size())));
      if (in_.gcount() <= 0) break;
      stream_.append(chunk, size_t(in_.gcount()));
    }
    size_ = stream_.size();
  }
  uint64_t size() const { return size_; }
  void copy(uint64_t offset, void* to, size_t n) {
    if (!regular_) {
      std::memcpy(to, stream_.data() + offset, n);
      return;
    }
    in_.clear();
    in_.seekg(std::streamoff(start_ + offset));
    in_.read(static_cast<char*>(to), std::streamsize(n));
    if (size_t(in_.gcount()) != n) fail(path_, "read error (the file changed while being read?)", ModelFileError::Kind::io);
  }

 private:
  const std::string& path_;
  std::ifstream& in_;
  uint64_t start_;
  bool regular_;
  uint64_t size_;
  std::string stream_;
};

// The header's JSON, refusing a tensor named twice (the parser would keep the last silently).
static json parse_header(const std::string& path, const std::string& text) {
  std::set<std::string> names;
  std::string twice;
  const json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && !names.insert(parsed.get<std::string>()).second &&
        twice.empty())
      twice = parsed.get<std::string>();
    return true;
  };
  json header;
  try {
    header = json::parse(text, cb);
  } catch (const json::exception& e) {
    fail(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");
  if (!twice.empty()) fail(path, "header names '" + twice + "' twice");
  return header;
}

// read_safetensors; a data section the offsets do not cover exactly is described in *coverage
// rather than thrown, so that load_model can first name a tensor the architecture misses.
TensorFile read_tensors(const std::string& path, std::string* coverage) {
  std::ifstream in = open_for_reading(path);
  std::error_code ec;
  std::optional<uint64_t> file_size;  // none for a pipe or a device
  if (std::filesystem::is_regular_file(path, ec)) file_size = std::filesystem::file_size(path, ec);
  if (ec) file_size.reset();
  char prefix[8] = {};
  in.read(prefix, 8);
  if (in.gcount() < 8) fail(path, "truncated: " + std::to_string(in.gcount()) + " bytes, no safetensors header");
  if (file_size && *file_size < 8) file_size.reset();  // a size that is not the content's (/proc): read as a stream
  const uint64_t n = header_length(prefix);
  if (file_size && n > *file_size - 8)
    fail(path, "header length " + std::to_string(n) + " exceeds the file (" + std::to_string(*file_size) +
                   " bytes): truncated or not a safetensors file");
  if (n < 2) fail(path, "is not a safetensors file (a header of " + std::to_string(n) + " bytes)");
  if (n > 100'000'000)  // the format's limit
    fail(path, "header length " + std::to_string(n) + " is over the safetensors limit of 100 MB: not a safetensors file");
  std::string text(n, '\0');
  in.read(text.data(), std::streamsize(n));
  if (uint64_t(in.gcount()) < n)
    fail(path, "is not a safetensors file (its header of " + std::to_string(n) + " bytes ends after " +
                   std::to_string(in.gcount()) + ")");
  const json header = parse_header(path, text);
  DataSection data(path, in, 8 + n, file_size);
  uint64_t last = 0;  // the largest offset (each checked below)
  for (auto& [name, e] : header.items())
    if (e.is_object() && e.contains("data_offsets") && e["data_offsets"].is_array())
      for (const json& v : e["data_offsets"])
        if (v.is_number_unsigned()) last = std::max(last, v.get<uint64_t>());
  data.read_stream(last);
  const uint64_t data_size = data.size();
  TensorFile out;
  std::vector<std::tuple<size_t, size_t, std::string>> spans;
  for (auto& [name, e] : header.items()) {
    if (name == "__metadata__") {
      if (!e.is_object()) fail(path, "__metadata__ is not a string map");
      for (auto& [k, v] : e.items()) {
        if (!v.is_string()) fail(path, "__metadata__ value of '" + k + "' is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      fail(path, "tensor '" + name + "' lacks dtype, shape or data_offsets");
    // Every number must be a JSON integer: json's get<> would convert 1e94 to an integer type
    // (undefined behaviour) and 2.5 to 2 instead of refusing them.
    auto integers = [](const json& a, bool non_negative) {
      bool ok = a.is_array();
      for (const json& v : ok ? a : json::array()) ok &= v.is_number_integer() && (!non_negative || v.is_number_unsigned());
      return ok;
    };
    if (!integers(e["shape"], false) || !integers(e["data_offsets"], true))
      fail(path, "tensor '" + name + "' has a malformed dtype, shape or data_offsets");
    std::string dtype;
    std::vector<int64_t> shape;
    std::vector<uint64_t> offs;
    try {
      dtype = e["dtype"].get<std::string>();
      shape = e["shape"].get<std::vector<int64_t>>();
      offs = e["data_offsets"].get<std::vector<uint64_t>>();
    } catch (const json::exception&) {
      fail(path, "tensor '" + name + "' has a malformed dtype, shape or data_offsets");
    }
    if (offs.size() != 2 || offs[0] > offs[1]) fail(path, "tensor '" + name + "' has bad data_offsets");
    if (offs[1] > data_size)
      fail(path, "tensor '" + name + "' data_offsets [" + std::to_string(offs[0]) + "," + std::to_string(offs[1]) +
                     ") out of range (data section is " + std::to_string(data_size) + " bytes; truncated file?)");
    spans.emplace_back(offs[0], offs[1], name);
    bool counter = name.size() > 20 && name.ends_with("num_batches_tracked");
    if (dtype != "F32") {
      if (counter) continue;
      fail(path, "tensor '" + name + "' has dtype " + dtype + "; glassbox reads F32 only");
    }
    if (shape.size() > 4) fail(path, "tensor '" + name + "' has rank " + std::to_string(shape.size()) + " (max 4)");
    std::vector<int> dims;
    uint64_t numel = 1;
    try {
      numel = uint64_t(count_of(shape, "dimensions"));
      for (auto d : shape) dims.push_back(to_int(d, "dimension"));
    } catch (const SizeError& e) {
      fail(path, "tensor '" + name + "' has a bad shape " + json(shape).dump() + " (" + e.what() + ")");
    }
    if (numel > (uint64_t(1) << 61) || numel * 4 != offs[1] - offs[0])
      fail(path, "tensor '" + name + "' shape " + json(shape).dump() + " needs " +
                     (numel > (uint64_t(1) << 61) ? "more than 2^63" : std::to_string(numel * 4)) +
                     " bytes, data_offsets span " + std::to_string(offs[1] - offs[0]));
    Tensor t;
    try {  // past --max-memory: the message names the file, as every other reason does
      t = Tensor(dims.empty() ? Shape{1} : Shape::of(dims));
    } catch (const SizeError& e) {
      fail(path, "tensor '" + name + "': " + e.what());
    }
    if (numel) data.copy(offs[0], t.data(), numel * 4);
    out.tensors[name] = std::move(t);
  }
  // As the safetensors format requires, the tensors cover the data section exactly: no overlaps,
  // no holes, nothing after the last. A header length that is off by a byte fails here instead of
  // shifting every weight.
  std::sort(spans.begin(), spans.end());
  size_t end = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const auto& [b, e, name] = spans[i];
    if (b < end) fail(path, "tensors '" + std::get<2>(spans[i - 1]) + "' and '" + name + "' overlap");
    if (b > end && coverage->empty())
      *coverage = "a hole of " + std::to_string(b - end) + " bytes in the data section before tensor '" + name +
                  "' (data_offsets do not cover the data; wrong header length?)";
    end = e;
  }
  if (end != data_size && coverage->empty())
    *coverage = std::to_string(data_size - end) + " bytes in the data section after the last tensor (data_offsets " +
                "do not cover the data; wrong header length or a truncated header?)";
  return out;
}

}  // namespace

Metadata read_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open (") + std::strerror(errno) + ")", ModelFileError::Kind::missing);
  std::string bytes;
  const std::optional<json> h = read_header(in, bytes);
  if (!h) fail(path, "is not a safetensors file");
  Metadata m;
  if (auto it = h->find("__metadata__"); it != h->end() && it->is_object())
    for (auto& [k, v] : it->items())
      if (v.is_string()) m[k] = v.get<std::string>();
  return m;
}

bool is_safetensors_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  std::string bytes;
  return in && read_header(in, bytes).has_value();
}

TensorFile read_safetensors(const std::string& path) {
  std::string coverage;
  TensorFile f = read_tensors(path, &coverage);
  if (!coverage.empty()) fail(path, coverage);
  return f;
}

void save_model(const std::string& path, const Graph& g, const Metadata& extra) {
  Metadata meta = extra;
  meta["glassbox.format"] = kFormat;
  meta["glassbox.architecture"] = architecture_json(g).dump();
  std::vector<std::pair<std::string, const Tensor*>> ts;
  for (auto& [name, p] : g.named_params()) ts.emplace_back(name, &p->value);
  write_safetensors(path, ts, meta);
}

void assign_params(Graph& g, const std::map<std::string, Tensor>& tensors, const std::string& source) {
  auto params = g.named_params();
  bool by_name = true;
  for (auto& [name, p] : params) by_name &= tensors.count(name) > 0;
  if (by_name) {
    for (auto& [name, p] : params) {
      const Tensor& t = tensors.at(name);
      if (t.shape() != p->value.shape())
        fail(source, "tensor '" + name + "' has shape " + t.shape().str() + ", the architecture needs " +
                         p->value.shape().str());
      p->value.copy_from(t);
    }
    for (auto& entry : tensors) {  // not a structured binding: clang before 16 cannot capture one
      const std::string& name = entry.first;
      if (std::none_of(params.begin(), params.end(), [&](auto& q) { return q.first == name; }))
        fail(source, "tensor '" + name + "' is not a parameter of this architecture");
    }
    return;
  }
  // Names differ (e.g. a PyTorch nn.Sequential): pair in order, checking every shape.
  std::vector<std::string> names;
  for (auto& [name, t] : tensors) names.push_back(name);
  std::sort(names.begin(), names.end(), param_order_less);
  if (names.size() != params.size()) {
    std::string missing;
    for (auto& [name, p] : params)
      if (!tensors.count(name)) missing += (missing.empty() ? "" : ", ") + name;
    fail(source, "holds " + std::to_string(names.size()) + " tensors, the architecture needs " +
                     std::to_string(params.size()) + " (missing by name: " + missing + ")");
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const Tensor& t = tensors.at(names[i]);
    if (t.shape() != params[i].second->value.shape())
      fail(source, "tensor '" + names[i] + "' " + t.shape().str() + " does not fit parameter '" + params[i].first +
                       "' " + params[i].second->value.shape().str() + " (matched in order, as the names differ)");
  }
  for (size_t i = 0; i < names.size(); ++i) params[i].second->value.copy_from(tensors.at(names[i]));
}

Model load_model(const std::string& path, const json* architecture) {
  std::string coverage;
  TensorFile f = read_tensors(path, &coverage);
  if (f.metadata.count("glassbox.checkpoint"))
    fail(path, "this is a training checkpoint, not a model; resume training with glassbox train --resume " + path +
                   ", or use the model file saved beside it");
  json arch;
  if (architecture) {
    arch = *architecture;
  } else {
    auto it = f.metadata.find("glassbox.architecture");
    if (it == f.metadata.end())
      fail(path, "no glassbox.architecture in the metadata; pass the architecture (--arch) to load plain weights");
    auto fmt = f.metadata.find("glassbox.format");
    if (fmt != f.metadata.end() && fmt->second != kFormat)
      fail(path, "glassbox.format " + fmt->second + " is not supported (this build reads " + kFormat + ")");
    try {
      arch = json::parse(it->second);
    } catch (const json::exception& e) {
      fail(path, std::string("glassbox.architecture is not valid JSON (") + e.what() + ")");
    }
  }
  Model m{[&] {
            try {
              return graph_from_json(arch);
            } catch (const std::exception& e) {
              fail(path, std::string("bad architecture: ") + e.what());
            }
          }(),
          f.metadata};
  assign_params(m.graph, f.tensors, path);  // names a missing tensor first: more useful than the gap it leaves
  if (!coverage.empty()) fail(path, coverage);
  check_finite_params(m.graph, path);
  return m;
}

}  // namespace gb
