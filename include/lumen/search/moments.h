// Video moments in a ranking: a video is ranked by its best key frame (or by its pooled embedding,
// when that is higher) and names that frame's time, so a hit in an hour of video opens where the
// match is. Shared by `lumen search` and `lumen serve`.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lumen/search/flat_index.h"

namespace lumen {

// Every key frame embedding of one model: frames.ids() are 0, 1, ...; at[id] is (asset, seconds).
struct FrameIndex {
  explicit FrameIndex(int dim) : frames(dim) {}
  FlatIndex frames;
  std::vector<std::pair<int64_t, double>> at;
};

// `hits` (best first, from the assets' own embeddings) with every video's best frame merged in:
// a video's score is the higher of the two, videos only a frame found are added, the result is
// cut to `k`. `moment` receives each video hit's best time. Frames are scanned exactly (all of
// them), so the best videos are found however many frames they have.
std::vector<Hit> MergeMoments(std::vector<Hit> hits, const FrameIndex& frames, const float* q,
                              size_t k, const std::function<bool(int64_t)>& keep,
                              std::unordered_map<int64_t, double>* moment);

}  // namespace lumen
