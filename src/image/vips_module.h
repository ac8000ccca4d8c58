// Private: the boundary between lumen and its libvips module (liblumen_vips.so).
//
// libvips brings ~100 shared libraries with it (ImageMagick's, poppler's, GLib...), and loading
// them was ~40 ms of every lumen process, also of one that never reads a pixel through libvips
// (search, describe of a document, a JPEG converted on the direct path). So every line of lumen
// that touches libvips lives in a module that vips_loader.cpp dlopens on first need: the
// executables do not link libvips at all.
//
// The module holds only code without state of its own (the libvips calls, the chain's
// arguments, the unsharp mask, Status); what has process state (the log, the stop flag) or
// lumen's JPEG decoders stays in the executable and is reached through VipsHost. Both sides
// come from one build (same compiler, libstdc++ and flags: the loader checks), so C++ types cross
// the boundary; the entry points that can meet bad input or run out of memory (decode, convert,
// encode) catch, so no exception crosses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lumen/image/chain.h"
#include "lumen/image/convert.h"
#include "lumen/image/decode.h"
#include "lumen/image/image.h"
#include "lumen/util/status.h"
#include "resample.h"

namespace lumen {

// The executable's services, passed once to VipsModuleApi::start.
struct VipsHost {
  void (*log_debug)(const std::string& line);  // log::Debug
  bool (*interrupted)();                       // lumen::Interrupted (a signal asked to stop)
  uint64_t (*now_ns)();                        // MonotonicNs (deadlines)
  // The input checks of an overlay file (CheckInputFile and the JPEG scan limit): Ok or why not.
  Status (*check_overlay)(const std::string& path, const DecodeLimits& limits);
  // Whether an embedded ICC profile asks for a conversion to sRGB (convert_direct.h).
  bool (*needs_srgb)(const void* icc, size_t len);
  // The lead shrink (fit, fill, resize below 1) of a JPEG of stored size `w` x `h` with EXIF
  // `orientation`, done by the direct path's M/8 decode and resample: upright pixels of the
  // lead's size (before fill's crop). False where that saves nothing or the decoder refuses.
  bool (*shrink_jpeg)(const std::string& input, const ChainOp& lead, int w, int h, int orientation,
                      ResampleKernel kernel, int max_scans, uint64_t deadline_ns, Image* out);
};

// One conversion through libvips: what ConvertFile has decided before it.
struct VipsConvertRequest {
  const std::string* input = nullptr;
  const Chain* chain = nullptr;
  int out_fd = -1;
  std::string format;  // jpeg, webp, png, tiff, avif, svg
  Format in_format = Format::kUnknown;
  ResampleKernel kernel = ResampleKernel::kLanczos3;  // the preset's
  int effort = 4;                                     // the preset's (WebP scale 0-6)
  int subsample = -1;
  DecodeLimits limits;
  uint64_t deadline_ns = 0;
  int threads = 1;
  double svg_denoise = 0;  // svg: the blur before tracing, sigma per 1024 px (SvgDenoise)
};

struct VipsConvertOutcome {
  ConvertResult result;  // width, height (and bytes is the caller's to fill)
  bool svg = false;      // the output is SVG: `raster` is the finished raster to trace
  Image raster;
};

struct VipsModuleApi {
  // LUMEN_VIPS_ABI_ID as the module was built: a hash of the headers whose types cross, the
  // compiler and the sanitizer setting (src/image/CMakeLists.txt). A module from another build
  // is refused, not called; so is one whose types' sizes differ from the executable's.
  const char* abi_id;
  uint32_t host_size, request_size, outcome_size, decoded_size;
  // Starts libvips (once): cache off, one thread per operation, its log into host->log_debug.
  Status (*start)(const VipsHost* host, const char* argv0);
  void (*ensure_heif)();  // libvips' HEIF/AVIF module, loaded on first use
  Result<DecodedImage> (*decode)(const uint8_t* data, size_t size, const DecodeTarget& target,
                                 const DecodeLimits& limits);
  Status (*read_size)(const uint8_t* data, size_t size, int* width, int* height);
  Result<VipsConvertOutcome> (*convert)(const VipsConvertRequest& request);
  // An 8-bit image saved by libvips' saver for `suffix` (".png", ".webp[Q=80]"...): tests and
  // benchmarks make their fixtures with it.
  Result<std::vector<uint8_t>> (*encode)(const Image& image, const std::string& suffix);
};

}  // namespace lumen

// The module's one exported symbol.
extern "C" const lumen::VipsModuleApi* lumen_vips_module_v1();
