// One pass over a whole video for the library: probe, content hash, shots, key frames, poster
// frame and a temporal signature, reading and decoding the file once.
//
// Reading: the file goes through the probe's reader (probe.h), so it is hashed while libavformat
// reads it; bytes it read out of order (a `moov` at the end) are read a second time by the hash
// (`probe.second_read_bytes`). The file is never held in memory: what stays is a few decoded
// frames, one small image per frame in a short window, and at most 2 x `max_key_frames` images of
// `frame_side` pixels.
//
// Decoding: every frame of the best video stream, with the loop filter skipped on non-key frames
// (key frames, where the poster comes from, are decoded in full quality), at a reduced size where
// the codec can (`min_short_side`); each frame is converted
// straight to a 64x36 RGB image for the detector (one field of an interlaced frame, so that a cut
// between fields is still one cut), and a few frames per second to `frame_side` for key frames.
//
// Shots: a cut is a frame whose difference from the previous one stands out from its
// neighbours' (an adaptive threshold, two frames either side) and is above an absolute floor; a
// frame that differs from both neighbours that resemble each other is a flash, not a cut; a run
// of black or flat frames (a fade through black or white) ends a shot and the first frame with
// content after it starts the next; a slow change of the colour distribution over a second with no
// cut in it (a dissolve) is a cut at its end. No shot is shorter than `min_shot_seconds`. Times are
// the frames' presentation times, so cuts are exact on variable-frame-rate video.
//
// Key frames: per shot, the sharpest frame with the widest tones among those sampled every
// `candidate_seconds` (black, flat and blurred frames lose; see poster.h), one more for every
// `sample_seconds` of a long shot; at most `max_key_frames`, the longest segments kept.
//
// Poster: the best of the first `poster_candidates` key frames (stream key frames) in the first
// `poster_seconds`; when none of them has content, the best sampled frame of that part.
//
// Signature: every `signature_seconds`, a 64-bit difference hash of the frame (9x8 luma) and its
// mean colour, with black and flat frames marked, over the whole duration: what video duplicates
// are matched (the hashes) and verified (the colours) on.
//
// Watchdog: the call stops after `base_seconds + seconds_per_second x duration` (at most
// `max_seconds`), so a hostile or damaged file cannot hold a worker for long, while a long video
// gets the time it needs. Corrupt packets and frames are counted (`damaged`) and skipped.
//
// Errors name the file: those of Probe (probe.h), TooLarge (dimensions above `max_pixels`, or the
// time limit), Corrupt when no frame decodes, Changed when the file changed while it was read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lumen/image/image.h"
#include "lumen/util/status.h"
#include "lumen/video/probe.h"

namespace lumen::video {

struct AnalyzeOptions {
  uint64_t max_file_bytes = 64ull << 30;
  uint64_t max_pixels = 8192ull * 8192;  // coded width x height
  int threads = 1;                       // decoder threads for this file
  int frame_side = 512;                  // key frames' and the poster's long edge at most
  // Codecs that can decode at a reduced size (MPEG-4 part 2, MJPEG, ...) do, as long as the
  // frames' short side stays at least this (what the thumbnail and the encoder need).
  int min_short_side = 256;
  int max_key_frames = 32;
  double candidate_seconds = 0.5;  // frames looked at per shot, one per this many seconds
  double sample_seconds = 6;       // a shot longer than this gives one key frame per part
  double min_shot_seconds = 0.6;
  double poster_seconds = 30;
  int poster_candidates = 12;
  double signature_seconds = 0.5;
  double base_seconds = 60, seconds_per_second = 3, max_seconds = 4 * 3600.0;
};

struct Shot {
  double start = 0, end = 0;  // seconds from the start of the stream
};

struct KeyFrame {
  double time = 0;
  int shot = 0;         // index into VideoAnalysis::shots
  Image rgb;            // upright, 8-bit RGB, `frame_side` long edge at most, square pixels
  bool content = true;  // false: black, flat or blurred (the best its segment had)
};

struct SignatureSample {
  float time = 0;
  uint64_t dhash = 0;
  uint8_t rgb[3] = {0, 0, 0};  // the frame's mean colour: a second, independent signal
  bool masked = false;         // black or flat: carries no identity
};

struct VideoAnalysis {
  VideoProbe probe;  // with content_hash
  std::vector<Shot> shots;
  std::vector<KeyFrame> key_frames;  // in time order
  Image poster;
  double poster_time = 0;
  bool poster_content = true;
  std::vector<SignatureSample> signature;
  int64_t frames = 0;   // decoded
  int64_t damaged = 0;  // packets that failed to decode and frames flagged corrupt
  bool interlaced = false;
  double time_limit = 0;  // the watchdog's limit for this file, seconds
};

Result<VideoAnalysis> Analyze(const std::string& path, const AnalyzeOptions& options = {});

}  // namespace lumen::video
