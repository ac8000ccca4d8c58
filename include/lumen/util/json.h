// JSON text that is always valid: every JSON document lumen writes (records, --json output,
// reports, the catalog's JSON columns) goes through Dump(), which replaces bytes that are not
// valid UTF-8 (a path from an old camera card, a name a model cut inside a character) by U+FFFD
// instead of throwing. nlohmann's plain dump() throws type_error 316 on such bytes, and an
// exception there used to end the process.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace lumen::json {

// `indent` < 0: one line.
std::string Dump(const nlohmann::json& j, int indent = -1);

// `s` with each invalid UTF-8 sequence replaced by U+FFFD.
std::string ValidUtf8(std::string_view s);

// The longest prefix of `s` of at most `max_bytes` bytes that does not end inside a UTF-8
// sequence (invalid bytes count as one-byte characters).
std::string TruncateUtf8(std::string_view s, size_t max_bytes);

}  // namespace lumen::json
