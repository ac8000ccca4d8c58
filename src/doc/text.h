// Private to doc/: the bounded text collector every extractor writes into, and small helpers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "lumen/doc/document.h"

namespace lumen::doc::detail {

// Collects text up to a byte limit: runs of spaces collapse to one, paragraphs are separated by
// one newline, invalid UTF-8 becomes U+FFFD, and once the limit is reached full() says so (the
// extractors stop reading) and the result is marked truncated.
class TextSink {
 public:
  explicit TextSink(size_t max_bytes) : max_(max_bytes) {}
  void Add(std::string_view s);  // UTF-8 (repaired)
  void Space() { pending_space_ = !out_.empty(); }
  void Break() {
    pending_break_ = !out_.empty();
    pending_space_ = false;
  }
  bool full() const { return full_; }
  std::string Take() { return std::move(out_); }

 private:
  void Put(std::string_view utf8_char);
  size_t max_;
  std::string out_;
  bool pending_space_ = false, pending_break_ = false, full_ = false;
};

// A wall-clock budget checked between pages and entries.
class Deadline {
 public:
  explicit Deadline(double seconds)
      : end_(std::chrono::steady_clock::now() + std::chrono::microseconds(int64_t(seconds * 1e6))) {
  }
  bool passed() const { return std::chrono::steady_clock::now() > end_; }

 private:
  std::chrono::steady_clock::time_point end_;
};

// "2024-03-15T10:30:00" from an ISO 8601 text ("2024-03-15T10:30:00Z", "2024-03-15"), or "".
std::string IsoDate(std::string_view s);

Result<DocText> ExtractZip(const uint8_t* data, size_t size, DocFormat f, const DocLimits& lim);
Result<DocText> ExtractPdf(const uint8_t* data, size_t size, const DocLimits& lim);
Result<DocText> ExtractRtf(const uint8_t* data, size_t size, const DocLimits& lim);
// `ext`: the lower-case extension, used only for an archive refused before it is opened.
DocFormat DetectZip(const uint8_t* data, size_t size, std::string_view ext);

}  // namespace lumen::doc::detail
