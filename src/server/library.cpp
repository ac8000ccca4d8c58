#include "library.h"

#include <sys/stat.h>

#include <algorithm>
#include <unordered_set>

#include <fmt/format.h>

namespace lumen::server {

using nlohmann::json;

Result<std::string> CheckedPath(const json& value, const std::string& field, bool must_exist,
                                bool file_ok) {
  if (!value.is_string())
    return Status::Invalid(fmt::format("{} must be a path (a string)", field));
  std::string p = value.get<std::string>();
  if (p.empty() || p.size() > 4096)
    return Status::Invalid(fmt::format("{}: a path of 1 to 4096 bytes", field));
  if (p[0] != '/') return Status::Invalid(fmt::format("{}: {} is not an absolute path", field, p));
  if (p.find('\0') != std::string::npos)
    return Status::Invalid(fmt::format("{}: a path cannot hold a NUL byte", field));
  size_t at = 0;
  while (at <= p.size()) {
    size_t end = p.find('/', at);
    if (end == std::string::npos) end = p.size();
    const std::string_view part(p.data() + at, end - at);
    if (part == ".." || part == ".")
      return Status::Invalid(fmt::format("{}: {} has a \"{}\" component", field, p, part));
    at = end + 1;
  }
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (must_exist) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0)
      return Status::NotFound(fmt::format("{}: {} does not exist", field, p));
    if (!S_ISDIR(st.st_mode) && !(file_ok && S_ISREG(st.st_mode)))
      return Status::Invalid(
          fmt::format("{}: {} is not a folder{}", field, p, file_ok ? " or a file" : ""));
  }
  return p;
}

// ---- folders ----

Result<std::shared_ptr<const Folders>> Folders::Build(Catalog& cat, int64_t version) {
  auto f = std::make_shared<Folders>();
  f->version_ = version;
  LUMEN_RETURN_IF_ERROR(cat.LoadCurrentPaths(&f->paths_));
  if (!f->paths_.empty()) {
    // The common folder of the first and the last path is every path's (they are sorted).
    const std::string& a = f->paths_.front().first;
    const std::string& b = f->paths_.back().first;
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    std::string common = a.substr(0, n);
    const size_t slash = common.rfind('/');
    f->root_ = slash == 0 || slash == std::string::npos ? "/" : common.substr(0, slash);
  }
  return std::shared_ptr<const Folders>(std::move(f));
}

Result<json> Folders::List(const std::string& folder, int64_t offset, int64_t limit) const {
  const std::string prefix = folder == "/" ? "/" : folder + "/";
  auto first = std::lower_bound(paths_.begin(), paths_.end(), prefix,
                                [](const auto& e, const std::string& p) { return e.first < p; });
  if (first == paths_.end() || first->first.compare(0, prefix.size(), prefix) != 0)
    return Status::NotFound(fmt::format("no file of the catalog is under {}", folder));
  json subs = json::array(), names = json::array(), ids = json::array();
  int64_t files = 0, total = 0;
  for (auto it = first; it != paths_.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
    const std::string& path = it->first;
    const size_t slash = path.find('/', prefix.size());
    if (slash == std::string::npos) {
      if (files >= offset && files < offset + limit) {
        names.push_back(path.substr(prefix.size()));
        ids.push_back(it->second);
      }
      ++files;
      ++total;
      ++it;
      continue;
    }
    // A subfolder: its files are the paths from here up to the first that sorts after
    // "<sub>/" ('0' follows '/').
    const std::string sub = path.substr(0, slash + 1);
    std::string after = sub;
    after.back() = '0';
    auto end = std::lower_bound(it, paths_.end(), after,
                                [](const auto& e, const std::string& p) { return e.first < p; });
    const int64_t n = end - it;
    subs.push_back({{"name", path.substr(prefix.size(), slash - prefix.size())}, {"count", n}});
    total += n;
    it = end;
  }
  return json{{"folder", folder}, {"root", root_},    {"total", total}, {"folders", subs},
              {"files", files},   {"offset", offset}, {"names", names}, {"ids", ids}};
}

// ---- duplicates ----

