#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "lumen/dupes/dupes.h"
#include "lumen/io/output.h"
#include "lumen/organize/duplicates.h"
#include "lumen/pipeline/sinks.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"

namespace lumen::cli {
namespace {

// A self-contained HTML page: per group, the files side by side with their thumbnails (embedded
// WebP), the kept one marked, each with its size, resolution, sharpness and reason.
Status WriteReport(const std::string& path, Catalog& cat, const std::vector<dupes::Group>& groups,
                   const std::vector<dupes::Item>& items, double extra_mb) {
  std::string h;
  h +=
      R"(<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="generator" content="lumen dupes"><title>lumen: duplicates</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;background:#f6f6f4;color:#222}
h1{font-size:20px} .group{background:#fff;border-radius:8px;padding:12px 16px;margin:16px 0;
box-shadow:0 1px 3px #0002} .group h2{font-size:15px;margin:0 0 8px}
.tier{display:inline-block;padding:1px 8px;border-radius:10px;background:#e3e8f4;margin-right:6px}
.files{display:flex;flex-wrap:wrap;gap:12px} .file{width:260px;border:2px solid #ddd;
border-radius:6px;padding:6px;word-break:break-all} .file.keep{border-color:#2a8a3e}
.file img{display:block;max-width:256px;max-height:256px;margin:0 auto 6px}
.badge{font-weight:600} .keep .badge{color:#2a8a3e} .dup .badge{color:#a33}
.meta{color:#555;font-size:12px} .noimg{height:120px;background:#eee;text-align:center;line-height:120px}
</style></head><body>
)";
  h += fmt::format("<h1>{} duplicate groups: {:.1f} MB in extra copies</h1>\n", groups.size(),
                   extra_mb);
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& g = groups[gi];
    h += fmt::format(
        "<section class=\"group\" data-tier=\"{}\"><h2><span class=\"tier\">{}</span>group {} "
        "&middot; {} files &middot; keep: {}</h2><div class=\"files\">\n",
        g.tier, g.tier, gi + 1, g.members.size(), HtmlEscape(g.keep_reason));
    for (size_t m = 0; m < g.members.size(); ++m) {
      const auto& mem = g.members[m];
      const auto& it = items[mem.item];
      auto th = cat.GetThumbnail(it.asset);
      if (!th.ok()) return th.status();
      std::string img = "<div class=\"noimg\">no thumbnail</div>";
      if (*th)
        img = fmt::format(
            "<img alt=\"\" width=\"{}\" height=\"{}\" src=\"data:image/webp;base64,{}\">",
            (*th)->width, (*th)->height, Base64((*th)->webp.data(), (*th)->webp.size()));
      h += fmt::format(
          "<div class=\"file {}\">{}<div class=\"badge\">{}</div><div>{}</div><div "
          "class=\"meta\">{}x{} &middot; {} &middot; {:.2f} MB{}</div><div "
          "class=\"meta\">{}</div></div>\n",
          m == 0 ? "keep" : "dup", img, m == 0 ? "KEEP" : "duplicate",
          HtmlEscape(log::Printable(mem.path)), it.width, it.height, HtmlEscape(it.format),
          double(it.size) / 1e6,
          it.sharpness ? fmt::format(" &middot; sharpness {:.0f}", *it.sharpness) : "",
          HtmlEscape(mem.reason));
    }
    h += "</div></section>\n";
  }
  // Marks each thumbnail that decoded (what the report's own test checks in a browser).
  h += R"(<script>
window.addEventListener('load', () => {
  let n = 0;
  for (const img of document.images) if (img.complete && img.naturalWidth > 0) { img.dataset.decoded = '1'; n++; }
  document.body.dataset.decoded = String(n);
});
</script></body></html>
)";
  // A temporary beside the report (O_EXCL|O_NOFOLLOW: never through a planted link), renamed
  // over it once complete.
  auto out = OpenOutput(path, OutputKind::kHtml);
  if (!out.ok()) return out.status();
  LUMEN_RETURN_IF_ERROR(out->Write(h));
  return out->Commit();
}

}  // namespace

int RunDupes(const Options& o) {
  SetupLogging(o);
  if (!o.report.empty()) {
    if (Status st = CheckOutput(o.report, OutputKind::kHtml); !st.ok()) {
      log::Error(st.message());
      return kExitError;
    }
  }
  // Listing and the report only read the catalog; --move-to / --hardlink plan (and apply) a run.
  const bool acts = !o.move_to.empty() || o.dupes_hardlink;
  auto c = OpenCatalog(o, acts ? Catalog::Mode::kReadWrite : Catalog::Mode::kReadOnly);
  if (!c.ok()) {
    log::Error(c.status().message());
    return kExitError;
  }
  const uint64_t t0 = MonotonicNs();
  organize::DupesQuery q;
  dupes::Options& opt = q.opt;
  opt.max_distance = o.distance;
  opt.burst_seconds = o.burst_seconds;
  opt.keep = o.keep == "oldest"     ? dupes::Keep::kOldest
             : o.keep == "newest"   ? dupes::Keep::kNewest
             : o.keep == "largest"  ? dupes::Keep::kLargest
             : o.keep == "smallest" ? dupes::Keep::kSmallest
                                    : dupes::Keep::kBest;
  if (!o.keep_under.empty()) {
    opt.keep = dupes::Keep::kPathPrefix;
    std::error_code ec;
    std::string dir = std::filesystem::absolute(o.keep_under, ec).lexically_normal().string();
    opt.prefix = dir.ends_with('/') ? dir : dir + "/";
  }
  opt.min_cosine = o.similarity;
  q.model = o.model;
  q.semantic = o.similarity <= 1.0f;
  q.ann_path = [&](const std::string& model) {
    return BesideCatalog((*c)->path(), "ann", model) + ".hnsw";
  };
  const bool acting = !o.move_to.empty() || o.dupes_hardlink;
  q.tiers = o.tiers;
  if (q.tiers.empty() && acting) q.tiers = {"exact", "near"};
  auto found = organize::FindDuplicates(**c, q);
  if (!found.ok()) {
    log::Error(found.status().message());
    return kExitError;
  }
  const auto& items = found->items;
  const auto& groups = found->groups;
  if (acting) {
    size_t not_identical = 0;
    auto victims = organize::Victims(*found, o.dupes_hardlink, &not_identical);
    if (not_identical)
      log::Info(
          fmt::format("{} near duplicates differ in content from their kept copy: only "
                      "identical files are hard-linked",
                      not_identical));
    return RunDupesAction(o, **c, victims);
  }
  const double secs = double(MonotonicNs() - t0) / 1e9;
  uint64_t extra_files = 0, extra_bytes = 0;
  for (const auto& g : groups)
    for (size_t m = 1; m < g.members.size(); ++m) {
      ++extra_files;
      extra_bytes += items[g.members[m].item].size;
    }
  if (o.json_out) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& g : groups) {
      nlohmann::json j{{"tier", g.tier}, {"keep_reason", g.keep_reason}};
      for (size_t m = 0; m < g.members.size(); ++m) {
        const auto& mem = g.members[m];
        const auto& it = items[mem.item];
        j["files"].push_back(
            {{"path", log::Printable(mem.path)},
             {"keep", m == 0},
             {"reason", mem.reason},
             {"width", it.width},
             {"height", it.height},
             {"size", it.size},
             {"format", it.format},
             {"sharpness", it.sharpness ? nlohmann::json(*it.sharpness) : nullptr}});
      }
      out.push_back(std::move(j));
    }
    std::printf("%s\n", json::Dump(out, 2).c_str());
  } else {
    for (size_t i = 0; i < groups.size(); ++i) {
      const auto& g = groups[i];
      std::printf("group %zu: %s, %zu files; keep %s (%s)\n", i + 1, g.tier.c_str(),
                  g.members.size(), log::Printable(g.members[0].path).c_str(),
                  g.keep_reason.c_str());
      for (size_t m = 1; m < g.members.size(); ++m) {
        const auto& it = items[g.members[m].item];
        std::printf("  %s  %dx%d %s %.1f MB: %s\n", log::Printable(g.members[m].path).c_str(),
                    it.width, it.height, it.format.c_str(), double(it.size) / 1e6,
                    g.members[m].reason.c_str());
      }
    }
  }
  if (!o.report.empty()) {
    if (Status st = WriteReport(o.report, **c, groups, items, double(extra_bytes) / 1e6);
        !st.ok()) {
      log::Error(st.message());
      return kExitError;
    }
    log::Info(fmt::format("report: {}", o.report));
  }
  log::Info(fmt::format(
      "{} duplicate groups among {} photos and {} videos: {} extra files, {:.1f} MB ({:.2f} s)",
      groups.size(), items.size() - found->videos, found->videos, extra_files,
      double(extra_bytes) / 1e6, secs));
  return kExitOk;
}

}  // namespace lumen::cli
