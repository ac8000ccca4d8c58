// A plain interleaved 8-bit image and the small pixel operations every derived product shares.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lumen {

struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;             // 1 (grey) or 3 (RGB)
  std::vector<uint8_t> pixels;  // row-major, width * channels bytes per row, no padding

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
