// The parts of probe.h that need no FFmpeg: what the catalog, dupes and records use.
#include <fmt/format.h>

#include "lumen/video/probe.h"

namespace lumen::video {

const VideoTrack& MainTrack(const VideoProbe& p) {
  for (const VideoTrack& t : p.video)
    if (t.index == p.main) return t;
  return p.video.front();
}

nlohmann::json ProbeJson(const VideoProbe& p) {
  using nlohmann::json;
  auto text = [](const std::string& v) { return v.empty() ? json() : json(v); };
  auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(); };
  json j = {{"container", p.container},    {"duration", p.duration},
            {"bit_rate", p.bit_rate},      {"creation_time", text(p.creation_time)},
            {"make", text(p.make)},        {"model", text(p.model)},
            {"latitude", opt(p.latitude)}, {"longitude", opt(p.longitude)},
            {"altitude", opt(p.altitude)}};
  json video = json::array(), audio = json::array(), subs = json::array();
  for (const VideoTrack& t : p.video)
    video.push_back({{"codec", t.codec},
                     {"profile", text(t.profile)},
                     {"width", t.width},
                     {"height", t.height},
                     {"rotation", t.rotation},
                     {"sar", fmt::format("{}:{}", t.sar_num, t.sar_den)},
                     {"dar", t.dar_den ? json(fmt::format("{}:{}", t.dar_num, t.dar_den)) : json()},
                     {"fps", t.fps},
                     {"nominal_fps", t.nominal_fps},
                     {"vfr", t.variable_rate},
                     {"pix_fmt", text(t.pix_fmt)},
                     {"bit_depth", t.bit_depth},
                     {"color_transfer", text(t.color_transfer)},
                     {"color_primaries", text(t.color_primaries)},
                     {"color_space", text(t.color_space)},
                     {"hdr", t.hdr},
                     {"field_order", text(t.field_order)},
                     {"frames", t.frames},
                     {"duration", t.duration}});
  for (const AudioTrack& a : p.audio)
    audio.push_back({{"codec", a.codec},
                     {"channels", a.channels},
                     {"sample_rate", a.sample_rate},
                     {"language", text(a.language)}});
  for (const SubtitleTrack& s : p.subtitles)
    subs.push_back({{"codec", s.codec}, {"language", text(s.language)}});
  j["video"] = std::move(video);
  j["audio"] = std::move(audio);
  j["subtitles"] = std::move(subs);
  return j;
}

}  // namespace lumen::video
