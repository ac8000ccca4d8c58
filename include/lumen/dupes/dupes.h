// Duplicate groups over the catalog's assets, and the "keep best" choice in each group.
//
// Tiers (each match carries its reason):
//   exact    - one asset (same content hash) at several paths;
//   near     - different assets whose 64-bit pHashes differ in at most `max_distance` bits
//              (re-encoded, resized, lightly edited copies). Pairs are found by multi-index
//              hashing (m = max(4, d/2+1) blocks of 8-16 bits; pigeonhole: a pair within d bits
//              is within floor(d/m) <= 1 bits on at least one block, so each item probes a few
//              buckets per block), never by comparing all pairs; groups are the connected
//              components of those pairs.
//   semantic - different photos of the same scene: image embeddings (SigLIP/CLIP) with cosine
//              similarity >= `min_cosine`, among what the other tiers left; pairs come from
//              SimilarPairs() (exact, blocked GEMM) or from an ANN index for large libraries.
//   burst    - photos taken within `burst_seconds` of each other (EXIF capture time) that look
//              alike at a looser distance (`burst_distance`): a burst or bracketed series, of
//              which one is usually enough.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lumen::dupes {

struct Item {
  int64_t asset = 0;
  uint64_t phash = 0, dhash = 0;
  int width = 0, height = 0;
  uint64_t size = 0;
  std::string format;                   // "jpeg", "png", ...
  std::optional<std::string> captured;  // ISO 8601, from EXIF
  int exif_fields = 0;                  // how many metadata fields are present
  std::optional<double> sharpness;      // variance of the Laplacian (image/derive.h)
  std::vector<std::string> paths;       // current locations, sorted
  std::vector<int64_t> mtimes;          // their modification times (ns), if known
  bool video = false;  // a video: in the exact tier here, its other tiers are video.h's
};

// Every pair (i < j) of `hashes` within `max_distance` bits (0..15), with its distance.
struct Pair {
  uint32_t a, b;
  int distance;
};
std::vector<Pair> NearPairs(const std::vector<uint64_t>& hashes, int max_distance);

// The connected groups of NearPairs: for each hash, the lowest index of its group (itself when
// it has no near-duplicate). Equal hashes are joined without pairing them, so ten thousand
// identical frames cost ten thousand steps, not fifty million pairs.
std::vector<uint32_t> NearGroups(const std::vector<uint64_t>& hashes, int max_distance);

// Every pair (i < j) of the n L2-normalised rows of `vectors` (n x dim) whose dot product is at
// least `min_cosine`: exact, by blocked sgemm (O(n^2 dim); ~1 s for 10,000 x 768 here).
struct SimilarPair {
  uint32_t a, b;
  float cosine;
};
std::vector<SimilarPair> SimilarPairs(const float* vectors, size_t n, int dim, float min_cosine);

enum class Keep { kBest, kOldest, kNewest, kLargest, kSmallest, kPathPrefix };

struct Options {
  int max_distance = 6;        // pHash bits
  double burst_seconds = 2.0;  // 0: no burst tier
  int burst_distance = 16;
  float min_cosine = 0.95f;           // semantic tier
  std::vector<SimilarPair> semantic;  // candidate pairs (indexes into the items); empty: no tier
  Keep keep = Keep::kBest;
  std::string prefix;  // Keep::kPathPrefix
};

struct Member {
  size_t item;         // index into the items
  std::string path;    // one file
  std::string reason;  // why it is in the group: "same content", "pHash distance 3"
};

struct Group {
  std::string tier;             // "exact", "near", "burst" or "semantic"
  std::vector<Member> members;  // members[0] is the one to keep
  std::string keep_reason;
};

// Seconds since an arbitrary epoch from "YYYY-MM-DDTHH:MM:SS[.fff][+HH:MM]" (the offset is
// ignored: a burst is one camera's clock), nullopt if it does not parse.
std::optional<double> CaptureSeconds(const std::string& iso);

// Groups over `items`: an exact group for every asset at several paths (byte-identical files),
// and near/burst/semantic groups of several assets, in which each asset appears once, by the path
// its exact group keeps (so a file is never a duplicate in two groups, and the byte-identical
// copies of a near duplicate stay visible to `--tier exact` and `--hardlink`). Largest first.
std::vector<Group> FindGroups(const std::vector<Item>& items, const Options& opt);

// An item's paths, the one most likely the original first: under the --keep-under prefix (when
// that is the strategy), then the oldest modification time, then a name that does not look like a
// copy's, then the shallower path. `why` (optional) receives the deciding criterion.
std::vector<std::string> KeeperPaths(const Item& it, const Options& opt, std::string* why);

}  // namespace lumen::dupes
