// A plain interleaved 8-bit image and the small pixel operations every derived product shares.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace lumen {

// Pixel buffers of several MB are advised to the kernel as transparent huge pages before their
// first touch: a 100 MP raster is otherwise 73,000 page faults of 4 KB, each zeroed on its own
// (12-19% of a 100 MP convert: BENCHMARKS.md, session 13). Smaller ones, and kernels without
// THP, are as std::allocator gives them.
inline void AdviseHugePages(void* p, size_t bytes) {
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (bytes < 2 * kHuge) return;
  const uintptr_t from = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t to = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (to > from) (void)::madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
}

template <typename T>
struct PixelAllocator {
  using value_type = T;
  PixelAllocator() noexcept = default;
  template <typename U>
  PixelAllocator(const PixelAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    T* p = std::allocator<T>().allocate(n);
    AdviseHugePages(p, n * sizeof(T));
    return p;
  }
  void deallocate(T* p, size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  friend bool operator==(const PixelAllocator&, const PixelAllocator&) { return true; }
};
using PixelBuffer = std::vector<uint8_t, PixelAllocator<uint8_t>>;

struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;    // 1 (grey) or 3 (RGB)
  PixelBuffer pixels;  // row-major, width * channels bytes per row, no padding

  Image() = default;
  Image(int w, int h, int c) : width(w), height(h), channels(c), pixels(size_t(w) * h * c) {}
  bool empty() const { return width == 0 || height == 0; }
  uint8_t* row(int y) { return pixels.data() + size_t(y) * width * channels; }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * width * channels; }
};

// Applies an EXIF orientation (1..8; anything else is treated as 1) so that the result is
// upright: 3 = rotate 180, 6 = rotate 90 clockwise, 8 = rotate 90 counter-clockwise, 2/4/5/7 the
// mirrored forms. Orientations 5..8 swap width and height.
Image ApplyOrientation(const Image& src, int orientation);

// Width and height after orientation.
inline void OrientedSize(int w, int h, int orientation, int* ow, int* oh) {
  bool swap = orientation >= 5 && orientation <= 8;
  *ow = swap ? h : w;
  *oh = swap ? w : h;
}

// Luma (BT.601 weights) of an RGB image; a 1-channel image is returned as is.
Image ToGray(const Image& src);

// Exact area-average resampling to w x h (each output pixel is the mean of the source area it
// covers, with fractional edge weights). Used for hashes, where aliasing must not depend on the
// decode scale.
Image ResizeArea(const Image& src, int w, int h);

// Convolution resampling with the filter's support widened by the reduction factor (so that
// downscaling averages instead of aliasing), weights normalised per output pixel, 8-bit output
// rounded and clamped. Separable: horizontal pass into floats, then vertical.
enum class ResampleFilter { kBilinear, kBicubic, kLanczos3 };
Image Resample(const Image& src, int w, int h, ResampleFilter filter = ResampleFilter::kLanczos3);

}  // namespace lumen
