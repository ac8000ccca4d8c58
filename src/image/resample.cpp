// Separable resampling of 8-bit images, streamed row by row.
//
// Vertical pass first, over whole rows (contiguous: the compiler vectorises it), on a ring of the
// input rows under the kernel; then the horizontal pass on the one vertically resampled row.
// Fixed point throughout: weights in Q14, the intermediate row in x64 (room for the negative
// lobes of Lanczos and cubic), rounded once at the end. Output pixel x's centre maps to
// (x + 0.5) * in / out - 0.5 in the input, the convention of libvips' reduce and of most
// resamplers; edges repeat the border pixel.
#include "resample.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <numbers>

namespace lumen {
namespace {

double Sinc(double x) {
  if (x == 0) return 1;
  const double px = std::numbers::pi * x;
  return std::sin(px) / px;
}

// Mitchell-Netravali cubic with parameters b, c (Catmull-Rom: 0, 0.5).
double Cubic(double x, double b, double c) {
  x = std::fabs(x);
  if (x < 1)
    return ((12 - 9 * b - 6 * c) * x * x * x + (-18 + 12 * b + 6 * c) * x * x + (6 - 2 * b)) / 6;
  if (x < 2)
    return ((-b - 6 * c) * x * x * x + (6 * b + 30 * c) * x * x + (-12 * b - 48 * c) * x +
            (8 * b + 24 * c)) /
           6;
  return 0;
}

}  // namespace

double KernelSupport(ResampleKernel k) {
  switch (k) {
    case ResampleKernel::kNearest:
      return 0.5;
    case ResampleKernel::kLinear:
      return 1;
    case ResampleKernel::kCubic:
    case ResampleKernel::kMitchell:
    case ResampleKernel::kLanczos2:
      return 2;
    case ResampleKernel::kLanczos3:
      return 3;
  }
  return 3;
}

double KernelWeight(ResampleKernel k, double x) {
  switch (k) {
    case ResampleKernel::kNearest:
      return std::fabs(x) <= 0.5 ? 1 : 0;
    case ResampleKernel::kLinear:
      return std::max(0.0, 1 - std::fabs(x));
    case ResampleKernel::kCubic:
      return Cubic(x, 0, 0.5);
    case ResampleKernel::kMitchell:
      return Cubic(x, 1.0 / 3, 1.0 / 3);
    case ResampleKernel::kLanczos2:
      return std::fabs(x) < 2 ? Sinc(x) * Sinc(x / 2) : 0;
    case ResampleKernel::kLanczos3:
      return std::fabs(x) < 3 ? Sinc(x) * Sinc(x / 3) : 0;
  }
  return 0;
}

RowResampler::Taps RowResampler::MakeTaps(int in, int out, ResampleKernel kernel) {
  Taps t;
  const double scale = double(out) / in;        // < 1 shrinks
  const double stretch = std::min(1.0, scale);  // the kernel widens by 1/scale on a shrink
  const double support = KernelSupport(kernel) / stretch;
  t.n = std::min(in, int(std::ceil(2 * support)) + 1);
  t.first.resize(size_t(out));
  if (kernel == ResampleKernel::kNearest) {  // point sampling: the pixel under each centre
    t.n = 1;
    t.weights.assign(size_t(out), int16_t(1 << 14));
    for (int x = 0; x < out; ++x)
      t.first[size_t(x)] = std::clamp(int(std::floor((x + 0.5) / scale)), 0, in - 1);
    return t;
  }
  t.weights.assign(size_t(out) * size_t(t.n), 0);
  std::vector<double> w(size_t(t.n));
  for (int x = 0; x < out; ++x) {
    const double centre = (x + 0.5) / scale - 0.5;
    const int lo = int(std::ceil(centre - support));
    const int hi = int(std::floor(centre + support));
    const int first = std::clamp(lo, 0, in - t.n);
    std::fill(w.begin(), w.end(), 0.0);
    double sum = 0;
    for (int i = lo; i <= hi; ++i) {
      const double k = KernelWeight(kernel, (i - centre) * stretch);
      const int at = std::clamp(i, 0, in - 1) - first;
      if (at < 0 || at >= t.n) continue;  // only from rounding at the window's ends
      w[size_t(at)] += k;
      sum += k;
    }
    if (sum == 0) {  // nearest on an exact midpoint: take the pixel under the centre
      w[size_t(std::clamp(int(std::lround(centre)), 0, in - 1) - first)] = sum = 1;
    }
    int16_t* q = t.weights.data() + size_t(x) * size_t(t.n);
    int total = 0, big = 0;
    for (int k = 0; k < t.n; ++k) {
      q[k] = int16_t(std::lround(w[size_t(k)] / sum * (1 << 14)));
      total += q[k];
      if (std::abs(q[k]) > std::abs(q[big])) big = k;
    }
    q[big] = int16_t(q[big] + (1 << 14) - total);  // exactly 1 in Q14: flat stays flat
    t.first[size_t(x)] = first;
  }
  return t;
}

namespace {

// The two passes, compiled twice (AVX2 and baseline x86-64, chosen at load time): with AVX2 the
// widening multiply-adds of the vertical pass are 8 lanes wide.
#define LUMEN_CLONES __attribute__((target_clones("avx2", "default")))

LUMEN_CLONES void VerticalPass(const uint8_t* const* rows, const int16_t* w, int n, size_t len,
                               int32_t* acc, int16_t* col) {
  // Two rows a sweep: half the passes over the accumulators.
  int k = 0;
  if (n % 2 == 1) {
    const int32_t w0 = w[0];
    const uint8_t* s0 = rows[0];
    for (size_t x = 0; x < len; ++x) acc[x] = w0 * s0[x];
    k = 1;
  } else {
    for (size_t x = 0; x < len; ++x) acc[x] = 0;
  }
  for (; k < n; k += 2) {
    const int32_t w0 = w[k], w1 = w[k + 1];
    const uint8_t *s0 = rows[k], *s1 = rows[k + 1];
    for (size_t x = 0; x < len; ++x) acc[x] += w0 * s0[x] + w1 * s1[x];
  }
  for (size_t x = 0; x < len; ++x) col[x] = int16_t((acc[x] + 128) >> 8);  // x64
}

// RGB: three accumulators a pixel (independent chains; a vector of 4 lanes per pixel measured
// no faster).
LUMEN_CLONES void HorizontalPass3(const int16_t* col, const int* first, const int16_t* weights,
                                  int n, int out_w, uint8_t* o) {
  for (int x = 0; x < out_w; ++x) {
    const int16_t* wh = weights + size_t(x) * size_t(n);
    const int16_t* s = col + size_t(first[x]) * 3;
    int32_t r = 1 << 19, g = 1 << 19, b = 1 << 19;
    for (int k = 0; k < n; ++k, s += 3) {
      r += wh[k] * s[0];
      g += wh[k] * s[1];
      b += wh[k] * s[2];
    }
    o[0] = uint8_t(std::clamp(r >> 20, 0, 255));
    o[1] = uint8_t(std::clamp(g >> 20, 0, 255));
    o[2] = uint8_t(std::clamp(b >> 20, 0, 255));
    o += 3;
  }
}

// One band (the planes of a YUV picture): each output pixel is one dot product of adjacent
// samples, 16 a vpmaddwd, with the taps zero-padded to a multiple of 16 (`w16`, `n16` a pixel;
// the row is padded too, so the loads past its end read zeros); four pixels' sums are reduced
// together.
__attribute__((target("avx2"), always_inline)) inline __m256i Dot16(const int16_t* s,
                                                                    const int16_t* w, int n16) {
  __m256i a = _mm256_setzero_si256();
  for (int k = 0; k < n16; k += 16)
    a = _mm256_add_epi32(
        a, _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + k)),
                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k))));
  return a;
}

