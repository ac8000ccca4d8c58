#include "lumen/util/temp_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace lumen {
namespace {

std::string RandomSuffix() {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char bytes[8];
  if (::getrandom(bytes, sizeof bytes, 0) != sizeof bytes) {
    // No entropy source: the pid and a counter still make a name that O_EXCL checks.
    static unsigned counter = 0;
    unsigned v = static_cast<unsigned>(::getpid()) * 2654435761u + ++counter;
    for (auto& b : bytes) b = static_cast<unsigned char>(v >>= 3);
  }
  std::string s;
  for (unsigned char b : bytes) s += kAlphabet[b % (sizeof kAlphabet - 1)];
  return s;
}

}  // namespace

std::string ParentDir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Result<TempFile> TempFile::Create(const std::string& target, mode_t mode) {
  const std::string dir = ParentDir(target);
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::string name = fmt::format("{}/.lumen-{}.tmp", dir, RandomSuffix());
    int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd >= 0) {
      // Replacing a file: the new one keeps its permissions and (where we may) its owner, so a
      // private 0600 report or a sidecar of another user's stays as it was.
      struct stat old;
      if (::lstat(target.c_str(), &old) == 0 && S_ISREG(old.st_mode)) {
        (void)::fchmod(fd, old.st_mode & 07777);
        if (old.st_uid != ::geteuid() || old.st_gid != ::getegid())
          (void)::fchown(fd, old.st_uid, old.st_gid);
      }
      TempFile t;
      t.fd_ = fd;
      t.path_ = std::move(name);
      t.target_ = target;
      return t;
    }
    if (errno != EEXIST)
      return Status::Io(fmt::format("cannot write {}: cannot create a temporary file in {}: {}",
                                    target, dir, strerror(errno)));
  }
  return Status::Io(fmt::format("cannot write {}: no free temporary name in {}", target, dir));
}

TempFile::TempFile(TempFile&& o) noexcept {
  *this = std::move(o);
}

TempFile& TempFile::operator=(TempFile&& o) noexcept {
  if (this != &o) {
    Discard();
    fd_ = o.fd_;
    stream_ = o.stream_;
    path_ = std::move(o.path_);
    target_ = std::move(o.target_);
    failed_ = o.failed_;
    closed_ = o.closed_;
    o.fd_ = -1;
    o.stream_ = nullptr;
    o.path_.clear();
  }
  return *this;
}

TempFile::~TempFile() {
  Discard();
}

std::FILE* TempFile::stream() {
  if (!stream_ && fd_ >= 0) {
    stream_ = ::fdopen(fd_, "wb");
    if (!stream_) failed_ = true;
  }
  return stream_;
}

Status TempFile::Write(const void* data, size_t size) {
  if (fd_ < 0) return Status::Io(fmt::format("cannot write {}: not open", target_));
  if (stream_) {
    if (std::fwrite(data, 1, size, stream_) != size) {
      failed_ = true;
      return Status::Io(fmt::format("cannot write {}: {}", target_, strerror(errno)));
    }
    return Status::Ok();
  }
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      failed_ = true;
      return Status::Io(fmt::format("cannot write {}: {}", target_, strerror(errno)));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

void TempFile::CloseForWriter() {
  if (stream_)
    std::fclose(stream_);
  else if (fd_ >= 0)
    ::close(fd_);
  stream_ = nullptr;
  fd_ = -1;
  closed_ = true;
}

Status TempFile::Commit() {
  if (closed_ && !path_.empty()) {
    // Written by a library through the name: made durable and checked non-empty here (such
    // writers do not all report a full disk), so a cut file never replaces a good one.
    int err = 0;
    const int fd = ::open(path_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) err = errno;
    if (!err && st.st_size == 0) err = EIO;
    if (!err && ::fsync(fd) != 0) err = errno;
    if (fd >= 0) ::close(fd);
    if (!err && ::rename(path_.c_str(), target_.c_str()) != 0) err = errno;
    if (err) {
      Discard();
      return Status::Io(fmt::format("cannot write {}: {}", target_, strerror(err)));
    }
    path_.clear();
    return Status::Ok();
  }
  if (fd_ < 0) return Status::Io(fmt::format("cannot write {}: not open", target_));
  int err = 0;
  if (stream_ && (std::fflush(stream_) != 0 || std::ferror(stream_))) err = errno ? errno : EIO;
  if (!err && failed_) err = EIO;
  if (!err && ::fsync(fd_) != 0) err = errno;
  int closed = stream_ ? std::fclose(stream_) : ::close(fd_);
  stream_ = nullptr;
  fd_ = -1;
  if (!err && closed != 0) err = errno;
  if (!err && ::rename(path_.c_str(), target_.c_str()) != 0) err = errno;
  if (err) {
    ::unlink(path_.c_str());
    path_.clear();
    return Status::Io(fmt::format("cannot write {}: {}", target_, strerror(err)));
  }
  path_.clear();
  return Status::Ok();
}

void TempFile::Discard() {
  if (stream_) {
    std::fclose(stream_);
    stream_ = nullptr;
    fd_ = -1;
  } else if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!path_.empty()) {
    ::unlink(path_.c_str());
    path_.clear();
  }
}

}  // namespace lumen
