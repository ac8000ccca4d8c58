#include "lumen/io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include <fmt/format.h>

namespace lumen {
FileIdentity IdentityFromStat(const struct stat& st) {
  FileIdentity id;
  id.size = static_cast<uint64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000ll + st.st_mtim.tv_nsec;
  id.inode = st.st_ino;
  id.device = st.st_dev;
  return id;
}

namespace {

Status ErrnoStatus(const char* what, int err) {
  std::string msg = ErrnoMessage(what, err);
  if (err == ENOENT) return Status::NotFound(msg);
  return Status::Io(msg);
}

ssize_t PreadFull(int fd, uint8_t* buf, size_t len, off_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, buf + got, len - got, off + static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(got);
}
}  // namespace

std::string ErrnoMessage(const char* what, int err) {
  if (err == ENOENT)
    return fmt::format("{}: the file disappeared (No such file or directory)", what);
  return fmt::format("{}: {}", what, strerror(err));
}

OpenedFile::OpenedFile(OpenedFile&& o) noexcept {
  *this = std::move(o);
}

OpenedFile& OpenedFile::operator=(OpenedFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
    path_ = std::move(o.path_);
    id_ = o.id_;
    format_ = o.format_;
    head_ = std::move(o.head_);
  }
  return *this;
}

OpenedFile::~OpenedFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<OpenedFile> OpenFile(const std::string& path) {
  // O_NONBLOCK: never hang on a FIFO that slipped past the scanner.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus("cannot open", errno);
  OpenedFile f;
  f.fd_ = fd;
  f.path_ = path;
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus("cannot stat", errno);
  if (!S_ISREG(st.st_mode)) return Status::Io("not a regular file");
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  f.id_ = IdentityFromStat(st);
  size_t want = std::min<uint64_t>(f.id_.size, kMagicBytes);
  f.head_.resize(want);
  ssize_t n = PreadFull(fd, f.head_.data(), want, 0);
  if (n < 0) return ErrnoStatus("cannot read", errno);
  f.head_.resize(static_cast<size_t>(n));
  f.format_ = DetectFormat(f.head_.data(), f.head_.size());
  return f;
}

Status ReadAll(OpenedFile& f, std::vector<uint8_t>* out,
               const std::function<void()>& after_read_for_test) {
  const uint64_t size = f.id_.size;
  out->resize(size);
  ::posix_fadvise(f.fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  ssize_t n = PreadFull(f.fd_, out->data(), size, 0);
  if (n < 0) return ErrnoStatus("cannot read", errno);
  if (static_cast<uint64_t>(n) != size) {
    out->resize(static_cast<size_t>(n));
    return Status::Changed(fmt::format(
        "the file changed while it was being read (expected {} bytes, got {})", size, n));
  }
  uint8_t extra;
  ssize_t more = PreadFull(f.fd_, &extra, 1, static_cast<off_t>(size));
  if (after_read_for_test) after_read_for_test();
  struct stat st;
  if (::fstat(f.fd_, &st) != 0) return ErrnoStatus("cannot stat", errno);
  FileIdentity now = IdentityFromStat(st);
  if (more > 0 || now.size != size || now.mtime_ns != f.id_.mtime_ns)
    return Status::Changed("the file changed while it was being read (size or mtime moved)");
  return Status::Ok();
}

Result<Hash128> HashFile(const std::string& path, FileIdentity* id) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Status::Io(ErrnoMessage(fmt::format("open {}", path).c_str(), errno));
  struct stat st;
  if (::fstat(fd, &st) == 0 && id) *id = IdentityFromStat(st);
  Hasher h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Status::Io(ErrnoMessage(fmt::format("read {}", path).c_str(), err));
    }
    if (n == 0) break;
    h.Update(buf.data(), size_t(n));
  }
  ::close(fd);
  return h.Final();
}

}  // namespace lumen
