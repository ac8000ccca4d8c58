// Private to ml/gemm: the interface between the driver (gemm.cpp, built for the baseline CPU) and
// the kernel files, each built for one instruction set (kernels_avx2.cpp, kernels_avx512.cpp).
// The kernel files define nothing but the tables below: no inline function or template of theirs
// may end up shared with code built for another CPU.
//
// Layouts (all buffers 64-byte aligned):
// - f32 weights: per block of k (the driver's kKc), panels of `nr` output columns; panel p holds,
//   for every k of the block, the nr weights W[p*nr + c][k] (zeros past n). A: micro-panels of `mr`
//   rows, for every k the mr values.
// - int8 weights: K in blocks of kBlock; per panel and block, kBlock/4 groups of nr columns x 4
//   consecutive k (signed, |q| <= qmax), a scale and a correction (128 * sum of q) per column.
//   A: per row and block, a scale s = max|a| / 127 and u8 values round(a / s) + 128, in
//   micro-panels of `mr` rows: per group, mr rows x 4 bytes.
// - `wide` int8 (AVX2 without VNNI): the same 8-bit values held as int16, for vpmaddwd: groups
//   of 2 consecutive k (4 bytes), A signed (no +128, no correction). vpmaddubsw would be as fast
//   but saturates 16 bits unless the weights lose a bit (|q| <= 63), which costs ~3x the error.
#pragma once

#include <cstdint>

#include "activation.h"

namespace lumen::ml::gemm {

constexpr int kBlock = 128;  // int8: the k block each scale covers

struct Kernels {
  const char* name;
  int mr, nr;    // f32 tile
  int mr8, nr8;  // int8 tile
  int qmax;      // largest |weight| the int8 kernel takes (127)
  bool wide;     // int8 values held as int16 (see above)
  // C[mr x nr] (row stride ldc) = A·B + init[c] if init, else C += A·B; kc values of k.
  void (*f32)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, const float* init);
  // The same for the first `rows` (< mr) rows of the micro-panel only.
  void (*f32_rows)(int rows, int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                   const float* init);
  // The same for `blocks` consecutive int8 blocks: for each, C = (first block, with init) or +=
  // (A·B - corr[c]) * a_scale[r] * b_scale[c]. Block j's A is at a + j * a_step and its scales
  // at a_scale + j * a_scale_step; B, b_scale and corr are the panel's blocks in a row (they
  // follow each other). Several blocks per call: the tile of C stays in registers and L1 between
  // them, and the call, the partial-tile copies and the activation check are paid once (a
  // block is only 64 loop iterations: one block per call cost ~20% on AVX2).
  void (*i8)(const uint8_t* a, int64_t a_step, const int8_t* b, const float* a_scale,
             int64_t a_scale_step, const float* b_scale, const int32_t* corr, int blocks, float* c,
             int64_t ldc, const float* init);
  // Quantizes `rows` rows of A (row stride lda) over k in [k0, k0 + kc), kc <= kBlock, zeros
  // after kc, into micro-panels of mr8 rows (rows past `rows` are zeros) and one scale per row.
  void (*quantize)(const float* a, int64_t lda, int rows, int64_t k0, int kc, uint8_t* out,
                   float* scales);
  // row[0, n) <- softmax(scale * row[0, n)), row[n, n_pad) <- 0.
  void (*softmax)(float* row, int n, int n_pad, float scale);
  // An activation (kGeluTanh, ...) over a tile of C, in place.
  void (*activate)(float* c, int64_t ldc, int rows, int cols, int kind);
};

const Kernels* Avx2Kernels();
const Kernels* AvxVnniKernels();
const Kernels* Avx512Kernels();
const Kernels* Avx512VnniKernels();

}  // namespace lumen::ml::gemm
