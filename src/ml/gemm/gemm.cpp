#include "gemm.h"

#include <cpuid.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels.h"

namespace lumen::ml::gemm {
namespace {

// Cache blocking: an A block (kMc rows x kKc) stays in L2 while each kNc-wide... panel of W
// (kKc x nr, in L1) meets every micro-panel of it.
constexpr int64_t kKc = 256;          // f32 k block
constexpr int64_t kMc = 216;          // f32 rows per A block (a multiple of every mr)
constexpr int64_t kNc = 512;          // f32 columns per block of C
constexpr int64_t kMc8 = 216;         // int8 rows per A block
constexpr int64_t kNc8 = 512;         // int8 columns per block of C
constexpr int64_t kKc8 = 4 * kBlock;  // int8 k per kernel call (B: 16 KB per panel, in L1)

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
    if (!buf.p) throw std::bad_alloc();
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

namespace {
struct CpuFeatures {
  bool avx2 = false, avx512 = false, avx512vnni = false, avxvnni = false;
};

// From CPUID and XGETBV (the OS must save the AVX and AVX-512 registers), read here rather than
// from libgcc's copy made before main: bench/avx2_only.c answers CPUID for benchmarks.
CpuFeatures ReadCpu() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (!osxsave || !avx || !fma) return f;
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const bool ymm_state = (lo & 0x6) == 0x6, zmm_state = (lo & 0xe6) == 0xe6;
  if (!ymm_state || __get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = b & (1u << 5);
  f.avx512 = f.avx2 && zmm_state && (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) &&
             (b & (1u << 31));
  f.avx512vnni = f.avx512 && (c & (1u << 11));
  __cpuid_count(7, 1, a, b, c, d);
  f.avxvnni = f.avx2 && (a & (1u << 4));
  return f;
}
}  // namespace

bool Supported(Isa isa) {
  static const CpuFeatures f = ReadCpu();
  switch (isa) {
    case Isa::kAvx2:
      return f.avx2;
    case Isa::kAvxVnni:
      return f.avxvnni;
    case Isa::kAvx512:
      return f.avx512;
    case Isa::kAvx512Vnni:
      return f.avx512vnni;
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
    // k blocks outermost: the products sweep every panel of one k block in turn, so that is
    // one stream through memory (the hardware prefetchers follow it across the panels).
    for (int64_t pc = 0; pc < k; pc += kKc) {
      const int64_t kc = std::min(kKc, k - pc);
      for (int64_t p = 0; p < m->panels_; ++p)
        for (int64_t kk = 0; kk < kc; ++kk) {
          float* dst = m->f32_ + (pc * m->panels_ + p * kc + kk) * nr;
          for (int64_t c = 0; c < nr; ++c) {
            const int64_t row = p * nr + c;
            dst[c] = row < n ? w[row * k + pc + kk] : 0.0f;
          }
        }
    }
  } else {
    m->blocks_ = (k + kBlock - 1) / kBlock;
    m->cell_bytes_ = K.wide ? 2 * kBlock : kBlock;
    const size_t cells = size_t(m->panels_ * m->blocks_ * nr);
    const size_t q_bytes = cells * m->cell_bytes_, s_bytes = cells * 4;
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
        int8_t* dst = m->q_ + cell * m->cell_bytes_;
        int16_t* wide = reinterpret_cast<int16_t*>(dst);
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
              q = static_cast<int>(
                  std::clamp(std::nearbyint(w[row * k + k0 + kk] * inv), -qmax, qmax));
            if (K.wide)
              wide[(kk / 2) * nr * 2 + c * 2 + kk % 2] = static_cast<int16_t>(q);
            else
              dst[(kk / 4) * nr * 4 + c * 4 + kk % 4] = static_cast<int8_t>(q);
            sum += q;
          }
          m->scales_[cell + c] = amax / qmax;
          m->corr_[cell + c] = K.wide ? 0 : 128 * sum;
        }
      }
  }
  for (int64_t i = 0; i < m->panels_ * nr; ++i) m->bias_[i] = bias && i < n ? bias[i] : 0.0f;
  return m;
}

