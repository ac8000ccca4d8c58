// The AVX-512 kernels (f32; int8 with AVX-512 VNNI, its own target), for lumen's matrix products:
// see kernels.h for the layouts. Built with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma;
// everything here has internal linkage except the two tables.
#include <immintrin.h>

#include <cstring>

#include "kernels.h"

namespace lumen::ml::gemm {
namespace {

#include "math.inc"
#include "quantize.inc"

constexpr int kMr = 12, kNr = 32;  // f32: 24 of the 32 registers accumulate
constexpr int kMr8 = 12, kNr8 = 32;

struct V {
  using T = __m512;
  static constexpr int kWidth = 16;
  static T Zero() { return _mm512_setzero_ps(); }
  static T Load(const float* p) { return _mm512_load_ps(p); }
  static T LoadU(const float* p) { return _mm512_loadu_ps(p); }
  static void StoreU(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T Broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static T Fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T Add(T a, T b) { return _mm512_add_ps(a, b); }
};
#include "f32_kernel.inc"

// acc += u8 x s8 dot products of 4 (vpdpbusd). Inline assembly because GCC 12's pattern for the
// intrinsic keeps its accumulator in zmm0-15 only: 24 accumulators then spill in the loop.
__attribute__((target("avx512f,avx512vnni"), always_inline)) inline void Dot(__m512i& acc,
                                                                             __m512i a, __m512i b) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}

// Every accumulator named (cR0, cR1 for row R): GCC keeps an array of them in memory across
// the loop, which halves the speed.
#define LUMEN_ROWS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define LUMEN_ZERO(r) __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = _mm512_setzero_si512();
#define LUMEN_STEP(r)                       \
  {                                         \
    int32_t v;                              \
    std::memcpy(&v, a + 4 * r, 4);          \
    const __m512i x = _mm512_set1_epi32(v); \
    Dot(c##r##0, x, b0);                    \
    Dot(c##r##1, x, b1);                    \
  }
#define LUMEN_SAVE(r)                              \
  _mm512_store_si512(acc + (2 * r) * 16, c##r##0); \
  _mm512_store_si512(acc + (2 * r + 1) * 16, c##r##1);

__attribute__((noinline, target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512vnni"))) void
I8BlockVnni(const uint8_t* a, const int8_t* b, const float* a_scale, const float* b_scale,
            const int32_t* corr, float* c, int64_t ldc, const float* init) {
  LUMEN_ROWS12(LUMEN_ZERO)
  for (int g = 0; g < kBlock / 4; ++g) {
    const __m512i b0 = _mm512_load_si512(b), b1 = _mm512_load_si512(b + 64);
    LUMEN_ROWS12(LUMEN_STEP)
    a += 4 * kMr8;
    b += 4 * kNr8;
  }
  // The accumulators go through memory to the epilogue: with all 24 live there, GCC would
  // spill them inside the loop instead.
  alignas(64) int32_t acc[kMr8 * kNr8];
  LUMEN_ROWS12(LUMEN_SAVE)
  const __m512i k0 = _mm512_loadu_si512(corr), k1 = _mm512_loadu_si512(corr + 16);
  const __m512 s0 = _mm512_loadu_ps(b_scale), s1 = _mm512_loadu_ps(b_scale + 16);
  for (int r = 0; r < kMr8; ++r) {
    float* row = c + r * ldc;
    const __m512 sa = _mm512_set1_ps(a_scale[r]);
    const __m512 o0 = init ? _mm512_loadu_ps(init) : _mm512_loadu_ps(row);
    const __m512 o1 = init ? _mm512_loadu_ps(init + 16) : _mm512_loadu_ps(row + 16);
    const __m512 f0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(acc + 2 * r * 16), k0));
    const __m512 f1 =
        _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(acc + (2 * r + 1) * 16), k1));
    _mm512_storeu_ps(row, _mm512_fmadd_ps(f0, _mm512_mul_ps(sa, s0), o0));
    _mm512_storeu_ps(row + 16, _mm512_fmadd_ps(f1, _mm512_mul_ps(sa, s1), o1));
  }
}

// One call for several blocks (kernels.h); each block is its own call of I8BlockVnni, which keeps
// its accumulators in registers only as a function of its own (inlined into the loop, GCC 12
// spills them).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512vnni"))) void I8KernelVnni(
    const uint8_t* a, int64_t a_step, const int8_t* b, const float* a_scale, int64_t a_scale_step,
    const float* b_scale, const int32_t* corr, int blocks, float* c, int64_t ldc,
    const float* init) {
  for (int j = 0; j < blocks;
       ++j, b += kBlock * kNr8, b_scale += kNr8, corr += kNr8, init = nullptr)
    I8BlockVnni(a + j * a_step, b, a_scale + j * a_scale_step, b_scale, corr, c, ldc, init);
}

#undef LUMEN_SAVE
#undef LUMEN_STEP
#undef LUMEN_ZERO
#undef LUMEN_ROWS12

}  // namespace

// f32 only: without VNNI, int8 runs the AVX2 kernel.
const Kernels* Avx512Kernels() {
  static const Kernels k{"avx512",  kMr,        kNr,     0,       0,       0,           false,
                         F32Kernel, F32Partial, nullptr, nullptr, Softmax, ActivateTile};
  return &k;
}

const Kernels* Avx512VnniKernels() {
  static const Kernels k{
      "avx512-vnni", kMr,        kNr,          kMr8,           kNr8,    127,         false,
      F32Kernel,     F32Partial, I8KernelVnni, Quantize<kMr8>, Softmax, ActivateTile};
  return &k;
}

}  // namespace lumen::ml::gemm
