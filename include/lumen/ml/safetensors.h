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

// kGgml: a ggml block type from a GGUF file (TensorView::ggml_type says which).
enum class DType { kF32, kF16, kBF16, kI64, kI32, kU8, kGgml, kOther };
const char* DTypeName(DType t);
size_t DTypeSize(DType t);

struct TensorView {
  std::string name;
  DType dtype = DType::kOther;
  std::vector<int64_t> shape;  // PyTorch order (outermost first)
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  int ggml_type = -1;  // for DType::kGgml
  int64_t elements() const;
};

// Named tensors from a weights file, memory-mapped.
class TensorFile {
 public:
  virtual ~TensorFile() = default;
  virtual const std::string& path() const = 0;
  virtual const TensorView* Find(const std::string& name) const = 0;
};

class SafetensorsFile : public TensorFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const override { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(const std::string& name) const override;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Converts any float dtype (and ggml block types) to f32.
void ToFloat32(const TensorView& t, float* out);

}  // namespace lumen::ml
