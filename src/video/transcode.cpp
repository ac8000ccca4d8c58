// video::Transcode (video/transcode.h): demux, decode, one libavfilter graph per stream, encode
// and mux, in process and in constant memory (frames flow through; nothing is written but the
// output).
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "frames.h"
#include "input.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/video/transcode.h"

namespace lumen::video {
namespace {

struct InCloser {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
struct OutCloser {
  void operator()(AVFormatContext* f) const {
    if (f->pb) avio_closep(&f->pb);
    avformat_free_context(f);
  }
};
struct GraphCloser {
  void operator()(AVFilterGraph* g) const { avfilter_graph_free(&g); }
};
struct DictCloser {
  void operator()(AVDictionary* d) const { av_dict_free(&d); }
};
using InPtr = std::unique_ptr<AVFormatContext, InCloser>;
using OutPtr = std::unique_ptr<AVFormatContext, OutCloser>;
using GraphPtr = std::unique_ptr<AVFilterGraph, GraphCloser>;

int InterruptCallback(void*) {
  return Interrupted() ? 1 : 0;
}

Result<InPtr> OpenIn(const std::string& path) {
  RouteLibavLog();
  AVFormatContext* f = avformat_alloc_context();
  if (!f) return Status::Internal("out of memory");
  f->interrupt_callback = {InterruptCallback, nullptr};
  int r = avformat_open_input(&f, path.c_str(), nullptr, nullptr);  // frees f on failure
  if (r < 0)
    return Status::Corrupt(fmt::format("{}: not a video libav can read: {}", path, AvError(r)));
  InPtr in(f);
  if ((r = avformat_find_stream_info(f, nullptr)) < 0)
    return Status::Corrupt(fmt::format("{}: cannot read its streams: {}", path, AvError(r)));
  return in;
}

const char* TypeName(AVMediaType t) {
  const char* n = av_get_media_type_string(t);
  return n ? n : "unknown";
}

std::string CodecName(AVCodecID id) {
  const char* n = avcodec_get_name(id);
  return n ? n : "unknown";
}

bool IsMatroska(const AVOutputFormat* of) {
  return std::strstr(of->name, "matroska") || std::strstr(of->name, "webm");
}
bool IsMov(const AVOutputFormat* of) {
  return std::strstr(of->name, "mp4") || std::strstr(of->name, "mov") ||
         std::strstr(of->name, "ipod");
}

// 1: the container holds the codec; 0: it does not; < 0: it does not say (try).
int Holds(const AVOutputFormat* of, AVCodecID id) {
  return avformat_query_codec(of, id, FF_COMPLIANCE_NORMAL);
}

// A decode -> filter -> encode chain for one stream.
struct Coder {
  AVMediaType type = AVMEDIA_TYPE_UNKNOWN;
  int in = -1, out = -1;
  CodecPtr dec, enc;
  GraphPtr graph;
  AVFilterContext *src = nullptr, *sink = nullptr;
  std::string filters;
  int64_t encoded = 0;
  int64_t next_audio_pts = 0;
};

// Fixed decisions for each input stream.
enum class Route { kDrop, kCopy, kCoder, kSubtitle };

struct SubtitleCoder {
  int in = -1, out = -1;
  CodecPtr dec, enc;
};

Status OpenDecoder(AVStream* st, int threads, const std::string& path, CodecPtr* out) {
  const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (!codec)
    return Status::Unsupported(fmt::format("{}: no decoder for its {} stream {} ({})", path,
                                           TypeName(st->codecpar->codec_type), st->index,
                                           CodecName(st->codecpar->codec_id)));
  CodecPtr c(avcodec_alloc_context3(codec));
  if (!c) return Status::Internal("out of memory");
  int r = avcodec_parameters_to_context(c.get(), st->codecpar);
  if (r >= 0) {
    c->pkt_timebase = st->time_base;
    c->thread_count = threads;
    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
      c->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    r = avcodec_open2(c.get(), codec, nullptr);
  }
  if (r < 0)
    return Status::Corrupt(
        fmt::format("{}: cannot open the decoder of stream {}: {}", path, st->index, AvError(r)));
  *out = std::move(c);
  return Status::Ok();
}

// The graph `text` between a buffer source made from `src_args` and a sink.
Status BuildGraph(bool video, const std::string& src_args, const std::string& text, int threads,
                  Coder* c, const std::string& path) {
  c->graph.reset(avfilter_graph_alloc());
  if (!c->graph) return Status::Internal("out of memory");
  c->graph->nb_threads = threads;
  const AVFilter* src = avfilter_get_by_name(video ? "buffer" : "abuffer");
  const AVFilter* sink = avfilter_get_by_name(video ? "buffersink" : "abuffersink");
  int r =
      avfilter_graph_create_filter(&c->src, src, "in", src_args.c_str(), nullptr, c->graph.get());
  if (r >= 0)
    r = avfilter_graph_create_filter(&c->sink, sink, "out", nullptr, nullptr, c->graph.get());
  if (r < 0)
    return Status::Internal(
        fmt::format("{}: cannot make the filter graph's ends: {}", path, AvError(r)));
  AVFilterInOut* outputs = avfilter_inout_alloc();
  AVFilterInOut* inputs = avfilter_inout_alloc();
  if (!outputs || !inputs) {
    avfilter_inout_free(&outputs);
    avfilter_inout_free(&inputs);
    return Status::Internal("out of memory");
  }
  outputs->name = av_strdup("in");
  outputs->filter_ctx = c->src;
  inputs->name = av_strdup("out");
  inputs->filter_ctx = c->sink;
  r = avfilter_graph_parse_ptr(c->graph.get(), text.c_str(), &inputs, &outputs, nullptr);
  avfilter_inout_free(&outputs);
  avfilter_inout_free(&inputs);
  if (r >= 0) r = avfilter_graph_config(c->graph.get(), nullptr);
  if (r < 0)
    return Status::Invalid(fmt::format("{}: the {} filters '{}' cannot run: {}", path,
                                       video ? "video" : "audio", text, AvError(r)));
  c->filters = text;
  return Status::Ok();
}

// The field order idet sees in up to `frames` frames from a tenth of the way in.
FieldOrder DetectFields(const std::string& path, int index, int frames) {
  auto in = OpenIn(path);
  if (!in.ok()) return FieldOrder::kUnknown;
  AVFormatContext* ic = in->get();
  AVStream* st = ic->streams[index];
  Coder c;
  if (!OpenDecoder(st, 0, path, &c.dec).ok()) return FieldOrder::kUnknown;
  const std::string args = fmt::format(
      "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect=1/1", st->codecpar->width,
      st->codecpar->height, st->codecpar->format, st->time_base.num, st->time_base.den);
  if (!BuildGraph(true, args, "idet", 1, &c, path).ok()) return FieldOrder::kUnknown;
  if (ic->duration > 10 * AV_TIME_BASE)
    av_seek_frame(
        ic, -1,
        ic->start_time == AV_NOPTS_VALUE ? ic->duration / 10 : ic->start_time + ic->duration / 10,
        AVSEEK_FLAG_BACKWARD);
  PacketPtr pkt(av_packet_alloc());
  FramePtr frame(av_frame_alloc()), out(av_frame_alloc());
  double tff = 0, bff = 0, prog = 0;
  int seen = 0;
  auto drain = [&] {
    while (av_buffersink_get_frame(c.sink, out.get()) >= 0) {
      auto get = [&](const char* key) {
        const AVDictionaryEntry* e = av_dict_get(out->metadata, key, nullptr, 0);
        return e ? std::strtod(e->value, nullptr) : 0.0;
      };
      tff = get("lavfi.idet.multiple.tff");
      bff = get("lavfi.idet.multiple.bff");
      prog = get("lavfi.idet.multiple.progressive");
      ++seen;
      av_frame_unref(out.get());
    }
  };
  while (seen < frames && !Interrupted() && av_read_frame(ic, pkt.get()) >= 0) {
    if (pkt->stream_index == index && avcodec_send_packet(c.dec.get(), pkt.get()) >= 0)
      while (avcodec_receive_frame(c.dec.get(), frame.get()) >= 0) {
        frame->pts = frame->best_effort_timestamp;
        if (av_buffersrc_add_frame(c.src, frame.get()) < 0) av_frame_unref(frame.get());
        drain();
      }
    av_packet_unref(pkt.get());
  }
  if (seen < 10 || tff + bff + prog < 10) return FieldOrder::kUnknown;
  if (tff + bff <= prog) return FieldOrder::kProgressive;
  return tff >= bff ? FieldOrder::kTopFirst : FieldOrder::kBottomFirst;
}

// Metadata a re-encode makes wrong (Matroska's statistics tags, the old encoder's name).
void CopyStreamMetadata(const AVStream* from, AVStream* to, bool reencoded) {
  av_dict_copy(&to->metadata, from->metadata, 0);
  to->disposition = from->disposition;
  if (!reencoded) return;
  for (const char* k :
       {"encoder", "DURATION", "BPS", "NUMBER_OF_FRAMES", "NUMBER_OF_BYTES", "_STATISTICS_TAGS",
        "_STATISTICS_WRITING_APP", "_STATISTICS_WRITING_DATE_UTC"})
    av_dict_set(&to->metadata, k, nullptr, 0);
}

class Run {
 public:
  Run(const std::string& path, const TranscodeSpec& spec, const TranscodeOptions& options)
      : path_(path), spec_(spec), options_(options) {}
  Result<TranscodeReport> Go(int out_fd, const std::string& extension);

