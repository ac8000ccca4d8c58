// Helpers shared by the unit tests: temporary directories and synthetic images encoded with
// libvips in every supported format.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "lumen/image/decode.h"
#include "lumen/image/image.h"
#include "lumen/util/status.h"

namespace lumen::test {

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A smooth, asymmetric test picture (gradients plus a bright block in the top-left quadrant),
// so that orientation and perceptual hashes have something to see.
Image MakePicture(int w, int h, int seed = 0);

// A photo-like test image of 1 or 3 bands: gradients, edges and noise (what an encoder finds in a
// photo, unlike MakePicture's smooth ramps).
Image MakeNoisyPicture(int w, int h, int bands, uint32_t seed);

// The file `input` converted by `chain` (ConvertFile, on `threads` threads) into `out`, and the
// bytes written there; the status of the conversion where it failed. Threads back to 1 after.
Result<std::vector<uint8_t>> ConvertOnThreads(const std::string& input, const std::string& chain,
                                              int threads, const std::string& out,
                                              const DecodeLimits& limits = DecodeLimits{});

// Encodes with libvips: suffix is ".jpg", ".png", ".webp", ".tif", ".gif", ".heic", ".avif",
// optionally with save options: ".jpg[Q=90,interlace]".
std::vector<uint8_t> Encode(const Image& img, const std::string& suffix);

void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes);
void WriteFile(const std::string& path, const std::string& bytes);
std::vector<uint8_t> ReadFile(const std::string& path);

// A random unit vector (normal components, L2-normalised): stand-in embeddings.
std::vector<float> RandomUnitVector(std::mt19937_64& rng, int dim);
// A deterministic stand-in for a text tower: each text maps to its own random unit vector.
std::vector<float> TextStandIn(const std::string& text, int dim);

// Mean absolute difference per channel value between two images of equal size.
double MeanAbsDiff(const Image& a, const Image& b);

}  // namespace lumen::test
