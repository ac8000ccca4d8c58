// Progress reporting for long runs. On a terminal: one redrawn line (files/s, MB/s, ETA),
// at most 10 redraws a second. Otherwise: a plain line every few seconds. Silent when quiet.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace lumen {

class Progress {
 public:
  enum class Mode { kQuiet, kTerminal, kLines };
  // kTerminal when stderr is a TTY (and not JSON logs), kLines otherwise, unless quiet.
  static Mode Detect(bool quiet, bool json_logs);

  explicit Progress(Mode mode, std::string unit = "files");
  ~Progress();

  // Called from the (single) writer thread after each item.
  // `total` is 0 while the total is still unknown (scan in progress).
  void Update(uint64_t done, uint64_t total, uint64_t bytes, uint64_t failed, bool force = false);
  bool visible() const { return mode_ != Mode::kQuiet; }
  // Erases the terminal line (before printing the summary); with JSON logs, logs the last count
  // if it was not logged yet.
  void Finish();

 private:
  void Clear();
  static void ClearHook();

  Mode mode_;
  std::string unit_;
  uint64_t start_ns_;
  uint64_t last_ns_;
  bool drawn_ = false;
  bool unshown_ = false;   // the last Update was not written (JSON logs: Finish writes it)
  uint64_t last_[4] = {};  // its done, total, bytes, failed
  std::mutex mu_;
};

}  // namespace lumen
