// What `lumen compare` measures (issue 20): a frame at a given time, and how close an encoded
// excerpt is to the source it was cut from (SSIM and PSNR by libavfilter's ssim and psnr filters).
#pragma once

#include <string>

#include "lumen/image/image.h"
#include "lumen/util/status.h"

namespace lumen::video {

// The frame shown at `seconds` (the first at or after it; the last one past the end), upright,
// 8-bit RGB with square pixels, its long edge at most `max_side` (never enlarged).
Result<Image> FrameAt(const std::string& path, double seconds, int max_side);

struct Fidelity {
  double ssim = 0;  // mean over the frames, 0-1 (luma and chroma weighted as the filter does)
  double psnr = 0;  // mean of the frames' PSNR in dB (identical frames: 100)
  int frames = 0;   // frames compared
};
// `excerpt` (encoded from `source` starting at `start`, as lumen compare writes it) against the
// source's frames from `start` for `duration` seconds. The source is scaled to the excerpt's
// size, both taken to 8-bit 4:2:0, and frames are paired by their time from the start (so a
// deinterlacer's double rate or an fps change still pairs each output frame with the source's).
Result<Fidelity> Measure(const std::string& source, double start, double duration,
                         const std::string& excerpt);

}  // namespace lumen::video
