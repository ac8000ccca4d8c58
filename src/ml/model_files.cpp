#include "lumen/ml/model_files.h"

#include <ggml-cpu.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ggml.h>
#include <gguf.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "gemm/gemm.h"
#include "lumen/util/temp_file.h"

namespace lumen::ml {
namespace {

constexpr const char* kConfigKey = "lumen.config_json";
constexpr const char* kPreprocessorKey = "lumen.preprocessor_json";
constexpr const char* kSpieceKey = "lumen.tokenizer.spiece_model";
constexpr const char* kVocabKey = "lumen.tokenizer.vocab_json";
constexpr const char* kMergesKey = "lumen.tokenizer.merges_txt";

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct GgufFree {
  void operator()(gguf_context* g) const { gguf_free(g); }
};
struct GgmlFree {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

class GgufFile : public TensorFile {
 public:
  ~GgufFile() override {
    if (map_) ::munmap(map_, size_);
  }
  const std::string& path() const override { return path_; }
  const TensorView* Find(const std::string& name) const override {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
  }

  static Result<std::unique_ptr<GgufFile>> Open(const std::string& path,
                                                std::map<std::string, std::string>* kv) {
    auto f = std::make_unique<GgufFile>();
    f->path_ = path;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return Status::NotFound(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    struct stat st;
    ::fstat(fd, &st);
    f->size_ = static_cast<size_t>(st.st_size);
    void* map = f->size_ ? ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    ::close(fd);
    if (map == MAP_FAILED) return Status::Corrupt(fmt::format("{}: empty or unreadable", path));
    f->map_ = map;
    ggml_context* meta = nullptr;
    gguf_init_params params{true, &meta};
    std::unique_ptr<gguf_context, GgufFree> g(gguf_init_from_buffer(map, f->size_, params));
    std::unique_ptr<ggml_context, GgmlFree> meta_ctx(meta);
    if (!g) return Status::Corrupt(fmt::format("{}: not a valid GGUF file (truncated?)", path));
    for (const char* key : {kConfigKey, kPreprocessorKey, kVocabKey, kMergesKey}) {
      int64_t id = gguf_find_key(g.get(), key);
      if (id >= 0 && gguf_get_kv_type(g.get(), id) == GGUF_TYPE_STRING)
        (*kv)[key] = gguf_get_val_str(g.get(), id);
    }
    int64_t sp = gguf_find_key(g.get(), kSpieceKey);
    if (sp >= 0 && gguf_get_kv_type(g.get(), sp) == GGUF_TYPE_ARRAY &&
        gguf_get_arr_type(g.get(), sp) == GGUF_TYPE_UINT8)
      (*kv)[kSpieceKey] = std::string(static_cast<const char*>(gguf_get_arr_data(g.get(), sp)),
                                      gguf_get_arr_n(g.get(), sp));
    const size_t data = gguf_get_data_offset(g.get());
    for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
      TensorView t;
      t.name = gguf_get_tensor_name(g.get(), i);
      const ggml_tensor* meta_t = ggml_get_tensor(meta_ctx.get(), t.name.c_str());
      if (!meta_t) return Status::Corrupt(fmt::format("{}: tensor {} has no shape", path, t.name));
      ggml_type type = gguf_get_tensor_type(g.get(), i);
      t.dtype = type == GGML_TYPE_F32   ? DType::kF32
                : type == GGML_TYPE_F16 ? DType::kF16
                                        : DType::kGgml;
      t.ggml_type = type;
      for (int d = ggml_n_dims(meta_t) - 1; d >= 0; --d) t.shape.push_back(meta_t->ne[d]);
      size_t off = data + gguf_get_tensor_offset(g.get(), i);
      t.bytes = gguf_get_tensor_size(g.get(), i);
      if (off > f->size_ || t.bytes > f->size_ - off)
        return Status::Corrupt(
            fmt::format("{}: tensor {} lies outside the file (truncated?)", path, t.name));
      t.data = static_cast<const uint8_t*>(map) + off;
      f->tensors_[t.name] = std::move(t);
    }
    return f;
  }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
};

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

ModelLogits ReadLogits(const ModelSource& model) {
  auto scalar = [&](const char* name) -> std::optional<float> {
    const TensorView* v = model.tensors->Find(name);
    if (!v || v->elements() != 1) return std::nullopt;
    float f;
    ToFloat32(*v, &f);
    return f;
  };
  ModelLogits l;
  if (auto s = scalar("logit_scale")) l.scale = std::exp(*s);
  l.bias = scalar("logit_bias");
  return l;
}

WeightType AutoWeightType() {
  // int8 on lumen's own kernels is the fastest path within cos 0.999 of f32 on every x86 CPU
  // with AVX2 (BENCHMARKS.md, issue 16): ~1.4x f32 with AVX2 alone, ~2x with AVX-VNNI or
  // AVX-512 VNNI, and ahead of ggml's q8_0 on the AMX tile unit too. Elsewhere the file's type.
  return gemm::BestIsa() ? WeightType::kInt8 : WeightType::kStored;
}

std::optional<WeightType> ParseWeightType(std::string_view name) {
  if (name == "auto") return AutoWeightType();
  if (name == "stored") return WeightType::kStored;
  if (name == "f32") return WeightType::kF32;
  if (name == "f16") return WeightType::kF16;
  if (name == "q8_0") return WeightType::kQ8_0;
  if (name == "bf16") return WeightType::kBF16;
  if (name == "int8") return WeightType::kInt8;
  return std::nullopt;
}

Result<std::unique_ptr<ModelSource>> OpenModel(const std::string& path) {
  auto m = std::make_unique<ModelSource>();
  m->path = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    auto cfg = LoadModelConfig(path);
    if (!cfg.ok()) return cfg.status();
    m->config = *cfg;
    auto st = SafetensorsFile::Open(path + "/model.safetensors");
    if (!st.ok()) return st.status();
    m->tensors = std::move(st.value());
    if (m->config.family == Family::kSiglip) {
      if (std::filesystem::exists(path + "/spiece.model"))
        m->spiece_model = ReadText(path + "/spiece.model");
    } else {
      if (std::filesystem::exists(path + "/vocab.json"))
        m->vocab_json = ReadText(path + "/vocab.json");
      if (std::filesystem::exists(path + "/merges.txt"))
        m->merges_txt = ReadText(path + "/merges.txt");
    }
    return m;
  }
  if (!EndsWith(path, ".gguf"))
    return Status::NotFound(fmt::format("{}: not a model folder or a .gguf file", path));
  std::map<std::string, std::string> kv;
  auto g = GgufFile::Open(path, &kv);
  if (!g.ok()) return g.status();
  if (!kv.count(kConfigKey))
    return Status::Invalid(
        fmt::format("{}: no {} metadata: not written by lumen models convert", path, kConfigKey));
  auto cfg = ParseModelConfig(kv[kConfigKey], kv[kPreprocessorKey], path);
  if (!cfg.ok()) return cfg.status();
  m->config = *cfg;
  m->tensors = std::move(g.value());
  m->spiece_model = kv[kSpieceKey];
  m->vocab_json = kv[kVocabKey];
  m->merges_txt = kv[kMergesKey];
  return m;
}

Status ConvertToGguf(const std::string& src, const std::string& out, GgufType type) {
  std::error_code ec;
  if (!std::filesystem::is_directory(src, ec))
    return Status::Invalid(fmt::format("{}: convert reads a Hugging Face model folder", src));
  auto cfg = LoadModelConfig(src);
  if (!cfg.ok()) return cfg.status();
  auto st = SafetensorsFile::Open(src + "/model.safetensors");
  if (!st.ok()) return st.status();
  const auto& tensors = (*st)->tensors();
  size_t need = ggml_tensor_overhead() * (tensors.size() + 4);
  for (const auto& [name, t] : tensors) need += size_t(t.elements()) * 4 + 256;
  ggml_init_params params{need, nullptr, false};
  std::unique_ptr<ggml_context, GgmlFree> ctx(ggml_init(params));
  if (!ctx) return Status::Internal("cannot allocate memory for the conversion");
  std::unique_ptr<gguf_context, GgufFree> g(gguf_init_empty());
  gguf_set_val_str(g.get(), "general.architecture",
                   cfg->family == Family::kSiglip ? "siglip" : "clip");
  gguf_set_val_str(g.get(), kConfigKey, ReadText(src + "/config.json").c_str());
  std::string pre = ReadText(src + "/preprocessor_config.json");
  if (!pre.empty()) gguf_set_val_str(g.get(), kPreprocessorKey, pre.c_str());
  if (std::filesystem::exists(src + "/spiece.model")) {
    std::string sp = ReadText(src + "/spiece.model");
    gguf_set_arr_data(g.get(), kSpieceKey, GGUF_TYPE_UINT8, sp.data(), sp.size());
  }
  if (std::filesystem::exists(src + "/vocab.json"))
    gguf_set_val_str(g.get(), kVocabKey, ReadText(src + "/vocab.json").c_str());
  if (std::filesystem::exists(src + "/merges.txt"))
    gguf_set_val_str(g.get(), kMergesKey, ReadText(src + "/merges.txt").c_str());
  std::vector<float> f32;
  for (const auto& [name, t] : tensors) {
    if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16) continue;
    if (name.size() >= GGML_MAX_NAME)
      return Status::Invalid(
          fmt::format("{}: tensor name {} is too long for GGUF", (*st)->path(), name));
    f32.resize(size_t(t.elements()));
    ToFloat32(t, f32.data());
    // Matrices ([out, in, ...]) get the requested type; vectors and embeddings tables stay f32.
    const bool matrix = t.shape.size() >= 2 && name.find("embedding") == std::string::npos &&
                        name.find("probe") == std::string::npos;
    int64_t ne[4] = {1, 1, 1, 1};
    int nd = 0;
    for (auto d = t.shape.rbegin(); d != t.shape.rend() && nd < 4; ++d) ne[nd++] = *d;
    ggml_type gt = GGML_TYPE_F32;
    if (matrix) {
      int64_t rows = 1;
      for (int d = 1; d < nd; ++d) rows *= ne[d];
      ne[1] = rows;
      nd = 2;
      gt = type == GgufType::kF32    ? GGML_TYPE_F32
           : type == GgufType::kF16  ? GGML_TYPE_F16
           : type == GgufType::kQ8_0 ? GGML_TYPE_Q8_0
                                     : GGML_TYPE_Q4_0;
      if (ggml_blck_size(gt) > 1 && ne[0] % ggml_blck_size(gt) != 0) gt = GGML_TYPE_F16;
    }
    ggml_tensor* out_t = ggml_new_tensor(ctx.get(), gt, std::max(1, nd), ne);
    ggml_set_name(out_t, name.c_str());
    if (gt == GGML_TYPE_F32) {
      std::memcpy(out_t->data, f32.data(), f32.size() * 4);
    } else if (gt == GGML_TYPE_F16) {
      ggml_fp32_to_fp16_row(f32.data(), static_cast<ggml_fp16_t*>(out_t->data),
                            int64_t(f32.size()));
    } else {
      ggml_quantize_chunk(gt, f32.data(), out_t->data, 0, ne[1], ne[0], nullptr);
    }
    gguf_add_tensor(g.get(), out_t);
  }
  // A temporary created exclusively beside `out`, renamed over it when complete.
  auto tmp = TempFile::Create(out);
  if (!tmp.ok()) return tmp.status();
  tmp->CloseForWriter();
  if (!gguf_write_to_file(g.get(), tmp->path().c_str(), false))
    return Status::Io(fmt::format("{}: cannot write", out));
  return tmp->Commit();
}

}  // namespace lumen::ml
