#include "lumen/tags/scorer.h"

#include <algorithm>
#include <cmath>

#include "lumen/util/blas.h"

namespace lumen::tags {

void DropAncestors(const Vocabulary& vocab, std::vector<Tag>* tags) {
  std::vector<uint32_t> ancestors;
  for (const Tag& t : *tags)
    for (int32_t p = vocab.terms()[t.term].parent; p >= 0; p = vocab.terms()[size_t(p)].parent)
      ancestors.push_back(static_cast<uint32_t>(p));
  std::sort(ancestors.begin(), ancestors.end());
  std::erase_if(*tags, [&](const Tag& t) {
    return std::binary_search(ancestors.begin(), ancestors.end(), t.term);
  });
}

std::vector<std::vector<Tag>> ScoreImages(const float* images, size_t n, const LabelBank& bank,
                                          const Calibration& cal, const ScoreOptions& opt) {
  return ScoreRows(images, n, bank.dim(), bank.rows(), bank.terms(), bank.rows_done(), cal, opt);
}

std::vector<std::vector<Tag>> ScoreRows(const float* images, size_t n, int dim,
                                        const float* bank_rows, const uint32_t* terms, size_t count,
                                        const Calibration& cal, const ScoreOptions& opt) {
  const size_t rows = count;
  std::vector<std::vector<Tag>> out(n);
  if (n == 0 || rows == 0) return out;
  // C[n x rows] = images[n x dim] * bank[rows x dim]^T
  std::vector<float> c(n * rows);
  MultiplyTransposed(static_cast<int>(n), static_cast<int>(rows), dim, images, dim, bank_rows, dim,
                     c.data(), static_cast<int>(rows));
  // The confidence threshold as a cosine threshold: only those rows need the sigmoid.
  const float min_cos =
      (std::log(opt.min_confidence / (1 - opt.min_confidence)) - cal.bias) / cal.scale;
  for (size_t i = 0; i < n; ++i) {
    const float* row = c.data() + i * rows;
    std::vector<Tag>& tags = out[i];
    for (size_t r = 0; r < rows; ++r) {
      if (row[r] < min_cos) continue;
      float conf = 1.0f / (1.0f + std::exp(-(cal.scale * row[r] + cal.bias)));
      if (conf >= opt.min_confidence) tags.push_back({terms[r], row[r], conf});
    }
    auto better = [](const Tag& a, const Tag& b) {
      return a.cosine > b.cosine || (a.cosine == b.cosine && a.term < b.term);
    };
    if (tags.size() > opt.max_tags) {
      std::partial_sort(tags.begin(), tags.begin() + static_cast<long>(opt.max_tags), tags.end(),
                        better);
      tags.resize(opt.max_tags);
    } else {
      std::sort(tags.begin(), tags.end(), better);
    }
  }
  return out;
}

}  // namespace lumen::tags
