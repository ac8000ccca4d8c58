#include "lumen/util/status.h"

namespace lumen {

const char* CodeName(Code c) {
  switch (c) {
    case Code::kOk:
      return "ok";
    case Code::kNotFound:
      return "not found";
    case Code::kInvalid:
      return "invalid";
    case Code::kCorrupt:
      return "corrupt";
    case Code::kUnsupported:
      return "unsupported";
    case Code::kTooLarge:
      return "too large";
    case Code::kIo:
      return "i/o error";
    case Code::kChanged:
      return "changed";
    case Code::kInterrupted:
      return "interrupted";
    case Code::kInternal:
      return "internal error";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName(code_)) + ": " + message_;
}

}  // namespace lumen
