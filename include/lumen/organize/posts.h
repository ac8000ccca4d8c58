// Grouping photos into social-media posts (`lumen posts`): what the Instagram organizer this
// replaces does, from what the catalog already knows.
//
//   1. Photos in capture order; a new post starts at a time gap (`gap_hours`), a change of place
//      (GPS, `max_km` from the post's first located photo), or, where embeddings exist, a photo
//      that looks unlike the post so far (cosine to its mean below `min_cosine`) after a pause
//      of `scene_pause_minutes` (so one odd frame in a burst does not split an event).
//   2. Within a post: near-duplicates (pHash within `near_distance` bits, dupes.h) keep their
//      sharpest frame; very blurred frames (sharpness under `blur_ratio` of the post's median,
//      or under `min_sharpness`) and nearly black ones (`max_dark_luma`) are dropped, each with
//      its reason.
//   3. The kept photos ordered by their social score (describe --social: technical + appeal +
//      engagement) where present, else by sharpness; at most `max_per_post` are chosen, the
//      rest listed as left over.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lumen::organize {

struct PostPhoto {
  int64_t asset = 0;
  std::string path;
  std::optional<double> seconds;  // capture time (dupes::CaptureSeconds), else none
  std::string captured;           // ISO text, for names ("" when unknown)
  std::optional<double> lat, lon;
  uint64_t phash = 0;
  bool has_phash = false;
  std::optional<double> sharpness;
  std::optional<double> luma;    // mean luma 0..255 (from the thumbnail)
  std::optional<double> social;  // technical + appeal + engagement (3..30)
  std::vector<float> embedding;  // L2-normalised, may be empty
};

struct PostOptions {
  double gap_hours = 4;
  double max_km = 30;
  float min_cosine = 0.35f;
  double scene_pause_minutes = 20;
  int near_distance = 6;
  double blur_ratio = 0.25;
  double min_sharpness = 20;
  double max_dark_luma = 12;
  int max_per_post = 10;
};

struct PostMember {
  size_t photo;        // index into the input
  std::string reason;  // chosen: why it ranks where it does; dropped: why it was dropped
};

struct Post {
  std::vector<PostMember> chosen;    // in posting order
  std::vector<PostMember> dropped;   // duplicates, blurred, dark
  std::vector<PostMember> leftover;  // kept but over max_per_post
  std::string start, end;            // capture times of the first and last photo ("" unknown)
};

// Posts in capture order (photos without a capture time come last, in path order, as one post).
std::vector<Post> GroupPosts(const std::vector<PostPhoto>& photos, const PostOptions& opt);

// Great-circle distance in km.
double HaversineKm(double lat1, double lon1, double lat2, double lon2);

}  // namespace lumen::organize
