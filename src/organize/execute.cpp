#include "lumen/organize/execute.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/io/beneath.h"
#include "lumen/organize/plan.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/temp_file.h"

namespace lumen::organize {
namespace {

struct Outcome {
  OpState state;
  std::string reason;
  std::optional<FileIdentity> id;  // where the file is now (for the catalog)
  bool stop = false;               // the disk is full: stop the run
  bool recovered = false;          // found already done (after a crash)
  bool problem = false;            // report it
};

Outcome Done(std::optional<FileIdentity> id, bool recovered = false) {
  return {OpState::kDone, "", id, false, recovered, false};
}
Outcome Undone(std::optional<FileIdentity> id, std::string why = "") {
  return {OpState::kUndone, std::move(why), id, false, false, false};
}
Outcome Skip(std::string why) {
  return {OpState::kSkipped, std::move(why), std::nullopt, false, false, true};
}
Outcome Fail(std::string why) {
  return {OpState::kFailed, std::move(why), std::nullopt, false, false, true};
}
// On undo: leave the operation as it is and say why.
Outcome Keep(const JournalOp& op, std::string why) {
  return {op.state, std::move(why), std::nullopt, false, false, true};
}

std::string Parent(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == 0 ? "/" : s == std::string::npos ? "." : p.substr(0, s);
}
std::string Why(const std::string& what, int err) {
  return fmt::format("{}: {}", what, strerror(err));
}

// Where a run's paths really are. The plan records the folders it reached through symbolic
// links (args "real": {spelled: real}); every other path is taken as written. Each end of an
// operation is then opened through its real path without following any link (io/beneath.h), so
// a link planted after the plan (inside the destination, or where a source folder was) is
// refused, never followed. Runs planned before "real" existed map their dest and sources as they
// resolve now.
class Places {
 public:
  explicit Places(const std::string& args_json) {
    const auto j = nlohmann::json::parse(args_json, nullptr, false);
    if (!j.is_object()) return;
    if (j.contains("real") && j["real"].is_object()) {
      for (const auto& [from, to] : j["real"].items())
        if (to.is_string()) map_.emplace_back(from, to.get<std::string>());
    } else {
      auto add = [&](const nlohmann::json& v) {
        if (!v.is_string()) return;
        const std::string p = v.get<std::string>();
        if (const std::string real = CanonicalPath(p); real != p) map_.emplace_back(p, real);
      };
      if (j.contains("dest")) add(j["dest"]);
      if (j.contains("sources") && j["sources"].is_array())
        for (const auto& s : j["sources"]) add(s);
    }
    std::sort(map_.begin(), map_.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }
  std::string Real(const std::string& p) const {
    for (const auto& [from, to] : map_) {
      if (p == from) return to;
      if (from.size() > 1 && p.size() > from.size() && p.compare(0, from.size(), from) == 0 &&
          p[from.size()] == '/')
        return to + p.substr(from.size());
    }
    return p;
  }

 private:
  std::vector<std::pair<std::string, std::string>> map_;  // longest first
};

// A name in an open folder: what the *at() calls act on.
struct At {
  int dir = -1;
  std::string name;
  std::string shown;  // the path, for messages
};

// One end of an operation: the folder holding it, opened without following links, and its name.
struct End {
  std::string path;  // as the journal has it
  UniqueFd dir;
  std::string name;
  Status err;  // why `dir` is not open
  bool ok() const { return dir.ok(); }
  bool missing() const { return !ok() && err.code() == Code::kNotFound; }
  At at() const { return {dir.get(), name, path}; }
  At Beside(const std::string& n) const { return {dir.get(), n, Parent(path) + "/" + n}; }
};

End Open(const Places& pl, const std::string& path, bool create) {
  End e;
  e.path = path;
  auto in = OpenParentNoSymlinks(pl.Real(path), create);
  if (!in.ok()) {
    e.err = in.status();
    return e;
  }
  e.dir = std::move(in->dir);
  e.name = std::move(in->name);
  return e;
}

std::string TempName(int64_t run, const JournalOp& op) {
  return fmt::format(".lumen-{}-{}.tmp", run, op.seq);
}

std::optional<struct stat> Lstat(const At& a) {
  struct stat st;
  if (a.dir < 0 || ::fstatat(a.dir, a.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return std::nullopt;
  return st;
}
std::optional<FileIdentity> IdOf(const At& a) {
  auto st = Lstat(a);
  if (!st) return std::nullopt;
  return IdentityFromStat(*st);
}
void Unlink(const At& a) {
  if (a.dir >= 0) ::unlinkat(a.dir, a.name.c_str(), 0);
}
bool SameFile(const struct stat& st, const FileIdentity& id) {
  return uint64_t(st.st_ino) == id.inode && uint64_t(st.st_dev) == id.device;
}
bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}
bool Unchanged(const struct stat& st, const FileIdentity& id) {
  const FileIdentity now = IdentityFromStat(st);
  return now.size == id.size && now.mtime_ns == id.mtime_ns && now.inode == id.inode;
}
// The content hash of a regular file (a symbolic link or anything else: none).
std::optional<Hash128> HashAt(const At& a) {
  if (a.dir < 0) return std::nullopt;
  UniqueFd fd(::openat(a.dir, a.name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st;
  if (!fd.ok() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  Hasher h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    h.Update(buf.data(), size_t(n));
  }
  return h.Final();
}
bool ContentIs(const At& a, const std::optional<Hash128>& want) {
  if (!want) return false;
  auto h = HashAt(a);
  return h && *h == *want;
}

void FsyncDir(int dir) {
  if (dir < 0) return;
  UniqueFd fd(::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.ok()) (void)::fsync(fd.get());
}

// rename(2) that never replaces `to` (util/temp_file.h): 0 or an errno value.
int RenameNoReplace(const At& from, const At& to) {
  if (from.dir < 0 || to.dir < 0) return ENOENT;
  return lumen::RenameNoReplace(from.dir, from.name, to.dir, to.name);
}

// Copies `src` to the new file `tmp` (mode and mtime given), fsyncs it and checks that the bytes
// read and the bytes now in `tmp` both hash to `want`. 0, or an errno value (EILSEQ: content
// differs) with `*why` set; `tmp` is removed on failure.
int CopyVerified(const At& src, const At& tmp, uint32_t mode, int64_t mtime_ns,
                 const std::optional<Hash128>& want, std::string* why) {
  UniqueFd in(src.dir < 0 ? -1
                          : ::openat(src.dir, src.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.ok()) {
    const int e = src.dir < 0 ? ENOENT : errno;
    *why = Why(fmt::format("cannot read {}", src.shown), e);
    return e;
  }
  UniqueFd out(tmp.dir < 0 ? -1
                           : ::openat(tmp.dir, tmp.name.c_str(),
                                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.ok()) {
    const int e = tmp.dir < 0 ? ENOENT : errno;
    *why = Why(fmt::format("cannot write in {}", Parent(tmp.shown)), e);
    return e;
  }
  auto fail = [&](int e, std::string w) {
    out = UniqueFd();
    Unlink(tmp);
    *why = std::move(w);
    return e;
  };
  Hasher h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(errno, Why(fmt::format("cannot read {}", src.shown), errno));
    if (n == 0) break;
    h.Update(buf.data(), size_t(n));
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out.get(), buf.data() + off, size_t(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        const int e = errno;
        return fail(e, e == ENOSPC ? fmt::format("the destination is full (writing {})", tmp.shown)
                                   : Why(fmt::format("cannot write {}", tmp.shown), e));
      }
      off += w;
    }
    FaultPoint();
  }
  (void)::fchmod(out.get(), mode ? mode : 0644);
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  times[1].tv_sec = mtime_ns / 1000000000;
  times[1].tv_nsec = mtime_ns % 1000000000;
  (void)::futimens(out.get(), times);
  if (::fsync(out.get()) != 0) {
    const int e = errno;
    return fail(e, e == ENOSPC ? fmt::format("the destination is full (writing {})", tmp.shown)
                               : Why(fmt::format("cannot sync {}", tmp.shown), e));
  }
  in = UniqueFd();
  if (::close(out.release()) != 0) {
    const int e = errno;
    Unlink(tmp);
    *why = Why(fmt::format("cannot write {}", tmp.shown), e);
    return e;
  }
  if (want && !(h.Final() == *want)) {
    Unlink(tmp);
    *why = fmt::format("{} changed while it was being copied", src.shown);
    return EILSEQ;
  }
  if (want && !ContentIs(tmp, want)) {
    Unlink(tmp);
    *why = fmt::format("the copy at {} does not read back identical", tmp.shown);
    return EIO;
  }
  return 0;
}

Outcome CopyFailed(int err, std::string why) {
  Outcome o = Fail(std::move(why));
  o.stop = err == ENOSPC;
  return o;
}

// An end whose folder cannot be opened safely (a level is a symbolic link or not a folder).
std::string Refused(const End& e) {
  return fmt::format("{}: {}; nothing done there", e.path, e.err.message());
}

// ---- apply ----

Outcome ApplyMkdir(const Places& pl, const JournalOp& op) {
  End e = Open(pl, op.dst, false);
  if (!e.ok()) return Fail(fmt::format("cannot create folder {}: {}", op.dst, e.err.message()));
  if (::mkdirat(e.dir.get(), e.name.c_str(), 0777) == 0) {
    FaultPoint();
    return Done(std::nullopt);
  }
  const int err = errno;
  if (err == EEXIST) {
    auto st = Lstat(e.at());
    if (st && S_ISDIR(st->st_mode)) return Done(std::nullopt, true);
    if (st && S_ISLNK(st->st_mode))
      return Fail(
          fmt::format("{} is a symbolic link; not followed (nothing is put there)", op.dst));
  }
  Outcome o = Fail(Why(fmt::format("cannot create folder {}", op.dst), err));
  o.stop = err == ENOSPC;
  return o;
}

// Where the source stands before a move/copy/link. nullopt: go ahead.
std::optional<Outcome> CheckSource(const JournalOp& op, const End& s, const End& d,
                                   const std::optional<struct stat>& src,
                                   const std::optional<struct stat>& dst) {
  if (!src) {
    if (dst && op.kind != OpKind::kCopy && S_ISREG(dst->st_mode) &&
        (SameFile(*dst, op.id) ||
         (uint64_t(dst->st_size) == op.id.size && ContentIs(d.at(), op.hash))))
      return Done(IdentityFromStat(*dst), true);  // moved before a crash
    if (dst && op.kind == OpKind::kCopy) return Skip(fmt::format("{} no longer exists", op.src));
    return Fail(fmt::format("{} no longer exists", op.src));
  }
  if (!S_ISREG(src->st_mode))
    return Skip(
        fmt::format("{} is no longer a regular file (a symbolic link?); not touched", op.src));
  if (dst) {
    if (SameFile(*src, *dst)) return std::nullopt;  // linked already (handled by the caller)
    return Skip(fmt::format("{} exists (it appeared after the plan); nothing overwritten", op.dst));
  }
  if (!Unchanged(*src, op.id) && !ContentIs(s.at(), op.hash))
    return Skip(fmt::format("{} changed after the plan", op.src));
  return std::nullopt;
}

// Copy to a temporary name, mark "copied" durably, rename into place; the caller removes the
// source for a move.
Outcome CopyIntoPlace(Journal& j, int64_t run, const JournalOp& op, const End& s, const End& d,
                      const struct stat& src) {
  const At tmp = d.Beside(TempName(run, op));
  Unlink(tmp);
  std::string why;
  int e =
      CopyVerified(s.at(), tmp, src.st_mode & 07777, IdentityFromStat(src).mtime_ns, op.hash, &why);
  if (e != 0) return CopyFailed(e, why);
  FaultPoint();
  if (Status st = j.Mark(run, op, OpState::kCopied, "", std::nullopt, true); !st.ok()) {
    Unlink(tmp);
    return Fail(st.message());
  }
  FaultPoint();
  if (int r = RenameNoReplace(tmp, d.at()); r != 0) {
    Unlink(tmp);
    if (r == EEXIST) return Skip(fmt::format("{} exists; nothing overwritten", op.dst));
    return Fail(Why(fmt::format("cannot create {}", op.dst), r));
  }
  FsyncDir(d.dir.get());
  FaultPoint();
  return Done(IdOf(d.at()));
}

// The source of a finished copy may go: only if it is still the planned file.
Outcome RemoveMovedSource(const JournalOp& op, const End& s, Outcome o) {
  auto src = Lstat(s.at());
  if (!src) return o;
  if (!S_ISREG(src->st_mode) || (!Unchanged(*src, op.id) && !ContentIs(s.at(), op.hash))) {
    o.reason = fmt::format("{} changed after it was copied; both kept", op.src);
    o.problem = true;
    return o;
  }
  if (::unlinkat(s.dir.get(), s.name.c_str(), 0) != 0) {
    o.reason = Why(fmt::format("copied, but cannot remove {}", op.src), errno);
    o.problem = true;
    return o;
  }
  FsyncDir(s.dir.get());
  FaultPoint();
  return o;
}

Outcome ApplyMoveOrCopy(Journal& j, const Places& pl, int64_t run, const JournalOp& op) {
  const bool move = op.kind == OpKind::kMove;
  End s = Open(pl, op.src, false);
  if (!s.ok() && !s.missing()) return Fail(Refused(s));
  End d = Open(pl, op.dst, true);
  if (!d.ok()) return Fail(Refused(d));
  const At tmp = d.Beside(TempName(run, op));
  auto src = Lstat(s.at());
  auto dst = Lstat(d.at());
  if (op.state == OpState::kCopied) {
    // A verified copy exists at tmp or already at dst.
    if (!dst && Lstat(tmp)) {
      if (int r = RenameNoReplace(tmp, d.at()); r != 0) {
        Unlink(tmp);
        return Fail(Why(fmt::format("cannot create {}", op.dst), r));
      }
      FsyncDir(d.dir.get());
      FaultPoint();
      dst = Lstat(d.at());
    }
    if (dst) {
      Outcome o = Done(IdentityFromStat(*dst), true);
      return move ? RemoveMovedSource(op, s, o) : o;
    }
  }
  Unlink(tmp);  // a stale partial copy
  if (auto o = CheckSource(op, s, d, src, dst)) return *o;
  if (dst) {  // the source is already linked at dst: a rename fallback stopped half-way
    if (move) Unlink(s.at());
    return Done(IdentityFromStat(*dst), true);
  }
  if (!move) return CopyIntoPlace(j, run, op, s, d, *src);
  const int r = RenameNoReplace(s.at(), d.at());
  if (r == 0) {
    FaultPoint();
    // What arrived must be a regular file (not a link swapped in after the check).
    auto now = Lstat(d.at());
    if (!now || !S_ISREG(now->st_mode)) {
      if (RenameNoReplace(d.at(), s.at()) != 0)
        return Fail(fmt::format("{} was replaced while it was being moved; it is now at {}", op.src,
                                op.dst));
      return Fail(
          fmt::format("{} was replaced while it was being moved; left where it was", op.src));
    }
    return Done(IdentityFromStat(*now));
  }
  if (r == EEXIST) return Skip(fmt::format("{} exists; nothing overwritten", op.dst));
  if (r != EXDEV) return Fail(Why(fmt::format("cannot move {} to {}", op.src, op.dst), r));
  Outcome o = CopyIntoPlace(j, run, op, s, d, *src);
  return o.state == OpState::kDone ? RemoveMovedSource(op, s, o) : o;
}

Outcome ApplyLink(const Places& pl, const JournalOp& op) {
  End s = Open(pl, op.src, false);
  if (!s.ok() && !s.missing()) return Fail(Refused(s));
  End d = Open(pl, op.dst, true);
  if (!d.ok()) return Fail(Refused(d));
  auto src = Lstat(s.at());
  auto dst = Lstat(d.at());
  if (auto o = CheckSource(op, s, d, src, dst)) return *o;
  if (dst) return Done(IdentityFromStat(*dst), true);
  const int r =
      ::linkat(s.dir.get(), s.name.c_str(), d.dir.get(), d.name.c_str(), 0) == 0 ? 0 : errno;
  if (r == 0) {
    FaultPoint();
    return Done(IdentityFromStat(*src));
  }
  if (r == EEXIST) return Skip(fmt::format("{} exists; nothing overwritten", op.dst));
  if (r == EXDEV)
    return Fail(
        fmt::format("{} is on another filesystem than {}: hard links cannot cross "
                    "filesystems (use --copy)",
                    op.dst, op.src));
  return Fail(Why(fmt::format("cannot link {} to {}", op.dst, op.src), r));
}

Outcome ApplyReplaceLink(const Places& pl, int64_t run, const JournalOp& op) {
  End k = Open(pl, op.src, false);
  End u = Open(pl, op.dst, false);
  if (!k.ok() && !k.missing()) return Fail(Refused(k));
  if (!u.ok() && !u.missing()) return Fail(Refused(u));
  auto keep = Lstat(k.at());
  auto dup = Lstat(u.at());
  const At tmp = u.Beside(TempName(run, op));
  if (!keep || !S_ISREG(keep->st_mode))
    return Fail(fmt::format("the kept copy {} no longer exists as a regular file", op.src));
  if (!dup) return Fail(fmt::format("{} no longer exists", op.dst));
  if (SameFile(*keep, *dup)) {
    Unlink(tmp);
    return Done(IdentityFromStat(*dup), true);
  }
  Unlink(tmp);
  if (!S_ISREG(dup->st_mode))
    return Skip(fmt::format("{} is no longer a regular file; not replaced", op.dst));
  if (!Unchanged(*dup, op.id) && !ContentIs(u.at(), op.hash))
    return Skip(fmt::format("{} changed after the plan", op.dst));
  if (!ContentIs(k.at(), op.hash) || !ContentIs(u.at(), op.hash))
    return Skip(fmt::format("{} and {} no longer have identical content", op.dst, op.src));
  if (::linkat(k.dir.get(), k.name.c_str(), u.dir.get(), tmp.name.c_str(), 0) != 0) {
    const int e = errno;
    if (e == EXDEV) return Fail(fmt::format("{} is on another filesystem than {}", op.dst, op.src));
    return Fail(Why(fmt::format("cannot link {} in {}", op.src, Parent(op.dst)), e));
  }
  FaultPoint();
  if (::renameat(u.dir.get(), tmp.name.c_str(), u.dir.get(), u.name.c_str()) != 0) {
    const int e = errno;
    Unlink(tmp);
    return Fail(Why(fmt::format("cannot replace {}", op.dst), e));
  }
  FaultPoint();
  return Done(IdOf(u.at()));
}

Outcome ApplyOne(Journal& j, const Places& pl, int64_t run, const JournalOp& op) {
  switch (op.kind) {
    case OpKind::kMkdir:
      return ApplyMkdir(pl, op);
    case OpKind::kMove:
    case OpKind::kCopy:
      return ApplyMoveOrCopy(j, pl, run, op);
    case OpKind::kLink:
      return ApplyLink(pl, op);
    case OpKind::kReplaceLink:
      return ApplyReplaceLink(pl, run, op);
  }
  return Fail("unknown operation");
}

// ---- undo ----

bool NeverApplied(const JournalOp& op) {
  return op.state == OpState::kPending;
}

Outcome UndoMove(const Places& pl, int64_t run, const JournalOp& op) {
  End d = Open(pl, op.dst, false);  // where the file is now
  End s = Open(pl, op.src, false);  // where it goes back
  if (!d.ok() && !d.missing()) return Keep(op, Refused(d));
  if (!s.ok() && !s.missing())
    return Keep(op, fmt::format("{}; {} left where it is", Refused(s), op.dst));
  Unlink(d.Beside(TempName(run, op)));
  Unlink(s.Beside(TempName(run, op) + "u"));
  auto src = Lstat(s.at());
  auto dst = Lstat(d.at());
  if (!dst) {
    if (src && S_ISREG(src->st_mode) && (SameFile(*src, op.id) || ContentIs(s.at(), op.hash)))
      return Undone(IdentityFromStat(*src), NeverApplied(op) ? "not applied" : "");
    if (NeverApplied(op)) return Undone(std::nullopt, "not applied");
    return Keep(op, fmt::format("{} is no longer there; {} cannot be restored", op.dst, op.src));
  }
  if (src) {
    if (SameFile(*src, *dst)) {  // a rename fallback stopped half-way
      Unlink(d.at());
      return Undone(IdentityFromStat(*src));
    }
    if (NeverApplied(op)) return Undone(std::nullopt, "not applied");  // dst is not ours
    if (ContentIs(s.at(), op.hash) && ContentIs(d.at(), op.hash)) {
      // A copy back (or a cross-filesystem move) stopped before removing the other end.
      Unlink(d.at());
      FaultPoint();
      return Undone(IdentityFromStat(*src));
    }
    return Keep(op,
                fmt::format("{} is taken by another file; {} left where it is", op.src, op.dst));
  }
  if (NeverApplied(op) && !SameFile(*dst, op.id))
    return Undone(std::nullopt, "not applied");  // (a pending op whose dst is someone else's)
  const bool same = S_ISREG(dst->st_mode) && SameFile(*dst, op.id) &&
                    uint64_t(dst->st_size) == op.id.size &&
                    IdentityFromStat(*dst).mtime_ns == op.id.mtime_ns;
  if (!same && !ContentIs(d.at(), op.hash))
    return Keep(
        op, fmt::format("{} changed after the run; not moved back (nothing overwritten)", op.dst));
  if (!s.ok()) {  // the original folder is gone: make it again (links are not followed)
    s = Open(pl, op.src, true);
    if (!s.ok())
      return Keep(op,
                  fmt::format("cannot recreate folder {}: {}", Parent(op.src), s.err.message()));
  }
  const int r = RenameNoReplace(d.at(), s.at());
  if (r == 0) {
    FaultPoint();
    return Undone(IdOf(s.at()));
  }
  if (r == EEXIST) return Keep(op, fmt::format("{} is taken by another file", op.src));
  if (r != EXDEV) return Keep(op, Why(fmt::format("cannot move {} back", op.dst), r));
  const At back_tmp = s.Beside(TempName(run, op) + "u");
  std::string why;
  if (int e = CopyVerified(d.at(), back_tmp, dst->st_mode & 07777, IdentityFromStat(*dst).mtime_ns,
                           op.hash, &why);
      e != 0) {
    Outcome o = Keep(op, why);
    o.stop = e == ENOSPC;
    return o;
  }
  FaultPoint();
  if (int e = RenameNoReplace(back_tmp, s.at()); e != 0) {
    Unlink(back_tmp);
    return Keep(op, Why(fmt::format("cannot restore {}", op.src), e));
  }
  FsyncDir(s.dir.get());
  FaultPoint();
  Unlink(d.at());
  FaultPoint();
  return Undone(IdOf(s.at()));
}

Outcome UndoCopyOrLink(const Places& pl, int64_t run, const JournalOp& op) {
  End d = Open(pl, op.dst, false);
  if (!d.ok() && !d.missing()) return Keep(op, Refused(d));
  End s = Open(pl, op.src, false);
  Unlink(d.Beside(TempName(run, op)));
  auto dst = Lstat(d.at());
  if (!dst) return Undone(std::nullopt, NeverApplied(op) ? "not applied" : "");
  auto src = Lstat(s.at());
  if (op.kind == OpKind::kLink) {
    if (!SameFile(*dst, op.id)) {
      if (NeverApplied(op)) return Undone(std::nullopt, "not applied");
      return Keep(op, fmt::format("{} is no longer a link to {}; kept", op.dst, op.src));
    }
    if (!src || !SameFile(*src, op.id))
      return Keep(op,
                  fmt::format("{} is gone; {} is now its only name and is kept", op.src, op.dst));
  } else {
    if (NeverApplied(op)) return Undone(std::nullopt, "not applied");
    if (!ContentIs(d.at(), op.hash))
      return Keep(op, fmt::format("{} changed after the run; kept", op.dst));
    if (!src || !ContentIs(s.at(), op.hash))
      return Keep(op, fmt::format("the original {} is gone or changed; the copy {} is kept", op.src,
                                  op.dst));
  }
  if (::unlinkat(d.dir.get(), d.name.c_str(), 0) != 0)
    return Keep(op, Why(fmt::format("cannot remove {}", op.dst), errno));
  FaultPoint();
  return Undone(std::nullopt);
}

Outcome UndoReplaceLink(const Places& pl, int64_t run, const JournalOp& op) {
  End k = Open(pl, op.src, false);
  End u = Open(pl, op.dst, false);
  if (!u.ok() && !u.missing()) return Keep(op, Refused(u));
  const At tmp = u.Beside(TempName(run, op));
  Unlink(tmp);
  auto keep = Lstat(k.at());
  auto dup = Lstat(u.at());
  if (!dup) return Keep(op, fmt::format("{} no longer exists", op.dst));
  if (!keep || !SameFile(*keep, *dup)) {
    if (ContentIs(u.at(), op.hash)) return Undone(IdentityFromStat(*dup));  // independent again
    return Keep(op, fmt::format("{} changed after the run; kept", op.dst));
  }
  std::string why;
  if (int e = CopyVerified(k.at(), tmp, op.mode, op.id.mtime_ns, op.hash, &why); e != 0) {
    Outcome o = Keep(op, why);
    o.stop = e == ENOSPC;
    return o;
  }
  FaultPoint();
  if (::renameat(u.dir.get(), tmp.name.c_str(), u.dir.get(), u.name.c_str()) != 0) {
    const int e = errno;
    Unlink(tmp);
    return Keep(op, Why(fmt::format("cannot restore {}", op.dst), e));
  }
  FaultPoint();
  return Undone(IdOf(u.at()));
}

Outcome UndoOne(const Places& pl, int64_t run, const JournalOp& op) {
  switch (op.kind) {
    case OpKind::kMkdir: {
      // A folder that is not empty stays; a symbolic link planted in its place is not a folder.
      End e = Open(pl, op.dst, false);
      if (e.ok() && ::unlinkat(e.dir.get(), e.name.c_str(), AT_REMOVEDIR) == 0) FaultPoint();
      return Undone(std::nullopt);
    }
    case OpKind::kMove:
      return UndoMove(pl, run, op);
    case OpKind::kCopy:
    case OpKind::kLink:
      return UndoCopyOrLink(pl, run, op);
    case OpKind::kReplaceLink:
      return UndoReplaceLink(pl, run, op);
  }
  return Keep(op, "unknown operation");
}

Places PlacesOf(Journal& j, int64_t run) {
  auto runs = j.Runs();
  if (runs.ok())
    for (const auto& r : *runs)
      if (r.id == run) return Places(r.args);
  return Places("{}");
}

void Count(const JournalOp& op, const Outcome& o, OpState goal, ExecReport* rep) {
  if (o.recovered) ++rep->recovered;
  if (op.kind != OpKind::kMkdir || o.state == OpState::kFailed) {
    if (o.state == goal)
      ++rep->done;
    else if (o.state == OpState::kFailed)
      ++rep->failed;
    else
      ++rep->skipped;  // skipped, or (undo) left as it was
  }
  if (o.problem) rep->problems.emplace_back(op.src.empty() ? op.dst : op.src, o.reason);
}

template <typename Todo, typename Do>
Result<ExecReport> Execute(Journal& j, int64_t run, std::vector<JournalOp> ops, OpState goal,
                           Todo todo, Do act, Progress* progress) {
  ExecReport rep;
  uint64_t total = 0, n = 0;
  for (const auto& op : ops)
    if (todo(op)) ++total;
  for (auto& op : ops) {
    if (!todo(op)) continue;
    if (Interrupted()) {
      rep.interrupted = true;
      rep.stop_reason = "interrupted";
      break;
    }
    Outcome o = act(op);
    if (o.stop) o.state = op.state;  // left for --resume once there is room
    Count(op, o, goal, &rep);
    if (o.state != op.state || o.reason != op.reason)
      LUMEN_RETURN_IF_ERROR(j.Mark(run, op, o.state, o.reason, o.id));
    FaultPoint();
    ++n;
    if (progress) progress->Update(n, total, 0, uint64_t(rep.failed));
    if (o.stop) {
      rep.interrupted = true;
      rep.stop_reason = o.reason;
      break;
    }
  }
  LUMEN_RETURN_IF_ERROR(j.Flush());
  return rep;
}

}  // namespace

void FaultPoint() {
  static const int64_t kill_at = [] {
    const char* v = std::getenv("LUMEN_FAULT_KILL_AT");
    return v && *v ? std::atoll(v) : int64_t(0);
  }();
  static int64_t steps = 0;
  if (kill_at > 0 && ++steps >= kill_at) ::kill(::getpid(), SIGKILL);
}

Result<ExecReport> ApplyRun(Journal& j, int64_t run, bool redo, Progress* progress) {
  auto ops = j.LoadOps(run);
  if (!ops.ok()) return ops.status();
  const Places places = PlacesOf(j, run);
  LUMEN_RETURN_IF_ERROR(j.SetRunState(run, "applying"));
  auto todo = [redo](const JournalOp& op) {
    return op.state == OpState::kPending || op.state == OpState::kCopied ||
           (redo && op.state == OpState::kUndone);
  };
  auto rep = Execute(
      j, run, std::move(*ops), OpState::kDone, todo,
      [&](JournalOp& op) {
        if (op.state == OpState::kUndone) op.state = OpState::kPending;
        return ApplyOne(j, places, run, op);
      },
      progress);
  if (!rep.ok()) return rep;
  LUMEN_RETURN_IF_ERROR(j.SetRunState(run, rep->interrupted ? "applying" : "applied"));
  return rep;
}

Result<ExecReport> UndoRun(Journal& j, int64_t run, Progress* progress) {
  auto ops = j.LoadOps(run);
  if (!ops.ok()) return ops.status();
  std::reverse(ops->begin(), ops->end());
  const Places places = PlacesOf(j, run);
  LUMEN_RETURN_IF_ERROR(j.SetRunState(run, "undoing"));
  auto todo = [](const JournalOp& op) {
    return op.state == OpState::kDone || op.state == OpState::kCopied ||
           op.state == OpState::kPending;
  };
  auto rep = Execute(
      j, run, std::move(*ops), OpState::kUndone, todo,
      [&](JournalOp& op) { return UndoOne(places, run, op); }, progress);
  if (!rep.ok()) return rep;
  // A run with files left as they were stays "applied" (undo can be tried again).
  LUMEN_RETURN_IF_ERROR(j.SetRunState(run, rep->interrupted   ? "undoing"
                                           : rep->skipped > 0 ? "applied"
                                                              : "undone"));
  return rep;
}

}  // namespace lumen::organize
