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
// API keys go only into request headers: never into URLs, messages or logs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lumen/llm/throttle.h"
#include "lumen/util/status.h"

namespace lumen::llm {

struct Endpoint {
  std::string kind = "openai";
  std::string base_url;  // without a trailing slash
  std::string model;
  std::string api_key;  // may be empty (local servers)
};
// The default base URL of a provider kind ("" if unknown).
std::string DefaultBaseUrl(const std::string& kind);

struct Prompt {
  std::string text;
  std::string image_base64;  // may be empty
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
// Corrupt("truncated stream") for an event stream that ended before [DONE].
Result<Reply> ParseReply(const Endpoint& e, const std::string& body);

struct HttpResponse {
  int status = 0;  // 0: no HTTP answer (connection refused/reset, timeout, truncated)
  std::string body;
  double retry_after_s = 0;
  std::string error;  // transport error text
};
// POST with libcurl; `timeout_s` bounds the whole request.
HttpResponse Post(const HttpRequest& r, double timeout_s);

// `s` with every invalid UTF-8 byte replaced by U+FFFD (models emit byte tokens).
std::string ValidUtf8(const std::string& s);

// The JSON object inside a model's answer (made valid UTF-8 first): the text itself, or inside ```
// fences, or the first balanced {...}. Corrupt if there is none.
Result<std::string> ExtractJsonObject(const std::string& text);

struct Job {
  std::string id;
  // Makes the prompt (e.g. decodes and downsizes the image) in the worker, just before sending.
  std::function<Result<Prompt>()> prompt;
  double estimated_tokens = 500;
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
  std::map<std::string, int64_t> failures;  // reason -> count
  std::map<int, int64_t> statuses;          // HTTP status (0 = transport) -> count
};

// Runs `jobs` with `limits.concurrency` workers. `validate` checks (and may rewrite) an answer;
// an invalid one is retried like a server error. `done` is called once per job, from the
// workers (serialised). Stops early (unfinished jobs are not reported) when Interrupted().
Accounting RunJobs(const Endpoint& e, const Limits& limits, std::vector<Job> jobs,
                   const std::function<Status(std::string*)>& validate,
                   const std::function<void(const JobResult&)>& done);

}  // namespace lumen::llm
