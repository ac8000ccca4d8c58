// Private: unsharp mask on an 8-bit interleaved buffer (see unsharp.cpp).
#pragma once

#include <cstdint>

namespace lumen {

// out = in + amount * (in - gauss(in, sigma)) on all `bands` of a `w` x `h` image, in integer
// arithmetic (separable; rows through a ring buffer). `out` may be `in` (in place).
void UnsharpMask8(const uint8_t* in, uint8_t* out, int w, int h, int bands, double sigma,
                  double amount);

}  // namespace lumen
