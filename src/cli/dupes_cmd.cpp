#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "lumen/dupes/dupes.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"

namespace lumen::cli {

int RunDupes(const Options& o) {
  SetupLogging(o);
  auto c = OpenCatalog(o);
  if (!c.ok()) {
    log::Error(c.status().message());
    return kExitError;
  }
  const uint64_t t0 = MonotonicNs();
  std::vector<dupes::Item> items;
  if (Status st = (*c)->LoadDupeItems(&items); !st.ok()) {
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
  auto groups = dupes::FindGroups(items, opt);
  const bool acting = !o.move_to.empty() || o.dupes_hardlink;
  std::vector<std::string> tiers = o.tiers;
  if (tiers.empty() && acting) tiers = {"exact", "near"};
  if (!tiers.empty())
    std::erase_if(groups, [&](const dupes::Group& g) {
      return std::find(tiers.begin(), tiers.end(), g.tier) == tiers.end();
    });
  if (acting) {
    std::vector<DupeVictim> victims;
    size_t not_identical = 0;
    for (const auto& g : groups)
      for (size_t m = 1; m < g.members.size(); ++m) {
        const auto& mem = g.members[m];
        const bool identical = items[mem.item].asset == items[g.members[0].item].asset;
        if (o.dupes_hardlink && !identical) {
          ++not_identical;
          continue;
        }
        victims.push_back({mem.path, g.members[0].path, items[mem.item].asset, identical});
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
        j["files"].push_back({{"path", log::Printable(mem.path)},
                              {"keep", m == 0},
                              {"reason", mem.reason},
                              {"width", it.width},
                              {"height", it.height},
                              {"size", it.size},
                              {"format", it.format}});
      }
      out.push_back(std::move(j));
    }
    std::printf("%s\n", out.dump(2).c_str());
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
  log::Info(fmt::format("{} duplicate groups among {} photos: {} extra files, {:.1f} MB ({:.2f} s)",
                        groups.size(), items.size(), extra_files, double(extra_bytes) / 1e6, secs));
  return kExitOk;
}

}  // namespace lumen::cli
