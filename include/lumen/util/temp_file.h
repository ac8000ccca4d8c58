// Temporary files that cannot be hijacked, and replacing a file by one only when it is complete.
//
// TempFile::Create makes a new file beside `target` with O_CREAT|O_EXCL|O_NOFOLLOW (a planted
// file or symbolic link at the temporary name is never opened or written through: the name is
// random and creation fails rather than reuse it). Its name is short (".lumen-XXXXXXXX.tmp", 19
// bytes), whatever the length of the target's, so a legal 255-byte target still gets one. The
// file is removed by the destructor unless Commit() renamed it over the target, so a failed or
// interrupted write never leaves a half-written target or a stray temporary behind.
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <string>

#include "lumen/util/status.h"

namespace lumen {

class TempFile {
 public:
  // `mode` before the umask (0666 like fopen; 0600 for private files).
  static Result<TempFile> Create(const std::string& target, mode_t mode = 0666);

  TempFile() = default;
  TempFile(TempFile&& o) noexcept;
  TempFile& operator=(TempFile&& o) noexcept;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();  // removes the temporary unless committed

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  const std::string& target() const { return target_; }
  // A stdio stream over fd() (opened on first call, owned by this object).
  std::FILE* stream();
  // Writes all of `data`; errors name the target.
  Status Write(const void* data, size_t size);
  Status Write(const std::string& s) { return Write(s.data(), s.size()); }

  // Flushes, fsyncs, closes and renames the temporary over the target (atomic on one
  // filesystem; a symbolic link at the target is replaced, never followed).
  Status Commit();
  // Closes and removes the temporary now.
  void Discard();
  // Closes the descriptor but keeps the file for a library that writes by name (GGUF, hnswlib):
  // it opens path(), which this object created exclusively; Commit() then renames it.
  void CloseForWriter();

 private:
  int fd_ = -1;
  std::FILE* stream_ = nullptr;
  std::string path_, target_;
  bool failed_ = false;
  bool closed_ = false;
};

// The folder part of a path ("." for a bare name).
std::string ParentDir(const std::string& path);

}  // namespace lumen
