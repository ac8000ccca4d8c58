// Private: the checks and sizes that both decoders (decode.cpp's TurboJPEG, the libvips module)
// apply before decoding.
#pragma once

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "lumen/image/decode.h"
#include "lumen/util/status.h"

namespace lumen {

inline Status CheckPixels(int w, int h, const DecodeLimits& limits) {
  if (w <= 0 || h <= 0) return Status::Corrupt(fmt::format("invalid image size {}x{}", w, h));
  uint64_t px = uint64_t(w) * uint64_t(h);
  if (px > limits.max_pixels)
    return Status::TooLarge(
        fmt::format("image is {}x{} ({:.0f} MP), above the pixel limit of {:.0f} MP", w, h,
                    px / 1e6, limits.max_pixels / 1e6));
  return Status::Ok();
}

// Smallest scale s in (0, 1] such that the long edge >= min_long and the short edge >= min_short.
inline double WantedScale(int w, int h, const DecodeTarget& t) {
  int lo = std::min(w, h), hi = std::max(w, h);
  double s = std::max(double(t.min_long_edge) / hi, double(t.min_short_edge) / lo);
  return std::min(1.0, s);
}

}  // namespace lumen
