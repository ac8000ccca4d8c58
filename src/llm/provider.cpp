#include "lumen/llm/provider.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/util/interrupt.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"

namespace lumen::llm {

using nlohmann::json;

std::string DefaultBaseUrl(const std::string& kind) {
  if (kind == "openai") return "https://api.openai.com";
  if (kind == "ollama") return "http://127.0.0.1:11434";
  if (kind == "anthropic") return "https://api.anthropic.com";
  if (kind == "gemini") return "https://generativelanguage.googleapis.com";
  return "";
}

namespace {

// Where the path of a URL starts ("http://h:1/v1" -> 8), or its size when it has none.
size_t PathStart(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t from = scheme == std::string::npos ? 0 : scheme + 3;
  const size_t slash = url.find('/', from);
  return slash == std::string::npos ? url.size() : slash;
}

bool StripSuffix(std::string* url, std::string_view suffix) {
  if (url->size() < suffix.size() || url->size() - suffix.size() < PathStart(*url)) return false;
  if (std::string_view(*url).substr(url->size() - suffix.size()) != suffix) return false;
  url->resize(url->size() - suffix.size());
  return true;
}

void StripSlashes(std::string* url) {
  while (url->size() > PathStart(*url) && url->back() == '/') url->pop_back();
}

// Whether the URL's last path segment names an API version: v1, v4, v1beta, v2alpha ...
bool EndsWithVersion(const std::string& url) {
  const size_t at = url.rfind('/');
  if (at == std::string::npos || at < PathStart(url)) return false;
  const std::string seg = url.substr(at + 1);
  if (seg.size() < 2 || seg[0] != 'v' || !std::isdigit(static_cast<unsigned char>(seg[1])))
    return false;
  return std::all_of(seg.begin(), seg.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
}

}  // namespace

std::string NormalizeBaseUrl(const std::string& kind, std::string url) {
  while (!url.empty() && std::isspace(static_cast<unsigned char>(url.back()))) url.pop_back();
  while (!url.empty() && std::isspace(static_cast<unsigned char>(url.front()))) url.erase(0, 1);
  StripSlashes(&url);
  if (kind == "ollama") {
    for (const char* s : {"/api/chat", "/api/generate", "/api", "/v1/chat/completions", "/v1"})
      if (StripSuffix(&url, s)) break;
  } else if (kind == "anthropic") {
    if (!StripSuffix(&url, "/v1/messages")) StripSuffix(&url, "/v1");
  } else if (kind == "gemini") {
    const size_t models = url.find("/models", PathStart(url));
    if (models != std::string::npos &&
        (models + 7 == url.size() || url[models + 7] == '/' || url[models + 7] == ':'))
      url.resize(models);
    StripSlashes(&url);
    StripSuffix(&url, "/v1beta");
  } else {  // openai-compatible
    StripSuffix(&url, "/chat/completions");
    StripSlashes(&url);
    StripSuffix(&url, "/v1");
  }
  StripSlashes(&url);
  return url;
}

double ParseRetryAfter(std::string_view value, double now_epoch_s) {
  std::string v(value);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.erase(0, 1);
  if (v.empty()) return 0;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (end && *end == '\0') return std::isnan(d) || d < 0 ? 0 : d;
  std::tm tm{};  // an HTTP-date: "Wed, 21 Oct 2015 07:28:00 GMT"
  const char* rest = strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S", &tm);
  if (!rest) return 0;
  const double at = double(timegm(&tm));
  return std::max(0.0, at - now_epoch_s);
}

std::string ErrorText(const std::string& body, size_t max_bytes) {
  std::string text = body;
  try {
    json j = json::parse(body, nullptr, false);
    if (j.is_array() && !j.empty()) j = j[0];  // Gemini sometimes wraps it in a list
    if (j.is_object()) {
      auto str = [](const json& o, const char* k) -> std::string {
        auto it = o.find(k);
        return it != o.end() && it->is_string() ? it->get<std::string>() : "";
      };
      std::string m;
      if (auto it = j.find("error"); it != j.end() && it->is_object()) m = str(*it, "message");
      if (m.empty()) m = str(j, "error");
      if (m.empty()) m = str(j, "message");
      if (m.empty()) m = str(j, "detail");
      if (!m.empty()) text = m;
    }
  } catch (const std::exception&) {
  }
  for (char& c : text)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  // Redacted before it is cut: a key that straddles the cut would no longer match whole.
  text = log::Redact(text);
  if (text.size() > max_bytes) text = lumen::json::TruncateUtf8(text, max_bytes) + "...";
  return text;
}

bool EndsRun(int status, int in_a_row, bool any_success) {
  if (status == 401 || status == 402 || status == 403 || status == 404) return true;
  if (status == 400 || status == 422) return in_a_row >= (any_success ? 5 : 2);
  return false;
}

HttpRequest BuildRequest(const Endpoint& e, const Prompt& p) {
  HttpRequest r;
  r.headers.push_back("Content-Type: application/json");
  const json schema = p.schema_json.empty() ? json() : json::parse(p.schema_json, nullptr, false);
  // Every image of the request, in order.
  std::vector<const std::string*> images;
  if (!p.image_base64.empty()) images.push_back(&p.image_base64);
  for (const auto& m : p.more_images)
    if (!m.empty()) images.push_back(&m);
  json body;
  if (e.kind == "ollama") {
    r.url = e.base_url + "/api/chat";
    json msg{{"role", "user"}, {"content", p.text}};
    if (!images.empty()) {
      msg["images"] = json::array();
      for (const std::string* img : images) msg["images"].push_back(*img);
    }
    body = {{"model", e.model},
            {"messages", json::array({msg})},
            {"stream", false},
            {"options", {{"num_predict", p.max_tokens}}}};
    if (!schema.is_null() && !schema.is_discarded()) body["format"] = schema;
  } else if (e.kind == "anthropic") {
    r.url = e.base_url + "/v1/messages";
    r.headers.push_back("anthropic-version: 2023-06-01");
    if (!e.api_key.empty()) r.headers.push_back("x-api-key: " + e.api_key);
    json content = json::array();
    for (const std::string* img : images)
      content.push_back(
          {{"type", "image"},
           {"source", {{"type", "base64"}, {"media_type", p.image_mime}, {"data", *img}}}});
    std::string text = p.text;
    if (!p.schema_json.empty())
      text += "\nAnswer with one JSON object only, matching this JSON schema: " + p.schema_json;
    content.push_back({{"type", "text"}, {"text", text}});
    body = {{"model", e.model},
            {"max_tokens", p.max_tokens},
            {"messages", json::array({{{"role", "user"}, {"content", content}}})}};
  } else if (e.kind == "gemini") {
    r.url = e.base_url + (EndsWithVersion(e.base_url) ? "" : "/v1beta") + "/models/" + e.model +
            ":generateContent";
    if (!e.api_key.empty()) r.headers.push_back("x-goog-api-key: " + e.api_key);
    json parts = json::array({{{"text", p.text}}});
    for (const std::string* img : images)
      parts.push_back({{"inline_data", {{"mime_type", p.image_mime}, {"data", *img}}}});
    body = {{"contents", json::array({{{"role", "user"}, {"parts", parts}}})},
            {"generationConfig", {{"maxOutputTokens", p.max_tokens}}}};
    if (!schema.is_null() && !schema.is_discarded()) {
      body["generationConfig"]["responseMimeType"] = "application/json";
      body["generationConfig"]["responseSchema"] = schema;
    }
  } else {  // openai-compatible
    r.url = e.base_url + (EndsWithVersion(e.base_url) ? "" : "/v1") + "/chat/completions";
    if (!e.api_key.empty()) r.headers.push_back("Authorization: Bearer " + e.api_key);
    json content = json::array({{{"type", "text"}, {"text", p.text}}});
    for (const std::string* img : images)
      content.push_back({{"type", "image_url"},
                         {"image_url", {{"url", "data:" + p.image_mime + ";base64," + *img}}}});
    body = {{"model", e.model},
            {"max_tokens", p.max_tokens},
            {"messages", json::array({{{"role", "user"}, {"content", content}}})}};
    if (p.stream) {
      body["stream"] = true;
      body["stream_options"] = {{"include_usage", true}};
    }
    if (!schema.is_null() && !schema.is_discarded())
      body["response_format"] = {
          {"type", "json_schema"},
          {"json_schema", {{"name", "answer"}, {"strict", true}, {"schema", schema}}}};
  }
  r.body = lumen::json::Dump(body);
  return r;
}

namespace {

// A count from a reply's usage object: 0 unless it is a plausible number.
int64_t Count(const json& o, const char* k) {
  if (!o.is_object()) return 0;
  auto it = o.find(k);
  if (it == o.end() || !it->is_number()) return 0;
  const double d = it->get<double>();
  return d >= 0 && d < 1e15 ? int64_t(d) : 0;
}
// o[k] if o is an object holding k with that type, else null.
const json* Member(const json& o, const char* k, json::value_t type) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(k);
  return it != o.end() && it->type() == type ? &*it : nullptr;
}
const json* First(const json* a) {
  return a && a->is_array() && !a->empty() ? &(*a)[0] : nullptr;
}
std::string Text(const json* o, const char* k) {
  const json* t = o ? Member(*o, k, json::value_t::string) : nullptr;
  return t ? t->get<std::string>() : "";
}

// An OpenAI-style event stream: "data: {...}" lines with choices[0].delta.content, then
// "data: [DONE]". Chunks of another shape are skipped.
Result<Reply> ParseStream(const std::string& body) {
  Reply r;
  bool done = false;
  size_t at = 0;
  while (at < body.size()) {
    size_t end = body.find('\n', at);
    if (end == std::string::npos) end = body.size();
    std::string line = body.substr(at, end - at);
    at = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.starts_with("data:")) continue;
    std::string data = line.substr(5);
    if (!data.empty() && data[0] == ' ') data.erase(0, 1);
    if (data == "[DONE]") {
      done = true;
      break;
    }
    const json j = json::parse(data, nullptr, false);
    if (j.is_discarded()) return Status::Corrupt("invalid JSON in the event stream");
    const json* choice = First(Member(j, "choices", json::value_t::array));
    const json* delta = choice ? Member(*choice, "delta", json::value_t::object) : nullptr;
    r.text += Text(delta, "content");
    if (const json* u = Member(j, "usage", json::value_t::object))
      r.tokens = Count(*u, "total_tokens");
  }
  if (!done) return Status::Corrupt("truncated stream (no [DONE])");
  return r;
}

Result<Reply> ParseJsonReply(const Endpoint& e, const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::Corrupt(fmt::format("invalid JSON in the reply ({} bytes)", body.size()));
  auto shape = [](const char* what) {
    return Status::Corrupt(fmt::format("unexpected reply shape: no {}", what));
  };
  using T = json::value_t;
  Reply r;
  if (e.kind == "ollama") {
    const json* msg = Member(j, "message", T::object);
    if (!msg || !Member(*msg, "content", T::string)) return shape("message.content");
    r.text = Text(msg, "content");
    r.tokens = Count(j, "prompt_eval_count") + Count(j, "eval_count");
  } else if (e.kind == "anthropic") {
    const json* content = Member(j, "content", T::array);
    if (!content) return shape("content");
    for (const auto& c : *content)
      if (Text(&c, "type") == "text") r.text += Text(&c, "text");
    if (const json* u = Member(j, "usage", T::object))
      r.tokens = Count(*u, "input_tokens") + Count(*u, "output_tokens");
  } else if (e.kind == "gemini") {
    const json* cand = First(Member(j, "candidates", T::array));
    const json* content = cand ? Member(*cand, "content", T::object) : nullptr;
    const json* parts = content ? Member(*content, "parts", T::array) : nullptr;
    if (!parts) return shape("candidates[0].content.parts");
    for (const auto& part : *parts) r.text += Text(&part, "text");
    if (const json* u = Member(j, "usageMetadata", T::object))
      r.tokens = Count(*u, "totalTokenCount");
  } else {
    const json* choice = First(Member(j, "choices", T::array));
    const json* msg = choice ? Member(*choice, "message", T::object) : nullptr;
    if (!msg) return shape("choices[0].message");
    r.text = Text(msg, "content");
    if (const json* u = Member(j, "usage", T::object)) r.tokens = Count(*u, "total_tokens");
  }
  return r;
}

}  // namespace

