// Raster to SVG: the image is quantised to a small palette, and each colour is traced with
// libpotrace into one <path> of cubic Bezier curves and corners.
//
// The layers stack without gaps: the palette is put in paint order (by luminance, starting from
// the tone most of the image is in, so the minority tone's detail is drawn on top), the first
// colour is a background rect, and layer i traces the pixels of colour i *or any colour painted
// after it*. Each layer therefore lies under all the later ones, and the antialiased edge of a
// later layer blends with the colour actually next to it, never with a background showing
// through a seam. Holes are holes: each layer is one <path> of all its subpaths, outer
// boundaries and holes wound in opposite directions (fill-rule nonzero).
//
// The result is deterministic: the same image and options give the same SVG byte for byte,
// whatever the thread count.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lumen/image/image.h"
#include "lumen/util/status.h"

namespace lumen {

struct VectorizeOptions {
  int colors = 16;         // palette size, 2..64; an image with fewer distinct colours gets fewer
  int speckle = 4;         // potrace turdsize: regions and holes of up to this many pixels go; >= 0
  double smooth = 1.0;     // potrace alphamax, 0..1.34: 0 = polygons, 4/3 and up = no corners
  double tolerance = 0.2;  // potrace opttolerance in pixels, >= 0; 0 = no curve merging
  int threads = 0;         // colour layers traced at once (std::thread); 0 = all cores
};

struct VectorizeResult {
  std::string svg;  // the whole document, UTF-8, y down, viewBox="0 0 W H", width W, height H
  Image quantized;  // RGB, the input's size: the raster the SVG traces (compare renderings to it)
  std::vector<std::array<uint8_t, 3>> palette;  // in paint order: [0] is the background rect
  size_t paths = 0;  // <path> elements (a layer potrace left empty has none)
};

// Vectorises an image (channels 1 or 3; grey is traced as RGB grey). Invalid for an empty or
// malformed image or options out of range, TooLarge above 2^30 pixels, Internal if potrace fails.
// Memory: the quantised image (3 bytes a pixel), one byte a pixel of colour indices and one
// 1-bit-a-pixel potrace bitmap per thread, besides the SVG text.
Result<VectorizeResult> Vectorize(const Image& image, const VectorizeOptions& opt);

}  // namespace lumen
