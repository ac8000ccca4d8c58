// Carrying out a journaled run (catalog/journal.h): apply, resume, undo, redo.
//
// Every operation is idempotent against the filesystem: before acting, the executor looks at
// both ends (identity, and content hash where identity is not enough) and works out whether the
// operation already happened, so a run killed at any instant (kill -9, power loss of the journal's
// last batch) is finished by ApplyRun() or rolled back by UndoRun(), and either way every file
// exists exactly once with its original bytes.
//
//  move   same filesystem: rename(2) with RENAME_NOREPLACE (never overwrites). Across
//         filesystems: copy to a temporary name beside the destination, fsync, verify the hash,
//         mark "copied" durably, rename into place, then remove the source.
//  copy   the same without removing the source. link: link(2).
//  replace-link  (dupes --hardlink) verify both files' content, link the keeper to a temporary
//         name, rename it over the duplicate. Undo writes an independent copy back (mode and
//         mtime restored).
//
// No symbolic link is followed where a file is put or taken: each end of an operation is opened
// as a folder descriptor, level by level without following links (io/beneath.h), through the
// real path its folder had when the plan was made (the run's "real" argument: folders reached
// through links then; every other path as written), and the filesystem calls act relative to it
// (renameat2, linkat, openat(O_NOFOLLOW), unlinkat). So a link planted inside the destination
// (DEST/2005 -> elsewhere) before apply or resume, or where an original folder was before undo,
// fails that operation with its name; a planned file that is now a link is skipped, and a move
// that finds something else arrived puts it back.
//
// Nothing is overwritten: a destination that appeared after the plan, a source that changed
// after the plan (size/mtime/inode, then hash), or a file that changed after the run (on undo)
// is skipped with its reason. A full disk stops the run (resume later); other errors fail that
// operation only.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lumen/catalog/journal.h"
#include "lumen/util/progress.h"
#include "lumen/util/status.h"

namespace lumen::organize {

struct ExecReport {
  int64_t done = 0, skipped = 0, failed = 0, recovered = 0;
  std::vector<std::pair<std::string, std::string>> problems;  // (path, why)
  bool interrupted = false;  // a signal, or the disk filled up: the run can be resumed
  std::string stop_reason;
};

// Applies every pending operation of `run` (and, when `redo`, every undone one), in order.
Result<ExecReport> ApplyRun(Journal& journal, int64_t run, bool redo, Progress* progress);
// Reverses every done operation of `run` (and any a crash left half-done), last first.
Result<ExecReport> UndoRun(Journal& journal, int64_t run, Progress* progress);

// Test hook: LUMEN_FAULT_KILL_AT=N sends SIGKILL to this process at the Nth step of the
// executor (each filesystem call and journal mark is one step), for fault-injection tests.
void FaultPoint();

}  // namespace lumen::organize
