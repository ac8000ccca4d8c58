#include "gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels.h"

namespace lumen::ml::gemm {
namespace {

// Cache blocking: an A block (kMc rows x kKc) stays in L2 while each kNc-wide... panel of W
// (kKc x nr, in L1) meets every micro-panel of it.
constexpr int64_t kKc = 256;   // f32 k block
constexpr int64_t kMc = 144;   // f32 rows per A block (a multiple of every mr)
constexpr int64_t kMc8 = 192;  // int8 rows per A block

const Kernels* F32Kernels(Isa isa) {
  switch (isa) {
    case Isa::kAvx2:
    case Isa::kAvxVnni:
      return Avx2Kernels();
    case Isa::kAvx512:
    case Isa::kAvx512Vnni:
      return Avx512Kernels();
  }
  return nullptr;
}

const Kernels* Int8Kernels(Isa isa) {
  switch (isa) {
    case Isa::kAvx2:
    case Isa::kAvx512:
      return Avx2Kernels();
    case Isa::kAvxVnni:
      return AvxVnniKernels();
    case Isa::kAvx512Vnni:
      return Avx512VnniKernels();
  }
  return nullptr;
}

void* AlignedAlloc(size_t bytes) {
  return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
}

// A per-thread scratch buffer for packed A, grown on demand and kept for the thread's life.
uint8_t* Scratch(size_t bytes) {
  struct Buffer {
    void* p = nullptr;
    size_t size = 0;
    ~Buffer() { std::free(p); }
  };
  thread_local Buffer buf;
  if (buf.size < bytes) {
    std::free(buf.p);
    buf.p = AlignedAlloc(bytes);
    buf.size = buf.p ? bytes : 0;
  }
  return static_cast<uint8_t*>(buf.p);
}

}  // namespace

void Matrix::Free::operator()(void* p) const {
  std::free(p);
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvxVnni:
      return "avx-vnni";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx512Vnni:
      return "avx512-vnni";
  }
  return "?";
}

std::optional<Isa> ParseIsa(const std::string& name) {
  for (Isa i : {Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512, Isa::kAvx512Vnni})
    if (name == IsaName(i)) return i;
  return std::nullopt;
}

