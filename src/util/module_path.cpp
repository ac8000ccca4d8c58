#include "lumen/util/module_path.h"

#include <cstdlib>
#include <filesystem>

namespace lumen {

std::vector<std::string> ModuleCandidates(const char* env, const char* file, const char* built) {
  if (const char* value = std::getenv(env); value && *value) return {value};
  std::vector<std::string> paths;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) paths.push_back((exe.parent_path() / file).string());
  paths.push_back(built);
  return paths;
}

}  // namespace lumen
