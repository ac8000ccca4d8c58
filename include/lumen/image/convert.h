// Carrying out an operation chain (chain.h) on one image file: one pipeline per image, colour
// managed (an embedded ICC profile is honoured, output sRGB), upright (EXIF orientation applied).
// When the chain starts by shrinking (fit, fill, resize < 1) a JPEG is decoded at M/8 of its size
// and other formats open with libvips' shrink-on-load, so a 20 MP photo never exists at full size
// in memory; other chains stream the file where they can. A JPEG shrunk (and perhaps sharpened)
// into WebP, JPEG, PNG or SVG takes a direct path through libjpeg, lumen's resampler and
// libwebp/libjpeg/zlib or the vectorizer, without libvips; everything else is a libvips
// pipeline, libvips loaded on first need (image/vips_module.h).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>

#include "lumen/image/chain.h"
#include "lumen/image/decode.h"
#include "lumen/util/status.h"

namespace lumen {

struct ConvertResult {
  int width = 0, height = 0;
  std::string format;  // jpeg, webp, ...
  uint64_t bytes = 0;
};

// The output format of `chain` for `input` (the chain's, else the input's by extension) and
// its usual extension ("jpg", "webp", ...).
std::string OutputFormat(const Chain& chain, const std::string& input);
std::string FormatExtension(const std::string& format);

// Threads each image's libvips pipeline (and the vectorizer) may use from now on (default 1: one
// image per core is the faster way through a batch; a batch smaller than the cores gives each
// image several, so one large photo uses every core).
void SetConvertThreads(int threads);

// The vectorizer's settings for a chain's `svg:...` output (its preset, then its own values).
struct VectorizeOptions;
VectorizeOptions SvgOptions(const std::vector<std::pair<std::string, std::string>>& settings);
// The blur before tracing (svg:denoise, by preset): sigma per 1024 pixels of the long edge.
double SvgDenoise(const std::vector<std::pair<std::string, std::string>>& settings);

// Quality presets: the resampling kernel of `resize`, the encoder effort (WebP 0-6, AVIF 0-9,
// PNG compression) and JPEG chroma subsampling, where the chain does not say (`effort:N`).
//   draft   linear,   effort 0, 4:2:0       fast  cubic,    effort 2, 4:2:0
//   balanced lanczos3, effort 4, libvips' choice (default)
//   high    lanczos3, effort 5, 4:4:4       ultra lanczos3, effort 6 (AVIF 9), 4:4:4
struct Preset {
  std::string name = "balanced";
};
// False for an unknown preset name.
bool IsPreset(const std::string& name);

// Converts `input` and writes the result into `out_fd`: an empty regular file open for writing,
// which the caller created (convert_cmd.cpp: a temporary name inside the output folder, renamed
// into place on success, removed on failure) and closes. Before anything is decoded the input
// is refused by its type (a FIFO, a device: never opened for reading), its size, its pixel count
// (from the header) and, for a JPEG, its number of progressive scans (`limits`); the decode and
// encode stop once `limits.max_seconds` have passed or a signal asked lumen to stop
// (util/interrupt.h). Errors name the input: NotFound, Unsupported (not a regular file, a format
// libvips cannot read), TooLarge (a limit), Corrupt (libvips or libjpeg's reason), Invalid (a
// chain that does not fit the image, a crop outside it), Io (the output).
Result<ConvertResult> ConvertFile(const std::string& input, const Chain& chain, int out_fd,
                                  const Preset& preset, const DecodeLimits& limits);

// The input checks of ConvertFile on an open descriptor: a regular file, not empty, within
// `limits.max_file_bytes`; *size (if given) its size.
Status CheckInputFile(const std::string& input, int fd, const DecodeLimits& limits, uint64_t* size);
// What kind of file `st` describes, for messages: "a FIFO (named pipe), not an image file", ...
std::string FileKind(const struct stat& st);

}  // namespace lumen
