// video::FrameAt and video::Measure (video/compare.h), for `lumen compare`.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
}

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "frames.h"
#include "input.h"
#include "lumen/util/interrupt.h"
#include "lumen/video/compare.h"

namespace lumen::video {
namespace {

int InterruptCallback(void*) {
  return Interrupted() ? 1 : 0;
}

// One file's main video stream, decoded frame by frame.
class Reader {
 public:
  ~Reader() {
    if (f_) avformat_close_input(&f_);
  }
  Status Open(const std::string& path) {
    RouteLibavLog();
    path_ = path;
    f_ = avformat_alloc_context();
    if (!f_) return Status::Internal("out of memory");
    f_->interrupt_callback = {InterruptCallback, nullptr};
    int r = avformat_open_input(&f_, path.c_str(), nullptr, nullptr);
    if (r < 0)
      return Status::Corrupt(fmt::format("{}: not a video libav can read: {}", path, AvError(r)));
    if ((r = avformat_find_stream_info(f_, nullptr)) < 0)
      return Status::Corrupt(fmt::format("{}: cannot read its streams: {}", path, AvError(r)));
    auto dec = OpenVideoDecoder(f_, path, 2, &index_);
    if (!dec.ok()) return dec.status();
    dec_ = std::move(*dec);
    start_ = f_->start_time != AV_NOPTS_VALUE ? f_->start_time : 0;
    pkt_.reset(av_packet_alloc());
    return pkt_ ? Status::Ok() : Status::Internal("out of memory");
  }
  // To a key frame at or before `seconds` from the start.
  void Seek(double seconds) {
    if (seconds <= 0) return;
    av_seek_frame(f_, -1, start_ + int64_t(seconds * AV_TIME_BASE), AVSEEK_FLAG_BACKWARD);
    avcodec_flush_buffers(dec_.get());
  }
  // The next frame (its pts: seconds from the file's start in *t), false at the end.
  Result<bool> Next(AVFrame* frame, double* t) {
    while (true) {
      const int r = avcodec_receive_frame(dec_.get(), frame);
      if (r >= 0) {
        const int64_t ts = frame->best_effort_timestamp;
        *t = ts == AV_NOPTS_VALUE
                 ? last_ + 0.001
                 : double(ts) * av_q2d(stream()->time_base) - double(start_) / AV_TIME_BASE;
        last_ = *t;
        return true;
      }
      if (r == AVERROR_EOF) return false;
      if (Interrupted()) return Status::Interrupted(fmt::format("{}: interrupted", path_));
      if (eof_) return false;
      const int rr = av_read_frame(f_, pkt_.get());
      if (rr < 0) {
        eof_ = true;
        avcodec_send_packet(dec_.get(), nullptr);
        continue;
      }
      if (pkt_->stream_index == index_) avcodec_send_packet(dec_.get(), pkt_.get());
      av_packet_unref(pkt_.get());
    }
  }
  AVStream* stream() const { return f_->streams[index_]; }
  AVCodecContext* decoder() const { return dec_.get(); }

