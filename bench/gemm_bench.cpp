// lumen's matrix products alone (src/ml/gemm): GMAC/s of one thread for every kernel set this CPU
// runs and both precisions, on an in-cache shape (the kernels' own rate: A, W and C stay in L1/L2)
// and on the ViT-B shapes (fc1 and fc2 of 8 images of 197 tokens).
//   build/bench/gemm_bench [seconds=2]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "gemm/gemm.h"

using lumen::ml::gemm::Isa;
using lumen::ml::gemm::Matrix;
using lumen::ml::gemm::Precision;

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  struct Shape {
    const char* name;
    int64_t m, n, k;
  } shapes[] = {
      {"in cache", 96, 64, 512}, {"ViT-B fc1", 1576, 3072, 768}, {"ViT-B fc2", 1576, 768, 3072}};
  std::mt19937 gen(1);
  std::normal_distribution<float> dist;
  std::printf("| kernels | shape | m x n x k | GMAC/s (1 thread) |\n|---|---|---|---|\n");
  for (Isa isa : {Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512, Isa::kAvx512Vnni}) {
    if (!lumen::ml::gemm::Supported(isa)) continue;
    for (Precision p : {Precision::kF32, Precision::kInt8}) {
      // AVX-512 without VNNI runs int8 on the AVX2 kernel: listed under avx2 already.
      if (p == Precision::kInt8 && isa == Isa::kAvx512) continue;
      if (p == Precision::kF32 && (isa == Isa::kAvxVnni || isa == Isa::kAvx512Vnni)) continue;
      for (const Shape& s : shapes) {
        std::vector<float> a(size_t(s.m * s.k)), w(size_t(s.n * s.k)), c(size_t(s.m * s.n));
        for (auto& x : a) x = dist(gen);
        for (auto& x : w) x = dist(gen);
        auto mat = Matrix::Pack(w.data(), nullptr, s.n, s.k, p, isa);
        std::vector<uint8_t> prepared(mat->PreparedBytes(s.m));
        mat->Prepare(a.data(), s.m, s.k, prepared.data(), 0, 1);
        mat->MultiplyPrepared(prepared.data(), s.m, c.data(), s.n, 0, 1);  // warm-up
        int runs = 0;
        double el = 0;
        const auto t0 = std::chrono::steady_clock::now();
        do {
          mat->MultiplyPrepared(prepared.data(), s.m, c.data(), s.n, 0, 1);
          ++runs;
          el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        } while (el < seconds);
        std::printf("| %s | %s | %ld x %ld x %ld | %.1f |\n", mat->kernel().c_str(), s.name,
                    long(s.m), long(s.n), long(s.k), double(s.m) * s.n * s.k * runs / el / 1e9);
        std::fflush(stdout);
      }
    }
  }
}
