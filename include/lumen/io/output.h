// Files lumen writes because the user named them (process -o, describe -o, dupes --report):
// never one of the inputs, never a file of some other kind, never through a planted link, never
// half-written.
//
// CheckOutput() decides whether `path` may be written as an output of `kind`:
//   - it may not exist yet (its folder must);
//   - an existing one must be a regular file, not a symbolic link, not the same file (device,
//     inode) as any of `inputs`, and must be empty or look like what lumen writes there
//     (JSON/JSONL: first non-blank byte '{' or '['; HTML: '<'). Anything else, say a JPEG, is
//     refused with a message naming the file and what it looks like.
// OpenOutput() then creates a TempFile beside it (see util/temp_file.h) that Commit() renames
// over `path` once everything is written; OpenAppend() opens an existing output for appending
// (process --skip-existing), O_NOFOLLOW.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "lumen/util/status.h"
#include "lumen/util/temp_file.h"

namespace lumen {

enum class OutputKind { kJson, kHtml };

Status CheckOutput(const std::string& path, OutputKind kind,
                   const std::vector<std::string>& inputs = {});

Result<TempFile> OpenOutput(const std::string& path, OutputKind kind,
                            const std::vector<std::string>& inputs = {});

// The caller owns the stream (fclose).
Result<std::FILE*> OpenAppend(const std::string& path, OutputKind kind,
                              const std::vector<std::string>& inputs = {});

}  // namespace lumen
