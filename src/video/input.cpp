#include "input.h"

extern "C" {
#include <libavutil/display.h>
}

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"

namespace lumen::video {

void RouteLibavLog() {
  static std::once_flag once;
  std::call_once(once, [] {
    av_log_set_callback([](void*, int level, const char* format, va_list args) {
      if (level > AV_LOG_WARNING) return;
      char line[512];
      std::vsnprintf(line, sizeof line, format, args);
      std::string m = line;
      while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
      if (!m.empty()) log::Debug("libav: " + m);
    });
  });
}

std::string AvError(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, text, sizeof text);
  return text;
}

int DisplayRotation(const AVStream* stream) {
  size_t size = 0;
  const uint8_t* m = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (!m || size < 9 * sizeof(int32_t)) return 0;
  // av_display_rotation_get: counter-clockwise degrees of the matrix; upright is its opposite.
  const double ccw = av_display_rotation_get(reinterpret_cast<const int32_t*>(m));
  return std::isfinite(ccw) ? ((int(std::lround(-ccw / 90.0)) % 4 + 4) % 4) * 90 : 0;
}

void Input::Feed(const uint8_t* data, uint64_t at, size_t n) {
  read_bytes_ += n;
  if (at > hashed_) {
    ahead_bytes_ += n;
    return;
  }
  if (at + n <= hashed_) return;  // read again by libavformat: hashed already
  const size_t skip = size_t(hashed_ - at);
  hasher_.Update(data + skip, n - skip);
  hashed_ = at + n;
}

bool Input::Expired() const {
  return Interrupted() || (deadline_ns_ > 0 && MonotonicNs() > deadline_ns_);
}

Status Input::Stopped() const {
  if (Interrupted()) return Status::Interrupted(fmt::format("{}: stopped by a signal", path_));
  if (deadline_ns_ > 0 && MonotonicNs() > deadline_ns_)
    return Status::TooLarge(
        fmt::format("{}: took longer than its time limit of {:.0f} s", path_, time_limit_));
  return Status::Ok();
}

int Input::Read(void* opaque, uint8_t* buf, int n) {
  auto* in = static_cast<Input*>(opaque);
  if (in->Expired()) return AVERROR_EXIT;
  // Never past the size it had when opened: a file that grows while it is read is read as it was
  // (and the hash's end check reports the change).
  if (in->pos_ >= in->size_) return AVERROR_EOF;
  n = int(std::min<uint64_t>(uint64_t(n), in->size_ - in->pos_));
  ssize_t got;
  do {
    got = ::pread(in->fd_, buf, size_t(n), off_t(in->pos_));
  } while (got < 0 && errno == EINTR);
  if (got < 0) return AVERROR(errno);
  if (got == 0) return AVERROR_EOF;
  in->Feed(buf, in->pos_, size_t(got));
  in->pos_ += uint64_t(got);
  return int(got);
}

int64_t Input::Seek(void* opaque, int64_t offset, int whence) {
  auto* in = static_cast<Input*>(opaque);
  if (whence & AVSEEK_SIZE) return int64_t(in->size_);
  whence &= ~AVSEEK_FORCE;
  int64_t to;
  if (whence == SEEK_SET)
    to = offset;
  else if (whence == SEEK_CUR)
    to = int64_t(in->pos_) + offset;
  else if (whence == SEEK_END)
    to = int64_t(in->size_) + offset;
  else
    return AVERROR(EINVAL);
  if (to < 0) return AVERROR(EINVAL);
  in->pos_ = uint64_t(to);
  return to;
}

