// A video's poster frame: the picture that stands for it (its thumbnail, the image the encoder
// sees first). Searched among the key frames of the first part of the clip, decoded key frames
// only (no reference chain to decode), each converted straight to a small RGB image; black, flat
// (a fade, a title card's plain ground) and blurred frames lose to ones with content, and among
// those the sharpest with the widest tones wins. The stream's display rotation is applied. A clip
// under a second or with a single key frame gives that frame.
#pragma once

#include <string>

#include "lumen/image/image.h"
#include "lumen/util/status.h"

namespace lumen::video {

struct PosterOptions {
  int max_side = 512;          // the frame's long edge at most (never enlarged)
  double search_seconds = 30;  // key frames considered from the start (and at most ...)
  int max_candidates = 12;     // ... this many of them
  double max_seconds = 30;     // the whole call (0: none)
};

struct Poster {
  Image rgb;            // upright, 8-bit RGB
  double time = 0;      // seconds from the start of the stream
  int candidates = 0;   // key frames looked at
  bool content = true;  // false: every candidate was black, flat or blurred (the best of them)
};

// Errors as video::Probe's (probe.h), and Corrupt when no frame decodes at all.
Result<Poster> PosterFrame(const std::string& path, const PosterOptions& options = {});

}  // namespace lumen::video
