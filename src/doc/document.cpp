// Detection, plain text and Markdown, and the shared text collector (text.h).
#include "lumen/doc/document.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "text.h"

namespace lumen::doc {
namespace detail {

namespace {

// Length of the valid UTF-8 sequence at s[0..n), 0 if it is not one.
size_t Utf8Length(const unsigned char* s, size_t n) {
  const unsigned char c = s[0];
  size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || len > n) return 0;
  for (size_t i = 1; i < len; ++i)
    if ((s[i] & 0xC0) != 0x80) return 0;
  if (len == 2 && c < 0xC2) return 0;                   // overlong
  if (len == 3 && c == 0xE0 && s[1] < 0xA0) return 0;   // overlong
  if (len == 3 && c == 0xED && s[1] >= 0xA0) return 0;  // surrogate
  if (len == 4 && (c > 0xF4 || (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))) return 0;
  return len;
}

}  // namespace

void TextSink::Put(std::string_view ch) {
  if (full_) return;
  const std::string_view sep = pending_break_ ? "\n" : pending_space_ ? " " : "";
  if (out_.size() + sep.size() + ch.size() > max_) {
    full_ = true;
    return;
  }
  out_.append(sep);
  out_.append(ch);
  pending_break_ = pending_space_ = false;
}

void TextSink::Add(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size() && !full_) {
    const unsigned char c = p[i];
    if (c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      Break();
      ++i;
    } else if (c == ' ' || c == '\t' || c == 0xA0) {
      if (!pending_break_) Space();
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      ++i;  // other control characters: dropped
    } else {
      const size_t len = Utf8Length(p + i, s.size() - i);
      if (len == 0) {
        Put("\xEF\xBF\xBD");
        ++i;
      } else {
        // U+00A0 as two bytes is a space too.
        if (len == 2 && c == 0xC2 && p[i + 1] == 0xA0) {
          if (!pending_break_) Space();
        } else {
          Put(s.substr(i, len));
        }
        i += len;
      }
    }
  }
}

std::string IsoDate(std::string_view s) {
  auto digits = [&](size_t at, size_t n) {
    if (at + n > s.size()) return false;
    for (size_t i = at; i < at + n; ++i)
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    return true;
  };
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  if (!digits(0, 4) || s.size() < 10 || s[4] != '-' || !digits(5, 2) || s[7] != '-' ||
      !digits(8, 2))
    return "";
  std::string out(s.substr(0, 10));
  if (s.size() >= 19 && (s[10] == 'T' || s[10] == ' ') && digits(11, 2) && s[13] == ':' &&
      digits(14, 2) && s[16] == ':' && digits(17, 2))
    out += "T" + std::string(s.substr(11, 8));
  else
    out += "T00:00:00";
  return out;
}

}  // namespace detail

namespace {

using detail::TextSink;

// Text by its bytes: no NUL, few control characters (UTF-16 is told by its byte order mark).
bool LooksLikeText(const uint8_t* d, size_t n) {
  if (n >= 2 && ((d[0] == 0xFF && d[1] == 0xFE) || (d[0] == 0xFE && d[1] == 0xFF))) return true;
  const size_t look = std::min<size_t>(n, 64 << 10);
  size_t control = 0;
  for (size_t i = 0; i < look; ++i) {
    const uint8_t c = d[i];
    if (c == 0) return false;
    if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != 0x1B) ++control;
  }
  return control * 50 <= look;
}

std::string LowerExtension(std::string_view name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos) return {};
  std::string ext(name.substr(dot + 1));
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// Appends code point `cp` as UTF-8.
void AppendUtf8(std::string* o, uint32_t cp) {
  if (cp < 0x80) {
    *o += char(cp);
  } else if (cp < 0x800) {
    *o += char(0xC0 | (cp >> 6));
    *o += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *o += char(0xE0 | (cp >> 12));
    *o += char(0x80 | ((cp >> 6) & 0x3F));
    *o += char(0x80 | (cp & 0x3F));
  } else {
    *o += char(0xF0 | (cp >> 18));
    *o += char(0x80 | ((cp >> 12) & 0x3F));
    *o += char(0x80 | ((cp >> 6) & 0x3F));
    *o += char(0x80 | (cp & 0x3F));
  }
}

