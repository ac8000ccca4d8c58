#include "lumen/video/probe.h"

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
}

#include <cmath>
#include <cstdlib>
#include <initializer_list>

#include <fmt/format.h>

#include "input.h"

namespace lumen::video {
namespace {

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
  t.rotation = DisplayRotation(st);
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

Status ReadProbe(const Input& in, VideoProbe* out) {
  const AVFormatContext* raw = in.format();
  const std::string& path = in.path();
  VideoProbe& p = *out;
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
  p.file_bytes = in.size();
  return Status::Ok();
}

Result<VideoProbe> Probe(const std::string& path, const ProbeOptions& options) {
  InputLimits limits;
  limits.max_file_bytes = options.max_file_bytes;
  limits.probe_bytes = options.probe_bytes;
  limits.analyze_seconds = options.analyze_seconds;
  limits.max_seconds = options.max_seconds;
  auto opened = Input::Open(path, limits);
  if (!opened.ok()) return opened.status();
  Input& in = **opened;
  VideoProbe p;
  LUMEN_RETURN_IF_ERROR(ReadProbe(in, &p));
  if (options.hash) {
    // The rest of the file, in order, after what libavformat read in order.
    auto hash = in.FinishHash();
    if (!hash.ok()) return hash.status();
    p.content_hash = *hash;
  }
  p.second_read_bytes = in.ahead_bytes();
  p.file_bytes = in.size();
  p.read_bytes = in.read_bytes();
  return p;
}

}  // namespace lumen::video
