#include "lumen/video/probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
}

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"

namespace lumen::video {
namespace {

// libav's own log lines go to lumen's debug log, marked as libav's words.
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

// The file as libavformat reads it: positioned reads, and the XXH3-128 of the bytes read in order
// from the start, fed as they pass.
struct Reader {
  int fd = -1;
  uint64_t size = 0;
  uint64_t pos = 0;
  uint64_t hashed = 0;  // the in-order prefix fed to the hasher
  uint64_t read_bytes = 0;
  uint64_t ahead_bytes = 0;  // read beyond the in-order prefix (the hash reads them again)
  uint64_t deadline_ns = 0;
  Hasher hasher;

  void Feed(const uint8_t* data, uint64_t at, size_t n) {
    read_bytes += n;
    if (at > hashed) {
      ahead_bytes += n;
      return;
    }
    if (at + n <= hashed) return;  // read again by libavformat: hashed already
    const size_t skip = size_t(hashed - at);
    hasher.Update(data + skip, n - skip);
    hashed = at + n;
  }
  bool Expired() const { return Interrupted() || (deadline_ns > 0 && MonotonicNs() > deadline_ns); }
};

int ReadPacket(void* opaque, uint8_t* buf, int n) {
  auto* r = static_cast<Reader*>(opaque);
  if (r->Expired()) return AVERROR_EXIT;
  ssize_t got;
  do {
    got = ::pread(r->fd, buf, size_t(n), off_t(r->pos));
  } while (got < 0 && errno == EINTR);
  if (got < 0) return AVERROR(errno);
  if (got == 0) return AVERROR_EOF;
  r->Feed(buf, r->pos, size_t(got));
  r->pos += uint64_t(got);
  return int(got);
}

int64_t Seek(void* opaque, int64_t offset, int whence) {
  auto* r = static_cast<Reader*>(opaque);
  if (whence & AVSEEK_SIZE) return int64_t(r->size);
  whence &= ~AVSEEK_FORCE;
  int64_t to;
  if (whence == SEEK_SET)
    to = offset;
  else if (whence == SEEK_CUR)
    to = int64_t(r->pos) + offset;
  else if (whence == SEEK_END)
    to = int64_t(r->size) + offset;
  else
    return AVERROR(EINVAL);
  if (to < 0) return AVERROR(EINVAL);
  r->pos = uint64_t(to);
  return to;
}

struct FormatCloser {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
struct IoCloser {
  void operator()(AVIOContext* io) const {
    if (io) av_freep(&io->buffer);
    avio_context_free(&io);
  }
};

std::string Tag(const AVDictionary* tags, const char* key) {
  const AVDictionaryEntry* e = av_dict_get(tags, key, nullptr, 0);
  return e && e->value ? e->value : "";
}
std::string FirstTag(const AVDictionary* tags, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (std::string v = Tag(tags, k); !v.empty()) return v;
  return "";
}

// ISO 6709 ("+48.8584+002.2945+035.000/", as QuickTime's ©xyz and Android's `location` write
// it): latitude, longitude, optional altitude. False if it is not that.
bool ParseIso6709(const std::string& s, VideoProbe* p) {
  double v[3];
  int n = 0;
  const char* c = s.c_str();
  while (n < 3 && (*c == '+' || *c == '-')) {
    char* end = nullptr;
    v[n] = std::strtod(c, &end);
    if (end == c) break;
    ++n;
    c = end;
  }
  if (n < 2 || std::abs(v[0]) > 90 || std::abs(v[1]) > 180) return false;
  p->latitude = v[0];
  p->longitude = v[1];
  if (n == 3) p->altitude = v[2];
  return true;
}

double Rate(AVRational r) {
  return r.num > 0 && r.den > 0 ? av_q2d(r) : 0;
}

const char* FieldOrder(AVFieldOrder f) {
  switch (f) {
    case AV_FIELD_PROGRESSIVE:
      return "progressive";
    case AV_FIELD_TT:
      return "tt";
    case AV_FIELD_BB:
      return "bb";
    case AV_FIELD_TB:
      return "tb";
    case AV_FIELD_BT:
      return "bt";
    default:
      return "";
  }
}

VideoTrack Track(const AVStream* st) {
  const AVCodecParameters* par = st->codecpar;
  VideoTrack t;
  t.index = st->index;
  t.codec = avcodec_get_name(par->codec_id);
  if (const char* p = avcodec_profile_name(par->codec_id, par->profile)) t.profile = p;
  t.width = par->width;
  t.height = par->height;
  size_t sd_size = 0;
  if (const uint8_t* m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &sd_size);
      m && sd_size >= 9 * sizeof(int32_t)) {
    // av_display_rotation_get: counter-clockwise degrees of the matrix; upright is its opposite.
    const double ccw = av_display_rotation_get(reinterpret_cast<const int32_t*>(m));
    if (std::isfinite(ccw)) t.rotation = ((int(std::lround(-ccw / 90.0)) % 4 + 4) % 4) * 90;
  }
  AVRational sar = par->sample_aspect_ratio;
  if (sar.num > 0 && sar.den > 0) {
    t.sar_num = sar.num;
    t.sar_den = sar.den;
  }
  if (t.width > 0 && t.height > 0)
    av_reduce(&t.dar_num, &t.dar_den, int64_t(t.width) * t.sar_num, int64_t(t.height) * t.sar_den,
              1 << 20);
  t.fps = Rate(st->avg_frame_rate);
  t.nominal_fps = Rate(st->r_frame_rate);
  t.variable_rate =
      t.fps > 0 && t.nominal_fps > 0 && std::abs(t.fps - t.nominal_fps) > 0.01 * t.nominal_fps;
  const auto pix = static_cast<AVPixelFormat>(par->format);
  if (const char* name = av_get_pix_fmt_name(pix)) t.pix_fmt = name;
  if (const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(pix)) t.bit_depth = d->comp[0].depth;
  if (par->color_trc != AVCOL_TRC_UNSPECIFIED)
    if (const char* n = av_color_transfer_name(par->color_trc)) t.color_transfer = n;
  if (par->color_primaries != AVCOL_PRI_UNSPECIFIED)
    if (const char* n = av_color_primaries_name(par->color_primaries)) t.color_primaries = n;
  if (par->color_space != AVCOL_SPC_UNSPECIFIED)
    if (const char* n = av_color_space_name(par->color_space)) t.color_space = n;
  t.hdr = par->color_trc == AVCOL_TRC_SMPTE2084 || par->color_trc == AVCOL_TRC_ARIB_STD_B67;
  t.field_order = FieldOrder(par->field_order);
  t.frames = st->nb_frames;
  if (st->duration != AV_NOPTS_VALUE) t.duration = double(st->duration) * av_q2d(st->time_base);
  return t;
}

}  // namespace

Result<VideoProbe> Probe(const std::string& path, const ProbeOptions& options) {
  RouteLibavLog();
  Reader r;
  if (options.max_seconds > 0) r.deadline_ns = MonotonicNs() + uint64_t(options.max_seconds * 1e9);
  r.fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (r.fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(fmt::format("{}: no such file", path));
    return Status::Io(fmt::format("{}: {}", path, std::strerror(err)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{r.fd};
  struct stat st;
  if (::fstat(r.fd, &st) != 0) return Status::Io(fmt::format("{}: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return Status::Unsupported(fmt::format("{}: not a regular file", path));
  if (st.st_size == 0) return Status::Corrupt(fmt::format("{}: empty file", path));
  r.size = uint64_t(st.st_size);
  if (options.max_file_bytes > 0 && r.size > options.max_file_bytes)
    return Status::TooLarge(fmt::format("{}: {:.1f} GB, above the file size limit of {:.1f} GB",
                                        path, double(r.size) / 1e9,
                                        double(options.max_file_bytes) / 1e9));

  constexpr int kBuffer = 1 << 16;
  auto* buffer = static_cast<uint8_t*>(av_malloc(kBuffer));
  if (!buffer) return Status::Internal("out of memory");
  std::unique_ptr<AVIOContext, IoCloser> io(
      avio_alloc_context(buffer, kBuffer, 0, &r, ReadPacket, nullptr, Seek));
  if (!io) {
    av_free(buffer);
    return Status::Internal("out of memory");
  }
  AVFormatContext* raw = avformat_alloc_context();
  if (!raw) return Status::Internal("out of memory");
  raw->pb = io.get();
  raw->flags |= AVFMT_FLAG_CUSTOM_IO;
  raw->probesize = options.probe_bytes;
  raw->max_analyze_duration = options.analyze_seconds * AV_TIME_BASE;
  raw->interrupt_callback.callback = [](void* opaque) {
    return static_cast<Reader*>(opaque)->Expired() ? 1 : 0;
  };
  raw->interrupt_callback.opaque = &r;
  auto stopped = [&](int rc) -> Status {
    if (Interrupted()) return Status::Interrupted(fmt::format("{}: stopped by a signal", path));
    if (rc == AVERROR_EXIT || r.Expired())
      return Status::TooLarge(fmt::format("{}: took longer than the time limit", path));
    return Status::Ok();
  };
  // On failure avformat_open_input frees the context itself.
  if (int rc = avformat_open_input(&raw, path.c_str(), nullptr, nullptr); rc < 0) {
    LUMEN_RETURN_IF_ERROR(stopped(rc));
    if (rc == AVERROR_INVALIDDATA)
      return Status::Unsupported(fmt::format("{}: not a video container lumen can read", path));
    return Status::Corrupt(fmt::format("{}: {}", path, AvError(rc)));
  }
  std::unique_ptr<AVFormatContext, FormatCloser> fmt_ctx(raw);
  if (int rc = avformat_find_stream_info(raw, nullptr); rc < 0) {
    LUMEN_RETURN_IF_ERROR(stopped(rc));
    return Status::Corrupt(fmt::format("{}: {}", path, AvError(rc)));
  }
  LUMEN_RETURN_IF_ERROR(stopped(0));

  VideoProbe p;
  p.container = raw->iformat->name;
  if (raw->duration != AV_NOPTS_VALUE) p.duration = double(raw->duration) / AV_TIME_BASE;
  p.bit_rate = raw->bit_rate;
  for (unsigned i = 0; i < raw->nb_streams; ++i) {
    const AVStream* s = raw->streams[i];
    const AVCodecParameters* par = s->codecpar;
    if (par->codec_type == AVMEDIA_TYPE_VIDEO && !(s->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      p.video.push_back(Track(s));
    } else if (par->codec_type == AVMEDIA_TYPE_AUDIO) {
      AudioTrack a;
      a.index = s->index;
      a.codec = avcodec_get_name(par->codec_id);
      a.channels = par->ch_layout.nb_channels;
      a.sample_rate = par->sample_rate;
      a.language = Tag(s->metadata, "language");
      p.audio.push_back(std::move(a));
    } else if (par->codec_type == AVMEDIA_TYPE_SUBTITLE) {
      p.subtitles.push_back(
          {s->index, avcodec_get_name(par->codec_id), Tag(s->metadata, "language")});
    }
  }
  if (p.video.empty())
    return Status::Unsupported(fmt::format("{}: no video stream ({})", path, p.container));
  const AVDictionary* tags = raw->metadata;
  p.creation_time = FirstTag(tags, {"com.apple.quicktime.creationdate", "creation_time", "date"});
  p.make = FirstTag(tags, {"com.apple.quicktime.make", "make"});
  p.model = FirstTag(tags, {"com.apple.quicktime.model", "model"});
  if (std::string loc =
          FirstTag(tags, {"com.apple.quicktime.location.ISO6709", "location", "location-eng"});
      !loc.empty())
    ParseIso6709(loc, &p);

  if (options.hash) {
    // The rest of the file, in order, after what libavformat read in order.
    std::vector<uint8_t> chunk(size_t(1) << 20);
    while (r.hashed < r.size) {
      if (r.Expired()) LUMEN_RETURN_IF_ERROR(stopped(AVERROR_EXIT));
      const ssize_t got = ::pread(r.fd, chunk.data(), chunk.size(), off_t(r.hashed));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return Status::Io(fmt::format("{}: {}", path, std::strerror(errno)));
      if (got == 0)
        return Status::Changed(fmt::format("{}: shorter than when it was opened", path));
      r.read_bytes += uint64_t(got);
      r.hasher.Update(chunk.data(), size_t(got));
      r.hashed += uint64_t(got);
    }
    p.content_hash = r.hasher.Final();
    p.second_read_bytes = r.ahead_bytes;
  } else {
    p.second_read_bytes = r.ahead_bytes;
  }
  p.file_bytes = r.size;
  p.read_bytes = r.read_bytes;
  return p;
}

}  // namespace lumen::video
