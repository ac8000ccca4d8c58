// Approximate nearest neighbours (hnswlib HNSW, inner product) over one model's embeddings,
// persisted beside the catalog and kept in step with it.
//
// Sync() opens the saved index (or starts one) and reconciles it with the catalog's current
// embeddings: ids it lacks are added, ids no longer present are marked deleted, and the result is
// saved atomically (temporary file + rename) with the list of live ids beside it. Search() takes
// `oversample` x k candidates from the graph and re-ranks them exactly with the stored vectors;
// when a filter leaves fewer than k candidates it falls back to the exact scan.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lumen/search/flat_index.h"
#include "lumen/util/status.h"

namespace lumen {

class AnnIndex {
 public:
  static Result<std::unique_ptr<AnnIndex>> Sync(const std::string& path, const FlatIndex& flat);
  ~AnnIndex();

  std::vector<Hit> Search(const FlatIndex& flat, const float* q, size_t k,
                          const std::function<bool(int64_t)>& keep = {},
                          size_t oversample = 4) const;
  size_t added() const { return added_; }
  size_t removed() const { return removed_; }

  struct Impl;

 private:
  AnnIndex() = default;
  std::unique_ptr<Impl> impl_;
  size_t added_ = 0, removed_ = 0;
};

// Exact below `ann_min` vectors ($LUMEN_ANN_MIN, default 20000), approximate + re-rank above.
size_t AnnThreshold();

}  // namespace lumen
