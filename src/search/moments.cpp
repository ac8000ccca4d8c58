#include "lumen/search/moments.h"

#include <algorithm>
#include <unordered_set>

namespace lumen {

std::vector<Hit> MergeMoments(std::vector<Hit> hits, const FrameIndex& f, const float* q, size_t k,
                              const std::function<bool(int64_t)>& keep,
                              std::unordered_map<int64_t, double>* moment) {
  if (f.frames.size() == 0) return hits;
  std::unordered_map<int64_t, Hit> best;
  const auto frame_keep = [&](int64_t id) { return !keep || keep(f.at[size_t(id)].first); };
  for (const Hit& h : f.frames.Search(q, f.frames.size(), frame_keep)) {
    const auto [asset, t] = f.at[size_t(h.id)];
    auto [it, added] = best.emplace(asset, Hit{asset, h.cosine});
    if (added || h.cosine > it->second.cosine) {
      it->second.cosine = h.cosine;
      (*moment)[asset] = t;
    }
  }
  for (Hit& h : hits)
    if (auto it = best.find(h.id); it != best.end()) {
      h.cosine = std::max(h.cosine, it->second.cosine);
      best.erase(it);
    }
  for (const auto& [asset, h] : best) hits.push_back(h);
  // Ties in a stable order (the map's order is not): by score, then id.
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return a.cosine != b.cosine ? a.cosine > b.cosine : a.id < b.id;
  });
  if (hits.size() > k) hits.resize(k);
  std::unordered_set<int64_t> kept;
  for (const Hit& h : hits) kept.insert(h.id);
  for (auto it = moment->begin(); it != moment->end();)
    it = kept.count(it->first) ? std::next(it) : moment->erase(it);
  return hits;
}

}  // namespace lumen
