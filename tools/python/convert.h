// NumPy <-> glassbox for the Python package: arrays in (checked, named in every error), arrays out,
// keyword parameters into a method's Params, and the C++ exceptions mapped to Python's.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
// In every file that casts: a file without it instantiates std::vector's caster as an unregistered
// class, and the linker may keep that one (labels=[0, 1] then failed to cast everywhere).
#include <pybind11/stl.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <string>
#include <vector>

#include "engine/interrupt.h"
#include "engine/model_file.h"
#include "explain/common/params.h"

namespace gb::py_glassbox {

namespace py = pybind11;

// A model's lock. Taken again by the thread that holds it (a train() progress callback that uses
// the model being trained), it raises instead of waiting forever.
class ModelMutex {
 public:
  void lock() {
    refuse_reentry();
    mu_.lock();
    owner_ = std::this_thread::get_id();
  }
  bool try_lock() {
    refuse_reentry();
    if (!mu_.try_lock()) return false;
    owner_ = std::this_thread::get_id();
    return true;
  }
  void unlock() {
    owner_ = std::thread::id();
    mu_.unlock();
  }

 private:
  void refuse_reentry() const {
    if (owner_.load() == std::this_thread::get_id())
      throw std::runtime_error("this model is busy with a call on this thread (a train() progress callback, or a "
                               "signal handler, cannot use the model that call is using)");
  }
  std::mutex mu_;
  std::atomic<std::thread::id> owner_{};
};
using Lock = std::lock_guard<ModelMutex>;

// The GIL released for a long call, which Ctrl-C stops at its next graph pass (engine/interrupt.h):
// on Python's main thread (where signal handlers run) the check takes the GIL back to run them and
// keeps the KeyboardInterrupt they raise for the exception translator. Not for train(), which stops
// at the end of an epoch.
class ReleasedGil {
 public:
  ReleasedGil();
  ~ReleasedGil();
  ReleasedGil(const ReleasedGil&) = delete;
  ReleasedGil& operator=(const ReleasedGil&) = delete;

 private:
  std::optional<InterruptCheck> check_;
  std::optional<py::gil_scoped_release> release_;
  int uncaught_ = std::uncaught_exceptions();
};

// A model as Python holds it: the graph and its metadata, and a lock, because the GIL is released
// during long calls and a graph's forward and backward passes keep state. Take the lock only
// after releasing the GIL: train()'s progress callback takes the GIL while it holds the lock.
struct PyModel {
  PyModel(Model model, std::string spec) : m(std::move(model)), spec(std::move(spec)) {}
  Model m;
  std::string spec;  // what load() was given
  std::string file;  // the model file it was read from, absolute (empty: a preset or architecture)
  ModelMutex mu;
};

// An ndarray of floats as a Tensor (one copy: float64 and strided arrays are converted). `sample`
// is the shape of one sample; `arg` names the argument in errors. Integer, bool and other dtypes
// are refused (TypeError), as are NaN/Inf and shapes other than [N, sample...] (ValueError).
Tensor tensor_arg(py::handle a, const Shape& sample, const std::string& arg);
// Any float array of rank 1-4 (attributions, pixels, directions), converted and checked finite.
Tensor any_tensor_arg(py::handle a, const std::string& arg);

// A copy of t as a float32 ndarray of t's shape (the copy keeps results independent of the
// graph's workspaces, which later calls overwrite).
py::array to_array(const Tensor& t);
py::array_t<double> to_array(const std::vector<double>& v);

// n class numbers (a list or 1-D array of ints that fit 32 bits); `lowest` is 0, or -1 where -1
// means "unknown" (an attack's labels). Other types: TypeError naming `what`.
std::vector<int> labels_arg(py::handle y, int n, const std::string& what, int lowest = 0);

// One integer (a Python or NumPy int that fits 32 bits): bools and other types are a TypeError, a
// value past 32 bits a ValueError, each naming `what`.
int int_arg(py::handle v, const std::string& what);

// A seed: a Python or NumPy int in [0, 2**64); bools and other types are a TypeError naming `what`.
uint64_t seed_arg(py::handle v, const std::string& what);

// A pair (x, y) given as a tuple or list of two; other types are a TypeError naming `what`.
py::tuple pair_arg(py::handle v, const std::string& what);

// One number (a Python or NumPy int or float, or a 0-d array): bools, strings and arrays of more
// values are a TypeError naming `what` (pybind11's cast took True as 1 and named nothing).
double number_arg(py::handle v, const std::string& what);

// True or False (a Python or NumPy bool); anything else is a TypeError naming `what` (pybind11's
// cast took None and 2 as flags).
bool bool_arg(py::handle v, const std::string& what);

// Names: a list (or tuple) of str, or with `one_str` a single str as one name. Other types are a
// TypeError naming `what` (a str where a list is due would be read character by character).
std::vector<std::string> names_arg(py::handle v, const std::string& what, bool one_str);
// Layer names: a str, comma-separated as the command's --layers, or a list of str (whose items may
// hold commas too); empty items are dropped.
std::vector<std::string> layer_names_arg(py::handle v, const std::string& what);

// A path argument: str or os.PathLike.
std::string path_arg(py::handle p);

// Keyword parameters as a method's Params: strings as they are; bools as true/false; ints and
// floats as Python writes them (repr round-trips, so 0.1 is the CLI's "0.1"); ndarrays as tensors
// under the key (baselines). Other types: TypeError naming the key.
explain::Params params_arg(const py::dict& kwargs, const std::string& what);

// Raises FileNotFoundError with msg.
[[noreturn]] void file_not_found(const std::string& msg);
// array_t::ensure() returns null and clears Python's error when its copy fails (out of memory):
// MemoryError naming the argument, not pybind11's "error_already_set ... indicator not set".
[[noreturn]] void copy_failed(const std::string& arg, const py::array& a);

// ShapeError, std::out_of_range, DataError... -> ValueError / FileNotFoundError / RuntimeError.
void register_exceptions(py::module_& m);

}  // namespace gb::py_glassbox