bool Supported(Isa isa) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq");
  switch (isa) {
    case Isa::kAvx2:
      return avx2;
    case Isa::kAvxVnni:
      return avx2 && __builtin_cpu_supports("avxvnni");
    case Isa::kAvx512:
      return avx512;
    case Isa::kAvx512Vnni:
      return avx512 && __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

std::optional<Isa> BestIsa() {
  int cap = 3;
  if (const char* env = std::getenv("LUMEN_ISA"))
    if (auto want = ParseIsa(env)) cap = static_cast<int>(*want);
  for (int i = cap; i >= 0; --i)
    if (Supported(static_cast<Isa>(i))) return static_cast<Isa>(i);
  return std::nullopt;
}

Matrix::~Matrix() = default;

std::string Matrix::kernel() const {
  return std::string(precision_ == Precision::kF32 ? "f32/" : "int8/") + kernels_->name;
}

std::unique_ptr<Matrix> Matrix::Pack(const float* w, const float* bias, int64_t n, int64_t k,
                                     Precision precision, Isa isa) {
  if (n <= 0 || k <= 0 || !Supported(isa)) return nullptr;
  std::unique_ptr<Matrix> m(new Matrix());
  m->n_ = n;
  m->k_ = k;
  m->precision_ = precision;
  m->isa_ = isa;
  m->kernels_ = precision == Precision::kF32 ? F32Kernels(isa) : Int8Kernels(isa);
  const Kernels& K = *m->kernels_;
  const int64_t nr = precision == Precision::kF32 ? K.nr : K.nr8;
  m->panels_ = (n + nr - 1) / nr;
  const size_t bias_bytes = size_t(m->panels_ * nr) * 4;
  if (precision == Precision::kF32) {
    const size_t w_bytes = size_t(m->panels_ * k * nr) * 4;
    m->bytes_ = w_bytes + bias_bytes;
    m->data_.reset(static_cast<uint8_t*>(AlignedAlloc(m->bytes_)));
    if (!m->data_) return nullptr;
    m->f32_ = reinterpret_cast<float*>(m->data_.get());
    m->bias_ = reinterpret_cast<float*>(m->data_.get() + w_bytes);
    for (int64_t p = 0; p < m->panels_; ++p)
      for (int64_t kk = 0; kk < k; ++kk) {
        float* dst = m->f32_ + (p * k + kk) * nr;
        for (int64_t c = 0; c < nr; ++c) {
          const int64_t row = p * nr + c;
          dst[c] = row < n ? w[row * k + kk] : 0.0f;
        }
      }
  } else {
    m->blocks_ = (k + kBlock - 1) / kBlock;
    const size_t cells = size_t(m->panels_ * m->blocks_ * nr);
    const size_t q_bytes = cells * kBlock, s_bytes = cells * 4;
    m->bytes_ = q_bytes + 2 * s_bytes + bias_bytes;
    m->data_.reset(static_cast<uint8_t*>(AlignedAlloc(m->bytes_)));
    if (!m->data_) return nullptr;
    uint8_t* base = m->data_.get();
    m->q_ = reinterpret_cast<int8_t*>(base);
    m->scales_ = reinterpret_cast<float*>(base + q_bytes);
    m->corr_ = reinterpret_cast<int32_t*>(base + q_bytes + s_bytes);
    m->bias_ = reinterpret_cast<float*>(base + q_bytes + 2 * s_bytes);
    const float qmax = static_cast<float>(K.qmax);
    for (int64_t p = 0; p < m->panels_; ++p)
      for (int64_t b = 0; b < m->blocks_; ++b) {
        const int64_t cell = (p * m->blocks_ + b) * nr;
        int8_t* dst = m->q_ + cell * kBlock;
        for (int64_t c = 0; c < nr; ++c) {
          const int64_t row = p * nr + c;
          const int64_t k0 = b * kBlock, k1 = std::min(k, k0 + kBlock);
          float amax = 0;
          if (row < n)
            for (int64_t kk = k0; kk < k1; ++kk) amax = std::max(amax, std::fabs(w[row * k + kk]));
          const float inv = amax > 0 ? qmax / amax : 0.0f;
          int32_t sum = 0;
          for (int64_t kk = 0; kk < kBlock; ++kk) {
            int q = 0;
            if (row < n && k0 + kk < k1)
              q = static_cast<int>(std::clamp(std::nearbyint(w[row * k + k0 + kk] * inv), -qmax, qmax));
            dst[(kk / 4) * nr * 4 + c * 4 + kk % 4] = static_cast<int8_t>(q);
            sum += q;
          }
          m->scales_[cell + c] = amax / qmax;
          m->corr_[cell + c] = 128 * sum;
        }
      }
  }
  for (int64_t i = 0; i < m->panels_ * nr; ++i) m->bias_[i] = bias && i < n ? bias[i] : 0.0f;
  return m;
}

void Matrix::Multiply(const float* a, int64_t m, int64_t lda, float* c, int64_t ldc, int ith,
                      int nth) const {
  if (m <= 0 || nth <= 0) return;
  const int64_t p0 = panels_ * ith / nth, p1 = panels_ * (ith + 1) / nth;
  if (p0 >= p1) return;
  if (precision_ == Precision::kF32)
    MultiplyF32(a, m, lda, c, ldc, p0, p1);
  else
    MultiplyInt8(a, m, lda, c, ldc, p0, p1);
}

void Matrix::MultiplyF32(const float* a, int64_t m, int64_t lda, float* c, int64_t ldc,
                         int64_t p0, int64_t p1) const {
  const Kernels& K = *kernels_;
  const int64_t mr = K.mr, nr = K.nr;
  float* pack = reinterpret_cast<float*>(Scratch(size_t(kMc * kKc) * 4));
  alignas(64) float tile[16 * 64];
  for (int64_t pc = 0; pc < k_; pc += kKc) {
    const int64_t kc = std::min(kKc, k_ - pc);
    for (int64_t ic = 0; ic < m; ic += kMc) {
      const int64_t mc = std::min(kMc, m - ic);
      // A block -> micro-panels of mr rows: for each k, the mr values (zeros past the last row).
      for (int64_t ir = 0; ir < mc; ir += mr) {
        float* dst = pack + ir * kc;
        const int64_t rows = std::min(mr, mc - ir);
        for (int64_t r = 0; r < mr; ++r) {
          if (r < rows) {
            const float* src = a + (ic + ir + r) * lda + pc;
            for (int64_t kk = 0; kk < kc; ++kk) dst[kk * mr + r] = src[kk];
          } else {
            for (int64_t kk = 0; kk < kc; ++kk) dst[kk * mr + r] = 0.0f;
          }
        }
      }
      for (int64_t p = p0; p < p1; ++p) {
        const float* b = f32_ + (p * k_ + pc) * nr;
        const float* init = pc == 0 ? bias_ + p * nr : nullptr;
        const int64_t cols = std::min(nr, n_ - p * nr);
        for (int64_t ir = 0; ir < mc; ir += mr) {
          const int64_t rows = std::min(mr, mc - ir);
          float* out = c + (ic + ir) * ldc + p * nr;
          if (rows == mr && cols == nr) {
            K.f32(kc, pack + ir * kc, b, out, ldc, init);
            continue;
          }
          if (!init)
            for (int64_t r = 0; r < rows; ++r) std::memcpy(tile + r * nr, out + r * ldc, cols * 4);
          K.f32(kc, pack + ir * kc, b, tile, nr, init);
          for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * ldc, tile + r * nr, cols * 4);
        }
      }
    }
  }
}

