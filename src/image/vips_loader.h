// Private: the libvips module (vips_module.h), loaded and started on first need.
#pragma once

#include <string>
#include <vector>

#include "lumen/image/image.h"
#include "lumen/util/status.h"
#include "vips_module.h"

namespace lumen {

// The module's functions, libvips started. The first call loads it (thread-safe; ~40 ms of
// dynamic loading, once per process); later calls return the first one's result. Errors name the
// module's paths tried and the loader's reason.
Result<const VipsModuleApi*> VipsModule();

// An 8-bit image saved by libvips' saver for `suffix` (".png", ".webp[Q=80]"...), through the
// module: the fixtures of tests and benchmarks.
Result<std::vector<uint8_t>> EncodeWithVips(const Image& image, const std::string& suffix);

// The scans of a JPEG (its SOS markers), counted by walking its segments without decoding, up to
// a little past `limit` (convert.cpp).
int CountJpegScans(int fd, int limit);

}  // namespace lumen
