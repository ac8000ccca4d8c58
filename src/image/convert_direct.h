// Private: convert's direct path (see convert_direct.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "jpeg_error.h"
#include "lumen/image/chain.h"
#include "lumen/image/convert.h"
#include "resample.h"

namespace lumen {

// Whether an embedded ICC profile asks for a conversion to sRGB: not an sRGB profile (most
// camera JPEGs embed one), nor a grey one, nor one that cannot be read.
bool NeedsSrgbTransform(const void* icc, size_t len);

class JpegReader;
struct Image;

// The JPEG (opened) shrunk to the upright `fw` x `fh`: decoded at the smallest M/8 that covers it,
// resampled the rest of the way with `kernel` row by row (the M/8 image never whole), then turned
// upright by `orientation`. RGB, or grey for a grey file unless `rgb`. False: jpeg->error().
bool DecodeShrunk(JpegReader* jpeg, int orientation, int fw, int fh, ResampleKernel kernel,
                  bool rgb, Image* out);

// JPEG's full-range Y (or Cb, Cr) value as WebP's: BT.601's matrix both, but WebP's range is
// limited (Y 16-235, U and V 16-240 about 128), as libwebp's RGB import computes it. Equal for
// every byte to 16 + round(v * 219 / 255) for Y and 128 + round((v - 128) * 224 / 255) for
// chroma, in arithmetic the compiler vectorises.
inline uint8_t WebpRange(uint8_t v, bool chroma) {
  return uint8_t((v * (chroma ? 14392 : 14070) + (chroma ? 263144 : 270448)) >> 14);
}

struct DirectSettings {
  ResampleKernel kernel = ResampleKernel::kLanczos3;  // the preset's
  int effort = 4;                                     // WebP method
  int subsample = -1;       // JPEG chroma: 1 4:2:0, 0 4:4:4, -1 4:4:4 from quality 90 (as libvips)
  uint64_t max_pixels = 0;  // the stored image's width * height (0: none)
  JpegLimits jpeg;          // scans, deadline, stop (the monitor is installed by the reader)
  int threads = 1;          // for this image (the JPEG and PNG encoders' strips)
  uint64_t full_size_bytes = 0;  // the most a full-size chain may hold decoded (0: libvips)
  double svg_denoise = 0;        // svg: the blur before tracing, sigma per 1024 px (SvgDenoise)
};

// Traces `img` (vectorize.h: the chain's svg settings, colour layers on `threads`) and writes the
// SVG document to `out_fd`: its size, the vectorizer's error, or Io with the write's reason.
// Both paths into SVG end here (the direct one, and the libvips one after its raster).
Result<uint64_t> WriteSvg(const Image& img, const Chain& chain, int threads, int out_fd);

enum class Direct { kNotApplicable, kDone, kFailed, kLimit, kWriteFailed, kTraceFailed };

// A JPEG whose chain is a shrink (fit, fill to the centre, resize below 1), then at most
// sharpen, or sharpen alone at full size (within settings.full_size_bytes), into lossy WebP,
// JPEG, PNG or SVG: decoded at M/8 row by row straight into the resampler, oriented, sharpened
// and encoded with libwebp, libjpeg or zlib (or blurred and traced: vectorize.h), without
// libvips (whose pipeline, threads and copies cost more than these steps themselves; its PNG
// and JPEG savers use one core; and loading it is ~40 ms). Writes `out_fd`. kNotApplicable
// when the chain or the file needs more (another operation, a profile to convert, CMYK): the
// caller goes through libvips then, nothing written. kFailed (a corrupt file), kLimit (above
// the pixel or scan limit, past the deadline, stopped), kWriteFailed (the output could not be
// written to `out_fd`) and kTraceFailed (the vectorizer refused) set *error.
Direct ConvertDirect(const std::string& input, const Chain& chain, const std::string& format,
                     int out_fd, const DirectSettings& settings, ConvertResult* result,
                     std::string* error);

}  // namespace lumen
