#include "lumen/organize/execute.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "lumen/organize/plan.h"
#include "lumen/util/interrupt.h"

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

std::optional<struct stat> Lstat(const std::string& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return std::nullopt;
  return st;
}
std::optional<FileIdentity> IdOf(const std::string& p) {
  auto st = Lstat(p);
  if (!st) return std::nullopt;
  return IdentityFromStat(*st);
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
bool ContentIs(const std::string& path, const std::optional<Hash128>& want) {
  if (!want) return false;
  auto h = HashFile(path);
  return h.ok() && *h == *want;
}
std::string Parent(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == 0 ? "/" : s == std::string::npos ? "." : p.substr(0, s);
}
std::string TempFor(const std::string& beside, int64_t run, const JournalOp& op) {
  return fmt::format("{}/.lumen-{}-{}.tmp", Parent(beside), run, op.seq);
}
std::string Why(const std::string& what, int err) {
  return fmt::format("{}: {}", what, strerror(err));
}

void FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

// rename(2) that never replaces `to`: 0 or an errno value.
int RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  // A filesystem without RENAME_NOREPLACE: link() refuses an existing name too.
  if (::link(from.c_str(), to.c_str()) != 0) return errno;
  ::unlink(from.c_str());
  return 0;
}

int MakeParents(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return ec ? ec.value() : 0;
}

// Copies `src` to the new file `tmp` (mode and mtime given), fsyncs it and checks that the bytes
// read and the bytes now in `tmp` both hash to `want`. 0, or an errno value (EILSEQ: content
// differs) with `*why` set; `tmp` is removed on failure.
int CopyVerified(const std::string& src, const std::string& tmp, uint32_t mode, int64_t mtime_ns,
                 const std::optional<Hash128>& want, std::string* why) {
  const int in = ::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) {
    const int e = errno;
    *why = Why(fmt::format("cannot read {}", src), e);
    return e;
  }
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) {
    const int e = errno;
    ::close(in);
    *why = Why(fmt::format("cannot write in {}", Parent(tmp)), e);
    return e;
  }
  auto fail = [&](int e, std::string w) {
    ::close(in);
    ::close(out);
    ::unlink(tmp.c_str());
    *why = std::move(w);
    return e;
  };
  Hasher h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(errno, Why(fmt::format("cannot read {}", src), errno));
    if (n == 0) break;
    h.Update(buf.data(), size_t(n));
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out, buf.data() + off, size_t(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        const int e = errno;
        return fail(e, e == ENOSPC ? fmt::format("the destination is full (writing {})", tmp)
                                   : Why(fmt::format("cannot write {}", tmp), e));
      }
      off += w;
    }
    FaultPoint();
  }
  (void)::fchmod(out, mode ? mode : 0644);
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  times[1].tv_sec = mtime_ns / 1000000000;
  times[1].tv_nsec = mtime_ns % 1000000000;
  (void)::futimens(out, times);
  if (::fsync(out) != 0) {
    const int e = errno;
    return fail(e, e == ENOSPC ? fmt::format("the destination is full (writing {})", tmp)
                               : Why(fmt::format("cannot sync {}", tmp), e));
  }
  ::close(in);
  if (::close(out) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    *why = Why(fmt::format("cannot write {}", tmp), e);
    return e;
  }
  if (want && !(h.Final() == *want)) {
    ::unlink(tmp.c_str());
    *why = fmt::format("{} changed while it was being copied", src);
    return EILSEQ;
  }
  if (want && !ContentIs(tmp, want)) {
    ::unlink(tmp.c_str());
    *why = fmt::format("the copy at {} does not read back identical", tmp);
    return EIO;
  }
  return 0;
}

Outcome CopyFailed(int err, std::string why) {
  Outcome o = Fail(std::move(why));
  o.stop = err == ENOSPC;
  return o;
}

// ---- apply ----

