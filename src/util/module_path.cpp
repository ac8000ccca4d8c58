#include "lumen/util/module_path.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "lumen/util/log.h"

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

Result<const void*> LoadModule(const std::vector<std::string>& candidates, const char* symbol,
                               const std::function<const void*(void* entry)>& take,
                               const std::string& what, const std::string& needed_for) {
  std::string tried;
  for (const std::string& path : candidates) {
    if (!tried.empty()) tried += "; ";
    void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = ::dlerror();
      tried += why ? why : path;
      continue;
    }
    void* entry = ::dlsym(lib, symbol);
    const void* api = entry ? take(entry) : nullptr;
    if (!api) {
      tried += fmt::format("{}: not the {} of this build of lumen", path, what);
      continue;  // not closed either: its constructors have run
    }
    log::Debug(fmt::format("{} loaded from {}", what, path));
    return api;
  }
  return Status::Internal(
      fmt::format("cannot load lumen's {} (needed for {}): {}", what, needed_for, tried));
}

}  // namespace lumen
