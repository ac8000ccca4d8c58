// Image encoders against an independent PyTorch reference (tests/ml/reference.py) on the same
// random weights and inputs: preprocessing and both families at f32, f16 and q8_0.
#include <ggml-cpu.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "gemm/gemm.h"
#include "lumen/ml/image_encoder.h"
#include "lumen/ml/model_files.h"
#include "lumen/ml/safetensors.h"
#include "lumen/ml/text_encoder.h"
#include "test_support.h"

namespace lumen::ml {
namespace {

std::vector<float> ReadFloats(const std::string& path) {
  auto bytes = test::ReadFile(path);
  std::vector<float> f(bytes.size() / 4);
  std::memcpy(f.data(), bytes.data(), f.size() * 4);
  return f;
}

std::vector<Image> ReadImages(const std::string& path) {
  auto b = test::ReadFile(path);
  size_t off = 0;
  auto i32 = [&] {
    int32_t v;
    std::memcpy(&v, b.data() + off, 4);
    off += 4;
    return v;
  };
  std::vector<Image> out;
  for (int n = i32(); n > 0; --n) {
    int w = i32(), h = i32();
    Image img(w, h, 3);
    std::memcpy(img.pixels.data(), b.data() + off, img.pixels.size());
    off += img.pixels.size();
    out.push_back(std::move(img));
  }
  return out;
}

// Runs tests/ml/SCRIPT.py: a random-weight model of `family` in `dir`, with its reference results.
bool MakeModel(const char* script, const std::string& dir, const std::string& family, int seed) {
  std::string cmd = std::string("/usr/bin/python3 ") + LUMEN_SOURCE_DIR + "/tests/ml/" + script +
                    ".py " + dir + " " + family + " " + std::to_string(seed);
  return std::system(cmd.c_str()) == 0;
}

double Cosine(const float* a, const float* b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

class Reference : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<test::TempDir>();
    ASSERT_TRUE(MakeModel("reference", dir_->path(), GetParam(), 7));
  }
  std::string dir() const { return dir_->path(); }
  std::unique_ptr<test::TempDir> dir_;
};

TEST_P(Reference, PreprocessingMatches) {
  auto enc = ImageEncoder::Load(dir(), {});
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  auto images = ReadImages(dir() + "/images.bin");
  auto pre = ReadFloats(dir() + "/pre.bin");
  size_t n = (*enc)->input_floats();
  ASSERT_EQ(pre.size(), n * images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    auto mine = (*enc)->Preprocess(images[i], 1);
    EXPECT_GE(Cosine(mine.data(), pre.data() + i * n, n), 0.9999) << "image " << i;
  }
}

// Every weight type against the reference; q8_0 both on the AMX tile unit (where this CPU has
// one: ggml's AMX kernels, repacked weights) and on the AVX path; f32 both on lumen's kernels and
// on ggml's; int8 on lumen's kernels (the widest this CPU runs: see
// OwnKernelsOnEveryInstructionSet for the others).
struct Precision {
  WeightType type;
  double min_cos;
  bool amx;
  bool own = true;
};
constexpr Precision kPrecisions[] = {
    {WeightType::kF32, 0.9999, false},      {WeightType::kF32, 0.9999, false, false},
    {WeightType::kF16, 0.999, false},       {WeightType::kBF16, 0.995, false},
    {WeightType::kQ8_0, 0.99, false},       {WeightType::kQ8_0, 0.99, true},
    {WeightType::kInt8, 0.999, false, true}};

void ExpectAmxAsAsked(const Precision& c, int amx_matrices) {
  if (c.amx && ggml_cpu_has_amx_int8() && !std::getenv("LUMEN_NO_AMX"))
    EXPECT_GT(amx_matrices, 0) << "this CPU has AMX-INT8: q8_0 matrices should use it";
  else
    EXPECT_EQ(amx_matrices, 0) << WeightTypeName(c.type);
}

// f32 and int8 run on lumen's kernels wherever the CPU has them (AVX2 + FMA), and only when asked.
void ExpectOwnAsAsked(const Precision& c, int own_matrices) {
  const bool want = c.own && lumen::ml::gemm::BestIsa() &&
                    (c.type == WeightType::kF32 || c.type == WeightType::kInt8);
  if (want)
    EXPECT_GT(own_matrices, 0) << WeightTypeName(c.type);
  else
    EXPECT_EQ(own_matrices, 0) << WeightTypeName(c.type);
}

TEST_P(Reference, EmbeddingsMatchAtEveryPrecision) {
  auto pre = ReadFloats(dir() + "/pre.bin");
  auto ref = ReadFloats(dir() + "/emb.bin");
  for (const auto& c : kPrecisions) {
    EncoderOptions opt;
    opt.weights = c.type;
    opt.amx = c.amx;
    opt.own_kernels = c.own;
    opt.threads = 2;
    auto enc = ImageEncoder::Load(dir(), opt);
    ASSERT_TRUE(enc.ok()) << enc.status().ToString();
    ExpectAmxAsAsked(c, (*enc)->amx_matrices());
    ExpectOwnAsAsked(c, (*enc)->own_matrices());
    const int dim = (*enc)->dim();
    const int batch = static_cast<int>(ref.size() / dim);
    ASSERT_EQ(batch, 3);
    // The test can fail: the three reference embeddings are far from each other.
    EXPECT_LT(Cosine(ref.data(), ref.data() + dim, dim), 0.99);
    EXPECT_LT(Cosine(ref.data() + dim, ref.data() + 2 * dim, dim), 0.99);
    std::vector<float> out(ref.size());
    ASSERT_TRUE((*enc)->Encode(pre.data(), batch, out.data()).ok());
    for (int b = 0; b < batch; ++b) {
      double cos = Cosine(out.data() + b * dim, ref.data() + b * dim, dim);
      EXPECT_GE(cos, c.min_cos) << WeightTypeName(c.type) << " image " << b;
      RecordProperty(
          std::string(GetParam()) + "_" + WeightTypeName(c.type) + "_cos" + std::to_string(b),
          std::to_string(cos));
      double norm = Cosine(out.data() + b * dim, out.data() + b * dim, dim);
      EXPECT_NEAR(norm, 1.0, 1e-6);
    }
    // Batch of one gives the same answer as inside a batch.
    std::vector<float> one(dim);
    ASSERT_TRUE((*enc)->Encode(pre.data() + (*enc)->input_floats(), 1, one.data()).ok());
    EXPECT_GE(Cosine(one.data(), out.data() + dim, dim), 0.99999);
  }
}

// lumen's f32 and int8 kernels for every instruction set this CPU runs (LUMEN_ISA caps the choice),
// each against the reference, in batches and alone.
TEST_P(Reference, OwnKernelsOnEveryInstructionSet) {
  using lumen::ml::gemm::Isa;
  auto pre = ReadFloats(dir() + "/pre.bin");
  auto ref = ReadFloats(dir() + "/emb.bin");
  int tried = 0;
  struct Unset {  // LUMEN_ISA never outlives the test, even when an ASSERT ends it
    ~Unset() { ::unsetenv("LUMEN_ISA"); }
  } unset;
  for (Isa isa : {Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512, Isa::kAvx512Vnni}) {
    if (!lumen::ml::gemm::Supported(isa)) continue;
    ::setenv("LUMEN_ISA", lumen::ml::gemm::IsaName(isa), 1);
    for (auto [type, min_cos] : {std::pair{WeightType::kF32, 0.9999}, {WeightType::kInt8, 0.999}}) {
      EncoderOptions opt;
      opt.weights = type;
      opt.threads = 3;  // uneven shares of the columns
      auto enc = ImageEncoder::Load(dir(), opt);
      ASSERT_TRUE(enc.ok()) << enc.status().ToString();
      EXPECT_GT((*enc)->own_matrices(), 0);
      const std::string kernel = (*enc)->own_kernel();
      EXPECT_EQ(kernel.substr(0, kernel.find('/')), WeightTypeName(type));
      const int dim = (*enc)->dim(), batch = 3;
      std::vector<float> out(ref.size());
      ASSERT_TRUE((*enc)->Encode(pre.data(), batch, out.data()).ok());
      for (int b = 0; b < batch; ++b) {
        const double cos = Cosine(out.data() + b * dim, ref.data() + b * dim, dim);
        EXPECT_GE(cos, min_cos) << kernel << " image " << b;
        RecordProperty(std::string(GetParam()) + "_" + kernel + "_cos" + std::to_string(b),
                       std::to_string(cos));
      }
      std::vector<float> one(dim);
      ASSERT_TRUE((*enc)->Encode(pre.data() + 2 * (*enc)->input_floats(), 1, one.data()).ok());
      EXPECT_GE(Cosine(one.data(), out.data() + 2 * dim, dim), 0.99999) << kernel;
    }
    ++tried;
  }
  if (!tried) GTEST_SKIP() << "no AVX2 + FMA here: every product runs on ggml";
}

INSTANTIATE_TEST_SUITE_P(Families, Reference, ::testing::Values("siglip", "clip"));

TEST(Weights, AutoIsInt8WhereLumensKernelsRun) {
  const auto isa = lumen::ml::gemm::BestIsa();
  EXPECT_EQ(lumen::ml::ParseWeightType("auto"), isa ? WeightType::kInt8 : WeightType::kStored);
  EXPECT_EQ(lumen::ml::ParseWeightType("int8"), WeightType::kInt8);
  EXPECT_STREQ(WeightTypeName(WeightType::kInt8), "int8");
  EXPECT_FALSE(lumen::ml::ParseWeightType("int4").has_value());
}

class TextReference : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<test::TempDir>();
    ASSERT_TRUE(MakeModel("text_reference", dir_->path(), GetParam(), 5));
    std::ifstream in(dir_->path() + "/texts.json");
    ref_ = nlohmann::json::parse(in);
  }
  std::unique_ptr<test::TempDir> dir_;
  nlohmann::json ref_;
};

