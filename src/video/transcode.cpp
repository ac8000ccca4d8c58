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

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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
// kExternal: the video of a job's assembly, already encoded in its segment files.
enum class Route { kDrop, kCopy, kCoder, kSubtitle, kExternal };

// A job's segment file: the encoder's packets exactly as it gave them (pts, dts, duration,
// flags: containers such as NUT or Matroska keep only presentation times and guess decode times
// at a segment's start), after a header with the stream's parameters. Native byte order: the
// file is read back by the same build on the same machine (a job's folder does not travel).
//   "LUMSEG1\n", int32 x 20 (parameters), uint32 extradata size, extradata,
//   then per packet: int64 pts, dts, duration; int32 flags; uint32 size; bytes.
constexpr char kSegmentMagic[8] = {'L', 'U', 'M', 'S', 'E', 'G', '1', '\n'};
constexpr int kSegmentInts = 20;

class SegmentWriter {
 public:
  ~SegmentWriter() {
    if (f_) std::fclose(f_);
  }
  Status Open(int fd, const AVCodecParameters* par, AVRational tb, AVRational rate, bool upright) {
    const int dup = ::dup(fd);
    if (dup < 0 || !(f_ = ::fdopen(dup, "wb"))) {
      if (dup >= 0) ::close(dup);
      return Status::Io(fmt::format("cannot write a segment: {}", std::strerror(errno)));
    }
    const int32_t v[kSegmentInts] = {int32_t(par->codec_id),
                                     par->format,
                                     par->width,
                                     par->height,
                                     par->sample_aspect_ratio.num,
                                     par->sample_aspect_ratio.den,
                                     int32_t(par->field_order),
                                     int32_t(par->color_range),
                                     int32_t(par->color_primaries),
                                     int32_t(par->color_trc),
                                     int32_t(par->color_space),
                                     int32_t(par->chroma_location),
                                     par->profile,
                                     par->level,
                                     par->video_delay,
                                     tb.num,
                                     tb.den,
                                     rate.num,
                                     rate.den,
                                     upright ? 1 : 0};
    const uint32_t n = uint32_t(std::max(0, par->extradata_size));
    Put(kSegmentMagic, sizeof kSegmentMagic);
    Put(v, sizeof v);
    Put(&n, sizeof n);
    if (n) Put(par->extradata, n);
    return Error();
  }
  Status Add(const AVPacket* pkt) {
    const int64_t t[3] = {pkt->pts, pkt->dts, pkt->duration};
    const int32_t flags = pkt->flags;
    const uint32_t n = uint32_t(pkt->size);
    Put(t, sizeof t);
    Put(&flags, sizeof flags);
    Put(&n, sizeof n);
    if (n) Put(pkt->data, n);
    return Error();
  }
  Status Close() {
    if (f_ && std::fflush(f_) != 0 && !errno_) errno_ = errno;
    if (f_ && std::fclose(f_) != 0 && !errno_) errno_ = errno;
    f_ = nullptr;
    return Error();
  }
  uint64_t bytes() const { return bytes_; }

 private:
  void Put(const void* p, size_t n) {
    if (errno_) return;
    if (std::fwrite(p, 1, n, f_) != n) errno_ = errno ? errno : EIO;
    bytes_ += n;
  }
  Status Error() const {
    if (!errno_) return Status::Ok();
    if (errno_ == ENOSPC) return Status::Io("the disk is full (no space left for the segments)");
    return Status::Io(fmt::format("cannot write a segment: {}", std::strerror(errno_)));
  }
  std::FILE* f_ = nullptr;
  int errno_ = 0;
  uint64_t bytes_ = 0;
};

