// Logging to stderr: plain lines ("lumen: warning: ...") or one JSON object per line
// (--json-logs). Thread-safe; a line is written with one write(2) so lines never interleave.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lumen::log {

enum class Level { kDebug = 0, kInfo, kWarn, kError, kQuiet };

void SetLevel(Level level);
Level GetLevel();
void SetJson(bool json);
bool IsJson();

using Fields = std::vector<std::pair<std::string, std::string>>;

// Writes one log line if `level` passes the threshold. Fields become JSON members in JSON mode
// and "key=value" pairs otherwise. Text that is not valid UTF-8 is escaped, never dropped.
void Write(Level level, std::string_view message, const Fields& fields = {});

inline void Debug(std::string_view m, const Fields& f = {}) {
  Write(Level::kDebug, m, f);
}
inline void Info(std::string_view m, const Fields& f = {}) {
  Write(Level::kInfo, m, f);
}
inline void Warn(std::string_view m, const Fields& f = {}) {
  Write(Level::kWarn, m, f);
}
inline void Error(std::string_view m, const Fields& f = {}) {
  Write(Level::kError, m, f);
}

// Makes arbitrary bytes (a path with newlines or invalid UTF-8) printable on one line:
// control bytes and invalid UTF-8 become \n, \xNN escapes.
std::string Printable(std::string_view bytes);

// Secrets (API keys) lumen must never print, log or store. AddSecret registers one (and its
// JSON-escaped and percent-encoded spellings); Write() replaces every registered secret in each
// line by "[redacted]", and Redact() does the same for text going elsewhere (records, catalog).
// Secrets shorter than 4 bytes are ignored (they would redact ordinary words). Thread-safe.
void AddSecret(std::string_view secret);
std::string Redact(std::string_view text);

// Wraps a clear progress line on a terminal before a log line is written (set by Progress).
void SetBeforeWriteHook(void (*hook)());

}  // namespace lumen::log