__attribute__((target("avx2"))) void HorizontalPass1Avx2(const int16_t* col, const int* first,
                                                         const int16_t* w16, int n16, int out_w,
                                                         uint8_t* o) {
  const __m128i round = _mm_set1_epi32(1 << 19);
  int x = 0;
  for (; x + 4 <= out_w; x += 4) {
    const int16_t* w = w16 + size_t(x) * size_t(n16);
    const __m256i d0 = Dot16(col + first[x], w, n16);
    const __m256i d1 = Dot16(col + first[x + 1], w + n16, n16);
    const __m256i d2 = Dot16(col + first[x + 2], w + 2 * n16, n16);
    const __m256i d3 = Dot16(col + first[x + 3], w + 3 * n16, n16);
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(d0, d1), _mm256_hadd_epi32(d2, d3));
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    sum = _mm_srai_epi32(_mm_add_epi32(sum, round), 20);
    const __m128i words = _mm_packs_epi32(sum, sum);
    const int32_t bytes = _mm_cvtsi128_si32(_mm_packus_epi16(words, words));  // clamped 0..255
    std::memcpy(o + x, &bytes, 4);
  }
  for (; x < out_w; ++x) {
    const int16_t* s = col + first[x];
    const int16_t* w = w16 + size_t(x) * size_t(n16);
    int32_t a = 1 << 19;
    for (int k = 0; k < n16; ++k) a += w[k] * s[k];
    o[x] = uint8_t(std::clamp(a >> 20, 0, 255));
  }
}

