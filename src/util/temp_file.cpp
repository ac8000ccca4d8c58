#include "lumen/util/temp_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <utility>

#include <fmt/format.h>

namespace lumen {
namespace {

std::string RandomName() {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char bytes[8];
  if (::getrandom(bytes, sizeof bytes, 0) != sizeof bytes) {
    // No entropy source: the pid, time and a counter still make a name that O_EXCL checks.
    static std::atomic<unsigned> counter{0};
    unsigned v = static_cast<unsigned>(::getpid()) * 2654435761u + ++counter +
                 static_cast<unsigned>(::time(nullptr));
    for (auto& b : bytes) b = static_cast<unsigned char>(v >>= 3);
  }
  std::string s = ".lumen-";
  for (unsigned char b : bytes) s += kAlphabet[b % (sizeof kAlphabet - 1)];
  return s + ".tmp";
}

// Open temporaries, in fixed slots a signal handler can walk (atomics and unlinkat only).
struct Slot {
  std::atomic<int> dir{-1};
  char name[32] = {};
};
constexpr size_t kSlots = 4096;
Slot g_slots[kSlots];
std::mutex g_slots_mu;

size_t Register(int dir, const std::string& name) {
  std::lock_guard<std::mutex> lock(g_slots_mu);
  for (size_t k = 0; k < kSlots; ++k) {
    if (g_slots[k].dir.load() >= 0) continue;
    std::snprintf(g_slots[k].name, sizeof g_slots[k].name, "%s", name.c_str());
    g_slots[k].dir.store(dir);
    return k + 1;
  }
  return 0;  // more open than slots: still removed by its destructor
}

}  // namespace

int RenameNoReplace(int from_dir, const std::string& from, int to_dir, const std::string& to) {
  if (::renameat2(from_dir, from.c_str(), to_dir, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  if (::linkat(from_dir, from.c_str(), to_dir, to.c_str(), 0) != 0) return errno;
  (void)::unlinkat(from_dir, from.c_str(), 0);
  return 0;
}

std::string ParentDir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void TempFile::RemoveAll() {
  for (auto& slot : g_slots) {
    const int dir = slot.dir.exchange(-1);
    if (dir >= 0) (void)::unlinkat(dir, slot.name, 0);
  }
}

Result<TempFile> TempFile::CreateIn(int dir, const std::string& shown_dir, mode_t mode) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::string name = RandomName();
    int fd =
        ::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST) continue;
    if (fd < 0)
      return Status::Io(
          fmt::format("cannot create a temporary file in {}: {}", shown_dir, strerror(errno)));
    TempFile t;
    t.fd_ = fd;
    t.dir_ = ::fcntl(dir, F_DUPFD_CLOEXEC, 0);
    if (t.dir_ < 0) {
      const int err = errno;
      (void)::unlinkat(dir, name.c_str(), 0);
      return Status::Io(
          fmt::format("cannot create a temporary file in {}: {}", shown_dir, strerror(err)));
    }
    t.path_ = (shown_dir == "/" ? "" : shown_dir) + "/" + name;
    t.name_ = std::move(name);
    t.slot_ = Register(t.dir_, t.name_);
    return t;
  }
  return Status::Io(fmt::format("no free temporary name in {}", shown_dir));
}

