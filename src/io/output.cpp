#include "lumen/io/output.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "lumen/io/magic.h"

namespace lumen {
namespace {

const char* KindName(OutputKind k) {
  return k == OutputKind::kHtml ? "an HTML report" : "a JSON/JSONL file";
}

// What the first bytes of an existing file look like, or "" when they fit `kind`.
std::string Mismatch(int fd, OutputKind kind) {
  unsigned char head[64];
  ssize_t n = ::pread(fd, head, sizeof head, 0);
  if (n <= 0) return "";  // empty (or unreadable: the write will say)
  size_t i = 0;
  while (i < size_t(n) &&
         (head[i] == ' ' || head[i] == '\t' || head[i] == '\n' || head[i] == '\r' ||
          head[i] == 0xEF || head[i] == 0xBB || head[i] == 0xBF))
    ++i;  // blanks and a UTF-8 byte-order mark
  if (i == size_t(n)) return "";
  const unsigned char c = head[i];
  if (kind == OutputKind::kJson && (c == '{' || c == '[')) return "";
  if (kind == OutputKind::kHtml && c == '<') return "";
  Format f = DetectFormat(head, size_t(n));
  if (f != Format::kUnknown) return fmt::format("a {} image", FormatName(f));
  return DescribeNonImage(head, size_t(n));
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
    return Status::Invalid(fmt::format(
        "refusing to overwrite {}: it holds {}, not {} that lumen writes (choose another name)",
        path, what, KindName(kind)));
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
