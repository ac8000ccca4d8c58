#include "lumen/organize/plan.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "lumen/io/beneath.h"

namespace lumen::organize {
namespace {

namespace fs = std::filesystem;

const std::array<std::string_view, 20> kRaw = {"cr2", "cr3", "nef", "nrw", "arw", "srf", "sr2",
                                               "dng", "raf", "orf", "rw2", "pef", "srw", "x3f",
                                               "3fr", "iiq", "rwl", "erf", "kdc", "mrw"};

std::string Lower(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return o;
}

std::string Parent(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == 0 ? "/" : s == std::string::npos ? "." : p.substr(0, s);
}
std::string Base(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}
// "IMG_1.JPG" -> {"IMG_1", "JPG"}; a leading dot is part of the stem.
std::pair<std::string, std::string> SplitExt(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return {name, ""};
  return {name.substr(0, dot), name.substr(dot + 1)};
}

bool IsRaw(std::string_view ext_lower) {
  return std::find(kRaw.begin(), kRaw.end(), ext_lower) != kRaw.end();
}

std::optional<struct stat> Lstat(const std::string& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return std::nullopt;
  return st;
}

// Folder listings, ASCII-case-folded name -> real name; nullopt for a folder that does not exist.
class Listings {
 public:
  const std::optional<std::unordered_map<std::string, std::string>>& Get(const std::string& dir) {
    auto it = cache_.find(dir);
    if (it != cache_.end()) return it->second;
    std::optional<std::unordered_map<std::string, std::string>> names;
    std::error_code ec;
    fs::directory_iterator d(dir, ec);
    if (!ec) {
      names.emplace();
      for (const auto& e : d) {
        std::string n = e.path().filename().string();
        (*names)[Lower(n)] = n;
      }
    }
    return cache_.emplace(dir, std::move(names)).first->second;
  }

 private:
  std::unordered_map<std::string, std::optional<std::unordered_map<std::string, std::string>>>
      cache_;
};

// Folders from `dir` up that do not exist yet, into `out`.
void MissingDirs(const std::string& dir, std::set<std::string>* out) {
  std::string d = dir;
  while (d.size() > 1 && !out->count(d)) {
    std::error_code ec;
    if (fs::is_directory(d, ec)) return;
    out->insert(d);
    d = Parent(d);
  }
}

JournalOp FileOp(OpKind kind, const std::string& src, const std::string& dst, const struct stat& st,
                 const Hash128& h) {
  JournalOp op;
  op.kind = kind;
  op.src = src;
  op.dst = dst;
  op.id = IdentityFromStat(st);
  op.mode = st.st_mode & 07777;
  op.hash = h;
  return op;
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.ends_with('/') ? dir + name : dir + "/" + name;
}

// Where folders really are (symbolic links resolved), cached; the ones whose real path differs
// from their spelling are recorded in the plan (Plan::real).
class RealDirs {
 public:
  explicit RealDirs(Plan* plan) : plan_(plan) {}
  const std::string& Of(const std::string& dir) {
    auto it = cache_.find(dir);
    if (it == cache_.end()) it = cache_.emplace(dir, CanonicalPath(dir)).first;
    return it->second;
  }
  // One key per directory entry: the folder's (device, inode) and the name, so that a folder
  // reached twice (overlapping sources, a link, a bind mount) gives one key and hard links (two
  // entries) two.
  std::string EntryKey(const std::string& path) {
    const std::string dir = Parent(path);
    auto it = ids_.find(dir);
    if (it == ids_.end()) {
      struct stat st;
      it = ids_.emplace(dir, ::stat(dir.c_str(), &st) == 0
                                 ? fmt::format("{}:{}", uint64_t(st.st_dev), uint64_t(st.st_ino))
                                 : Of(dir))
               .first;
    }
    return it->second + "/" + Base(path);
  }
  void Record(const std::string& dir) {
    if (const std::string& r = Of(dir); r != dir) plan_->real[dir] = r;
  }
  // Why files cannot be put in `dir` (beneath `root`, which is recorded): a level inside `root`
  // is a symbolic link or not a folder. Empty when it can be (a missing level is made at apply).
  const std::string& Refusal(const std::string& root, const std::string& dir) {
    auto it = refusal_.find(dir);
    if (it != refusal_.end()) return it->second;
    std::string why;
    if (dir.size() > root.size() && dir.starts_with(root) && dir[root.size()] == '/') {
      auto root_fd = OpenDirNoSymlinks(Of(root), false);
      if (root_fd.ok()) {
        auto d = OpenDirBeneath(root_fd->get(), dir.substr(root.size() + 1), false, root);
        if (!d.ok() && d.status().code() != Code::kNotFound)
          why = fmt::format("not placed: {} (a destination is never written through a link)",
                            d.status().message());
      }
    }
    return refusal_.emplace(dir, std::move(why)).first->second;
  }