Result<Reply> ParseReply(const Endpoint& e, const std::string& body) {
  try {
    if (e.kind == "openai") {  // an event stream may open with a comment or an event name
      const size_t at = std::min(body.find_first_not_of(" \t\r\n"), body.size());
      const std::string_view head = std::string_view(body).substr(at);
      if (head.starts_with("data:") || head.starts_with("event:") || head.starts_with(":"))
        return ParseStream(body);
    }
    return ParseJsonReply(e, body);
  } catch (const std::exception& ex) {  // e.g. bad_alloc; the parsers above do not throw
    return Status::Corrupt(fmt::format("unreadable reply: {}", ex.what()));
  }
}

Result<std::string> ExtractJsonObject(const std::string& raw) {
  const std::string text = lumen::json::ValidUtf8(raw);
  auto valid = [](const std::string& s) {
    const json j = json::parse(s, nullptr, false);
    return !j.is_discarded() && j.is_object();
  };
  if (valid(text)) return text;
  // The first balanced {...} (strings and escapes respected), e.g. inside ``` fences.
  for (size_t start = text.find('{'); start != std::string::npos;
       start = text.find('{', start + 1)) {
    int depth = 0;
    bool in_str = false, esc = false;
    for (size_t i = start; i < text.size(); ++i) {
      const char c = text[i];
      if (in_str) {
        if (esc)
          esc = false;
        else if (c == '\\')
          esc = true;
        else if (c == '"')
          in_str = false;
        continue;
      }
      if (c == '"') in_str = true;
      if (c == '{') ++depth;
      if (c == '}' && --depth == 0) {
        std::string s = text.substr(start, i - start + 1);
        if (valid(s)) return s;
        break;
      }
      // Unbalanced to the end: a later start closes no sooner (and scanning each one would
      // take quadratic time on a hostile "{{{{...").
      if (i + 1 == text.size()) return Status::Corrupt("no JSON object in the answer");
    }
  }
  return Status::Corrupt("no JSON object in the answer");
}