Outcome ApplyMkdir(const JournalOp& op) {
  if (::mkdir(op.dst.c_str(), 0777) == 0) {
    FaultPoint();
    return Done(std::nullopt);
  }
  const int e = errno;
  std::error_code ec;
  if (e == EEXIST && std::filesystem::is_directory(op.dst, ec)) return Done(std::nullopt, true);
  Outcome o = Fail(Why(fmt::format("cannot create folder {}", op.dst), e));
  o.stop = e == ENOSPC;
  return o;
}

// Where the source stands before a move/copy/link. nullopt: go ahead.
std::optional<Outcome> CheckSource(const JournalOp& op, const std::optional<struct stat>& src,
                                   const std::optional<struct stat>& dst) {
  if (!src) {
    if (dst && op.kind != OpKind::kCopy &&
        (SameFile(*dst, op.id) ||
         (uint64_t(dst->st_size) == op.id.size && ContentIs(op.dst, op.hash))))
      return Done(IdentityFromStat(*dst), true);  // moved before a crash
    if (dst && op.kind == OpKind::kCopy) return Skip(fmt::format("{} no longer exists", op.src));
    return Fail(fmt::format("{} no longer exists", op.src));
  }
  if (dst) {
    if (SameFile(*src, *dst)) return std::nullopt;  // linked already (handled by the caller)
    return Skip(fmt::format("{} exists (it appeared after the plan); nothing overwritten", op.dst));
  }
  if (!Unchanged(*src, op.id) && !ContentIs(op.src, op.hash))
    return Skip(fmt::format("{} changed after the plan", op.src));
  return std::nullopt;
}

// Copy to a temporary name, mark "copied" durably, rename into place; the caller removes the
// source for a move.
Outcome CopyIntoPlace(Journal& j, int64_t run, const JournalOp& op, const struct stat& src) {
  const std::string tmp = TempFor(op.dst, run, op);
  ::unlink(tmp.c_str());
  std::string why;
  int e =
      CopyVerified(op.src, tmp, src.st_mode & 07777, IdentityFromStat(src).mtime_ns, op.hash, &why);
  if (e == ENOENT && Lstat(op.src)) {
    if (int m = MakeParents(Parent(op.dst)); m != 0)
      return CopyFailed(m, Why(fmt::format("cannot create folder {}", Parent(op.dst)), m));
    e = CopyVerified(op.src, tmp, src.st_mode & 07777, IdentityFromStat(src).mtime_ns, op.hash,
                     &why);
  }
  if (e != 0) return CopyFailed(e, why);
  FaultPoint();
  if (Status st = j.Mark(run, op, OpState::kCopied, "", std::nullopt, true); !st.ok()) {
    ::unlink(tmp.c_str());
    return Fail(st.message());
  }
  FaultPoint();
  if (int r = RenameNoReplace(tmp, op.dst); r != 0) {
    ::unlink(tmp.c_str());
    if (r == EEXIST) return Skip(fmt::format("{} exists; nothing overwritten", op.dst));
    return Fail(Why(fmt::format("cannot create {}", op.dst), r));
  }
  FsyncDir(Parent(op.dst));
  FaultPoint();
  return Done(IdOf(op.dst));
}

// The source of a finished copy may go: only if it is still the planned file.
Outcome RemoveMovedSource(const JournalOp& op, Outcome o) {
  auto src = Lstat(op.src);
  if (!src) return o;
  if (!Unchanged(*src, op.id) && !ContentIs(op.src, op.hash)) {
    o.reason = fmt::format("{} changed after it was copied; both kept", op.src);
    o.problem = true;
    return o;
  }
  if (::unlink(op.src.c_str()) != 0) {
    o.reason = Why(fmt::format("copied, but cannot remove {}", op.src), errno);
    o.problem = true;
    return o;
  }
  FsyncDir(Parent(op.src));
  FaultPoint();
  return o;
}

