// Private: libwebp's lossy encoder over a filled picture, shared by thumbnails (derive.cpp) and
// convert's direct path (convert_direct.cpp).
#pragma once

#include <webp/encode.h>

#include <cstdint>
#include <vector>

#include "lumen/util/status.h"

namespace lumen {

// Encodes `pic` (filled, RGB-imported or YUV; freed here, whatever happens) at `quality` 0-100
// and `effort` (libwebp's method, 0-6): the VP8 bitstream in a simple WebP container.
Result<std::vector<uint8_t>> EncodeWebpPicture(WebPPicture* pic, int quality, int effort);

}  // namespace lumen