namespace {

struct BodyState {
  std::string* body;
  size_t max;
  bool too_large = false;
};
size_t Collect(char* p, size_t size, size_t n, void* state) {
  auto* st = static_cast<BodyState*>(state);
  if (st->body->size() + size * n > st->max) {
    st->too_large = true;
    return 0;  // CURLE_WRITE_ERROR: stop reading
  }
  st->body->append(p, size * n);
  return size * n;
}

struct HeaderState {
  std::string retry_after;
};
size_t OnHeader(char* p, size_t size, size_t n, void* state) {
  std::string h(p, size * n);
  const std::string key = "retry-after:";
  if (h.size() > key.size() && h.size() < 512) {
    std::string low = h.substr(0, key.size());
    for (char& c : low) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (low == key) {
      std::string v = h.substr(key.size());
      while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
      while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.erase(0, 1);
      static_cast<HeaderState*>(state)->retry_after = v;
    }
  }
  return size * n;
}

int OnProgress(void* cancel, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* f = static_cast<const std::function<bool()>*>(cancel);
  return *f && (*f)() ? 1 : 0;  // non-zero aborts the transfer
}

}  // namespace

HttpResponse Post(const HttpRequest& r, double timeout_s, size_t max_body,
                  const std::function<bool()>& cancel) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  HttpResponse out;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), curl_easy_cleanup);
  if (!c) {
    out.error = "cannot start an HTTP request";
    return out;
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(nullptr, curl_slist_free_all);
  for (const auto& h : r.headers) headers.reset(curl_slist_append(headers.release(), h.c_str()));
  HeaderState hs;
  BodyState bs{&out.body, max_body};
  char err[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c.get(), CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, r.body.data());
  curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(r.body.size()));
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &bs);
  curl_easy_setopt(c.get(), CURLOPT_MAXFILESIZE_LARGE, curl_off_t(max_body));
  curl_easy_setopt(c.get(), CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c.get(), CURLOPT_HEADERDATA, &hs);
  curl_easy_setopt(c.get(), CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c.get(), CURLOPT_XFERINFODATA, &cancel);
  curl_easy_setopt(c.get(), CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, long(timeout_s * 1000));
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT_MS, long(std::min(timeout_s, 10.0) * 1000));
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(c.get(), CURLOPT_ACCEPT_ENCODING, "");
  const CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) {
    if (bs.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
      out.too_large = true;
      out.error = fmt::format("the reply passed {:.3g} MiB (the limit): stopped reading it",
                              double(max_body) / (1 << 20));
    } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
      out.error = "cancelled";
    } else {
      out.error = err[0] ? err : curl_easy_strerror(rc);
    }
    out.body.clear();
    out.body.shrink_to_fit();
    return out;  // status 0: no (complete) answer
  }
  long status = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
  out.status = int(status);
  out.retry_after = hs.retry_after;
  out.retry_after_s = ParseRetryAfter(
      hs.retry_after,
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  return out;
}

