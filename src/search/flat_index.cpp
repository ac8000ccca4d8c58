#include "lumen/search/flat_index.h"

#include <algorithm>

namespace lumen {

void FlatIndex::Add(int64_t id, const float* v) {
  pos_[id] = ids_.size();
  ids_.push_back(id);
  data_.insert(data_.end(), v, v + dim_);
}

const float* FlatIndex::Vector(int64_t id) const {
  auto it = pos_.find(id);
  return it == pos_.end() ? nullptr : data_.data() + it->second * dim_;
}

std::vector<Hit> FlatIndex::Search(const float* q, size_t k,
                                   const std::function<bool(int64_t)>& keep) const {
  std::vector<Hit> hits;
  hits.reserve(ids_.size());
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (keep && !keep(ids_[i])) continue;
    const float* v = data_.data() + i * dim_;
    float dot = 0;
    for (int d = 0; d < dim_; ++d) dot += q[d] * v[d];
    hits.push_back({ids_[i], dot});
  }
  auto better = [](const Hit& a, const Hit& b) {
    return a.cosine > b.cosine || (a.cosine == b.cosine && a.id < b.id);
  };
  if (hits.size() > k) {
    std::partial_sort(hits.begin(), hits.begin() + static_cast<long>(k), hits.end(), better);
    hits.resize(k);
  } else {
    std::sort(hits.begin(), hits.end(), better);
  }
  return hits;
}

}  // namespace lumen
