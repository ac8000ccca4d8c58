// Throughput control for remote model APIs: one component used by every provider.
//
//  - requests-per-window and tokens-per-window limits over a sliding window (60 s: rpm/tpm), with
//    starts paced evenly (window / limit apart) so a window never sees a burst;
//  - a concurrency limit;
//  - adaptive rate: when the error rate (429/5xx/transport) over the last 50 outcomes passes 10%,
//    the allowed rate is cut by 30% (at most once per second); every healthy outcome creeps it
//    back up by 1% of the configured rate;
//  - a circuit breaker: open after `breaker_failures` consecutive failures, then one half-open
//    probe after `breaker_cooldown_s`; a success closes it;
//  - exponential backoff with full jitter (uniform in [0, min(max, base * 2^attempt)]), never
//    shorter than a server's Retry-After, which is clamped to `max_retry_after_s` (a server's
//    "Retry-After: 99999" or "inf" must not stop a run for a day);
//  - classification: 408/409/425/429/5xx and transport errors are retried; 400/401/403/404/422
//    and everything else are fatal.
// The clock is injectable so the logic is tested without sleeping.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <string>

namespace lumen::llm {

struct Limits {
  double requests = 60;  // per window (0: unlimited)
  double tokens = 0;     // per window (0: unlimited)
  double window_s = 60;  // rpm/tpm: 60
  int concurrency = 4;
  double timeout_s = 120;  // per request
  int max_attempts = 6;
  double backoff_base_s = 0.5, backoff_max_s = 60;
  int breaker_failures = 8;
  double breaker_cooldown_s = 15;
  double max_retry_after_s = 60;  // a longer Retry-After is clamped (and said so)
  double max_wait_s = 300;        // a job gives up after waiting this long in total for retries
  size_t max_reply_bytes = size_t(8) << 20;  // a longer reply body (or stream) is cut and fails
};

// Named profiles: conservative, balanced (default), aggressive. False if the name is unknown.
bool ProfileLimits(const std::string& name, Limits* out);

enum class Outcome { kOk, kRateLimited, kRetryable, kFatal };
// HTTP status (0 for a transport error: reset, timeout, truncated body) to outcome.
Outcome Classify(int http_status);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual double Now() = 0;  // seconds
  // Waits on `cv` until `deadline` (or a notify); the real clock uses wait_until.
  virtual void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         double deadline) = 0;
};
Clock* SystemClock();

class Throttle {
 public:
  Throttle(const Limits& limits, Clock* clock = SystemClock(), uint64_t seed = 1);

  // Blocks until a request estimated at `tokens` may start (a concurrency slot, the pacing, the
  // windows and the breaker allow it). False when `stop()` returns true while waiting.
  bool Acquire(double tokens, const std::function<bool()>& stop = {});
  // Ends a request: frees its slot, records its outcome and the tokens it really used.
  void Release(Outcome outcome, double tokens_used, double estimated);
  // How long to wait before attempt `attempt` (1 = the first retry).
  double Backoff(int attempt, double retry_after_s);

  double allowed_rate() const;  // requests per window now (after adaptation)
  bool breaker_open() const;
  int in_flight() const;

 private:
  void Prune(double now);
  double NextStart(double now, double tokens) const;

  Limits lim_;
  Clock* clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<double> starts_;                    // request start times in the window
  std::deque<std::pair<double, double>> spent_;  // (time, tokens) in the window
  double last_start_ = -1e18;
  int in_flight_ = 0;
  double factor_ = 1.0;  // adaptive share of the configured rate
  double last_cut_ = -1e18;
  std::deque<bool> recent_;  // last outcomes: true = error
  int consecutive_failures_ = 0;
  enum class Breaker { kClosed, kOpen, kHalfOpen } breaker_ = Breaker::kClosed;
  double opened_at_ = 0;
  bool probe_out_ = false;
  std::mt19937_64 rng_;
};

}  // namespace lumen::llm
