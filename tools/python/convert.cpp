#include "tools/python/convert.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "data/dataset.h"
#include "engine/finite.h"

namespace gb::py_glassbox {

namespace {

// The array as float32, C-contiguous (a copy when it is not already), after refusing non-float dtypes.
py::array_t<float, py::array::c_style | py::array::forcecast> float_array(py::handle a, const std::string& arg) {
  if (!py::isinstance<py::array>(a))
    throw py::type_error(arg + ": expected a NumPy array of float32, got " + std::string(py::str(py::type::of(a))));
  const py::array arr = py::reinterpret_borrow<py::array>(a);
  const char kind = arr.dtype().kind();
  if (kind != 'f')
    throw py::type_error(arg + ": dtype " + std::string(py::str(arr.dtype())) +
                         "; glassbox takes float arrays (float32, or float64 converted) in the model's input space "
                         "(model.normalize(pixels) converts raw pixels in [0, 1])");
  auto f = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!f) copy_failed(arg, arr);
  return f;
}

Tensor copy_in(const py::array_t<float, py::array::c_style | py::array::forcecast>& f, const std::string& arg) {
  if (f.ndim() < 1 || f.ndim() > 4)
    throw py::value_error(arg + ": rank " + std::to_string(f.ndim()) + "; glassbox arrays have rank 1 to 4");
  std::vector<int> dims;
  for (py::ssize_t i = 0; i < f.ndim(); ++i) {
    if (f.shape(i) == 0 || f.shape(i) > (1 << 30)) throw py::value_error(arg + ": empty or oversized dimension " + std::to_string(i));
    dims.push_back(int(f.shape(i)));
  }
  Tensor t(Shape::of(dims));
  std::memcpy(t.data(), f.data(), t.size() * sizeof(float));
  if (nonfinite_allowed()) return t;
  for (size_t i = 0; i < t.size(); ++i)
    if (!std::isfinite(t[i]))
      throw py::value_error(arg + ": not finite at flat element " + std::to_string(i) +
                            " (NaN, Inf, or a float64 beyond float32's range, about 3.4e38; "
                            "glassbox.allow_nonfinite(True) to study them)");
  return t;
}

}  // namespace

Tensor tensor_arg(py::handle a, const Shape& sample, const std::string& arg) {
  auto f = float_array(a, arg);
  const std::string want = "[N," + sample.str().substr(1);
  if (f.ndim() != sample.rank + 1) {
    std::string got = "[";
    for (py::ssize_t i = 0; i < f.ndim(); ++i) got += (i ? "," : "") + std::to_string(f.shape(i));
    throw py::value_error(arg + ": shape " + got + "], the model takes " + want +
                          (f.ndim() == sample.rank ? " (one sample: x[None])" : ""));
  }
  Tensor t = copy_in(f, arg);
  if (t.shape().sample() != sample)
    throw py::value_error(arg + ": shape " + t.shape().str() + ", the model takes " + want);
  return t;
}

Tensor any_tensor_arg(py::handle a, const std::string& arg) { return copy_in(float_array(a, arg), arg); }

py::array to_array(const Tensor& t) {
  std::vector<py::ssize_t> shape;
  for (int i = 0; i < t.rank(); ++i) shape.push_back(t.dim(i));
  py::array_t<float> out(shape);
  if (t.size()) std::memcpy(out.mutable_data(), t.data(), t.size() * sizeof(float));
  return out;
}

py::array_t<double> to_array(const std::vector<double>& v) {
  py::array_t<double> out(py::ssize_t(v.size()));
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(double));
  return out;
}

// A Python or NumPy integer, or a 0-d integer array (a value read from an .npz): what __index__ takes.
static bool whole_number(py::handle v) {
  if (py::isinstance<py::array>(v)) {
    const py::array a = py::cast<py::array>(v);
    return a.ndim() == 0 && (a.dtype().kind() == 'i' || a.dtype().kind() == 'u');
  }
  return PyIndex_Check(v.ptr());
}

int int_arg(py::handle v, const std::string& what) {
  if (py::isinstance<py::bool_>(v) || py::isinstance(v, py::module_::import("numpy").attr("bool_")))
    throw py::type_error(what + ": an integer, not a bool");
  if (!whole_number(v)) throw py::type_error(what + ": an integer, not " + std::string(py::str(py::type::of(v))));
  long long k = 0;
  bool fits = true;
  try {
    k = py::int_(py::reinterpret_borrow<py::object>(v)).cast<long long>();
  } catch (const py::cast_error&) {  // beyond 64 bits
    fits = false;
  }
  if (!fits || k < INT_MIN || k > INT_MAX) throw py::value_error(what + ": " + std::string(py::repr(v)) + " is past 32 bits");
  return int(k);
}