TEST_P(TextReference, TokenizerMatchesOnTrickyText) {
  auto enc = TextEncoder::Load(dir_->path(), {});
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  const auto& texts = ref_["texts"];
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ids = (*enc)->tokenizer().Encode(texts[i].get<std::string>());
    EXPECT_EQ(ids, ref_["tokens"][i].get<std::vector<int32_t>>())
        << "text " << i << ": " << texts[i];
  }
}

TEST_P(TextReference, EmbeddingsMatchAtEveryPrecision) {
  auto ref = ReadFloats(dir_->path() + "/text_emb.bin");
  std::vector<std::vector<int32_t>> tokens;
  for (const auto& t : ref_["tokens"]) tokens.push_back(t.get<std::vector<int32_t>>());
  for (const auto& c : kPrecisions) {
    EncoderOptions opt;
    opt.weights = c.type;
    opt.amx = c.amx;
    opt.own_kernels = c.own;
    auto enc = TextEncoder::Load(dir_->path(), opt);
    ASSERT_TRUE(enc.ok()) << enc.status().ToString();
    ExpectAmxAsAsked(c, (*enc)->amx_matrices());
    ExpectOwnAsAsked(c, (*enc)->own_matrices());
    const int dim = (*enc)->dim();
    ASSERT_EQ(ref.size(), tokens.size() * dim);
    std::vector<float> out(ref.size());
    ASSERT_TRUE((*enc)->EncodeTokens(tokens, out.data(), 3).ok());
    for (size_t i = 0; i < tokens.size(); ++i)
      EXPECT_GE(Cosine(out.data() + i * dim, ref.data() + i * dim, dim), c.min_cos)
          << WeightTypeName(c.type) << " text " << i;
    // Strings through the tokenizer give the same vectors.
    std::vector<std::string> texts;
    for (const auto& t : ref_["texts"]) texts.push_back(t.get<std::string>());
    std::vector<float> again(ref.size());
    ASSERT_TRUE((*enc)->Encode(texts, again.data()).ok());
    EXPECT_GE(Cosine(again.data(), out.data(), out.size()), 0.99999);
  }
  EXPECT_LT(
      Cosine(ref.data(), ref.data() + ref.size() / tokens.size() * 2, ref.size() / tokens.size()),
      0.99);
  auto enc = TextEncoder::Load(dir_->path(), {});
  if (std::string(GetParam()) == "siglip") {
    EXPECT_NEAR((*enc)->logit_scale(), 10.0, 1e-4);
    EXPECT_NEAR((*enc)->logit_bias(), -10.0, 1e-6);
  } else {
    EXPECT_NEAR((*enc)->logit_scale(), 1 / 0.07, 1e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TextReference, ::testing::Values("siglip", "clip"));

// Robustness (also under ASan): random bytes and broken UTF-8 through both tokenizers; damaged
// safetensors headers through the parser. A Status or a valid result, never a crash.
TEST_P(TextReference, RandomInputNeverCrashes) {
  auto enc = TextEncoder::Load(dir_->path(), {});
  ASSERT_TRUE(enc.ok());
  const auto& tok = (*enc)->tokenizer();
  const int max = (*enc)->config().text.max_positions;
  std::mt19937 rng(11);
  for (int round = 0; round < 300; ++round) {
    std::string text(std::uniform_int_distribution<size_t>(0, 400)(rng), '\0');
    for (auto& c : text) c = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
    auto ids = tok.Encode(text);
    ASSERT_FALSE(ids.empty());
    ASSERT_LE(ids.size(), static_cast<size_t>(max));
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < (*enc)->config().text.vocab);
  }
  auto st_bytes = test::ReadFile(dir_->File("model.safetensors"));
  for (int round = 0; round < 300; ++round) {
    std::vector<uint8_t> b = st_bytes;
    size_t header = std::min<size_t>(b.size(), 8 + 4096);
    for (int k = 0; k < 8; ++k)
      b[std::uniform_int_distribution<size_t>(0, header - 1)(rng)] =
          static_cast<uint8_t>(std::uniform_int_distribution<int>(0, 255)(rng));
    if (round % 5 == 0) b.resize(std::uniform_int_distribution<size_t>(0, b.size())(rng));
    test::WriteFile(dir_->File("damaged.safetensors"), b);
    auto f = SafetensorsFile::Open(dir_->File("damaged.safetensors"));
    if (!f.ok()) {
      EXPECT_NE(f.status().message().find("damaged.safetensors"), std::string::npos)
          << f.status().message();
      continue;
    }
    for (const auto& [name, t] : (*f)->tensors()) {
      ASSERT_TRUE(t.data != nullptr || t.bytes == 0);
      if (t.dtype != DType::kOther) {
        ASSERT_EQ(t.bytes, size_t(t.elements()) * DTypeSize(t.dtype));
      }
    }
  }
}

// lumen models convert: the same model as GGUF at each type loads both towers and matches.
TEST_P(TextReference, GgufAtEveryTypeMatchesTheReference) {
  auto pre = ReadFloats(dir_->path() + "/pre.bin");
  auto img_ref = ReadFloats(dir_->path() + "/emb.bin");
  auto txt_ref = ReadFloats(dir_->path() + "/text_emb.bin");
  std::vector<std::vector<int32_t>> tokens;
  for (const auto& t : ref_["tokens"]) tokens.push_back(t.get<std::vector<int32_t>>());
  struct Case {
    GgufType type;
    const char* name;
    double min_cos;
  } cases[] = {{GgufType::kF32, "f32", 0.9999},
               {GgufType::kF16, "f16", 0.999},
               {GgufType::kQ8_0, "q8_0", 0.99},
               {GgufType::kQ4_0, "q4_0", 0.9}};
  uintmax_t last_size = ~uintmax_t(0);
  for (const auto& c : cases) {
    std::string out = dir_->File(std::string("model-") + c.name + ".gguf");
    ASSERT_TRUE(ConvertToGguf(dir_->path(), out, c.type).ok());
    uintmax_t size = std::filesystem::file_size(out);
    EXPECT_LT(size, last_size) << c.name;  // each type is smaller than the one before
    last_size = size;
    auto img = ImageEncoder::Load(out, {});
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    const int idim = (*img)->dim();
    std::vector<float> iout(img_ref.size());
    ASSERT_TRUE((*img)->Encode(pre.data(), 3, iout.data()).ok());
    for (int b = 0; b < 3; ++b)
      EXPECT_GE(Cosine(iout.data() + b * idim, img_ref.data() + b * idim, idim), c.min_cos)
          << c.name;
    auto txt = TextEncoder::Load(out, {});
    ASSERT_TRUE(txt.ok()) << txt.status().ToString();
    const int tdim = (*txt)->dim();
    std::vector<float> tout(txt_ref.size());
    ASSERT_TRUE((*txt)->EncodeTokens(tokens, tout.data()).ok());
    for (size_t i = 0; i < tokens.size(); ++i)
      EXPECT_GE(Cosine(tout.data() + i * tdim, txt_ref.data() + i * tdim, tdim), c.min_cos)
          << c.name;
    // The tokenizer travels inside the GGUF.
    EXPECT_EQ((*txt)->tokenizer().Encode(ref_["texts"][2].get<std::string>()),
              ref_["tokens"][2].get<std::vector<int32_t>>());
  }
  // A truncated GGUF is a clear error, not a crash.
  std::string q8 = dir_->File("model-q8_0.gguf");
  auto bytes = test::ReadFile(q8);
  bytes.resize(bytes.size() / 2);
  test::WriteFile(dir_->File("cut.gguf"), bytes);
  auto cut = ImageEncoder::Load(dir_->File("cut.gguf"), {});
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("cut.gguf"), std::string::npos) << cut.status().message();
}

