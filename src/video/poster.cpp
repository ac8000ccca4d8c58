#include "lumen/video/poster.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "input.h"

namespace lumen::video {
namespace {

struct CodecCloser {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameCloser {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketCloser {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct ScaleCloser {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

// How much a frame shows: 0 for black, flat or blurred ones, else the spread of its tones times
// its sharpness (the mean absolute Laplacian of the luma), so a sharp frame with content wins.
double Score(const Image& rgb) {
  const int w = rgb.width, h = rgb.height;
  std::vector<uint8_t> y(size_t(w) * size_t(h));
  double sum = 0, sum2 = 0;
  for (int r = 0; r < h; ++r)
    for (int x = 0; x < w; ++x) {
      const uint8_t* p = rgb.row(r) + 3 * x;
      const int v = (77 * p[0] + 150 * p[1] + 29 * p[2]) >> 8;
      y[size_t(r) * size_t(w) + size_t(x)] = uint8_t(v);
      sum += v;
      sum2 += double(v) * v;
    }
  const double n = double(w) * h, mean = sum / n;
  const double sd = std::sqrt(std::max(0.0, sum2 / n - mean * mean));
  double lap = 0;
  for (int r = 1; r + 1 < h; ++r)
    for (int x = 1; x + 1 < w; ++x) {
      const auto at = [&](int yy, int xx) { return int(y[size_t(yy) * size_t(w) + size_t(xx)]); };
      lap += std::abs(4 * at(r, x) - at(r - 1, x) - at(r + 1, x) - at(r, x - 1) - at(r, x + 1));
    }
  lap /= std::max(1.0, double(w - 2) * (h - 2));
  if (mean < 20 || mean > 240 || sd < 8 || lap < 1.0) return 0;  // black, white, flat, blurred
  return sd * lap;
}

}  // namespace

Result<Poster> PosterFrame(const std::string& path, const PosterOptions& options) {
  InputLimits limits;
  limits.max_seconds = options.max_seconds;
  auto opened = Input::Open(path, limits);
  if (!opened.ok()) return opened.status();
  Input& in = **opened;
  AVFormatContext* f = in.format();
  const AVCodec* codec = nullptr;
  const int index = av_find_best_stream(f, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (index < 0 || !codec)
    return Status::Unsupported(fmt::format("{}: no video stream lumen can decode", path));
  AVStream* st = f->streams[index];
  for (unsigned i = 0; i < f->nb_streams; ++i)
    if (int(i) != index) f->streams[i]->discard = AVDISCARD_ALL;
  std::unique_ptr<AVCodecContext, CodecCloser> dec(avcodec_alloc_context3(codec));
  if (!dec || avcodec_parameters_to_context(dec.get(), st->codecpar) < 0)
    return Status::Internal("out of memory");
  dec->thread_count = 1;
  // Key frames only, without the loop filter: each decodes on its own, cheaply.
  dec->skip_frame = AVDISCARD_NONKEY;
  dec->skip_loop_filter = AVDISCARD_ALL;
  if (int rc = avcodec_open2(dec.get(), codec, nullptr); rc < 0)
    return Status::Unsupported(
        fmt::format("{}: cannot decode {}: {}", path, codec->name, AvError(rc)));

  std::unique_ptr<AVPacket, PacketCloser> pkt(av_packet_alloc());
  std::unique_ptr<AVFrame, FrameCloser> frame(av_frame_alloc());
  if (!pkt || !frame) return Status::Internal("out of memory");
  std::unique_ptr<SwsContext, ScaleCloser> scale;
  Poster best;
  double best_score = -1;
  int candidates = 0;
  std::string last_error;
  auto take = [&]() -> Status {
    const double t = frame->best_effort_timestamp == AV_NOPTS_VALUE
                         ? 0
                         : double(frame->best_effort_timestamp) * av_q2d(st->time_base);
    const int w = frame->width, h = frame->height;
    if (w <= 0 || h <= 0) return Status::Ok();
    const double s = std::min(1.0, double(options.max_side) / std::max(w, h));
    const int ow = std::max(1, int(std::lround(w * s))), oh = std::max(1, int(std::lround(h * s)));
    scale.reset(sws_getCachedContext(scale.release(), w, h, AVPixelFormat(frame->format), ow, oh,
                                     AV_PIX_FMT_RGB24, SWS_AREA, nullptr, nullptr, nullptr));
    if (!scale) return Status::Unsupported(fmt::format("{}: cannot convert its frames", path));
    Image rgb(ow, oh, 3);
    uint8_t* dst[4] = {rgb.pixels.data(), nullptr, nullptr, nullptr};
    int stride[4] = {ow * 3, 0, 0, 0};
    sws_scale(scale.get(), frame->data, frame->linesize, 0, h, dst, stride);
    ++candidates;
    const double score = Score(rgb);
    if (score > best_score) {
      best_score = score;
      best.rgb = std::move(rgb);
      best.time = t;
    }
    return Status::Ok();
  };
  bool done = false;
  while (!done) {
    LUMEN_RETURN_IF_ERROR(in.Stopped());
    const int rc = av_read_frame(f, pkt.get());
    if (rc < 0) {
      avcodec_send_packet(dec.get(), nullptr);  // the end: drain the decoder
      done = true;
    } else if (pkt->stream_index == index) {
      const double t = pkt->pts == AV_NOPTS_VALUE ? 0 : double(pkt->pts) * av_q2d(st->time_base);
      if (candidates > 0 && t > options.search_seconds) done = true;
      if (int s = avcodec_send_packet(dec.get(), pkt.get()); s < 0 && s != AVERROR(EAGAIN))
        last_error = AvError(s);  // a damaged packet: the next key frame may do
    }
    av_packet_unref(pkt.get());
    while (true) {
      const int got = avcodec_receive_frame(dec.get(), frame.get());
      if (got == AVERROR(EAGAIN) || got == AVERROR_EOF) break;
      if (got < 0) {
        last_error = AvError(got);
        break;
      }
      LUMEN_RETURN_IF_ERROR(take());
      av_frame_unref(frame.get());
      if (candidates >= options.max_candidates) done = true;
    }
  }
  if (best.rgb.empty())
    return Status::Corrupt(fmt::format("{}: no frame could be decoded{}", path,
                                       last_error.empty() ? "" : ": " + last_error));
  best.candidates = candidates;
  best.content = best_score > 0;
  const int rotation = DisplayRotation(st);  // EXIF's orientations: 6 is 90 clockwise, 3 180, 8 270
  if (rotation != 0)
    best.rgb = ApplyOrientation(best.rgb, rotation == 90 ? 6 : rotation == 180 ? 3 : 8);
  return best;
}

}  // namespace lumen::video
