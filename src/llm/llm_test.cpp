#include <curl/curl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "lumen/llm/local_vlm.h"
#include "lumen/llm/provider.h"
#include "lumen/llm/throttle.h"
#include "test_support.h"

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

TEST(Provider, EventStreams) {
  Endpoint e{"openai", "", "m", ""};
  auto r = ParseReply(e,
                      "data: {\"choices\":[{\"delta\":{\"content\":\"{\\\"a\\\"\"}}]}\n\n"
                      "data: {\"choices\":[{\"delta\":{\"content\":\":1}\"}}]}\n\n"
                      "data: {\"choices\":[],\"usage\":{\"total_tokens\":12}}\n\ndata: [DONE]\n\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->text, "{\"a\":1}");
  EXPECT_EQ(r->tokens, 12);
  auto cut = ParseReply(e, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n");
  EXPECT_EQ(cut.status().code(), Code::kCorrupt);
  EXPECT_NE(cut.status().message().find("truncated"), std::string::npos);
}

// A real llama-server (from the bootstrap build) with a tiny random-weight model written by
// tests/llm/tiny_llama_gguf.py: chat completions, streaming, and JSON-schema (grammar)
// constrained output, through the same runner and throttle as every remote provider.
class LlamaServer : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string src = LUMEN_SOURCE_DIR;
    const std::string server = src + "/.deps/bin/llama-server";
    ASSERT_TRUE(std::filesystem::exists(server)) << server << " (scripts/bootstrap.sh builds it)";
    const std::string model = dir_.File("tiny.gguf");
    const std::string gen = "/usr/bin/python3 " + src + "/tests/llm/tiny_llama_gguf.py " + model;
    ASSERT_EQ(std::system(gen.c_str()), 0) << gen;
    port_ = 20000 + int(::getpid() % 20000);
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      const std::string log = dir_.File("server.log");
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      (void)f;
      (void)std::freopen(log.c_str(), "a", stdout);
      const std::string port = std::to_string(port_);
      ::execl(server.c_str(), server.c_str(), "-m", model.c_str(), "--host", "127.0.0.1", "--port",
              port.c_str(), "-c", "4096", "-np", "4", "-t", "1", (char*)nullptr);
      ::_exit(127);
    }
    url_ = "http://127.0.0.1:" + std::to_string(port_);
    for (int i = 0; i < 300; ++i) {  // up to 30 s to load
      if (Healthy()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "llama-server did not come up at " << url_;
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool Healthy() {
    CURL* c = curl_easy_init();
    const std::string u = url_ + "/health";
    curl_easy_setopt(c, CURLOPT_URL, u.c_str());
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 500L);
    const bool ok = curl_easy_perform(c) == CURLE_OK;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return ok && status == 200;
  }
  test::TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string url_;
};

TEST_F(LlamaServer, ChatStreamingAndSchemaConstrainedOutput) {
  const std::string schema =
      R"({"type":"object","properties":{"description":{"type":"string","maxLength":16},)"
      R"("tags":{"type":"array","items":{"type":"string","maxLength":8},"maxItems":2}},)"
      R"("required":["description","tags"],"additionalProperties":false})";
  Endpoint e{"openai", url_, "tiny", ""};
  Limits lim;
  lim.requests = 0, lim.concurrency = 4, lim.timeout_s = 60, lim.max_attempts = 6;
  lim.backoff_base_s = 0.05;
  std::vector<Job> jobs;
  for (int i = 0; i < 8; ++i) {
    Job j;
    j.id = std::to_string(i);
    j.prompt = [i, schema]() -> Result<Prompt> {
      Prompt p;
      p.text = "Describe photo number " + std::to_string(i) + ".";
      p.schema_json = schema;
      p.max_tokens = 1500;  // a JSON char can take 4 byte tokens; never cut the object short
      p.stream = i % 2 == 1;
      return p;
    };
    jobs.push_back(std::move(j));
  }
  std::vector<JobResult> results;
  auto validate = [](std::string* text) -> Status {
    // Random weights, but the grammar makes the shape right: parse it strictly.
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::Corrupt("not a JSON object: " + *text);
    if (!j.contains("description") || !j["description"].is_string())
      return Status::Corrupt("no description");
    if (!j.contains("tags") || !j["tags"].is_array() || j["tags"].size() > 2)
      return Status::Corrupt("bad tags");
    if (j.size() != 2) return Status::Corrupt("extra fields");
    return Status::Ok();
  };
  auto acc =
      RunJobs(e, lim, std::move(jobs), validate, [&](const JobResult& r) { results.push_back(r); });
  EXPECT_EQ(acc.succeeded, 8) << (results.empty() ? "" : results[0].error);
  EXPECT_EQ(acc.failed, 0);
  // llama-server's own output parser now and then rejects a random model's answer (HTTP 500,
  // or a stream cut without [DONE]): retried like any server error.
  EXPECT_LE(acc.retries, 8);
  ASSERT_EQ(results.size(), 8u);
  for (const auto& r : results) {
    EXPECT_TRUE(r.ok) << r.id << ": " << r.error;
    EXPECT_GT(r.tokens, 0) << r.id;  // usage reported, streamed or not
    if (r.ok) {
      EXPECT_LE(nlohmann::json::parse(r.text)["description"].get<std::string>().size(), 16u * 4);
    }
  }
}

// The in-process path: a generated tiny VLM (llama text model + idefics3 mmproj) through
// libmtmd, an image given as pixels, output constrained by lumen's describe grammar.
TEST(LocalVlm, GeneratesGrammarConstrainedJsonFromAnImage) {
  test::TempDir dir;
  const std::string gen = std::string("/usr/bin/python3 ") + LUMEN_SOURCE_DIR +
                          "/tests/llm/tiny_vlm_gguf.py " + dir.path() + " tiny";
  ASSERT_EQ(std::system(gen.c_str()), 0) << gen;
  auto vlm = LocalVlm::Load({dir.File("model.gguf"), dir.File("mmproj.gguf"), 2, 4096});
  ASSERT_TRUE(vlm.ok()) << vlm.status().message();
  Image img(120, 80, 3);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t(i * 7);
  auto r = (*vlm)->Generate(img, "Describe this photo.", 1500, DescribeGrammar(40));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_GT(r->prompt_tokens, 16);       // the image's tokens are part of the prompt
  EXPECT_LT(r->generated_tokens, 1500);  // the grammar completed and generation stopped
  auto obj = ExtractJsonObject(r->text);
  ASSERT_TRUE(obj.ok()) << r->text;
  auto j = nlohmann::json::parse(*obj);
  for (const char* k : {"description", "ocr_text", "file_name", "folder_name"})
    EXPECT_TRUE(j.contains(k) && j[k].is_string()) << k << ": " << *obj;
  EXPECT_FALSE(j["description"].get<std::string>().empty());
  // A taxonomy and social scores in the grammar.
  auto t = (*vlm)->Generate(img, "Describe.", 2500,
                            DescribeGrammar(30, {"Family", "Travel \"2024\""}, true));
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto tobj = ExtractJsonObject(t->text);
  ASSERT_TRUE(tobj.ok()) << t->text;
  auto tj = nlohmann::json::parse(*tobj);
  const std::string folder = tj["folder_name"].get<std::string>();
  EXPECT_TRUE(folder == "Family" || folder == "Travel \"2024\"") << folder;
  for (const char* k : {"technical", "appeal", "engagement"}) {
    ASSERT_TRUE(tj["social"][k].is_number_integer()) << *tobj;
    EXPECT_GE(tj["social"][k].get<int>(), 1);
    EXPECT_LE(tj["social"][k].get<int>(), 10);
  }
  EXPECT_LE(tj["social"]["hashtags"].size(), 5u);
  // Exactly N tokens when asked not to stop (benchmarks).
  auto fixed = (*vlm)->Generate(img, "Describe this photo.", 12, "", false);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->generated_tokens, 12);
  // Bad files name themselves.
  std::ofstream(dir.File("junk.gguf")) << "not a model";
  auto bad = LocalVlm::Load({dir.File("model.gguf"), dir.File("junk.gguf"), 1, 4096});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("junk.gguf"), std::string::npos);
  auto bad2 = LocalVlm::Load({dir.File("junk.gguf"), dir.File("mmproj.gguf"), 1, 4096});
  ASSERT_FALSE(bad2.ok());
  EXPECT_NE(bad2.status().message().find("junk.gguf"), std::string::npos);
}

TEST(Provider, ValidUtf8) {
  EXPECT_EQ(ValidUtf8("a\xc3\xa9"
                      "b"),
            "a\xc3\xa9"
            "b");
  EXPECT_EQ(ValidUtf8("a\xc3"), "a\xef\xbf\xbd");
  EXPECT_EQ(ValidUtf8("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");                  // overlong
  EXPECT_EQ(ValidUtf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
}

}  // namespace
}  // namespace lumen::llm
