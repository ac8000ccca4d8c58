// The AVX2 + FMA kernels (and the AVX-VNNI int8 kernel, its own target), for lumen's matrix
// products: see kernels.h for the layouts. Built with -mavx2 -mfma; everything here has internal
// linkage except the two tables.
#include <immintrin.h>

#include <cstring>

#include "kernels.h"

namespace lumen::ml::gemm {
namespace {

#include "math.inc"
#include "quantize.inc"

constexpr int kMr = 6, kNr = 16;    // f32: 12 accumulators
constexpr int kMr8 = 6, kNr8 = 16;  // int8 as int16 (no VNNI): 12 accumulators
constexpr int kMrV = 6, kNrV = 16;  // int8 with AVX-VNNI: 12 accumulators

struct V {
  using T = __m256;
  static constexpr int kWidth = 8;
  static T Zero() { return _mm256_setzero_ps(); }
  static T Load(const float* p) { return _mm256_load_ps(p); }
  static T LoadU(const float* p) { return _mm256_loadu_ps(p); }
  static void StoreU(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T Broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static T Fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T Add(T a, T b) { return _mm256_add_ps(a, b); }
};
#include "f32_kernel.inc"

inline __m256i Broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The int8 kernels name every accumulator (cR0, cR1 for row R): GCC keeps an array of them in
// memory across the loop, which halves the speed.
#define LUMEN_ROWS4(X) X(0) X(1) X(2) X(3)
#define LUMEN_ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define LUMEN_ZERO(r) __m256i c##r##0 = _mm256_setzero_si256(), c##r##1 = _mm256_setzero_si256();
#define LUMEN_SAVE(r)                                                         \
  _mm256_store_si256(reinterpret_cast<__m256i*>(acc + (2 * r) * 8), c##r##0); \
  _mm256_store_si256(reinterpret_cast<__m256i*>(acc + (2 * r + 1) * 8), c##r##1);
// The accumulators go through memory to the epilogue: with all of them live there, GCC would
// spill them inside the loop instead.
#define LUMEN_EPILOGUE(ROWS, MR)    \
  alignas(32) int32_t acc[MR * 16]; \
  ROWS(LUMEN_SAVE)                  \
  StoreBlock<MR>(acc, a_scale, b_scale, corr, c, ldc, init);

// C = or += (acc - corr) * a_scale[r] * b_scale: the int8 block's result in floats.
template <int MR>
inline void StoreBlock(const int32_t* acc, const float* a_scale, const float* b_scale,
                       const int32_t* corr, float* c, int64_t ldc, const float* init) {
  const __m256i k0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr));
  const __m256i k1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr + 8));
  const __m256 s0 = _mm256_loadu_ps(b_scale), s1 = _mm256_loadu_ps(b_scale + 8);
  for (int r = 0; r < MR; ++r) {
    float* row = c + r * ldc;
    const __m256 sa = _mm256_set1_ps(a_scale[r]);
    const __m256 o0 = init ? _mm256_loadu_ps(init) : _mm256_loadu_ps(row);
    const __m256 o1 = init ? _mm256_loadu_ps(init + 8) : _mm256_loadu_ps(row + 8);
    const __m256i a0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(acc + 2 * r * 8));
    const __m256i a1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(acc + (2 * r + 1) * 8));
    const __m256 f0 = _mm256_cvtepi32_ps(_mm256_sub_epi32(a0, k0));
    const __m256 f1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(a1, k1));
    _mm256_storeu_ps(row, _mm256_fmadd_ps(f0, _mm256_mul_ps(sa, s0), o0));
    _mm256_storeu_ps(row + 8, _mm256_fmadd_ps(f1, _mm256_mul_ps(sa, s1), o1));
  }
}

// acc += pairwise int16 products (vpmaddwd, then vpaddd). Inline assembly: GCC 12 puts each sum in
// a new register and moves it back, and the moves (one per product) make the loop front-end bound.
inline void MaddAdd(__m256i& acc, __m256i x, __m256i b) {
  __m256i t;
  asm("vpmaddwd %[b], %[x], %[t]\n\tvpaddd %[t], %[acc], %[acc]"
      : [acc] "+x"(acc), [t] "=&x"(t)
      : [x] "x"(x), [b] "x"(b));
}