namespace {

int64_t RoundUp(int64_t x, int64_t to) {
  return (x + to - 1) / to * to;
}

alignas(64) const float kZeroRow[kKc] = {};

// One micro-panel: `n` <= MR rows of A (stride lda) over kc <= kKc values of k, for each k the MR
// values (zeros past n).
template <int MR>
void PackPanel(const float* a, int64_t lda, int64_t n, int64_t kc, float* dst) {
  const float* rows[MR];
  for (int r = 0; r < MR; ++r) rows[r] = r < n ? a + r * lda : kZeroRow;
  for (int64_t kk = 0; kk < kc; ++kk, dst += MR)
    for (int r = 0; r < MR; ++r) dst[r] = rows[r][kk];
}

// Rows [0, rows) of A (stride lda), k in [0, kc), into micro-panels of mr rows (zeros past rows).
void PackA(const float* a, int64_t lda, int64_t rows, int64_t kc, int64_t mr, float* dst) {
  for (int64_t ir = 0; ir < rows; ir += mr, dst += mr * kc) {
    const int64_t n = std::min(mr, rows - ir);
    if (mr == 6)
      PackPanel<6>(a + ir * lda, lda, n, kc, dst);
    else if (mr == 12)
      PackPanel<12>(a + ir * lda, lda, n, kc, dst);
    else
      for (int64_t r = 0; r < mr; ++r)
        for (int64_t kk = 0; kk < kc; ++kk) dst[kk * mr + r] = r < n ? a[(ir + r) * lda + kk] : 0;
  }
}

// One mr x nr tile of C through the kernel, partial tiles (rows or cols short) via a local tile.
template <class Run>
void Tile(float* out, int64_t ldc, int64_t rows, int64_t cols, int64_t mr, int64_t nr, bool init,
          const Run& run) {
  if (rows == mr && cols == nr) {
    run(out, ldc);
    return;
  }
  alignas(64) float tile[16 * 64];
  if (!init) {
    // The kernel adds to all mr x nr: the rows and columns past C start at zero.
    std::memset(tile, 0, sizeof(float) * size_t(mr * nr));
    for (int64_t r = 0; r < rows; ++r) std::memcpy(tile + r * nr, out + r * ldc, cols * 4);
  }
  run(tile, nr);
  for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * ldc, tile + r * nr, cols * 4);
}

alignas(64) const float kZeros[64] = {};
// Attention packs Q with kc = d from kZeroRow; Tile() holds any kernel's mr x nr.
static_assert(kMaxHeadDim <= kKc, "head dimension above the f32 k block");
static_assert(12 * 32 <= 16 * 64, "tile buffer");

}  // namespace

void Matrix::Multiply(const float* a, int64_t m, int64_t lda, float* c, int64_t ldc, int ith,
                      int nth) const {
  if (m <= 0 || nth <= 0) return;
  // This thread prepares all of A for itself (Prepare + MultiplyPrepared share it).
  uint8_t* prepared = Scratch(PreparedBytes(m));
  Prepare(a, m, lda, prepared, 0, 1);
  MultiplyPrepared(prepared, m, c, ldc, ith, nth);
}

size_t Matrix::PreparedBytes(int64_t m) const {
  if (precision_ == Precision::kF32) return size_t(RoundUp(m, kernels_->mr) * k_) * 4;
  return size_t(blocks_ * RoundUp(m, kernels_->mr8)) * size_t(cell_bytes_ + 4);
}

// f32: per k block (kKc), the row micro-panels (kernels.h). int8: per k block (kBlock), the row
// micro-panels, then all blocks' row scales. Threads take whole micro-panels.
void Matrix::Prepare(const float* a, int64_t m, int64_t lda, uint8_t* prepared, int ith,
                     int nth) const {
  const int64_t mr = precision_ == Precision::kF32 ? kernels_->mr : kernels_->mr8;
  const int64_t padded = RoundUp(m, mr), panels = padded / mr;
  const int64_t r0 = panels * ith / nth * mr, r1 = std::min(m, panels * (ith + 1) / nth * mr);
  if (r0 >= r1) return;
  if (precision_ == Precision::kF32) {
    float* out = reinterpret_cast<float*>(prepared);
    for (int64_t pc = 0; pc < k_; pc += kKc) {
      const int64_t kc = std::min(kKc, k_ - pc);
      PackA(a + r0 * lda + pc, lda, r1 - r0, kc, mr, out + pc * padded + r0 * kc);
    }
    return;
  }
  float* scales = reinterpret_cast<float*>(prepared + blocks_ * padded * cell_bytes_);
  for (int64_t b = 0; b < blocks_; ++b) {
    const int64_t k0 = b * kBlock;
    const int kc = static_cast<int>(std::min<int64_t>(kBlock, k_ - k0));
    kernels_->quantize(a + r0 * lda, lda, static_cast<int>(r1 - r0), k0, kc,
                       prepared + (b * padded + r0) * cell_bytes_, scales + b * padded + r0);
  }
}

