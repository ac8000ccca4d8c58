// The chain language for videos (video/transcode.h): the syntax of image/chain.h, the photo
// operations that mean the same on frames, and the video and audio ones; and the presets.
#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "lumen/image/chain.h"
#include "lumen/video/transcode.h"

namespace lumen::video {
namespace {

struct Spec {
  std::string_view name;
  int min_args, max_args;
  std::string_view usage;
  char kind;  // 'v' video filter, 'a' audio filter, 'o' output setting
};

constexpr std::array<Spec, 37> kOps = {{
    {"fit", 1, 1, "fit:WxH (fit inside, keep aspect, never enlarge)", 'v'},
    {"fill", 1, 1, "fill:WxH (cover and crop the centre)", 'v'},
    {"height", 1, 1, "height:H (H lines, square pixels, width from the display aspect)", 'v'},
    {"resize", 1, 1, "resize:SCALE", 'v'},
    {"crop", 4, 4, "crop:X:Y:W:H", 'v'},
    {"rotate", 1, 1, "rotate:DEGREES", 'v'},
    {"flip", 1, 1, "flip:h|v", 'v'},
    {"blur", 1, 1, "blur:SIGMA", 'v'},
    {"sharpen", 0, 2, "sharpen[:SIGMA[:AMOUNT]]", 'v'},
    {"brightness", 1, 1, "brightness:FACTOR", 'v'},
    {"contrast", 1, 1, "contrast:FACTOR", 'v'},
    {"saturation", 1, 1, "saturation:FACTOR", 'v'},
    {"gamma", 1, 1, "gamma:VALUE", 'v'},
    {"grayscale", 0, 0, "grayscale", 'v'},
    {"watermark", 1, 4, "watermark:TEXT[:SIZE[:POSITION[:OPACITY]]]", 'v'},
    {"deinterlace", 0, 2, "deinterlace[:bwdif|yadif[:double|single]]", 'v'},
    {"denoise", 0, 2, "denoise[:hqdn3d|atadenoise|nlmeans[:STRENGTH]]", 'v'},
    {"deblock", 0, 0, "deblock", 'v'},
    {"stabilise", 0, 2, "stabilise[:SHAKINESS[:SMOOTHING]] (vidstab, two passes; 1-10, frames)",
     'v'},
    {"fps", 1, 1, "fps:RATE", 'v'},
    {"trim", 1, 2, "trim:START[:DURATION] (seconds, or \"[HH:]MM:SS[.s]\" in quotes)", 't'},
    {"speed", 1, 1, "speed:FACTOR (0.25-4)", 't'},
    {"loudnorm", 0, 1, "loudnorm[:LUFS] (EBU R128, -16 by default)", 'a'},
    {"audio-denoise", 0, 1, "audio-denoise[:DB] (FFT denoiser, noise floor -25 dB)", 'a'},
    {"dynaudnorm", 0, 1, "dynaudnorm[:MAXGAIN] (levels quiet and loud passages, gain at most 10)",
     'a'},
    {"channels", 1, 1, "channels:mono|stereo|5.1", 'a'},
    {"h264", 0, 2, "h264[:CRF[:PRESET]]", 'o'},
    {"hevc", 0, 2, "hevc[:CRF[:PRESET]] (tagged hvc1 for Apple players)", 'o'},
    {"av1", 0, 2, "av1[:CRF[:PRESET]] (SVT-AV1)", 'o'},
    {"vp9", 0, 2, "vp9[:CRF[:SPEED]]", 'o'},
    {"copy", 0, 0, "copy (the video stream as it is)", 'o'},
    {"aac", 0, 1, "aac[:KBPS]", 'o'},
    {"opus", 0, 1, "opus[:KBPS]", 'o'},
    {"audio-copy", 0, 0, "audio-copy (the audio streams as they are)", 'o'},
    {"faststart", 0, 0, "faststart (MP4: playable while it loads)", 'o'},
    {"10bit", 0, 0, "10bit (10-bit 4:2:0 output)", 'o'},
    {"8bit", 0, 0, "8bit (8-bit 4:2:0 output, plays everywhere)", 'o'},
}};

bool Number(std::string_view s, double* out) {
  return ParseNumber(s, out);
}

// Seconds from "90", "1.5", "01:30", "1:02:03.5".
bool Seconds(std::string_view s, double* out) {
  double total = 0;
  int parts = 0;
  while (true) {
    const size_t colon = s.find(':');
    double v = 0;
    if (!Number(s.substr(0, colon), &v) || v < 0) return false;
    if (colon != std::string_view::npos && (v != std::floor(v) || (parts > 0 && v >= 60)))
      return false;
    if (colon == std::string_view::npos && parts > 0 && v >= 60) return false;
    total = total * 60 + v;
    if (++parts > 3) return false;
    if (colon == std::string_view::npos) break;
    s = s.substr(colon + 1);
  }
  *out = total;
  return true;
}

bool SizeArg(std::string_view s, int* w, int* h) {
  const size_t x = s.find('x');
  double a, b;
  if (x == std::string_view::npos || !Number(s.substr(0, x), &a) || !Number(s.substr(x + 1), &b))
    return false;
  if (a < 2 || b < 2 || a > 16384 || b > 16384 || a != std::floor(a) || b != std::floor(b))
    return false;
  *w = int(a), *h = int(b);
  return true;
}

const Spec* Find(std::string_view name) {
  for (const Spec& s : kOps)
    if (s.name == name) return &s;
  return nullptr;
}

TranscodeSpec Web() {
  TranscodeSpec s;
  s.name = "web";
  s.video_codec = "libx264";
  s.crf = 23;
  s.speed = "medium";
  s.pix_fmt = "yuv420p";
  s.video = {{"fit", {"1920x1080"}}};
  s.audio_codec = "aac";
  s.audio_kbps = 160;
  s.faststart = true;
  return s;
}

}  // namespace

bool IsVideoPreset(std::string_view name) {
  return name == "web" || name == "archive-hevc" || name == "archive-av1" || name == "remux" ||
         name == "vhs";
}

std::string VideoPresetList() {
  return "web (H.264 + AAC, at most 1080p, faststart), archive-hevc (HEVC 10-bit where the source "
         "is, hvc1, audio kept), archive-av1 (SVT-AV1, audio kept), remux (no re-encode), vhs "
         "(deinterlaced, denoised, 1080 lines with square pixels, audio cleaned "
         "and levelled)";
}

Result<TranscodeSpec> VideoPreset(std::string_view name) {
  TranscodeSpec s;
  if (name == "web") return Web();
  if (name == "archive-hevc") {
    s.video_codec = "libx265";
    s.crf = 22;
    s.speed = "medium";
    s.audio_codec = "copy";
  } else if (name == "archive-av1") {
    s.video_codec = "libsvtav1";
    s.crf = 32;
    s.speed = "8";
    s.audio_codec = "copy";
  } else if (name == "remux") {
    s.video_codec = "copy";
    s.audio_codec = "copy";
    s.extension.clear();  // the input's
  } else if (name == "vhs") {
    s.video_codec = "libx264";
    s.crf = 20;
    s.speed = "veryfast";
    s.pix_fmt = "yuv420p";
    // One frame per frame (29.97 from NTSC): double rate (a frame per field) doubles the
    // encoder's work and misses real time on two cores (BENCHMARKS.md); tape noise wants a
    // stronger denoiser than hqdn3d's default, and it halves the file.
    s.video = {
        {"deinterlace", {"bwdif", "single"}}, {"denoise", {"hqdn3d", "2"}}, {"height", {"1080"}}};
    s.audio_codec = "aac";
    s.audio_kbps = 192;
    // Levelled by dynaudnorm: a tape's loud and quiet passages evened out, in constant memory
    // (loudnorm's 192 kHz look-ahead takes 116 MB; BENCHMARKS.md).
    s.audio = {{"audio-denoise", {}}, {"dynaudnorm", {}}};
    s.faststart = true;
  } else {
    return Status::NotFound(fmt::format("unknown video preset '{}': {}", name, VideoPresetList()));
  }
  s.name = std::string(name);
  return s;
}

Result<TranscodeSpec> ParseVideoChain(std::string_view text, const TranscodeSpec& base) {
  auto bad = [&](size_t pos, const std::string& why) {
    return Status::Invalid(fmt::format("chain '{}': {} at position {}", text, why, pos));
  };
  auto split = SplitChain(text);
  if (!split.ok()) return split.status();
  TranscodeSpec spec = base;
  spec.name = base.name.empty() ? "chain" : base.name + "+chain";
  bool video_filters = false, audio_filters = false;
  for (ChainOp& op : *split) {
    std::string name = op.name;
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    if (name == "stabilize") name = "stabilise";
    const Spec* sp = Find(name);
    if (!sp) {
      std::string known;
      for (const Spec& s : kOps) known += fmt::format("{}{}", known.empty() ? "" : ", ", s.usage);
      return bad(op.pos, fmt::format("unknown video operation '{}' (known: {})", op.name, known));
    }
    const int n = int(op.args.size());
    if (n < sp->min_args || n > sp->max_args)
      return bad(op.pos, fmt::format("wrong number of arguments to {}: {}", name, sp->usage));
    const size_t argpos = op.pos + name.size() + 1;
    auto num = [&](int i, double lo, double hi, double* v) -> Status {
      if (!Number(op.args[size_t(i)], v) || *v < lo || *v > hi)
        return bad(argpos, fmt::format("{} needs a number in [{}, {}], not '{}' ({})", name, lo, hi,
                                       op.args[size_t(i)], sp->usage));
      return Status::Ok();
    };
    double v = 0;
    int w = 0, h = 0;
    if (name == "fit" || name == "fill") {
      if (!SizeArg(op.args[0], &w, &h))
        return bad(argpos, fmt::format("{} needs WxH, not '{}'", name, op.args[0]));
    } else if (name == "height") {
      LUMEN_RETURN_IF_ERROR(num(0, 16, 8640, &v));
    } else if (name == "resize") {
      LUMEN_RETURN_IF_ERROR(num(0, 0.01, 8, &v));
    } else if (name == "crop") {
      for (int i = 0; i < 4; ++i) LUMEN_RETURN_IF_ERROR(num(i, 0, 16384, &v));
    } else if (name == "rotate") {
      LUMEN_RETURN_IF_ERROR(num(0, -360, 360, &v));
    } else if (name == "flip") {
      if (op.args[0] != "h" && op.args[0] != "v") return bad(argpos, "flip takes h or v");
    } else if (name == "blur") {
      LUMEN_RETURN_IF_ERROR(num(0, 0.1, 50, &v));
    } else if (name == "sharpen") {
      if (n > 0) LUMEN_RETURN_IF_ERROR(num(0, 0.1, 5, &v));
      if (n > 1) LUMEN_RETURN_IF_ERROR(num(1, 0, 5, &v));
    } else if (name == "brightness" || name == "contrast" || name == "saturation" ||
               name == "gamma") {
      LUMEN_RETURN_IF_ERROR(num(0, 0, 10, &v));
    } else if (name == "watermark") {
      if (op.args[0].empty()) return bad(argpos, "watermark needs a text");
      if (n > 1) LUMEN_RETURN_IF_ERROR(num(1, 4, 500, &v));
      if (n > 2) {
        const std::string& p = op.args[2];
        if (p != "north-west" && p != "north-east" && p != "south-west" && p != "south-east" &&
            p != "centre")
          return bad(argpos,
                     "watermark position: north-west, north-east, south-west, "
                     "south-east or centre");
      }
      if (n > 3) LUMEN_RETURN_IF_ERROR(num(3, 0, 1, &v));
    } else if (name == "deinterlace") {
      if (n > 0 && op.args[0] != "bwdif" && op.args[0] != "yadif")
        return bad(argpos, "deinterlace takes bwdif or yadif");
      if (n > 1 && op.args[1] != "double" && op.args[1] != "single")
        return bad(argpos, "deinterlace's rate: double (a frame per field) or single");
    } else if (name == "denoise") {
      if (n > 0 && op.args[0] != "hqdn3d" && op.args[0] != "atadenoise" && op.args[0] != "nlmeans")
        return bad(argpos, "denoise takes hqdn3d, atadenoise or nlmeans");
      if (n > 1) LUMEN_RETURN_IF_ERROR(num(1, 0.1, 10, &v));
    } else if (name == "fps") {
      LUMEN_RETURN_IF_ERROR(num(0, 1, 240, &v));
    } else if (name == "trim") {
      double start = 0, dur = 0;
      if (!Seconds(op.args[0], &start))
        return bad(argpos,
                   fmt::format("trim's start must be seconds or [HH:]MM:SS, not '{}'", op.args[0]));
      if (n > 1 && (!Seconds(op.args[1], &dur) || dur <= 0))
        return bad(argpos,
                   fmt::format("trim's duration must be seconds above 0, not '{}'", op.args[1]));
      spec.trim_start = start;
      spec.trim_duration = dur;
      continue;
    } else if (name == "speed") {
      LUMEN_RETURN_IF_ERROR(num(0, 0.25, 4, &v));
      spec.speed_factor = v;
      continue;
    } else if (name == "loudnorm") {
      if (n > 0) LUMEN_RETURN_IF_ERROR(num(0, -70, -5, &v));
    } else if (name == "audio-denoise") {
      if (n > 0) LUMEN_RETURN_IF_ERROR(num(0, -80, -20, &v));
    } else if (name == "stabilise") {
      if (n > 0) LUMEN_RETURN_IF_ERROR(num(0, 1, 10, &v));
      if (n > 1) LUMEN_RETURN_IF_ERROR(num(1, 1, 300, &v));
      if (std::any_of(spec.video.begin(), spec.video.end(),
                      [](const VideoStep& s) { return s.name == "stabilise"; }))
        return bad(op.pos, "stabilise once per chain");
    } else if (name == "dynaudnorm") {
      if (n > 0) LUMEN_RETURN_IF_ERROR(num(0, 1, 100, &v));
    } else if (name == "channels") {
      if (op.args[0] != "mono" && op.args[0] != "stereo" && op.args[0] != "5.1")
        return bad(argpos, "channels takes mono, stereo or 5.1");
    } else if (name == "h264" || name == "hevc" || name == "av1" || name == "vp9") {
      const double max_crf = name == "av1" || name == "vp9" ? 63 : 51;
      if (n > 0) LUMEN_RETURN_IF_ERROR(num(0, 0, max_crf, &v));
      spec.video_codec = name == "h264"   ? "libx264"
                         : name == "hevc" ? "libx265"
                         : name == "av1"  ? "libsvtav1"
                                          : "libvpx-vp9";
      spec.crf = n > 0 ? int(v) : -1;
      spec.speed = n > 1 ? op.args[1] : "";
      if (n > 1) {
        static const char* kX26x[] = {"ultrafast", "superfast", "veryfast", "faster",  "fast",
                                      "medium",    "slow",      "slower",   "veryslow"};
        bool ok = false;
        if (name == "h264" || name == "hevc") {
          for (const char* p : kX26x) ok = ok || op.args[1] == p;
        } else {
          double s = 0;
          ok = Number(op.args[1], &s) && s == std::floor(s) && s >= (name == "av1" ? 0 : -8) &&
               s <= (name == "av1" ? 13 : 8);
        }
        if (!ok)
          return bad(argpos,
                     fmt::format("{}'s preset '{}' is not one it has ({})", name, op.args[1],
                                 name == "av1"   ? "0-13"
                                 : name == "vp9" ? "-8..8"
                                                 : "ultrafast ... veryslow"));
      }
      if (name == "vp9" && spec.extension == "mp4") spec.extension = "webm";
      continue;
    } else if (name == "copy") {
      spec.video_codec = "copy";
      continue;
    } else if (name == "aac" || name == "opus") {
      if (n > 0) LUMEN_RETURN_IF_ERROR(num(0, 16, 512, &v));
      spec.audio_codec = name == "aac" ? "aac" : "libopus";
      spec.audio_kbps = n > 0 ? int(v) : 0;
      continue;
    } else if (name == "audio-copy") {
      spec.audio_codec = "copy";
      continue;
    } else if (name == "faststart") {
      spec.faststart = true;
      continue;
    } else if (name == "10bit" || name == "8bit") {
      spec.pix_fmt = name == "10bit" ? "yuv420p10le" : "yuv420p";
      continue;
    }
    VideoStep step{name, std::move(op.args)};
    // A preset's deinterlacer (or a denoiser of the same kind) is replaced, not run twice:
    // `--preset vhs --chain deinterlace:bwdif:double` asks for the preset at double rate.
    auto kind = [](const VideoStep& s) { return s.args.empty() ? "hqdn3d" : s.args[0]; };
    auto same = std::find_if(spec.video.begin(), spec.video.end(), [&](const VideoStep& s) {
      return s.name == step.name &&
             (s.name == "deinterlace" || (s.name == "denoise" && kind(s) == kind(step)));
    });
    if (same != spec.video.end()) {
      *same = std::move(step);
      video_filters = true;
      continue;
    }
    if (sp->kind == 'a') {
      spec.audio.push_back(std::move(step));
      audio_filters = true;
    } else {
      spec.video.push_back(std::move(step));
      video_filters = true;
    }
  }
  if (spec.video_codec == "copy" && (video_filters || spec.speed_factor != 1))
    return Status::Invalid(fmt::format(
        "chain '{}': the video is copied as it is ('copy' or --preset remux), so it cannot be "
        "filtered or sped up: name a codec (h264, hevc, av1, vp9)",
        text));
  if (spec.audio_codec == "copy" && (audio_filters || spec.speed_factor != 1))
    return Status::Invalid(fmt::format(
        "chain '{}': the audio is copied as it is, so it cannot be filtered or sped up: name a "
        "codec (aac, opus)",
        text));
  return spec;
}

}  // namespace lumen::video
