// Model files are safetensors: an 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets}, an "__metadata__" string map, then raw data.
// glassbox stores its architecture and version in the metadata; tensor names and layouts are
// PyTorch's (<layer>.weight OIHW / [out,in], <layer>.bias, BatchNorm running_mean/running_var).
#pragma once
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/graph.h"

namespace gb {

using Metadata = std::map<std::string, std::string>;

// A model or tensor file that cannot be read or written; the message starts with its path.
struct ModelFileError : std::runtime_error {
  enum class Kind { malformed, missing, folder, io };  // io: the system refused (permissions, full disk...)
  explicit ModelFileError(const std::string& what, Kind kind = Kind::malformed) : std::runtime_error(what), kind(kind) {}
  Kind kind;
};

struct TensorFile {
  std::map<std::string, Tensor> tensors;
  Metadata metadata;
};

// Refuses (naming the path) what atomic_write would refuse: an existing folder, device or pipe,
// or a protected input (below). For callers that write side files after long work, to check them
// before it.
void check_replaceable(const std::string& path);
// A file this process read as an input (a command's --data, --input, --unit... file; `given_as`
// names the flag) and so must never replace: every atomic_write under a name that is this file
// (the same inode, so other spellings of the path count too) is refused. A data file inside the
// output folder under an output's name was overwritten.
void protect_input(const std::string& path, const std::string& given_as);
// Every file glassbox writes (models, JSON, PNG, .npy, SVG) goes through here: a temporary file
// "<path>.glassbox-tmp<PID>" beside `path`, every write checked, flushed and synced, then renamed
// over it, so an existing file is never left half-written and a full disk is an error naming the
// file. Temporaries left by killed runs in the same folder are removed on the first write there.
// An existing path that is not a regular file (a device, a folder, a pipe) is refused, never
// replaced; a symbolic link is replaced by the new file, its target left alone.
void atomic_write(const std::string& path, const std::string& bytes);
void atomic_write(const std::string& path, const void* data, size_t n);
// Called with each path atomic_write has just written (the command line keeps a record of its
// output folders' files: tools/outputs.h). One hook per process; nullptr: none.
void set_write_hook(void (*hook)(const std::string& path));
void write_json(const std::string& path, const json& j, int indent = 2);  // j.dump(indent) + "\n"
std::string read_file(const std::string& path);  // throws naming the file

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const Metadata& metadata);
// Validates everything (header length, JSON, dtypes, shapes, offsets in bounds and not
// overlapping) and throws std::runtime_error("<path>: <what is wrong>"). Non-F32 tensors are
// refused, except PyTorch's BatchNorm num_batches_tracked counters, which are skipped.
TensorFile read_safetensors(const std::string& path);
// A regular file that starts with a safetensors header (its length and JSON), without reading the
// tensors: for a check before a file is replaced.
bool is_safetensors_file(const std::string& path);
// The metadata of a safetensors file, read from its header alone (empty when it has none).
Metadata read_metadata(const std::string& path);

struct Model {
  Graph graph;
  Metadata metadata;  // glassbox.* keys plus whatever the trainer stored (normalization, classes...)
};

void save_model(const std::string& path, const Graph& g, const Metadata& extra = {});
// Loads a model; `architecture` (JSON) is needed only for files without glassbox metadata, such
// as PyTorch state dicts saved with safetensors. Tensors are matched by name, or, when the names
// differ, in order (natural sort of the file's names) with shapes checked one by one.
Model load_model(const std::string& path, const json* architecture = nullptr);

// Copies tensors into the graph's parameters; throws naming the missing/mismatched tensor.
void assign_params(Graph& g, const std::map<std::string, Tensor>& tensors, const std::string& source);

}  // namespace gb
