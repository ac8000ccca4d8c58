// Image-text model configuration, read from a Hugging Face model folder: config.json and
// preprocessor_config.json. Two families share one transformer implementation:
//   SigLIP (model_type "siglip"/"siglip2"-style): no class token, gelu (tanh), attention-pooling
//     head (MAP), no projection, learned logit_scale and logit_bias.
//   CLIP (model_type "clip"): class token, pre-layernorm, quick_gelu, CLS pooling, projection.
// Larger ViTs (L/14, SO400M) are only other numbers here.
#pragma once

#include <array>
#include <string>

#include "lumen/util/status.h"

namespace lumen::ml {

enum class Family { kSiglip, kClip };
enum class Activation { kGeluTanh, kGeluErf, kQuickGelu };

struct VisionConfig {
  int hidden = 768;
  int intermediate = 3072;
  int heads = 12;
  int layers = 12;
  int image_size = 224;
  int patch_size = 16;
  float eps = 1e-6f;
  Activation act = Activation::kGeluTanh;
  int patches() const { return (image_size / patch_size) * (image_size / patch_size); }
};

// How an image becomes the encoder input (from preprocessor_config.json, family defaults).
// kSquash: bicubic resize to image_size x image_size (SigLIP). kShortEdgeCrop: bicubic resize of
// the short edge to image_size, centre crop (CLIP). Then x = (v / 255 - mean) / std per channel.
struct PreprocessConfig {
  enum class Resize { kSquash, kShortEdgeCrop } resize = Resize::kSquash;
  std::array<float, 3> mean{0.5f, 0.5f, 0.5f};
  std::array<float, 3> std{0.5f, 0.5f, 0.5f};
};

// The text tower. SigLIP pads every text to max_positions and pools the last token; CLIP runs
// causal attention at the text's own length and pools the end-of-text token.
struct TextConfig {
  bool present = false;  // config.json has a text_config
  int vocab = 32000;
  int hidden = 768;
  int intermediate = 3072;
  int heads = 12;
  int layers = 12;
  int max_positions = 64;
  float eps = 1e-6f;
  Activation act = Activation::kGeluTanh;
  int projection = 768;  // SigLIP: text_model.head output size
  int eos_id = 1;
  int bos_id = -1;  // CLIP only
  int pad_id = 0;   // SigLIP only
};

struct ModelConfig {
  Family family = Family::kSiglip;
  VisionConfig vision;
  TextConfig text;
  PreprocessConfig preprocess;
  int projection_dim = 0;  // CLIP: output dim of visual_projection; 0 = no projection
  int embed_dim() const { return projection_dim > 0 ? projection_dim : vision.hidden; }
};

// Errors name the file and the field: missing config.json, unknown model_type, bad numbers.
Result<ModelConfig> LoadModelConfig(const std::string& dir);
// The same from the two files' contents (an empty preprocessor text means defaults); `where`
// names the source in errors.
Result<ModelConfig> ParseModelConfig(const std::string& config_json,
                                     const std::string& preprocessor_json,
                                     const std::string& where);

}  // namespace lumen::ml
