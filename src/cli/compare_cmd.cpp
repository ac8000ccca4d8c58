// lumen compare VIDEO --presets vhs,web,archive-hevc (issue 20): what each preset does to a video
// before hours go into it. Short excerpts around key frames spread over the file (the encoders
// put them at shot changes) are encoded with each preset in process; each excerpt is measured
// against the source (SSIM, PSNR: video/compare.h) and a still of its middle is kept beside the
// source's. The report (one self-contained HTML file) shows them side by side and split, with
// each preset's speed and size and the estimate for the whole file.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "cli_util.h"
#include "commands.h"
#include "lumen/image/derive.h"
#include "lumen/io/beneath.h"
#include "lumen/pipeline/sinks.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/util/temp_file.h"
#include "lumen/video/compare.h"
#include "lumen/video/probe.h"
#include "lumen/video/transcode.h"

namespace lumen::cli {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr int kStillSide = 960;

std::string Jpeg64(const Image& rgb) {
  auto jpg = EncodeJpeg(rgb, 85);
  if (!jpg.ok()) return "";
  return Base64(jpg->data(), jpg->size());
}

// A folder of our own for the excerpts, removed with everything in it.
class ScratchDir {
 public:
  ~ScratchDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  Status Make() {
    const char* tmp = std::getenv("TMPDIR");
    std::string p = fmt::format("{}/lumen-compare-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!::mkdtemp(p.data()))
      return Status::Io(
          fmt::format("cannot make a folder for the excerpts: {}", std::strerror(errno)));
    path_ = p;
    return Status::Ok();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const char* kPage = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lumen compare: {title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 24px; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
td.graph {{ text-align: left; font: 12px monospace; max-width: 480px; word-break: break-all; }}
.pair {{ display: grid; grid-template-columns: 1fr 1fr; gap: 8px; max-width: 1400px; }}
.pair img, .split img {{ width: 100%; display: block; }}
.split {{ position: relative; max-width: 900px; margin: 8px 0 24px; }}
.split img.over {{ position: absolute; top: 0; left: 0; clip-path: inset(0 0 0 50%); }}
.split input {{ width: 100%; }}
h3 {{ margin-bottom: 4px; }}
</style></head><body>
<h1>{title}</h1>
<p>{facts}</p>
<table id="presets"><tr><th>preset</th><th>speed (x real time)</th><th>whole file: time</th>
<th>whole file: size</th><th>SSIM</th><th>PSNR (dB)</th><th>graph</th></tr>
{rows}</table>
{excerpts}
<script>
for (const s of document.querySelectorAll('.split')) {{
  const over = s.querySelector('img.over'), r = s.querySelector('input');
  r.addEventListener('input', () => {{ over.style.clipPath = `inset(0 0 0 ${{r.value}}%)`; }});
}}
window.addEventListener('load', () => {{
  const imgs = [...document.images];
  document.body.dataset.stills = imgs.length;
  document.body.dataset.loaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
}});
</script>
</body></html>
)html";

}  // namespace

int RunCompare(const Options& o) {
  SetupLogging(o);
  ::setenv("SVT_LOG", "2", 0);
  if (o.paths.size() != 1) {
    log::Error("lumen compare takes one video");
    return kExitError;
  }
  const std::string input = o.paths[0];
  std::vector<std::string> presets = o.presets;
  if (presets.empty()) presets = {"vhs", "web", "archive-hevc"};
  std::vector<video::TranscodeSpec> specs;
  for (const std::string& p : presets) {
    auto s = video::VideoPreset(p);
    if (!s.ok()) {
      log::Error(s.status().message());
      return kExitError;
    }
    specs.push_back(*s);
  }
  auto probe = video::Probe(input);
  if (!probe.ok()) {
    log::Error(probe.status().message());
    return kExitError;
  }
  const double duration = probe->duration;
  if (duration <= 0) {
    log::Error(fmt::format("{}: its duration is unknown", input));
    return kExitError;
  }
  const double excerpt = std::min(o.excerpt_seconds, duration);
  // Where: as asked, else three key frames about a quarter, half and three quarters in.
  std::vector<double> at = o.at;
  if (at.empty()) {
    // Every key frame (a plan cut at each), then the ones nearest a quarter, half and three
    // quarters of the way in.
    video::TranscodeSpec any;
    auto plan = video::PlanSegments(input, any, 1e-3);
    std::vector<double> keys;
    if (plan.ok())
      for (int64_t b : plan->begins) keys.push_back(double(b) * plan->tb_num / plan->tb_den);
    for (double f : {0.25, 0.5, 0.75}) {
      double best = std::max(0.0, duration * f - excerpt / 2);
      for (double k : keys)
        if (std::fabs(k - duration * f) < std::fabs(best - duration * f)) best = k;
      if (std::find(at.begin(), at.end(), best) == at.end()) at.push_back(best);
    }
    std::sort(at.begin(), at.end());
  }
  for (double& t : at) {
    if (t < 0 || t >= duration) {
      log::Error(fmt::format("--at {:.2f}: outside the video (0 to {:.2f} s)", t, duration));
      return kExitError;
    }
    t = std::min(t, std::max(0.0, duration - excerpt));
  }
  ScratchDir scratch;
  if (Status st = scratch.Make(); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  // The source's stills, one per excerpt (its middle).
  std::vector<std::string> source_still;
  for (double t : at) {
    auto img = video::FrameAt(input, t + excerpt / 2, kStillSide);
    source_still.push_back(img.ok() ? Jpeg64(*img) : "");
  }
  Json result = {{"input", json::ValidUtf8(input)},
                 {"duration", duration},
                 {"excerpt_seconds", excerpt},
                 {"at", at},
                 {"presets", Json::array()}};
  std::string rows, blocks;
  std::vector<std::vector<std::string>> stills(presets.size());
  const uint64_t t_all = MonotonicNs();
  for (size_t p = 0; p < presets.size(); ++p) {
    double seconds = 0, encoded = 0, ssim = 0, psnr = 0;
    uint64_t bytes = 0;
    int measured = 0;
    std::string graph;
    for (size_t k = 0; k < at.size(); ++k) {
      if (Interrupted()) return 130;
      video::TranscodeSpec spec = specs[p];
      spec.trim_start = at[k];
      spec.trim_duration = excerpt;
      std::string ext = spec.extension.empty() ? fs::path(input).extension().string() : "";
      if (!ext.empty()) ext.erase(0, 1);
      if (ext.empty()) ext = spec.extension.empty() ? "mkv" : spec.extension;
      const std::string out = fmt::format("{}/{}-{}.{}", scratch.path(), presets[p], k, ext);
      const UniqueFd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!fd.ok()) {
        log::Error(fmt::format("cannot write {}: {}", out, std::strerror(errno)));
        return kExitError;
      }
      video::TranscodeOptions opts;
      const uint64_t t0 = MonotonicNs();
      auto r = video::Transcode(input, fd.get(), ext, spec, opts);
      if (!r.ok()) {
        log::Error(fmt::format("{} ({}): {}", input, presets[p], r.status().message()));
        return kExitSomeFailed;
      }
      seconds += double(MonotonicNs() - t0) / 1e9;
      encoded += std::min(excerpt, duration - at[k]);
      struct stat st;
      if (::fstat(fd.get(), &st) == 0) bytes += uint64_t(st.st_size);
      // The preset's graph, without the excerpt's cut.
      graph = r->video_filters;
      if (graph.rfind("trim=", 0) == 0) {
        const std::string cut = "setpts=PTS-STARTPTS,";
        const size_t at_cut = graph.find(cut);
        if (at_cut != std::string::npos) graph.erase(0, at_cut + cut.size());
      }
      auto fid = video::Measure(input, at[k], excerpt, out);
      if (fid.ok()) {
        ssim += fid->ssim;
        psnr += fid->psnr;
        ++measured;
      } else {
        log::Warn(fid.status().message());
      }
      auto img = video::FrameAt(out, excerpt / 2, kStillSide);
      stills[p].push_back(img.ok() ? Jpeg64(*img) : "");
    }
    const double speed = seconds > 0 ? encoded / seconds : 0;
    const double est_time = speed > 0 ? duration / speed : 0;
    const double est_bytes = encoded > 0 ? double(bytes) / encoded * duration : 0;
    if (measured) ssim /= measured, psnr /= measured;
    result["presets"].push_back({{"preset", presets[p]},
                                 {"seconds", seconds},
                                 {"realtime", speed},
                                 {"estimated_seconds", est_time},
                                 {"estimated_bytes", est_bytes},
                                 {"excerpt_bytes", bytes},
                                 {"ssim", measured ? Json(ssim) : Json()},
                                 {"psnr", measured ? Json(psnr) : Json()},
                                 {"video_filters", graph}});
    rows += fmt::format(
        "<tr><td>{}</td><td>{:.2f}</td><td>{}</td><td>{:.0f} MB</td><td>{}</td><td>{}</td>"
        "<td class=\"graph\">{}</td></tr>\n",
        HtmlEscape(presets[p]), speed, Clock(est_time), est_bytes / 1e6,
        measured ? fmt::format("{:.4f}", ssim) : "-", measured ? fmt::format("{:.2f}", psnr) : "-",
        HtmlEscape(graph));
    if (!o.quiet)
      log::Info(fmt::format("{}: {:.2f}x real time, the whole file in about {} and {:.0f} MB; "
                            "SSIM {:.4f}, PSNR {:.2f} dB",
                            presets[p], speed, Clock(est_time), est_bytes / 1e6, ssim, psnr),
                {{"event", "compare_preset"}, {"preset", presets[p]}});
  }
  result["seconds"] = double(MonotonicNs() - t_all) / 1e9;
  for (size_t k = 0; k < at.size(); ++k) {
    blocks += fmt::format("<h2>At {} ({:.1f} s)</h2>\n", Clock(at[k]), at[k]);
    for (size_t p = 0; p < presets.size(); ++p) {
      const std::string& a = source_still[k];
      const std::string& b = stills[p][k];
      blocks += fmt::format(
          "<h3>source | {0}</h3><div class=\"pair\"><img alt=\"source\" "
          "src=\"data:image/jpeg;base64,{1}\"><img alt=\"{0}\" src=\"data:image/jpeg;base64,{2}\">"
          "</div>\n<div class=\"split\"><img alt=\"source\" src=\"data:image/jpeg;base64,{1}\">"
          "<img class=\"over\" alt=\"{0}\" src=\"data:image/jpeg;base64,{2}\"><input "
          "type=\"range\" min=\"0\" max=\"100\" value=\"50\" aria-label=\"split\"></div>\n",
          HtmlEscape(presets[p]), a, b);
    }
  }
  const std::string title = fs::path(input).filename().string();
  const std::string facts = fmt::format(
      "{:.1f} s, {} excerpts of {:.1f} s; measured in {:.1f} s. SSIM and PSNR against the source "
      "scaled to each output's size.",
      duration, at.size(), excerpt, result["seconds"].get<double>());
  const std::string html = fmt::format(fmt::runtime(kPage), fmt::arg("title", HtmlEscape(title)),
                                       fmt::arg("facts", HtmlEscape(facts)), fmt::arg("rows", rows),
                                       fmt::arg("excerpts", blocks));
  const std::string report =
      o.report.empty() ? fs::path(input).stem().string() + "-compare.html" : o.report;
  // The default name is not a file the user named: one already there is not replaced.
  if (o.report.empty() && fs::exists(report)) {
    log::Error(fmt::format("{} exists: give the report's name with -o", report));
    return kExitError;
  }
  auto tmp = TempFile::Create(report);
  Status st = tmp.ok() ? tmp->Write(html) : tmp.status();
  if (st.ok()) st = tmp->Commit();
  if (!st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  result["report"] = json::ValidUtf8(fs::absolute(report).string());
  if (o.json_out) std::printf("%s\n", json::Dump(result, 2).c_str());
  if (!o.quiet) log::Info(fmt::format("report: {}", report));
  return kExitOk;
}

}  // namespace lumen::cli