// The packets of a job's segment files, one file after the other.
class SegmentReader {
 public:
  explicit SegmentReader(const std::vector<std::string>& files) : files_(files) {}
  ~SegmentReader() {
    if (f_) std::fclose(f_);
  }
  // Reads the first file's header into `par` (the output stream's parameters).
  Status Open(AVCodecParameters* par) {
    LUMEN_RETURN_IF_ERROR(Next());
    par->codec_type = AVMEDIA_TYPE_VIDEO;
    par->codec_id = AVCodecID(v_[0]);
    par->format = v_[1];
    par->width = v_[2];
    par->height = v_[3];
    par->sample_aspect_ratio = AVRational{v_[4], v_[5]};
    par->field_order = AVFieldOrder(v_[6]);
    par->color_range = AVColorRange(v_[7]);
    par->color_primaries = AVColorPrimaries(v_[8]);
    par->color_trc = AVColorTransferCharacteristic(v_[9]);
    par->color_space = AVColorSpace(v_[10]);
    par->chroma_location = AVChromaLocation(v_[11]);
    par->profile = v_[12];
    par->level = v_[13];
    par->video_delay = v_[14];
    av_freep(&par->extradata);
    par->extradata_size = 0;
    if (!extradata_.empty()) {
      par->extradata =
          static_cast<uint8_t*>(av_mallocz(extradata_.size() + AV_INPUT_BUFFER_PADDING_SIZE));
      if (!par->extradata) return Status::Internal("out of memory");
      std::memcpy(par->extradata, extradata_.data(), extradata_.size());
      par->extradata_size = int(extradata_.size());
    }
    return Status::Ok();
  }
  AVRational time_base() const { return AVRational{v_[15], v_[16]}; }
  AVRational frame_rate() const { return AVRational{v_[17], v_[18]}; }
  bool upright() const { return v_[19] != 0; }
  // The next packet (in time_base()), or false after the last file.
  Result<bool> Read(AVPacket* pkt) {
    while (f_) {
      int64_t t[3];
      int32_t flags;
      uint32_t n;
      const size_t got = std::fread(t, 1, sizeof t, f_);
      if (got == 0 && std::feof(f_)) {
        std::fclose(f_);
        f_ = nullptr;
        if (next_ < files_.size()) LUMEN_RETURN_IF_ERROR(Next());
        continue;
      }
      if (got != sizeof t || std::fread(&flags, sizeof flags, 1, f_) != 1 ||
          std::fread(&n, sizeof n, 1, f_) != 1 || n > (1u << 30) ||
          av_new_packet(pkt, int(n)) < 0 || (n && std::fread(pkt->data, 1, n, f_) != n))
        return Status::Corrupt(fmt::format("{}: a segment is cut short", files_[next_ - 1]));
      pkt->pts = t[0];
      pkt->dts = t[1];
      pkt->duration = t[2];
      pkt->flags = flags;
      return true;
    }
    return false;
  }

 private:
  Status Next() {
    const std::string& path = files_[next_++];
    f_ = std::fopen(path.c_str(), "rbe");
    if (!f_) return Status::Io(fmt::format("{}: {}", path, std::strerror(errno)));
    char magic[sizeof kSegmentMagic];
    int32_t v[kSegmentInts];
    uint32_t n = 0;
    if (std::fread(magic, sizeof magic, 1, f_) != 1 ||
        std::memcmp(magic, kSegmentMagic, sizeof magic) != 0 ||
        std::fread(v, sizeof v, 1, f_) != 1 || std::fread(&n, sizeof n, 1, f_) != 1 ||
        n > (1u << 24))
      return Status::Corrupt(fmt::format("{}: not a segment of a lumen job", path));
    std::vector<uint8_t> extra(n);
    if (n && std::fread(extra.data(), 1, n, f_) != n)
      return Status::Corrupt(fmt::format("{}: a segment is cut short", path));
    if (next_ == 1) {
      std::memcpy(v_, v, sizeof v);
      extradata_ = std::move(extra);
    } else if (std::memcmp(v, v_, sizeof v) != 0 || extra != extradata_) {
      // Each segment is a fresh encoder with the same settings: the same stream, or the job's
      // files are not what it wrote.
      return Status::Corrupt(fmt::format("{}: its stream differs from the first segment's", path));
    }
    return Status::Ok();
  }
  const std::vector<std::string>& files_;
  size_t next_ = 0;
  std::FILE* f_ = nullptr;
  int32_t v_[kSegmentInts] = {};
  std::vector<uint8_t> extradata_;
};

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

