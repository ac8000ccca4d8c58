// Private: a video file opened for libavformat through lumen's own reader (probe.h explains the
// reading and hashing), shared by the probe and the frame decoders.
#pragma once

extern "C" {
#include <libavformat/avformat.h>
}

#include <cstdint>
#include <memory>
#include <string>

#include "lumen/io/hash.h"
#include "lumen/util/status.h"
#include "lumen/video/probe.h"

namespace lumen::video {

struct InputLimits {
  uint64_t max_file_bytes = 64ull << 30;
  int64_t probe_bytes = 5'000'000;
  int64_t analyze_seconds = 5;
  double max_seconds = 30;  // 0: none
};

class Input {
 public:
  // Opens `path` (a regular file, not empty, within the limits) and reads its streams' parameters
  // (avformat_find_stream_info). Errors name the file.
  static Result<std::unique_ptr<Input>> Open(const std::string& path, const InputLimits& limits);
  ~Input();
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;

  AVFormatContext* format() const { return format_; }
  const std::string& path() const { return path_; }
  // Interrupted (a signal) or TooLarge (the deadline) once either has happened; Ok before.
  Status Stopped() const;
  bool Expired() const;
  // Reads the rest of the file in order into the hash; the hash of the whole file. Changed when
  // the file is not the one that was opened any more (it grew, shrank or was rewritten).
  Result<Hash128> FinishHash();
  // Moves the deadline to `seconds` after the file was opened (0: none), e.g. once the duration
  // is known.
  void SetTimeLimit(double seconds);
  double time_limit() const { return time_limit_; }

  uint64_t size() const { return size_; }
  uint64_t read_bytes() const { return read_bytes_; }
  uint64_t ahead_bytes() const { return ahead_bytes_; }

 private:
  Input() = default;
  static int Read(void* opaque, uint8_t* buf, int n);
  static int64_t Seek(void* opaque, int64_t offset, int whence);
  void Feed(const uint8_t* data, uint64_t at, size_t n);

  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0, pos_ = 0;
  uint64_t hashed_ = 0;       // the in-order prefix fed to the hasher
  uint64_t read_bytes_ = 0;   // all reads
  uint64_t ahead_bytes_ = 0;  // read beyond the in-order prefix (the hash reads them again)
  uint64_t opened_ns_ = 0, deadline_ns_ = 0;
  double time_limit_ = 0;
  int64_t mtime_ns_ = 0;
  Hasher hasher_;
  AVIOContext* io_ = nullptr;
  AVFormatContext* format_ = nullptr;
};

std::string AvError(int code);

// libav's own log lines go to lumen's debug log, marked as libav's words (once per process).
void RouteLibavLog();

// The probe's fields from an opened input (probe.cpp); Unsupported without a video stream.
Status ReadProbe(const Input& in, VideoProbe* out);

// The clockwise degrees (0, 90, 180, 270) that turn the stream's stored frames upright, from its
// display matrix (0 without one).
int DisplayRotation(const AVStream* stream);

}  // namespace lumen::video
