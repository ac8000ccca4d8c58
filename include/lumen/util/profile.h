// Per-stage timing for --profile: count, wall time and thread CPU time of each pipeline stage.
//
// Each thread accumulates into its own slots (no contention on the hot path); Profile::Table()
// merges them. A stage is timed with a scope:
//   { StageTimer t(profile, Stage::kDecode); ...decode... }
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace lumen {

enum class Stage : int {
  kScan = 0,
  kRead,
  kHash,
  kMetadata,
  kDecode,
  kThumbnail,
  kPerceptualHash,
  kModelInput,
  kEncode,
  kTags,
  kDocument,  // document text extraction (and its text embedding)
  kVideo,     // a video's read, hash, decode, shots, key frames and poster (one pass)
  kWrite,
  kCount
};
const char* StageName(Stage s);

struct StageTotals {
  uint64_t count = 0;
  uint64_t wall_ns = 0;
  uint64_t cpu_ns = 0;
};

class Profile {
 public:
  using Totals = std::array<StageTotals, static_cast<size_t>(Stage::kCount)>;

  // Slots for the calling thread (created on first use, owned by the Profile).
  Totals& Local();
  // Sum over all threads.
  Totals Merged() const;
  // Human-readable table: stage, count, wall s, cpu s, share of total CPU, per-item ms.
  std::string Table(double elapsed_s) const;

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Totals>> slots_;
};

uint64_t MonotonicNs();
uint64_t ThreadCpuNs();

class StageTimer {
 public:
  StageTimer(Profile* p, Stage s);
  ~StageTimer();
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;

 private:
  Profile* p_;
  Stage s_;
  uint64_t wall0_ = 0, cpu0_ = 0;
};

}  // namespace lumen