Input::~Input() {
  if (format_) avformat_close_input(&format_);
  if (io_) {
    av_freep(&io_->buffer);
    avio_context_free(&io_);
  }
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<Input>> Input::Open(const std::string& path, const InputLimits& limits) {
  RouteLibavLog();
  std::unique_ptr<Input> in(new Input());
  in->path_ = path;
  in->opened_ns_ = MonotonicNs();
  in->SetTimeLimit(limits.max_seconds);
  in->fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (in->fd_ < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(fmt::format("{}: no such file", path));
    return Status::Io(fmt::format("{}: {}", path, std::strerror(err)));
  }
  struct stat st;
  if (::fstat(in->fd_, &st) != 0)
    return Status::Io(fmt::format("{}: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return Status::Unsupported(fmt::format("{}: not a regular file", path));
  if (st.st_size == 0) return Status::Corrupt(fmt::format("{}: empty file", path));
  in->size_ = uint64_t(st.st_size);
  in->mtime_ns_ = int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  if (limits.max_file_bytes > 0 && in->size_ > limits.max_file_bytes)
    return Status::TooLarge(fmt::format("{}: {:.1f} GB, above the file size limit of {:.1f} GB",
                                        path, double(in->size_) / 1e9,
                                        double(limits.max_file_bytes) / 1e9));
  constexpr int kBuffer = 1 << 16;
  auto* buffer = static_cast<uint8_t*>(av_malloc(kBuffer));
  if (!buffer) return Status::Internal("out of memory");
  in->io_ = avio_alloc_context(buffer, kBuffer, 0, in.get(), Read, nullptr, Seek);
  if (!in->io_) {
    av_free(buffer);
    return Status::Internal("out of memory");
  }
  AVFormatContext* f = avformat_alloc_context();
  if (!f) return Status::Internal("out of memory");
  f->pb = in->io_;
  f->flags |= AVFMT_FLAG_CUSTOM_IO;
  f->probesize = limits.probe_bytes;
  f->max_analyze_duration = limits.analyze_seconds * AV_TIME_BASE;
  f->interrupt_callback.callback = [](void* opaque) {
    return static_cast<Input*>(opaque)->Expired() ? 1 : 0;
  };
  f->interrupt_callback.opaque = in.get();
  // On failure avformat_open_input frees the context itself.
  if (int rc = avformat_open_input(&f, path.c_str(), nullptr, nullptr); rc < 0) {
    LUMEN_RETURN_IF_ERROR(in->Stopped());
    if (rc == AVERROR_INVALIDDATA)
      return Status::Unsupported(fmt::format("{}: not a video container lumen can read", path));
    return Status::Corrupt(fmt::format("{}: {}", path, AvError(rc)));
  }
  in->format_ = f;
  if (int rc = avformat_find_stream_info(f, nullptr); rc < 0) {
    LUMEN_RETURN_IF_ERROR(in->Stopped());
    return Status::Corrupt(fmt::format("{}: {}", path, AvError(rc)));
  }
  LUMEN_RETURN_IF_ERROR(in->Stopped());
  return in;
}

void Input::SetTimeLimit(double seconds) {
  time_limit_ = seconds;
  deadline_ns_ = seconds > 0 ? opened_ns_ + uint64_t(seconds * 1e9) : 0;
}

Result<Hash128> Input::FinishHash() {
  std::vector<uint8_t> chunk(size_t(1) << 20);
  while (hashed_ < size_) {
    LUMEN_RETURN_IF_ERROR(Stopped());
    const size_t want = size_t(std::min<uint64_t>(chunk.size(), size_ - hashed_));
    const ssize_t got = ::pread(fd_, chunk.data(), want, off_t(hashed_));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Status::Io(fmt::format("{}: {}", path_, std::strerror(errno)));
    if (got == 0) return Status::Changed(fmt::format("{}: shorter than when it was opened", path_));
    read_bytes_ += uint64_t(got);
    hasher_.Update(chunk.data(), size_t(got));
    hashed_ += uint64_t(got);
  }
  struct stat now;
  if (::fstat(fd_, &now) == 0 &&
      (uint64_t(now.st_size) != size_ ||
       int64_t(now.st_mtim.tv_sec) * 1'000'000'000 + now.st_mtim.tv_nsec != mtime_ns_))
    return Status::Changed(fmt::format("{}: the file changed while it was read", path_));
  return hasher_.Final();
}

}  // namespace lumen::video
