// Opening folders beneath a trusted folder without following symbolic links.
//
// Every level of a path is opened with O_NOFOLLOW (openat2(2) with RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS where the kernel has it, else a walk one level at a time with
// openat(O_PATH | O_DIRECTORY | O_NOFOLLOW), creating missing levels with mkdirat(2) when asked),
// so a symbolic link planted anywhere along a path is refused with its name instead of followed.
// The result is a folder descriptor; callers then act on one name in it with the *at() calls
// (renameat2, linkat, openat with O_NOFOLLOW, unlinkat), so nothing they create or move can land
// outside the folder they meant, even if a level is swapped for a link afterwards.
//
// Relative paths given here must be plain: no leading '/', no "." or ".." level, no empty level
// (Invalid otherwise).
#pragma once

#include <string>
#include <string_view>

#include "lumen/util/status.h"

namespace lumen {

// A file descriptor that closes itself.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_ = -1;
};

// Opens the folder `rel` beneath the open folder `root` ("" is `root` itself), never following a
// symbolic link and never leaving `root`. With `create`, missing levels are made (mode 0777 less
// the umask). `shown` is how the caller names `root` in messages. Errors: Invalid (a path that is
// not plain), NotFound (a missing level, without `create`), Io ("<path> is a symbolic link; not
// followed", "<path> is not a folder", permission denied, a full disk, ...). The descriptor is
// O_PATH: use it as the dirfd of *at() calls.
Result<UniqueFd> OpenDirBeneath(int root, std::string_view rel, bool create,
                                std::string_view shown = "");

// The same for an absolute path, from "/": no level of `abs` may be a symbolic link.
Result<UniqueFd> OpenDirNoSymlinks(std::string_view abs, bool create);

// The folder holding the absolute path `abs` (opened as OpenDirNoSymlinks does) and the last
// level's name. Invalid for "/" or a path that is not plain.
struct InDir {
  UniqueFd dir;
  std::string name;
};
Result<InDir> OpenParentNoSymlinks(std::string_view abs, bool create);

// `abs` (absolute, lexically normal) with every symbolic link resolved: realpath(3) of its
// deepest existing ancestor, then the remaining levels as written. For recording where a folder
// really is when a plan is made, so that later runs walk that path without following links.
std::string CanonicalPath(const std::string& abs);

// Whether openat2(2) with RESOLVE_NO_SYMLINKS works here (cached); the walk is used otherwise.
bool HaveOpenat2();
// Tests: false makes every call walk level by level (as where openat2 is missing).
void UseOpenat2ForTest(bool use);

}  // namespace lumen
