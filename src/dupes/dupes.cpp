#include "lumen/dupes/dupes.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lumen/util/blas.h"

namespace lumen::dupes {

namespace {

// The hash split into `count` blocks of (nearly) equal width; block b covers bits
// [shift[b], shift[b] + width[b]).
struct Blocks {
  int count;
  int shift[16] = {}, width[16] = {};
  explicit Blocks(int m) : count(m) {
    int at = 0;
    for (int b = 0; b < m; ++b) {
      width[b] = 64 / m + (b < 64 % m ? 1 : 0);
      shift[b] = at;
      at += width[b];
    }
  }
  uint32_t Get(uint64_t h, int b) const {
    return static_cast<uint32_t>((h >> shift[b]) & ((1ull << width[b]) - 1));
  }
};

// All `width`-bit values within `radius` bits of v (radius <= 1 here; 2 kept for safety).
void Neighbours(uint32_t v, int width, int radius, std::vector<uint32_t>* out) {
  out->clear();
  out->push_back(v);
  for (int i = 0; i < width && radius >= 1; ++i) {
    out->push_back(v ^ (1u << i));
    for (int j = i + 1; j < width && radius >= 2; ++j) out->push_back(v ^ (1u << i) ^ (1u << j));
  }
}

struct UnionFind {
  std::vector<uint32_t> parent;
  explicit UnionFind(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0u); }
  uint32_t Find(uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void Join(uint32_t a, uint32_t b) {
    a = Find(a), b = Find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
};

int FormatRank(const std::string& f) {
  // Lossless and high-bit-depth first, then modern lossy, then JPEG, then the rest.
  static const char* order[] = {"raw", "dng", "tiff", "png", "heic", "avif", "jxl", "jpeg", "webp"};
  for (int i = 0; i < 9; ++i)
    if (f == order[i]) return 9 - i;
  return 0;
}

// Chooses the member to keep and says why; `items` are candidates (indexes into all).
std::pair<size_t, std::string> ChooseKeep(const std::vector<Item>& all, std::vector<size_t> c,
                                          const Options& opt) {
  auto pixels = [&](size_t i) { return uint64_t(all[i].width) * uint64_t(all[i].height); };
  auto first_path = [&](size_t i) {
    return all[i].paths.empty() ? std::string() : KeeperPaths(all[i], opt, nullptr)[0];
  };
  std::sort(c.begin(), c.end(), [&](size_t a, size_t b) { return first_path(a) < first_path(b); });
  auto by = [&](auto better, std::string why) {
    size_t k = c[0];
    for (size_t i : c)
      if (better(i, k)) k = i;
    return std::make_pair(k, std::move(why));
  };
  switch (opt.keep) {
    case Keep::kOldest:
    case Keep::kNewest: {
      const bool oldest = opt.keep == Keep::kOldest;
      return by(
          [&](size_t i, size_t k) {
            if (!all[i].captured) return false;
            if (!all[k].captured) return true;
            return oldest ? *all[i].captured < *all[k].captured
                          : *all[i].captured > *all[k].captured;
          },
          oldest ? "oldest capture time" : "newest capture time");
    }
    case Keep::kLargest:
      return by([&](size_t i, size_t k) { return all[i].size > all[k].size; }, "largest file");
    case Keep::kSmallest:
      return by([&](size_t i, size_t k) { return all[i].size < all[k].size; }, "smallest file");
    case Keep::kPathPrefix:
      for (size_t i : c)
        for (const auto& p : all[i].paths)
          if (p.starts_with(opt.prefix)) return {i, fmt::format("under {}", opt.prefix)};
      break;
    case Keep::kBest:
      break;
  }
  // Best: most pixels, then clearly sharper (> 15% more Laplacian variance, when both are
  // known), then the better format, then more EXIF, then the larger file. Returns the criterion
  // on which `a` beats `b` (0: it does not).
  auto beats = [&](size_t a, size_t b) -> int {
    if (pixels(a) != pixels(b)) return pixels(a) > pixels(b) ? 1 : -1;
    if (all[a].sharpness && all[b].sharpness) {
      const double sa = *all[a].sharpness, sb = *all[b].sharpness;
      if (sa > sb * 1.15) return 2;
      if (sb > sa * 1.15) return -2;
    }
    if (FormatRank(all[a].format) != FormatRank(all[b].format))
      return FormatRank(all[a].format) > FormatRank(all[b].format) ? 3 : -3;
    if (all[a].exif_fields != all[b].exif_fields)
      return all[a].exif_fields > all[b].exif_fields ? 4 : -4;
    if (all[a].size != all[b].size) return all[a].size > all[b].size ? 5 : -5;
    return 0;
  };
  size_t k = c[0];
  for (size_t i : c)
    if (beats(i, k) > 0) k = i;
  std::vector<std::string> why;
  bool decided[6] = {};
  for (size_t i : c)
    if (i != k) decided[std::max(0, beats(k, i))] = true;
  if (decided[1])
    why.push_back(fmt::format("highest resolution ({}x{})", all[k].width, all[k].height));
  if (decided[2])
    why.push_back(fmt::format("sharpest (Laplacian variance {:.0f})", *all[k].sharpness));
  if (decided[3]) why.push_back(fmt::format("better format ({})", all[k].format));
  if (decided[4]) why.push_back("most complete EXIF");
  if (decided[5]) why.push_back("largest file");
  if (why.empty())
    why.push_back(opt.keep == Keep::kPathPrefix ? "no copy under the prefix; first path"
                                                : "equal; first path");
  return {k, fmt::format("{}", fmt::join(why, ", "))};
}

// "IMG_0001 copy.jpg", "IMG_0001 (2).jpg", "IMG_0001-1.jpg", "Kopie von IMG_0001.jpg": names that
// copies get.
bool LooksLikeCopy(const std::string& path) {
  std::string name = path.substr(path.rfind('/') + 1);
  name = name.substr(0, name.rfind('.'));
  for (char& c : name)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  if (name.find("copy") != std::string::npos || name.find("kopie") != std::string::npos ||
      name.find("copie") != std::string::npos)
    return true;
  const size_t n = name.size();
  if (n >= 3 && name[n - 1] == ')' && std::isdigit(static_cast<unsigned char>(name[n - 2])))
    return true;
  // A numbered name with one more number: "IMG_0001-1", "DSC01234_2" (not "IMG_1").
  return n >= 3 && std::isdigit(static_cast<unsigned char>(name[n - 1])) &&
         (name[n - 2] == ' ' || name[n - 2] == '-' || name[n - 2] == '_') &&
         std::isdigit(static_cast<unsigned char>(name[n - 3]));
}

}  // namespace

// An item's paths, the one most likely the original first: under the --keep-under prefix (when
// that is the strategy), then the oldest modification time (a copy is usually newer), then a
// name that does not look like a copy's, then the shallower path, then byte order. `why`
// receives the deciding criterion.
std::vector<std::string> KeeperPaths(const Item& it, const Options& opt, std::string* why) {
  struct P {
    std::string path;
    bool under;
    int64_t mtime;
    bool copy;
    size_t depth;
  };
  std::vector<P> ps;
  for (size_t i = 0; i < it.paths.size(); ++i) {
    const std::string& p = it.paths[i];
    ps.push_back({p, opt.keep == Keep::kPathPrefix && p.starts_with(opt.prefix),
                  i < it.mtimes.size() ? it.mtimes[i] : 0, LooksLikeCopy(p),
                  size_t(std::count(p.begin(), p.end(), '/'))});
  }
  auto key = [](const P& p) { return std::make_tuple(!p.under, p.mtime, p.copy, p.depth); };
  std::stable_sort(ps.begin(), ps.end(), [&](const P& a, const P& b) {
    return key(a) != key(b) ? key(a) < key(b) : a.path < b.path;
  });
  if (why && ps.size() > 1) {
    const P &a = ps[0], &b = ps[1];
    *why = a.under != b.under   ? fmt::format("under {}", opt.prefix)
           : a.mtime != b.mtime ? "same content; the oldest file"
           : a.copy != b.copy   ? "same content; the others' names look like copies"
           : a.depth != b.depth ? "same content; the shallowest path"
                                : "same content; first path";
  }
  std::vector<std::string> out;
  for (auto& p : ps) out.push_back(std::move(p.path));
  return out;
}

std::vector<Pair> NearPairs(const std::vector<uint64_t>& hashes, int max_distance) {
  std::vector<Pair> out;
  const size_t n = hashes.size();
  if (n < 2 || max_distance < 0) return out;
  max_distance = std::min(max_distance, 15);
  // Pigeonhole: with m blocks, a pair within d bits is within floor(d/m) bits on some block.
  // m = max(4, d/2 + 1) keeps that radius at 0 or 1 (few probes) and blocks of 8-16 bits.
  const Blocks blocks(std::max(4, max_distance / 2 + 1));
  const int radius = max_distance / blocks.count;
  // Per block: items bucketed by that block's bits (counting sort: offsets + items).
  std::vector<std::vector<uint32_t>> offsets(size_t(blocks.count)), items(size_t(blocks.count));
  for (int b = 0; b < blocks.count; ++b) {
    auto& off = offsets[size_t(b)];
    const size_t buckets = size_t(1) << blocks.width[b];
    off.assign(buckets + 1, 0);
    for (uint64_t h : hashes) ++off[blocks.Get(h, b) + 1];
    for (size_t v = 0; v < buckets; ++v) off[v + 1] += off[v];
    auto fill = off;
    items[size_t(b)].resize(n);
    for (size_t i = 0; i < n; ++i)
      items[size_t(b)][fill[blocks.Get(hashes[i], b)]++] = static_cast<uint32_t>(i);
  }
  std::vector<uint32_t> probe;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t h = hashes[i];
    for (int b = 0; b < blocks.count; ++b) {
      Neighbours(blocks.Get(h, b), blocks.width[b], radius, &probe);
      const auto& off = offsets[size_t(b)];
      const auto& its = items[size_t(b)];
      for (uint32_t v : probe) {
        for (uint32_t at = off[v]; at < off[v + 1]; ++at) {
          const uint32_t j = its[at];
          if (j <= i) continue;
          const int d = std::popcount(h ^ hashes[j]);
          if (d > max_distance) continue;
          // Report a pair once: from the first block on which the pigeonhole condition holds.
          int first = 0;
          while (std::popcount(blocks.Get(h, first) ^ blocks.Get(hashes[j], first)) > radius)
            ++first;
          if (first == b) out.push_back({static_cast<uint32_t>(i), j, d});
        }
      }
    }
  }
  return out;
}

std::vector<uint32_t> NearGroups(const std::vector<uint64_t>& hashes, int max_distance) {
  UnionFind uf(hashes.size());
  std::unordered_map<uint64_t, uint32_t> first_of;
  std::vector<uint64_t> distinct;
  std::vector<uint32_t> rep;  // distinct hash -> its first index
  for (size_t i = 0; i < hashes.size(); ++i) {
    auto [at, fresh] = first_of.emplace(hashes[i], uint32_t(i));
    if (fresh) {
      distinct.push_back(hashes[i]);
      rep.push_back(uint32_t(i));
    } else {
      uf.Join(at->second, uint32_t(i));
    }
  }
  for (const Pair& p : NearPairs(distinct, max_distance)) uf.Join(rep[p.a], rep[p.b]);
  std::vector<uint32_t> out(hashes.size());
  for (size_t i = 0; i < hashes.size(); ++i) out[i] = uf.Find(uint32_t(i));  // roots are lowest
  return out;
}

std::vector<SimilarPair> SimilarPairs(const float* v, size_t n, int dim, float min_cosine) {
  std::vector<SimilarPair> out;
  constexpr size_t kBlock = 1024;
  std::vector<float> c(kBlock * kBlock);
  for (size_t i0 = 0; i0 < n; i0 += kBlock) {
    const size_t bi = std::min(kBlock, n - i0);
    for (size_t j0 = i0; j0 < n; j0 += kBlock) {
      const size_t bj = std::min(kBlock, n - j0);
      MultiplyTransposed(int(bi), int(bj), dim, v + i0 * size_t(dim), dim, v + j0 * size_t(dim),
                         dim, c.data(), int(bj));
      for (size_t i = 0; i < bi; ++i)
        for (size_t j = (i0 == j0 ? i + 1 : 0); j < bj; ++j)
          if (c[i * bj + j] >= min_cosine)
            out.push_back({uint32_t(i0 + i), uint32_t(j0 + j), c[i * bj + j]});
    }
  }
  return out;
}

std::optional<double> CaptureSeconds(const std::string& iso) {
  int y, mo, d, h, mi;
  double sec;
  if (std::sscanf(iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf", &y, &mo, &d, &h, &mi, &sec) != 6)
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61)
    return std::nullopt;
  // Days from a civil date (proleptic Gregorian), so month and year boundaries work.
  y -= mo <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const double days = double(era) * 146097 + doe;
  return days * 86400 + h * 3600 + mi * 60 + sec;
}

namespace {

// A group of several assets, one path each (the one its exact group keeps; its other paths are
// in that exact group): the keeper first, then the others with `why(other, keeper)`.
template <typename Why>
Group MakeGroup(const std::vector<Item>& items, const std::vector<size_t>& members,
                const Options& opt, const char* tier, Why why) {
  auto [keep, reason] = ChooseKeep(items, members, opt);
  Group g;
  g.tier = tier;
  g.keep_reason = reason;
  auto copies = [](size_t n) {
    return n > 1 ? fmt::format("; {} identical {} in an exact group", n - 1,
                               n == 2 ? "copy" : "copies")
                 : std::string();
  };
  const auto kept = KeeperPaths(items[keep], opt, nullptr);
  if (kept.empty()) return g;
  g.members.push_back({keep, kept[0], "kept" + copies(kept.size())});
  for (size_t i : members) {
    if (i == keep) continue;
    const auto paths = KeeperPaths(items[i], opt, nullptr);
    if (!paths.empty()) g.members.push_back({i, paths[0], why(i, keep) + copies(paths.size())});
  }
  return g;
}

// The sets of `uf` with two or more of `members`, each in the order of `members`.
std::vector<std::vector<size_t>> Components(UnionFind& uf, const std::vector<size_t>& members) {
  std::vector<std::vector<size_t>> by_root(uf.parent.size());
  for (size_t i : members) by_root[uf.Find(static_cast<uint32_t>(i))].push_back(i);
  std::erase_if(by_root, [](const std::vector<size_t>& c) { return c.size() < 2; });
  return by_root;
}
}  // namespace

std::vector<Group> FindGroups(const std::vector<Item>& items, const Options& opt) {
  std::vector<Group> groups;
  std::vector<bool> grouped(items.size(), false);
  // Near: connected components of close pHashes.
  // Videos are matched by their own tiers (video.h); here they have only the exact one.
  std::vector<uint64_t> ph;
  std::vector<size_t> all;
  for (size_t i = 0; i < items.size(); ++i)
    if (!items[i].video) ph.push_back(items[i].phash), all.push_back(i);
  UnionFind uf(items.size());
  for (const Pair& p : NearPairs(ph, opt.max_distance))
    uf.Join(static_cast<uint32_t>(all[p.a]), static_cast<uint32_t>(all[p.b]));
  for (const auto& c : Components(uf, all)) {
    groups.push_back(MakeGroup(items, c, opt, "near", [&](size_t i, size_t keep) {
      return fmt::format("pHash distance {} from the kept one",
                         std::popcount(items[i].phash ^ items[keep].phash));
    }));
    for (size_t i : c) grouped[i] = true;
  }
  // Burst: close in time and alike at a looser distance, among what no near group took.
  if (opt.burst_seconds > 0) {
    std::vector<std::pair<double, size_t>> timed;
    std::vector<double> when(items.size(), 0);
    for (size_t i = 0; i < items.size(); ++i)
      if (!grouped[i] && !items[i].video && items[i].captured)
        if (auto t = CaptureSeconds(*items[i].captured)) timed.emplace_back(when[i] = *t, i);
    std::sort(timed.begin(), timed.end());
    UnionFind burst(items.size());
    for (size_t a = 0; a < timed.size(); ++a)
      for (size_t b = a + 1;
           b < timed.size() && timed[b].first - timed[a].first <= opt.burst_seconds; ++b) {
        const size_t i = timed[a].second, j = timed[b].second;
        if (std::popcount(items[i].phash ^ items[j].phash) <= opt.burst_distance)
          burst.Join(static_cast<uint32_t>(i), static_cast<uint32_t>(j));
      }
    std::vector<size_t> in_time_order;
    for (const auto& [t, i] : timed) in_time_order.push_back(i);
    for (const auto& c : Components(burst, in_time_order)) {
      groups.push_back(MakeGroup(items, c, opt, "burst", [&](size_t i, size_t keep) {
        return fmt::format("taken {:.1f} s apart, pHash distance {}",
                           std::abs(when[i] - when[keep]),
                           std::popcount(items[i].phash ^ items[keep].phash));
      }));
      for (size_t i : c) grouped[i] = true;
    }
  }
  // Semantic: alike by embedding, among what no other tier took.
  if (!opt.semantic.empty()) {
    UnionFind sem(items.size());
    std::vector<size_t> members;
    for (const SimilarPair& p : opt.semantic) {
      if (p.cosine < opt.min_cosine || p.a >= items.size() || p.b >= items.size() || grouped[p.a] ||
          grouped[p.b] || items[p.a].video || items[p.b].video)
        continue;
      sem.Join(p.a, p.b);
      members.push_back(p.a);
      members.push_back(p.b);
    }
    std::sort(members.begin(), members.end());
    members.erase(std::unique(members.begin(), members.end()), members.end());
    std::unordered_map<uint64_t, float> cosine;
    for (const SimilarPair& p : opt.semantic)
      cosine[(uint64_t(std::min(p.a, p.b)) << 32) | std::max(p.a, p.b)] = p.cosine;
    for (const auto& c : Components(sem, members)) {
      groups.push_back(MakeGroup(items, c, opt, "semantic", [&](size_t i, size_t keep) {
        auto it = cosine.find((uint64_t(std::min(i, keep)) << 32) | std::max(i, keep));
        return it != cosine.end()
                   ? fmt::format("embedding cosine {:.3f} with the kept one", it->second)
                   : std::string("alike by embedding (through another member of the group)");
      }));
      for (size_t i : c) grouped[i] = true;
    }
  }
  // Exact: one asset at several paths, whether or not it is also near another asset (a near
  // group lists one of its paths, the one kept here), so that every byte-identical set is here.
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].paths.size() < 2) continue;
    std::string why;
    const auto paths = KeeperPaths(items[i], opt, &why);
    Group g;
    g.tier = "exact";
    g.keep_reason = why;
    for (size_t p = 0; p < paths.size(); ++p)
      g.members.push_back({i, paths[p], p == 0 ? "kept" : "same content"});
    groups.push_back(std::move(g));
  }
  std::stable_sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) {
    return a.members.size() > b.members.size();
  });
  return groups;
}

}  // namespace lumen::dupes
