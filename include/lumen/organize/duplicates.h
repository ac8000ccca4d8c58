// A whole catalog's duplicate groups, and the journaled runs that act on them: what `lumen dupes`
// prints and acts on, and what the duplicates page of `lumen serve` shows and applies.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lumen/catalog/catalog.h"
#include "lumen/catalog/journal.h"
#include "lumen/dupes/dupes.h"
#include "lumen/organize/plan.h"
#include "lumen/util/status.h"

namespace lumen::organize {

struct DupesQuery {
  dupes::Options opt;    // opt.semantic is filled from the catalog's embeddings
  bool semantic = true;  // the semantic tier (opt.min_cosine), where there are embeddings
  std::string model;     // whose embeddings (a substring of the id); empty: the most used
  // The ANN index file of a model's embeddings, used above 40,000 of them; unset: exact pairs.
  std::function<std::string(const std::string& model)> ann_path;
  std::vector<std::string> tiers;  // the tiers kept; empty: all
};

struct Duplicates {
  std::vector<dupes::Item> items;    // photos and videos
  std::vector<dupes::Group> groups;  // largest first
  size_t videos = 0;
};

// Photo and video groups of every tier, largest first, filtered to `q.tiers`.
Result<Duplicates> FindDuplicates(Catalog& cat, const DupesQuery& q);

// A duplicate to act on: `path` holds asset `asset`; `keeper` is the copy kept.
struct DupeVictim {
  std::string path, keeper;
  int64_t asset = 0;
};

// The files the groups would remove, each once. A near (burst, semantic) duplicate goes with
// all of its identical copies, which its group lists once. `identical_only` (hard links): only
// byte-identical copies of the keeper; the others are counted in *not_identical. `tier`: only
// its groups.
std::vector<DupeVictim> Victims(const Duplicates& d, bool identical_only, size_t* not_identical,
                                const std::string& tier = "");

// The plan that moves the victims under `quarantine` (keeping their absolute paths), or, when it
// is empty, replaces each by a hard link to its keeper; `args` receives the run's arguments.
Result<Plan> PlanDupes(Catalog& cat, const std::vector<DupeVictim>& victims,
                       const std::string& quarantine, std::string* args_json);

// Records `plan` as a planned run of `command` (args_json: a JSON object, to which the plan's
// real folder paths are added as "real"; execute.h opens folders by them).
Result<int64_t> RecordRun(Journal& journal, const std::string& command,
                          const std::string& args_json, const Plan& plan);

}  // namespace lumen::organize