 private:
  Plan* plan_;
  std::unordered_map<std::string, std::string> cache_, refusal_, ids_;
};

void AddDirs(const std::set<std::string>& dirs, Plan* plan, RealDirs* real) {
  std::vector<JournalOp> mk;
  for (const auto& d : dirs) {  // sorted: a parent sorts before its children
    real->Record(Parent(d));
    JournalOp op;
    op.kind = OpKind::kMkdir;
    op.dst = d;
    mk.push_back(std::move(op));
  }
  plan->dirs = int64_t(mk.size());
  plan->ops.insert(plan->ops.begin(), mk.begin(), mk.end());
}

}  // namespace

bool IsCompanionExtension(std::string_view ext) {
  return ext == "xmp" || ext == "aae" || ext == "mov" || ext == "mp4" || ext == "thm" ||
         ext == "srt" || ext == "lrv" || IsRaw(ext);
}

Result<Plan> PlanOrganize(const std::vector<Source>& in, const Template& tmpl,
                          const PlanOptions& opt) {
  Plan plan;
  RealDirs real(&plan);
  const std::string dest = opt.dest.ends_with('/') && opt.dest.size() > 1
                               ? opt.dest.substr(0, opt.dest.size() - 1)
                               : opt.dest;
  real.Record(dest);
  auto by_path = [](const Source* a, const Source* b) { return a->path < b->path; };
  std::vector<const Source*> sources;
  {
    // One file named several times (overlapping sources, a folder twice or through a symbolic
    // link: one directory entry) is planned once, preferably under the name without a link.
    std::vector<const Source*> all;
    for (const auto& s : in) all.push_back(&s);
    std::sort(all.begin(), all.end(), by_path);
    std::unordered_map<std::string, size_t> at;  // directory entry -> index in sources
    for (const Source* s : all) {
      const std::string canon = Join(real.Of(Parent(s->path)), Base(s->path));
      auto [it, fresh] = at.emplace(real.EntryKey(s->path), sources.size());
      if (fresh) {
        sources.push_back(s);
        continue;
      }
      ++plan.overlap;
      if (s->path == canon && sources[it->second]->path != canon) sources[it->second] = s;
    }
    std::sort(sources.begin(), sources.end(), by_path);
  }
  // A RAW file beside a JPEG/HEIC of the same stem travels as that photo's companion, and so
  // does a live photo's video (IMG_0001.MOV beside IMG_0001.HEIC), though it is an asset itself.
  auto follows = [](const Source* s) {
    const std::string ext = Lower(SplitExt(Base(s->path)).second);
    return IsRaw(ext) || (s->kind == MediaKind::kVideo && (ext == "mov" || ext == "mp4"));
  };
  std::set<std::string> primary_keys, demoted;
  for (const Source* s : sources) {
    auto [stem, ext] = SplitExt(Base(s->path));
    if (!follows(s) && s->kind == MediaKind::kPhoto)
      primary_keys.insert(Parent(s->path) + "/" + Lower(stem));
  }
  std::unordered_set<std::string> is_source;
  for (const Source* s : sources) {
    auto [stem, ext] = SplitExt(Base(s->path));
    if (follows(s) && primary_keys.count(Parent(s->path) + "/" + Lower(stem)))
      demoted.insert(s->path);
    else
      is_source.insert(s->path);
  }

  Listings disk;
  std::unordered_set<std::string> planned;  // case-folded destination paths
  std::unordered_set<std::string> claimed;  // companions already given to a photo
  std::set<std::string> dirs;
  std::vector<JournalOp> files;

  for (const Source* s : sources) {
    if (demoted.count(s->path)) continue;
    auto skip = [&](const std::string& why, const std::string& dst) {
      JournalOp op;
      op.kind = opt.mode;
      op.src = s->path;
      op.dst = dst;
      op.id = s->id;
      op.hash = s->hash;
      op.state = OpState::kSkipped;
      op.reason = why;
      files.push_back(std::move(op));
    };
    auto st = Lstat(s->path);
    if (!st || !S_ISREG(st->st_mode)) {
      ++plan.changed;
      skip("no longer exists as a regular file", "");
      continue;
    }
    const FileIdentity now = IdentityFromStat(*st);
    if (now.size != s->id.size || now.mtime_ns != s->id.mtime_ns || now.inode != s->id.inode) {
      ++plan.changed;
      skip("changed since it was indexed (run lumen index)", "");
      continue;
    }
    const std::string name = Base(s->path);
    auto [stem, ext] = SplitExt(name);
    Fields f = s->fields;
    f.values["name"] = name;
    f.values["stem"] = stem;
    f.values["ext"] = Lower(ext);
    f.values["hash8"] = s->hash.Hex().substr(0, 8);
    auto rel = tmpl.Expand(f);
    if (!rel.ok()) {
      if (rel.status().code() == Code::kNotFound) ++plan.undescribed;
      skip(rel.status().message(), "");
      continue;
    }
    const std::string dst0 = dest + "/" + *rel;
    if (dst0 == s->path) {
      ++plan.in_place;
      continue;
    }
    // Companions in the photo's folder.
    std::vector<std::pair<std::string, std::string>> comps;  // (path, suffix after the new stem)
    if (opt.companions) {
      const std::string dir = Parent(s->path);
      if (const auto& names = disk.Get(dir)) {
        const std::string lstem = Lower(stem), lname = Lower(name);
        std::vector<std::string> found;
        for (const auto& [fold, real] : *names) {
          const std::string path = dir + "/" + real;
          if (real == name || is_source.count(path) || claimed.count(path)) continue;
          auto [cstem, cext] = SplitExt(real);
          const std::string lext = Lower(cext);
          if (fold == lname + ".xmp") {
            found.push_back(real);
          } else if (Lower(cstem) == lstem && IsCompanionExtension(lext)) {
            found.push_back(real);
          }
        }
        std::sort(found.begin(), found.end());
        for (const auto& real : found) {
          const bool full_name_xmp = Lower(real) == Lower(name) + ".xmp";
          comps.emplace_back(dir + "/" + real, full_name_xmp ? "\x01" + real.substr(real.size() - 4)
                                                             : "." + SplitExt(real).second);
        }
      }
    }
    // A free name for the photo and its companions.
    const std::string ddir = Parent(dst0);
    if (const std::string& why = real.Refusal(dest, ddir); !why.empty()) {
      ++plan.refused;
      skip(why, dst0);
      continue;
    }
    auto [dstem, dext] = SplitExt(Base(dst0));
    std::string dst;
    std::vector<std::string> comp_dst;
    bool identical = false;
    for (int n = 0;; ++n) {
      const std::string cand_stem = n == 0 ? dstem : fmt::format("{}_{}", dstem, n);
      const std::string cand = ddir + "/" + cand_stem + (dext.empty() ? "" : "." + dext);
      const auto& names = disk.Get(ddir);
      auto on_disk = [&](const std::string& p) -> std::optional<std::string> {
        if (!names) return std::nullopt;
        auto it = names->find(Lower(Base(p)));
        if (it == names->end()) return std::nullopt;
        return ddir + "/" + it->second;
      };
      bool taken = planned.count(Lower(cand)) > 0;
      if (auto there = on_disk(cand)) {
        taken = true;
        if (n == 0) {
          auto dst_st = Lstat(*there);
          if (dst_st && dst_st->st_ino == st->st_ino && dst_st->st_dev == st->st_dev) {
            ++plan.in_place;
            identical = true;
            break;
          }
          if (dst_st && S_ISREG(dst_st->st_mode) && uint64_t(dst_st->st_size) == now.size) {
            auto h = HashFile(*there);
            if (h.ok() && *h == s->hash) {
              ++plan.identical;
              skip(fmt::format("identical file already at {}", *there), *there);
              identical = true;
              break;
            }
          }
        }
      }
      std::vector<std::string> cd;
      for (const auto& [cpath, suffix] : comps) {
        const std::string c =
            suffix[0] == '\x01' ? cand + suffix.substr(1) : ddir + "/" + cand_stem + suffix;
        if (planned.count(Lower(c)) || on_disk(c)) taken = true;
        cd.push_back(c);
      }
      if (!taken) {
        dst = cand;
        comp_dst = std::move(cd);
        if (n > 0) ++plan.renamed;
        break;
      }
    }
    if (identical) continue;
    planned.insert(Lower(dst));
    MissingDirs(ddir, &dirs);
    real.Record(Parent(s->path));
    ++plan.photos;
    files.push_back(FileOp(opt.mode, s->path, dst, *st, s->hash));
    for (size_t c = 0; c < comps.size(); ++c) {
      FileIdentity cid;
      auto h = HashFile(comps[c].first, &cid);
      auto cst = Lstat(comps[c].first);
      if (!h.ok() || !cst || !S_ISREG(cst->st_mode)) continue;  // vanished or unreadable: left
      claimed.insert(comps[c].first);
      planned.insert(Lower(comp_dst[c]));
      ++plan.companions;
      files.push_back(FileOp(opt.mode, comps[c].first, comp_dst[c], *cst, *h));
    }
  }
  plan.ops = std::move(files);
  AddDirs(dirs, &plan, &real);
  return plan;
}

Result<Plan> PlanQuarantine(const std::vector<Doomed>& files, const std::string& quarantine) {
  Plan plan;
  RealDirs real(&plan);
  std::set<std::string> dirs;
  std::unordered_set<std::string> planned;
  std::string q = quarantine;
  while (q.size() > 1 && q.ends_with('/')) q.pop_back();
  real.Record(q);
  std::unordered_set<std::string> seen;
  for (const auto& d : files) {
    if (!seen.insert(d.path).second) continue;  // named twice: moved once
    auto st = Lstat(d.path);
    if (!st || !S_ISREG(st->st_mode)) {
      ++plan.changed;
      continue;
    }
    if (d.path.starts_with(q + "/")) continue;  // already in quarantine
    const std::string want = q + d.path;
    auto [stem, ext] = SplitExt(Base(want));
    std::string dst = want;
    for (int n = 1; planned.count(dst) || Lstat(dst); ++n)
      dst = Parent(want) + "/" + fmt::format("{}_{}", stem, n) + (ext.empty() ? "" : "." + ext);
    if (const std::string& why = real.Refusal(q, Parent(dst)); !why.empty()) {
      ++plan.refused;
      JournalOp op = FileOp(OpKind::kMove, d.path, dst, *st, d.hash);
      op.state = OpState::kSkipped;
      op.reason = why;
      plan.ops.push_back(std::move(op));
      continue;
    }
    planned.insert(dst);
    MissingDirs(Parent(dst), &dirs);
    real.Record(Parent(d.path));
    ++plan.photos;
    plan.ops.push_back(FileOp(OpKind::kMove, d.path, dst, *st, d.hash));
  }
  AddDirs(dirs, &plan, &real);
  return plan;
}

Result<Plan> PlanHardlinks(const std::vector<Doomed>& files) {
  Plan plan;
  RealDirs real(&plan);
  std::unordered_set<std::string> seen;
  for (const auto& d : files) {
    if (!seen.insert(d.path).second) continue;  // named twice: once is enough
    real.Record(Parent(d.path));
    real.Record(Parent(d.keeper));
    auto st = Lstat(d.path);
    auto kst = Lstat(d.keeper);
    if (!st || !kst || !S_ISREG(st->st_mode) || !S_ISREG(kst->st_mode)) {
      ++plan.changed;
      continue;
    }
    JournalOp op = FileOp(OpKind::kReplaceLink, d.keeper, d.path, *st, d.hash);
    if (st->st_ino == kst->st_ino && st->st_dev == kst->st_dev) {
      ++plan.in_place;
      continue;
    }
    if (st->st_dev != kst->st_dev) {
      op.state = OpState::kSkipped;
      op.reason = fmt::format("on another filesystem than {}", d.keeper);
    } else {
      ++plan.photos;
    }
    plan.ops.push_back(std::move(op));
  }
  return plan;
}

}  // namespace lumen::organize
