// Image-encoder throughput: ms/image and images/s at several batch sizes and weight types.
//   build/bench/encoder_bench MODEL_DIR [threads] [types=f32,f16,bf16,q8_0,q8_0-avx]
//   [batches=1,8,32] [seconds=10]
// Each (type, batch) runs at least once and then until `seconds` of encoding have passed. The
// cos column: the type's embeddings of the benchmark batch against f32 on ggml's products (the
// worst image of the batch), so every reduced precision shows what it costs at full size.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "bench_weights.h"
#include "lumen/ml/image_encoder.h"
#include "lumen/ml/model_files.h"

using lumen::ml::EncoderOptions;
using lumen::ml::ImageEncoder;

static std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(x);
  return out;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [threads] [types] [batches] [seconds]\n", argv[0]);
    return 2;
  }
  int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  auto types = Split(argc > 3 ? argv[3] : "f32,f16,q8_0");
  auto batches = Split(argc > 4 ? argv[4] : "1,8,32");
  double seconds = argc > 5 ? std::atof(argv[5]) : 10.0;
  std::printf("| weights | batch | ms/image | images/s | cos vs f32 |\n|---|---|---|---|---|\n");
  std::vector<float> reference;  // f32 (ggml) embeddings of the largest batch
  const int max_batch = [&] {
    int m = 1;
    for (const auto& b : batches) m = std::max(m, std::atoi(b.c_str()));
    return m;
  }();
  auto inputs = [](size_t n) {
    std::vector<float> in(n);
    for (size_t i = 0; i < n; ++i) in[i] = float((i * 2654435761u) % 1000) / 500.f - 1.f;
    return in;
  };
  {
    EncoderOptions ref_opt;
    ref_opt.threads = threads;
    ref_opt.weights = lumen::ml::WeightType::kF32;
    ref_opt.own_kernels = false;
    auto ref = ImageEncoder::Load(argv[1], ref_opt);
    if (!ref.ok()) {
      std::fprintf(stderr, "%s\n", ref.status().ToString().c_str());
      return 1;
    }
    auto in = inputs((*ref)->input_floats() * max_batch);
    reference.resize(size_t((*ref)->dim()) * max_batch);
    if (!(*ref)->Encode(in.data(), max_batch, reference.data()).ok()) return 1;
  }
  for (const auto& t : types) {
    EncoderOptions opt;
    opt.threads = threads;
    ApplyBenchWeights(t, &opt);
    auto enc = ImageEncoder::Load(argv[1], opt);
    if (!enc.ok()) {
      std::fprintf(stderr, "%s\n", enc.status().ToString().c_str());
      return 1;
    }
    for (const auto& bs : batches) {
      int batch = std::atoi(bs.c_str());
      auto in = inputs((*enc)->input_floats() * batch);
      std::vector<float> out(size_t((*enc)->dim()) * batch);
      (void)(*enc)->Encode(in.data(), batch, out.data());  // warm-up (graph allocation)
      int images = 0;
      auto t0 = std::chrono::steady_clock::now();
      double el = 0;
      do {
        if (!(*enc)->Encode(in.data(), batch, out.data()).ok()) return 1;
        images += batch;
        el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      } while (el < seconds);
      // Image 0 of this batch is image 0 of the reference batch, and so on.
      const double worst =
          WorstCosine(out.data(), reference.data(), size_t(batch), size_t((*enc)->dim()));
      std::printf("| %s | %d | %.1f | %.2f | %.6f |\n", t.c_str(), batch, 1000.0 * el / images,
                  images / el, worst);
      std::fflush(stdout);
    }
  }
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  std::printf("\npeak RSS %ld MB\n", ru.ru_maxrss / 1024);
}