void Matrix::MultiplyPrepared(const uint8_t* prepared, int64_t m, float* c, int64_t ldc, int ith,
                              int nth) const {
  if (m <= 0 || nth <= 0) return;
  const int64_t p0 = panels_ * ith / nth, p1 = panels_ * (ith + 1) / nth;
  if (p0 >= p1) return;
  if (precision_ == Precision::kF32)
    MultiplyF32(reinterpret_cast<const float*>(prepared), m, c, ldc, p0, p1);
  else
    MultiplyInt8(prepared, m, c, ldc, p0, p1);
}

namespace {
// The blocked sweep of both precisions: row blocks (mc_max rows), then groups of panels (nc
// columns), then k blocks (kb values), so that a block of C stays in L2 while every k block adds
// to it and the A block and the W panels stream past. run(ic + ir, rows, p, pc, kc) computes one
// mr-row tile of panel p over k [pc, pc + kc).
template <class Run>
void Sweep(int64_t m, int64_t k, int64_t p0, int64_t p1, int64_t mr, int64_t nr, int64_t mc_max,
           int64_t nc, int64_t kb, const Run& run) {
  const int64_t group = std::max<int64_t>(1, nc / nr);
  for (int64_t ic = 0; ic < m; ic += mc_max) {
    const int64_t mc = std::min(mc_max, m - ic);
    for (int64_t g0 = p0; g0 < p1; g0 += group) {
      const int64_t g1 = std::min(p1, g0 + group);
      for (int64_t pc = 0; pc < k; pc += kb) {
        const int64_t kc = std::min(kb, k - pc);
        for (int64_t p = g0; p < g1; ++p)
          for (int64_t ir = 0; ir < mc; ir += mr) run(ic, ir, std::min(mr, mc - ir), p, pc, kc);
      }
    }
  }
}
}  // namespace

void Matrix::MultiplyF32(const float* packed, int64_t m, float* c, int64_t ldc, int64_t p0,
                         int64_t p1) const {
  const Kernels& K = *kernels_;
  const int64_t mr = K.mr, nr = K.nr, padded = RoundUp(m, mr);
  Sweep(m, k_, p0, p1, mr, nr, kMc, kNc, kKc,
        [&](int64_t ic, int64_t ir, int64_t rows, int64_t p, int64_t pc, int64_t kc) {
          const float* a = packed + pc * padded + (ic + ir) * kc;
          const float* b = f32_ + (pc * panels_ + p * kc) * nr;
          const float* init = pc == 0 ? bias_ + p * nr : nullptr;
          const bool last = pc + kc >= k_;
          const int64_t cols = std::min(nr, n_ - p * nr);
          float* out = c + (ic + ir) * ldc + p * nr;
          if (rows < mr && cols == nr) {
            // The last rows: only they are computed, straight into C.
            K.f32_rows(int(rows), kc, a, b, out, ldc, init);
            if (last && activation_) K.activate(out, ldc, int(rows), int(cols), activation_);
            return;
          }
          Tile(out, ldc, rows, cols, mr, nr, init != nullptr, [&](float* o, int64_t ld) {
            K.f32(kc, a, b, o, ld, init);
            if (last && activation_) K.activate(o, ld, int(rows), int(cols), activation_);
          });
        });
}

void Matrix::MultiplyInt8(const uint8_t* q, int64_t m, float* c, int64_t ldc, int64_t p0,
                          int64_t p1) const {
  const Kernels& K = *kernels_;
  const int64_t mr = K.mr8, nr = K.nr8, padded = RoundUp(m, mr);
  const float* a_scales = reinterpret_cast<const float*>(q + blocks_ * padded * cell_bytes_);
  Sweep(m, k_, p0, p1, mr, nr, kMc8, kNc8, kKc8,
        [&](int64_t ic, int64_t ir, int64_t rows, int64_t p, int64_t pc, int64_t kc) {
          const int64_t b = pc / kBlock, row = ic + ir;
          const int blocks = static_cast<int>((kc + kBlock - 1) / kBlock);
          const int64_t cell = (p * blocks_ + b) * nr;
          const float* init = b == 0 ? bias_ + p * nr : nullptr;
          const bool last = pc + kc >= k_;
          const int64_t cols = std::min(nr, n_ - p * nr);
          Tile(c + row * ldc + p * nr, ldc, rows, cols, mr, nr, init != nullptr,
               [&](float* out, int64_t ld) {
                 K.i8(q + (b * padded + row) * cell_bytes_, padded * cell_bytes_,
                      q_ + cell * cell_bytes_, a_scales + b * padded + row, padded, scales_ + cell,
                      corr_ + cell, blocks, out, ld, init);
                 if (last && activation_) K.activate(out, ld, int(rows), int(cols), activation_);
               });
        });
}

