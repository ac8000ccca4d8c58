#include "lumen/organize/duplicates.h"

#include <algorithm>
#include <iterator>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/dupes/video.h"
#include "lumen/search/ann_index.h"
#include "lumen/search/flat_index.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"

namespace lumen::organize {
namespace {

constexpr size_t kExactSemanticMax = 40000;  // above: neighbours from the ANN index

// Semantic candidate pairs from the embeddings of `q.model` (or of the most used model).
Status SemanticPairs(const DupesQuery& q, Catalog& cat, const std::vector<dupes::Item>& items,
                     std::vector<dupes::SimilarPair>* out) {
  auto models = cat.EmbeddingModels();
  if (!models.ok()) return models.status();
  std::string model;
  int64_t most = 0;
  for (const auto& [m, n] : *models)
    if ((!q.model.empty() && m.find(q.model) != std::string::npos) || (q.model.empty() && n > most))
      model = m, most = n;
  if (model.empty()) return Status::Ok();  // no embeddings: no semantic tier
  auto dim = cat.EmbeddingDim(model);
  if (!dim.ok()) return dim.status();
  FlatIndex index(*dim);
  LUMEN_RETURN_IF_ERROR(cat.LoadEmbeddings(model, &index));
  std::unordered_map<int64_t, uint32_t> item_of;
  for (size_t i = 0; i < items.size(); ++i) item_of[items[i].asset] = uint32_t(i);
  // Rows of the index that are items, in index order.
  std::vector<uint32_t> row_item;
  std::vector<float> rows;
  for (size_t r = 0; r < index.size(); ++r) {
    auto it = item_of.find(index.ids()[r]);
    if (it == item_of.end()) continue;
    row_item.push_back(it->second);
    const float* v = index.data() + r * size_t(index.dim());
    rows.insert(rows.end(), v, v + index.dim());
  }
  const float min_cosine = q.opt.min_cosine;
  if (row_item.size() <= kExactSemanticMax || !q.ann_path) {
    for (auto p : dupes::SimilarPairs(rows.data(), row_item.size(), index.dim(), min_cosine))
      out->push_back({row_item[p.a], row_item[p.b], p.cosine});
  } else {
    auto ann = AnnIndex::Sync(q.ann_path(model), index);
    if (!ann.ok()) return ann.status();
    for (size_t r = 0; r < index.size(); ++r) {
      auto a = item_of.find(index.ids()[r]);
      if (a == item_of.end()) continue;
      for (const Hit& h : (*ann)->Search(index, index.data() + r * size_t(index.dim()), 10)) {
        auto b = item_of.find(h.id);
        if (b != item_of.end() && a->second < b->second && h.cosine >= min_cosine)
          out->push_back({a->second, b->second, h.cosine});
      }
    }
  }
  log::Debug(fmt::format("semantic tier: {} embeddings from {}, {} pairs at cosine >= {}",
                         row_item.size(), model, out->size(), min_cosine));
  return Status::Ok();
}

}  // namespace

Result<Duplicates> FindDuplicates(Catalog& cat, const DupesQuery& q) {
  Duplicates d;
  std::vector<dupes::VideoItem> videos;
  LUMEN_RETURN_IF_ERROR(cat.LoadDupeItems(&d.items));
  LUMEN_RETURN_IF_ERROR(cat.LoadVideoDupeItems(&d.items, &videos));
  d.videos = videos.size();
  dupes::Options opt = q.opt;
  opt.semantic.clear();
  if (q.semantic && opt.min_cosine <= 1.0f)
    LUMEN_RETURN_IF_ERROR(SemanticPairs(q, cat, d.items, &opt.semantic));
  d.groups = dupes::FindGroups(d.items, opt);
  dupes::VideoOptions vo;
  vo.keep = opt.keep;
  vo.prefix = opt.prefix;
  auto vg = dupes::FindVideoGroups(videos, d.items, vo);
  d.groups.insert(d.groups.end(), std::make_move_iterator(vg.begin()),
                  std::make_move_iterator(vg.end()));
  std::stable_sort(d.groups.begin(), d.groups.end(),
                   [](const dupes::Group& a, const dupes::Group& b) {
                     return a.members.size() > b.members.size();
                   });
  if (!q.tiers.empty())
    std::erase_if(d.groups, [&](const dupes::Group& g) {
      return std::find(q.tiers.begin(), q.tiers.end(), g.tier) == q.tiers.end();
    });
  return d;
}

std::vector<DupeVictim> Victims(const Duplicates& d, bool identical_only, size_t* not_identical,
                                const std::string& tier) {
  std::vector<DupeVictim> victims;
  std::unordered_set<std::string> named;
  size_t others = 0;
  for (const auto& g : d.groups) {
    if (!tier.empty() && g.tier != tier) continue;
    for (size_t m = 1; m < g.members.size(); ++m) {
      const auto& mem = g.members[m];
      const int64_t asset = d.items[mem.item].asset;
      const bool identical = asset == d.items[g.members[0].item].asset;
      if (identical_only && !identical) {
        ++others;
        continue;
      }
      if (g.tier == "exact") {
        if (named.insert(mem.path).second) victims.push_back({mem.path, g.members[0].path, asset});
        continue;
      }
      for (const auto& path : d.items[mem.item].paths)
        if (named.insert(path).second) victims.push_back({path, g.members[0].path, asset});
    }
  }
  if (not_identical) *not_identical = others;
  return victims;
}

Result<Plan> PlanDupes(Catalog& cat, const std::vector<DupeVictim>& victims,
                       const std::string& quarantine, std::string* args_json) {
  std::vector<Doomed> doomed;
  for (const auto& v : victims) {
    auto a = cat.GetAsset(v.asset);
    if (!a.ok()) return a.status();
    doomed.push_back({v.path, a->hash, v.keeper});
  }
  nlohmann::json args;
  Result<Plan> plan = Status::Invalid("no action");
  if (!quarantine.empty()) {
    plan = PlanQuarantine(doomed, quarantine);
    args = {{"action", "move-to"}, {"dest", quarantine}};
  } else {
    plan = PlanHardlinks(doomed);
    args = {{"action", "hardlink"}};
  }
  if (args_json) *args_json = json::Dump(args);
  return plan;
}

Result<int64_t> RecordRun(Journal& journal, const std::string& command,
                          const std::string& args_json, const Plan& plan) {
  nlohmann::json stored = nlohmann::json::parse(args_json, nullptr, false);
  if (!stored.is_object()) return Status::Invalid("run arguments must be a JSON object");
  stored["real"] = nlohmann::json::object();
  for (const auto& [spelled, real] : plan.real) stored["real"][spelled] = real;
  return journal.CreateRun(command, json::Dump(stored), plan.ops);
}

}  // namespace lumen::organize
