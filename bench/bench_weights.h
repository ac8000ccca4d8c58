// Weight-type names shared by the encoder benchmarks: "f32", "f16", "bf16", "q8_0", "int8", ...
// with suffixes for comparison: "-avx" keeps q8_0 off the AMX tile unit, "-ggml" runs f32 (or
// int8 as q8_0) on ggml's own products instead of lumen's kernels. LUMEN_ISA=avx2 in the
// environment runs lumen's AVX2 kernels on a wider CPU.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "lumen/ml/image_encoder.h"
#include "lumen/ml/model_files.h"

inline void ApplyBenchWeights(std::string name, lumen::ml::EncoderOptions* opt) {
  auto strip = [&](const std::string& suffix) {
    if (name.size() <= suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      return false;
    name.resize(name.size() - suffix.size());
    return true;
  };
  opt->own_kernels = !strip("-ggml");
  opt->amx = !strip("-avx");
  opt->weights = lumen::ml::ParseWeightType(name).value_or(lumen::ml::WeightType::kF32);
}

// The lowest cosine between rows of `a` and `b` (`rows` rows of `dim` floats each): how far a
// weight type's embeddings are from the reference's, at its worst.
inline double WorstCosine(const float* a, const float* b, size_t rows, size_t dim) {
  double worst = 1.0;
  for (size_t r = 0; r < rows; ++r) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < dim; ++i) {
      const double x = a[r * dim + i], y = b[r * dim + i];
      ab += x * y, aa += x * x, bb += y * y;
    }
    worst = std::min(worst, ab / std::sqrt(aa * bb));
  }
  return worst;
}