Outcome ApplyMoveOrCopy(Journal& j, int64_t run, const JournalOp& op) {
  const bool move = op.kind == OpKind::kMove;
  const std::string tmp = TempFor(op.dst, run, op);
  auto src = Lstat(op.src);
  auto dst = Lstat(op.dst);
  if (op.state == OpState::kCopied) {
    // A verified copy exists at tmp or already at dst.
    if (!dst && Lstat(tmp)) {
      if (int r = RenameNoReplace(tmp, op.dst); r != 0) {
        ::unlink(tmp.c_str());
        return Fail(Why(fmt::format("cannot create {}", op.dst), r));
      }
      FsyncDir(Parent(op.dst));
      FaultPoint();
      dst = Lstat(op.dst);
    }
    if (dst) {
      Outcome o = Done(IdentityFromStat(*dst), true);
      return move ? RemoveMovedSource(op, o) : o;
    }
  }
  ::unlink(tmp.c_str());  // a stale partial copy
  if (auto o = CheckSource(op, src, dst)) return *o;
  if (dst) {  // the source is already linked at dst: a rename fallback stopped half-way
    if (move) ::unlink(op.src.c_str());
    return Done(IdentityFromStat(*dst), true);
  }
  if (!move) return CopyIntoPlace(j, run, op, *src);
  int r = RenameNoReplace(op.src, op.dst);
  if (r == ENOENT && Lstat(op.src)) {
    if (int m = MakeParents(Parent(op.dst)); m != 0)
      return CopyFailed(m, Why(fmt::format("cannot create folder {}", Parent(op.dst)), m));
    r = RenameNoReplace(op.src, op.dst);
  }
  if (r == 0) {
    FaultPoint();
    return Done(IdentityFromStat(*src));
  }
  if (r == EEXIST) return Skip(fmt::format("{} exists; nothing overwritten", op.dst));
  if (r != EXDEV) return Fail(Why(fmt::format("cannot move {} to {}", op.src, op.dst), r));
  Outcome o = CopyIntoPlace(j, run, op, *src);
  return o.state == OpState::kDone ? RemoveMovedSource(op, o) : o;
}

