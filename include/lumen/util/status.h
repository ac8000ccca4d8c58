// Status and Result<T>: expected failures as values.
//
// A Status is either OK or carries a Code and a human-readable message that names what failed
// and why ("truncated JPEG data", "image is 60000x60000 (3600 MP), above the 100 MP limit").
// Pipeline stages return these; nothing that a bad input file can trigger throws across a stage
// boundary or aborts the process.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace lumen {

enum class Code {
  kOk = 0,
  kNotFound,     // file or record does not exist (any more)
  kInvalid,      // bad argument or configuration
  kCorrupt,      // data is damaged or truncated
  kUnsupported,  // not an image / format not handled
  kTooLarge,     // above a configured size or pixel limit
  kIo,           // read/write/permission errors
  kChanged,      // the file changed while it was being read
  kInterrupted,  // stopped by a signal
  kInternal,     // a bug or a library failure that should not happen
};

const char* CodeName(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Invalid(std::string m) { return {Code::kInvalid, std::move(m)}; }
  static Status Corrupt(std::string m) { return {Code::kCorrupt, std::move(m)}; }
  static Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
  static Status TooLarge(std::string m) { return {Code::kTooLarge, std::move(m)}; }
  static Status Io(std::string m) { return {Code::kIo, std::move(m)}; }
  static Status Changed(std::string m) { return {Code::kChanged, std::move(m)}; }
  static Status Interrupted(std::string m) { return {Code::kInterrupted, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt: truncated JPEG data"
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Result<T>: a value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace lumen

#define LUMEN_RETURN_IF_ERROR(expr) \
  do {                              \
    ::lumen::Status _st = (expr);   \
    if (!_st.ok()) return _st;      \
  } while (0)
