// Temporary files that cannot be hijacked, and replacing a file by one only when it is complete.
//
// A TempFile is a new file created with O_CREAT|O_EXCL|O_NOFOLLOW under a random short name
// (".lumen-XXXXXXXX.tmp", 19 bytes, so a legal 255-byte target still has room beside it): a
// planted file or symbolic link at that name is never opened or written through, creation fails
// rather than reuse it. It lives in its folder's descriptor, so it is renamed into place with
// renameat(2) in the folder that was checked, even if a level of the path is swapped meanwhile.
// The destructor removes it unless Commit() or Place() named it, so a failed or interrupted
// write never leaves a half-written target or a stray temporary behind; a second signal (which
// ends the process at once, util/interrupt.h) removes every open one first.
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <string>

#include "lumen/util/status.h"

namespace lumen {

class TempFile {
 public:
  // Beside `target`, to be renamed over it by Commit(). An existing regular file there lends
  // the new one its mode and (where we may) its owner and group. `mode` before the umask
  // (0666 like fopen; 0600 for private files).
  static Result<TempFile> Create(const std::string& target, mode_t mode = 0666);
  // In the open folder `dir` (named `shown_dir` in messages), to be named by Place().
  static Result<TempFile> CreateIn(int dir, const std::string& shown_dir, mode_t mode = 0666);

  TempFile() = default;
  TempFile(TempFile&& o) noexcept;
  TempFile& operator=(TempFile&& o) noexcept;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();  // removes the temporary unless committed or placed

  int fd() const { return fd_; }
  int dir() const { return dir_; }
  // The temporary's path (folder as given + name), empty once committed, placed or discarded.
  const std::string& path() const { return path_; }
  const std::string& target() const { return target_; }
  // A stdio stream over fd() (opened on first call, owned by this object).
  std::FILE* stream();
  // Writes all of `data`; errors name the target.
  Status Write(const void* data, size_t size);
  Status Write(const std::string& s) { return Write(s.data(), s.size()); }

  // (Create) Flushes, fsyncs (unless !durable: many small files such as XMP sidecars, where a
  // rename over the old file is enough), closes and renames the temporary over the target
  // (atomic on one filesystem; a symbolic link at the target is replaced, never followed).
  Status Commit(bool durable = true);
  // (CreateIn) Flushes and renames the temporary to `leaf` in the open folder `to` (same
  // filesystem): over an existing entry only with `replace`, else it fails if one is there.
  // fd() stays open (for fstat) until destruction. `shown` names the result in messages.
  Status Place(int to, const std::string& leaf, bool replace, const std::string& shown);
  // Closes and removes the temporary now.
  void Discard();
  // Closes the descriptor but keeps the file for a library that writes by name (GGUF, hnswlib):
  // it opens path(), which this object created exclusively; Commit() then checks it is not
  // empty, fsyncs and renames it.
  void CloseForWriter();

  // Removes every temporary not yet committed, placed or discarded. Async-signal-safe (for a
  // process about to _exit on a second signal, or a watchdog ending a stuck run).
  static void RemoveAll();

 private:
  Status CloseStream(int* err);
  void Unregister();
  int fd_ = -1, dir_ = -1;
  std::FILE* stream_ = nullptr;
  std::string name_, path_, target_, target_leaf_;
  size_t slot_ = 0;  // 1 + index in the registry of open temporaries; 0: none
  bool failed_ = false, closed_ = false;
};

// renameat(2) of `from` in folder `from_dir` to `to` in `to_dir` that never replaces an existing
// `to`: RENAME_NOREPLACE, or where a filesystem lacks it (NFS, many FUSE) a hard link, which
// refuses a taken name too, then the old name removed. 0, or an errno value (EEXIST: taken).
int RenameNoReplace(int from_dir, const std::string& from, int to_dir, const std::string& to);

// The folder part of a path ("." for a bare name).
std::string ParentDir(const std::string& path);

}  // namespace lumen