namespace {
constexpr size_t kMaxAnswerBytes = 64 << 10;

std::string FatalMessage(const Endpoint& e, const HttpRequest& req, const HttpResponse& http,
                         int in_a_row) {
  std::string cause;
  switch (http.status) {
    case 401:
    case 403:
      cause = "the provider refused the API key";
      break;
    case 402:
      cause = "the provider refused to serve the requests (payment or quota)";
      break;
    case 404:
      cause = fmt::format("unknown model \"{}\" or wrong base URL", e.model);
      break;
    default:
      cause = fmt::format("the provider rejected the request {} times in a row", in_a_row);
  }
  const std::string text = ErrorText(http.body);
  return fmt::format("{} (HTTP {} from {}){}{}", cause, http.status, req.url,
                     text.empty() ? "" : ": ", text);
}
}  // namespace

Accounting RunJobs(const Endpoint& e, const Limits& limits, std::vector<Job> jobs,
                   const std::function<Status(std::string*)>& validate,
                   const std::function<void(const JobResult&)>& done) {
  Throttle throttle(limits, SystemClock(), 42);
  Accounting acc;
  std::mutex mu;  // acc, done() and the run state below
  int bad_requests_in_a_row = 0;
  bool any_success = false, told_clamp = false;
  double last_notice = -1e18;
  int64_t finished = 0;
  std::atomic<bool> ended{false};
  std::atomic<size_t> next{0};
  auto stop = [&] { return ended.load() || Interrupted(); };
  const std::function<bool()> cancel = stop;
  auto end_run = [&](int status, const std::string& why) {  // with mu held
    if (acc.fatal.empty()) {
      acc.fatal = log::Redact(why);
      acc.fatal_status = status;
    }
    ended = true;
  };
  auto mono = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  // Waits (a backoff, a server's Retry-After) with a progress line at most every 10 s.
  auto sleep_for = [&](double s, const std::string& why) {
    const double until = mono() + s;
    for (double now = mono(); !stop() && now < until; now = mono()) {
      if (s >= 1) {
        std::lock_guard<std::mutex> lock(mu);
        if (now - last_notice >= 10) {
          last_notice = now;
          log::Info(fmt::format("waiting {:.0f} s before retrying ({}); {} of {} done", until - now,
                                log::Redact(why), finished, jobs.size()));
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  // One job; false when it did not finish (the run was stopped) and is not to be reported.
  auto run_job = [&](Job& job, JobResult& res) -> bool {
    auto prompt = job.prompt();
    if (!prompt.ok()) {
      res.error = prompt.status().message();
      return true;
    }
    const HttpRequest req = BuildRequest(e, *prompt);
    double waited = 0;
    for (int attempt = 1; attempt <= std::max(1, limits.max_attempts); ++attempt) {
      res.attempts = attempt;
      if (!throttle.Acquire(job.estimated_tokens, stop)) return false;
      const auto t0 = std::chrono::steady_clock::now();
      HttpResponse http = Post(req, limits.timeout_s, limits.max_reply_bytes, cancel);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      Outcome outcome = Classify(http.status);
      bool retry = outcome != Outcome::kFatal;
      std::string why;
      Reply reply;
      if (outcome == Outcome::kOk) {
        auto parsed = ParseReply(e, http.body);
        Status valid = parsed.ok() ? Status::Ok() : parsed.status();
        if (parsed.ok()) {
          reply = std::move(parsed.value());
          if (reply.text.size() > kMaxAnswerBytes) {
            valid = Status::Corrupt(fmt::format("the answer has {} bytes (the limit is {} KiB)",
                                                reply.text.size(), kMaxAnswerBytes >> 10));
            retry = false;
          } else {
            reply.text = log::Redact(reply.text);
            valid = job.validate ? job.validate(&reply.text)
                    : validate   ? validate(&reply.text)
                                 : Status::Ok();
            reply.text = log::Redact(reply.text);
          }
        }
        if (!valid.ok()) {
          outcome = Outcome::kRetryable;  // a broken answer: ask again
          why = valid.message();
        }
      } else if (http.status == 0) {
        why = http.error.empty() ? "no answer" : http.error;
        if (http.too_large) retry = false, outcome = Outcome::kFatal;  // for this job only
      } else {
        const std::string text = ErrorText(http.body, 200);
        why = fmt::format("HTTP {}{}{}", http.status, text.empty() ? "" : ": ", text);
        if (http.status == 401 || http.status == 403)
          why += " (check the API key and its permissions)";
      }
      throttle.Release(outcome, double(reply.tokens), job.estimated_tokens);
      if (stop() && outcome != Outcome::kOk) return false;  // cancelled (or ended) meanwhile
      {
        std::lock_guard<std::mutex> lock(mu);
        ++acc.requests;
        ++acc.statuses[http.status];
        if (attempt > 1) ++acc.retries;
        if (outcome == Outcome::kOk) {
          any_success = true;
          bad_requests_in_a_row = 0;
        } else if (http.status == 400 || http.status == 422) {
          ++bad_requests_in_a_row;
        }
        if (EndsRun(http.status, bad_requests_in_a_row, any_success)) {
          end_run(http.status, FatalMessage(e, req, http, bad_requests_in_a_row));
          return false;
        }
      }
      if (outcome == Outcome::kOk) {
        res.ok = true;
        res.text = std::move(reply.text);
        res.tokens = reply.tokens;
        res.latency_ms = ms;
        res.error.clear();
        return true;
      }
      res.error = log::Redact(why);
      if (!retry || attempt >= limits.max_attempts) return true;
      const double asked = http.retry_after_s;
      if (asked > limits.max_retry_after_s) {
        std::lock_guard<std::mutex> lock(mu);
        if (!told_clamp)
          log::Warn(fmt::format(
              "the server asked to wait {} s before retrying (Retry-After: {}); lumen waits at "
              "most {:.0f} s",
              asked, log::Printable(lumen::json::TruncateUtf8(http.retry_after, 40)),
              limits.max_retry_after_s));
        told_clamp = true;
      }
      const double wait = throttle.Backoff(attempt, asked);
      if (waited + wait > limits.max_wait_s) {
        res.error = log::Redact(
            fmt::format("gave up after waiting {:.0f} s for retries (last: {})", waited, why));
        // A server that kept refusing (429) or failing (5xx, no answer) for the whole wait
        // budget of one photo would do the same for every other: the total wait of the run is
        // bounded by ending it here, not by each photo's budget in turn.
        std::lock_guard<std::mutex> lock(mu);
        if (outcome == Outcome::kRateLimited)
          end_run(429, fmt::format("the provider kept rate-limiting (HTTP 429) for more than "
                                   "{:.0f} s; its quota may be spent: run again later{}{}",
                                   limits.max_wait_s, http.body.empty() ? "" : ": ",
                                   ErrorText(http.body)));
        else
          end_run(http.status, fmt::format("the provider kept failing ({}) for more than {:.0f} s; "
                                           "run again later",
                                           why, limits.max_wait_s));
        return false;
      }
      waited += wait;
      sleep_for(wait, http.status == 429 ? "rate limited" : why);
    }
    return true;
  };
  auto worker = [&] {
    for (size_t i = next++; i < jobs.size() && !stop(); i = next++) {
      JobResult res;
      res.id = jobs[i].id;
      bool report = true;
      try {
        report = run_job(jobs[i], res);
      } catch (const std::exception& ex) {  // never across the thread boundary
        res.ok = false;
        res.error = fmt::format("internal error: {}", ex.what());
      } catch (...) {
        res.ok = false;
        res.error = "internal error";
      }
      if (!report || (stop() && !res.ok)) break;  // unfinished: not reported, the next run does it
      std::lock_guard<std::mutex> lock(mu);
      ++finished;
      if (res.ok) {
        ++acc.succeeded;
      } else {
        ++acc.failed;
        ++acc.failures[res.error.substr(0, res.error.find(':'))];
      }
      try {
        done(res);
      } catch (const std::exception& ex) {
        log::Error(fmt::format("internal error while storing a result: {}", ex.what()));
      } catch (...) {
        log::Error("internal error while storing a result");
      }
    }
  };
  std::vector<std::thread> threads;
  const int n = std::max(1, std::min<int>(limits.concurrency, int(jobs.size())));
  for (int t = 0; t < n; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  return acc;
}

}  // namespace lumen::llm
