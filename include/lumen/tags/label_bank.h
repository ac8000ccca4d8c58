// The label bank: every vocabulary term encoded once by a model's text tower, stored on disk as
// a terms x dim float matrix and memory-mapped.
//
// File layout (little-endian): "LMNBANK1", u64 header length, the header JSON {model_id,
// vocab_hash, prompt, dim, count}, zero padding to 8, u64 rows_done, u32 term index of each row
// (rows are in priority order: the seed terms first), zero padding to 64, then count x dim f32.
// Building writes rows in chunks; after each chunk's rows are on disk (fdatasync) rows_done is
// advanced and synced, so an interrupted build resumes at the first unfinished chunk and a reader
// never sees a row that is not complete. A bank whose header does not match the model, the
// vocabulary hash, the prompt or the dim is rebuilt.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lumen/tags/vocabulary.h"
#include "lumen/util/status.h"

namespace lumen::tags {

struct BankKey {
  std::string model_id;
  std::string vocab_hash;
  std::string prompt = "a photo of a {}.";  // "{}" is replaced by the term
  int dim = 0;
};

// "a photo of a {}." + "dog" -> "a photo of a dog."
std::string FormatPrompt(const std::string& prompt, const std::string& term);

// Encodes texts into rows of dim floats (the text tower, or a test double).
using EncodeFn = std::function<Status(const std::vector<std::string>& texts, float* out)>;

struct BuildOptions {
  size_t chunk = 256;
  // Called after each persisted chunk with (rows_done, count); return false to stop early.
  std::function<bool(size_t, size_t)> on_chunk;
};

// Creates or resumes the bank at `path` for `vocab` in `order` (term indexes, priority first).
Status BuildLabelBank(const std::string& path, const BankKey& key, const Vocabulary& vocab,
                      const std::vector<uint32_t>& order, const EncodeFn& encode,
                      const BuildOptions& opt);

class LabelBank {
 public:
  // Opens and validates against `key`. Errors: NotFound, Corrupt, Invalid (key mismatch: rebuild).
  static Result<std::unique_ptr<LabelBank>> Open(const std::string& path, const BankKey& key);
  ~LabelBank();

  size_t count() const { return count_; }
  size_t rows_done() const { return rows_done_; }  // rows usable now (all when complete)
  bool complete() const { return rows_done_ == count_; }
  int dim() const { return dim_; }
  const float* rows() const { return rows_; }
  uint32_t term(size_t row) const { return order_[row]; }
  const uint32_t* terms() const { return order_; }  // the term of every row

 private:
  LabelBank() = default;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  size_t count_ = 0, rows_done_ = 0;
  int dim_ = 0;
  const uint32_t* order_ = nullptr;
  const float* rows_ = nullptr;
};

// A label bank that grows while it is used: a background build publishes a new snapshot after
// each persisted chunk, and scorers take the current one. Snapshots are immutable (each maps the
// rows finished when it was opened), so a scorer never sees a half-written row.
class LiveBank {
 public:
  explicit LiveBank(std::shared_ptr<const LabelBank> bank) : bank_(std::move(bank)) {}
  std::shared_ptr<const LabelBank> Current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return bank_;
  }
  void Publish(std::shared_ptr<const LabelBank> bank) {
    std::lock_guard<std::mutex> lock(mu_);
    bank_ = std::move(bank);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const LabelBank> bank_;
};

// The seed-first order: supplemental and user terms, then WordNet terms by increasing depth in
// the hypernym tree (general, common nouns before rare leaves).
std::vector<uint32_t> PriorityOrder(const Vocabulary& vocab);

}  // namespace lumen::tags
