// liblumen_video.so's entry (video_module.h), and the executable's services it forwards to: the
// video code calls Interrupted(), MonotonicNs() and log::Write() as it does when linked into a
// test, and here they reach the executable's own.
#include "video_module.h"

#include <exception>

#include <fmt/format.h>

#include "lumen/util/interrupt.h"
#include "lumen/util/profile.h"

namespace lumen {
namespace {
const video::VideoHost* g_host = nullptr;

template <typename T, typename F>
Result<T> Guarded(F f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::Internal(fmt::format("video: {}", e.what()));
  } catch (...) {
    return Status::Internal("video: unknown exception");
  }
}

Result<video::VideoProbe> ModuleProbe(const std::string& path, const video::ProbeOptions& o) {
  return Guarded<video::VideoProbe>([&] { return video::Probe(path, o); });
}
Result<video::Poster> ModulePoster(const std::string& path, const video::PosterOptions& o) {
  return Guarded<video::Poster>([&] { return video::PosterFrame(path, o); });
}
Result<video::VideoAnalysis> ModuleAnalyze(const std::string& path,
                                           const video::AnalyzeOptions& o) {
  return Guarded<video::VideoAnalysis>([&] { return video::Analyze(path, o); });
}

Result<video::TranscodeReport> ModuleTranscode(const std::string& input, int out_fd,
                                               const std::string& extension,
                                               const video::TranscodeSpec& spec,
                                               const video::TranscodeOptions& options) {
  return Guarded<video::TranscodeReport>(
      [&] { return video::Transcode(input, out_fd, extension, spec, options); });
}

Result<video::SegmentPlan> ModulePlanSegments(const std::string& input,
                                              const video::TranscodeSpec& spec, double seconds) {
  return Guarded<video::SegmentPlan>([&] { return video::PlanSegments(input, spec, seconds); });
}

Result<Image> ModuleFrameAt(const std::string& path, double seconds, int max_side) {
  return Guarded<Image>([&] { return video::FrameAt(path, seconds, max_side); });
}
Result<video::Fidelity> ModuleMeasure(const std::string& source, double start, double duration,
                                      const std::string& excerpt) {
  return Guarded<video::Fidelity>([&] { return video::Measure(source, start, duration, excerpt); });
}

constexpr video::VideoModuleApi kApi = {LUMEN_VIDEO_ABI_ID,
                                        sizeof(video::VideoHost),
                                        sizeof(video::VideoAnalysis),
                                        sizeof(video::VideoProbe),
                                        ModuleProbe,
                                        ModulePoster,
                                        ModuleAnalyze,
                                        ModuleTranscode,
                                        ModulePlanSegments,
                                        ModuleFrameAt,
                                        ModuleMeasure};
}  // namespace

bool Interrupted() {
  return g_host && g_host->interrupted();
}

uint64_t MonotonicNs() {
  return g_host ? g_host->monotonic_ns() : 0;
}

namespace log {
void Write(Level level, std::string_view message, const Fields&) {
  if (g_host) g_host->log(level, std::string(message));
}
}  // namespace log

}  // namespace lumen

extern "C" __attribute__((visibility("default"))) const lumen::video::VideoModuleApi*
lumen_video_module_v1(const lumen::video::VideoHost* host) {
  lumen::g_host = host;
  return &lumen::kApi;
}
