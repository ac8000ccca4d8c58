// RTF: a small reader of the text it holds. Groups are a stack of states; destinations that are
// not body text (font and colour tables, stylesheets, pictures, {\* ...} groups) are skipped,
// except the \info group's \title and \author. \'hh is a Windows-1252 byte, \uN a UTF-16 unit
// followed by \ucN fallback characters to skip.
#include <string>
#include <vector>

#include <fmt/format.h>

#include "text.h"

namespace lumen::doc::detail {
namespace {

// Windows-1252's 0x80-0x9F; the rest is Latin-1.
constexpr uint16_t kCp1252[32] = {0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                  0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,
                                  0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                  0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};

void Utf8(std::string* o, uint32_t cp) {
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

enum class Dest { kBody, kSkip, kTitle, kAuthor, kInfo };

struct State {
  Dest dest = Dest::kBody;
  int uc = 1;  // fallback characters after \uN
};

}  // namespace

Result<DocText> ExtractRtf(const uint8_t* data, size_t size, const DocLimits& lim) {
  constexpr int kMaxDepth = 1000;
  DocText out;
  out.format = DocFormat::kRtf;
  TextSink body(lim.max_chars);
  std::string title, author;
  std::vector<State> stack{State{}};
  int skip_chars = 0;  // fallback characters still to skip after \uN
  uint32_t high = 0;   // a pending UTF-16 high surrogate
  bool group_start = false;
  auto emit = [&](uint32_t cp) {
    if (skip_chars > 0) {
      --skip_chars;
      return;
    }
    std::string s;
    Utf8(&s, cp);
    switch (stack.back().dest) {
      case Dest::kBody:
        body.Add(s);
        break;
      case Dest::kTitle:
        if (title.size() < 300) title += s;
        break;
      case Dest::kAuthor:
        if (author.size() < 300) author += s;
        break;
      default:
        break;
    }
  };
  size_t i = 0;
  while (i < size && !body.full()) {
    const char c = char(data[i]);
    if (c == '{') {
      if (stack.size() >= kMaxDepth) return Status::Corrupt("RTF nests too deep");
      stack.push_back(stack.back());
      group_start = true;
      ++i;
      continue;
    }
    if (c == '}') {
      if (stack.size() > 1) stack.pop_back();
      group_start = false;
      ++i;
      continue;
    }
    if (c == '\\') {
      ++i;
      if (i >= size) break;
      const char n = char(data[i]);
      if (n == '\\' || n == '{' || n == '}') {
        emit(uint8_t(n));
        ++i;
      } else if (n == '\'') {
        auto hex = [](char h) {
          return h >= '0' && h <= '9'   ? h - '0'
                 : h >= 'a' && h <= 'f' ? h - 'a' + 10
                 : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                        : -1;
        };
        const int a = i + 1 < size ? hex(char(data[i + 1])) : -1;
        const int b = i + 2 < size ? hex(char(data[i + 2])) : -1;
        if (a >= 0 && b >= 0) {
          const uint8_t v = uint8_t(a * 16 + b);
          emit(v >= 0x80 && v < 0xA0 ? kCp1252[v - 0x80] : v);
          i += 3;
        } else {
          ++i;
        }
      } else if (n == '*') {
        stack.back().dest = Dest::kSkip;
        ++i;
      } else if (n == '~') {
        emit(0xA0);
        ++i;
      } else if (n == '\n' || n == '\r') {
        if (stack.back().dest == Dest::kBody) body.Break();
        ++i;
      } else if (std::isalpha(static_cast<unsigned char>(n))) {
        size_t k = i;
        while (k < size && std::isalpha(static_cast<unsigned char>(data[k])) && k - i < 32) ++k;
        const std::string word(reinterpret_cast<const char*>(data + i), k - i);
        bool neg = false;
        if (k < size && data[k] == '-') neg = true, ++k;
        long num = 0;
        bool has_num = false;
        while (k < size && std::isdigit(static_cast<unsigned char>(data[k]))) {
          if (num < 1000000) num = num * 10 + (data[k] - '0');
          has_num = true;
          ++k;
        }
        if (neg) num = -num;
        if (k < size && data[k] == ' ') ++k;  // the delimiter space belongs to the word
        i = k;
        State& st = stack.back();
        if (group_start &&
            (word == "fonttbl" || word == "colortbl" || word == "stylesheet" || word == "pict" ||
             word == "header" || word == "footer" || word == "footnote" || word == "object" ||
             word == "listtable" || word == "listoverridetable" || word == "rsidtbl" ||
             word == "themedata" || word == "datastore" || word == "latentstyles" ||
             word == "xmlnstbl" || word == "generator" || word == "fldinst"))
          st.dest = Dest::kSkip;
        else if (group_start && word == "info")
          st.dest = Dest::kInfo;
        else if (st.dest == Dest::kInfo && word == "title")
          st.dest = Dest::kTitle;
        else if (st.dest == Dest::kInfo && word == "author")
          st.dest = Dest::kAuthor;
        else if (word == "par" || word == "line" || word == "sect" || word == "page" ||
                 word == "row")
          body.Break();
        else if (word == "tab" || word == "cell")
          emit(' ');
        else if (word == "emdash")
          emit(0x2014);
        else if (word == "endash")
          emit(0x2013);
        else if (word == "lquote")
          emit(0x2018);
        else if (word == "rquote")
          emit(0x2019);
        else if (word == "ldblquote")
          emit(0x201C);
        else if (word == "rdblquote")
          emit(0x201D);
        else if (word == "bullet")
          emit(0x2022);
        else if (word == "uc" && has_num)
          st.uc = int(std::max(0L, std::min(num, 10L)));
        else if (word == "u" && has_num) {
          uint32_t u = uint32_t(num < 0 ? num + 65536 : num) & 0xFFFF;
          if (u >= 0xD800 && u < 0xDC00) {
            high = u;
          } else {
            if (u >= 0xDC00 && u < 0xE000 && high)
              u = 0x10000 + ((high - 0xD800) << 10) + (u - 0xDC00);
            else if (u >= 0xD800 && u < 0xE000)
              u = 0xFFFD;
            high = 0;
            const int pending = skip_chars;
            skip_chars = 0;
            emit(u);
            skip_chars = pending;
          }
          skip_chars = st.uc;
        } else if (word == "bin" && has_num && num > 0) {
          i = std::min(size, i + size_t(num));  // binary data: skipped whole
        }
        group_start = false;
      } else {
        ++i;  // another control symbol: ignored
      }
      continue;
    }
    group_start = false;
    if (c == '\n' || c == '\r') {
      ++i;
      continue;
    }
    emit(uint8_t(c) >= 0x80 && uint8_t(c) < 0xA0 ? kCp1252[uint8_t(c) - 0x80] : uint8_t(c));
    ++i;
  }
  TextSink t(300), a(300);
  t.Add(title);
  a.Add(author);
  out.title = t.Take();
  out.author = a.Take();
  out.truncated = body.full();
  out.text = body.Take();
  return out;
}

}  // namespace lumen::doc::detail
