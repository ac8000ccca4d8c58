// Everything derived from the one reduced decode: thumbnail, perceptual hashes, model input.
// Each takes the reduced RGB image in stored orientation plus the EXIF orientation, and returns
// an upright result.
#pragma once

#include <cstdint>
#include <vector>

#include "lumen/image/image.h"
#include "lumen/util/status.h"

namespace lumen {

// ---- Thumbnail ------------------------------------------------------------------------------
struct ThumbnailOptions {
  int size = 256;    // longest edge in pixels; never upscaled
  int quality = 80;  // WebP quality 0..100
  int effort = 2;    // WebP method 0 (fast) .. 6 (small)
};

struct Thumbnail {
  std::vector<uint8_t> webp;
  int width = 0;
  int height = 0;
};

// Lanczos3 reduction to the longest edge `size`, orientation applied, WebP-encoded.
Result<Thumbnail> MakeThumbnail(const Image& reduced, int orientation, const ThumbnailOptions& opt);

// Baseline JPEG (4:2:0) of an RGB image, libjpeg-turbo: for model APIs, which all read JPEG.
Result<std::vector<uint8_t>> EncodeJpeg(const Image& rgb, int quality);

// ---- Perceptual hashes ----------------------------------------------------------------------
// Both are computed on the upright luma image, so a copy whose pixels were rotated and one
// rotated only by an EXIF flag hash alike.
//  dhash: 9x8 area-averaged luma; bit (row*8 + col) = pixel(col) < pixel(col+1). Bit 63 first.
//  phash: 32x32 area-averaged luma; 2-D DCT-II; the 8x8 lowest frequencies (DC included);
//         bit = coefficient > median of those 64.
//  sharpness: variance of the 4-neighbour Laplacian over the luma reduced to 256 px on the long
//         edge (so copies at different resolutions compare); higher is sharper, blur lowers it.
struct PerceptualHashes {
  uint64_t dhash = 0;
  uint64_t phash = 0;
  double sharpness = 0;
};
PerceptualHashes ComputePerceptualHashes(const Image& reduced, int orientation);

inline int HammingDistance(uint64_t a, uint64_t b) {
  return __builtin_popcountll(a ^ b);
}

// ---- Model input ----------------------------------------------------------------------------
// The hook for the image encoders: a square 8-bit RGB image, upright. kSquash resizes the whole
// picture to size x size (SigLIP's training); kCenterCrop resizes the short edge to `size` and
// crops the centre (CLIP's). Bicubic (Keys, a=-0.5) with antialiasing, from the reduced decode.
// Normalisation (mean/std) belongs to the encoder.
enum class ModelResize { kSquash, kCenterCrop };
struct ModelInputSpec {
  int size = 224;
  ModelResize mode = ModelResize::kSquash;
};
Result<Image> MakeModelInput(const Image& reduced, int orientation, const ModelInputSpec& spec);

}  // namespace lumen
