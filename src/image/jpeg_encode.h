// Private: libjpeg's baseline encoder over one image, in strips on several threads (convert's
// direct path, convert_direct.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <jpeglib.h>

#include "lumen/util/status.h"

namespace lumen {

struct JpegEncodeOptions {
  int quality = 75;
  bool full_chroma = false;  // 4:4:4 instead of 4:2:0 (RGB input only)
  int threads = 1;
  int strips_per_thread = 2;  // more where the rows come as a decoder makes them
};

// Rows y0 .. y0 + n - 1 of the image, interleaved, w * bands bytes each with no gap between
// rows: either a pointer into the caller's pixels or rows the callback made in `scratch` (its
// own for each strip). Called from several threads at once, each strip once.
using JpegRows = std::function<const uint8_t*(int y0, int n, std::vector<uint8_t>* scratch)>;
// Writes the APP markers (EXIF, XMP, ICC, IPTC) once, after the encoder's header.
using JpegMarkers = std::function<void(jpeg_compress_struct*)>;

// A baseline JPEG of a w x h image of 1 (grey) or 3 (RGB) bands, Huffman tables not optimised.
// With more than one thread and a large image the image is cut into strips of whole MCU rows,
// each encoded on its own thread, and the strips' entropy-coded data joined between restart
// markers (one after every MCU row): the same coefficients, so the same decoded pixels, as one
// encoder gives; a decoder sees one ordinary baseline scan with a restart interval.
Result<std::vector<uint8_t>> EncodeJpegStrips(int w, int h, int bands,
                                              const JpegEncodeOptions& options,
                                              const JpegRows& rows, const JpegMarkers& markers);

}  // namespace lumen
