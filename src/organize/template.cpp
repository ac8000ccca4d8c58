#include "lumen/organize/template.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace lumen::organize {
namespace {

constexpr size_t kMaxLevel = 200;

// {post}: the folder `lumen posts` gives each post.
const std::array<std::string_view, 16> kFields = {
    "year", "month", "day",  "date", "camera", "make",    "model",     "tag",
    "city", "name",  "stem", "ext",  "hash8",  "ai_name", "ai_folder", "post"};
const std::array<std::string_view, 5> kFileFields = {"name", "stem", "ext", "hash8", "ai_name"};

bool IsControl(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

// Cuts at most `n` bytes without splitting a UTF-8 sequence.
std::string CutUtf8(std::string s, size_t n) {
  if (s.size() <= n) return s;
  size_t at = n;
  while (at > 0 && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) --at;
  s.resize(at);
  return s;
}

}  // namespace

std::string SanitizeLevel(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(ch == '/' || ch == '\\' || IsControl(c) ? '_' : ch);
  }
  // No leading/trailing spaces; a level of only dots would mean "here" or "up".
  while (!out.empty() && out.back() == ' ') out.pop_back();
  size_t start = 0;
  while (start < out.size() && out[start] == ' ') ++start;
  out.erase(0, start);
  if (!out.empty() && out.find_first_not_of('.') == std::string::npos) out = "_";
  return CutUtf8(std::move(out), kMaxLevel);
}

Result<Template> Template::Parse(std::string_view text) {
  auto bad = [&](size_t pos, std::string_view why) {
    return Status::Invalid(fmt::format("template '{}': {} at position {}", text, why, pos + 1));
  };
  if (text.empty()) return bad(0, "empty");
  if (text[0] == '/') return bad(0, "absolute path (a template is relative to --into)");
  Template t;
  t.text_ = std::string(text);
  std::string literal;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (IsControl(static_cast<unsigned char>(c))) return bad(i, "control or NUL character");
    if (c == '}') return bad(i, "'}' without '{'");
    if (c != '{') {
      literal.push_back(c);
      continue;
    }
    const size_t close = text.find('}', i);
    if (close == std::string_view::npos) return bad(i, "'{' without '}'");
    std::string_view body = text.substr(i + 1, close - i - 1);
    if (body.find('{') != std::string_view::npos) return bad(i, "'{' inside a field");
    Part p;
    p.field = true;
    if (size_t bar = body.find('|'); bar != std::string_view::npos) {
      p.has_fallback = true;
      p.fallback = std::string(body.substr(bar + 1));
      body = body.substr(0, bar);
      if (p.fallback.find('/') != std::string::npos ||
          (!p.fallback.empty() && p.fallback.find_first_not_of('.') == std::string::npos))
        return bad(i, "a fallback may not contain '/' or be only dots");
    } else if (!body.empty() && body.back() == '?') {
      p.optional = true;
      body.remove_suffix(1);
    }
    if (body.starts_with("tags[") && body.ends_with("]")) {
      const std::string_view num = body.substr(5, body.size() - 6);
      if (num.empty() || num.size() > 3 || num.find_first_not_of("0123456789") != num.npos)
        return bad(i, "tags[N] needs a number");
      p.index = std::stoi(std::string(num));
      p.text = "tags";
    } else {
      p.text = std::string(body);
      if (std::find(kFields.begin(), kFields.end(), body) == kFields.end())
        return bad(i + 1, fmt::format("unknown field '{}'", body));
    }
    if (!literal.empty()) t.parts_.push_back({false, std::move(literal)});
    literal.clear();
    t.parts_.push_back(std::move(p));
    i = close;
  }
  if (!literal.empty()) t.parts_.push_back({false, std::move(literal)});
  // Literal levels of "." or ".." (checked on the text with fields as placeholders).
  std::string shape;
  for (const auto& p : t.parts_) shape += p.field ? std::string("\x01") : p.text;
  size_t at = 0;
  while (at <= shape.size()) {
    size_t slash = shape.find('/', at);
    if (slash == std::string::npos) slash = shape.size();
    const std::string level = shape.substr(at, slash - at);
    if (level == "." || level == "..") return bad(at, "'.' and '..' levels are not allowed");
    at = slash + 1;
  }
  // A folder template gets the file's name appended.
  size_t last_slash = 0;
  bool seen_slash = false;
  for (size_t i = 0; i < t.parts_.size(); ++i)
    if (!t.parts_[i].field && t.parts_[i].text.find('/') != std::string::npos)
      last_slash = i, seen_slash = true;
  bool names_file = false;
  for (size_t i = seen_slash ? last_slash : 0; i < t.parts_.size(); ++i)
    if (t.parts_[i].field &&
        std::find(kFileFields.begin(), kFileFields.end(), t.parts_[i].text) != kFileFields.end())
      names_file = true;
  if (!names_file || shape.back() == '/') {
    if (shape.back() != '/') t.parts_.push_back({false, "/"});
    Part name;
    name.field = true;
    name.text = "name";
    t.parts_.push_back(std::move(name));
    return t;
  }
  // A file name without an extension ("{ai_folder}/{ai_name}", "{stem}_{hash8}") keeps the
  // photo's own: unless the last level has {ext} or {name}, or ends in a literal ".xyz".
  bool has_ext = false;
  for (size_t i = seen_slash ? last_slash : 0; i < t.parts_.size(); ++i)
    if (t.parts_[i].field && (t.parts_[i].text == "ext" || t.parts_[i].text == "name"))
      has_ext = true;
  if (!t.parts_.back().field) {
    const std::string& tail = t.parts_.back().text;
    const size_t dot = tail.rfind('.');
    if (dot != std::string::npos && dot + 1 < tail.size() && tail.find('/', dot) == tail.npos)
      has_ext = true;
  }
  t.append_ext_ = !has_ext;
  return t;
}

