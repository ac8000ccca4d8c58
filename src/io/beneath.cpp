#include "lumen/io/beneath.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define LUMEN_HAVE_OPENAT2_H 1
#endif

#include <fmt/format.h>

namespace lumen {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// The levels of a plain relative path, or the reason it is not plain.
Status SplitPlain(std::string_view rel, std::vector<std::string_view>* out) {
  if (rel.empty()) return Status::Ok();
  if (rel.front() == '/')
    return Status::Invalid(fmt::format("'{}' is absolute where a relative path was expected", rel));
  size_t at = 0;
  while (at <= rel.size()) {
    size_t slash = rel.find('/', at);
    if (slash == std::string_view::npos) slash = rel.size();
    const std::string_view level = rel.substr(at, slash - at);
    if (level.empty() && slash == rel.size() && !out->empty()) break;  // one trailing '/'
    if (level.empty() || level == "." || level == "..")
      return Status::Invalid(
          fmt::format("'{}' has a '{}' level; only plain names are allowed", rel, level));
    if (level.find('\0') != std::string_view::npos)
      return Status::Invalid(fmt::format("'{}' contains a NUL byte", rel));
    out->push_back(level);
    at = slash + 1;
  }
  return Status::Ok();
}

std::string Join(std::string_view shown, std::string_view level) {
  if (shown.empty()) return std::string(level);
  if (shown.back() == '/') return fmt::format("{}{}", shown, level);
  return fmt::format("{}/{}", shown, level);
}

#ifdef LUMEN_HAVE_OPENAT2_H
std::atomic<int> g_openat2{-1};  // -1 unknown, 0 missing, 1 works

int TryOpenat2(int root, const std::string& rel) {
  if (g_openat2.load(std::memory_order_relaxed) == 0) {
    errno = ENOSYS;
    return -1;
  }
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how);
  if (fd >= 0) {
    g_openat2.store(1, std::memory_order_relaxed);
    return int(fd);
  }
  // Missing (old kernel), or refused by a seccomp filter (containers): walk from now on.
  if (errno == ENOSYS || errno == EPERM || errno == E2BIG) g_openat2.store(0);
  return -1;
}
#endif

}  // namespace

void UseOpenat2ForTest(bool use) {
#ifdef LUMEN_HAVE_OPENAT2_H
  g_openat2.store(use ? -1 : 0);
#else
  (void)use;
#endif
}

bool HaveOpenat2() {
#ifdef LUMEN_HAVE_OPENAT2_H
  if (g_openat2.load() < 0) {
    const int fd = TryOpenat2(AT_FDCWD, ".");
    if (fd >= 0) ::close(fd);
  }
  return g_openat2.load() == 1;
#else
  return false;
#endif
}

Result<UniqueFd> OpenDirBeneath(int root, std::string_view rel, bool create,
                                std::string_view shown) {
  std::vector<std::string_view> levels;
  LUMEN_RETURN_IF_ERROR(SplitPlain(rel, &levels));
  UniqueFd cur(::openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur.ok())
    return Status::Io(
        fmt::format("cannot open {}: {}", shown.empty() ? "." : shown, std::strerror(errno)));
  if (levels.empty()) return cur;
#ifdef LUMEN_HAVE_OPENAT2_H
  // The whole path at once where the kernel can; any refusal is worked out by the walk below,
  // which names the level and creates what is missing.
  if (int fd = TryOpenat2(cur.get(), std::string(rel)); fd >= 0) return UniqueFd(fd);
#endif
  std::string at(shown);
  for (const std::string_view level : levels) {
    const std::string name(level);
    at = Join(at, level);
    int fd = ::openat(cur.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      if (::mkdirat(cur.get(), name.c_str(), 0777) != 0 && errno != EEXIST) {
        const int e = errno;
        return Status::Io(fmt::format("cannot create folder {}: {}", at, std::strerror(e)));
      }
      fd = ::openat(cur.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      const int e = errno;
      struct stat st;
      if (::fstatat(cur.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode))
          return Status::Io(fmt::format("{} is a symbolic link; not followed", at));
        if (!S_ISDIR(st.st_mode)) return Status::Io(fmt::format("{} is not a folder", at));
      }
      if (e == ENOENT) return Status::NotFound(fmt::format("{}: no such folder", at));
      return Status::Io(fmt::format("cannot open {}: {}", at, std::strerror(e)));
    }
    cur = UniqueFd(fd);
  }
  return cur;
}

Result<UniqueFd> OpenDirNoSymlinks(std::string_view abs, bool create) {
  if (abs.empty() || abs.front() != '/')
    return Status::Invalid(fmt::format("'{}' is not an absolute path", abs));
  UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.ok()) return Status::Io(fmt::format("cannot open /: {}", std::strerror(errno)));
  size_t first = abs.find_first_not_of('/');
  if (first == std::string_view::npos) return root;
  return OpenDirBeneath(root.get(), abs.substr(first), create, "/");
}

Result<InDir> OpenParentNoSymlinks(std::string_view abs, bool create) {
  while (abs.size() > 1 && abs.back() == '/') abs.remove_suffix(1);
  const size_t slash = abs.rfind('/');
  if (slash == std::string_view::npos || slash + 1 >= abs.size())
    return Status::Invalid(fmt::format("'{}' names no file in a folder", abs));
  const std::string_view name = abs.substr(slash + 1);
  if (name == "." || name == "..")
    return Status::Invalid(
        fmt::format("'{}' has a '{}' level; only plain names are allowed", abs, name));
  auto dir = OpenDirNoSymlinks(slash == 0 ? std::string_view("/") : abs.substr(0, slash), create);
  if (!dir.ok()) return dir.status();
  return InDir{std::move(*dir), std::string(name)};
}

std::string CanonicalPath(const std::string& abs) {
  std::string head = abs, tail;
  while (!head.empty()) {
    char buf[PATH_MAX];
    if (::realpath(head.c_str(), buf)) {
      std::string real(buf);
      if (!tail.empty()) real += real == "/" ? tail.substr(1) : tail;
      return real;
    }
    const size_t slash = head.rfind('/');
    if (slash == std::string::npos) break;
    tail = head.substr(slash) + tail;
    head = slash == 0 ? "/" : head.substr(0, slash);
    if (head == "/" && tail.empty()) break;
  }
  return abs;
}

}  // namespace lumen
