// A model as the files it comes in: a Hugging Face folder (config.json, preprocessor_config.json,
// model.safetensors, tokenizer files) or one lumen GGUF file that `lumen models convert` writes
// from such a folder (weights at f32/f16/q8_0/q4_0, plus the configs and tokenizer files as
// metadata). Both encoders load through OpenModel(), so both formats work everywhere.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lumen/ml/image_encoder.h"
#include "lumen/ml/model_config.h"
#include "lumen/ml/safetensors.h"
#include "lumen/util/status.h"

namespace lumen::ml {

struct ModelSource {
  std::string path;  // the folder or the .gguf file
  ModelConfig config;
  std::unique_ptr<TensorFile> tensors;
  std::string spiece_model;  // SigLIP: serialized SentencePiece model
  std::string vocab_json;    // CLIP: BPE vocabulary
  std::string merges_txt;    // CLIP: BPE merges
};

// The model's learned calibration scalars, when its weights carry them: logit_scale (stored as
// a log; this is exp of it) and logit_bias (SigLIP).
struct ModelLogits {
  std::optional<float> scale;
  std::optional<float> bias;
};
ModelLogits ReadLogits(const ModelSource& model);

// Parses "stored", "f32", "f16", "q8_0" (the --weights values).
// "auto", "stored", "f32", "f16", "bf16", "q8_0". auto: q8_0 where the CPU has AMX-INT8, else
// the type stored in the model file.
std::optional<WeightType> ParseWeightType(std::string_view name);
WeightType AutoWeightType();

// Opens a folder or a .gguf file. Errors name the file and what is wrong.
Result<std::unique_ptr<ModelSource>> OpenModel(const std::string& path);

// Writes `out` (GGUF) from the model at `src`: matrices as `type` (f32, f16, q8_0 or q4_0; a
// matrix whose rows are not a multiple of the block size stays f16), everything else f32.
enum class GgufType { kF32, kF16, kQ8_0, kQ4_0 };
Status ConvertToGguf(const std::string& src, const std::string& out, GgufType type);

}  // namespace lumen::ml
