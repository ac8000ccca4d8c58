// Video duplicates: copies of one video that are not the same bytes.
//
// Tiers (each match carries its reason; byte-identical copies are the `exact` tier of dupes.h):
//   remux    - the same streams in another container: same codec, size and duration, and frame
//              signatures that agree almost bit for bit;
//   reencode - the same video re-encoded or resized (another codec, size or bitrate), over the
//              same duration (within a second);
//   trim     - one is a trimmed part of the other (a cut start or end, a sub-clip).
//
// Matching works on the temporal signature (video/analyze.h): a 64-bit dHash and the mean colour
// of a frame every half second, over the whole duration, with black and flat frames masked out.
// Candidate pairs come from the hashes' 16-bit blocks (pigeonhole, as for photos), never from all
// pairs; a pair's time offset is the mode of its matching samples' offsets, so trims and
// sub-clips align. A pair is a duplicate when, over the span the two share at that offset, at
// least `min_match` of the comparable samples match, no `max_mismatch_run` of them in a row
// differ (isolated misses are cuts between the sample grids), and that span covers `min_overlap`
// of the shorter video; it is then verified by the second signal, the samples' mean colours,
// before it is reported. A shared intro, outro or fade from black leaves a run of differing
// samples (or too little of the span), so it never makes a pair.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lumen/dupes/dupes.h"
#include "lumen/video/analyze.h"

namespace lumen::dupes {

struct VideoItem {
  size_t item = 0;  // index into the Item list: paths, size, format, times
  double duration = 0;
  int width = 0, height = 0;
  double fps = 0;
  int64_t bit_rate = 0;
  std::string codec;
  bool audio = false;
  std::vector<video::SignatureSample> signature;
};

struct VideoOptions {
  int max_distance = 12;     // dHash bits for two samples to match
  double min_match = 0.8;    // of the comparable samples over the shared span
  int max_mismatch_run = 2;  // this many mismatched samples in a row (1 s): other content
  double min_overlap = 0.6;  // of the shorter video's (unmasked) duration
  double max_color = 14;     // mean absolute difference of the matched samples' colours (0-255)
  Keep keep = Keep::kBest;
  std::string prefix;  // Keep::kPathPrefix
};

// The groups of videos that are copies of each other (largest first): members[0] is the one to
// keep (with Keep::kBest: the highest resolution, then bitrate per pixel, codec, audio, duration),
// each other member says how it matches it. Each video appears once, by its first path.
std::vector<Group> FindVideoGroups(const std::vector<VideoItem>& videos,
                                   const std::vector<Item>& items, const VideoOptions& opt);

// Exposed for tests: how `b` matches `a` (a is the shorter): the fraction of comparable samples
// that match, the seconds of overlap, the offset of b against a in seconds, the mean colour
// difference of the matched samples, and whether it passed.
struct VideoMatch {
  double match = 0, overlap = 0, offset = 0, color = 0, mean_distance = 0;
  int comparable = 0, mismatch_run = 0;
  bool duplicate = false;
};
VideoMatch MatchVideos(const VideoItem& a, const VideoItem& b, const VideoOptions& opt);

}  // namespace lumen::dupes