 private:
  std::string path_;
  AVFormatContext* f_ = nullptr;
  CodecPtr dec_;
  PacketPtr pkt_;
  int index_ = -1;
  int64_t start_ = 0;
  bool eof_ = false;
  double last_ = 0;
};

struct GraphCloser {
  void operator()(AVFilterGraph* g) const { avfilter_graph_free(&g); }
};

std::string BufferArgs(const AVFrame* f, AVRational tb) {
  const AVRational sar = f->sample_aspect_ratio.num > 0 ? f->sample_aspect_ratio : AVRational{1, 1};
  return fmt::format("video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}", f->width,
                     f->height, f->format, tb.num, tb.den, sar.num, sar.den);
}

double Meta(const AVFrame* f, const char* key) {
  const AVDictionaryEntry* e = av_dict_get(f->metadata, key, nullptr, 0);
  if (!e) return NAN;
  if (std::string(e->value) == "inf") return INFINITY;
  return std::strtod(e->value, nullptr);
}

}  // namespace

Result<Image> FrameAt(const std::string& path, double seconds, int max_side) {
  Reader in;
  LUMEN_RETURN_IF_ERROR(in.Open(path));
  in.Seek(seconds);
  FramePtr frame(av_frame_alloc()), kept(av_frame_alloc());
  bool have = false;
  double t = 0;
  while (true) {
    auto got = in.Next(frame.get(), &t);
    if (!got.ok()) return got.status();
    if (!*got) break;
    av_frame_unref(kept.get());
    av_frame_move_ref(kept.get(), frame.get());
    have = true;
    if (t >= seconds - 1e-3) break;
  }
  if (!have)
    return Status::Corrupt(fmt::format("{}: no frame decodes near {:.2f} s", path, seconds));
  int ow = 0, oh = 0;
  DisplaySize(kept.get(), max_side, &ow, &oh);
  ScalePtr scale;
  auto rgb = FrameToRgb(kept.get(), ow, oh, false, &scale, path);
  if (!rgb.ok()) return rgb.status();
  const int rotation = DisplayRotation(in.stream());
  if (rotation != 0) return ApplyOrientation(*rgb, rotation == 90 ? 6 : rotation == 180 ? 3 : 8);
  return std::move(*rgb);
}

Result<Fidelity> Measure(const std::string& source, double start, double duration,
                         const std::string& excerpt) {
  Reader src, exc;
  LUMEN_RETURN_IF_ERROR(src.Open(source));
  LUMEN_RETURN_IF_ERROR(exc.Open(excerpt));
  src.Seek(start);
  FramePtr sf(av_frame_alloc()), ef(av_frame_alloc()), out(av_frame_alloc());
  double st = 0, et = 0;
  // The first frames of both: the graph's inputs are made from them.
  auto next_src = [&]() -> Result<bool> {
    while (true) {
      auto got = src.Next(sf.get(), &st);
      if (!got.ok() || !*got) return got;
      if (st >= start - 1e-3) return st < start + duration;
      av_frame_unref(sf.get());
    }
  };
  auto got_s = next_src();
  if (!got_s.ok()) return got_s.status();
  auto got_e = exc.Next(ef.get(), &et);
  if (!got_e.ok()) return got_e.status();
  if (!*got_s || !*got_e)
    return Status::Corrupt(fmt::format("{}: nothing to compare at {:.2f} s", excerpt, start));
  const double s0 = st, e0 = et;
  const AVRational tb{1, 1000000};  // frames are fed with their time from the excerpt's start
  std::unique_ptr<AVFilterGraph, GraphCloser> g(avfilter_graph_alloc());
  if (!g) return Status::Internal("out of memory");
  g->nb_threads = 2;
  AVFilterContext *in_s = nullptr, *in_e = nullptr, *o_ssim = nullptr, *o_psnr = nullptr;
  const AVFilter* buffer = avfilter_get_by_name("buffer");
  const AVFilter* sink = avfilter_get_by_name("buffersink");
  int r = avfilter_graph_create_filter(&in_s, buffer, "s", BufferArgs(sf.get(), tb).c_str(),
                                       nullptr, g.get());
  if (r >= 0)
    r = avfilter_graph_create_filter(&in_e, buffer, "e", BufferArgs(ef.get(), tb).c_str(), nullptr,
                                     g.get());
  if (r >= 0) r = avfilter_graph_create_filter(&o_ssim, sink, "o1", nullptr, nullptr, g.get());
  if (r >= 0) r = avfilter_graph_create_filter(&o_psnr, sink, "o2", nullptr, nullptr, g.get());
  if (r < 0) return Status::Internal(fmt::format("cannot make the comparison: {}", AvError(r)));
  const std::string text = fmt::format(
      "[s]scale={}:{}:flags=bicubic,format=yuv420p,setsar=1,split[sa][sb];"
      "[e]format=yuv420p,setsar=1,split[ea][eb];[ea][sa]ssim[o1];[eb][sb]psnr[o2]",
      ef->width, ef->height);
  AVFilterInOut* outs = nullptr;
  AVFilterInOut* ins = nullptr;
  auto link = [](AVFilterInOut** list, const char* name, AVFilterContext* ctx) {
    AVFilterInOut* io = avfilter_inout_alloc();
    if (!io) return false;
    io->name = av_strdup(name);
    io->filter_ctx = ctx;
    io->pad_idx = 0;
    io->next = *list;
    *list = io;
    return true;
  };
  if (!link(&outs, "s", in_s) || !link(&outs, "e", in_e) || !link(&ins, "o1", o_ssim) ||
      !link(&ins, "o2", o_psnr)) {
    avfilter_inout_free(&outs);
    avfilter_inout_free(&ins);
    return Status::Internal("out of memory");
  }
  r = avfilter_graph_parse_ptr(g.get(), text.c_str(), &ins, &outs, nullptr);
  avfilter_inout_free(&outs);
  avfilter_inout_free(&ins);
  if (r >= 0) r = avfilter_graph_config(g.get(), nullptr);
  if (r < 0)
    return Status::Internal(
        fmt::format("{}: the comparison graph cannot run: {}", excerpt, AvError(r)));
  Fidelity fid;
  double ssim_sum = 0, psnr_sum = 0;
  int ssim_n = 0, psnr_n = 0;
  auto drain = [&] {
    while (av_buffersink_get_frame(o_ssim, out.get()) >= 0) {
      const double v = Meta(out.get(), "lavfi.ssim.All");
      if (!std::isnan(v)) ssim_sum += v, ++ssim_n;
      av_frame_unref(out.get());
    }
    while (av_buffersink_get_frame(o_psnr, out.get()) >= 0) {
      const double v = Meta(out.get(), "lavfi.psnr.psnr_avg");
      if (!std::isnan(v)) psnr_sum += std::min(v, 100.0), ++psnr_n;
      av_frame_unref(out.get());
    }
  };
  auto feed = [&](AVFilterContext* ctx, AVFrame* f, double t) -> Status {
    f->pts = int64_t(std::llround(t * 1e6));
    f->pict_type = AV_PICTURE_TYPE_NONE;
    const int rr = av_buffersrc_add_frame_flags(ctx, f, AV_BUFFERSRC_FLAG_KEEP_REF);
    av_frame_unref(f);
    if (rr < 0 && rr != AVERROR_EOF)
      return Status::Internal(fmt::format("{}: the comparison failed: {}", excerpt, AvError(rr)));
    drain();
    return Status::Ok();
  };
  bool s_more = true, e_more = true;
  // In step: the excerpt's frame, then the source's up to its time.
  while (e_more && !Interrupted()) {
    const double et_rel = et - e0;
    LUMEN_RETURN_IF_ERROR(feed(in_e, ef.get(), et_rel));
    while (s_more && st - s0 <= et_rel + 1e-6) {
      LUMEN_RETURN_IF_ERROR(feed(in_s, sf.get(), st - s0));
      auto more = next_src();
      if (!more.ok()) return more.status();
      s_more = *more;
    }
    auto more = exc.Next(ef.get(), &et);
    if (!more.ok()) return more.status();
    e_more = *more && et - e0 < duration;
  }
  if (s_more) LUMEN_RETURN_IF_ERROR(feed(in_s, sf.get(), st - s0));
  // The ends (an error here only means the graph had ended already).
  const int end_s = av_buffersrc_add_frame(in_s, nullptr);
  const int end_e = av_buffersrc_add_frame(in_e, nullptr);
  (void)end_s;
  (void)end_e;
  drain();
  if (Interrupted()) return Status::Interrupted(fmt::format("{}: interrupted", excerpt));
  if (ssim_n == 0 || psnr_n == 0)
    return Status::Corrupt(fmt::format("{}: no frame could be compared", excerpt));
  fid.ssim = ssim_sum / ssim_n;
  fid.psnr = psnr_sum / psnr_n;
  fid.frames = ssim_n;
  return fid;
}

}  // namespace lumen::video
