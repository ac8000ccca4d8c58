#include "lumen/util/log.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/util/json.h"

namespace lumen::log {
namespace {
std::atomic<Level> g_level{Level::kInfo};
std::atomic<bool> g_json{false};
std::atomic<void (*)()> g_hook{nullptr};
std::mutex g_mu;
std::mutex g_secrets_mu;
std::vector<std::string> g_secrets;  // longest first
std::atomic<bool> g_have_secrets{false};

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warning";
    case Level::kError:
      return "error";
    case Level::kQuiet:
      return "quiet";
  }
  return "?";
}

// Length of the valid UTF-8 sequence at s[i], or 0 if invalid.
size_t Utf8Len(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  return n;
}
}  // namespace

void SetLevel(Level level) {
  g_level = level;
}
Level GetLevel() {
  return g_level;
}
void SetJson(bool json) {
  g_json = json;
}
bool IsJson() {
  return g_json;
}
void SetBeforeWriteHook(void (*hook)()) {
  g_hook = hook;
}

void AddSecret(std::string_view secret) {
  if (secret.size() < 4) return;
  std::vector<std::string> forms{std::string(secret)};
  std::string json, json_slash, pct;  // JSON-escaped without and with "\/"
  for (unsigned char c : secret) {
    std::string piece(1, char(c));
    if (c == '"' || c == '\\') piece.insert(0, 1, '\\');
    if (c < 0x20) piece = fmt::format("\\u{:04x}", c);
    json += piece;
    json_slash += c == '/' ? std::string("\\/") : piece;
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      pct += char(c);
    else
      pct += fmt::format("%{:02X}", c);
  }
  forms.push_back(json);
  forms.push_back(json_slash);
  forms.push_back(pct);
  std::lock_guard lock(g_secrets_mu);
  for (auto& f : forms)
    if (std::find(g_secrets.begin(), g_secrets.end(), f) == g_secrets.end())
      g_secrets.push_back(std::move(f));
  std::sort(g_secrets.begin(), g_secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  g_have_secrets = true;
}

std::string Redact(std::string_view text) {
  std::string out(text);
  if (!g_have_secrets.load()) return out;
  std::lock_guard lock(g_secrets_mu);
  for (const auto& s : g_secrets)
    for (size_t at = out.find(s); at != std::string::npos; at = out.find(s, at + 10))
      out.replace(at, s.size(), "[redacted]");
  return out;
}

std::string Printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (c == '\\') {
      out += "\\\\";
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
    } else if (size_t n = Utf8Len(s, i); n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += fmt::format("\\x{:02x}", c);
      ++i;
    }
  }
  return out;
}

void Write(Level level, std::string_view message, const Fields& fields) {
  if (level < g_level.load()) return;
  std::string line;
  if (g_json) {
    nlohmann::json j;
    auto now = std::chrono::system_clock::now().time_since_epoch();
    j["ts"] = std::chrono::duration<double>(now).count();
    j["level"] = LevelName(level);
    j["msg"] = Printable(Redact(message));
    for (const auto& [k, v] : fields) j[k] = Printable(Redact(v));
    line = json::Dump(j) + "\n";
  } else {
    line = fmt::format("lumen: {}{}",
                       level >= Level::kWarn ? std::string(LevelName(level)) + ": " : "",
                       Printable(Redact(message)));
    for (const auto& [k, v] : fields) line += fmt::format(" {}={}", k, Printable(Redact(v)));
    line += "\n";
  }
  std::lock_guard lock(g_mu);
  if (auto hook = g_hook.load()) hook();
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(2, line.data() + off, line.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

}  // namespace lumen::log
