// The AVX2 + FMA kernels (and the AVX-VNNI int8 kernel, its own target), for lumen's matrix
// products: see kernels.h for the layouts. Built with -mavx2 -mfma; everything here has internal
// linkage except the two tables.
#include <immintrin.h>

#include <cstring>

#include "kernels.h"

namespace lumen::ml::gemm {
namespace {

#include "quantize.inc"

constexpr int kMr = 6, kNr = 16;     // f32: 12 accumulators
constexpr int kMr8 = 4, kNr8 = 16;   // int8 without VNNI: 8 accumulators + madd temporaries
constexpr int kMrV = 6, kNrV = 16;   // int8 with AVX-VNNI: 12 accumulators

void F32Kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
               const float* init) {
  __m256 acc[kMr][2];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + r);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
    }
    a += kMr;
    b += kNr;
  }
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) {
    float* row = c + r * ldc;
    const __m256 c0 = init ? _mm256_loadu_ps(init) : _mm256_loadu_ps(row);
    const __m256 c1 = init ? _mm256_loadu_ps(init + 8) : _mm256_loadu_ps(row + 8);
    _mm256_storeu_ps(row, _mm256_add_ps(acc[r][0], c0));
    _mm256_storeu_ps(row + 8, _mm256_add_ps(acc[r][1], c1));
  }
}

inline __m256i Broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// C = or += (acc - corr) * a_scale[r] * b_scale: the int8 block's result in floats.
template <int MR>
inline void StoreBlock(__m256i (&acc)[MR][2], const float* a_scale, const float* b_scale,
                       const int32_t* corr, float* c, int64_t ldc, const float* init) {
  const __m256i k0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr));
  const __m256i k1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr + 8));
  const __m256 s0 = _mm256_loadu_ps(b_scale), s1 = _mm256_loadu_ps(b_scale + 8);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* row = c + r * ldc;
    const __m256 sa = _mm256_set1_ps(a_scale[r]);
    const __m256 c0 = init ? _mm256_loadu_ps(init) : _mm256_loadu_ps(row);
    const __m256 c1 = init ? _mm256_loadu_ps(init + 8) : _mm256_loadu_ps(row + 8);
    const __m256 f0 = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][0], k0));
    const __m256 f1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][1], k1));
    _mm256_storeu_ps(row, _mm256_fmadd_ps(f0, _mm256_mul_ps(sa, s0), c0));
    _mm256_storeu_ps(row + 8, _mm256_fmadd_ps(f1, _mm256_mul_ps(sa, s1), c1));
  }
}

// u8 x s8 with vpmaddubsw: pairs of products saturate at 16 bits, so the weights keep |q| <= 63
// (255 * 63 * 2 < 32767), then vpmaddwd sums pairs into 32 bits.
void I8Kernel(const uint8_t* a, const int8_t* b, const float* a_scale, const float* b_scale,
              const int32_t* corr, float* c, int64_t ldc, const float* init) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[kMr8][2];
#pragma GCC unroll 8
  for (int r = 0; r < kMr8; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int g = 0; g < kBlock / 4; ++g) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 32));
#pragma GCC unroll 8
    for (int r = 0; r < kMr8; ++r) {
      const __m256i x = Broadcast4(a + 4 * r);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones));
    }
    a += 4 * kMr8;
    b += 4 * kNr8;
  }
  StoreBlock<kMr8>(acc, a_scale, b_scale, corr, c, ldc, init);
}

__attribute__((target("avx2,fma,avxvnni"))) void I8KernelVnni(
    const uint8_t* a, const int8_t* b, const float* a_scale, const float* b_scale,
    const int32_t* corr, float* c, int64_t ldc, const float* init) {
  __m256i acc[kMrV][2];
#pragma GCC unroll 8
  for (int r = 0; r < kMrV; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int g = 0; g < kBlock / 4; ++g) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 32));
#pragma GCC unroll 8
    for (int r = 0; r < kMrV; ++r) {
      const __m256i x = Broadcast4(a + 4 * r);
      acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], x, b0);
      acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], x, b1);
    }
    a += 4 * kMrV;
    b += 4 * kNrV;
  }
  StoreBlock<kMrV>(acc, a_scale, b_scale, corr, c, ldc, init);
}

}  // namespace

const Kernels* Avx2Kernels() {
  static const Kernels k{"avx2",       kMr, kNr, kMr8, kNr8, 63, F32Kernel, I8Kernel,
                         Quantize<kMr8>};
  return &k;
}

const Kernels* AvxVnniKernels() {
  static const Kernels k{"avx-vnni",   kMr, kNr, kMrV, kNrV, 127, F32Kernel, I8KernelVnni,
                         Quantize<kMrV>};
  return &k;
}

}  // namespace lumen::ml::gemm
