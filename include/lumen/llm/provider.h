// Remote vision-language model APIs: request building, HTTP, reply parsing, and a runner that
// drives many requests through one Throttle (throttle.h) without losing or duplicating any.
//
// Providers (Endpoint::kind):
//   openai     OpenAI-compatible chat completions (OpenAI, llama-server, vLLM, Ollama's /v1, the
//              Llama API): POST {base}/v1/chat/completions, image as a data: URL,
//              response_format json_schema; Authorization: Bearer KEY.
//   ollama     Ollama's native API: POST {base}/api/chat, images[] base64, format = the schema.
//   anthropic  Anthropic Messages: POST {base}/v1/messages, x-api-key, anthropic-version.
//   gemini     Google Gemini: POST {base}/v1beta/models/{model}:generateContent,
//              x-goog-api-key, responseMimeType application/json + responseSchema.
// API keys go only into request headers: never into URLs, messages or logs (callers register
// them with log::AddSecret, and every error text, answer and log line passes log::Redact).
//
// Base URLs are accepted as users and SDKs write them: with or without the API's version path and
// a trailing slash ("http://h:8000", "http://h:8000/v1/", ".../v1/chat/completions" all mean one
// server). NormalizeBaseUrl turns each spelling into one canonical form (the cache key uses it):
//   openai     strips "/chat/completions" and a final "/v1"; another final version segment
//              ("/v4", "/v1beta") is kept and used instead of /v1;
//   ollama     strips "/api/chat", "/api", "/v1/chat/completions" and "/v1";
//   anthropic  strips "/v1/messages" and "/v1";
//   gemini     strips "/models...", and a final "/v1beta"; "/v1" or "/v1alpha" is kept and used.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "lumen/llm/throttle.h"
#include "lumen/util/status.h"

namespace lumen::llm {

struct Endpoint {
  std::string kind = "openai";
  std::string base_url;  // canonical: NormalizeBaseUrl
  std::string model;
  std::string api_key;  // may be empty (local servers)
};
// The default base URL of a provider kind ("" if unknown).
std::string DefaultBaseUrl(const std::string& kind);
// The canonical form of a base URL for `kind` (see above).
std::string NormalizeBaseUrl(const std::string& kind, std::string url);

// A Retry-After header value in seconds: delay-seconds ("120", also "1.5", "inf") or an
// HTTP-date, relative to `now_epoch_s`. 0 when absent, negative or unparsable; may be +inf.
double ParseRetryAfter(std::string_view value, double now_epoch_s);

// The provider's own error text from an error body: error.message (or error, message, detail)
// when the body is JSON, else the body itself; one line, at most `max_bytes`, UTF-8-safe.
std::string ErrorText(const std::string& body, size_t max_bytes = 300);

// Whether an HTTP answer ends the whole run (it would be the same for every photo): 401, 402,
// 403 and 404 at once; 400 and 422 (one image may be refused, e.g. too large) when this is the
// `in_a_row`-th such answer with no success in between: the 2nd before any request succeeded,
// the 5th after.
bool EndsRun(int http_status, int in_a_row, bool any_success);
struct Prompt {
  std::string text;
  std::string image_base64;  // may be empty
  // Further images of one request (a post's photos, --images-per-request), in order after the
  // first; the same mime type.
  std::vector<std::string> more_images;
  std::string image_mime = "image/webp";
  std::string schema_json;  // a JSON schema for the answer ("" = free text)
  int max_tokens = 400;
  bool stream = false;  // openai: server-sent events (a stream without [DONE] is truncated)
};

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
};
HttpRequest BuildRequest(const Endpoint& e, const Prompt& p);

struct Reply {
  std::string text;
  int64_t tokens = 0;
};
// Corrupt("invalid JSON ...") when the body is not the provider's reply shape, or
// Corrupt("truncated stream") for an event stream that ended before [DONE]. Never throws: any
// shape (choices:[1], usage as a string, ...) becomes a status or is ignored.
Result<Reply> ParseReply(const Endpoint& e, const std::string& body);

struct HttpResponse {
  int status = 0;  // 0: no HTTP answer (connection refused/reset, timeout, truncated)
  std::string body;
  double retry_after_s = 0;  // ParseRetryAfter (unclamped)
  std::string retry_after;   // the header's value as sent
  std::string error;         // transport error text
  bool too_large = false;    // the body passed `max_body` bytes and was cut (status 0)
};
// POST with libcurl; `timeout_s` bounds the whole request, `max_body` the body read (also after
// decompression; a larger or endless one fails with too_large), and `cancel` (polled a few times
// a second) aborts it.
HttpResponse Post(const HttpRequest& r, double timeout_s, size_t max_body = size_t(8) << 20,
                  const std::function<bool()>& cancel = {});

// The JSON object inside a model's answer (made valid UTF-8 first): the text itself, or inside ```
// fences, or the first balanced {...}. Corrupt if there is none.
Result<std::string> ExtractJsonObject(const std::string& text);

struct Job {
  std::string id;
  // Makes the prompt (e.g. decodes and downsizes the image) in the worker, just before sending.
  std::function<Result<Prompt>()> prompt;
  double estimated_tokens = 500;
  // Checks this job's answer instead of RunJobs' `validate` (items of different kinds in one run).
  std::function<Status(std::string*)> validate;
};
struct JobResult {
  std::string id;
  bool ok = false;
  std::string text;  // the validated answer
  int64_t tokens = 0;
  double latency_ms = 0;  // of the successful attempt
  int attempts = 0;
  std::string error;  // why it failed
};
struct Accounting {
  int64_t succeeded = 0, failed = 0, retries = 0, requests = 0;
  // Why the run was ended early (EndsRun, or a server that kept rate-limiting past max_wait_s):
  // one message with the cause and the provider's error text; the jobs not finished by then are
  // not reported. Empty when the run was not ended.
  std::string fatal;
  int fatal_status = 0;
  std::map<std::string, int64_t> failures;  // reason -> count
  std::map<int, int64_t> statuses;          // HTTP status (0 = transport) -> count
};

// Runs `jobs` with `limits.concurrency` workers. `validate` checks (and may rewrite) an answer;
// an invalid one is retried like a server error. `done` is called once per job, from the
// workers (serialised). Stops early (unfinished jobs are not reported) when Interrupted() or
// when an answer ends the run (Accounting::fatal). No exception leaves a worker: one becomes the
// job's error. A job's answer is limited to 64 KiB of text; error texts and answers are redacted.
Accounting RunJobs(const Endpoint& e, const Limits& limits, std::vector<Job> jobs,
                   const std::function<Status(std::string*)>& validate,
                   const std::function<void(const JobResult&)>& done);

}  // namespace lumen::llm