Result<TempFile> TempFile::Create(const std::string& target, mode_t mode) {
  const std::string dir = ParentDir(target);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::Io(fmt::format("cannot write {}: {}", target, strerror(errno)));
  auto t = CreateIn(dfd, dir, mode);
  ::close(dfd);
  if (!t.ok()) return Status::Io(fmt::format("cannot write {}: {}", target, t.status().message()));
  t->target_ = target;
  const auto slash = target.find_last_of('/');
  t->target_leaf_ = slash == std::string::npos ? target : target.substr(slash + 1);
  // Replacing a file: the new one keeps its permissions and (where we may) its owner, so a
  // private 0600 report or another user's sidecar stays as it was.
  struct stat old;
  if (::fstatat(t->dir_, t->target_leaf_.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISREG(old.st_mode)) {
    (void)::fchmod(t->fd_, old.st_mode & 07777);
    if (old.st_uid != ::geteuid() || old.st_gid != ::getegid())
      (void)::fchown(t->fd_, old.st_uid, old.st_gid);
  }
  return t;
}

TempFile::TempFile(TempFile&& o) noexcept {
  *this = std::move(o);
}

TempFile& TempFile::operator=(TempFile&& o) noexcept {
  if (this != &o) {
    Discard();
    if (fd_ >= 0) ::close(fd_);
    if (dir_ >= 0) ::close(dir_);
    fd_ = std::exchange(o.fd_, -1);
    dir_ = std::exchange(o.dir_, -1);
    stream_ = std::exchange(o.stream_, nullptr);
    name_ = std::move(o.name_);
    path_ = std::move(o.path_);
    target_ = std::move(o.target_);
    target_leaf_ = std::move(o.target_leaf_);
    slot_ = std::exchange(o.slot_, 0);
    failed_ = o.failed_;
    closed_ = o.closed_;
    o.path_.clear();
    o.name_.clear();
  }
  return *this;
}

TempFile::~TempFile() {
  Discard();
  if (fd_ >= 0) ::close(fd_);
  if (dir_ >= 0) ::close(dir_);
}

void TempFile::Unregister() {
  if (slot_ > 0) g_slots[slot_ - 1].dir.store(-1);
  slot_ = 0;
}

std::FILE* TempFile::stream() {
  if (!stream_ && fd_ >= 0 && !closed_) {
    // The stream gets its own descriptor, so fd() stays valid whatever closes the stream.
    const int dup = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
    stream_ = dup >= 0 ? ::fdopen(dup, "wb") : nullptr;
    if (!stream_) {
      if (dup >= 0) ::close(dup);
      failed_ = true;
    }
  }
  return stream_;
}

Status TempFile::Write(const void* data, size_t size) {
  const std::string& shown = target_.empty() ? path_ : target_;
  if (fd_ < 0 || closed_) return Status::Io(fmt::format("cannot write {}: not open", shown));
  if (stream_) {
    if (std::fwrite(data, 1, size, stream_) != size) {
      failed_ = true;
      return Status::Io(fmt::format("cannot write {}: {}", shown, strerror(errno)));
    }
    return Status::Ok();
  }
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      failed_ = true;
      return Status::Io(fmt::format("cannot write {}: {}", shown, strerror(errno)));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status TempFile::CloseStream(int* err) {
  if (stream_) {
    if ((std::fflush(stream_) != 0 || std::ferror(stream_)) && !*err) *err = errno ? errno : EIO;
    if (std::fclose(stream_) != 0 && !*err) *err = errno;
    stream_ = nullptr;
  }
  if (failed_ && !*err) *err = EIO;
  return Status::Ok();
}

void TempFile::CloseForWriter() {
  int err = 0;
  (void)CloseStream(&err);
  if (err) failed_ = true;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  closed_ = true;
}

Status TempFile::Commit(bool durable) {
  if (name_.empty() || target_leaf_.empty())
    return Status::Internal(fmt::format("cannot write {}: no temporary to commit", target_));
  int err = 0;
  if (closed_) {
    // Written by a library through the name: made durable and checked non-empty here (such
    // writers do not all report a full disk), so a cut file never replaces a good one.
    const int fd = ::openat(dir_, name_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) err = errno;
    if (!err && st.st_size == 0) err = EIO;
    if (!err && failed_) err = EIO;
    if (!err && durable && ::fsync(fd) != 0) err = errno;
    if (fd >= 0) ::close(fd);
  } else {
    (void)CloseStream(&err);
    if (!err && durable && ::fsync(fd_) != 0) err = errno;
    if (::close(fd_) != 0 && !err) err = errno;
    fd_ = -1;
  }
  if (!err && ::renameat(dir_, name_.c_str(), dir_, target_leaf_.c_str()) != 0) err = errno;
  if (err) {
    Discard();
    return Status::Io(fmt::format("cannot write {}: {}", target_, strerror(err)));
  }
  Unregister();
  name_.clear();
  path_.clear();
  return Status::Ok();
}

Status TempFile::Place(int to, const std::string& leaf, bool replace, const std::string& shown) {
  if (name_.empty()) return Status::Internal(fmt::format("cannot write {}: no temporary", shown));
  int err = 0;
  (void)CloseStream(&err);
  if (err) {
    Discard();
    return Status::Io(fmt::format("cannot write {}: {}", shown, strerror(err)));
  }
  const int rc = replace ? (::renameat(dir_, name_.c_str(), to, leaf.c_str()) == 0 ? 0 : errno)
                         : RenameNoReplace(dir_, name_, to, leaf);
  if (rc != 0) {
    err = rc;
    Discard();
    if (err == EEXIST)
      return Status::Invalid(fmt::format("{} appeared meanwhile: not replaced", shown));
    return Status::Io(fmt::format("cannot write {}: {}", shown, strerror(err)));
  }
  Unregister();
  name_.clear();
  path_.clear();
  return Status::Ok();
}

void TempFile::Discard() {
  int err = 0;
  (void)CloseStream(&err);
  if (!name_.empty() && dir_ >= 0) {
    Unregister();
    (void)::unlinkat(dir_, name_.c_str(), 0);
  }
  name_.clear();
  path_.clear();
}

}  // namespace lumen
