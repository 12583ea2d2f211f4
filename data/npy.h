// NumPy .npy files (format 1.0, 2.0 and 3.0 headers), little-endian, C order only: float32 ('<f4'),
// uint8 ('|u1'), int64 ('<i8'); int32 ('<i4') and float64 ('<f8') are read as well.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace gb {

struct NpyArray {
  std::string descr;           // as in the header, e.g. "<f4"
  std::vector<int64_t> shape;  // () for a scalar
  ByteBuffer data;             // raw little-endian elements, C order
  size_t count() const;        // number of elements
};
// The header is checked against the file's size before anything is allocated.
NpyArray read_npy(const std::string& path);

// Float tensor (rank 1..4) from f4, f8, u1 (values as is, not scaled), i4 or i8 data; f4 data is
// read straight into the tensor (no copy of the file first). `descr`, when given, receives the dtype.
Tensor read_npy_f32(const std::string& path, std::string* descr = nullptr);
// The same conversion for an array already read; path is for messages.
Tensor npy_to_tensor(const NpyArray& a, const std::string& path);
// A 1-D (or [N,1]) integer array: i8, i4 or u1.
std::vector<int64_t> read_npy_labels(const std::string& path);

// Writers (format 1.0, or 2.0 when the header needs it); atomic: temp file + rename.
void write_npy(const std::string& path, const Tensor& t);  // '<f4', the tensor's shape
// numpy's uint8 dtype strings ('|u1', and '<u1'/'u1' as some writers spell it): pixels 0..255.
bool is_uint8(const std::string& descr);
// Pixels read from an array of dtype `descr`: uint8 (0..255) divided by 255, other dtypes as they are.
void uint8_to_unit(Tensor& t, const std::string& descr);
// True for a 4-D shape read as [N,H,W,C] (TensorFlow/PIL layout): the last dimension is 1, 3 or 4
// and smaller than the second, the second is not 1 or 3 (an NCHW gray or RGB count), and the third
// is above 1 ([N,28,28,1], [N,32,32,3], [N,4,5,3]). Equal sizes ([N,4,4,4]) and [N,C,1,1]
// features stay NCHW: those were transposed by mistake.
bool is_channel_last(const Shape& s);
Tensor channel_last_to_nchw(const Tensor& x);  // [N,H,W,C] → [N,C,H,W]
void write_npy_u8(const std::string& path, const std::vector<int64_t>& shape, const uint8_t* data);
void write_npy_labels(const std::string& path, const std::vector<int64_t>& labels);  // '<i8', [N]

}  // namespace gb