Outcome ApplyLink(const JournalOp& op) {
  auto src = Lstat(op.src);
  auto dst = Lstat(op.dst);
  if (auto o = CheckSource(op, src, dst)) return *o;
  if (dst) return Done(IdentityFromStat(*dst), true);
  int r = ::link(op.src.c_str(), op.dst.c_str()) == 0 ? 0 : errno;
  if (r == ENOENT && Lstat(op.src)) {
    if (int m = MakeParents(Parent(op.dst)); m != 0)
      return Fail(Why(fmt::format("cannot create folder {}", Parent(op.dst)), m));
    r = ::link(op.src.c_str(), op.dst.c_str()) == 0 ? 0 : errno;
  }
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

Outcome ApplyReplaceLink(int64_t run, const JournalOp& op) {
  auto keep = Lstat(op.src);
  auto dup = Lstat(op.dst);
  const std::string tmp = TempFor(op.dst, run, op);
  if (!keep) return Fail(fmt::format("the kept copy {} no longer exists", op.src));
  if (!dup) return Fail(fmt::format("{} no longer exists", op.dst));
  if (SameFile(*keep, *dup)) {
    ::unlink(tmp.c_str());
    return Done(IdentityFromStat(*dup), true);
  }
  ::unlink(tmp.c_str());
  if (!Unchanged(*dup, op.id) && !ContentIs(op.dst, op.hash))
    return Skip(fmt::format("{} changed after the plan", op.dst));
  if (!ContentIs(op.src, op.hash) || !ContentIs(op.dst, op.hash))
    return Skip(fmt::format("{} and {} no longer have identical content", op.dst, op.src));
  if (::link(op.src.c_str(), tmp.c_str()) != 0) {
    const int e = errno;
    if (e == EXDEV) return Fail(fmt::format("{} is on another filesystem than {}", op.dst, op.src));
    return Fail(Why(fmt::format("cannot link {} in {}", op.src, Parent(op.dst)), e));
  }
  FaultPoint();
  if (::rename(tmp.c_str(), op.dst.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return Fail(Why(fmt::format("cannot replace {}", op.dst), e));
  }
  FaultPoint();
  return Done(IdOf(op.dst));
}

Outcome ApplyOne(Journal& j, int64_t run, const JournalOp& op) {
  switch (op.kind) {
    case OpKind::kMkdir:
      return ApplyMkdir(op);
    case OpKind::kMove:
    case OpKind::kCopy:
      return ApplyMoveOrCopy(j, run, op);
    case OpKind::kLink:
      return ApplyLink(op);
    case OpKind::kReplaceLink:
      return ApplyReplaceLink(run, op);
  }
  return Fail("unknown operation");
}

// ---- undo ----

bool NeverApplied(const JournalOp& op) {
  return op.state == OpState::kPending;
}

Outcome UndoMove(int64_t run, const JournalOp& op) {
  ::unlink(TempFor(op.dst, run, op).c_str());
  const std::string back_tmp = TempFor(op.src, run, op) + "u";
  ::unlink(back_tmp.c_str());
  auto src = Lstat(op.src);
  auto dst = Lstat(op.dst);
  if (!dst) {
    if (src && (SameFile(*src, op.id) || ContentIs(op.src, op.hash)))
      return Undone(IdentityFromStat(*src), NeverApplied(op) ? "not applied" : "");
    if (NeverApplied(op)) return Undone(std::nullopt, "not applied");
    return Keep(op, fmt::format("{} is no longer there; {} cannot be restored", op.dst, op.src));
  }
  if (src) {
    if (SameFile(*src, *dst)) {  // a rename fallback stopped half-way
      ::unlink(op.dst.c_str());
      return Undone(IdentityFromStat(*src));
    }
    if (NeverApplied(op)) return Undone(std::nullopt, "not applied");  // dst is not ours
    if (ContentIs(op.src, op.hash) && ContentIs(op.dst, op.hash)) {
      // A copy back (or a cross-filesystem move) stopped before removing the other end.
      ::unlink(op.dst.c_str());
      FaultPoint();
      return Undone(IdentityFromStat(*src));
    }
    return Keep(op,
                fmt::format("{} is taken by another file; {} left where it is", op.src, op.dst));
  }
  if (NeverApplied(op) && !SameFile(*dst, op.id))
    return Undone(std::nullopt, "not applied");  // (a pending op whose dst is someone else's)
  const bool same = SameFile(*dst, op.id) && uint64_t(dst->st_size) == op.id.size &&
                    IdentityFromStat(*dst).mtime_ns == op.id.mtime_ns;
  if (!same && !ContentIs(op.dst, op.hash))
    return Keep(
        op, fmt::format("{} changed after the run; not moved back (nothing overwritten)", op.dst));
  int r = RenameNoReplace(op.dst, op.src);
  if (r == ENOENT) {
    if (int m = MakeParents(Parent(op.src)); m != 0)
      return Keep(op, Why(fmt::format("cannot recreate folder {}", Parent(op.src)), m));
    r = RenameNoReplace(op.dst, op.src);
  }
  if (r == 0) {
    FaultPoint();
    return Undone(IdOf(op.src));
  }
  if (r == EEXIST) return Keep(op, fmt::format("{} is taken by another file", op.src));
  if (r != EXDEV) return Keep(op, Why(fmt::format("cannot move {} back", op.dst), r));
  std::string why;
  if (int e = CopyVerified(op.dst, back_tmp, dst->st_mode & 07777, IdentityFromStat(*dst).mtime_ns,
                           op.hash, &why);
      e != 0) {
    Outcome o = Keep(op, why);
    o.stop = e == ENOSPC;
    return o;
  }
  FaultPoint();
  if (int e = RenameNoReplace(back_tmp, op.src); e != 0) {
    ::unlink(back_tmp.c_str());
    return Keep(op, Why(fmt::format("cannot restore {}", op.src), e));
  }
  FsyncDir(Parent(op.src));
  FaultPoint();
  ::unlink(op.dst.c_str());
  FaultPoint();
  return Undone(IdOf(op.src));
}

Outcome UndoCopyOrLink(int64_t run, const JournalOp& op) {
  ::unlink(TempFor(op.dst, run, op).c_str());
  auto dst = Lstat(op.dst);
  if (!dst) return Undone(std::nullopt, NeverApplied(op) ? "not applied" : "");
  auto src = Lstat(op.src);
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
    if (!ContentIs(op.dst, op.hash))
      return Keep(op, fmt::format("{} changed after the run; kept", op.dst));
    if (!src || !ContentIs(op.src, op.hash))
      return Keep(op, fmt::format("the original {} is gone or changed; the copy {} is kept", op.src,
                                  op.dst));
  }
  if (::unlink(op.dst.c_str()) != 0)
    return Keep(op, Why(fmt::format("cannot remove {}", op.dst), errno));
  FaultPoint();
  return Undone(std::nullopt);
}

Outcome UndoReplaceLink(int64_t run, const JournalOp& op) {
  const std::string tmp = TempFor(op.dst, run, op);
  ::unlink(tmp.c_str());
  auto keep = Lstat(op.src);
  auto dup = Lstat(op.dst);
  if (!dup) return Keep(op, fmt::format("{} no longer exists", op.dst));
  if (!keep || !SameFile(*keep, *dup)) {
    if (ContentIs(op.dst, op.hash)) return Undone(IdentityFromStat(*dup));  // independent again
    return Keep(op, fmt::format("{} changed after the run; kept", op.dst));
  }
  std::string why;
  if (int e = CopyVerified(op.src, tmp, op.mode, op.id.mtime_ns, op.hash, &why); e != 0) {
    Outcome o = Keep(op, why);
    o.stop = e == ENOSPC;
    return o;
  }
  FaultPoint();
  if (::rename(tmp.c_str(), op.dst.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return Keep(op, Why(fmt::format("cannot restore {}", op.dst), e));
  }
  FaultPoint();
  return Undone(IdOf(op.dst));
}

Outcome UndoOne(int64_t run, const JournalOp& op) {
  switch (op.kind) {
    case OpKind::kMkdir: {
      if (::rmdir(op.dst.c_str()) == 0) FaultPoint();
      return Undone(std::nullopt);  // a folder that is not empty stays
    }
    case OpKind::kMove:
      return UndoMove(run, op);
    case OpKind::kCopy:
    case OpKind::kLink:
      return UndoCopyOrLink(run, op);
    case OpKind::kReplaceLink:
      return UndoReplaceLink(run, op);
  }
  return Keep(op, "unknown operation");
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
  LUMEN_RETURN_IF_ERROR(j.SetRunState(run, "applying"));
  auto todo = [redo](const JournalOp& op) {
    return op.state == OpState::kPending || op.state == OpState::kCopied ||
           (redo && op.state == OpState::kUndone);
  };
  auto rep = Execute(
      j, run, std::move(*ops), OpState::kDone, todo,
      [&](JournalOp& op) {
        if (op.state == OpState::kUndone) op.state = OpState::kPending;
        return ApplyOne(j, run, op);
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
  LUMEN_RETURN_IF_ERROR(j.SetRunState(run, "undoing"));
  auto todo = [](const JournalOp& op) {
    return op.state == OpState::kDone || op.state == OpState::kCopied ||
           op.state == OpState::kPending;
  };
  auto rep = Execute(
      j, run, std::move(*ops), OpState::kUndone, todo,
      [&](JournalOp& op) { return UndoOne(run, op); }, progress);
  if (!rep.ok()) return rep;
  // A run with files left as they were stays "applied" (undo can be tried again).
  LUMEN_RETURN_IF_ERROR(j.SetRunState(run, rep->interrupted   ? "undoing"
                                           : rep->skipped > 0 ? "applied"
                                                              : "undone"));
  return rep;
}

}  // namespace lumen::organize