Result<std::string> Template::Expand(const Fields& f) const {
  std::string out;
  for (const auto& p : parts_) {
    if (!p.field) {
      out += p.text;
      continue;
    }
    std::string v;
    if (p.text == "tags") {
      if (p.index >= 0 && size_t(p.index) < f.tags.size()) v = f.tags[size_t(p.index)];
    } else if (p.text == "tag") {
      if (!f.tags.empty()) v = f.tags[0];
    } else if (auto it = f.values.find(p.text); it != f.values.end()) {
      v = it->second;
    }
    v = SanitizeLevel(v);
    if (v.empty() && !p.optional && !p.has_fallback &&
        (p.text == "ai_name" || p.text == "ai_folder"))
      return Status::NotFound(kNoDescription);
    if (v.empty()) v = p.optional ? std::string() : p.has_fallback ? p.fallback : "unknown";
    out += v;
  }
  if (append_ext_) {
    auto it = f.values.find("ext");
    const std::string ext = it == f.values.end() ? std::string() : SanitizeLevel(it->second);
    if (!ext.empty()) {
      out.push_back('.');
      out.append(ext);
    }
  }
  // Drop empty levels (from {x?}); refuse anything that is not a plain relative path.
  std::string clean;
  size_t at = 0;
  while (at <= out.size()) {
    size_t slash = out.find('/', at);
    if (slash == std::string::npos) slash = out.size();
    std::string level = out.substr(at, slash - at);
    at = slash + 1;
    if (level.empty()) continue;
    if (level == "." || level == "..")
      return Status::Invalid(fmt::format("template '{}' gives a '{}' level", text_, level));
    if (level.size() > 255)
      return Status::Invalid(fmt::format("template '{}' gives a level over 255 bytes", text_));
    if (!clean.empty()) clean += '/';
    clean += level;
  }
  if (clean.empty())
    return Status::Invalid(fmt::format("template '{}' gives an empty path", text_));
  return clean;
}

}  // namespace lumen::organize