uint64_t seed_arg(py::handle v, const std::string& what) {
  if (py::isinstance<py::bool_>(v) || py::isinstance(v, py::module_::import("numpy").attr("bool_")))
    throw py::type_error(what + ": an integer, not a bool");
  if (!whole_number(v)) throw py::type_error(what + ": an integer, not " + std::string(py::str(py::type::of(v))));
  const py::int_ i(py::reinterpret_borrow<py::object>(v));
  if (i < py::int_(0) || i >= py::int_(py::module_::import("builtins").attr("pow")(2, 64)))
    throw py::value_error(what + ": " + std::string(py::repr(v)) + " is outside [0, 2**64)");
  return i.cast<uint64_t>();
}

py::tuple pair_arg(py::handle v, const std::string& what) {
  if (!py::isinstance<py::tuple>(v) && !py::isinstance<py::list>(v))  // py::cast said "'int' object is not iterable"
    throw py::type_error(what + ": expected (x, y), not " + std::string(py::str(py::type::of(v))));
  py::tuple t = py::cast<py::tuple>(v);
  if (t.size() != 2) throw py::value_error(what + ": expected (x, y), two items, not " + std::to_string(t.size()));
  return t;
}

double number_arg(py::handle v, const std::string& what) {
  if (py::isinstance<py::bool_>(v) || py::isinstance(v, py::module_::import("numpy").attr("bool_")))
    throw py::type_error(what + ": a number, not a bool");
  const bool scalar_array = py::isinstance<py::array>(v) && py::cast<py::array>(v).ndim() == 0;
  if (py::isinstance<py::str>(v) || (py::isinstance<py::array>(v) && !scalar_array) ||
      !(PyFloat_Check(v.ptr()) || PyIndex_Check(v.ptr()) || PyNumber_Check(v.ptr())))
    throw py::type_error(what + ": a number, not " + std::string(py::str(py::type::of(v))));
  try {
    return py::float_(py::reinterpret_borrow<py::object>(v)).cast<double>();
  } catch (const py::error_already_set&) {
    throw py::type_error(what + ": a number, not " + std::string(py::repr(v)));
  }
}

bool bool_arg(py::handle v, const std::string& what) {
  if (py::isinstance<py::bool_>(v) || py::isinstance(v, py::module_::import("numpy").attr("bool_")))
    return PyObject_IsTrue(v.ptr()) == 1;
  throw py::type_error(what + ": True or False, not " + std::string(py::repr(v)));
}

std::vector<std::string> names_arg(py::handle v, const std::string& what, bool one_str) {
  if (py::isinstance<py::str>(v)) {
    if (one_str) return {v.cast<std::string>()};
    throw py::type_error(what + ": a list of names, not the str " + std::string(py::repr(v)));
  }
  std::vector<std::string> out;
  if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v))
    for (py::handle item : v) {
      if (!py::isinstance<py::str>(item))
        throw py::type_error(what + ": names are str, not " + std::string(py::repr(item)));
      out.push_back(item.cast<std::string>());
    }
  else
    throw py::type_error(what + ": a list of names, not " + std::string(py::str(py::type::of(v))));
  return out;
}

std::vector<std::string> layer_names_arg(py::handle v, const std::string& what) {
  // Any sequence of str (a NumPy array of names, as the layers' lists were cast before), not only a list.
  const bool other_sequence = !py::isinstance<py::str>(v) && !py::isinstance<py::list>(v) && !py::isinstance<py::tuple>(v) &&
                              py::isinstance<py::sequence>(v);
  std::vector<std::string> names;
  for (const std::string& item : names_arg(other_sequence ? py::object(py::list(py::reinterpret_borrow<py::object>(v))) : py::reinterpret_borrow<py::object>(v), what, true))
    for (size_t p = 0; p <= item.size();) {
      const size_t q = std::min(item.find(',', p), item.size());
      if (q > p) names.push_back(item.substr(p, q - p));
      p = q + 1;
    }
  return names;
}

