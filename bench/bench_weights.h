// Weight-type names shared by the encoder benchmarks: "f32", "f16", "bf16", "q8_0", ... and
// "q8_0-avx" for q8_0 kept off the AMX tile unit, for comparison.
#pragma once

#include <string>

#include "lumen/ml/image_encoder.h"
#include "lumen/ml/model_files.h"

inline void ApplyBenchWeights(const std::string& name, lumen::ml::EncoderOptions* opt) {
  const bool avx = name.size() > 4 && name.compare(name.size() - 4, 4, "-avx") == 0;
  opt->amx = !avx;
  opt->weights = lumen::ml::ParseWeightType(avx ? name.substr(0, name.size() - 4) : name)
                     .value_or(lumen::ml::WeightType::kF32);
}
