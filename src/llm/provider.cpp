#include "lumen/llm/provider.h"

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/util/interrupt.h"

namespace lumen::llm {

using nlohmann::json;

std::string DefaultBaseUrl(const std::string& kind) {
  if (kind == "openai") return "https://api.openai.com";
  if (kind == "ollama") return "http://127.0.0.1:11434";
  if (kind == "anthropic") return "https://api.anthropic.com";
  if (kind == "gemini") return "https://generativelanguage.googleapis.com";
  return "";
}

HttpRequest BuildRequest(const Endpoint& e, const Prompt& p) {
  HttpRequest r;
  r.headers.push_back("Content-Type: application/json");
  const json schema = p.schema_json.empty() ? json() : json::parse(p.schema_json, nullptr, false);
  const std::string data_url = "data:" + p.image_mime + ";base64," + p.image_base64;
  json body;
  if (e.kind == "ollama") {
    r.url = e.base_url + "/api/chat";
    json msg{{"role", "user"}, {"content", p.text}};
    if (!p.image_base64.empty()) msg["images"] = json::array({p.image_base64});
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
    if (!p.image_base64.empty())
      content.push_back(
          {{"type", "image"},
           {"source",
            {{"type", "base64"}, {"media_type", p.image_mime}, {"data", p.image_base64}}}});
    std::string text = p.text;
    if (!p.schema_json.empty())
      text += "\nAnswer with one JSON object only, matching this JSON schema: " + p.schema_json;
    content.push_back({{"type", "text"}, {"text", text}});
    body = {{"model", e.model},
            {"max_tokens", p.max_tokens},
            {"messages", json::array({{{"role", "user"}, {"content", content}}})}};
  } else if (e.kind == "gemini") {
    r.url = e.base_url + "/v1beta/models/" + e.model + ":generateContent";
    if (!e.api_key.empty()) r.headers.push_back("x-goog-api-key: " + e.api_key);
    json parts = json::array({{{"text", p.text}}});
    if (!p.image_base64.empty())
      parts.push_back({{"inline_data", {{"mime_type", p.image_mime}, {"data", p.image_base64}}}});
    body = {{"contents", json::array({{{"role", "user"}, {"parts", parts}}})},
            {"generationConfig", {{"maxOutputTokens", p.max_tokens}}}};
    if (!schema.is_null() && !schema.is_discarded()) {
      body["generationConfig"]["responseMimeType"] = "application/json";
      body["generationConfig"]["responseSchema"] = schema;
    }
  } else {  // openai-compatible
    r.url = e.base_url + "/v1/chat/completions";
    if (!e.api_key.empty()) r.headers.push_back("Authorization: Bearer " + e.api_key);
    json content = json::array({{{"type", "text"}, {"text", p.text}}});
    if (!p.image_base64.empty())
      content.push_back({{"type", "image_url"}, {"image_url", {{"url", data_url}}}});
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
  r.body = body.dump();
  return r;
}

namespace {
// An OpenAI-style event stream: "data: {...}" lines with choices[0].delta.content, then
// "data: [DONE]".
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
    if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
      const auto& d = j["choices"][0].value("delta", json::object());
      if (d.contains("content") && d["content"].is_string())
        r.text += d["content"].get<std::string>();
    }
    if (j.contains("usage") && j["usage"].is_object())
      r.tokens = j["usage"].value("total_tokens", int64_t(0));
  }
  if (!done) return Status::Corrupt("truncated stream (no [DONE])");
  return r;
}
}  // namespace

Result<Reply> ParseReply(const Endpoint& e, const std::string& body) {
  if (e.kind == "openai" && body.starts_with("data:")) return ParseStream(body);
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::Corrupt(fmt::format("invalid JSON in the reply ({} bytes)", body.size()));
  Reply r;
  try {
    if (e.kind == "ollama") {
      r.text = j.at("message").at("content").get<std::string>();
      r.tokens = j.value("prompt_eval_count", int64_t(0)) + j.value("eval_count", int64_t(0));
    } else if (e.kind == "anthropic") {
      for (const auto& c : j.at("content"))
        if (c.value("type", "") == "text") r.text += c.at("text").get<std::string>();
      if (j.contains("usage"))
        r.tokens = j["usage"].value("input_tokens", int64_t(0)) +
                   j["usage"].value("output_tokens", int64_t(0));
    } else if (e.kind == "gemini") {
      for (const auto& part : j.at("candidates").at(0).at("content").at("parts"))
        if (part.contains("text")) r.text += part["text"].get<std::string>();
      if (j.contains("usageMetadata"))
        r.tokens = j["usageMetadata"].value("totalTokenCount", int64_t(0));
    } else {
      const auto& msg = j.at("choices").at(0).at("message");
      r.text = msg.at("content").is_string() ? msg["content"].get<std::string>() : "";
      if (j.contains("usage")) r.tokens = j["usage"].value("total_tokens", int64_t(0));
    }
  } catch (const json::exception& ex) {
    return Status::Corrupt(fmt::format("unexpected reply shape: {}", ex.what()));
  }
  return r;
}

