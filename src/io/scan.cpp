#include "lumen/io/scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

namespace lumen {

struct Scanner::Frame {
  std::string path;
  int fd = -1;
  std::vector<std::pair<std::string, unsigned char>> names;
  size_t index = 0;
  std::vector<std::string> subdirs;
  ~Frame() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {
std::string Join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

bool IsSystemName(const std::string& n) {
  static const char* kNames[] = {
      "@eaDir",     "#recycle", "#snapshot", "$RECYCLE.BIN", "System Volume Information",
      "lost+found", "__MACOSX"};
  for (const char* s : kNames)
    if (n == s) return true;
  return false;
}

std::string DirKey(const struct stat& st) {
  return fmt::format("{}:{}", st.st_dev, st.st_ino);
}
}  // namespace

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  if (ec) p = path;
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

Scanner::Scanner(std::vector<std::string> roots, ScanOptions options)
    : options_(std::move(options)) {
  for (auto& r : roots) roots_.push_back(AbsolutePath(r));
}

Scanner::~Scanner() = default;

bool Scanner::Skip(const std::string& name, const std::string& path) const {
  if (!options_.include_hidden && (name[0] == '.' || IsSystemName(name))) return true;
  for (const auto& pat : options_.exclude) {
    if (fnmatch(pat.c_str(), name.c_str(), 0) == 0) return true;
    if (fnmatch(pat.c_str(), path.c_str(), 0) == 0) return true;
  }
  return false;
}

bool Scanner::EnterDirectory(const std::string& path, ScanEntry* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    out->kind = ScanEntry::Kind::kError;
    out->path = path;
    out->status = Status::Io(ErrnoMessage("cannot read directory", errno));
    return true;
  }
  int dup_fd = ::dup(fd);
  DIR* d = dup_fd >= 0 ? ::fdopendir(dup_fd) : nullptr;
  if (!d) {
    int err = errno;
    if (dup_fd >= 0) ::close(dup_fd);
    ::close(fd);
    out->kind = ScanEntry::Kind::kError;
    out->path = path;
    out->status = Status::Io(ErrnoMessage("cannot read directory", err));
    return true;
  }
  frame_ = std::make_unique<Frame>();
  frame_->path = path;
  frame_->fd = fd;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
      continue;
    frame_->names.emplace_back(e->d_name, e->d_type);
  }
  ::closedir(d);
  std::sort(frame_->names.begin(), frame_->names.end());
  ++directories_;
  return false;
}

bool Scanner::Visit(const std::string& dir, const std::string& name, unsigned char d_type,
                    ScanEntry* out) {
  std::string path = Join(dir, name);
  if (Skip(name, path)) return false;
  struct stat st;
  bool is_link = d_type == DT_LNK;
  if (d_type == DT_UNKNOWN) {
    if (::fstatat(frame_->fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
    is_link = S_ISLNK(st.st_mode);
  }
  if (is_link || d_type == DT_UNKNOWN || d_type == DT_REG || d_type == DT_DIR) {
    int flags = is_link ? 0 : AT_SYMLINK_NOFOLLOW;
    if (::fstatat(frame_->fd, name.c_str(), &st, flags) != 0) {
      int err = errno;
      out->kind = ScanEntry::Kind::kError;
      out->path = path;
      if (is_link && err == ENOENT) {
        char target[4096];
        ssize_t n = ::readlinkat(frame_->fd, name.c_str(), target, sizeof(target) - 1);
        std::string t = n > 0 ? std::string(target, static_cast<size_t>(n)) : "?";
        out->status =
            Status::NotFound(fmt::format("broken symbolic link (target {} does not exist)", t));
      } else if (err == ELOOP) {
        out->status = Status::Io("symbolic link loop (too many levels of symbolic links)");
      } else if (err == ENOENT) {
        return false;  // vanished between readdir and stat: nothing to report
      } else {
        out->status = Status::Io(ErrnoMessage("cannot stat", err));
      }
      return true;
    }
  } else {
    return false;  // FIFO, socket, device: never opened
  }
  if (S_ISDIR(st.st_mode)) {
    if (visited_.count(DirKey(st))) {
      if (is_link) {
        out->kind = ScanEntry::Kind::kSkipped;
        out->path = path;
        out->status = Status::Unsupported(
            "symbolic link to a directory that is already being scanned (link loop or duplicate); "
            "not followed");
        return true;
      }
      return false;
    }
    visited_.insert(DirKey(st));
    frame_->subdirs.push_back(path);
    return false;
  }
  if (!S_ISREG(st.st_mode)) return false;
  out->kind = ScanEntry::Kind::kFile;
  out->path = std::move(path);
  out->identity = IdentityFromStat(st);
  out->status = Status::Ok();
  return true;
}

bool Scanner::Next(ScanEntry* out) {
  for (;;) {
    if (frame_) {
      while (frame_->index < frame_->names.size()) {
        auto& [name, type] = frame_->names[frame_->index++];
        if (Visit(frame_->path, name, type, out)) return true;
      }
      // Directory done: queue its subdirectories so that they come out in sorted order.
      for (auto it = frame_->subdirs.rbegin(); it != frame_->subdirs.rend(); ++it)
        pending_.push_back(std::move(*it));
      frame_.reset();
    }
    if (!pending_.empty()) {
      std::string dir = std::move(pending_.back());
      pending_.pop_back();
      if (EnterDirectory(dir, out)) return true;
      continue;
    }
    if (next_root_ >= roots_.size()) return false;
    const std::string& root = roots_[next_root_++];
    struct stat st;
    if (::stat(root.c_str(), &st) != 0) {
      int err = errno;
      out->kind = ScanEntry::Kind::kError;
      out->path = root;
      struct stat lst;
      if (err == ENOENT && ::lstat(root.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode))
        out->status = Status::NotFound("broken symbolic link");
      else if (err == ELOOP)
        out->status = Status::Io("symbolic link loop (too many levels of symbolic links)");
      else
        out->status = err == ENOENT ? Status::NotFound("no such file or directory")
                                    : Status::Io(ErrnoMessage("cannot stat", err));
      return true;
    }
    if (S_ISDIR(st.st_mode)) {
      if (visited_.insert(DirKey(st)).second) pending_.push_back(root);
      continue;
    }
    out->path = root;
    if (S_ISREG(st.st_mode)) {
      out->kind = ScanEntry::Kind::kFile;
      out->identity = IdentityFromStat(st);
      out->status = Status::Ok();
      return true;
    }
    // Named by the user, so said, not passed over: a FIFO, socket or device is never opened.
    out->kind = ScanEntry::Kind::kError;
    out->status = Status::Unsupported("not a regular file or folder (FIFO, socket or device)");
    return true;
  }
}

}  // namespace lumen
