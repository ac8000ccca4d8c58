// Where lumen's dlopen'ed modules (liblumen_vips.so, liblumen_video.so) are looked for, and how
// one is loaded.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lumen/util/status.h"

namespace lumen {

// The module `file`'s candidate paths, in order: $`env` alone if it is set; else next to the
// executable (the build tree's src/cli, or an installed bin/), then `built`, where this build
// put it (test and benchmark executables live elsewhere in the tree).
std::vector<std::string> ModuleCandidates(const char* env, const char* file, const char* built);

// The first of `candidates` that dlopen()s (RTLD_NOW | RTLD_LOCAL: its libraries' symbols stay
// its own; never closed) and whose exported `symbol`, given to `take`, yields its function table;
// `take` returns null for a module of another build (then the next candidate is tried). When
// none does: Internal, "cannot load lumen's WHAT (needed for NEEDED_FOR): " and every path tried
// with its reason.
Result<const void*> LoadModule(const std::vector<std::string>& candidates, const char* symbol,
                               const std::function<const void*(void* entry)>& take,
                               const std::string& what, const std::string& needed_for);
}  // namespace lumen