TEST(ModelErrors, ClearMessagesBeforeAnyInference) {
  test::TempDir d;
  auto missing = ImageEncoder::Load(d.path(), {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("config.json"), std::string::npos);

  ASSERT_TRUE(MakeModel("reference", d.path(), "siglip", 1));
  // Truncated weights.
  auto bytes = test::ReadFile(d.File("model.safetensors"));
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + bytes.size() / 2);
  test::WriteFile(d.File("model.safetensors"), cut);
  auto trunc = ImageEncoder::Load(d.path(), {});
  ASSERT_FALSE(trunc.ok());
  EXPECT_NE(trunc.status().message().find("model.safetensors"), std::string::npos);
  EXPECT_NE(trunc.status().message().find("truncated"), std::string::npos)
      << trunc.status().message();
  test::WriteFile(d.File("model.safetensors"), bytes);

  // A config that disagrees with the weights: the shape error names the tensor.
  std::string cfg =
      R"({"model_type": "siglip", "vision_config": {"hidden_size": 96, "intermediate_size": 128,
    "num_attention_heads": 4, "num_hidden_layers": 2, "image_size": 32, "patch_size": 8}})";
  test::WriteFile(d.File("config.json"), cfg);
  auto shape = ImageEncoder::Load(d.path(), {});
  ASSERT_FALSE(shape.ok());
  EXPECT_NE(shape.status().message().find("patch_embedding.weight"), std::string::npos)
      << shape.status().message();

  // A tensor of the wrong dtype (I64 instead of a float type).
  {
    test::TempDir w;
    ASSERT_TRUE(MakeModel("reference", w.path(), "siglip", 1));
    auto st_bytes = test::ReadFile(w.File("model.safetensors"));
    std::string text(st_bytes.begin(), st_bytes.end());
    // Relabel one F32 tensor as I32 (same element size, so offsets stay valid).
    size_t at = text.find("\"F32\"");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 5, "\"I32\"");
    test::WriteFile(w.File("model.safetensors"), text);
    auto bad = ImageEncoder::Load(w.path(), {});
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("has dtype I32"), std::string::npos)
        << bad.status().message();
  }
  // A tokenizer larger than the text model's vocabulary.
  {
    test::TempDir t;
    ASSERT_TRUE(MakeModel("text_reference", t.path(), "siglip", 1));
    auto cfg = nlohmann::json::parse(test::ReadFile(t.File("config.json")));
    cfg["text_config"]["vocab_size"] = 100;
    test::WriteFile(t.File("config.json"), cfg.dump());
    auto bad = TextEncoder::Load(t.path(), {});
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("has 320 tokens but the text model's vocab_size is 100"),
              std::string::npos)
        << bad.status().message();
  }

  test::WriteFile(d.File("config.json"), std::string(R"({"model_type": "resnet"})"));
  auto arch = ImageEncoder::Load(d.path(), {});
  ASSERT_FALSE(arch.ok());
  EXPECT_NE(arch.status().message().find("unknown architecture"), std::string::npos);
}

}  // namespace
}  // namespace lumen::ml
