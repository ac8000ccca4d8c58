#include "lumen/ml/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <ggml.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/io/file.h"

namespace lumen::ml {

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kI64:
      return "I64";
    case DType::kI32:
      return "I32";
    case DType::kU8:
      return "U8";
    case DType::kGgml:
      return "ggml";
    case DType::kOther:
      break;
  }
  return "other";
}

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kF16:
      return 2;
    case DType::kBF16:
      return 2;
    case DType::kI64:
      return 8;
    case DType::kI32:
      return 4;
    case DType::kU8:
      return 1;
    case DType::kGgml:
    case DType::kOther:
      break;
  }
  return 0;
}

int64_t TensorView::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {
DType ParseDType(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  if (s == "I64") return DType::kI64;
  if (s == "I32") return DType::kI32;
  if (s == "U8") return DType::kU8;
  return DType::kOther;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3FF;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
}  // namespace

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return Status::NotFound(ErrnoMessage(fmt::format("{}: cannot open", path).c_str(), errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::Io(fmt::format("{}: cannot stat", path));
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Status::Corrupt(
        fmt::format("{}: not a safetensors file ({} bytes, truncated?)", path, size));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED)
    return Status::Io(fmt::format("{}: cannot map: {}", path, std::strerror(errno)));
  f->map_ = map;
  f->map_size_ = size;
  const uint8_t* base = static_cast<const uint8_t*>(map);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | base[i];
  if (hlen > size - 8 || hlen > (100u << 20))
    return Status::Corrupt(fmt::format(
        "{}: header length {} does not fit in the file ({} bytes): truncated or not safetensors",
        path, hlen, size));
  auto j = nlohmann::json::parse(base + 8, base + 8 + hlen, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::Corrupt(fmt::format("{}: the header is not a JSON object", path));
  const uint8_t* data = base + 8 + hlen;
  size_t data_size = size - 8 - hlen;
  for (auto& [name, v] : j.items()) {
    if (name == "__metadata__") {
      if (v.is_object())
        for (auto& [k, mv] : v.items())
          if (mv.is_string()) f->metadata_[k] = mv.get<std::string>();
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      return Status::Corrupt(
          fmt::format("{}: tensor {}: missing dtype, shape or data_offsets", path, name));
    TensorView t;
    t.name = name;
    t.dtype = ParseDType(v["dtype"].is_string() ? v["dtype"].get<std::string>() : "");
    for (auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        return Status::Corrupt(fmt::format("{}: tensor {}: bad shape", path, name));
      t.shape.push_back(d.get<int64_t>());
    }
    int64_t count = 1;
    for (int64_t d : t.shape) {
      if (d != 0 && count > (int64_t(1) << 40) / d)
        return Status::Corrupt(fmt::format("{}: tensor {}: shape too large", path, name));
      count *= d;
    }
    auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      return Status::Corrupt(fmt::format("{}: tensor {}: bad data_offsets", path, name));
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      return Status::Corrupt(fmt::format(
          "{}: tensor {}: bytes [{}, {}) outside the data area ({} bytes): file truncated?", path,
          name, b, e, data_size));
    t.data = data + b;
    t.bytes = e - b;
    if (t.dtype != DType::kOther &&
        static_cast<uint64_t>(t.elements()) * DTypeSize(t.dtype) != t.bytes)
      return Status::Corrupt(fmt::format("{}: tensor {}: {} bytes for {} elements of {}", path,
                                         name, t.bytes, t.elements(), DTypeName(t.dtype)));
    f->tensors_[name] = std::move(t);
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorView* SafetensorsFile::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void ToFloat32(const TensorView& t, float* out) {
  int64_t n = t.elements();
  switch (t.dtype) {
    case DType::kF32:
      std::memcpy(out, t.data, size_t(n) * 4);
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = HalfToFloat(h);
      }
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        uint32_t bits = uint32_t(h) << 16;
        std::memcpy(&out[i], &bits, 4);
      }
      break;
    case DType::kGgml: {
      const auto* traits = ggml_get_type_traits(static_cast<ggml_type>(t.ggml_type));
      if (traits && traits->to_float) {
        traits->to_float(t.data, out, n);
        break;
      }
      [[fallthrough]];
    }
    default:
      for (int64_t i = 0; i < n; ++i) out[i] = 0;
  }
}

}  // namespace lumen::ml