std::string ValidUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = n > 0 && i + size_t(n) <= s.size();
    for (int k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 2;
    if (ok && n > 1) {  // no overlong forms, surrogates or code points past U+10FFFF
      uint32_t cp = c & (0x7F >> n);
      for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      ok = cp >= (n == 2   ? 0x80u
                  : n == 3 ? 0x800u
                           : 0x10000u) &&
           cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(s, i, size_t(n));
      i += size_t(n);
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
  return out;
}

Result<std::string> ExtractJsonObject(const std::string& raw) {
  const std::string text = ValidUtf8(raw);
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
    }
  }
  return Status::Corrupt("no JSON object in the answer");
}

namespace {

size_t Collect(char* p, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}

struct HeaderState {
  double retry_after = 0;
};
size_t OnHeader(char* p, size_t size, size_t n, void* state) {
  std::string h(p, size * n);
  const std::string key = "retry-after:";
  if (h.size() > key.size()) {
    std::string low = h.substr(0, key.size());
    for (char& c : low) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (low == key)
      static_cast<HeaderState*>(state)->retry_after = std::atof(h.c_str() + key.size());
  }
  return size * n;
}

}  // namespace

HttpResponse Post(const HttpRequest& r, double timeout_s) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  HttpResponse out;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), curl_easy_cleanup);
  if (!c) {
    out.error = "cannot start an HTTP request";
    return out;
  }
  curl_slist* headers = nullptr;
  for (const auto& h : r.headers) headers = curl_slist_append(headers, h.c_str());
  HeaderState hs;
  char err[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c.get(), CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, r.body.data());
  curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(r.body.size()));
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(c.get(), CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c.get(), CURLOPT_HEADERDATA, &hs);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, long(timeout_s * 1000));
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT_MS, long(std::min(timeout_s, 10.0) * 1000));
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(c.get(), CURLOPT_ACCEPT_ENCODING, "");
  const CURLcode rc = curl_easy_perform(c.get());
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    out.error = err[0] ? err : curl_easy_strerror(rc);
    out.body.clear();
    return out;  // status 0: no (complete) answer
  }
  long status = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
  out.status = int(status);
  out.retry_after_s = hs.retry_after;
  return out;
}

Accounting RunJobs(const Endpoint& e, const Limits& limits, std::vector<Job> jobs,
                   const std::function<Status(std::string*)>& validate,
                   const std::function<void(const JobResult&)>& done) {
  Throttle throttle(limits, SystemClock(), 42);
  Accounting acc;
  std::mutex mu;  // acc and done()
  std::atomic<size_t> next{0};
  auto stop = [] { return Interrupted(); };
  auto sleep_for = [&](double s) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(s);
    while (!stop() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  };
  auto worker = [&] {
    for (size_t i = next++; i < jobs.size() && !stop(); i = next++) {
      Job& job = jobs[i];
      JobResult res;
      res.id = job.id;
      auto prompt = job.prompt();
      if (!prompt.ok()) {
        res.error = prompt.status().message();
      } else {
        const HttpRequest req = BuildRequest(e, *prompt);
        for (int attempt = 1; attempt <= std::max(1, limits.max_attempts); ++attempt) {
          res.attempts = attempt;
          if (!throttle.Acquire(job.estimated_tokens, stop)) {
            res.error = "interrupted";
            break;
          }
          const auto t0 = std::chrono::steady_clock::now();
          HttpResponse http = Post(req, limits.timeout_s);
          const double ms =
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                  .count();
          Outcome outcome = Classify(http.status);
          std::string why;
          Reply reply;
          if (outcome == Outcome::kOk) {
            auto parsed = ParseReply(e, http.body);
            Status valid = parsed.ok() ? Status::Ok() : parsed.status();
            if (parsed.ok()) {
              reply = *parsed;
              valid = validate ? validate(&reply.text) : Status::Ok();
            }
            if (!valid.ok()) {
              outcome = Outcome::kRetryable;  // a broken answer: ask again
              why = valid.message();
            }
          } else if (http.status == 0) {
            why = http.error.empty() ? "no answer" : http.error;
          } else {
            std::string snippet = http.body.substr(0, 200);
            for (char& ch : snippet)
              if (ch == '\n' || ch == '\r') ch = ' ';
            why = fmt::format("HTTP {}{}{}", http.status, snippet.empty() ? "" : ": ", snippet);
            if (http.status == 401 || http.status == 403)
              why += " (check the API key and its permissions)";
          }
          throttle.Release(outcome, double(reply.tokens), job.estimated_tokens);
          {
            std::lock_guard<std::mutex> lock(mu);
            ++acc.requests;
            ++acc.statuses[http.status];
            if (attempt > 1) ++acc.retries;
          }
          if (outcome == Outcome::kOk) {
            res.ok = true;
            res.text = std::move(reply.text);
            res.tokens = reply.tokens;
            res.latency_ms = ms;
            res.error.clear();
            break;
          }
          res.error = why;
          if (outcome == Outcome::kFatal) break;
          if (attempt < limits.max_attempts)
            sleep_for(throttle.Backoff(attempt, http.retry_after_s));
        }
      }
      if (stop() && !res.ok) break;  // unfinished: not reported, the next run does it
      std::lock_guard<std::mutex> lock(mu);
      if (res.ok) {
        ++acc.succeeded;
      } else {
        ++acc.failed;
        ++acc.failures[res.error.substr(0, res.error.find(':'))];
      }
      done(res);
    }
  };
  std::vector<std::thread> threads;
  const int n = std::max(1, std::min<int>(limits.concurrency, int(jobs.size())));
  for (int t = 0; t < n; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  return acc;
}

}  // namespace lumen::llm