Result<DocText> ExtractPlain(const uint8_t* d, size_t n, DocFormat f, const DocLimits& lim) {
  if (n > 0 && !LooksLikeText(d, n)) return Status::Unsupported("binary data, not text");
  DocText out;
  out.format = f;
  TextSink sink(lim.max_chars);
  // Only as much of the input as the limit can use is looked at (4 bytes a character at most,
  // some slack for collapsed whitespace): a 1 GB single line costs what 20 KB do.
  const size_t budget = std::min(n, lim.max_chars * 8 + 4096);
  std::string utf8;
  if (n >= 2 && ((d[0] == 0xFF && d[1] == 0xFE) || (d[0] == 0xFE && d[1] == 0xFF))) {
    const bool le = d[0] == 0xFF;
    for (size_t i = 2; i + 1 < budget; i += 2) {
      uint32_t u = le ? d[i] | (d[i + 1] << 8) : (d[i] << 8) | d[i + 1];
      if (u >= 0xD800 && u < 0xDC00 && i + 3 < budget) {
        const uint32_t lo = le ? d[i + 2] | (d[i + 3] << 8) : (d[i + 2] << 8) | d[i + 3];
        if (lo >= 0xDC00 && lo < 0xE000) {
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
          i += 2;
        }
      }
      AppendUtf8(&utf8, u >= 0xD800 && u < 0xE000 ? 0xFFFD : u);
    }
  } else {
    size_t at = n >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF ? 3 : 0;
    // Mostly invalid UTF-8 with high bytes: Latin-1 (cp1252-ish) text, converted.
    size_t bad = 0, high = 0;
    for (size_t i = at; i < budget;) {
      if (d[i] < 0x80) {
        ++i;
        continue;
      }
      ++high;
      size_t len = 0;
      const unsigned char c = d[i];
      len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
      bool ok = len > 0 && i + len <= budget;
      for (size_t k = 1; ok && k < len; ++k) ok = (d[i + k] & 0xC0) == 0x80;
      if (!ok) {
        ++bad;
        ++i;
      } else {
        i += len;
      }
    }
    if (high > 0 && bad * 2 > high) {
      for (size_t i = at; i < budget; ++i) AppendUtf8(&utf8, d[i]);
    } else {
      utf8.assign(reinterpret_cast<const char*>(d + at), budget - at);
    }
  }
  // Markdown: the first "# " heading is the title.
  if (f == DocFormat::kMarkdown) {
    size_t at = 0;
    while (at < utf8.size() && at < 64 * 1024) {
      const size_t end = std::min(utf8.find('\n', at), utf8.size());
      std::string_view line(utf8.data() + at, end - at);
      if (line.starts_with("# ")) {
        line.remove_prefix(2);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '#'))
          line.remove_suffix(1);
        TextSink t(300);
        t.Add(line);
        out.title = t.Take();
        break;
      }
      at = end + 1;
    }
  }
  sink.Add(utf8);
  out.truncated = sink.full() || budget < n;
  out.text = sink.Take();
  return out;
}

}  // namespace

const char* DocFormatName(DocFormat f) {
  switch (f) {
    case DocFormat::kText:
      return "text";
    case DocFormat::kMarkdown:
      return "markdown";
    case DocFormat::kPdf:
      return "pdf";
    case DocFormat::kDocx:
      return "docx";
    case DocFormat::kOdt:
      return "odt";
    case DocFormat::kPptx:
      return "pptx";
    case DocFormat::kXlsx:
      return "xlsx";
    case DocFormat::kOds:
      return "ods";
    case DocFormat::kOdp:
      return "odp";
    case DocFormat::kRtf:
      return "rtf";
    case DocFormat::kEpub:
      return "epub";
    case DocFormat::kUnknown:
      break;
  }
  return "unknown";
}

DocFormat DetectDocument(const uint8_t* data, size_t size, std::string_view name) {
  auto starts = [&](const char* m) {
    const size_t k = std::strlen(m);
    return size >= k && std::memcmp(data, m, k) == 0;
  };
  if (starts("%PDF-")) return DocFormat::kPdf;
  if (starts("{\\rtf")) return DocFormat::kRtf;
  const std::string ext = LowerExtension(name);
  if (starts("PK\x03\x04")) return detail::DetectZip(data, size, ext);
  const bool md = ext == "md" || ext == "markdown" || ext == "mdown";
  const bool txt = ext == "txt" || ext == "text";
  if ((md || txt) && LooksLikeText(data, size)) return md ? DocFormat::kMarkdown : DocFormat::kText;
  return DocFormat::kUnknown;
}

Result<DocText> ExtractText(const uint8_t* data, size_t size, DocFormat f, const DocLimits& lim) {
  switch (f) {
    case DocFormat::kText:
    case DocFormat::kMarkdown:
      return ExtractPlain(data, size, f, lim);
    case DocFormat::kPdf:
      return detail::ExtractPdf(data, size, lim);
    case DocFormat::kRtf:
      return detail::ExtractRtf(data, size, lim);
    case DocFormat::kDocx:
    case DocFormat::kOdt:
    case DocFormat::kPptx:
    case DocFormat::kXlsx:
    case DocFormat::kOds:
    case DocFormat::kOdp:
    case DocFormat::kEpub:
      return detail::ExtractZip(data, size, f, lim);
    case DocFormat::kUnknown:
      break;
  }
  return Status::Unsupported("not a document format lumen reads");
}

}  // namespace lumen::doc