void HorizontalPass(const int16_t* col, const int* first, const int16_t* weights, int n, int out_w,
                    int bands, uint8_t* o) {
  for (int x = 0; x < out_w; ++x) {
    const int16_t* wh = weights + size_t(x) * size_t(n);
    const int16_t* s = col + size_t(first[x]) * size_t(bands);
    for (int c = 0; c < bands; ++c) {
      int32_t a = 1 << 19;
      for (int k = 0; k < n; ++k) a += wh[k] * s[k * bands + c];
      *o++ = uint8_t(std::clamp(a >> 20, 0, 255));
    }
  }
}

// MakeTaps, remembered: the U and V planes of a picture, and photos of one camera, ask for the
// same taps again (a sine or two per tap: ~1 ms a plane).
const RowResampler::Taps& CachedTaps(int in, int out, ResampleKernel kernel) {
  struct Entry {
    int in = -1, out = -1;
    ResampleKernel kernel{};
    RowResampler::Taps taps;
  };
  thread_local std::array<Entry, 4> cache;
  thread_local size_t next = 0;
  for (const Entry& e : cache)
    if (e.in == in && e.out == out && e.kernel == kernel) return e.taps;
  Entry& e = cache[next++ % cache.size()];
  e = {in, out, kernel, RowResampler::MakeTaps(in, out, kernel)};
  return e.taps;
}

bool HasAvx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2;
}

}  // namespace

RowResampler::RowResampler(int in_w, int in_h, int out_w, int out_h, int bands,
                           ResampleKernel kernel, uint8_t* out)
    : in_w_(in_w),
      in_h_(in_h),
      out_w_(out_w),
      out_h_(out_h),
      bands_(bands),
      out_(out),
      h_(CachedTaps(in_w, out_w, kernel)),
      v_(CachedTaps(in_h, out_h, kernel)),
      ring_(size_t(v_.n) * size_t(in_w) * size_t(bands)),
      acc_(size_t(in_w) * size_t(bands)),
      rows_(size_t(v_.n)) {
  if (bands == 1 && HasAvx2()) {  // HorizontalPass1Avx2's padded taps
    n16_ = (h_.n + 15) / 16 * 16;
    w16_.assign(size_t(out_w) * size_t(n16_), 0);
    for (int x = 0; x < out_w; ++x)
      std::copy_n(h_.weights.data() + size_t(x) * size_t(h_.n), h_.n,
                  w16_.data() + size_t(x) * size_t(n16_));
  }
  column_.assign(size_t(in_w) * size_t(bands) + size_t(n16_), 0);
}

void RowResampler::Push(const uint8_t* row) {
  if (pushed_ >= in_h_) return;
  const size_t stride = size_t(in_w_) * size_t(bands_);
  std::memcpy(ring_.data() + size_t(pushed_ % v_.n) * stride, row, stride);
  ++pushed_;
  // Every output row whose last input row is in; the ring still holds its first (the window of a
  // later row never starts before an earlier one's, and spans at most v_.n rows).
  while (next_out_ < out_h_ && v_.first[size_t(next_out_)] + v_.n <= pushed_) Emit(next_out_++);
}

void RowResampler::Emit(int y) {
  const size_t stride = size_t(in_w_) * size_t(bands_);
  std::vector<const uint8_t*>& rows = rows_;
  for (int k = 0; k < v_.n; ++k)
    rows[size_t(k)] = ring_.data() + size_t((v_.first[size_t(y)] + k) % v_.n) * stride;
  VerticalPass(rows.data(), v_.weights.data() + size_t(y) * size_t(v_.n), v_.n, stride, acc_.data(),
               column_.data());
  uint8_t* o = out_ + size_t(y) * size_t(out_w_) * size_t(bands_);
  if (bands_ == 3)
    HorizontalPass3(column_.data(), h_.first.data(), h_.weights.data(), h_.n, out_w_, o);
  else if (n16_ > 0)
    HorizontalPass1Avx2(column_.data(), h_.first.data(), w16_.data(), n16_, out_w_, o);
  else
    HorizontalPass(column_.data(), h_.first.data(), h_.weights.data(), h_.n, out_w_, bands_, o);
}

}  // namespace lumen