 private:
  Status Plan(const std::string& extension, int out_fd);
  Status SetUpVideo(AVStream* st, Coder* c);
  Status SetUpAudio(AVStream* st, Coder* c);
  Status SetUpSubtitle(AVStream* st, const AVOutputFormat* of, SubtitleCoder* c);
  Status Write(AVPacket* pkt, int out, AVRational from);
  Status Feed(Coder* c, AVPacket* pkt);  // pkt null: flush
  Status Pull(Coder* c, bool flush);
  Status Encode(Coder* c, AVFrame* frame);
  Status Subtitle(SubtitleCoder* c, AVPacket* pkt);
  void Report(bool force);
  // The output's time of a copied packet's timestamp (trim, rebase, speed); false: outside.
  // Before the trim's start: a video packet is kept (the frames from its key frame are needed),
  // a subtitle shown across the start is cut to start there, anything else is dropped (a
  // negative time would make the muxer shift every stream).
  bool Retime(AVPacket* pkt, AVRational tb, AVMediaType type);

  std::string path_;
  const TranscodeSpec& spec_;
  const TranscodeOptions& options_;
  InPtr in_;
  OutPtr out_;
  TranscodeReport report_;
  std::vector<Route> route_;
  std::vector<int> copy_out_;
  std::map<int, std::unique_ptr<Coder>> coders_;
  std::map<int, std::unique_ptr<SubtitleCoder>> subtitles_;
  int video_ = -1;
  int64_t start_us_ = 0;  // the input's first timestamp (the output starts there)
  uint64_t t0_ = 0, last_report_ = 0;
};

bool Run::Retime(AVPacket* pkt, AVRational tb, AVMediaType type) {
  const int64_t shift = av_rescale_q(start_us_, AV_TIME_BASE_Q, tb) +
                        int64_t(std::llround(spec_.trim_start / av_q2d(tb)));
  const int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
  if (ts != AV_NOPTS_VALUE) {
    const double at = double(ts - shift) * av_q2d(tb);
    if (spec_.trim_duration > 0 && at >= spec_.trim_duration) return false;
    if (at < 0 && type != AVMEDIA_TYPE_VIDEO) {
      const int64_t end = ts - shift + pkt->duration;
      if (type != AVMEDIA_TYPE_SUBTITLE || end <= 0) return false;
      pkt->pts = pkt->dts = shift;  // shown from the start, for what is left of it
      pkt->duration = end;
    }
  }
  if (pkt->pts != AV_NOPTS_VALUE) pkt->pts -= shift;
  if (pkt->dts != AV_NOPTS_VALUE) pkt->dts -= shift;
  if (spec_.speed_factor != 1) {
    const double k = 1 / spec_.speed_factor;
    if (pkt->pts != AV_NOPTS_VALUE) pkt->pts = int64_t(std::llround(double(pkt->pts) * k));
    if (pkt->dts != AV_NOPTS_VALUE) pkt->dts = int64_t(std::llround(double(pkt->dts) * k));
    pkt->duration = int64_t(std::llround(double(pkt->duration) * k));
  }
  return true;
}

Status Run::SetUpVideo(AVStream* st, Coder* c) {
  const AVCodec* codec = avcodec_find_encoder_by_name(spec_.video_codec.c_str());
  LUMEN_RETURN_IF_ERROR(OpenDecoder(st, options_.threads, path_, &c->dec));
  SourceFacts facts;
  facts.width = st->codecpar->width;
  facts.height = st->codecpar->height;
  AVRational sar = av_guess_sample_aspect_ratio(in_.get(), st, nullptr);
  if (sar.num > 0 && sar.den > 0) facts.sar_num = sar.num, facts.sar_den = sar.den;
  facts.rotation = DisplayRotation(st);
  const AVRational rate = av_guess_frame_rate(in_.get(), st, nullptr);
  facts.fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0;
  const auto pix = static_cast<AVPixelFormat>(st->codecpar->format);
  if (const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(pix)) facts.bit_depth = d->comp[0].depth;
  const bool deinterlace = std::any_of(spec_.video.begin(), spec_.video.end(),
                                       [](const VideoStep& s) { return s.name == "deinterlace"; });
  if (deinterlace) {
    // What the frames show, not what the stream says: captures often flag interlaced tape as
    // progressive or leave it unflagged, and the flags' tb/bt are read both ways (x264's
    // top-field-first H.264 comes back as "tb"). The flag decides only where idet cannot.
    facts.field = DetectFields(path_, st->index, options_.detect_frames);
    report_.field_detected = facts.field != FieldOrder::kUnknown;
    if (facts.field == FieldOrder::kUnknown) switch (st->codecpar->field_order) {
        case AV_FIELD_TT:
        case AV_FIELD_TB:
          facts.field = FieldOrder::kTopFirst;
          break;
        case AV_FIELD_BB:
        case AV_FIELD_BT:
          facts.field = FieldOrder::kBottomFirst;
          break;
        case AV_FIELD_PROGRESSIVE:
          facts.field = FieldOrder::kProgressive;
          break;
        default:
          break;
      }
    report_.field = facts.field;
  }
  auto graph = BuildVideoGraph(spec_, facts, &report_.warnings);
  if (!graph.ok()) return Status::Invalid(fmt::format("{}: {}", path_, graph.status().message()));
  // The encoder's pixel format: as asked, else its closest to the source's.
  AVPixelFormat want = AV_PIX_FMT_NONE;
  if (!spec_.pix_fmt.empty()) {
    want = av_get_pix_fmt(spec_.pix_fmt.c_str());
    bool ok = false;
    for (const AVPixelFormat* p = codec->pix_fmts; p && *p != AV_PIX_FMT_NONE; ++p)
      ok = ok || *p == want;
    if (!ok)
      return Status::Invalid(fmt::format("{}: the {} encoder does not take {} frames", path_,
                                         spec_.video_codec, spec_.pix_fmt));
  } else if (codec->pix_fmts) {
    want = avcodec_find_best_pix_fmt_of_list(codec->pix_fmts, pix, 0, nullptr);
  }
  std::string text = graph->filters;
  if (want != AV_PIX_FMT_NONE)
    text += fmt::format(",format=pix_fmts={}", av_get_pix_fmt_name(want));
  std::string args = fmt::format("video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
                                 facts.width, facts.height, int(pix), st->time_base.num,
                                 st->time_base.den, facts.sar_num, facts.sar_den);
  if (rate.num > 0 && rate.den > 0) args += fmt::format(":frame_rate={}/{}", rate.num, rate.den);
  LUMEN_RETURN_IF_ERROR(BuildGraph(true, args, text, options_.threads, c, path_));
  report_.video_filters = text;
  report_.width = av_buffersink_get_w(c->sink);
  report_.height = av_buffersink_get_h(c->sink);

  CodecPtr enc(avcodec_alloc_context3(codec));
  if (!enc) return Status::Internal("out of memory");
  enc->width = av_buffersink_get_w(c->sink);
  enc->height = av_buffersink_get_h(c->sink);
  enc->pix_fmt = static_cast<AVPixelFormat>(av_buffersink_get_format(c->sink));
  enc->sample_aspect_ratio = av_buffersink_get_sample_aspect_ratio(c->sink);
  enc->time_base = av_buffersink_get_time_base(c->sink);
  const AVRational out_rate = av_buffersink_get_frame_rate(c->sink);
  if (out_rate.num > 0 && out_rate.den > 0) enc->framerate = out_rate;
  enc->color_primaries = c->dec->color_primaries;
  enc->color_trc = c->dec->color_trc;
  enc->colorspace = c->dec->colorspace;
  enc->color_range = c->dec->color_range;
  enc->thread_count = options_.threads;
  if (out_->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  AVDictionary* opts = nullptr;
  const std::string& name = spec_.video_codec;
  if (spec_.crf >= 0) av_dict_set_int(&opts, "crf", spec_.crf, 0);
  if (name == "libx264" || name == "libx265") {
    if (!spec_.speed.empty()) av_dict_set(&opts, "preset", spec_.speed.c_str(), 0);
    if (!spec_.tune.empty()) av_dict_set(&opts, "tune", spec_.tune.c_str(), 0);
    if (name == "libx265") av_dict_set(&opts, "x265-params", "log-level=error", 0);
  } else if (name == "libsvtav1") {
    if (!spec_.speed.empty()) av_dict_set(&opts, "preset", spec_.speed.c_str(), 0);
  } else if (name == "libvpx-vp9") {
    enc->bit_rate = 0;  // constant quality
    av_dict_set(&opts, "deadline", "good", 0);
    av_dict_set(&opts, "cpu-used", spec_.speed.empty() ? "2" : spec_.speed.c_str(), 0);
    av_dict_set(&opts, "row-mt", "1", 0);
  }
  const int r = avcodec_open2(enc.get(), codec, &opts);
  av_dict_free(&opts);
  if (r < 0)
    return Status::Invalid(fmt::format("{}: the {} encoder refused {}x{} {}: {}", path_, name,
                                       enc->width, enc->height, av_get_pix_fmt_name(enc->pix_fmt),
                                       AvError(r)));
  c->enc = std::move(enc);
  AVStream* os = out_->streams[c->out];
  avcodec_parameters_from_context(os->codecpar, c->enc.get());
  os->time_base = c->enc->time_base;
  os->avg_frame_rate = c->enc->framerate;
  if (name == "libx265" && IsMov(out_->oformat))
    os->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');
  // The display matrix stays, unless the frames were turned upright.
  size_t size = 0;
  const uint8_t* m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (m && !graph->rotated)
    if (uint8_t* d = av_stream_new_side_data(os, AV_PKT_DATA_DISPLAYMATRIX, size))
      std::memcpy(d, m, size);
  report_.streams.push_back(fmt::format("{} video {} {}x{} -> {} {}x{}", st->index,
                                        CodecName(st->codecpar->codec_id), facts.width,
                                        facts.height, name, c->enc->width, c->enc->height));
  return Status::Ok();
}

Status Run::SetUpAudio(AVStream* st, Coder* c) {
  std::string name = spec_.audio_codec;
  LUMEN_RETURN_IF_ERROR(OpenDecoder(st, 1, path_, &c->dec));
  const AVCodec* codec = avcodec_find_encoder_by_name(name.c_str());
  AVChannelLayout layout;
  if (c->dec->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || c->dec->ch_layout.nb_channels == 0)
    av_channel_layout_default(&layout, std::max(1, c->dec->ch_layout.nb_channels));
  else
    av_channel_layout_copy(&layout, &c->dec->ch_layout);
  char desc[128] = {0};
  av_channel_layout_describe(&layout, desc, sizeof desc);
  av_channel_layout_uninit(&layout);
  const std::string args =
      fmt::format("time_base=1/{0}:sample_rate={0}:sample_fmt={1}:channel_layout={2}",
                  c->dec->sample_rate, av_get_sample_fmt_name(c->dec->sample_fmt), desc);
  int rate = c->dec->sample_rate;
  if (codec->supported_samplerates) {
    bool ok = false;
    for (const int* r = codec->supported_samplerates; *r; ++r) ok = ok || *r == rate;
    if (!ok) {
      rate = codec->supported_samplerates[0];
      for (const int* r = codec->supported_samplerates; *r; ++r)
        if (*r == 48000) rate = 48000;
    }
  }
  // loudnorm works at 192 kHz: the encoder's rate is asked for at the end.
  std::string text = BuildAudioGraph(spec_, 0);
  text += fmt::format(
      ",aformat=sample_fmts={}:sample_rates={}",
      av_get_sample_fmt_name(codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_FLTP),
      rate);
  LUMEN_RETURN_IF_ERROR(BuildGraph(false, args, text, 1, c, path_));
  report_.audio_filters = text;
  CodecPtr enc(avcodec_alloc_context3(codec));
  if (!enc) return Status::Internal("out of memory");
  enc->sample_fmt = static_cast<AVSampleFormat>(av_buffersink_get_format(c->sink));
  enc->sample_rate = av_buffersink_get_sample_rate(c->sink);
  av_buffersink_get_ch_layout(c->sink, &enc->ch_layout);
  enc->time_base = av_buffersink_get_time_base(c->sink);
  const int kbps =
      spec_.audio_kbps > 0 ? spec_.audio_kbps : std::clamp(enc->ch_layout.nb_channels, 1, 8) * 96;
  enc->bit_rate = int64_t(kbps) * 1000;
  if (out_->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  const int r = avcodec_open2(enc.get(), codec, nullptr);
  if (r < 0)
    return Status::Invalid(fmt::format(
        "{}: the {} encoder refused audio stream {} ({} channels, "
        "{} Hz): {}",
        path_, name, st->index, enc->ch_layout.nb_channels, enc->sample_rate, AvError(r)));
  if (!(codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE) && enc->frame_size > 0)
    av_buffersink_set_frame_size(c->sink, unsigned(enc->frame_size));
  c->enc = std::move(enc);
  AVStream* os = out_->streams[c->out];
  avcodec_parameters_from_context(os->codecpar, c->enc.get());
  os->time_base = c->enc->time_base;
  report_.streams.push_back(fmt::format("{} audio {} -> {} {} kb/s", st->index,
                                        CodecName(st->codecpar->codec_id), name, kbps));
  return Status::Ok();
}

Status Run::SetUpSubtitle(AVStream* st, const AVOutputFormat* of, SubtitleCoder* c) {
  const AVCodecID target = IsMov(of)                       ? AV_CODEC_ID_MOV_TEXT
                           : std::strstr(of->name, "webm") ? AV_CODEC_ID_WEBVTT
                                                           : AV_CODEC_ID_SUBRIP;
  LUMEN_RETURN_IF_ERROR(OpenDecoder(st, 1, path_, &c->dec));
  const AVCodec* codec = avcodec_find_encoder(target);
  if (!codec) return Status::Unsupported("no subtitle encoder");
  CodecPtr enc(avcodec_alloc_context3(codec));
  enc->time_base = AV_TIME_BASE_Q;
  if (c->dec->subtitle_header && c->dec->subtitle_header_size > 0) {
    enc->subtitle_header =
        static_cast<uint8_t*>(av_mallocz(size_t(c->dec->subtitle_header_size) + 1));
    std::memcpy(enc->subtitle_header, c->dec->subtitle_header,
                size_t(c->dec->subtitle_header_size));
    enc->subtitle_header_size = c->dec->subtitle_header_size;
  }
  const int r = avcodec_open2(enc.get(), codec, nullptr);
  if (r < 0) return Status::Unsupported(AvError(r));
  c->enc = std::move(enc);
  AVStream* os = out_->streams[c->out];
  avcodec_parameters_from_context(os->codecpar, c->enc.get());
  os->time_base = AVRational{1, 1000};
  return Status::Ok();
}

Status Run::Plan(const std::string& extension, int out_fd) {
  AVFormatContext* ic = in_.get();
  std::string ext = extension;
  if (ext.empty()) {
    const size_t dot = path_.rfind('.');
    ext = dot == std::string::npos ? "mkv" : path_.substr(dot + 1);
  }
  const AVOutputFormat* of = av_guess_format(nullptr, ("x." + ext).c_str(), nullptr);
  if (!of)
    return Status::Invalid(
        fmt::format("{}: no container is known for the extension .{}", path_, ext));
  const std::string url = fmt::format("/proc/self/fd/{}", out_fd);
  AVFormatContext* oc = nullptr;
  int r = avformat_alloc_output_context2(&oc, of, nullptr, url.c_str());
  if (r < 0 || !oc)
    return Status::Internal(fmt::format("cannot make a .{} muxer: {}", ext, AvError(r)));
  out_.reset(oc);
  oc->interrupt_callback = {InterruptCallback, nullptr};

  // The main video stream: the largest that is not a cover picture.
  for (unsigned i = 0; i < ic->nb_streams; ++i) {
    const AVStream* st = ic->streams[i];
    if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO ||
        (st->disposition & AV_DISPOSITION_ATTACHED_PIC))
      continue;
    if (video_ < 0 ||
        int64_t(st->codecpar->width) * st->codecpar->height >
            int64_t(ic->streams[video_]->codecpar->width) * ic->streams[video_]->codecpar->height)
      video_ = int(i);
  }
  if (video_ < 0) return Status::Unsupported(fmt::format("{}: has no video stream", path_));
  const bool copy_video = spec_.video_codec == "copy";
  if (!copy_video) {
    const AVCodec* codec = avcodec_find_encoder_by_name(spec_.video_codec.c_str());
    if (!codec)
      return Status::Unsupported(fmt::format("this FFmpeg has no {} encoder", spec_.video_codec));
    if (Holds(of, codec->id) == 0)
      return Status::Invalid(
          fmt::format("{}: {} video cannot go into a .{} file (choose .mkv or "
                      "another codec)",
                      path_, CodecName(codec->id), ext));
  } else if (Holds(of, ic->streams[video_]->codecpar->codec_id) == 0) {
    return Status::Invalid(
        fmt::format("{}: its {} video cannot go into a .{} file unconverted "
                    "(choose .mkv, or a codec)",
                    path_, CodecName(ic->streams[video_]->codecpar->codec_id), ext));
  }
  const AVCodec* audio_codec = nullptr;
  if (spec_.audio_codec != "copy") {
    audio_codec = avcodec_find_encoder_by_name(spec_.audio_codec.c_str());
    if (!audio_codec)
      return Status::Unsupported(fmt::format("this FFmpeg has no {} encoder", spec_.audio_codec));
  }
  route_.assign(ic->nb_streams, Route::kDrop);
  copy_out_.assign(ic->nb_streams, -1);
  for (unsigned i = 0; i < ic->nb_streams; ++i) {
    AVStream* st = ic->streams[i];
    const AVCodecParameters* par = st->codecpar;
    const AVMediaType type = par->codec_type;
    auto drop = [&](const std::string& why) {
      report_.warnings.push_back(fmt::format("stream {} ({} {}) dropped: {}", i, TypeName(type),
                                             CodecName(par->codec_id), why));
    };
    Route route = Route::kDrop;
    if (int(i) == video_) {
      route = copy_video ? Route::kCopy : Route::kCoder;
    } else if (type == AVMEDIA_TYPE_AUDIO) {
      if (!audio_codec) {
        if (Holds(of, par->codec_id) != 0) {
          route = Route::kCopy;
        } else {
          drop(fmt::format("a .{} file cannot hold {} audio (convert it: aac or opus)", ext,
                           CodecName(par->codec_id)));
          continue;
        }
      } else {
        if (Holds(of, audio_codec->id) == 0)
          return Status::Invalid(fmt::format("{}: {} audio cannot go into a .{} file (choose {})",
                                             path_, CodecName(audio_codec->id), ext,
                                             std::strstr(of->name, "webm") ? "opus" : ".mkv"));
        route = Route::kCoder;
      }
    } else if (type == AVMEDIA_TYPE_SUBTITLE) {
      const AVCodecDescriptor* d = avcodec_descriptor_get(par->codec_id);
      if (Holds(of, par->codec_id) != 0 && !(IsMov(of) && par->codec_id != AV_CODEC_ID_MOV_TEXT)) {
        route = Route::kCopy;
      } else if (d && (d->props & AV_CODEC_PROP_TEXT_SUB)) {
        route = Route::kSubtitle;
      } else {
        drop(fmt::format("a .{} file cannot hold {} subtitles (bitmap subtitles need .mkv)", ext,
                         CodecName(par->codec_id)));
        continue;
      }
    } else if (type == AVMEDIA_TYPE_ATTACHMENT) {
      if (!IsMatroska(of)) {
        const AVDictionaryEntry* e = av_dict_get(st->metadata, "filename", nullptr, 0);
        drop(fmt::format("only .mkv files hold attachments ({})", e ? e->value : "unnamed"));
        continue;
      }
      route = Route::kCopy;
    } else if (type == AVMEDIA_TYPE_VIDEO || type == AVMEDIA_TYPE_DATA) {
      if (Holds(of, par->codec_id) == 1 || (IsMatroska(of) && type == AVMEDIA_TYPE_VIDEO)) {
        route = Route::kCopy;
      } else {
        drop(fmt::format("a .{} file cannot hold it", ext));
        continue;
      }
    } else {
      drop("not a kind of stream lumen keeps");
      continue;
    }
    AVStream* os = avformat_new_stream(oc, nullptr);
    if (!os) return Status::Internal("out of memory");
    route_[i] = route;
    copy_out_[i] = os->index;
    CopyStreamMetadata(st, os, route != Route::kCopy);
    if (route == Route::kCopy) {
      avcodec_parameters_copy(os->codecpar, par);
      if (std::strcmp(of->name, ic->iformat->name) != 0) os->codecpar->codec_tag = 0;
      os->time_base = st->time_base;
      os->avg_frame_rate = st->avg_frame_rate;
      for (int s = 0; s < st->nb_side_data; ++s)
        if (uint8_t* d = av_stream_new_side_data(os, st->side_data[s].type, st->side_data[s].size))
          std::memcpy(d, st->side_data[s].data, st->side_data[s].size);
      report_.streams.push_back(
          fmt::format("{} {} {} -> copy", i, TypeName(type), CodecName(par->codec_id)));
    }
  }
  // Chapters, moved and scaled like the streams.
  const double shift = double(start_us_) / AV_TIME_BASE + spec_.trim_start;
  for (unsigned i = 0; i < ic->nb_chapters; ++i) {
    const AVChapter* ch = ic->chapters[i];
    double s = double(ch->start) * av_q2d(ch->time_base) - shift;
    double e = double(ch->end) * av_q2d(ch->time_base) - shift;
    if (e <= 0 || (spec_.trim_duration > 0 && s >= spec_.trim_duration)) continue;
    s = std::max(0.0, s);
    if (spec_.trim_duration > 0) e = std::min(e, spec_.trim_duration);
    auto* c = static_cast<AVChapter*>(av_mallocz(sizeof(AVChapter)));
    if (!c) return Status::Internal("out of memory");
    c->id = ch->id;
    c->time_base = AVRational{1, 1000};
    c->start = int64_t(std::llround(s * 1000 / spec_.speed_factor));
    c->end = int64_t(std::llround(e * 1000 / spec_.speed_factor));
    av_dict_copy(&c->metadata, ch->metadata, 0);
    av_dynarray_add(&oc->chapters, reinterpret_cast<int*>(&oc->nb_chapters), c);
  }
  av_dict_copy(&oc->metadata, ic->metadata, 0);
  av_dict_set(&oc->metadata, "encoder", nullptr, 0);
  return Status::Ok();
}

Status Run::Write(AVPacket* pkt, int out, AVRational from) {
  AVStream* os = out_->streams[out];
  pkt->stream_index = out;
  av_packet_rescale_ts(pkt, from, os->time_base);
  pkt->pos = -1;
  const int r = av_interleaved_write_frame(out_.get(), pkt);
  if (r < 0) {
    if (r == AVERROR(ENOSPC))
      return Status::Io(fmt::format("{}: the disk is full (no space left for the output)", path_));
    if (r == AVERROR_EXIT) return Status::Interrupted("interrupted");
    return Status::Io(fmt::format("{}: cannot write the output: {}", path_, AvError(r)));
  }
  return Status::Ok();
}

void Run::Report(bool force) {
  if (!options_.progress) return;
  const uint64_t now = MonotonicNs();
  if (!force && now - last_report_ < 500'000'000ull) return;
  last_report_ = now;
  report_.last.elapsed = double(now - t0_) / 1e9;
  if (out_->pb) report_.last.bytes = uint64_t(std::max<int64_t>(0, avio_tell(out_->pb)));
  options_.progress(report_.last);
}

Status Run::Encode(Coder* c, AVFrame* frame) {
  int r = avcodec_send_frame(c->enc.get(), frame);
  if (r < 0 && r != AVERROR_EOF)
    return Status::Internal(
        fmt::format("{}: the encoder of stream {} failed: {}", path_, c->in, AvError(r)));
  PacketPtr pkt(av_packet_alloc());
  while ((r = avcodec_receive_packet(c->enc.get(), pkt.get())) >= 0) {
    if (c->type == AVMEDIA_TYPE_VIDEO) {
      ++report_.last.frames;
      const int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
      if (ts != AV_NOPTS_VALUE)
        report_.last.position =
            std::max(report_.last.position, double(ts) * av_q2d(c->enc->time_base));
    }
    LUMEN_RETURN_IF_ERROR(Write(pkt.get(), c->out, c->enc->time_base));
  }
  if (r != AVERROR(EAGAIN) && r != AVERROR_EOF)
    return Status::Internal(
        fmt::format("{}: the encoder of stream {} failed: {}", path_, c->in, AvError(r)));
  Report(false);
  return Status::Ok();
}

Status Run::Pull(Coder* c, bool flush) {
  FramePtr f(av_frame_alloc());
  while (true) {
    const int r = av_buffersink_get_frame(c->sink, f.get());
    if (r == AVERROR(EAGAIN)) return Status::Ok();
    if (r == AVERROR_EOF) break;
    if (r < 0)
      return Status::Internal(fmt::format("{}: the filters failed: {}", path_, AvError(r)));
    f->pict_type = AV_PICTURE_TYPE_NONE;
    if (c->type == AVMEDIA_TYPE_AUDIO && f->pts == AV_NOPTS_VALUE) f->pts = c->next_audio_pts;
    if (c->type == AVMEDIA_TYPE_AUDIO) c->next_audio_pts = f->pts + f->nb_samples;
    // The sink's time base is the encoder's for video; audio is in samples (1/rate) both sides.
    LUMEN_RETURN_IF_ERROR(Encode(c, f.get()));
    av_frame_unref(f.get());
  }
  if (flush) return Encode(c, nullptr);
  return Status::Ok();
}

Status Run::Feed(Coder* c, AVPacket* pkt) {
  int r = avcodec_send_packet(c->dec.get(), pkt);
  if (r < 0 && r != AVERROR_EOF) {
    if (r == AVERROR(EAGAIN)) return Status::Ok();
    ++report_.corrupt_packets;  // a broken packet: counted, and the stream goes on
    return Status::Ok();
  }
  FramePtr frame(av_frame_alloc());
  while (true) {
    r = avcodec_receive_frame(c->dec.get(), frame.get());
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
    if (r < 0) {
      ++report_.corrupt_packets;
      if (r == AVERROR_INVALIDDATA) continue;
      break;
    }
    frame->pts = frame->best_effort_timestamp;
    if (frame->pts != AV_NOPTS_VALUE)
      frame->pts -= av_rescale_q(start_us_, AV_TIME_BASE_Q, in_->streams[c->in]->time_base);
    if (c->type == AVMEDIA_TYPE_AUDIO && frame->pts != AV_NOPTS_VALUE)
      frame->pts = av_rescale_q(frame->pts, in_->streams[c->in]->time_base,
                                AVRational{1, frame->sample_rate});
    r = av_buffersrc_add_frame_flags(c->src, frame.get(), 0);  // takes the frame's data
    av_frame_unref(frame.get());
    if (r < 0 && r != AVERROR_EOF)
      return Status::Internal(
          fmt::format("{}: the filters refused a frame: {}", path_, AvError(r)));
    LUMEN_RETURN_IF_ERROR(Pull(c, false));
  }
  if (!pkt) {
    const int end = av_buffersrc_add_frame(c->src, nullptr);
    if (end < 0 && end != AVERROR_EOF)
      return Status::Internal(fmt::format("{}: the filters did not end: {}", path_, AvError(end)));
    LUMEN_RETURN_IF_ERROR(Pull(c, true));
  }
  return Status::Ok();
}

Status Run::Subtitle(SubtitleCoder* c, AVPacket* pkt) {
  AVSubtitle sub;
  int got = 0;
  if (avcodec_decode_subtitle2(c->dec.get(), &sub, &got, pkt) < 0) {
    ++report_.corrupt_packets;
    return Status::Ok();
  }
  if (!got) return Status::Ok();
  std::unique_ptr<AVSubtitle, void (*)(AVSubtitle*)> owner(&sub, avsubtitle_free);
  if (sub.pts == AV_NOPTS_VALUE) return Status::Ok();
  // The encoders want the shown interval from the packet's time.
  sub.pts += av_rescale_q(sub.start_display_time, AVRational{1, 1000}, AV_TIME_BASE_Q);
  sub.end_display_time -= sub.start_display_time;
  sub.start_display_time = 0;
  std::vector<uint8_t> buf(1 << 20);
  const int n = avcodec_encode_subtitle(c->enc.get(), buf.data(), int(buf.size()), &sub);
  if (n <= 0) return Status::Ok();
  PacketPtr out(av_packet_alloc());
  if (av_new_packet(out.get(), n) < 0) return Status::Internal("out of memory");
  std::memcpy(out->data, buf.data(), size_t(n));
  out->pts = out->dts = sub.pts;
  out->duration = av_rescale_q(sub.end_display_time, AVRational{1, 1000}, AV_TIME_BASE_Q);
  if (!Retime(out.get(), AV_TIME_BASE_Q, AVMEDIA_TYPE_SUBTITLE)) return Status::Ok();
  return Write(out.get(), c->out, AV_TIME_BASE_Q);
}

Result<TranscodeReport> Run::Go(int out_fd, const std::string& extension) {
  t0_ = MonotonicNs();
  auto in = OpenIn(path_);
  if (!in.ok()) return in.status();
  in_ = std::move(*in);
  AVFormatContext* ic = in_.get();
  start_us_ = ic->start_time != AV_NOPTS_VALUE ? ic->start_time : 0;
  LUMEN_RETURN_IF_ERROR(Plan(extension, out_fd));
  if (ic->duration > 0) {
    double d = double(ic->duration) / AV_TIME_BASE - spec_.trim_start;
    if (spec_.trim_duration > 0) d = std::min(d, spec_.trim_duration);
    report_.last.duration = std::max(0.0, d) / spec_.speed_factor;
  }
  for (unsigned i = 0; i < ic->nb_streams; ++i) {
    AVStream* st = ic->streams[i];
    if (route_[i] == Route::kCoder) {
      auto c = std::make_unique<Coder>();
      c->type = st->codecpar->codec_type;
      c->in = int(i);
      c->out = copy_out_[i];
      if (c->type == AVMEDIA_TYPE_VIDEO)
        LUMEN_RETURN_IF_ERROR(SetUpVideo(st, c.get()));
      else
        LUMEN_RETURN_IF_ERROR(SetUpAudio(st, c.get()));
      coders_[int(i)] = std::move(c);
    } else if (route_[i] == Route::kSubtitle) {
      auto c = std::make_unique<SubtitleCoder>();
      c->in = int(i);
      c->out = copy_out_[i];
      if (Status st2 = SetUpSubtitle(st, out_->oformat, c.get()); !st2.ok())
        return Status::Unsupported(
            fmt::format("{}: subtitle stream {} cannot be converted: {}", path_, i, st2.message()));
      report_.streams.push_back(fmt::format("{} subtitle {} -> {}", i,
                                            CodecName(st->codecpar->codec_id),
                                            CodecName(c->enc->codec_id)));
      subtitles_[int(i)] = std::move(c);
    }
  }
  if (route_[size_t(video_)] == Route::kCopy) report_.video_filters = "copy";
  AVDictionary* mux = nullptr;
  if (spec_.faststart && IsMov(out_->oformat)) av_dict_set(&mux, "movflags", "+faststart", 0);
  int r = avio_open2(&out_->pb, out_->url, AVIO_FLAG_WRITE, &out_->interrupt_callback, nullptr);
  if (r < 0) {
    av_dict_free(&mux);
    return Status::Io(fmt::format("{}: cannot open the output: {}", path_, AvError(r)));
  }
  r = avformat_write_header(out_.get(), &mux);
  av_dict_free(&mux);
  if (r < 0)
    return Status::Invalid(fmt::format(
        "{}: the .{} muxer refused the streams: {}", path_,
        out_->oformat->extensions ? out_->oformat->extensions : out_->oformat->name, AvError(r)));
  if (spec_.trim_start > 0)
    av_seek_frame(ic, -1, start_us_ + int64_t(spec_.trim_start * AV_TIME_BASE),
                  AVSEEK_FLAG_BACKWARD);

  PacketPtr pkt(av_packet_alloc());
  int errors_in_a_row = 0;
  while (true) {
    if (Interrupted()) return Status::Interrupted(fmt::format("{}: interrupted", path_));
    r = av_read_frame(ic, pkt.get());
    if (r == AVERROR_EOF) break;
    if (r == AVERROR_EXIT) return Status::Interrupted(fmt::format("{}: interrupted", path_));
    if (r == AVERROR(EAGAIN)) continue;
    if (r < 0) {
      // A damaged stretch: counted; a file that gives nothing but errors ends here.
      ++report_.corrupt_packets;
      if (++errors_in_a_row > 1000 || avio_feof(ic->pb)) break;
      continue;
    }
    errors_in_a_row = 0;
    const int i = pkt->stream_index;
    if (pkt->flags & AV_PKT_FLAG_CORRUPT) ++report_.corrupt_packets;
    if (i < 0 || size_t(i) >= route_.size()) {
      av_packet_unref(pkt.get());
      continue;
    }
    const AVRational tb = ic->streams[i]->time_base;
    Status st = Status::Ok();
    switch (route_[size_t(i)]) {
      case Route::kDrop:
        break;
      case Route::kCopy:
        if (Retime(pkt.get(), tb, ic->streams[i]->codecpar->codec_type)) {
          if (i == video_) {
            ++report_.last.frames;
            const int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
            if (ts != AV_NOPTS_VALUE)
              report_.last.position = std::max(report_.last.position, double(ts) * av_q2d(tb));
          }
          st = Write(pkt.get(), copy_out_[size_t(i)], tb);
          Report(false);
        }
        break;
      case Route::kCoder:
        st = Feed(coders_[i].get(), pkt.get());
        break;
      case Route::kSubtitle:
        st = Subtitle(subtitles_[i].get(), pkt.get());
        break;
    }
    av_packet_unref(pkt.get());
    if (!st.ok()) return st;
    // Trimmed: once the video is past the end, the rest is not read.
    if (spec_.trim_duration > 0 &&
        report_.last.position > spec_.trim_duration / spec_.speed_factor + 1)
      break;
  }
  for (auto& [i, c] : coders_) LUMEN_RETURN_IF_ERROR(Feed(c.get(), nullptr));
  r = av_write_trailer(out_.get());
  if (r < 0) {
    if (r == AVERROR(ENOSPC))
      return Status::Io(fmt::format("{}: the disk is full (no space left for the output)", path_));
    return Status::Io(fmt::format("{}: cannot finish the output: {}", path_, AvError(r)));
  }
  if (avio_flush(out_->pb), out_->pb->error < 0)
    return Status::Io(
        fmt::format("{}: cannot write the output: {}", path_, AvError(out_->pb->error)));
  Report(true);
  return report_;
}

}  // namespace

Result<TranscodeReport> Transcode(const std::string& input, int out_fd,
                                  const std::string& extension, const TranscodeSpec& spec,
                                  const TranscodeOptions& options) {
  Run run(input, spec, options);
  return run.Go(out_fd, extension);
}

}  // namespace lumen::video