void Attention(const AttentionArgs& s, Isa isa, int ith, int nth) {
  const Kernels& K = *F32Kernels(isa);
  const int64_t mr = K.mr, nr = K.nr, d = s.d;
  const int64_t tq_pad = RoundUp(s.tq, mr), tk_pad = RoundUp(s.tk, nr);
  const int64_t d_panels = RoundUp(d, nr) / nr, k_panels = tk_pad / nr;
  // Scratch: Q packed, K packed (as W: tk rows of d), the scores, P packed, V packed (as W:
  // d rows of tk, i.e. its rows are already the panels' k steps).
  const size_t nq = size_t(tq_pad * d), nk = size_t(tk_pad * d), ns = size_t(tq_pad * tk_pad),
               np = size_t(tq_pad * std::min(kKc, s.tk)), nv = size_t(d_panels * nr * s.tk);
  float* qa = reinterpret_cast<float*>(Scratch((nq + nk + ns + np + nv) * 4 + 64 * 5));
  float* kb = qa + RoundUp(int64_t(nq), 16);
  float* sc = kb + RoundUp(int64_t(nk), 16);
  float* pa = sc + RoundUp(int64_t(ns), 16);
  float* vb = pa + RoundUp(int64_t(np), 16);
  for (int64_t task = ith; task < s.batch * s.heads; task += nth) {
    const int64_t b = task / s.heads, h = task % s.heads;
    const float* Q = s.q + b * s.q_batch + h * d;
    const float* Kt = s.k + b * s.k_batch + h * d;
    const float* V = s.v + b * s.v_batch + h * d;
    float* O = s.out + b * s.out_batch + h * d;
    PackA(Q, s.q_row, s.tq, d, mr, qa);
    for (int64_t p = 0; p < k_panels; ++p)
      for (int64_t c = 0; c < nr; ++c) {
        const int64_t j = p * nr + c;
        float* dst = kb + p * d * nr + c;
        if (j < s.tk)
          for (int64_t kk = 0; kk < d; ++kk) dst[kk * nr] = Kt[j * s.k_row + kk];
        else
          for (int64_t kk = 0; kk < d; ++kk) dst[kk * nr] = 0.0f;
      }
    for (int64_t ir = 0; ir < tq_pad; ir += mr)
      for (int64_t p = 0; p < k_panels; ++p)
        K.f32(d, qa + ir * d, kb + p * d * nr, sc + ir * tk_pad + p * nr, tk_pad, kZeros);
    for (int64_t i = 0; i < s.tq; ++i)
      K.softmax(sc + i * tk_pad, int(s.causal ? std::min(i + 1, s.tk) : s.tk), int(tk_pad),
                s.scale);
    for (int64_t p = 0; p < d_panels; ++p) {
      const int64_t cols = std::min(nr, d - p * nr);
      for (int64_t j = 0; j < s.tk; ++j) {
        float* dst = vb + (p * s.tk + j) * nr;
        const float* src = V + j * s.v_row + p * nr;
        for (int64_t c = 0; c < nr; ++c) dst[c] = c < cols ? src[c] : 0.0f;
      }
    }
    for (int64_t pc = 0; pc < s.tk; pc += kKc) {
      const int64_t kc = std::min(kKc, s.tk - pc);
      PackA(sc + pc, tk_pad, s.tq, kc, mr, pa);
      for (int64_t p = 0; p < d_panels; ++p) {
        const int64_t cols = std::min(nr, d - p * nr);
        const float* init = pc == 0 ? kZeros : nullptr;
        for (int64_t ir = 0; ir < s.tq; ir += mr)
          Tile(O + ir * s.out_row + p * nr, s.out_row, std::min(mr, s.tq - ir), cols, mr, nr,
               init != nullptr, [&](float* out, int64_t ld) {
                 K.f32(kc, pa + ir * kc, vb + (p * s.tk + pc) * nr, out, ld, init);
               });
      }
    }
  }
}

}  // namespace lumen::ml::gemm
