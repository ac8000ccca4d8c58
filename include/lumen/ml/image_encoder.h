// The image tower of SigLIP and CLIP models, run in-process on ggml (CPU backend).
//
// Load() reads a Hugging Face model folder (config.json, preprocessor_config.json,
// model.safetensors with f32/f16/bf16 weights), checks every tensor's presence, dtype and shape
// against the config before anything runs (errors name the file and the tensor), and builds the
// weights in the requested type. Encode() runs a batch through the transformer with all threads
// and returns L2-normalised embeddings in the model's shared image-text space.
//
// Preprocessing contract (Preprocess()): input is the pipeline's reduced decode (8-bit RGB, stored
// orientation) plus its EXIF orientation. The image is made upright, resized with bicubic
// (Keys a=-0.5, antialiased) either to image_size x image_size (SigLIP) or short edge to
// image_size then centre-cropped (CLIP), then each channel becomes (v/255 - mean) / std, laid out
// CHW. Mean/std come from preprocessor_config.json (family defaults otherwise).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lumen/image/image.h"
#include "lumen/ml/model_config.h"
#include "lumen/util/status.h"

namespace lumen::ml {

// kInt8: lumen's own int8 kernels (weights per row and 128-value block, activations quantized
// per token and block on the fly; AVX2, AVX-VNNI, AVX-512 VNNI). kF32 runs on lumen's own f32
// kernels too where the CPU has AVX2 + FMA (own_kernels below).
enum class WeightType { kStored, kF32, kF16, kBF16, kQ8_0, kInt8 };
const char* WeightTypeName(WeightType t);

struct EncoderOptions {
  int threads = 0;  // 0 = all cores
  WeightType weights = WeightType::kStored;
  // q8_0/q4_0 matrices run on the CPU's AMX-INT8 tile unit when it has one (ggml's AMX kernels;
  // ~1.8x f32 on ViT-B/16). False, or LUMEN_NO_AMX in the environment, keeps them on AVX.
  bool amx = true;
  // f32 and int8 matrices on lumen's own kernels (gemm/gemm.h) where the CPU has AVX2 + FMA;
  // false runs every product on ggml (for comparison). int8 falls back to ggml's q8_0 there.
  bool own_kernels = true;
};

class ImageEncoder {
 public:
  static Result<std::unique_ptr<ImageEncoder>> Load(const std::string& dir,
                                                    const EncoderOptions& opt);
  ~ImageEncoder();

  const ModelConfig& config() const;
  int dim() const;           // embedding size
  int amx_matrices() const;  // weight matrices running on the AMX tile unit (0: none)
  // Matrices on lumen's own kernels, and which ("int8/avx2"; "" for none).
  int own_matrices() const;
  std::string own_kernel() const;
  int input_size() const;  // image_size
  size_t input_floats() const { return size_t(3) * input_size() * input_size(); }

  // The encoder input for one image (see the contract above): input_floats() floats.
  std::vector<float> Preprocess(const Image& reduced, int orientation) const;
  // As Preprocess, from an image that is already upright and image_size square.
  std::vector<float> Normalize(const Image& square) const;
  // Preprocess's first step: the upright image_size square (8-bit RGB, a quarter of the floats'
  // memory), for inputs that wait before they are encoded (a video's key frames).
  Image Square(const Image& reduced, int orientation) const;

  // `batch` inputs of input_floats() each -> batch x dim() floats, each row L2-normalised.
  Status Encode(const float* inputs, int batch, float* out);

  struct Impl;

 private:
  explicit ImageEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lumen::ml
