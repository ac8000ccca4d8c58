// Reading a file once, safely.
//
// OpenFile() opens without following a final FIFO/device, takes the identity (size, mtime,
// inode, device) from the open descriptor and reads the first bytes to detect the format.
// ReadAll() then reads the whole file into memory exactly once and checks that the file did not
// change while it was read (size and mtime before and after, and no bytes past the expected end).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lumen/io/hash.h"
#include "lumen/io/magic.h"
#include "lumen/util/status.h"

namespace lumen {

struct FileIdentity {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  uint64_t device = 0;
  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

FileIdentity IdentityFromStat(const struct stat& st);

class OpenedFile {
 public:
  OpenedFile() = default;
  OpenedFile(OpenedFile&& o) noexcept;
  OpenedFile& operator=(OpenedFile&& o) noexcept;
  OpenedFile(const OpenedFile&) = delete;
  OpenedFile& operator=(const OpenedFile&) = delete;
  ~OpenedFile();

  const std::string& path() const { return path_; }
  const FileIdentity& identity() const { return id_; }
  Format format() const { return format_; }
  // The first min(size, kMagicBytes) bytes.
  const std::vector<uint8_t>& head() const { return head_; }

 private:
  friend Result<OpenedFile> OpenFile(const std::string& path);
  friend Status ReadAll(OpenedFile& f, std::vector<uint8_t>* out,
                        const std::function<void()>& after_read_for_test);
  int fd_ = -1;
  std::string path_;
  FileIdentity id_;
  Format format_ = Format::kUnknown;
  std::vector<uint8_t> head_;
};

// Errors: NotFound (the file disappeared), Io (permission denied, not a regular file, ...).
Result<OpenedFile> OpenFile(const std::string& path);

// Reads the whole file into *out (resized to the file's size). Errors: Io, Changed ("the file
// changed while it was being read"). `after_read_for_test` runs between the read and the final
// identity check; tests use it to rewrite the file at exactly that moment.
Status ReadAll(OpenedFile& f, std::vector<uint8_t>* out,
               const std::function<void()>& after_read_for_test = {});

// "Permission denied" etc. for an errno value, naming the operation.
// XXH3-128 of a file's bytes (streamed, 1 MiB at a time); `id` receives its identity.
Result<Hash128> HashFile(const std::string& path, FileIdentity* id = nullptr);

std::string ErrnoMessage(const char* what, int err);

}  // namespace lumen
