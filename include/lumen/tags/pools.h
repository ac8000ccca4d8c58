// Relevance pools (opt-in): score fewer bank terms per image by learning which ones a library
// uses. Every bank row is in one pool:
//   Active - scored on every image;
//   Warm   - scored on every `warm_every`-th batch;
//   Cold   - not scored.
// Every `sweep_every` images a sweep moves terms by their hits (a hit: the term made an image's
// tag list): a Warm or Cold term with a hit becomes Active and warms its Cold WordNet siblings
// (same hypernym); an Active term without a hit for `demote_after` sweeps becomes Warm; a Warm term
// that was scored without a hit for `cold_after` sweeps becomes Cold. Initially the non-WordNet
// terms (supplemental, user) and the first `seed_active` rows are Active, the rest Warm.
//
// Guarantee (tested): for a term that is Active, pooled scoring gives exactly the tag full scoring
// gives (same confidence, never dropped): Active rows are always scored, and leaving rows out can
// only raise an Active term's rank under --max-tags.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lumen/tags/label_bank.h"
#include "lumen/tags/scorer.h"
#include "lumen/tags/vocabulary.h"
#include "lumen/util/status.h"

namespace lumen::tags {

enum class Pool : uint8_t { kActive = 0, kWarm = 1, kCold = 2 };

// Defaults: a Warm term goes Cold only after ~2,000 warm-scored images without a hit (32 sweeps of
// 256 images, a quarter of them scoring Warm terms), so a subject seen once in 300 photos is
// still found with 99.9% probability before its term goes Cold.
struct PoolOptions {
  size_t warm_every = 4;       // batches
  size_t sweep_every = 256;    // images
  uint32_t demote_after = 64;  // sweeps without a hit: Active -> Warm
  uint32_t cold_after = 32;    // scored sweeps without a hit: Warm -> Cold
  size_t seed_active = 2000;
};

class RelevancePools {
 public:
  RelevancePools(const Vocabulary& vocab, PoolOptions opt = {});

  // Scores a batch against the pools' rows of `bank` (rows the pools have not seen yet start
  // Warm), counts hits and sweeps when due. Same output contract as ScoreImages.
  std::vector<std::vector<Tag>> Score(const float* images, size_t n, const LabelBank& bank,
                                      const Calibration& cal, const ScoreOptions& opt);

  Pool pool(size_t row) const { return row < state_.size() ? Pool(state_[row].pool) : Pool::kWarm; }
  size_t count(Pool p) const;
  uint64_t rows_scored() const { return rows_scored_; }  // image x row products computed
  uint64_t rows_full() const { return rows_full_; }      // what full scoring would have computed

  // Persisted state (the catalog keeps it per bank): one record per row.
  std::string Save() const;
  Status Load(const std::string& blob);

 private:
  struct Row {
    uint8_t pool;
    uint8_t idle;   // sweeps without a hit
    uint32_t hits;  // since the last sweep
  };
  void Grow(const LabelBank& bank);
  void Sweep(const LabelBank& bank);
  void Pack(const LabelBank& bank);

  const Vocabulary& vocab_;
  PoolOptions opt_;
  std::vector<Row> state_;
  bool warm_scored_ = false;  // warm rows were scored since the last sweep
  size_t batches_ = 0, since_sweep_ = 0;
  // Contiguous copies of the Active and Warm rows for one GEMM each, with their term indexes.
  std::vector<float> active_, warm_;
  std::vector<uint32_t> active_terms_, warm_terms_, active_rows_, warm_rows_;
  bool packed_ = false;
  uint64_t rows_scored_ = 0, rows_full_ = 0;
};

}  // namespace lumen::tags
