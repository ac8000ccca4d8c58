// Private: unsharp mask on an 8-bit interleaved buffer (see unsharp.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace lumen {

// out = in + amount * (in - gauss(in, sigma)) on all `bands` of a `w` x `h` image, in integer
// arithmetic (separable; rows through a ring buffer). `out` may be `in` (in place). With
// ImageMagick's rule for `threshold` (a fraction of the range; 0.05 in its -unsharp unless
// given): a sample whose difference from the blur is less than half of it stays as it is, so
// grain and smooth gradients are not sharpened, only edges.
constexpr double kUnsharpThreshold = 0.05;
void UnsharpMask8(const uint8_t* in, uint8_t* out, int w, int h, int bands, double sigma,
                  double amount, double threshold = kUnsharpThreshold);
// The Gaussian blur UnsharpMask8 subtracts, alone (amount -1, no threshold: in - (in - gauss)):
// the same integer weights, ring and vector loops.
inline void GaussBlur8(const uint8_t* in, uint8_t* out, int w, int h, int bands, double sigma) {
  UnsharpMask8(in, out, w, h, bands, sigma, -1.0, 0.0);
}
// The rows UnsharpMask8 reads on each side of a row: a band of rows computed with this many more
// above and below is exact in its middle.
inline int UnsharpRadius(double sigma) {
  return std::max(1, int(std::ceil(sigma * 2.45)));  // down to 5%
}
// The threshold in UnsharpMask8's integer terms: a difference d is sharpened when 2|d| >= this.
inline int UnsharpLimit(double threshold) {
  return int(std::ceil(threshold * 255 - 1e-9));
}

}  // namespace lumen