std::vector<int> labels_arg(py::handle y, int n, const std::string& what, int lowest) {
  // A column [N, 1] is read as the command reads a label file of that shape; other shapes are refused.
  // Lists go through numpy too: pybind11 alone turned [np.float32(2.9)] into 2 and [True] into 1.
  py::object labels = py::isinstance<py::array>(y) ? py::reinterpret_borrow<py::object>(y)
                                                   : py::module_::import("numpy").attr("asarray")(y);
  {
    const py::array a = py::cast<py::array>(labels);
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u')  // pybind11 casts float32 1.9 to 1 and bools to 0/1 without a word
      throw py::type_error(what + ": labels must be an integer array, got dtype " + std::string(py::str(a.dtype())));
    if (a.ndim() == 2 && a.shape(1) == 1) labels = labels.attr("reshape")(-1);
    else if (a.ndim() != 1)
      throw py::value_error(what + ": labels must be 1-D (or one column [N, 1]), got shape " +
                            std::string(py::str(labels.attr("shape"))));
  }
  std::vector<int> out;
  try {
    out = labels.cast<std::vector<int>>();
  } catch (const py::cast_error&) {  // pybind11's "Unable to cast Python instance..." named nothing
    throw py::type_error(what + ": expected a list or 1-D array of class numbers (ints that fit 32 bits), got " +
                         std::string(py::str(py::type::of(y))));
  }
  if (int(out.size()) != n)
    throw py::value_error(what + ": " + std::to_string(out.size()) + " labels for " + std::to_string(n) + " inputs");
  for (int v : out)
    if (v < lowest)
      throw py::value_error(what + ": label " + std::to_string(v) + "; classes are 0 or more" +
                            (lowest < 0 ? " (-1: unknown)" : ""));
  return out;
}

std::string path_arg(py::handle p) {
  std::string path;
  if (py::isinstance<py::str>(p)) {
    path = p.cast<std::string>();
  } else if (!py::hasattr(p, "__fspath__") && !py::isinstance<py::bytes>(p)) {
    throw py::type_error("expected a path (str or os.PathLike), not " + std::string(py::str(py::type::of(p))));
  } else {
    py::object s = py::module_::import("os").attr("fspath")(p);
    if (!py::isinstance<py::str>(s)) throw py::type_error("expected a path (str or os.PathLike), got bytes");
    path = s.cast<std::string>();
  }
  // The C library would stop at a NUL and use the path before it; Python's open() refuses it.
  if (path.find('\0') != std::string::npos) throw py::value_error("embedded null character in path");
  return path;
}

explain::Params params_arg(const py::dict& kwargs, const std::string& what) {
  explain::Params p;
  const py::object numpy_scalar = py::module_::import("numpy").attr("generic");
  for (auto [k, given] : kwargs) {
    const std::string key = py::str(k);
    // NumPy scalars (np.int64(4), np.float32(0.1), np.bool_) as the Python values they hold.
    const py::object v = py::isinstance(given, numpy_scalar) ? given.attr("item")() : py::reinterpret_borrow<py::object>(given);
    if (py::isinstance<py::bool_>(v))
      p[key] = v.cast<bool>() ? "true" : "false";
    else if (py::isinstance<py::str>(v))
      p[key] = v.cast<std::string>();
    else if (py::isinstance<py::int_>(v) || py::isinstance<py::float_>(v))
      p[key] = std::string(py::repr(v));
    else if (py::isinstance<py::array>(v))
      p.tensors[key] = any_tensor_arg(v, what + " " + key);
    else
      throw py::type_error(what + " " + key + ": expected a number, string, bool or float array, got " +
                           std::string(py::str(py::type::of(v))));
  }
  return p;
}

void copy_failed(const std::string& arg, const py::array& a) {
  std::string shape;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) shape += (i ? "," : "") + std::to_string(a.shape(i));
  PyErr_SetString(PyExc_MemoryError, (arg + ": no memory for a contiguous copy of the [" + shape + "] array").c_str());
  throw py::error_already_set();
}

void file_not_found(const std::string& msg) {
  PyErr_SetString(PyExc_FileNotFoundError, msg.c_str());
  throw py::error_already_set();
}

