// Exact nearest neighbours by cosine similarity over L2-normalised vectors (so a dot product).
// The brute-force baseline that an ANN index re-ranks against; fast enough on its own up to a few
// hundred thousand vectors (one pass over n x dim floats).
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

namespace lumen {

struct Hit {
  int64_t id = 0;
  float cosine = 0;
};

class FlatIndex {
 public:
  explicit FlatIndex(int dim) : dim_(dim) {}
  int dim() const { return dim_; }
  size_t size() const { return ids_.size(); }
  void Add(int64_t id, const float* v);
  // The k highest dot products with q, best first; `keep` (optional) filters ids.
  std::vector<Hit> Search(const float* q, size_t k,
                          const std::function<bool(int64_t)>& keep = {}) const;
  const float* Vector(int64_t id) const;  // nullptr if absent
  const std::vector<int64_t>& ids() const { return ids_; }
  const float* data() const { return data_.data(); }  // size() x dim(), in ids() order

 private:
  int dim_;
  std::vector<int64_t> ids_;
  std::unordered_map<int64_t, size_t> pos_;
  std::vector<float> data_;
};

}  // namespace lumen
