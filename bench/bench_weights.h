// Weight-type names shared by the encoder benchmarks: "f32", "f16", "bf16", "q8_0", "int8", ...
// with suffixes for comparison: "-avx" keeps q8_0 off the AMX tile unit, "-ggml" runs f32 (or
// int8 as q8_0) on ggml's own products instead of lumen's kernels. LUMEN_ISA=avx2 in the
// environment runs lumen's AVX2 kernels on a wider CPU.
#pragma once

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
