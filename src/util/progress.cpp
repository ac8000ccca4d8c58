#include "lumen/util/progress.h"

#include <unistd.h>

#include <atomic>

#include <fmt/format.h>

#include "lumen/util/log.h"
#include "lumen/util/profile.h"

namespace lumen {
namespace {
std::atomic<Progress*> g_active{nullptr};

void WriteAll(const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(2, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

std::string Duration(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  auto t = static_cast<uint64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
  return fmt::format("{}:{:02}", t / 60, t % 60);
}
}  // namespace

Progress::Mode Progress::Detect(bool quiet, bool json_logs) {
  if (quiet) return Mode::kQuiet;
  if (!json_logs && isatty(2)) return Mode::kTerminal;
  return Mode::kLines;
}

Progress::Progress(Mode mode, std::string unit)
    : mode_(mode), unit_(std::move(unit)), start_ns_(MonotonicNs()), last_ns_(start_ns_) {
  if (mode_ == Mode::kTerminal) {
    g_active = this;
    log::SetBeforeWriteHook(&Progress::ClearHook);
  }
}

Progress::~Progress() {
  Finish();
  if (g_active == this) {
    g_active = nullptr;
    log::SetBeforeWriteHook(nullptr);
  }
}

void Progress::ClearHook() {
  if (Progress* p = g_active.load()) p->Clear();
}

void Progress::Clear() {
  // Called with the log mutex held; progress draws take mu_ only briefly.
  if (drawn_) {
    WriteAll("\r\033[K");
    drawn_ = false;
  }
}

void Progress::Update(uint64_t done, uint64_t total, uint64_t bytes, uint64_t failed, bool force) {
  // JSON logs are read by programs (lumen serve's jobs): twice a second, and the last count too.
  const bool json = mode_ == Mode::kLines && log::IsJson();
  if (mode_ == Mode::kQuiet || (force && mode_ == Mode::kLines && !json)) return;
  uint64_t now = MonotonicNs();
  uint64_t interval = mode_ == Mode::kTerminal ? 100'000'000ull
                      : json                   ? 500'000'000ull
                                               : 5'000'000'000ull;
  if (!force && now - last_ns_ < interval) {
    if (json) {
      unshown_ = true;
      last_[0] = done, last_[1] = total, last_[2] = bytes, last_[3] = failed;
    }
    return;
  }
  unshown_ = false;
  last_ns_ = now;
  double el = (now - start_ns_) / 1e9;
  double rate = el > 0 ? done / el : 0;
  double mbs = el > 0 ? bytes / el / 1e6 : 0;
  std::string eta = total && rate > 0 && total >= done ? Duration((total - done) / rate) : "--:--";
  std::string tot = total ? fmt::format("{}", total) : "?";
  std::string line;
  if (mode_ == Mode::kTerminal) {
    int width = 24;
    int fill = total ? static_cast<int>(width * static_cast<double>(done) / total) : 0;
    if (fill > width) fill = width;
    line = fmt::format("\r\033[K[{}{}] {}/{} {}  {:.1f} {}/s  {:.1f} MB/s  ETA {}{}",
                       std::string(fill, '='), std::string(width - fill, ' '), done, tot, unit_,
                       rate, unit_, mbs, eta, failed ? fmt::format("  {} failed", failed) : "");
    std::lock_guard lock(mu_);
    WriteAll(line);
    drawn_ = true;
  } else if (json) {
    const double left = total && rate > 0 && total >= done ? (total - done) / rate : -1;
    log::Info("progress", {{"event", "progress"},
                           {"unit", unit_},
                           {"done", fmt::format("{}", done)},
                           {"total", fmt::format("{}", total)},
                           {"bytes", fmt::format("{}", bytes)},
                           {"failed", fmt::format("{}", failed)},
                           {"rate", fmt::format("{:.2f}", rate)},
                           {"eta_s", left < 0 ? "" : fmt::format("{:.0f}", left)}});
  } else {
    log::Info(fmt::format("progress {}/{} {}, {:.1f} {}/s, {:.1f} MB/s, ETA {}, {} failed", done,
                          tot, unit_, rate, unit_, mbs, eta, failed));
  }
}

void Progress::Finish() {
  if (mode_ == Mode::kLines && log::IsJson() && unshown_)
    Update(last_[0], last_[1], last_[2], last_[3], true);
  if (mode_ != Mode::kTerminal) return;
  std::lock_guard lock(mu_);
  Clear();
}

}  // namespace lumen