// int8 values as int16 pairs, vpmaddwd: exact 32-bit sums of two products, so the weights keep
// all 8 bits (vpmaddubsw, as fast, saturates 16 bits at 255 * 127 * 2). No offset: A is signed.
void I16Kernel(const uint8_t* a_blocks, int64_t a_step, const int8_t* b, const float* a_scales,
               int64_t a_scale_step, const float* b_scale, const int32_t*, int blocks, float* c,
               int64_t ldc, const float* init) {
  static const int32_t kNoCorrection[16] = {};
  for (int j = 0; j < blocks; ++j, b_scale += kNr8, init = nullptr) {
    const uint8_t* a = a_blocks + j * a_step;
    const float* a_scale = a_scales + j * a_scale_step;
    LUMEN_ROWS6(LUMEN_ZERO)
    for (int g = 0; g < kBlock / 2; ++g) {
      const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
      const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 32));
#define LUMEN_STEP(r)                        \
  {                                          \
    const __m256i x = Broadcast4(a + 4 * r); \
    MaddAdd(c##r##0, x, b0);                 \
    MaddAdd(c##r##1, x, b1);                 \
  }
      LUMEN_ROWS6(LUMEN_STEP)
#undef LUMEN_STEP
      a += 4 * kMr8;
      b += 4 * kNr8;
    }
    const int32_t* corr = kNoCorrection;
    LUMEN_EPILOGUE(LUMEN_ROWS6, kMr8)
  }
}

// acc += u8 x s8 dot products of 4 (AVX-VNNI vpdpbusd). Inline assembly because GCC 12's
// pattern for the intrinsic spills the accumulators inside the loop.
__attribute__((target("avx2,avxvnni"), always_inline)) inline void Dot(__m256i& acc, __m256i a,
                                                                       __m256i b) {
  asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
}

__attribute__((noinline, target("avx2,fma,avxvnni"))) void I8BlockVnni(
    const uint8_t* a, const int8_t* b, const float* a_scale, const float* b_scale,
    const int32_t* corr, float* c, int64_t ldc, const float* init) {
  LUMEN_ROWS6(LUMEN_ZERO)
  for (int g = 0; g < kBlock / 4; ++g) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 32));
#define LUMEN_STEP(r)                        \
  {                                          \
    const __m256i x = Broadcast4(a + 4 * r); \
    Dot(c##r##0, x, b0);                     \
    Dot(c##r##1, x, b1);                     \
  }
    LUMEN_ROWS6(LUMEN_STEP)
#undef LUMEN_STEP
    a += 4 * kMrV;
    b += 4 * kNrV;
  }
  LUMEN_EPILOGUE(LUMEN_ROWS6, kMrV)
}

// One call for several blocks (kernels.h); each block is its own call of I8BlockVnni, which keeps
// its accumulators in registers only as a function of its own (inlined into the loop, GCC 12
// spills them).
__attribute__((target("avx2,fma,avxvnni"))) void I8KernelVnni(
    const uint8_t* a, int64_t a_step, const int8_t* b, const float* a_scale, int64_t a_scale_step,
    const float* b_scale, const int32_t* corr, int blocks, float* c, int64_t ldc,
    const float* init) {
  for (int j = 0; j < blocks;
       ++j, b += kBlock * kNrV, b_scale += kNrV, corr += kNrV, init = nullptr)
    I8BlockVnni(a + j * a_step, b, a_scale + j * a_scale_step, b_scale, corr, c, ldc, init);
}

#undef LUMEN_EPILOGUE
#undef LUMEN_SAVE
#undef LUMEN_ZERO
#undef LUMEN_ROWS6
#undef LUMEN_ROWS4

}  // namespace

const Kernels* Avx2Kernels() {
  static const Kernels k{"avx2",
                         kMr,
                         kNr,
                         kMr8,
                         kNr8,
                         127,
                         true,
                         F32Kernel,
                         F32Partial,
                         I16Kernel,
                         Quantize16<kMr8>,
                         Softmax,
                         ActivateTile};
  return &k;
}

const Kernels* AvxVnniKernels() {
  static const Kernels k{"avx-vnni",  kMr,       kNr,        kMrV,         kNrV,           127,
                         false,       F32Kernel, F32Partial, I8KernelVnni, Quantize<kMrV>, Softmax,
                         ActivateTile};
  return &k;
}

}  // namespace lumen::ml::gemm