void Matrix::MultiplyInt8(const float* a, int64_t m, int64_t lda, float* c, int64_t ldc,
                          int64_t p0, int64_t p1) const {
  const Kernels& K = *kernels_;
  const int64_t mr = K.mr8, nr = K.nr8;
  uint8_t* pack = Scratch(size_t(kMc8 * kBlock) + size_t(kMc8) * 4);
  float* a_scale = reinterpret_cast<float*>(pack + kMc8 * kBlock);
  alignas(64) float tile[16 * 64];
  for (int64_t b = 0; b < blocks_; ++b) {
    const int64_t k0 = b * kBlock;
    const int kc = static_cast<int>(std::min<int64_t>(kBlock, k_ - k0));
    for (int64_t ic = 0; ic < m; ic += kMc8) {
      const int64_t mc = std::min(kMc8, m - ic);
      K.quantize(a + ic * lda, lda, static_cast<int>(mc), k0, kc, pack, a_scale);
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t cell = (p * blocks_ + b) * nr;
        const int8_t* w = q_ + cell * kBlock;
        const float* init = b == 0 ? bias_ + p * nr : nullptr;
        const int64_t cols = std::min(nr, n_ - p * nr);
        for (int64_t ir = 0; ir < mc; ir += mr) {
          const int64_t rows = std::min(mr, mc - ir);
          const uint8_t* x = pack + ir * kBlock;
          float* out = c + (ic + ir) * ldc + p * nr;
          if (rows == mr && cols == nr) {
            K.i8(x, w, a_scale + ir, scales_ + cell, corr_ + cell, out, ldc, init);
            continue;
          }
          if (!init)
            for (int64_t r = 0; r < rows; ++r) std::memcpy(tile + r * nr, out + r * ldc, cols * 4);
          K.i8(x, w, a_scale + ir, scales_ + cell, corr_ + cell, tile, nr, init);
          for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * ldc, tile + r * nr, cols * 4);
        }
      }
    }
  }
}

}  // namespace lumen::ml::gemm
