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

#include "frames.h"
#include "input.h"

namespace lumen::video {

Result<Poster> PosterFrame(const std::string& path, const PosterOptions& options) {
  InputLimits limits;
  limits.max_seconds = options.max_seconds;
  auto opened = Input::Open(path, limits);
  if (!opened.ok()) return opened.status();
  Input& in = **opened;
  AVFormatContext* f = in.format();
  int index = 0;
  auto opened_dec = OpenVideoDecoder(f, path, 1, &index);
  if (!opened_dec.ok()) return opened_dec.status();
  CodecPtr dec = std::move(*opened_dec);
  AVStream* st = f->streams[index];
  // Key frames only, without the loop filter: each decodes on its own, cheaply.
  dec->skip_frame = AVDISCARD_NONKEY;
  dec->skip_loop_filter = AVDISCARD_ALL;

  PacketPtr pkt(av_packet_alloc());
  FramePtr frame(av_frame_alloc());
  if (!pkt || !frame) return Status::Internal("out of memory");
  ScalePtr scale;
  Poster best;
  double best_score = -1;
  int candidates = 0;
  std::string last_error;
  auto take = [&]() -> Status {
    const double t = frame->best_effort_timestamp == AV_NOPTS_VALUE
                         ? 0
                         : double(frame->best_effort_timestamp) * av_q2d(st->time_base);
    if (frame->width <= 0 || frame->height <= 0) return Status::Ok();
    int ow = 0, oh = 0;
    DisplaySize(frame.get(), options.max_side, &ow, &oh);
    auto converted = FrameToRgb(frame.get(), ow, oh, false, &scale, path);
    if (!converted.ok()) return converted.status();
    Image rgb = std::move(*converted);
    ++candidates;
    const double score = FrameScore(rgb);
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
