// Private: the boundary between lumen's executables and liblumen_video.so, the module that holds
// every call into FFmpeg's libraries (libavformat, libavcodec and the ~90 libraries they link).
// The executable loads it on the first video (video_loader.cpp), so that a command that never
// meets one (convert, search, a photo library's index) does not pay for loading them at start.
//
// The executable's services the video code needs (its log, its stop flag, its clock) are passed
// in (VideoHost); the module's functions are a table (VideoModuleApi). Both sides are built from
// the same headers, by the same compiler: an ABI id (a hash of the headers whose types cross, the
// compiler and the sanitizer setting) is compared before the table is used. No exception crosses.
#pragma once

#include <cstddef>
#include <string>

#include "lumen/util/log.h"
#include "lumen/util/status.h"
#include "lumen/video/analyze.h"
#include "lumen/video/compare.h"
#include "lumen/video/poster.h"
#include "lumen/video/probe.h"
#include "lumen/video/transcode.h"

namespace lumen::video {

struct VideoHost {
  void (*log)(log::Level level, const std::string& line);
  bool (*interrupted)();
  uint64_t (*monotonic_ns)();
};

struct VideoModuleApi {
  const char* abi_id;
  size_t host_size, analysis_size, probe_size;  // sizeof checks beside the id
  Result<VideoProbe> (*probe)(const std::string& path, const ProbeOptions& options);
  Result<Poster> (*poster)(const std::string& path, const PosterOptions& options);
  Result<VideoAnalysis> (*analyze)(const std::string& path, const AnalyzeOptions& options);
  Result<TranscodeReport> (*transcode)(const std::string& input, int out_fd,
                                       const std::string& extension, const TranscodeSpec& spec,
                                       const TranscodeOptions& options);
  Result<SegmentPlan> (*plan_segments)(const std::string& input, const TranscodeSpec& spec,
                                       double seconds);
  Result<Image> (*frame_at)(const std::string& path, double seconds, int max_side);
  Result<Fidelity> (*measure)(const std::string& source, double start, double duration,
                              const std::string& excerpt);
};

}  // namespace lumen::video

// The module's one exported symbol: the table, after it has taken the host's services.
extern "C" const lumen::video::VideoModuleApi* lumen_video_module_v1(
    const lumen::video::VideoHost* host);
