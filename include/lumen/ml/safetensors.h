// Reading Hugging Face safetensors files (memory-mapped, zero-copy).
//
// Layout: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the tensor bytes. Open() validates everything before any tensor is used: the header is
// inside the file, offsets are in order and inside the data area, and each tensor's byte size is
// its shape times its dtype's size. Every error names the file and the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lumen/util/status.h"

namespace lumen::ml {

enum class DType { kF32, kF16, kBF16, kI64, kI32, kU8, kOther };
const char* DTypeName(DType t);
size_t DTypeSize(DType t);

struct TensorView {
  std::string name;
  DType dtype = DType::kOther;
  std::vector<int64_t> shape;  // PyTorch order (outermost first)
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  int64_t elements() const;
};

class SafetensorsFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Converts any float dtype to f32 (for biases, norms, and the reference tests).
void ToFloat32(const TensorView& t, float* out);

}  // namespace lumen::ml
