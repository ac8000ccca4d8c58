// Where lumen's dlopen'ed modules (liblumen_vips.so, liblumen_video.so) are looked for.
#pragma once

#include <string>
#include <vector>

namespace lumen {

// The module `file`'s candidate paths, in order: $`env` alone if it is set; else next to the
// executable (the build tree's src/cli, or an installed bin/), then `built`, where this build
// put it (test and benchmark executables live elsewhere in the tree).
std::vector<std::string> ModuleCandidates(const char* env, const char* file, const char* built);

}  // namespace lumen
