// Zero-shot tags: a batch of image embeddings against the label bank in one GEMM (OpenBLAS).
//
// Confidence of term t for image i: sigmoid(scale * cos(i, t) + bias). SigLIP supplies its own
// learned scale and bias (its training objective is exactly this sigmoid). CLIP has no bias; its
// documented calibration here is scale = the model's logit scale (100) and bias = -scale * 0.25,
// i.e. a term is 50% likely at cosine 0.25, where CLIP's true matches typically start.
#pragma once

#include <cstdint>
#include <vector>

#include "lumen/tags/label_bank.h"

namespace lumen::tags {

struct Calibration {
  float scale = 10.0f;
  float bias = -10.0f;
  static Calibration Clip(float logit_scale) { return {logit_scale, -logit_scale * 0.25f}; }
};

struct Tag {
  uint32_t term = 0;
  float cosine = 0;
  float confidence = 0;
};

struct ScoreOptions {
  float min_confidence = 0.1f;
  size_t max_tags = 15;
};

// Removes every tag that is a WordNet ancestor of another tag in the list ("dog" goes when
// "retriever" is there), keeping the order of the rest.
void DropAncestors(const Vocabulary& vocab, std::vector<Tag>* tags);

// images: n x dim (L2-normalised) against `count` rows of dim floats whose terms are `terms`.
std::vector<std::vector<Tag>> ScoreRows(const float* images, size_t n, int dim, const float* rows,
                                        const uint32_t* terms, size_t count, const Calibration& cal,
                                        const ScoreOptions& opt);

// images: n x dim (L2-normalised). Uses the bank's finished rows. One vector of tags per image,
// most confident first.
std::vector<std::vector<Tag>> ScoreImages(const float* images, size_t n, const LabelBank& bank,
                                          const Calibration& cal, const ScoreOptions& opt);

}  // namespace lumen::tags
