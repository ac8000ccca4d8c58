#include "cli_util.h"
#include "commands.h"

#include <stdio.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/catalog/catalog.h"
#include "lumen/image/decode.h"
#include "lumen/io/file.h"
#include "lumen/io/hash.h"
#include "lumen/io/scan.h"
#include "lumen/meta/exif.h"
#include "lumen/ml/image_encoder.h"
#include "lumen/ml/model_files.h"
#include "lumen/ml/registry.h"
#include "lumen/ml/text_encoder.h"
#include "lumen/pipeline/pipeline.h"
#include "lumen/pipeline/sinks.h"
#include "lumen/search/ann_index.h"
#include "lumen/search/flat_index.h"
#include "lumen/search/moments.h"
#include "lumen/tags/label_bank.h"
#include "lumen/tags/scorer.h"
#include "lumen/tags/vocabulary.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/util/progress.h"

namespace lumen::cli {

namespace {
// "00:01:23.4": a moment in a video.
std::string Timecode(double t) {
  const int64_t tenths = std::llround(std::max(0.0, t) * 10);
  return fmt::format("{:02}:{:02}:{:02}.{}", tenths / 36000, tenths / 600 % 60, tenths / 10 % 60,
                     tenths % 10);
}

}  // namespace

int RunSearch(const Options& o, bool similar) {
  SetupLogging(o);
  auto fail = [](const Status& st) {
    log::Error(st.message());
    return kExitError;
  };
  if (Status st = InitLibraries("lumen"); !st.ok()) return fail(st);
  std::string query = o.query;
  while (!query.empty() && std::isspace(static_cast<unsigned char>(query.back()))) query.pop_back();
  if (query.empty())
    return fail(Status::Invalid(similar ? "similar: give an image file or a content hash"
                                        : "search: the query is empty"));
  auto c = OpenCatalog(o, Catalog::Mode::kReadOnly);
  if (!c.ok()) return fail(c.status());
  Catalog& cat = **c;
  auto path = SearchModelPath(o, cat);
  if (!path.ok()) return fail(path.status());
  auto source = ml::OpenModel(*path);
  if (!source.ok()) return fail(source.status());
  const ml::ModelConfig cfg = (*source)->config;
  source->reset();
  const std::string model_id = EncoderId(*path, cfg.family);
  FlatIndex index(cfg.embed_dim());
  if (Status st = cat.LoadEmbeddings(model_id, &index); !st.ok()) return fail(st);
  if (index.size() == 0) {
    std::string have;
    if (auto models = cat.EmbeddingModels(); models.ok())
      for (const auto& [m, n] : *models) have += fmt::format("{}{}", have.empty() ? "" : ", ", m);
    return fail(Status::NotFound(fmt::format(
        "no image embeddings from {} in the catalog (it has: {}); index with that model first",
        model_id, have)));
  }

  // Video moments: every key frame's embedding, so that a hit in a video names its moment.
  FrameIndex frames(cfg.embed_dim());
  if (Status st = cat.LoadFrameEmbeddings(model_id, &frames.frames, &frames.at); !st.ok())
    return fail(st);

  std::vector<float> q(size_t(cfg.embed_dim()));
  int64_t exclude = -1;
  float scale = 1, bias = 0;
  bool sigmoid = false;
  if (!similar) {
    auto text = ml::TextEncoder::Load(*path, {});
    if (!text.ok()) return fail(text.status());
    if ((*text)->dim() != cfg.embed_dim())
      return fail(Status::Invalid("the text and image towers of this model disagree on the size"));
    if (Status st = (*text)->Encode({query}, q.data()); !st.ok()) return fail(st);
    scale = (*text)->logit_scale();
    bias = (*text)->logit_bias();
    sigmoid = cfg.family == ml::Family::kSiglip;
  } else {
    std::optional<Hash128> hash = Hash128::FromHex(query);
    std::error_code ec;
    const bool is_file = std::filesystem::is_regular_file(query, ec);
    if (is_file) {
      // Streamed: a video is never read into memory whole.
      auto h = HashFile(std::filesystem::canonical(query, ec).string(), nullptr);
      if (!h.ok()) return fail(h.status());
      hash = *h;
    } else if (!hash) {
      return fail(Status::NotFound(fmt::format("{}: neither a file nor a content hash", query)));
    }
    auto asset = cat.FindAsset(*hash);
    if (!asset.ok()) return fail(asset.status());
    const float* v = asset->has_value() ? index.Vector(**asset) : nullptr;
    if (v) {
      std::copy(v, v + cfg.embed_dim(), q.begin());
      exclude = **asset;
    } else if (is_file) {
      // Not in the catalog (or not embedded with this model): encode the image now.
      PipelineOptions p;
      p.thumbnails = false;
      auto enc = ml::ImageEncoder::Load(*path, {});
      if (!enc.ok()) return fail(enc.status());
      p.encoder = std::move(enc.value());
      ItemResult r = ProcessFile(AbsolutePath(query), p, nullptr, nullptr);
      if (r.outcome != ItemResult::Outcome::kNew)
        return fail(Status(r.status.code(), fmt::format("{}: {}", query, r.status.message())));
      if (r.encoder_frames == 0)
        return fail(Status::Unsupported(fmt::format("{}: not an image or a video", query)));
      // A video: the mean of its key frames, as the catalog keeps it.
      std::vector<float> all(size_t(r.encoder_frames) * q.size());
      if (Status st = p.encoder->Encode(r.encoder_input.data(), r.encoder_frames, all.data());
          !st.ok())
        return fail(st);
      double norm = 0;
      for (size_t i = 0; i < q.size(); ++i) {
        float v = 0;
        for (int f = 0; f < r.encoder_frames; ++f) v += all[size_t(f) * q.size() + i];
        q[i] = v;
        norm += double(v) * v;
      }
      for (float& v : q) v = norm > 0 ? float(v / std::sqrt(norm)) : 0.0f;
    } else {
      return fail(Status::NotFound(
          fmt::format("content hash {} has no embedding from {} in the catalog", query, model_id)));
    }
  }

  std::unordered_set<int64_t> allowed;
  Catalog::AssetFilter filter{o.folder.empty() ? "" : AbsolutePath(o.folder),
                              o.camera,
                              o.date_from,
                              o.date_to,
                              o.tag,
                              o.media};
  const bool filtered = !filter.empty();
  if (filtered) {
    auto f = cat.FilterAssets(filter);
    if (!f.ok()) return fail(f.status());
    allowed = std::move(f.value());
  }
  auto keep = [&](int64_t id) { return id != exclude && (!filtered || allowed.count(id) > 0); };
  std::vector<Hit> hits;
  std::unique_ptr<AnnIndex> ann;
  if (index.size() >= AnnThreshold()) {
    auto a = AnnIndex::Sync(BesideCatalog(cat.path(), "ann", model_id) + ".hnsw", index);
    if (a.ok()) {
      ann = std::move(a.value());
      log::Debug(fmt::format("ANN index: {} added, {} removed", ann->added(), ann->removed()));
    } else {
      // A read-only catalog folder cannot keep the index: the exact search still answers.
      log::Warn(fmt::format("{}; searching every embedding instead", a.status().message()));
    }
  }
  if (ann) {
    hits = ann->Search(index, q.data(), static_cast<size_t>(o.top), keep);
  } else {
    hits = index.Search(q.data(), static_cast<size_t>(o.top), keep);
  }
  // Photos and video moments ranked together.
  std::unordered_map<int64_t, double> moment;
  hits = MergeMoments(std::move(hits), frames, q.data(), static_cast<size_t>(o.top), keep, &moment);

  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < hits.size(); ++i) {
    auto a = cat.GetAsset(hits[i].id);
    if (!a.ok()) return fail(a.status());
    nlohmann::json j{{"rank", i + 1},
                     {"path", a->path},
                     {"content_hash", a->hash.Hex()},
                     {"cosine", hits[i].cosine},
                     {"captured_at", a->captured_at ? nlohmann::json(*a->captured_at) : nullptr},
                     {"camera", a->camera ? nlohmann::json(*a->camera) : nullptr},
                     {"media", MediaKindName(a->kind)}};
    if (auto m = moment.find(hits[i].id); m != moment.end()) {
      j["t"] = m->second;
      j["moment"] = Timecode(m->second);
    }
    // SigLIP: the model's own match probability; CLIP: its scaled logit.
    if (!similar)
      j["score"] = sigmoid ? 1.0 / (1.0 + std::exp(-(scale * hits[i].cosine + bias)))
                           : double(scale) * hits[i].cosine;
    out.push_back(std::move(j));
  }
  if (o.json_out) {
    std::puts(json::Dump(out, 2).c_str());
    return kExitOk;
  }
  if (out.empty()) std::printf("no matches\n");
  for (const auto& j : out) {
    std::string score =
        j.contains("score") ? fmt::format("score {:.4f}  ", j["score"].get<double>()) : "";
    const std::string at = j.contains("moment") ? " @ " + j["moment"].get<std::string>() : "";
    std::printf("%3d  %scos %.4f  %s%s\n", j["rank"].get<int>(), score.c_str(),
                j["cosine"].get<double>(), log::Printable(j["path"].get<std::string>()).c_str(),
                at.c_str());
  }
  return kExitOk;
}

}  // namespace lumen::cli
