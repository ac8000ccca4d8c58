// Planning file operations: `lumen organize` (photos into a templated tree, companions with them)
// and the `lumen dupes` actions (quarantine, hard links). A plan is a list of journal operations
// (catalog/journal.h); nothing is touched here except by reading.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lumen/catalog/journal.h"
#include "lumen/io/file.h"
#include "lumen/io/hash.h"
#include "lumen/io/magic.h"
#include "lumen/organize/template.h"
#include "lumen/util/status.h"

namespace lumen::organize {

// One photo, video or document to place, as the catalog knows it.
struct Source {
  std::string path;  // absolute
  FileIdentity id;   // as indexed
  Hash128 hash;
  Fields fields;  // name/stem/ext/hash8 are filled in by the planner
  MediaKind kind = MediaKind::kPhoto;
};

struct PlanOptions {
  std::string dest;             // absolute
  OpKind mode = OpKind::kMove;  // kMove, kCopy or kLink
  bool companions = true;
};

struct Plan {
  std::vector<JournalOp> ops;  // mkdirs first (parents before children), then the files
  int64_t photos = 0, companions = 0, dirs = 0, renamed = 0, in_place = 0, identical = 0,
          changed = 0;
  int64_t overlap = 0;      // the same file named again by overlapping sources: planned once
  int64_t undescribed = 0;  // skipped: the template needs a description the photo lacks
  int64_t refused = 0;      // skipped: a destination folder is a symbolic link (or no folder)
  // Folders of the plan reached through symbolic links when it was made: spelled -> real path
  // (io/beneath.h CanonicalPath). Stored with the run ("real" in its arguments), so that apply,
  // resume and undo open every folder by that path without following any link (execute.h).
  std::map<std::string, std::string> real;
};

// Companion files of a photo: same folder and same stem (ASCII case ignored) with a companion
// extension (xmp aae mov mp4 and RAW formats), or the photo's full name + ".xmp".
bool IsCompanionExtension(std::string_view ext_lower);

// Plans moving (copying, linking) `sources` to `dest`/template. Collisions: a destination that
// already holds the same file or identical content is skipped and recorded; any other name that
// is taken (on disk or earlier in the plan, ASCII case ignored) gets `_1`, `_2`, ... Companions
// take their photo's new stem. A source whose identity changed since it was indexed is skipped.
// A file named more than once (overlapping sources, the same folder twice, through a symbolic
// link or a bind mount: one directory entry, by its folder's device and inode and its name) is
// planned once, under the name that has no link in it if there is one; hard links (two entries)
// are two files. A destination folder inside `dest` that is a
// symbolic link is not followed: its photos are skipped with the reason.
Result<Plan> PlanOrganize(const std::vector<Source>& sources, const Template& tmpl,
                          const PlanOptions& opt);

// Dupes actions: each path moved under `quarantine` keeping its absolute path
// (/a/b.jpg -> quarantine/a/b.jpg), mkdirs included.
struct Doomed {
  std::string path;
  Hash128 hash;
  std::string keeper;  // for hard links: the kept file with identical content
};
Result<Plan> PlanQuarantine(const std::vector<Doomed>& files, const std::string& quarantine);
// Each file replaced by a hard link to its keeper (identical content, same filesystem only).
Result<Plan> PlanHardlinks(const std::vector<Doomed>& files);

}  // namespace lumen::organize
