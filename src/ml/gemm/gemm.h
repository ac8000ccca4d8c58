// Private to the ml layer: lumen's own matrix products for the encoders' linear layers,
//   C[m x n] = A[m x k] · Wᵀ + bias,
// W in PyTorch's [out, in] layout, packed once at load for the kernels of this CPU (AVX2 + FMA,
// AVX-VNNI, AVX-512, AVX-512 VNNI: the widest it has). Two precisions: f32, and int8 (weights
// per output row and 128-value block of k, symmetric; activations quantized per row and block
// as they are packed; i32 accumulation, so no rounding error but the two quantizations).
//
// Why lumen has its own (BENCHMARKS.md, issue 16): ggml's f32 products on AVX2 reach ~60% of
// what ONNX Runtime's MLAS does on the ViT shapes, and its q8_0 product is slower than its f32
// one there (per-32 scales for both operands, no register blocking on x86 without AMX).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "activation.h"

namespace lumen::ml::gemm {

struct Kernels;

enum class Precision : uint8_t { kF32, kInt8 };
enum class Isa : uint8_t { kAvx2, kAvxVnni, kAvx512, kAvx512Vnni };

const char* IsaName(Isa isa);
std::optional<Isa> ParseIsa(const std::string& name);
// Whether this CPU (and its operating system) runs the kernels of `isa`.
bool Supported(Isa isa);
// The widest supported set, capped by LUMEN_ISA=avx2|avx-vnni|avx512|avx512-vnni in the
// environment (to measure and test the narrower kernels on a wider CPU); none below AVX2 + FMA.
std::optional<Isa> BestIsa();

class Matrix {
 public:
  // `w`: n rows of k floats; `bias`: n floats or null. Null when `isa` is not supported here.
  static std::unique_ptr<Matrix> Pack(const float* w, const float* bias, int64_t n, int64_t k,
                                      Precision precision, Isa isa);
  ~Matrix();

  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  Precision precision() const { return precision_; }
  // "f32/avx2", "int8/avx512-vnni", ...
  std::string kernel() const;
  size_t bytes() const { return bytes_; }

  // An activation applied to C as each tile is finished (activation.h: kGeluTanh, ...).
  void set_activation(int kind) { activation_ = kind; }
  int activation() const { return activation_; }

  // C (m rows, stride ldc) = A (m rows of k, stride lda) · Wᵀ + bias, for the share of thread
  // `ith` of `nth`: disjoint panels of columns, together all of C. Reentrant.
  void Multiply(const float* a, int64_t m, int64_t lda, float* c, int64_t ldc, int ith,
                int nth) const;

  // The same in two steps, so that threads share the work on A: Prepare (thread `ith` of `nth`
  // packs, or for int8 quantizes, its share of the rows into `prepared`, PreparedBytes(m)
  // bytes), then, once all have, MultiplyPrepared (as Multiply).
  size_t PreparedBytes(int64_t m) const;
  void Prepare(const float* a, int64_t m, int64_t lda, uint8_t* prepared, int ith, int nth) const;
  void MultiplyPrepared(const uint8_t* prepared, int64_t m, float* c, int64_t ldc, int ith,
                        int nth) const;

 private:
  Matrix() = default;
  void MultiplyF32(const float* packed, int64_t m, float* c, int64_t ldc, int64_t p0,
                   int64_t p1) const;
  void MultiplyInt8(const uint8_t* q, int64_t m, float* c, int64_t ldc, int64_t p0,
                    int64_t p1) const;

  struct Free {
    void operator()(void* p) const;
  };
  int64_t n_ = 0, k_ = 0, panels_ = 0, blocks_ = 0;
  int64_t cell_bytes_ = 0;  // int8: bytes per row (of A) or column (of W) and k block
  Precision precision_ = Precision::kF32;
  Isa isa_ = Isa::kAvx2;
  int activation_ = 0;
  const Kernels* kernels_ = nullptr;
  size_t bytes_ = 0;
  std::unique_ptr<uint8_t[], Free> data_;  // f32 panels, or int8 panels + scales + corrections
  float* f32_ = nullptr;
  int8_t* q_ = nullptr;
  float* scales_ = nullptr;
  int32_t* corr_ = nullptr;
  float* bias_ = nullptr;  // panels_ x nr, zeros past n (and everywhere without a bias)
};

// Multi-head attention on the same kernels: for every image b and head h,
//   out[b, t, h·d .. h·d + d) = softmax(scale · Q Kᵀ) V,  Q = q[b, :, h·d .. h·d + d), K, V alike,
// causal: query t sees keys 0..t. Strides in floats: rows `*_row` apart, images `*_batch` apart.
struct AttentionArgs {
  const float *q, *k, *v;
  float* out;
  int64_t q_row, q_batch, k_row, k_batch, v_row, v_batch, out_row, out_batch;
  int64_t tq, tk, d, heads, batch;
  float scale;
  bool causal;
};
constexpr int64_t kMaxHeadDim = 256;  // d above this: not supported here
// The share of thread `ith` of `nth` (whole (image, head) pairs). `isa` must be Supported().
void Attention(const AttentionArgs& args, Isa isa, int ith, int nth);

}  // namespace lumen::ml::gemm
