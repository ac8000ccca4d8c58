#include "lumen/dupes/video.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <unordered_map>

#include <fmt/format.h>

namespace lumen::dupes {
namespace {

constexpr size_t kMaxBucket = 256;  // a block value shared by more videos carries no identity

int CodecRank(const std::string& c) {
  static const char* order[] = {"av1", "hevc", "vp9", "h264"};
  for (int i = 0; i < 4; ++i)
    if (c == order[i]) return 4 - i;
  return 0;
}

// The shared unmasked duration of a video, seconds (half a second per sample).
double ContentSeconds(const VideoItem& v) {
  size_t n = 0;
  for (const auto& s : v.signature) n += s.masked ? 0 : 1;
  return double(n) * 0.5;
}

struct Dsu {
  std::vector<size_t> p;
  explicit Dsu(size_t n) : p(n) { std::iota(p.begin(), p.end(), size_t(0)); }
  size_t Find(size_t x) {
    while (p[x] != x) x = p[x] = p[p[x]];
    return x;
  }
  void Join(size_t a, size_t b) { p[Find(a)] = Find(b); }
};

}  // namespace

VideoMatch MatchVideos(const VideoItem& a, const VideoItem& b, const VideoOptions& opt) {
  VideoMatch m;
  const auto& sa = a.signature;
  const auto& sb = b.signature;
  if (sa.empty() || sb.empty()) return m;
  // The offset: the most common (tb - ta) among samples whose hashes match, in quarter seconds.
  // Pairs of samples come from b's 16-bit hash blocks (not all pairs: two hours of video are
  // 14,400 samples a side); of a block value too common (a static scene), a spread sample votes.
  constexpr size_t kMaxVoters = 64;
  std::unordered_map<uint32_t, std::vector<uint32_t>> blocks;
  for (size_t j = 0; j < sb.size(); ++j)
    if (!sb[j].masked)
      for (uint32_t k = 0; k < 4; ++k)
        blocks[(k << 16) | uint32_t((sb[j].dhash >> (16 * k)) & 0xFFFF)].push_back(uint32_t(j));
  std::map<int, int> votes;
  std::vector<uint32_t> seen(sb.size(), UINT32_MAX);
  for (size_t i = 0; i < sa.size(); ++i) {
    const auto& x = sa[i];
    if (x.masked) continue;
    for (uint32_t k = 0; k < 4; ++k) {
      auto it = blocks.find((k << 16) | uint32_t((x.dhash >> (16 * k)) & 0xFFFF));
      if (it == blocks.end()) continue;
      const std::vector<uint32_t>& list = it->second;
      const size_t stride = (list.size() + kMaxVoters - 1) / kMaxVoters;
      for (size_t n = 0; n < list.size(); n += stride) {
        const uint32_t j = list[n];
        if (seen[j] == i) continue;
        seen[j] = uint32_t(i);
        if (std::popcount(x.dhash ^ sb[j].dhash) <= opt.max_distance)
          ++votes[int(std::lround((sb[j].time - x.time) * 4))];
      }
    }
  }
  if (votes.empty()) return m;
  int best = 0, best_votes = -1;
  for (const auto& [d, n] : votes) {
    int around = n;
    if (auto it = votes.find(d - 1); it != votes.end()) around += it->second;
    if (auto it = votes.find(d + 1); it != votes.end()) around += it->second;
    if (around > best_votes) best = d, best_votes = around;
  }
  m.offset = best / 4.0;
  // Aligned: each unmasked sample of a against b's samples around its time plus the offset (the
  // two sample grids are up to a quarter second apart, so next to a cut only one of b's two
  // neighbours is in the same shot). Mismatches next to each other mean different content.
  int matched = 0, run = 0;
  double color = 0, distance = 0;
  for (const auto& x : sa) {
    if (x.masked) continue;
    const double want = x.time + m.offset;
    auto it =
        std::lower_bound(sb.begin(), sb.end(), want,
                         [](const video::SignatureSample& s, double t) { return s.time < t; });
    const video::SignatureSample* best = nullptr;
    int best_d = 65;
    bool inside = false;
    for (auto c : {it, it == sb.begin() ? sb.end() : it - 1}) {
      if (c == sb.end() || std::abs(c->time - want) > 0.5 || c->masked) continue;
      inside = true;
      const int d = std::popcount(x.dhash ^ c->dhash);
      if (d < best_d) best_d = d, best = &*c;
    }
    if (!inside) continue;
    ++m.comparable;
    if (best_d > opt.max_distance) {
      m.mismatch_run = std::max(m.mismatch_run, ++run);
      continue;
    }
    run = 0;
    ++matched;
    distance += best_d;
    for (int c = 0; c < 3; ++c) color += std::abs(int(x.rgb[c]) - int(best->rgb[c]));
  }
  if (m.comparable == 0) return m;
  m.match = double(matched) / m.comparable;
  m.overlap = m.comparable * 0.5;
  m.color = matched ? color / (3.0 * matched) : 255;
  m.mean_distance = matched ? distance / matched : 64;
  const double shorter = std::min(ContentSeconds(a), ContentSeconds(b));
  m.duplicate = m.comparable >= 4 && m.match >= opt.min_match &&
                m.mismatch_run < opt.max_mismatch_run && m.overlap >= opt.min_overlap * shorter &&
                m.color <= opt.max_color;
  return m;
}

std::vector<Group> FindVideoGroups(const std::vector<VideoItem>& videos,
                                   const std::vector<Item>& items, const VideoOptions& opt) {
  const size_t n = videos.size();
  // Candidates: videos that share a 16-bit block of some sample's hash (a pair within 10 bits
  // shares one of the four blocks unless its differences spread over all of them; matching
  // samples are many, so a pair is found through some of them).
  std::unordered_map<uint64_t, std::vector<uint32_t>> buckets;
  for (size_t v = 0; v < n; ++v)
    for (const auto& s : videos[v].signature) {
      if (s.masked) continue;
      for (uint64_t blk = 0; blk < 4; ++blk) {
        auto& list = buckets[(blk << 16) | ((s.dhash >> (16 * blk)) & 0xFFFF)];
        if (list.empty() || list.back() != v) list.push_back(uint32_t(v));
      }
    }
  std::unordered_map<uint64_t, int> shared;
  for (const auto& [key, list] : buckets) {
    if (list.size() < 2 || list.size() > kMaxBucket) continue;
    for (size_t i = 0; i < list.size(); ++i)
      for (size_t j = i + 1; j < list.size(); ++j) ++shared[(uint64_t(list[i]) << 32) | list[j]];
  }
  struct Edge {
    size_t a, b;
    VideoMatch m;
  };
  std::vector<Edge> edges;
  for (const auto& [key, count] : shared) {
    if (count < 3) continue;
    size_t a = size_t(key >> 32), b = size_t(key & 0xFFFFFFFF);
    if (ContentSeconds(videos[b]) < ContentSeconds(videos[a])) std::swap(a, b);  // a: the shorter
    VideoMatch m = MatchVideos(videos[a], videos[b], opt);
    if (m.duplicate) edges.push_back({a, b, m});
  }
  Dsu dsu(n);
  for (const Edge& e : edges) dsu.Join(e.a, e.b);
  std::unordered_map<size_t, std::vector<size_t>> comps;
  for (size_t v = 0; v < n; ++v) comps[dsu.Find(v)].push_back(v);

  Options path_opt;
  path_opt.keep = opt.keep;
  path_opt.prefix = opt.prefix;
  auto first_path = [&](size_t v) {
    const auto p = KeeperPaths(items[videos[v].item], path_opt, nullptr);
    return p.empty() ? std::string() : p[0];
  };
  std::vector<Group> groups;
  for (auto& [root, c] : comps) {
    if (c.size() < 2) continue;
    std::sort(c.begin(), c.end(),
              [&](size_t x, size_t y) { return first_path(x) < first_path(y); });
    auto pixels = [&](size_t v) { return int64_t(videos[v].width) * videos[v].height; };
    auto bpp = [&](size_t v) {
      const double px = double(std::max<int64_t>(1, pixels(v))) * std::max(1.0, videos[v].fps);
      return double(videos[v].bit_rate) / px;
    };
    // Which of two is better, and on what (0: neither).
    auto beats = [&](size_t x, size_t y) -> int {
      if (pixels(x) != pixels(y)) return pixels(x) > pixels(y) ? 1 : -1;
      if (bpp(x) > bpp(y) * 1.1) return 2;
      if (bpp(y) > bpp(x) * 1.1) return -2;
      if (CodecRank(videos[x].codec) != CodecRank(videos[y].codec))
        return CodecRank(videos[x].codec) > CodecRank(videos[y].codec) ? 3 : -3;
      if (videos[x].audio != videos[y].audio) return videos[x].audio ? 4 : -4;
      if (std::abs(videos[x].duration - videos[y].duration) > 0.5)
        return videos[x].duration > videos[y].duration ? 5 : -5;
      return 0;
    };
    size_t keep = c[0];
    std::string reason;
    switch (opt.keep) {
      case Keep::kBest: {
        for (size_t v : c)
          if (beats(v, keep) > 0) keep = v;
        bool on[6] = {};
        for (size_t v : c)
          if (v != keep) on[std::max(0, beats(keep, v))] = true;
        std::vector<std::string> why;
        if (on[1])
          why.push_back(
              fmt::format("highest resolution ({}x{})", videos[keep].width, videos[keep].height));
        if (on[2]) why.push_back("most bits per pixel");
        if (on[3]) why.push_back(fmt::format("better codec ({})", videos[keep].codec));
        if (on[4]) why.push_back("has audio");
        if (on[5]) why.push_back("longest");
        reason = why.empty() ? "equal; first path" : fmt::format("{}", fmt::join(why, ", "));
        break;
      }
      case Keep::kLargest:
      case Keep::kSmallest:
        for (size_t v : c)
          if (opt.keep == Keep::kLargest
                  ? items[videos[v].item].size > items[videos[keep].item].size
                  : items[videos[v].item].size < items[videos[keep].item].size)
            keep = v;
        reason = opt.keep == Keep::kLargest ? "largest file" : "smallest file";
        break;
      case Keep::kOldest:
      case Keep::kNewest: {
        const bool oldest = opt.keep == Keep::kOldest;
        for (size_t v : c) {
          const auto& a = items[videos[v].item].captured;
          const auto& k = items[videos[keep].item].captured;
          if (a && (!k || (oldest ? *a < *k : *a > *k))) keep = v;
        }
        reason = oldest ? "oldest creation time" : "newest creation time";
        break;
      }
      case Keep::kPathPrefix:
        reason = "no copy under the prefix; first path";
        for (size_t v : c)
          if (first_path(v).starts_with(opt.prefix)) {
            keep = v;
            reason = fmt::format("under {}", opt.prefix);
            break;
          }
        break;
    }
    // Each member's relation to the kept one (or, where they were not compared, to its group).
    auto relation = [&](size_t v, std::string* tier) {
      const VideoItem& x = videos[v];
      const VideoItem& k = videos[keep];
      size_t a = x.duration <= k.duration ? v : keep, b = a == v ? keep : v;
      VideoMatch m = MatchVideos(videos[a], videos[b], opt);
      if (!m.duplicate) {
        *tier = "trim";
        for (const Edge& e : edges)
          if (e.a == v || e.b == v) m = e.m;
        return fmt::format("matches another copy in the group ({:.0f}% of {:.1f} s)", m.match * 100,
                           m.overlap);
      }
      const bool same_length = std::abs(x.duration - k.duration) <= 1.0;
      // A remux keeps the encoded stream: the same codec, size, duration and bitrate (within the
      // containers' overheads), and frames that hash alike.
      const double rate = double(std::max(x.bit_rate, k.bit_rate));
      if (same_length && x.codec == k.codec && x.width == k.width && x.height == k.height &&
          std::abs(x.duration - k.duration) < 0.1 && m.mean_distance <= 1.0 &&
          std::abs(m.offset) < 0.3 && rate > 0 &&
          std::abs(double(x.bit_rate - k.bit_rate)) <= 0.05 * rate) {
        *tier = "remux";
        return fmt::format("the same {} {}x{} streams in another file ({} against {})", x.codec,
                           x.width, x.height, items[x.item].format, items[k.item].format);
      }
      if (same_length) {
        *tier = "reencode";
        return fmt::format("re-encoded: {} {}x{} against {} {}x{}, {:.0f}% of {:.1f} s match",
                           x.codec, x.width, x.height, k.codec, k.width, k.height, m.match * 100,
                           m.overlap);
      }
      *tier = "trim";
      return fmt::format(
          "{}: {:.1f} s against {:.1f} s, {:.0f}% of the {:.1f} s shared match at "
          "{:+.1f} s",
          x.duration < k.duration ? "a trimmed copy" : "the kept one is trimmed", x.duration,
          k.duration, m.match * 100, m.overlap, a == v ? m.offset : -m.offset);
    };
    Group g;
    g.keep_reason = reason;
    g.members.push_back({videos[keep].item, first_path(keep), "kept"});
    int loosest = 0;  // remux < reencode < trim
    for (size_t v : c) {
      if (v == keep) continue;
      std::string tier;
      std::string why = relation(v, &tier);
      loosest = std::max(loosest, tier == "remux" ? 0 : tier == "reencode" ? 1 : 2);
      g.members.push_back({videos[v].item, first_path(v), std::move(why)});
    }
    g.tier = loosest == 0 ? "remux" : loosest == 1 ? "reencode" : "trim";
    groups.push_back(std::move(g));
  }
  std::stable_sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) {
    return a.members.size() != b.members.size() ? a.members.size() > b.members.size()
                                                : a.members[0].path < b.members[0].path;
  });
  return groups;
}

}  // namespace lumen::dupes
