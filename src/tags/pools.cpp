#include "lumen/tags/pools.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace lumen::tags {

RelevancePools::RelevancePools(const Vocabulary& vocab, PoolOptions opt)
    : vocab_(vocab), opt_(opt) {
  opt_.warm_every = std::max<size_t>(1, opt_.warm_every);
  opt_.sweep_every = std::max<size_t>(1, opt_.sweep_every);
}

size_t RelevancePools::count(Pool p) const {
  return static_cast<size_t>(std::count_if(state_.begin(), state_.end(), [p](const Row& r) {
    return r.pool == static_cast<uint8_t>(p);
  }));
}

void RelevancePools::Grow(const LabelBank& bank) {
  const size_t rows = bank.rows_done();
  if (rows <= state_.size()) return;
  const size_t from = state_.size();
  state_.resize(rows);
  for (size_t r = from; r < rows; ++r) {
    const bool seed = vocab_.terms()[bank.term(r)].synset == 0 || r < opt_.seed_active;
    state_[r] = {static_cast<uint8_t>(seed ? Pool::kActive : Pool::kWarm), 0, 0};
  }
  packed_ = false;
}

void RelevancePools::Pack(const LabelBank& bank) {
  const size_t dim = size_t(bank.dim());
  active_.clear(), warm_.clear();
  active_terms_.clear(), warm_terms_.clear(), active_rows_.clear(), warm_rows_.clear();
  for (size_t r = 0; r < std::min(state_.size(), bank.rows_done()); ++r) {
    const float* v = bank.rows() + r * dim;
    if (state_[r].pool == uint8_t(Pool::kActive)) {
      active_.insert(active_.end(), v, v + dim);
      active_terms_.push_back(bank.term(r));
      active_rows_.push_back(static_cast<uint32_t>(r));
    } else if (state_[r].pool == uint8_t(Pool::kWarm)) {
      warm_.insert(warm_.end(), v, v + dim);
      warm_terms_.push_back(bank.term(r));
      warm_rows_.push_back(static_cast<uint32_t>(r));
    }
  }
  packed_ = true;
}

void RelevancePools::Sweep(const LabelBank& bank) {
  // Term index -> row, for the siblings of promoted terms.
  std::vector<int32_t> row_of(vocab_.size(), -1);
  for (size_t r = 0; r < state_.size(); ++r) row_of[bank.term(r)] = static_cast<int32_t>(r);
  std::vector<int32_t> promoted_parents;
  for (size_t r = 0; r < state_.size(); ++r) {
    Row& s = state_[r];
    if (s.hits > 0) {
      if (s.pool != uint8_t(Pool::kActive)) {
        s.pool = uint8_t(Pool::kActive);
        int32_t parent = vocab_.terms()[bank.term(r)].parent;
        if (parent >= 0) promoted_parents.push_back(parent);
      }
      s.idle = 0;
    } else if (s.pool == uint8_t(Pool::kActive)) {
      if (++s.idle >= opt_.demote_after) s.pool = uint8_t(Pool::kWarm), s.idle = 0;
    } else if (s.pool == uint8_t(Pool::kWarm) && warm_scored_) {
      if (++s.idle >= opt_.cold_after) s.pool = uint8_t(Pool::kCold), s.idle = 0;
    }
    s.hits = 0;
  }
  // Promoting a term warms its Cold siblings: a library with retrievers may well have spaniels.
  std::sort(promoted_parents.begin(), promoted_parents.end());
  if (!promoted_parents.empty()) {
    for (size_t r = 0; r < state_.size(); ++r) {
      Row& s = state_[r];
      if (s.pool != uint8_t(Pool::kCold)) continue;
      int32_t parent = vocab_.terms()[bank.term(r)].parent;
      if (parent >= 0 &&
          std::binary_search(promoted_parents.begin(), promoted_parents.end(), parent))
        s.pool = uint8_t(Pool::kWarm), s.idle = 0;
    }
  }
  warm_scored_ = false;
  since_sweep_ = 0;
  packed_ = false;
}

std::vector<std::vector<Tag>> RelevancePools::Score(const float* images, size_t n,
                                                    const LabelBank& bank, const Calibration& cal,
                                                    const ScoreOptions& opt) {
  Grow(bank);
  if (!packed_) Pack(bank);
  const bool warm = (batches_++ % opt_.warm_every) == 0;
  // One candidate list per image from the Active rows (and the Warm ones on a warm batch), then
  // the same threshold and top-k as full scoring over their union.
  ScoreOptions all = opt;
  all.max_tags = SIZE_MAX;
  auto out = ScoreRows(images, n, bank.dim(), active_.data(), active_terms_.data(),
                       active_terms_.size(), cal, all);
  rows_scored_ += n * active_terms_.size();
  if (warm && !warm_terms_.empty()) {
    auto more = ScoreRows(images, n, bank.dim(), warm_.data(), warm_terms_.data(),
                          warm_terms_.size(), cal, all);
    for (size_t i = 0; i < n; ++i) out[i].insert(out[i].end(), more[i].begin(), more[i].end());
    rows_scored_ += n * warm_terms_.size();
    warm_scored_ = true;
  }
  rows_full_ += n * bank.rows_done();
  auto better = [](const Tag& a, const Tag& b) {
    return a.cosine > b.cosine || (a.cosine == b.cosine && a.term < b.term);
  };
  std::vector<int32_t> row_of_term;  // built lazily: hits are counted per row
  for (auto& tags : out) {
    std::sort(tags.begin(), tags.end(), better);
    if (tags.size() > opt.max_tags) tags.resize(opt.max_tags);
    if (!tags.empty() && row_of_term.empty()) {
      row_of_term.assign(vocab_.size(), -1);
      for (size_t r = 0; r < state_.size(); ++r) row_of_term[bank.term(r)] = int32_t(r);
    }
    for (const Tag& t : tags)
      if (int32_t r = row_of_term[t.term]; r >= 0) ++state_[size_t(r)].hits;
  }
  since_sweep_ += n;
  if (since_sweep_ >= opt_.sweep_every) Sweep(bank);
  return out;
}

std::string RelevancePools::Save() const {
  std::string blob(state_.size() * 2, '\0');
  for (size_t r = 0; r < state_.size(); ++r) {
    blob[2 * r] = static_cast<char>(state_[r].pool);
    blob[2 * r + 1] = static_cast<char>(state_[r].idle);
  }
  return blob;
}

Status RelevancePools::Load(const std::string& blob) {
  if (blob.size() % 2) return Status::Corrupt("relevance pools: odd state size");
  std::vector<Row> rows(blob.size() / 2);
  for (size_t r = 0; r < rows.size(); ++r) {
    const uint8_t p = static_cast<uint8_t>(blob[2 * r]);
    if (p > uint8_t(Pool::kCold))
      return Status::Corrupt(fmt::format("relevance pools: row {} has pool {}", r, p));
    rows[r] = {p, static_cast<uint8_t>(blob[2 * r + 1]), 0};
  }
  state_ = std::move(rows);
  packed_ = false;
  return Status::Ok();
}

}  // namespace lumen::tags
