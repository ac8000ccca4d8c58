// Text-encoder throughput: terms/s for a label-bank-like workload ("a photo of a {term}.").
//   build/bench/text_bench MODEL_DIR [threads] [types=f32,f16,bf16,q8_0,q8_0-avx] [batch=32]
//   [terms=256]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "bench_weights.h"
#include "lumen/ml/model_files.h"
#include "lumen/ml/text_encoder.h"

using namespace lumen::ml;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [threads] [types] [batch] [terms]\n", argv[0]);
    return 2;
  }
  int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  std::string types = argc > 3 ? argv[3] : "f32,f16,q8_0";
  int batch = argc > 4 ? std::atoi(argv[4]) : 32;
  int terms = argc > 5 ? std::atoi(argv[5]) : 256;
  const char* words[] = {"dog",     "golden retriever",   "beach",         "sunset over the sea",
                         "cat",     "mountain lake",      "birthday cake", "red sports car",
                         "bicycle", "snow covered forest"};
  std::vector<std::string> texts;
  for (int i = 0; i < terms; ++i)
    texts.push_back(std::string("a photo of a ") + words[i % 10] + ".");
  std::printf(
      "| weights | batch | tokens/text | ms/term | terms/s | cos vs f32 "
      "|\n|---|---|---|---|---|---|\n");
  // f32 on ggml's products: what every type's term vectors are compared with (the worst term).
  std::vector<float> reference;
  {
    EncoderOptions ref_opt;
    ref_opt.threads = threads;
    ref_opt.weights = lumen::ml::WeightType::kF32;
    ref_opt.own_kernels = false;
    auto ref = TextEncoder::Load(argv[1], ref_opt);
    if (!ref.ok()) {
      std::fprintf(stderr, "%s\n", ref.status().ToString().c_str());
      return 1;
    }
    reference.resize(texts.size() * (*ref)->dim());
    if (!(*ref)->Encode(texts, reference.data(), batch).ok()) return 1;
  }
  std::stringstream ss(types);
  for (std::string t; std::getline(ss, t, ',');) {
    EncoderOptions opt;
    opt.threads = threads;
    ApplyBenchWeights(t, &opt);
    auto enc = TextEncoder::Load(argv[1], opt);
    if (!enc.ok()) {
      std::fprintf(stderr, "%s\n", enc.status().ToString().c_str());
      return 1;
    }
    std::vector<float> out(texts.size() * (*enc)->dim());
    (void)(*enc)->Encode({texts[0]}, out.data(), batch);
    size_t tokens = 0;
    for (const auto& x : texts) tokens += (*enc)->tokenizer().Encode(x).size();
    auto t0 = std::chrono::steady_clock::now();
    if (!(*enc)->Encode(texts, out.data(), batch).ok()) return 1;
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double worst =
        WorstCosine(out.data(), reference.data(), texts.size(), size_t((*enc)->dim()));
    std::printf("| %s | %d | %.1f | %.2f | %.1f | %.6f |\n", t.c_str(), batch,
                double(tokens) / texts.size(), 1000 * el / texts.size(), texts.size() / el, worst);
    std::fflush(stdout);
  }
}
