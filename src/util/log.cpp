#include "lumen/util/log.h"

#include <unistd.h>

#include <atomic>
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
    j["msg"] = Printable(message);
    for (const auto& [k, v] : fields) j[k] = Printable(v);
    line = json::Dump(j) + "\n";
  } else {
    line = fmt::format("lumen: {}{}",
                       level >= Level::kWarn ? std::string(LevelName(level)) + ": " : "",
                       Printable(message));
    for (const auto& [k, v] : fields) line += fmt::format(" {}={}", k, Printable(v));
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
