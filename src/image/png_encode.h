// Private: an 8-bit PNG writer that deflates one image in strips on several threads (convert's
// direct path, convert_direct.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lumen/util/status.h"

namespace lumen {

struct PngEncodeOptions {
  int level = 6;              // zlib's compression level, 0-9 (libvips' pngsave "compression")
  int threads = 1;            // strips deflated at once
  int strips_per_thread = 2;  // more where the rows come as a decoder makes them
};

// Rows y0 .. y0 + n - 1 of the image, interleaved, w * bands bytes each with no gap between
// rows: a pointer into the caller's pixels or rows the callback made in `scratch` (its own for
// each strip). Called from several threads at once, each row once.
using PngRows = std::function<const uint8_t*(int y0, int n, std::vector<uint8_t>* scratch)>;

// An ancillary chunk written before the image data: its type ("iCCP", "eXIf", "iTXt") and data.
struct PngChunk {
  std::string type, data;
};

// Receives the file's bytes in order; false stops the encoder (a write that failed).
using PngSink = std::function<bool(const uint8_t* data, size_t size)>;

// A PNG of a w x h image of 1 (grey) or 3 (RGB) 8-bit bands, every row with filter type None
// (as libvips writes PNG). With more than one thread and a large image the rows are cut into
// strips, each deflated on its own thread into a raw deflate stream ended by a sync flush (byte
// aligned, not final), so that the strips joined in order are one zlib stream; each strip is its
// own IDAT chunk, and the Adler-32 of the whole comes from the strips' (adler32_combine). A
// decoder sees an ordinary PNG; the strips' data is what a single stream would hold but for the
// 32 KiB window not reaching back across a strip boundary. A failing sink ends it with an error
// naming the write; nothing is written after.
Status EncodePngStrips(int w, int h, int bands, const PngEncodeOptions& options,
                       const PngRows& rows, const std::vector<PngChunk>& chunks,
                       const PngSink& sink);

}  // namespace lumen
