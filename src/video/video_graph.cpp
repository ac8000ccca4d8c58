// The libavfilter graphs of a video conversion (video/transcode.h), as text, from the parsed
// operations and what the input turned out to be. No FFmpeg call here: the module parses the
// text (avfilter_graph_parse_ptr), the unit tests read it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "lumen/video/transcode.h"

namespace lumen::video {
namespace {

double Num(const std::string& s) {
  return std::strtod(s.c_str(), nullptr);
}

int Even(double v) {
  return std::max(2, int(std::lround(v / 2)) * 2);
}

// A value for a filter option inside a graph description: escaped for the option parser
// (\ ' :), then for the graph parser (\ ' [ ] , ;).
std::string Escape(const std::string& s) {
  auto esc = [](const std::string& in, const char* special) {
    std::string out;
    for (char c : in) {
      if (std::strchr(special, c)) out += '\\';
      out += c;
    }
    return out;
  };
  return esc(esc(s, "\\':"), "\\'[],;");
}

bool Geometric(const std::string& n) {
  return n == "fit" || n == "fill" || n == "height" || n == "resize" || n == "crop" ||
         n == "rotate" || n == "flip";
}

}  // namespace

const char* FieldOrderName(FieldOrder f) {
  switch (f) {
    case FieldOrder::kProgressive:
      return "progressive";
    case FieldOrder::kTopFirst:
      return "top field first";
    case FieldOrder::kBottomFirst:
      return "bottom field first";
    case FieldOrder::kUnknown:
      break;
  }
  return "unknown";
}

Result<VideoGraph> BuildVideoGraph(const TranscodeSpec& spec, const SourceFacts& facts,
                                   std::vector<std::string>* notes) {
  std::vector<std::string> f;
  int w = facts.width, h = facts.height;
  double sar = facts.sar_num > 0 && facts.sar_den > 0 ? double(facts.sar_num) / facts.sar_den : 1;
  VideoGraph out;
  if (spec.trim_start > 0 || spec.trim_duration > 0) {
    std::string t = fmt::format("trim=start={:.6f}", facts.start + spec.trim_start);
    if (spec.trim_duration > 0) t += fmt::format(":duration={:.6f}", spec.trim_duration);
    f.push_back(t + ",setpts=PTS-STARTPTS");
  }
  // Deinterlacing comes first (it needs the fields as they were captured), then everything else
  // in the chain's order.
  for (const VideoStep& s : spec.video) {
    if (s.name != "deinterlace") continue;
    if (facts.field == FieldOrder::kProgressive) {
      notes->push_back("the source is progressive: not deinterlaced");
      continue;
    }
    const std::string filter = s.args.empty() ? "bwdif" : s.args[0];
    const bool doubled = s.args.size() < 2 || s.args[1] == "double";
    const char* parity = facts.field == FieldOrder::kTopFirst      ? "tff"
                         : facts.field == FieldOrder::kBottomFirst ? "bff"
                                                                   : "auto";
    // Where the order is not known, only the frames flagged interlaced are deinterlaced.
    f.push_back(fmt::format("{}=mode={}:parity={}:deint={}", filter,
                            doubled ? "send_field" : "send_frame", parity,
                            facts.field == FieldOrder::kUnknown ? "interlaced" : "all"));
  }
  // Geometry is in the displayed orientation, as for photos: a rotated source (a phone held
  // upright) is turned first, and the display matrix is then not written.
  const bool geometric = std::any_of(spec.video.begin(), spec.video.end(),
                                     [](const VideoStep& s) { return Geometric(s.name); });
  if (geometric && facts.rotation != 0) {
    out.rotated = true;
    if (facts.rotation == 90)
      f.push_back("transpose=clock");
    else if (facts.rotation == 270)
      f.push_back("transpose=cclock");
    else
      f.push_back("hflip,vflip");
    if (facts.rotation != 180) {
      std::swap(w, h);
      sar = 1 / sar;
    }
  }
  auto square = [&](int ow, int oh) {
    f.push_back(fmt::format("scale={}:{},setsar=1", ow, oh));
    w = ow, h = oh, sar = 1;
  };
  const int shift = std::clamp(facts.bit_depth, 8, 16) - 8;
  const double black = 16 << shift, range = 219 << shift, mid = 128 << shift;
  for (const VideoStep& s : spec.video) {
    const std::string& n = s.name;
    const auto& a = s.args;
    const double dw = w * sar, dh = h;  // the displayed size
    if (n == "deinterlace") {
      continue;
    } else if (n == "fit") {
      int bw = 0, bh = 0;
      std::sscanf(a[0].c_str(), "%dx%d", &bw, &bh);
      const double k = std::min({bw / dw, bh / dh, 1.0});
      const int ow = Even(dw * k), oh = Even(dh * k);
      if (ow != w || oh != h || sar != 1) square(ow, oh);
    } else if (n == "fill") {
      int bw = 0, bh = 0;
      std::sscanf(a[0].c_str(), "%dx%d", &bw, &bh);
      bw = Even(bw), bh = Even(bh);
      const double k = std::max(bw / dw, bh / dh);
      square(std::max(bw, Even(dw * k)), std::max(bh, Even(dh * k)));
      f.push_back(fmt::format("crop={}:{}", bw, bh));
      w = bw, h = bh;
    } else if (n == "height") {
      const int oh = Even(Num(a[0]));
      square(Even(dw * oh / dh), oh);
    } else if (n == "resize") {
      const double k = Num(a[0]);
      square(Even(dw * k), Even(dh * k));
    } else if (n == "crop") {
      const int x = int(Num(a[0])), y = int(Num(a[1]));
      int cw = int(Num(a[2])), ch = int(Num(a[3]));
      if (x >= w || y >= h || cw < 2 || ch < 2)
        return Status::Invalid(
            fmt::format("crop {}:{}:{}:{} lies outside the {}x{} frame", x, y, cw, ch, w, h));
      cw = std::min(cw, w - x) / 2 * 2, ch = std::min(ch, h - y) / 2 * 2;
      f.push_back(fmt::format("crop={}:{}:{}:{}", cw, ch, x, y));
      w = cw, h = ch;
    } else if (n == "rotate") {
      double d = std::fmod(Num(a[0]), 360);
      if (d < 0) d += 360;
      if (d == 0) continue;
      if (d == 90 || d == 270) {
        f.push_back(d == 90 ? "transpose=clock" : "transpose=cclock");
        std::swap(w, h);
        sar = 1 / sar;
      } else if (d == 180) {
        f.push_back("hflip,vflip");
      } else {
        const double r = d * M_PI / 180;
        const int ow = Even(std::fabs(w * std::cos(r)) + std::fabs(h * std::sin(r)));
        const int oh = Even(std::fabs(w * std::sin(r)) + std::fabs(h * std::cos(r)));
        f.push_back(fmt::format("rotate={:.9f}:ow={}:oh={}:c=black", r, ow, oh));
        w = ow, h = oh;
      }
    } else if (n == "flip") {
      f.push_back(a[0] == "h" ? "hflip" : "vflip");
    } else if (n == "blur") {
      f.push_back(fmt::format("gblur=sigma={}", Num(a[0])));
    } else if (n == "sharpen") {
      const double sigma = a.empty() ? 1.0 : Num(a[0]), amount = a.size() > 1 ? Num(a[1]) : 1.0;
      const int m = std::clamp(2 * int(std::ceil(2 * sigma)) + 1, 3, 23);
      f.push_back(fmt::format("unsharp={}:{}:{}", m, m, amount));
    } else if (n == "brightness" || n == "contrast") {
      // The photo operations' curves on RGB (v * f, (v - 128) * f + 128), on Y'CbCr: luma about
      // black or mid-grey, chroma about neutral, both by f.
      const double k = Num(a[0]), pivot = n == "brightness" ? black : black + range / 2;
      f.push_back(fmt::format(
          "lutyuv=y=clip((val-{0})*{1}+{0}\\,minval\\,maxval):u=clip((val-{2})*{1}+{2}\\,minval\\,"
          "maxval):v=clip((val-{2})*{1}+{2}\\,minval\\,maxval)",
          pivot, k, mid));
    } else if (n == "gamma") {
      const double g = Num(a[0]);
      f.push_back(
          fmt::format("lutyuv=y=clip({0}+{1}*pow(max(val-{0}\\,0)/{1}\\,{2})\\,minval\\,maxval)",
                      black, range, 1 / std::max(g, 1e-3)));
    } else if (n == "saturation") {
      f.push_back(fmt::format("hue=s={}", Num(a[0])));
    } else if (n == "grayscale") {
      f.push_back("hue=s=0");
    } else if (n == "watermark") {
      const int size = a.size() > 1 ? int(Num(a[1])) : std::max(12, w / 30);
      const std::string pos = a.size() > 2 ? a[2] : "south-east";
      const double opacity = a.size() > 3 ? Num(a[3]) : 0.5;
      const int m = std::max(4, size / 2);
      const std::string x = pos == "centre" ? "(w-tw)/2"
                            : pos == "north-west" || pos == "south-west"
                                ? std::to_string(m)
                                : fmt::format("w-tw-{}", m);
      const std::string y = pos == "centre" ? "(h-th)/2"
                            : pos == "north-west" || pos == "north-east"
                                ? std::to_string(m)
                                : fmt::format("h-th-{}", m);
      f.push_back(
          fmt::format("drawtext=font=sans:expansion=none:text={}:fontsize={}:"
                      "fontcolor=white@{}:x={}:y={}",
                      Escape(a[0]), size, opacity, Escape(x), Escape(y)));
    } else if (n == "denoise") {
      const std::string kind = a.empty() ? "hqdn3d" : a[0];
      const double k = a.size() > 1 ? Num(a[1]) : 1.0;
      if (kind == "hqdn3d")
        f.push_back(fmt::format("hqdn3d={}:{}:{}:{}", 4 * k, 3 * k, 6 * k, 4.5 * k));
      else if (kind == "atadenoise")
        f.push_back(fmt::format("atadenoise=0a={0}:1a={0}:2a={0}:0b={1}:1b={1}:2b={1}",
                                std::min(0.3, 0.02 * k), std::min(5.0, 0.04 * k)));
      else
        f.push_back(fmt::format("nlmeans=s={}", std::clamp(3 * k, 1.0, 30.0)));
    } else if (n == "deblock") {
      f.push_back("deblock");
    } else if (n == "stabilise") {
      // Two passes: vidstabdetect writes the camera's motion, vidstabtransform undoes it (the
      // borders it uncovers filled from the frames before, zoomed only as much as needed).
      std::string before;
      for (const std::string& x : f) before += (before.empty() ? "" : ",") + x;
      out.detect =
          fmt::format("{}{}vidstabdetect=result={}:shakiness={}", before, before.empty() ? "" : ",",
                      kTransformsToken, a.empty() ? 5 : int(Num(a[0])));
      f.push_back(fmt::format("vidstabtransform=input={}:smoothing={}:crop=keep:optzoom=1",
                              kTransformsToken, a.size() < 2 ? 15 : int(Num(a[1]))));
    } else if (n == "fps") {
      f.push_back(fmt::format("fps={}", Num(a[0])));
    }
  }
  if (spec.speed_factor != 1) f.push_back(fmt::format("setpts=PTS/{}", spec.speed_factor));
  // 4:2:0 encoders need even sizes.
  if (w % 2 || h % 2) {
    f.push_back(fmt::format("crop={}:{}:0:0", w / 2 * 2, h / 2 * 2));
    w = w / 2 * 2, h = h / 2 * 2;
  }
  std::string text;
  for (const std::string& s : f) text += (text.empty() ? "" : ",") + s;
  out.filters = text.empty() ? "null" : text;
  out.width = w;
  out.height = h;
  return out;
}

std::string BuildAudioGraph(const TranscodeSpec& spec, double start) {
  std::vector<std::string> f;
  if (spec.trim_start > 0 || spec.trim_duration > 0) {
    std::string t = fmt::format("atrim=start={:.6f}", start + spec.trim_start);
    if (spec.trim_duration > 0) t += fmt::format(":duration={:.6f}", spec.trim_duration);
    f.push_back(t + ",asetpts=PTS-STARTPTS");
  }
  for (const VideoStep& s : spec.audio) {
    if (s.name == "audio-denoise")
      f.push_back(fmt::format("afftdn=nf={}", s.args.empty() ? -25.0 : Num(s.args[0])));
    else if (s.name == "loudnorm")
      f.push_back(
          fmt::format("loudnorm=I={}:TP=-1.5:LRA=11", s.args.empty() ? -16.0 : Num(s.args[0])));
    else if (s.name == "dynaudnorm")
      f.push_back(fmt::format("dynaudnorm=m={}", s.args.empty() ? 10.0 : Num(s.args[0])));
    else if (s.name == "channels")
      f.push_back(fmt::format("aformat=channel_layouts={}", s.args[0]));
  }
  // atempo takes 0.5-100 per instance.
  for (double k = spec.speed_factor; k != 1;) {
    const double step = k < 0.5 ? 0.5 : k;
    f.push_back(fmt::format("atempo={}", step));
    k /= step;
    if (std::fabs(k - 1) < 1e-9) break;
  }
  std::string text;
  for (const std::string& s : f) text += (text.empty() ? "" : ",") + s;
  return text.empty() ? "anull" : text;
}

}  // namespace lumen::video