// The main video stream: the largest that is not a cover picture (-1: none).
int MainVideo(const AVFormatContext* ic) {
  int video = -1;
  for (unsigned i = 0; i < ic->nb_streams; ++i) {
    const AVStream* st = ic->streams[i];
    if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO ||
        (st->disposition & AV_DISPOSITION_ATTACHED_PIC))
      continue;
    if (video < 0 ||
        int64_t(st->codecpar->width) * st->codecpar->height >
            int64_t(ic->streams[video]->codecpar->width) * ic->streams[video]->codecpar->height)
      video = int(i);
  }
  return video;
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
  ~Run() {
    if (!scratch_.empty()) {
      ::unlink((scratch_ + "/transforms.trf").c_str());
      ::rmdir(scratch_.c_str());
    }
  }
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
  // Assembly: the segments' packets up to `until` seconds (of the output's time).
  Status Pump(double until);
  // A segment: from about a second before its first frame (a key frame at or before it).
  Status SeekToSegment();
  Status OpenOutput();  // the muxer's header
  // Stabilisation: the motion file's path (in a private folder removed with the run), and its
  // first pass (the graph `text` over every frame of `st`).
  std::string TransformsPath();
  Status DetectMotion(AVStream* st, const SourceFacts& facts, const std::string& text);
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
  bool global_header_ = false;  // the final container's, also for a segment
  SegmentWriter segment_out_;   // a segment's packets (options_.segment)
  bool segment_done_ = false;   // a segment's end was reached
  std::unique_ptr<SegmentReader> segments_;
  PacketPtr pending_;  // the segments' next packet (in their time base)
  int64_t last_dts_ = AV_NOPTS_VALUE;
  int64_t start_us_ = 0;  // the input's first timestamp (the output starts there)
  uint64_t t0_ = 0, last_report_ = 0;
  std::string scratch_;  // the stabiliser's folder
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
  if (deinterlace && options_.field != FieldOrder::kUnknown) {
    facts.field = options_.field;
    report_.field = facts.field;
  } else if (deinterlace) {
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
  if (!graph->detect.empty()) {
    // Stabilisation's first pass, over the whole stream, into a file of this run's own.
    const std::string trf = TransformsPath();
    if (trf.empty())
      return Status::Io(fmt::format("{}: cannot make a folder for the motion file: {}", path_,
                                    std::strerror(errno)));
    for (std::string* t : {&graph->detect, &graph->filters})
      for (size_t at; (at = t->find(kTransformsToken)) != std::string::npos;)
        t->replace(at, std::strlen(kTransformsToken), trf);
    LUMEN_RETURN_IF_ERROR(DetectMotion(st, facts, graph->detect));
  }
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
  if (global_header_) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
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
  report_.upright = graph->rotated;
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
  if (global_header_) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
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
  global_header_ = of->flags & AVFMT_GLOBALHEADER;
  const AVOutputFormat* muxer = of;
  if (options_.segment && !(muxer = av_guess_format("nut", nullptr, nullptr)))
    return Status::Unsupported("this FFmpeg has no NUT muxer (needed for a job's segments)");
  AVFormatContext* oc = nullptr;
  int r = avformat_alloc_output_context2(&oc, muxer, nullptr, url.c_str());
  if (r < 0 || !oc)
    return Status::Internal(fmt::format("cannot make a .{} muxer: {}", ext, AvError(r)));
  out_.reset(oc);
  oc->interrupt_callback = {InterruptCallback, nullptr};

  video_ = MainVideo(ic);
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
    if (options_.segment && int(i) != video_) {
      continue;
    } else if (int(i) == video_) {
      route = copy_video ? Route::kCopy : Route::kCoder;
      if (!options_.video_segments.empty()) route = Route::kExternal;
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
    if (route == Route::kExternal) {
      segments_ = std::make_unique<SegmentReader>(options_.video_segments);
      LUMEN_RETURN_IF_ERROR(segments_->Open(os->codecpar));
      os->codecpar->codec_tag = 0;
      if (os->codecpar->codec_id == AV_CODEC_ID_HEVC && IsMov(of))
        os->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');
      os->time_base = segments_->time_base();
      os->avg_frame_rate = segments_->frame_rate();
      size_t size = 0;
      const uint8_t* m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
      if (m && !segments_->upright())
        if (uint8_t* d = av_stream_new_side_data(os, AV_PKT_DATA_DISPLAYMATRIX, size))
          std::memcpy(d, m, size);
      report_.video_filters = "segments";
      report_.streams.push_back(
          fmt::format("{} video {} -> {} ({} segments)", i, CodecName(par->codec_id),
                      CodecName(os->codecpar->codec_id), options_.video_segments.size()));
    }
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
  if (options_.segment) return Status::Ok();  // a segment holds the video only
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
  if (options_.segment) {
    Status st = segment_out_.Add(pkt);
    if (!st.ok()) return Status(st.code(), fmt::format("{}: {}", path_, st.message()));
    return Status::Ok();
  }
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
  if (options_.segment) report_.last.bytes = segment_out_.bytes();
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
    if (options_.segment && c->type == AVMEDIA_TYPE_VIDEO && f->pts == AV_NOPTS_VALUE) {
      av_frame_unref(f.get());  // a segment keeps frames by their time: one without is no one's
      continue;
    }
    if (options_.segment && c->type == AVMEDIA_TYPE_VIDEO) {
      // Only this segment's frames: those before it warmed the filters up, those after it are
      // the next segment's.
      const AVRational tb = av_buffersink_get_time_base(c->sink);
      const AVRational stb = in_->streams[video_]->time_base;
      if (options_.segment_end != INT64_MAX &&
          av_compare_ts(f->pts, tb, options_.segment_end, stb) >= 0) {
        segment_done_ = true;
        av_frame_unref(f.get());
        continue;
      }
      if (options_.segment_begin != INT64_MIN &&
          av_compare_ts(f->pts, tb, options_.segment_begin, stb) < 0) {
        av_frame_unref(f.get());
        continue;
      }
    }
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

std::string Run::TransformsPath() {
  if (scratch_.empty()) {
    // A path the filter option syntax takes as it is (no ':', ',', quotes or spaces).
    const char* tmp = std::getenv("TMPDIR");
    std::string base = tmp && *tmp ? tmp : "/tmp";
    if (base.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-") !=
        std::string::npos)
      base = "/tmp";
    std::string dir = base + "/lumen-stabilise-XXXXXX";
    if (!::mkdtemp(dir.data())) return "";
    scratch_ = dir;
  }
  return scratch_ + "/transforms.trf";
}

Status Run::DetectMotion(AVStream* st, const SourceFacts& facts, const std::string& text) {
  log::Info(
      fmt::format("{}: measuring the camera's motion (stabilise, first of two passes)", path_));
  auto in = OpenIn(path_);
  if (!in.ok()) return in.status();
  AVFormatContext* ic = in->get();
  for (unsigned i = 0; i < ic->nb_streams; ++i)
    if (int(i) != st->index) ic->streams[i]->discard = AVDISCARD_ALL;
  AVStream* vs = ic->streams[st->index];
  Coder c;
  LUMEN_RETURN_IF_ERROR(OpenDecoder(vs, options_.threads, path_, &c.dec));
  const std::string args = fmt::format(
      "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}", facts.width, facts.height,
      vs->codecpar->format, vs->time_base.num, vs->time_base.den, facts.sar_num, facts.sar_den);
  LUMEN_RETURN_IF_ERROR(BuildGraph(true, args, text, options_.threads, &c, path_));
  PacketPtr pkt(av_packet_alloc());
  FramePtr frame(av_frame_alloc()), out(av_frame_alloc());
  auto push = [&](AVFrame* f) -> Status {
    if (av_buffersrc_add_frame(c.src, f) < 0) av_frame_unref(f);
    while (av_buffersink_get_frame(c.sink, out.get()) >= 0) av_frame_unref(out.get());
    return Status::Ok();
  };
  auto decode = [&](AVPacket* p) -> Status {
    if (avcodec_send_packet(c.dec.get(), p) < 0 && p) return Status::Ok();
    while (avcodec_receive_frame(c.dec.get(), frame.get()) >= 0) {
      // The times the second pass gives the graph (Feed): from the input's start.
      frame->pts = frame->best_effort_timestamp;
      if (frame->pts != AV_NOPTS_VALUE)
        frame->pts -= av_rescale_q(start_us_, AV_TIME_BASE_Q, vs->time_base);
      LUMEN_RETURN_IF_ERROR(push(frame.get()));
    }
    return Status::Ok();
  };
  while (true) {
    if (Interrupted()) return Status::Interrupted(fmt::format("{}: interrupted", path_));
    const int r = av_read_frame(ic, pkt.get());
    if (r == AVERROR_EOF || (r < 0 && avio_feof(ic->pb))) break;
    if (r < 0) continue;
    if (pkt->stream_index == st->index) LUMEN_RETURN_IF_ERROR(decode(pkt.get()));
    av_packet_unref(pkt.get());
  }
  LUMEN_RETURN_IF_ERROR(decode(nullptr));
  LUMEN_RETURN_IF_ERROR(push(nullptr));
  c.graph.reset();  // vidstabdetect completes its file when it is freed
  return Status::Ok();
}

Status Run::OpenOutput() {
  AVDictionary* mux = nullptr;
  if (spec_.faststart && IsMov(out_->oformat)) av_dict_set(&mux, "movflags", "+faststart", 0);
  int r = avio_open2(&out_->pb, out_->url, AVIO_FLAG_WRITE, &out_->interrupt_callback, nullptr);
  if (r < 0) {
    av_dict_free(&mux);
    return Status::Io(fmt::format("{}: cannot open the output: {}", path_, AvError(r)));
  }
  r = avformat_write_header(out_.get(), &mux);
  av_dict_free(&mux);
  if (r == AVERROR(ENOSPC))
    return Status::Io(fmt::format("{}: the disk is full (no space left for the output)", path_));
  if (r < 0)
    return Status::Invalid(fmt::format(
        "{}: the .{} muxer refused the streams: {}", path_,
        out_->oformat->extensions ? out_->oformat->extensions : out_->oformat->name, AvError(r)));
  return Status::Ok();
}

Status Run::Pump(double until) {
  if (!segments_) return Status::Ok();
  if (!pending_) {
    pending_.reset(av_packet_alloc());
    if (!pending_) return Status::Internal("out of memory");
    auto got = segments_->Read(pending_.get());
    if (!got.ok()) return got.status();
    if (!*got) {
      segments_.reset();
      return Status::Ok();
    }
  }
  const AVRational tb = segments_->time_base();
  while (true) {
    const int64_t ts = pending_->dts != AV_NOPTS_VALUE ? pending_->dts : pending_->pts;
    if (ts != AV_NOPTS_VALUE && double(ts) * av_q2d(tb) > until) return Status::Ok();
    ++report_.last.frames;
    if (pending_->pts != AV_NOPTS_VALUE)
      report_.last.position = std::max(report_.last.position, double(pending_->pts) * av_q2d(tb));
    // Each segment's encoder starts its decode times a reorder delay before its first frame;
    // with variable frame rates that can reach back past the previous segment's last one.
    if (pending_->dts != AV_NOPTS_VALUE) {
      if (last_dts_ != AV_NOPTS_VALUE && pending_->dts <= last_dts_) pending_->dts = last_dts_ + 1;
      if (pending_->pts != AV_NOPTS_VALUE && pending_->dts > pending_->pts)
        pending_->dts = pending_->pts;
      last_dts_ = pending_->dts;
    }
    LUMEN_RETURN_IF_ERROR(Write(pending_.get(), copy_out_[size_t(video_)], tb));
    av_packet_unref(pending_.get());
    Report(false);
    auto got = segments_->Read(pending_.get());
    if (!got.ok()) return got.status();
    if (!*got) {
      segments_.reset();
      return Status::Ok();
    }
  }
}

Status Run::SeekToSegment() {
  if (options_.segment_begin == INT64_MIN) return Status::Ok();
  AVFormatContext* ic = in_.get();
  const AVRational stb = ic->streams[video_]->time_base;
  const int64_t begin_us = av_rescale_q(options_.segment_begin, stb, AV_TIME_BASE_Q) + start_us_;
  const int64_t start_stb = av_rescale_q(start_us_, AV_TIME_BASE_Q, stb);
  PacketPtr pkt(av_packet_alloc());
  // Some demuxers land past the asked time, or on a frame that is not a key frame: further back
  // until the first video packet is a key frame at or before the segment, else from the start.
  for (int64_t back = AV_TIME_BASE; back <= 64 * int64_t(AV_TIME_BASE); back *= 4) {
    const int64_t target = begin_us - back;
    if (target <= start_us_) break;
    if (av_seek_frame(ic, -1, target, AVSEEK_FLAG_BACKWARD) < 0) break;
    bool good = false;
    while (av_read_frame(ic, pkt.get()) >= 0) {
      if (pkt->stream_index != video_) {
        av_packet_unref(pkt.get());
        continue;
      }
      const int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
      good = (pkt->flags & AV_PKT_FLAG_KEY) && ts != AV_NOPTS_VALUE &&
             ts - start_stb <= options_.segment_begin;
      av_packet_unref(pkt.get());
      break;
    }
    if (good) {
      av_seek_frame(ic, -1, target, AVSEEK_FLAG_BACKWARD);
      for (auto& [i, c] : coders_) avcodec_flush_buffers(c->dec.get());
      return Status::Ok();
    }
  }
  // From the start.
  if (av_seek_frame(ic, -1, start_us_, AVSEEK_FLAG_BACKWARD) < 0 &&
      avformat_seek_file(ic, -1, INT64_MIN, start_us_, start_us_, 0) < 0)
    return Status::Corrupt(fmt::format("{}: cannot seek back to a segment's start", path_));
  for (auto& [i, c] : coders_) avcodec_flush_buffers(c->dec.get());
  return Status::Ok();
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
  int r = 0;
  if (options_.segment) {
    const Coder* c = coders_[video_].get();
    Status st = segment_out_.Open(out_fd, out_->streams[c->out]->codecpar, c->enc->time_base,
                                  c->enc->framerate, report_.upright);
    if (!st.ok()) return Status(st.code(), fmt::format("{}: {}", path_, st.message()));
    LUMEN_RETURN_IF_ERROR(SeekToSegment());
  } else {
    LUMEN_RETURN_IF_ERROR(OpenOutput());
  }
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
    // Trimmed: once the input's video is well past the cut's end (its frames are out of the
    // decoder and the filters), the rest is not read. (The output's time alone does not tell:
    // it stops growing when trim drops the frames.)
    if (spec_.trim_duration > 0 && i == video_) {
      const int64_t ts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
      if (ts != AV_NOPTS_VALUE &&
          double(ts - av_rescale_q(start_us_, AV_TIME_BASE_Q, tb)) * av_q2d(tb) >
              spec_.trim_start + spec_.trim_duration + 2)
        break;
    }
    if (segments_ && i != video_ && route_[size_t(i)] != Route::kDrop) {
      // The video up to a little past this packet's time, so the muxer interleaves in step.
      const int64_t ts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
      if (ts != AV_NOPTS_VALUE)
        if (Status p =
                Pump(double(ts - av_rescale_q(start_us_, AV_TIME_BASE_Q, tb)) * av_q2d(tb) + 0.5);
            !p.ok())
          return p;
    }
    Status st = Status::Ok();
    switch (route_[size_t(i)]) {
      case Route::kDrop:
      case Route::kExternal:
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
    if (segment_done_) break;
    // Trimmed: once the video is past the end, the rest is not read.
    if (spec_.trim_duration > 0 &&
        report_.last.position > spec_.trim_duration / spec_.speed_factor + 1)
      break;
  }
  for (auto& [i, c] : coders_)
    LUMEN_RETURN_IF_ERROR(segment_done_ ? Encode(c.get(), nullptr) : Feed(c.get(), nullptr));
  LUMEN_RETURN_IF_ERROR(Pump(INFINITY));
  if (options_.segment && options_.segment_end != INT64_MAX && !segment_done_)
    return Status::Corrupt(
        fmt::format("{}: the input ended (or could not be read) before this segment's end", path_));
  if (options_.segment) {
    Status st = segment_out_.Close();
    if (!st.ok()) return Status(st.code(), fmt::format("{}: {}", path_, st.message()));
    Report(true);
    return report_;
  }
  r = av_write_trailer(out_.get());
  if (r < 0) {
    if (r == AVERROR(ENOSPC))
      return Status::Io(fmt::format("{}: the disk is full (no space left for the output)", path_));
    return Status::Io(fmt::format("{}: cannot finish the output: {}", path_, AvError(r)));
  }
  if (avio_flush(out_->pb), out_->pb->error == AVERROR(ENOSPC))
    return Status::Io(fmt::format("{}: the disk is full (no space left for the output)", path_));
  if (out_->pb->error < 0)
    return Status::Io(
        fmt::format("{}: cannot write the output: {}", path_, AvError(out_->pb->error)));
  Report(true);
  return report_;
}

}  // namespace

Result<SegmentPlan> PlanSegments(const std::string& input, const TranscodeSpec& spec,
                                 double seconds) {
  SegmentPlan plan;
  if (spec.video_codec == "copy") {
    plan.why_not = "the video is copied, not encoded";
    return plan;
  }
  if (spec.trim_start > 0 || spec.trim_duration > 0 || spec.speed_factor != 1) {
    plan.why_not = "trim and speed change the timeline";
    return plan;
  }
  if (std::any_of(spec.video.begin(), spec.video.end(),
                  [](const VideoStep& s) { return s.name == "stabilise"; })) {
    plan.why_not = "stabilise follows the camera through the whole file";
    return plan;
  }
  auto in = OpenIn(input);
  if (!in.ok()) return in.status();
  AVFormatContext* ic = in->get();
  const int video = MainVideo(ic);
  if (video < 0) return Status::Unsupported(fmt::format("{}: has no video stream", input));
  for (unsigned i = 0; i < ic->nb_streams; ++i)
    if (int(i) != video) ic->streams[i]->discard = AVDISCARD_ALL;
  const AVRational tb = ic->streams[video]->time_base;
  plan.tb_num = tb.num;
  plan.tb_den = tb.den;
  const int64_t start =
      ic->start_time != AV_NOPTS_VALUE ? av_rescale_q(ic->start_time, AV_TIME_BASE_Q, tb) : 0;
  plan.duration = ic->duration > 0 ? double(ic->duration) / AV_TIME_BASE : 0;
  std::vector<int64_t> keys;
  int64_t last = INT64_MIN;
  PacketPtr pkt(av_packet_alloc());
  while (av_read_frame(ic, pkt.get()) >= 0) {
    if (Interrupted()) return Status::Interrupted(fmt::format("{}: interrupted", input));
    if (pkt->stream_index == video) {
      const int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
      if (ts != AV_NOPTS_VALUE) {
        if (pkt->flags & AV_PKT_FLAG_KEY) keys.push_back(ts - start);
        last = std::max(last, ts - start);
      }
    }
    av_packet_unref(pkt.get());
  }
  std::sort(keys.begin(), keys.end());
  if (keys.empty()) return plan;
  const int64_t step = std::max<int64_t>(1, int64_t(seconds / av_q2d(tb)));
  int64_t from = keys.front();
  for (int64_t k : keys)
    if (k - from >= step) {
      plan.begins.push_back(k);
      from = k;
    }
  // A short tail joins the segment before it.
  if (!plan.begins.empty() && last - plan.begins.back() < step / 2) plan.begins.pop_back();
  if (plan.duration <= 0) plan.duration = double(last) * av_q2d(tb);
  plan.cut = !plan.begins.empty();
  if (!plan.cut) plan.why_not = "shorter than one segment";
  return plan;
}

Result<TranscodeReport> Transcode(const std::string& input, int out_fd,
                                  const std::string& extension, const TranscodeSpec& spec,
                                  const TranscodeOptions& options) {
  Run run(input, spec, options);
  return run.Go(out_fd, extension);
}

}  // namespace lumen::video
