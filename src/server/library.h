// The server's views of the catalog that are built once per catalog version and then answer
// every request from memory: the folder tree and the duplicate groups. Also the checks for the
// paths a request names (jobs, organize, duplicate actions).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lumen/catalog/catalog.h"
#include "lumen/organize/duplicates.h"
#include "lumen/util/status.h"

namespace lumen::server {

// A path from a request: a string of at most 4096 bytes, absolute, without NUL bytes and
// without "." or ".." components (a path is never resolved against anything). `must_exist`:
// a folder (or, with `file_ok`, a file) that exists now. Returns the path without a trailing
// slash; errors name the field and say why.
Result<std::string> CheckedPath(const nlohmann::json& value, const std::string& field,
                                bool must_exist, bool file_ok = false);

// Every current location, in path order: folders and the files directly in them.
class Folders {
 public:
  static Result<std::shared_ptr<const Folders>> Build(Catalog& cat, int64_t version);
  int64_t version() const { return version_; }
  size_t size() const { return paths_.size(); }
  // The deepest folder that holds every file ("/" when there are none).
  const std::string& root() const { return root_; }
  // `folder` (absolute): its subfolders, each with the number of files under it at any depth,
  // and its own files [offset, offset + limit) by name, with their asset ids. NotFound when no
  // file of the catalog is under it.
  Result<nlohmann::json> List(const std::string& folder, int64_t offset, int64_t limit) const;

 private:
  std::vector<std::pair<std::string, int64_t>> paths_;  // (path, asset), sorted by path
  std::string root_ = "/";
  int64_t version_ = -1;
};

// The duplicate groups of the catalog (lumen dupes' tiers and choices), by tier.
class DupesView {
 public:
  // Files under `exclude` (the quarantine: what was already set aside) are left out of every
  // group; a group left with one file is dropped.
  static Result<std::shared_ptr<const DupesView>> Build(Catalog& cat,
                                                        const organize::DupesQuery& query,
                                                        int64_t version,
                                                        const std::string& exclude = "");
  int64_t version() const { return version_; }
  // Groups of `tier` ("" all) [offset, offset + limit), largest first, each member with what the
  // page shows; and the number of groups per tier.
  nlohmann::json Page(const std::string& tier, int64_t offset, int64_t limit) const;
  // lumen dupes' suggestion for every group of `tier` (all when empty).
  std::vector<organize::DupeVictim> Suggested(const std::string& tier, bool hardlink,
                                              size_t* not_identical) const;
  // A choice from the page: [{"path": P, "keep": K}, ...]: remove P, a member of a group that
  // also holds K, which is kept. Refused (Invalid) when a path is not a current member of a
  // group, P and K share no group, a kept file is also removed, or (hard links) P is not a
  // byte-identical copy of K.
  Result<std::vector<organize::DupeVictim>> Chosen(const nlohmann::json& remove,
                                                   bool hardlink) const;

 private:
  organize::Duplicates d_;
  std::unordered_map<std::string, size_t> item_of_path_;  // every member's paths -> item
  std::unordered_map<size_t, std::vector<uint32_t>> groups_of_item_;
  int64_t version_ = -1;
};

}  // namespace lumen::server
