#include "lumen/catalog/journal.h"

#include <time.h>

#include <fmt/format.h>

#include "lumen/util/profile.h"

namespace lumen {
namespace {

constexpr int kBatchOps = 512;
constexpr uint64_t kBatchNs = 200'000'000;  // commit at least every 0.2 s

int64_t Now() {
  return static_cast<int64_t>(::time(nullptr));
}

OpKind ParseKind(const std::string& s) {
  if (s == "mkdir") return OpKind::kMkdir;
  if (s == "copy") return OpKind::kCopy;
  if (s == "link") return OpKind::kLink;
  if (s == "replace-link") return OpKind::kReplaceLink;
  return OpKind::kMove;
}

OpState ParseOpState(const std::string& s) {
  if (s == "copied") return OpState::kCopied;
  if (s == "done") return OpState::kDone;
  if (s == "skipped") return OpState::kSkipped;
  if (s == "failed") return OpState::kFailed;
  if (s == "undone") return OpState::kUndone;
  return OpState::kPending;
}

void BindPath(sql::Stmt& s, int i, const std::string& p) {
  s.BindBlob(i, p.data(), p.size());
}

}  // namespace

const char* OpKindName(OpKind k) {
  switch (k) {
    case OpKind::kMkdir:
      return "mkdir";
    case OpKind::kMove:
      return "move";
    case OpKind::kCopy:
      return "copy";
    case OpKind::kLink:
      return "link";
    case OpKind::kReplaceLink:
      return "replace-link";
  }
  return "move";
}

const char* OpStateName(OpState s) {
  switch (s) {
    case OpState::kPending:
      return "pending";
    case OpState::kCopied:
      return "copied";
    case OpState::kDone:
      return "done";
    case OpState::kSkipped:
      return "skipped";
    case OpState::kFailed:
      return "failed";
    case OpState::kUndone:
      return "undone";
  }
  return "pending";
}

Journal::~Journal() {
  (void)Flush();
}

Result<int64_t> Journal::CreateRun(const std::string& command, const std::string& args_json,
                                   const std::vector<JournalOp>& ops) {
  LUMEN_RETURN_IF_ERROR(Flush());
  sqlite3* db = cat_->db();
  LUMEN_RETURN_IF_ERROR(sql::Exec(db, "BEGIN IMMEDIATE"));
  auto fail = [&](Status st) {
    (void)sql::Exec(db, "ROLLBACK");
    return st;
  };
  auto r = sql::Prepare(db,
                        "INSERT INTO journal_runs(command,args,created_at,updated_at,state) "
                        "VALUES(?,?,?,?,'planned')");
  if (!r.ok()) return fail(r.status());
  r->Bind(1, command).Bind(2, args_json).Bind(3, Now()).Bind(4, Now());
  if (Status st = r->Run(); !st.ok()) return fail(st);
  const int64_t run = sqlite3_last_insert_rowid(db);
  // An older plan that was never applied is replaced by this one (a dry run per invocation would
  // otherwise pile up in the catalog).
  for (const char* q : {"DELETE FROM journal_ops WHERE run_id IN (SELECT id FROM journal_runs "
                        "WHERE state='planned' AND id<>?)",
                        "DELETE FROM journal_runs WHERE state='planned' AND id<>?"}) {
    auto old = sql::Prepare(db, q);
    if (!old.ok()) return fail(old.status());
    old->Bind(1, run);
    if (Status st = old->Run(); !st.ok()) return fail(st);
  }
  auto s = sql::Prepare(db,
                        "INSERT INTO journal_ops(run_id,seq,kind,src,dst,size,mtime_ns,inode,"
                        "device,mode,hash,state,reason) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!s.ok()) return fail(s.status());
  for (size_t i = 0; i < ops.size(); ++i) {
    const JournalOp& op = ops[i];
    s->Bind(1, run).Bind(2, int64_t(i)).Bind(3, std::string_view(OpKindName(op.kind)));
    if (op.src.empty())
      s->BindNull(4);
    else
      BindPath(*s, 4, op.src);
    BindPath(*s, 5, op.dst);
    s->Bind(6, int64_t(op.id.size))
        .Bind(7, op.id.mtime_ns)
        .Bind(8, int64_t(op.id.inode))
        .Bind(9, int64_t(op.id.device))
        .Bind(10, int64_t(op.mode));
    unsigned char h[16];
    if (op.hash) {
      op.hash->ToBytes(h);
      s->BindBlob(11, h, 16);
    } else {
      s->BindNull(11);
    }
    s->Bind(12, std::string_view(OpStateName(op.state))).Bind(13, op.reason);
    if (Status st = s->Run(); !st.ok()) return fail(st);
  }
  if (Status st = sql::Exec(db, "COMMIT"); !st.ok()) return fail(st);
  return run;
}

Result<std::vector<JournalRun>> Journal::Runs() {
  LUMEN_RETURN_IF_ERROR(Flush());
  auto s = sql::Prepare(
      cat_->db(),
      "SELECT r.id, r.command, r.args, r.created_at, r.state, "
      "SUM(o.state='pending' OR o.state='copied'), SUM(o.state='done'), SUM(o.state='skipped'), "
      "SUM(o.state='failed'), SUM(o.state='undone'), COUNT(o.seq) "
      "FROM journal_runs r LEFT JOIN journal_ops o ON o.run_id=r.id AND o.kind<>'mkdir' "
      "GROUP BY r.id ORDER BY r.id");
  if (!s.ok()) return s.status();
  std::vector<JournalRun> out;
  Status st;
  while (s->Step(&st)) {
    JournalRun r;
    r.id = s->Int(0);
    r.command = s->Text(1);
    r.args = s->Text(2);
    r.created_at = s->Int(3);
    r.state = s->Text(4);
    r.pending = s->Int(5);
    r.done = s->Int(6);
    r.skipped = s->Int(7);
    r.failed = s->Int(8);
    r.undone = s->Int(9);
    r.files = s->Int(10);
    out.push_back(std::move(r));
  }
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<JournalOp>> Journal::LoadOps(int64_t run) {
  LUMEN_RETURN_IF_ERROR(Flush());
  auto s = sql::Prepare(cat_->db(),
                        "SELECT seq,kind,src,dst,size,mtime_ns,inode,device,mode,hash,state,"
                        "COALESCE(reason,'') FROM journal_ops WHERE run_id=? ORDER BY seq");
  if (!s.ok()) return s.status();
  s->Bind(1, run);
  std::vector<JournalOp> out;
  Status st;
  while (s->Step(&st)) {
    JournalOp op;
    op.seq = s->Int(0);
    op.kind = ParseKind(s->Text(1));
    if (!s->IsNull(2)) op.src = s->Blob(2);
    op.dst = s->Blob(3);
    op.id.size = uint64_t(s->Int(4));
    op.id.mtime_ns = s->Int(5);
    op.id.inode = uint64_t(s->Int(6));
    op.id.device = uint64_t(s->Int(7));
    op.mode = uint32_t(s->Int(8));
    if (!s->IsNull(9)) {
      std::string b = s->Blob(9);
      if (b.size() == 16)
        op.hash = Hash128::FromBytes(reinterpret_cast<const unsigned char*>(b.data()));
    }
    op.state = ParseOpState(s->Text(10));
    op.reason = s->Text(11);
    out.push_back(std::move(op));
  }
  if (!st.ok()) return st;
  return out;
}

Status Journal::SetRunState(int64_t run, const std::string& state) {
  LUMEN_RETURN_IF_ERROR(Flush());
  auto s = sql::Prepare(cat_->db(), "UPDATE journal_runs SET state=?, updated_at=? WHERE id=?");
  if (!s.ok()) return s.status();
  s->Bind(1, state).Bind(2, Now()).Bind(3, run);
  return s->Run();
}

Status Journal::Prepare() {
  if (mark_) return Status::Ok();
  auto prep = [&](sql::Stmt* out, const char* q) -> Status {
    auto s = sql::Prepare(cat_->db(), q);
    if (!s.ok()) return s.status();
    *out = std::move(s.value());
    return Status::Ok();
  };
  LUMEN_RETURN_IF_ERROR(
      prep(&mark_, "UPDATE journal_ops SET state=?, reason=? WHERE run_id=? AND seq=?"));
  LUMEN_RETURN_IF_ERROR(prep(&drop_loc_, "DELETE FROM locations WHERE path=?"));
  LUMEN_RETURN_IF_ERROR(prep(&move_loc_,
                             "UPDATE locations SET path=?1, size=?3, mtime_ns=?4, inode=?5, "
                             "device=?6, updated_at=?7 WHERE path=?2"));
  LUMEN_RETURN_IF_ERROR(
      prep(&copy_loc_,
           "INSERT OR REPLACE INTO locations(path,size,mtime_ns,inode,device,asset_id,state,"
           "reason,run_id,updated_at) SELECT ?1,?3,?4,?5,?6,asset_id,state,reason,run_id,?7 "
           "FROM locations WHERE path=?2"));
  LUMEN_RETURN_IF_ERROR(prep(&ident_loc_,
                             "UPDATE locations SET size=?2, mtime_ns=?3, inode=?4, device=?5, "
                             "updated_at=?6 WHERE path=?1"));
  return Status::Ok();
}

Status Journal::FollowLocation(const JournalOp& op, OpState state, const FileIdentity& id) {
  const bool undo = state == OpState::kUndone;
  auto with_id = [&](sql::Stmt& s, int first) -> sql::Stmt& {
    s.Bind(first, int64_t(id.size))
        .Bind(first + 1, id.mtime_ns)
        .Bind(first + 2, int64_t(id.inode))
        .Bind(first + 3, int64_t(id.device))
        .Bind(first + 4, Now());
    return s;
  };
  switch (op.kind) {
    case OpKind::kMkdir:
      return Status::Ok();
    case OpKind::kMove: {
      const std::string& from = undo ? op.dst : op.src;
      const std::string& to = undo ? op.src : op.dst;
      BindPath(drop_loc_, 1, to);
      LUMEN_RETURN_IF_ERROR(drop_loc_.Run());
      BindPath(move_loc_, 1, to);
      BindPath(move_loc_, 2, from);
      return with_id(move_loc_, 3).Run();
    }
    case OpKind::kCopy:
    case OpKind::kLink:
      if (undo) {
        BindPath(drop_loc_, 1, op.dst);
        return drop_loc_.Run();
      }
      BindPath(copy_loc_, 1, op.dst);
      BindPath(copy_loc_, 2, op.src);
      return with_id(copy_loc_, 3).Run();
    case OpKind::kReplaceLink:
      BindPath(ident_loc_, 1, op.dst);
      return with_id(ident_loc_, 2).Run();
  }
  return Status::Ok();
}

Status Journal::Mark(int64_t run, const JournalOp& op, OpState state, const std::string& reason,
                     const std::optional<FileIdentity>& new_id, bool durable) {
  LUMEN_RETURN_IF_ERROR(Prepare());
  if (!in_tx_) {
    LUMEN_RETURN_IF_ERROR(sql::Exec(cat_->db(), "BEGIN IMMEDIATE"));
    in_tx_ = true;
    batched_ = 0;
    tx_started_ns_ = MonotonicNs();
  }
  mark_.Bind(1, std::string_view(OpStateName(state))).Bind(2, reason).Bind(3, run).Bind(4, op.seq);
  LUMEN_RETURN_IF_ERROR(mark_.Run());
  if (new_id && (state == OpState::kDone || state == OpState::kUndone))
    LUMEN_RETURN_IF_ERROR(FollowLocation(op, state, *new_id));
  if (durable || ++batched_ >= kBatchOps || MonotonicNs() - tx_started_ns_ > kBatchNs)
    return Flush();
  return Status::Ok();
}

Status Journal::Flush() {
  if (!in_tx_) return Status::Ok();
  in_tx_ = false;
  Status st = sql::Exec(cat_->db(), "COMMIT");
  if (!st.ok()) (void)sql::Exec(cat_->db(), "ROLLBACK");
  return st;
}

}  // namespace lumen
