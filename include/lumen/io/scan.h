// Recursive scanning of the folders (and single files) the user names.
//
// The scanner walks depth-first in sorted name order, one directory open at a time, and yields
// one entry per regular file with its identity from stat(2). It never opens a file. It follows
// symbolic links to files and directories but enters each directory (device, inode) once, so a
// link back to an ancestor cannot loop. Hidden names (".x") and system folders (@eaDir,
// $RECYCLE.BIN, lost+found, ...) are skipped unless include_hidden is set. FIFOs, sockets and
// devices are skipped silently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "lumen/io/file.h"
#include "lumen/util/status.h"

namespace lumen {

struct ScanOptions {
  bool include_hidden = false;       // also descend into .hidden and system folders
  std::vector<std::string> exclude;  // fnmatch(3) patterns matched against names and full paths
};

struct ScanEntry {
  enum class Kind {
    kFile,     // a regular file (possibly reached through a symbolic link)
    kError,    // could not be examined: broken link, link loop, unreadable directory, ...
    kSkipped,  // deliberately not entered: a directory reached again through a link
  };
  Kind kind = Kind::kFile;
  std::string path;  // absolute, as reached (link path, not target path)
  FileIdentity identity;
  Status status;  // reason for kError / kSkipped
};

// Absolute, lexically normalised form of a user-given path, without resolving links.
std::string AbsolutePath(const std::string& path);

class Scanner {
 public:
  Scanner(std::vector<std::string> roots, ScanOptions options);
  ~Scanner();
  Scanner(const Scanner&) = delete;
  Scanner& operator=(const Scanner&) = delete;

  // Fills *out with the next entry; returns false when the walk is complete.
  bool Next(ScanEntry* out);

  uint64_t directories() const { return directories_; }
  const std::vector<std::string>& roots() const { return roots_; }

 private:
  struct Frame;
  bool Skip(const std::string& name, const std::string& path) const;
  // Examines one name in the current directory; returns true if *out was filled.
  bool Visit(const std::string& dir, const std::string& name, unsigned char d_type, ScanEntry* out);
  bool EnterDirectory(const std::string& path, ScanEntry* out);

  std::vector<std::string> roots_;
  ScanOptions options_;
  size_t next_root_ = 0;
  std::vector<std::string> pending_;         // directories still to enter (LIFO)
  std::unique_ptr<Frame> frame_;             // the directory being listed
  std::unordered_set<std::string> visited_;  // "dev:ino" of entered directories
  uint64_t directories_ = 0;
};

}  // namespace lumen
