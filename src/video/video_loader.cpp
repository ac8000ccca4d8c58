// The executable's side of liblumen_video.so (video_module.h): video::Probe, PosterFrame and
// Analyze, forwarded to the module, which is loaded on the first call.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"
#include "lumen/util/module_path.h"
#include "lumen/util/profile.h"
#include "video_module.h"

namespace lumen::video {
namespace {

void HostLog(log::Level level, const std::string& line) {
  log::Write(level, line);
}

constexpr VideoHost kHost = {HostLog, Interrupted, MonotonicNs};

Result<const VideoModuleApi*> Load() {
  std::string tried;
  for (const std::string& path :
       ModuleCandidates("LUMEN_VIDEO_MODULE", "liblumen_video.so", LUMEN_VIDEO_MODULE_PATH)) {
    if (!tried.empty()) tried += "; ";
    // RTLD_LOCAL: FFmpeg's symbols stay the module's. Never closed.
    void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = ::dlerror();
      tried += why ? why : path;
      continue;
    }
    using Entry = const VideoModuleApi* (*)(const VideoHost*);
    auto entry = reinterpret_cast<Entry>(::dlsym(lib, "lumen_video_module_v1"));
    const VideoModuleApi* api = entry ? entry(&kHost) : nullptr;
    if (!api || std::strcmp(api->abi_id, LUMEN_VIDEO_ABI_ID) != 0 ||
        api->host_size != sizeof(VideoHost) || api->analysis_size != sizeof(VideoAnalysis) ||
        api->probe_size != sizeof(VideoProbe)) {
      tried += fmt::format("{}: not the video module of this build of lumen", path);
      continue;
    }
    log::Debug(fmt::format("video module loaded from {}", path));
    return api;
  }
  return Status::Internal(
      fmt::format("cannot load lumen's video module (needed for videos): {}", tried));
}

Result<const VideoModuleApi*> Module() {
  static const Result<const VideoModuleApi*> api = Load();
  return api;
}

}  // namespace

Result<VideoProbe> Probe(const std::string& path, const ProbeOptions& options) {
  auto m = Module();
  if (!m.ok()) return m.status();
  return (*m)->probe(path, options);
}

Result<Poster> PosterFrame(const std::string& path, const PosterOptions& options) {
  auto m = Module();
  if (!m.ok()) return m.status();
  return (*m)->poster(path, options);
}

Result<VideoAnalysis> Analyze(const std::string& path, const AnalyzeOptions& options) {
  auto m = Module();
  if (!m.ok()) return m.status();
  return (*m)->analyze(path, options);
}

}  // namespace lumen::video
