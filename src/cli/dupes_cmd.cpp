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
#include "lumen/pipeline/sinks.h"
#include "lumen/search/ann_index.h"
#include "lumen/search/flat_index.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"

namespace lumen::cli {
namespace {

constexpr size_t kExactSemanticMax = 40000;  // above: neighbours from the ANN index

// Semantic candidate pairs from the embeddings of `model` (or of the catalog's most used model).
Status SemanticPairs(const Options& o, Catalog& cat, const std::vector<dupes::Item>& items,
                     std::vector<dupes::SimilarPair>* out) {
  auto models = cat.EmbeddingModels();
  if (!models.ok()) return models.status();
  std::string model;
  int64_t most = 0;
  for (const auto& [m, n] : *models)
    if ((!o.model.empty() && m.find(o.model) != std::string::npos) || (o.model.empty() && n > most))
      model = m, most = n;
  if (model.empty()) return Status::Ok();  // no embeddings: no semantic tier
  auto dim = sql::Prepare(cat.db(), "SELECT dim FROM embeddings WHERE model=? LIMIT 1");
  if (!dim.ok()) return dim.status();
  dim->Bind(1, model);
  Status st;
  if (!dim->Step(&st)) return st;
  FlatIndex index(int(dim->Int(0)));
  LUMEN_RETURN_IF_ERROR(cat.LoadEmbeddings(model, &index));
  std::unordered_map<int64_t, uint32_t> item_of;
  for (size_t i = 0; i < items.size(); ++i) item_of[items[i].asset] = uint32_t(i);
  // Rows of the index that are items, in index order.
  std::vector<uint32_t> row_item;
  std::vector<float> rows;
  for (size_t r = 0; r < index.size(); ++r) {
    auto it = item_of.find(index.ids()[r]);
    if (it == item_of.end()) continue;
    row_item.push_back(it->second);
    const float* v = index.data() + r * size_t(index.dim());
    rows.insert(rows.end(), v, v + index.dim());
  }
  if (row_item.size() <= kExactSemanticMax) {
    for (auto p : dupes::SimilarPairs(rows.data(), row_item.size(), index.dim(), o.similarity))
      out->push_back({row_item[p.a], row_item[p.b], p.cosine});
  } else {
    auto ann = AnnIndex::Sync(BesideCatalog(cat.path(), "ann", model) + ".hnsw", index);
    if (!ann.ok()) return ann.status();
    for (size_t r = 0; r < index.size(); ++r) {
      auto a = item_of.find(index.ids()[r]);
      if (a == item_of.end()) continue;
      for (const Hit& h : (*ann)->Search(index, index.data() + r * size_t(index.dim()), 10)) {
        auto b = item_of.find(h.id);
        if (b != item_of.end() && a->second < b->second && h.cosine >= o.similarity)
          out->push_back({a->second, b->second, h.cosine});
      }
    }
  }
  log::Debug(fmt::format("semantic tier: {} embeddings from {}, {} pairs at cosine >= {}",
                         row_item.size(), model, out->size(), o.similarity));
  return Status::Ok();
}

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
  std::vector<dupes::Item> items;
  std::vector<dupes::VideoItem> videos;
  if (Status st = (*c)->LoadDupeItems(&items); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  if (Status st = (*c)->LoadVideoDupeItems(&items, &videos); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  dupes::Options opt;
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
  if (o.similarity <= 1.0f) {
    if (Status st = SemanticPairs(o, **c, items, &opt.semantic); !st.ok()) {
      log::Error(st.message());
      return kExitError;
    }
  }
  auto groups = dupes::FindGroups(items, opt);
  {
    dupes::VideoOptions vo;
    vo.keep = opt.keep;
    vo.prefix = opt.prefix;
    auto vg = dupes::FindVideoGroups(videos, items, vo);
    groups.insert(groups.end(), std::make_move_iterator(vg.begin()),
                  std::make_move_iterator(vg.end()));
    std::stable_sort(groups.begin(), groups.end(),
                     [](const dupes::Group& a, const dupes::Group& b) {
                       return a.members.size() > b.members.size();
                     });
  }
  const bool acting = !o.move_to.empty() || o.dupes_hardlink;
  std::vector<std::string> tiers = o.tiers;
  if (tiers.empty() && acting) tiers = {"exact", "near"};
  if (!tiers.empty())
    std::erase_if(groups, [&](const dupes::Group& g) {
      return std::find(tiers.begin(), tiers.end(), g.tier) == tiers.end();
    });
  if (acting) {
    // Each file once. A near (burst, semantic) duplicate goes with all of its identical copies,
    // which its group lists once (their exact group has the rest).
    std::vector<DupeVictim> victims;
    std::unordered_set<std::string> named;
    size_t not_identical = 0;
    for (const auto& g : groups)
      for (size_t m = 1; m < g.members.size(); ++m) {
        const auto& mem = g.members[m];
        const bool identical = items[mem.item].asset == items[g.members[0].item].asset;
        if (o.dupes_hardlink && !identical) {
          ++not_identical;
          continue;
        }
        if (g.tier == "exact") {
          if (named.insert(mem.path).second)
            victims.push_back({mem.path, g.members[0].path, items[mem.item].asset});
          continue;
        }
        for (const auto& path : items[mem.item].paths)
          if (named.insert(path).second)
            victims.push_back({path, g.members[0].path, items[mem.item].asset});
      }
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
      groups.size(), items.size() - videos.size(), videos.size(), extra_files,
      double(extra_bytes) / 1e6, secs));
  return kExitOk;
}

}  // namespace lumen::cli
