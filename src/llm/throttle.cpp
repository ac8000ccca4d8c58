#include "lumen/llm/throttle.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace lumen::llm {
namespace {

class RealClock : public Clock {
 public:
  double Now() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 double deadline) override {
    const double wait = std::min(deadline - Now(), 0.25);  // wake up to poll stop()
    if (wait > 0) cv.wait_for(lock, std::chrono::duration<double>(wait));
  }
};

constexpr size_t kRecent = 50;
constexpr double kErrorRateCut = 0.10;

}  // namespace

Clock* SystemClock() {
  static RealClock c;
  return &c;
}

bool ProfileLimits(const std::string& name, Limits* out) {
  Limits l;
  if (name == "conservative") {
    l.requests = 30, l.concurrency = 2, l.timeout_s = 180, l.max_attempts = 8;
  } else if (name == "balanced") {
    l.requests = 120, l.concurrency = 8, l.timeout_s = 120;
  } else if (name == "aggressive") {
    l.requests = 3000, l.concurrency = 50, l.timeout_s = 60, l.max_attempts = 5;
  } else {
    return false;
  }
  *out = l;
  return true;
}

Outcome Classify(int status) {
  if (status >= 200 && status < 300) return Outcome::kOk;
  if (status == 429) return Outcome::kRateLimited;
  if (status == 0 || status == 408 || status == 409 || status == 425 || status >= 500)
    return Outcome::kRetryable;
  return Outcome::kFatal;
}

Throttle::Throttle(const Limits& limits, Clock* clock, uint64_t seed)
    : lim_(limits), clock_(clock), rng_(seed) {}

void Throttle::Prune(double now) {
  // A small guard so that starts measured elsewhere (the server) also stay within the window.
  const double horizon = now - lim_.window_s * 1.01;
  while (!starts_.empty() && starts_.front() <= horizon) starts_.pop_front();
  while (!spent_.empty() && spent_.front().first <= horizon) spent_.pop_front();
}

double Throttle::NextStart(double now, double tokens) const {
  double t = now;
  if (lim_.requests > 0) {
    const double rate = std::max(1.0, lim_.requests * factor_);
    t = std::max(t, last_start_ + lim_.window_s / rate);  // pacing
    if (starts_.size() >= size_t(rate)) {                 // the window is full
      const size_t k = starts_.size() - size_t(rate);
      t = std::max(t, starts_[k] + lim_.window_s * 1.01);
    }
  }
  if (lim_.tokens > 0) {
    double sum = tokens;
    for (const auto& s : spent_) sum += s.second;
    for (size_t i = 0; sum > lim_.tokens && i < spent_.size(); ++i) {
      sum -= spent_[i].second;
      t = std::max(t, spent_[i].first + lim_.window_s * 1.01);
    }
  }
  if (breaker_ == Breaker::kOpen) t = std::max(t, opened_at_ + lim_.breaker_cooldown_s);
  return t;
}

bool Throttle::Acquire(double tokens, const std::function<bool()>& stop) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (stop && stop()) return false;
    const double now = clock_->Now();
    Prune(now);
    const bool slot = in_flight_ < std::max(1, lim_.concurrency);
    const bool probe_busy = breaker_ == Breaker::kHalfOpen && probe_out_;
    const double at = NextStart(now, tokens);
    if (slot && !probe_busy && at <= now) {
      if (breaker_ == Breaker::kOpen) breaker_ = Breaker::kHalfOpen;
      if (breaker_ == Breaker::kHalfOpen) probe_out_ = true;
      ++in_flight_;
      starts_.push_back(now);
      last_start_ = now;
      if (tokens > 0) spent_.emplace_back(now, tokens);
      return true;
    }
    clock_->WaitUntil(lock, cv_, slot && !probe_busy ? at : now + 0.25);
  }
}

void Throttle::Release(Outcome outcome, double used, double estimated) {
  std::lock_guard<std::mutex> lock(mu_);
  --in_flight_;
  const double now = clock_->Now();
  // Correct the token estimate with what the request really used.
  if (lim_.tokens > 0 && used != estimated) spent_.emplace_back(now, used - estimated);
  const bool error = outcome == Outcome::kRateLimited || outcome == Outcome::kRetryable;
  recent_.push_back(error);
  if (recent_.size() > kRecent) recent_.pop_front();
  if (error) {
    const double rate = double(std::count(recent_.begin(), recent_.end(), true)) / recent_.size();
    if (recent_.size() >= 10 && rate > kErrorRateCut && now - last_cut_ >= 1.0) {
      factor_ = std::max(0.05, factor_ * 0.7);
      last_cut_ = now;
    }
  } else if (outcome == Outcome::kOk) {
    factor_ = std::min(1.0, factor_ + 0.01);
  }
  // The breaker counts failures of the service (not fatal answers to a bad request).
  if (outcome == Outcome::kOk || outcome == Outcome::kFatal) {
    consecutive_failures_ = 0;
    if (breaker_ == Breaker::kHalfOpen) breaker_ = Breaker::kClosed;
  } else if (++consecutive_failures_ >= lim_.breaker_failures || breaker_ == Breaker::kHalfOpen) {
    breaker_ = Breaker::kOpen;
    opened_at_ = now;
  }
  probe_out_ = false;
  cv_.notify_all();
}

double Throttle::Backoff(int attempt, double retry_after_s) {
  std::lock_guard<std::mutex> lock(mu_);
  const double cap =
      std::min(lim_.backoff_max_s, lim_.backoff_base_s * std::pow(2.0, std::max(0, attempt - 1)));
  std::uniform_real_distribution<double> u(0, cap);
  // A server's Retry-After counts, but within bounds: "99999" or "inf" must not stop a run.
  const double asked = std::isnan(retry_after_s) ? 0 : std::max(0.0, retry_after_s);
  return std::max(u(rng_), std::min(asked, std::max(0.0, lim_.max_retry_after_s)));
}

double Throttle::allowed_rate() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lim_.requests * factor_;
}
bool Throttle::breaker_open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return breaker_ != Breaker::kClosed;
}
int Throttle::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

}  // namespace lumen::llm
