// Private: JPEG decode at M/8 scale straight into a libvips memory image (see jpeg_scaled.cpp).
#pragma once

#include <vips/vips.h>

#include <string>

namespace lumen {

// The smallest M in 1..8 whose M/8 decode of a `width` x `height` JPEG is still at least
// `want_w` x `want_h` (so only a downscale by less than 8/7 remains).
int JpegScaleFor(int width, int height, int want_w, int want_h);

// Decodes the JPEG file at `path` at scale m/8 into a new 8-bit sRGB (or grey) memory image,
// without metadata. Null with *error set for a corrupt or unsupported (CMYK) file.
VipsImage* DecodeJpegScaled(const std::string& path, int m, std::string* error);

}  // namespace lumen
