#include "lumen/util/profile.h"

#include <time.h>

#include <unordered_map>

#include <fmt/format.h>

namespace lumen {

const char* StageName(Stage s) {
  switch (s) {
    case Stage::kScan:
      return "scan";
    case Stage::kRead:
      return "read";
    case Stage::kHash:
      return "hash";
    case Stage::kMetadata:
      return "exif/xmp";
    case Stage::kDecode:
      return "decode";
    case Stage::kThumbnail:
      return "thumbnail";
    case Stage::kPerceptualHash:
      return "perceptual hash";
    case Stage::kModelInput:
      return "model input";
    case Stage::kTags:
      return "tags";
    case Stage::kDocument:
      return "document";
    case Stage::kVideo:
      return "video";
    case Stage::kEncode:
      return "image encoder";
    case Stage::kWrite:
      return "catalog/output";
    case Stage::kCount:
      break;
  }
  return "?";
}

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Profile::Totals& Profile::Local() {
  // One slot per (thread, profile). Profiles live for a whole run, so a small map suffices.
  thread_local std::unordered_map<const Profile*, Totals*> mine;
  auto it = mine.find(this);
  if (it != mine.end()) return *it->second;
  std::lock_guard lock(mu_);
  slots_.push_back(std::make_unique<Totals>());
  Totals* t = slots_.back().get();
  mine[this] = t;
  return *t;
}

Profile::Totals Profile::Merged() const {
  Totals sum{};
  std::lock_guard lock(mu_);
  for (const auto& s : slots_) {
    for (size_t i = 0; i < sum.size(); ++i) {
      sum[i].count += (*s)[i].count;
      sum[i].wall_ns += (*s)[i].wall_ns;
      sum[i].cpu_ns += (*s)[i].cpu_ns;
    }
  }
  return sum;
}

std::string Profile::Table(double elapsed_s) const {
  Totals t = Merged();
  uint64_t cpu_total = 0;
  for (const auto& s : t) cpu_total += s.cpu_ns;
  std::string out = fmt::format("{:<16} {:>9} {:>10} {:>10} {:>7} {:>10}\n", "stage", "count",
                                "wall s", "cpu s", "share", "ms/item");
  for (size_t i = 0; i < t.size(); ++i) {
    const auto& s = t[i];
    if (s.count == 0) continue;
    out += fmt::format("{:<16} {:>9} {:>10.3f} {:>10.3f} {:>6.1f}% {:>10.3f}\n",
                       StageName(static_cast<Stage>(i)), s.count, s.wall_ns / 1e9, s.cpu_ns / 1e9,
                       cpu_total ? 100.0 * s.cpu_ns / cpu_total : 0.0,
                       s.wall_ns / 1e6 / static_cast<double>(s.count));
  }
  out += fmt::format("{:<16} {:>9} {:>10.3f} {:>10.3f}\n", "total (elapsed)", "", elapsed_s,
                     cpu_total / 1e9);
  return out;
}

StageTimer::StageTimer(Profile* p, Stage s) : p_(p), s_(s) {
  if (p_) {
    wall0_ = MonotonicNs();
    cpu0_ = ThreadCpuNs();
  }
}

StageTimer::~StageTimer() {
  if (!p_) return;
  auto& slot = p_->Local()[static_cast<size_t>(s_)];
  slot.count++;
  slot.wall_ns += MonotonicNs() - wall0_;
  slot.cpu_ns += ThreadCpuNs() - cpu0_;
}

}  // namespace lumen
