#include "lumen/io/output.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "lumen/io/magic.h"

namespace lumen {
namespace {

const char* KindName(OutputKind k) {
  return k == OutputKind::kHtml ? "a report lumen wrote" : "records lumen wrote";
}

// What an existing file holds, or "" when it is an output lumen wrote (or empty): records carry
// "file_path" and "content_hash" in their first record (JSONL, or a JSON array), reports carry
// lumen's generator tag. Another program's JSON (a Takeout sidecar, package.json), an INI file,
// someone's HTML page, a photo: refused.
std::string Mismatch(int fd, OutputKind kind) {
  std::string head(size_t(1) << 20, '\0');
  ssize_t n = ::pread(fd, head.data(), head.size(), 0);
  if (n <= 0) return "";  // empty (or unreadable: the write will say)
  head.resize(size_t(n));
  size_t i = 0;
  if (head.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 byte-order mark
  while (i < head.size() && std::isspace(static_cast<unsigned char>(head[i]))) ++i;
  if (i == head.size()) return "";
  const char c = head[i];
  if (kind == OutputKind::kJson) {
    if (c == '[') {
      size_t j = i + 1;
      while (j < head.size() && std::isspace(static_cast<unsigned char>(head[j]))) ++j;
      if (j < head.size() && head[j] == ']') return "";  // an empty array
    }
    if ((c == '{' || c == '[') && head.find("\"file_path\"") != std::string::npos &&
        head.find("\"content_hash\"") != std::string::npos)
      return "";
    if (c == '{' || c == '[') return "JSON that is not lumen's records";
  }
  if (kind == OutputKind::kHtml && c == '<') {
    if (head.find("<meta name=\"generator\" content=\"lumen") != std::string::npos) return "";
    return "an HTML or XML document that lumen did not write";
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(head.data());
  Format f = DetectFormat(bytes, head.size());
  if (f != Format::kUnknown) return fmt::format("a {} image", FormatName(f));
  return DescribeNonImage(bytes, std::min<size_t>(head.size(), 512));
}

}  // namespace

Status CheckOutput(const std::string& path, OutputKind kind,
                   const std::vector<std::string>& inputs) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT)
      return Status::Io(fmt::format("cannot write {}: {}", path, strerror(errno)));
    return Status::Ok();
  }
  if (S_ISLNK(st.st_mode))
    return Status::Invalid(
        fmt::format("refusing to write {}: it is a symbolic link (name the file itself)", path));
  if (S_ISDIR(st.st_mode))
    return Status::Invalid(fmt::format("cannot write {}: it is a folder; name a file", path));
  if (!S_ISREG(st.st_mode))
    return Status::Invalid(fmt::format("refusing to write {}: not a regular file", path));
  for (const auto& in : inputs) {
    struct stat is;
    if (::stat(in.c_str(), &is) == 0 && is.st_dev == st.st_dev && is.st_ino == st.st_ino)
      return Status::Invalid(fmt::format("refusing to write {}: it is one of the inputs", path));
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Status::Io(fmt::format("cannot write {}: {}", path, strerror(errno)));
  std::string what = Mismatch(fd, kind);
  ::close(fd);
  if (!what.empty())
    return Status::Invalid(
        fmt::format("refusing to overwrite {}: it holds {}, not {} (choose another name)", path,
                    what, KindName(kind)));
  return Status::Ok();
}

Result<TempFile> OpenOutput(const std::string& path, OutputKind kind,
                            const std::vector<std::string>& inputs) {
  LUMEN_RETURN_IF_ERROR(CheckOutput(path, kind, inputs));
  return TempFile::Create(path);
}

Result<std::FILE*> OpenAppend(const std::string& path, OutputKind kind,
                              const std::vector<std::string>& inputs) {
  LUMEN_RETURN_IF_ERROR(CheckOutput(path, kind, inputs));
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) return Status::Io(fmt::format("cannot write {}: {}", path, strerror(errno)));
  std::FILE* f = ::fdopen(fd, "ab");
  if (!f) {
    ::close(fd);
    return Status::Io(fmt::format("cannot write {}: {}", path, strerror(errno)));
  }
  return f;
}

}  // namespace lumen