namespace {

// The engine's messages name the glassbox command's flags; from Python the same values are
// arguments, so their names are given instead. A flag matches as a whole word (--input, not
// --input-space); phrases first.
std::string python_words(std::string msg) {
  static const std::pair<std::string, std::string> kWords[] = {
      {"--data with --index, or --input", "inputs="},
      {"glassbox evaluate --masks FILE.npy", "masks="},
      {"--param ", "parameter "},
      {"--target ", "target="},
      {"--unit ", "unit="},
      {"--target", "target"},
      {"--unit", "unit"},
      {"--ref-data", "data="},  // (before --data: an attack's reference inputs)
      {"--data", "data"},
      {"--masks", "masks"},
      {"--input", "inputs"},
      {"--checkpoints", "checkpoints"},
      {"--optimizer '", "optimizer='"},  // train()'s settings
      {"--schedule '", "schedule='"},
      {"--out '", "out='"},
      {"--out", "out"},
      {"--val", "val"},
      {"--lr", "lr"},
      {"--epochs", "epochs"},
      {"--batch", "batch"},
      {"--model", "model"},
      {"--allow-nonfinite", "glassbox.allow_nonfinite(True)"}};
  auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; };
  for (const auto& [flag, word] : kWords)
    for (size_t at = msg.find(flag); at != std::string::npos; at = msg.find(flag, at)) {
      const size_t end = at + flag.size();
      if (flag.back() != ' ' && flag.back() != '\'' && end < msg.size() && word_char(msg[end])) {
        at = end;
        continue;
      }
      msg.replace(at, flag.size(), word);
      at += word.size();
    }
  return msg;
}

void set_error(PyObject* type, const std::exception& e) { PyErr_SetString(type, python_words(e.what()).c_str()); }

// The exception a signal handler raised during this thread's call (KeyboardInterrupt), until the
// translator raises it; an engine error handler may have wrapped the Interrupted on its way out.
thread_local std::optional<py::error_already_set> t_interrupt;
unsigned long g_main_thread = 0;  // Python's main thread, where signal handlers run

}  // namespace

ReleasedGil::ReleasedGil() {
  t_interrupt.reset();  // left by a call that ended in a Python error instead
  if (PyThread_get_thread_ident() == g_main_thread)
    check_.emplace([] {
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() == 0) return false;
      t_interrupt.emplace();  // takes the pending exception
      return true;
    });
  release_.emplace();
}

ReleasedGil::~ReleasedGil() {
  release_.reset();
  // A stop that no pass acted on (the call returned): raised again at Python's next instruction.
  if (t_interrupt && std::uncaught_exceptions() == uncaught_) {
    t_interrupt.reset();
    PyErr_SetInterrupt();
  }
}

void register_exceptions(py::module_&) {
  g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  // Translators are tried newest first, so the specific C++ types come last here; local to this
  // module. pybind11's own exceptions pass through to its translator; the standard ones map as
  // pybind11 maps them, with the message in Python's words.
  py::register_local_exception_translator([](std::exception_ptr p) {
    if (t_interrupt) {
      std::optional<py::error_already_set> e;
      e.swap(t_interrupt);
      e->restore();
      return;
    }
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Interrupted&) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
    } catch (const py::cast_error& e) {
      // pybind11's own would be a RuntimeError; a value of the wrong type is a TypeError.
      PyErr_SetString(PyExc_TypeError, (std::string(e.what()) + ": an argument has the wrong type (see help())").c_str());
    } catch (const py::builtin_exception&) {
      throw;
    } catch (const ModelFileError& e) {
      using Kind = ModelFileError::Kind;
      PyObject* type = e.kind == Kind::missing ? PyExc_FileNotFoundError
                       : e.kind == Kind::folder ? PyExc_IsADirectoryError
                       : e.kind == Kind::io     ? PyExc_OSError
                                                : PyExc_ValueError;  // a malformed file
      set_error(type, e);
    } catch (const ShapeError& e) {
      set_error(PyExc_ValueError, e);
    } catch (const std::out_of_range& e) {
      set_error(PyExc_ValueError, e);
    } catch (const DataError& e) {
      // Readers name the file first; a missing one is FileNotFoundError, a folder where a file
      // belongs IsADirectoryError (as for models), a file where a folder belongs
      // NotADirectoryError, a malformed one ValueError.
      const std::string msg = e.what();
      auto has = [&](const char* s) { return msg.find(s) != std::string::npos; };
      const bool missing = has("No such file") || has("cannot open") || has("not found") || has("not installed");
      PyObject* type = missing                                                  ? PyExc_FileNotFoundError
                       : has("is a folder, not") || has("is a directory, expected") ? PyExc_IsADirectoryError
                       : has("is not a directory")                                ? PyExc_NotADirectoryError
                                                                                  : PyExc_ValueError;
      set_error(type, e);
    } catch (const std::invalid_argument& e) {
      set_error(PyExc_ValueError, e);
    } catch (const std::domain_error& e) {
      set_error(PyExc_ValueError, e);
    } catch (const std::range_error& e) {
      set_error(PyExc_ValueError, e);
    } catch (const std::overflow_error& e) {
      set_error(PyExc_OverflowError, e);
    } catch (const std::runtime_error& e) {
      set_error(PyExc_RuntimeError, e);
    }
  });
}

}  // namespace gb::py_glassbox
