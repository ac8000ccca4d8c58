// Decoding at reduced size, once per file.
//
// DecodeReduced() reads the header first and refuses images above the pixel limit before any
// pixel buffer is allocated (decompression bombs). It then decodes straight to the smallest size
// that still satisfies the target, using the codec's own reduction: DCT scaling for JPEG
// (TurboJPEG, 1/8..1), shrink-on-load for WebP/HEIF/AVIF/TIFF/PNG/GIF through libvips. The result
// is 8-bit RGB in the file's stored orientation (EXIF orientation is applied by the consumers, on
// their much smaller outputs). Alpha is composited onto white; CMYK and other spaces are converted
// to sRGB. Animated GIF/WebP give their first frame, multi-page TIFF its first page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "lumen/image/image.h"
#include "lumen/io/magic.h"
#include "lumen/util/status.h"

namespace lumen {

// Call on the main thread before decoding, before other threads start: it sets what libvips'
// start will read from the environment. libvips itself (a module, image/vips_module.h) is loaded
// and started by the first file that needs it (not JPEG), with its cache off and one thread per
// operation (lumen parallelises across files, not within one). Once per process; Ok today.
Status InitImageLibraries(const char* argv0);
// Loads libvips' HEIF/AVIF module (heifload, heifsave) on first use; once, thread-safe.
void EnsureHeifSupport();

struct DecodeTarget {
  int min_long_edge = 256;   // e.g. the thumbnail size
  int min_short_edge = 224;  // e.g. the model input size
};

// The input limits of every command that reads images (index, process, convert: issue 15),
// set from --max-file-size and --max-pixels (cli_util.h, InputLimits).
struct DecodeLimits {
  uint64_t max_pixels = 100'000'000;       // width * height of the stored image
  uint64_t max_file_bytes = 200ull << 20;  // the file's size
  // Scans of a progressive JPEG: a few hundred bytes each can cost a pass over every block
  // (20,000 in a 286 KB file took 85 s); TurboJPEG's TJFLAG_LIMITSCANS uses the same 500.
  int max_scans = 500;
  double max_seconds = 0;  // one image's decode and encode (convert); 0: none
};

struct DecodedImage {
  Image rgb;      // reduced RGB, stored orientation
  int width = 0;  // full stored size
  int height = 0;
  std::string colorspace;  // "srgb", "grey", "cmyk", "rgb16", "grey16", ...
  bool has_alpha = false;
  const char* decoder = "";  // "turbojpeg" or "vips"
};

// Errors: TooLarge (pixel limit), Corrupt (bad or truncated data), Unsupported.
Result<DecodedImage> DecodeReduced(const uint8_t* data, size_t size, Format format,
                                   const DecodeTarget& target, const DecodeLimits& limits);

// Reads only the header: stored width and height. Same errors as DecodeReduced for bad headers.
Status ReadImageSize(const uint8_t* data, size_t size, Format format, int* width, int* height);

}  // namespace lumen
