#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lumen/llm/provider.h"
#include "lumen/llm/throttle.h"

namespace lumen::llm {
namespace {

// Simulated time: waiting jumps straight to the deadline.
class FakeClock : public Clock {
 public:
  double t = 1000;
  double Now() override { return t; }
  void WaitUntil(std::unique_lock<std::mutex>&, std::condition_variable&,
                 double deadline) override {
    t = std::max(t, deadline);
  }
};

TEST(Throttle, NeverExceedsTheWindowAndPacesStarts) {
  FakeClock clock;
  Limits l;
  l.requests = 10, l.window_s = 1, l.concurrency = 100;
  Throttle th(l, &clock);
  std::vector<double> starts;
  for (int i = 0; i < 35; ++i) {
    ASSERT_TRUE(th.Acquire(0));
    starts.push_back(clock.t);
    th.Release(Outcome::kOk, 0, 0);
  }
  for (size_t i = 0; i < starts.size(); ++i) {
    size_t in_window = 0;
    for (size_t j = i; j < starts.size() && starts[j] - starts[i] < 1.0; ++j) ++in_window;
    EXPECT_LE(in_window, 10u) << "window starting at request " << i;
  }
  for (size_t i = 1; i < starts.size(); ++i) EXPECT_GE(starts[i] - starts[i - 1], 0.0999);
  EXPECT_NEAR(starts.back() - starts.front(), 3.4, 0.1);  // 35 requests at 10/s
}

TEST(Throttle, TokensPerWindow) {
  FakeClock clock;
  Limits l;
  l.requests = 0, l.tokens = 1000, l.window_s = 60, l.concurrency = 100;
  Throttle th(l, &clock);
  const double t0 = clock.t;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(th.Acquire(300));
    th.Release(Outcome::kOk, 300, 300);
  }
  // 3 x 300 fit in the first window; the 4th waits for the first to leave it.
  EXPECT_GE(clock.t - t0, 60.0);
}

TEST(Throttle, ConcurrencyLimit) {
  FakeClock clock;
  Limits l;
  l.requests = 0, l.concurrency = 2;
  Throttle th(l, &clock);
  ASSERT_TRUE(th.Acquire(0));
  ASSERT_TRUE(th.Acquire(0));
  EXPECT_EQ(th.in_flight(), 2);
  int polls = 0;
  EXPECT_FALSE(th.Acquire(0, [&] { return ++polls > 3; }));  // no slot: waits until stopped
  th.Release(Outcome::kOk, 0, 0);
  EXPECT_TRUE(th.Acquire(0));
}

TEST(Throttle, BreakerOpensThenProbesAndCloses) {
  FakeClock clock;
  Limits l;
  l.requests = 0, l.concurrency = 10, l.breaker_failures = 3, l.breaker_cooldown_s = 15;
  Throttle th(l, &clock);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(th.Acquire(0));
    th.Release(Outcome::kRetryable, 0, 0);
  }
  EXPECT_TRUE(th.breaker_open());
  const double opened = clock.t;
  ASSERT_TRUE(th.Acquire(0));  // the half-open probe, after the cooldown
  EXPECT_GE(clock.t - opened, 15.0);
  int polls = 0;
  EXPECT_FALSE(th.Acquire(0, [&] { return ++polls > 3; }));  // one probe at a time
  th.Release(Outcome::kRetryable, 0, 0);                     // the probe fails: open again
  EXPECT_TRUE(th.breaker_open());
  const double reopened = clock.t;
  ASSERT_TRUE(th.Acquire(0));
  EXPECT_GE(clock.t - reopened, 15.0);
  th.Release(Outcome::kOk, 0, 0);  // the probe succeeds: closed
  EXPECT_FALSE(th.breaker_open());
  // Fatal answers (a bad request) do not count against the service.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(th.Acquire(0));
    th.Release(Outcome::kFatal, 0, 0);
  }
  EXPECT_FALSE(th.breaker_open());
}

