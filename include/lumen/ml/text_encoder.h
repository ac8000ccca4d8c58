// The text tower of SigLIP and CLIP models on ggml, with its tokenizer.
//
// Encode() tokenizes each text (see tokenizer.h), runs the transformer (SigLIP: bidirectional,
// padded to max_positions, last-token pooling, linear head; CLIP: causal, at each text's own
// length, end-token pooling, text projection) and returns L2-normalised embeddings in the space
// of the image tower. CLIP texts of equal token length are batched together; SigLIP texts are
// all max_positions long and batch freely.
//
// Scores: SigLIP's probability that a text matches an image is
// sigmoid(logit_scale() * cos + logit_bias()) with the model's own learned values. CLIP's
// logit_scale() scales cosines into softmax logits over a set of texts.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lumen/ml/image_encoder.h"
#include "lumen/ml/model_config.h"
#include "lumen/ml/tokenizer.h"
#include "lumen/util/status.h"

namespace lumen::ml {

class TextEncoder {
 public:
  static Result<std::unique_ptr<TextEncoder>> Load(const std::string& dir,
                                                   const EncoderOptions& opt);
  ~TextEncoder();

  const ModelConfig& config() const;
  const Tokenizer& tokenizer() const;
  int dim() const;
  int amx_matrices() const;   // weight matrices running on the AMX tile unit (0: none)
  int own_matrices() const;   // matrices on lumen's own kernels (see ImageEncoder)
  float logit_scale() const;  // exp of the stored log scale
  float logit_bias() const;   // SigLIP; 0 for CLIP
  // Threads for the next Encode calls (0 = all cores); not thread-safe with Encode itself.
  void set_threads(int threads);

  // texts.size() x dim() floats, row i the embedding of texts[i].
  Status Encode(const std::vector<std::string>& texts, float* out, int batch_size = 32);
  // The same from token ids (as Tokenizer::Encode returns them).
  Status EncodeTokens(const std::vector<std::vector<int32_t>>& tokens, float* out,
                      int batch_size = 32);

  struct Impl;

 private:
  explicit TextEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lumen::ml
