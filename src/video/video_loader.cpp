// The executable's side of liblumen_video.so (video_module.h): video::Probe, PosterFrame and
// Analyze, forwarded to the module, which is loaded on the first call.
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
  auto api = LoadModule(
      ModuleCandidates("LUMEN_VIDEO_MODULE", "liblumen_video.so", LUMEN_VIDEO_MODULE_PATH),
      "lumen_video_module_v1",
      [](void* entry) -> const void* {
        using Entry = const VideoModuleApi* (*)(const VideoHost*);
        const VideoModuleApi* m = reinterpret_cast<Entry>(entry)(&kHost);
        const bool ours = m && std::strcmp(m->abi_id, LUMEN_VIDEO_ABI_ID) == 0 &&
                          m->host_size == sizeof(VideoHost) &&
                          m->analysis_size == sizeof(VideoAnalysis) &&
                          m->probe_size == sizeof(VideoProbe);
        return ours ? m : nullptr;
      },
      "video module", "videos");
  if (!api.ok()) return api.status();
  return static_cast<const VideoModuleApi*>(*api);
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

Result<TranscodeReport> Transcode(const std::string& input, int out_fd,
                                  const std::string& extension, const TranscodeSpec& spec,
                                  const TranscodeOptions& options) {
  auto m = Module();
  if (!m.ok()) return m.status();
  return (*m)->transcode(input, out_fd, extension, spec, options);
}

Result<SegmentPlan> PlanSegments(const std::string& input, const TranscodeSpec& spec,
                                 double seconds) {
  auto m = Module();
  if (!m.ok()) return m.status();
  return (*m)->plan_segments(input, spec, seconds);
}

Result<Image> FrameAt(const std::string& path, double seconds, int max_side) {
  auto m = Module();
  if (!m.ok()) return m.status();
  return (*m)->frame_at(path, seconds, max_side);
}

Result<Fidelity> Measure(const std::string& source, double start, double duration,
                         const std::string& excerpt) {
  auto m = Module();
  if (!m.ok()) return m.status();
  return (*m)->measure(source, start, duration, excerpt);
}

}  // namespace lumen::video