TEST(Throttle, AdaptsToTheErrorRateAndRecovers) {
  FakeClock clock;
  Limits l;
  l.requests = 100, l.window_s = 1, l.concurrency = 100, l.breaker_failures = 1000;
  Throttle th(l, &clock);
  // 5% errors: no cut.
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(th.Acquire(0));
    th.Release(i % 20 == 0 ? Outcome::kRateLimited : Outcome::kOk, 0, 0);
  }
  EXPECT_DOUBLE_EQ(th.allowed_rate(), 100);
  // 50% errors: cut by 30% (at most once per second), then healthy answers creep back up.
  double lowest = 100;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(th.Acquire(0));
    th.Release(i % 2 ? Outcome::kRateLimited : Outcome::kOk, 0, 0);
    lowest = std::min(lowest, th.allowed_rate());
  }
  EXPECT_LE(lowest, 70.5);
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(th.Acquire(0));
    th.Release(Outcome::kOk, 0, 0);
  }
  EXPECT_DOUBLE_EQ(th.allowed_rate(), 100);
}

TEST(Throttle, BackoffIsFullJitterAndHonoursRetryAfter) {
  Limits l;
  l.backoff_base_s = 0.5, l.backoff_max_s = 8;
  Throttle th(l);
  double max_seen = 0;
  for (int i = 0; i < 2000; ++i) {
    const double b = th.Backoff(3, 0);  // cap 0.5 * 2^2 = 2
    EXPECT_GE(b, 0);
    EXPECT_LE(b, 2.0);
    max_seen = std::max(max_seen, b);
  }
  EXPECT_GT(max_seen, 1.8);
  EXPECT_LE(th.Backoff(20, 0), 8.0);
  EXPECT_GE(th.Backoff(1, 5.0), 5.0);
}

TEST(Throttle, Classification) {
  EXPECT_EQ(Classify(200), Outcome::kOk);
  EXPECT_EQ(Classify(429), Outcome::kRateLimited);
  for (int s : {0, 408, 500, 502, 503, 504}) EXPECT_EQ(Classify(s), Outcome::kRetryable) << s;
  for (int s : {400, 401, 403, 404, 422}) EXPECT_EQ(Classify(s), Outcome::kFatal) << s;
}

TEST(Provider, RequestShapesCarryTheKeyOnlyInHeaders) {
  Prompt p;
  p.text = "describe";
  p.image_base64 = "AAAA";
  p.schema_json = R"({"type":"object"})";
  for (const char* kind : {"openai", "ollama", "anthropic", "gemini"}) {
    Endpoint e{kind, "http://h", "m", "SECRET"};
    HttpRequest r = BuildRequest(e, p);
    EXPECT_EQ(r.url.find("SECRET"), std::string::npos) << kind;
    EXPECT_EQ(r.body.find("SECRET"), std::string::npos) << kind;
    EXPECT_TRUE(nlohmann::json::accept(r.body)) << kind;
    EXPECT_NE(r.body.find("AAAA"), std::string::npos) << kind;
  }
  EXPECT_EQ(BuildRequest({"gemini", "http://h", "gemini-2.0-flash", "k"}, p).url,
            "http://h/v1beta/models/gemini-2.0-flash:generateContent");
}

TEST(Provider, ParsesRepliesAndExtractsJson) {
  Endpoint e{"openai", "", "m", ""};
  auto r =
      ParseReply(e, R"({"choices":[{"message":{"content":"hi"}}],"usage":{"total_tokens":9}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "hi");
  EXPECT_EQ(r->tokens, 9);
  EXPECT_EQ(ParseReply(e, "<html>").status().code(), Code::kCorrupt);
  EXPECT_EQ(ParseReply(e, R"({"error":"x"})").status().code(), Code::kCorrupt);
  EXPECT_EQ(*ExtractJsonObject("```json\n{\"a\": \"}\"}\n```"), "{\"a\": \"}\"}");
  EXPECT_EQ(*ExtractJsonObject("Sure: {\"a\":1} and more"), "{\"a\":1}");
  EXPECT_FALSE(ExtractJsonObject("no json here").ok());
}

}  // namespace
}  // namespace lumen::llm
