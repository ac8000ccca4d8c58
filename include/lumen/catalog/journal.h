// The journal of file operations (organize, dupes actions), kept in the catalog (schema v5).
//
//  journal_runs  one row per planned run: the command, its arguments (JSON: the CLI's, plus
//                "real", the plan's folders reached through symbolic links by their real paths,
//                organize/plan.h Plan::real) and a state:
//                planned -> applying -> applied -> undoing -> undone -> applying (redo) ...;
//                a plan never applied is deleted when a newer one is made.
//  journal_ops   the run's operations in order, each with what was known about its source when
//                the plan was made (size, mtime, inode, device, mode, content hash) and a state:
//                pending -> [copied ->] done | skipped | failed, and done -> undone on undo.
//
// Write-ahead: the whole plan is committed before the first file is touched, and an operation's
// new state is recorded after the filesystem change it stands for. State changes are batched into
// transactions (a crash can lose the last few), which is safe because the executor re-derives an
// operation's real state from the filesystem before acting on it (organize/execute.h). The one
// state that must be durable before the next step, "copied" (a verified copy exists and the
// source may be removed), is committed at once.
//
// Moves, copies and links also update the catalog's locations in the same transaction, so
// assets keep their tags and embeddings under their new paths.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lumen/catalog/catalog.h"
#include "lumen/io/file.h"
#include "lumen/io/hash.h"
#include "lumen/util/status.h"

namespace lumen {

enum class OpKind {
  kMkdir,        // create directory dst (undo: remove it if empty)
  kMove,         // src -> dst, never overwriting (rename, or copy + verify + unlink across devices)
  kCopy,         // src -> dst (copy, fsync, verify)
  kLink,         // dst becomes a hard link to src
  kReplaceLink,  // dst (a verified identical copy of src) is replaced by a hard link to src
};
enum class OpState { kPending, kCopied, kDone, kSkipped, kFailed, kUndone };

const char* OpKindName(OpKind k);
const char* OpStateName(OpState s);

struct JournalOp {
  int64_t seq = 0;
  OpKind kind = OpKind::kMove;
  std::string src, dst;
  FileIdentity id;  // the source's identity when planned (for kReplaceLink: dst's)
  uint32_t mode = 0;
  std::optional<Hash128> hash;  // the content both ends must have
  OpState state = OpState::kPending;
  std::string reason;
};

struct JournalRun {
  int64_t id = 0;
  std::string command;  // "organize", "dupes"
  std::string args;     // JSON object
  int64_t created_at = 0;
  std::string state;  // planned | applying | applied | undoing | undone
  // Operations per state (mkdir excluded).
  int64_t pending = 0, done = 0, skipped = 0, failed = 0, undone = 0, files = 0;
};

class Journal {
 public:
  explicit Journal(Catalog* catalog) : cat_(catalog) {}
  ~Journal();

  // Writes a new run in state "planned" with its operations (seq = position), in one
  // transaction. Returns the run id.
  Result<int64_t> CreateRun(const std::string& command, const std::string& args_json,
                            const std::vector<JournalOp>& ops);
  Result<std::vector<JournalRun>> Runs();
  Result<std::vector<JournalOp>> LoadOps(int64_t run);
  Status SetRunState(int64_t run, const std::string& state);

  // Records op's new state (and reason) and, for done/undone file operations, moves the
  // catalog's location with it. `dst_id` is the destination's identity after the operation
  // (for done) or the source's after an undo. Batched; `durable` commits at once.
  Status Mark(int64_t run, const JournalOp& op, OpState state, const std::string& reason,
              const std::optional<FileIdentity>& new_id = std::nullopt, bool durable = false);
  // Commits what Mark() batched.
  Status Flush();

 private:
  Status Prepare();
  Status FollowLocation(const JournalOp& op, OpState state, const FileIdentity& id);

  Catalog* cat_;
  bool in_tx_ = false;
  int batched_ = 0;
  uint64_t tx_started_ns_ = 0;
  sql::Stmt mark_, move_loc_, drop_loc_, copy_loc_, ident_loc_;
};

}  // namespace lumen