Result<std::shared_ptr<const DupesView>> DupesView::Build(Catalog& cat,
                                                          const organize::DupesQuery& query,
                                                          int64_t version,
                                                          const std::string& exclude) {
  auto v = std::make_shared<DupesView>();
  v->version_ = version;
  auto d = organize::FindDuplicates(cat, query);
  if (!d.ok()) return d.status();
  v->d_ = std::move(*d);
  if (!exclude.empty()) {
    const std::string under = exclude + "/";
    auto out = [&](const std::string& p) { return p.compare(0, under.size(), under) == 0; };
    for (auto& item : v->d_.items)
      for (size_t k = item.paths.size(); k-- > 0;)
        if (out(item.paths[k])) {
          item.paths.erase(item.paths.begin() + ptrdiff_t(k));
          if (k < item.mtimes.size()) item.mtimes.erase(item.mtimes.begin() + ptrdiff_t(k));
        }
    for (auto& g : v->d_.groups)
      std::erase_if(g.members, [&](const dupes::Member& m) { return out(m.path); });
    std::erase_if(v->d_.groups, [](const dupes::Group& g) { return g.members.size() < 2; });
  }
  for (uint32_t g = 0; g < v->d_.groups.size(); ++g)
    for (const auto& m : v->d_.groups[g].members) {
      auto& gs = v->groups_of_item_[m.item];
      if (gs.empty() || gs.back() != g) gs.push_back(g);
      for (const auto& p : v->d_.items[m.item].paths) v->item_of_path_.emplace(p, m.item);
    }
  return std::shared_ptr<const DupesView>(std::move(v));
}

json DupesView::Page(const std::string& tier, int64_t offset, int64_t limit) const {
  json tiers = json::object();
  for (const auto& g : d_.groups) tiers[g.tier] = tiers.value(g.tier, 0) + 1;
  json groups = json::array();
  int64_t n = 0;
  for (const auto& g : d_.groups) {
    if (!tier.empty() && g.tier != tier) continue;
    if (n++ < offset || int64_t(groups.size()) >= limit) continue;
    json members = json::array();
    for (size_t m = 0; m < g.members.size(); ++m) {
      const auto& mem = g.members[m];
      const dupes::Item& it = d_.items[mem.item];
      json j = {{"asset", it.asset},        {"path", mem.path},    {"reason", mem.reason},
                {"keep", m == 0},           {"size", it.size},     {"width", it.width},
                {"height", it.height},      {"format", it.format}, {"video", it.video},
                {"copies", it.paths.size()}};
      if (it.captured) j["captured"] = *it.captured;
      if (it.sharpness) j["sharpness"] = *it.sharpness;
      members.push_back(std::move(j));
    }
    groups.push_back({{"tier", g.tier}, {"keep_reason", g.keep_reason}, {"members", members}});
  }
  return {{"version", version_},
          {"tiers", tiers},
          {"total", n},
          {"offset", offset},
          {"groups", groups}};
}

std::vector<organize::DupeVictim> DupesView::Suggested(const std::string& tier, bool hardlink,
                                                       size_t* not_identical) const {
  return organize::Victims(d_, hardlink, not_identical, tier);
}

Result<std::vector<organize::DupeVictim>> DupesView::Chosen(const json& remove,
                                                            bool hardlink) const {
  if (!remove.is_array() || remove.empty())
    return Status::Invalid("remove is a non-empty array of {\"path\", \"keep\"}");
  std::vector<organize::DupeVictim> out;
  std::unordered_set<std::string> removed, kept;
  for (const json& r : remove) {
    if (!r.is_object() || !r.contains("path") || !r.contains("keep"))
      return Status::Invalid("each entry of remove is {\"path\": P, \"keep\": K}");
    auto path = CheckedPath(r["path"], "remove.path", false);
    if (!path.ok()) return path.status();
    auto keep = CheckedPath(r["keep"], "remove.keep", false);
    if (!keep.ok()) return keep.status();
    auto a = item_of_path_.find(*path), k = item_of_path_.find(*keep);
    if (a == item_of_path_.end())
      return Status::Invalid(
          fmt::format("{} is not a duplicate the catalog knows (reload)", *path));
    if (k == item_of_path_.end())
      return Status::Invalid(
          fmt::format("{} is not a duplicate the catalog knows (reload)", *keep));
    if (*path == *keep) return Status::Invalid(fmt::format("{} is both kept and removed", *path));
    const auto& ga = groups_of_item_.at(a->second);
    const auto& gk = groups_of_item_.at(k->second);
    bool shared = false;
    for (uint32_t g : ga) shared |= std::find(gk.begin(), gk.end(), g) != gk.end();
    if (!shared)
      return Status::Invalid(fmt::format("{} and {} are not in one group", *path, *keep));
    const int64_t asset = d_.items[a->second].asset;
    if (hardlink && asset != d_.items[k->second].asset)
      return Status::Invalid(fmt::format(
          "{} is not identical to {}: a hard link needs the same content", *path, *keep));
    if (!removed.insert(*path).second) continue;
    kept.insert(*keep);
    out.push_back({*path, *keep, asset});
  }
  for (const auto& v : out)
    if (kept.count(v.path))
      return Status::Invalid(fmt::format("{} is both kept and removed", v.path));
  return out;
}

}  // namespace lumen::server
