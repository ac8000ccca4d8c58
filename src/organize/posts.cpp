#include "lumen/organize/posts.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string_view>

#include <fmt/format.h>

#include "lumen/dupes/dupes.h"

namespace lumen::organize {
namespace {

// The cosine of `v` to the mean of the post's embeddings so far (sum kept unnormalised).
float CosineToMean(const std::vector<float>& v, const std::vector<double>& sum) {
  double dot = 0, norm = 0;
  for (size_t i = 0; i < v.size() && i < sum.size(); ++i) {
    dot += double(v[i]) * sum[i];
    norm += sum[i] * sum[i];
  }
  return norm > 0 ? float(dot / std::sqrt(norm)) : 1.0f;
}

// Splits one post's photos into chosen / dropped / leftover.
Post Curate(const std::vector<PostPhoto>& photos, std::vector<size_t> members,
            const PostOptions& opt) {
  Post post;
  std::vector<bool> gone(members.size(), false);
  auto drop = [&](size_t i, std::string why) {
    if (gone[i]) return;
    gone[i] = true;
    post.dropped.push_back({members[i], std::move(why)});
  };
  // Dark and blurred frames first: they should not win a duplicate group.
  std::vector<double> sharp;
  for (size_t m : members)
    if (photos[m].sharpness) sharp.push_back(*photos[m].sharpness);
  double median = 0;
  if (!sharp.empty()) {
    std::nth_element(sharp.begin(), sharp.begin() + long(sharp.size() / 2), sharp.end());
    median = sharp[sharp.size() / 2];
  }
  for (size_t i = 0; i < members.size(); ++i) {
    const PostPhoto& p = photos[members[i]];
    if (p.luma && *p.luma <= opt.max_dark_luma) {
      drop(i, fmt::format("nearly black (mean luma {:.0f})", *p.luma));
    } else if (p.sharpness && (*p.sharpness < opt.min_sharpness ||
                               (members.size() > 2 && *p.sharpness < opt.blur_ratio * median))) {
      drop(i, fmt::format("blurred (sharpness {:.0f}, post median {:.0f})", *p.sharpness, median));
    }
  }
  // Near-duplicates: of each connected group, the sharpest stays.
  std::vector<uint64_t> hashes;
  std::vector<size_t> hashed;  // index into members
  for (size_t i = 0; i < members.size(); ++i)
    if (!gone[i] && photos[members[i]].has_phash) {
      hashes.push_back(photos[members[i]].phash);
      hashed.push_back(i);
    }
  const std::vector<uint32_t> group =
      dupes::NearGroups(hashes, std::clamp(opt.near_distance, 0, 15));
  auto find = [&](size_t h) { return size_t(group[h]); };
  auto sharpness = [&](size_t i) { return photos[members[i]].sharpness.value_or(0.0); };
  std::vector<size_t> best(hashed.size(), SIZE_MAX);  // root -> best index into hashed
  for (size_t h = 0; h < hashed.size(); ++h) {
    size_t& b = best[find(h)];
    if (b == SIZE_MAX || sharpness(hashed[h]) > sharpness(hashed[b])) b = h;
  }
  for (size_t h = 0; h < hashed.size(); ++h) {
    const size_t b = best[find(h)];
    if (b != h)
      drop(hashed[h],
           fmt::format("near-duplicate of {} (sharper)", photos[members[hashed[b]]].path));
  }
  // Rank what is left.
  std::vector<size_t> kept;
  for (size_t i = 0; i < members.size(); ++i)
    if (!gone[i]) kept.push_back(i);
  std::stable_sort(kept.begin(), kept.end(), [&](size_t a, size_t b) {
    const PostPhoto &pa = photos[members[a]], &pb = photos[members[b]];
    if (pa.social.value_or(-1) != pb.social.value_or(-1))
      return pa.social.value_or(-1) > pb.social.value_or(-1);
    return pa.sharpness.value_or(0) > pb.sharpness.value_or(0);
  });
  for (size_t k = 0; k < kept.size(); ++k) {
    const PostPhoto& p = photos[members[kept[k]]];
    std::string why = p.social ? fmt::format("social score {:.0f}", *p.social)
                               : fmt::format("sharpness {:.0f}", p.sharpness.value_or(0));
    (int(k) < std::max(1, opt.max_per_post) ? post.chosen : post.leftover)
        .push_back({members[kept[k]], std::move(why)});
  }
  return post;
}

}  // namespace

double HaversineKm(double lat1, double lon1, double lat2, double lon2) {
  constexpr double kRad = M_PI / 180, kEarthKm = 6371.0;
  const double dlat = (lat2 - lat1) * kRad, dlon = (lon2 - lon1) * kRad;
  const double a =
      std::sin(dlat / 2) * std::sin(dlat / 2) +
      std::cos(lat1 * kRad) * std::cos(lat2 * kRad) * std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kEarthKm * std::asin(std::min(1.0, std::sqrt(a)));
}

std::vector<Post> GroupPosts(const std::vector<PostPhoto>& photos, const PostOptions& opt) {
  std::vector<size_t> timed, untimed;
  for (size_t i = 0; i < photos.size(); ++i) (photos[i].seconds ? timed : untimed).push_back(i);
  std::stable_sort(timed.begin(), timed.end(), [&](size_t a, size_t b) {
    if (*photos[a].seconds != *photos[b].seconds) return *photos[a].seconds < *photos[b].seconds;
    return photos[a].path < photos[b].path;
  });
  auto folder = [&](size_t i) {
    const std::string& p = photos[i].path;
    const size_t slash = p.rfind('/');
    return std::string_view(p).substr(0, slash == std::string::npos ? 0 : slash);
  };
  std::stable_sort(untimed.begin(), untimed.end(), [&](size_t a, size_t b) {
    const auto fa = folder(a), fb = folder(b);
    return fa != fb ? fa < fb : photos[a].path < photos[b].path;
  });
  std::vector<std::vector<size_t>> groups;
  std::vector<double> sum;  // the current post's embedding sum
  bool placed = false;      // the post's first located photo: (plat, plon)
  double plat = 0, plon = 0;
  double last = 0;
  for (size_t i : timed) {
    const PostPhoto& p = photos[i];
    bool split = groups.empty();
    if (!split) {
      const double gap = *p.seconds - last;
      split = gap > opt.gap_hours * 3600;
      if (!split && placed && p.lat && p.lon)
        split = HaversineKm(plat, plon, *p.lat, *p.lon) > opt.max_km;
      if (!split && !p.embedding.empty() && !sum.empty() && gap > opt.scene_pause_minutes * 60)
        split = CosineToMean(p.embedding, sum) < opt.min_cosine;
    }
    if (split) {
      groups.emplace_back();
      sum.assign(p.embedding.size(), 0.0);
      placed = false;
    }
    groups.back().push_back(i);
    if (!placed && p.lat && p.lon) placed = true, plat = *p.lat, plon = *p.lon;
    if (sum.empty()) sum.assign(p.embedding.size(), 0.0);  // the post's first embedding
    if (p.embedding.size() == sum.size())
      for (size_t k = 0; k < sum.size(); ++k) sum[k] += p.embedding[k];
    last = *p.seconds;
  }
  // Undated photos (no capture time anywhere): one post per folder, the nearest thing to an
  // event they have (sorted by folder, so a folder's photos are consecutive).
  for (size_t k = 0; k < untimed.size(); ++k) {
    if (k == 0 || folder(untimed[k]) != folder(untimed[k - 1])) groups.emplace_back();
    groups.back().push_back(untimed[k]);
  }
  std::vector<Post> posts;
  for (auto& g : groups) {
    Post post = Curate(photos, g, opt);
    post.start = photos[g.front()].captured;
    post.end = photos[g.back()].captured;
    posts.push_back(std::move(post));
  }
  return posts;
}

}  // namespace lumen::organize
