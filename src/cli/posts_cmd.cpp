// lumen posts: photos grouped into candidate social-media posts (organize/posts.h), a caption
// and hashtags per post from the provider (one request with the post's photos), a JSON plan, an
// HTML preview, and with --apply a folder per post through organize's journal (undoable).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "lumen/dupes/dupes.h"
#include "lumen/image/decode.h"
#include "lumen/io/hash.h"
#include "lumen/io/output.h"
#include "lumen/llm/provider.h"
#include "lumen/organize/plan.h"
#include "lumen/organize/posts.h"
#include "lumen/pipeline/sinks.h"
#include "lumen/search/flat_index.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/temp_file.h"

namespace lumen::cli {
namespace {

using nlohmann::json;

// "2024-05-01 beach-day" or "2024-05-01 post-3": the post's folder.
std::string FolderName(const organize::Post& post, size_t index, const std::string& caption) {
  std::string date = post.start.size() >= 10 ? post.start.substr(0, 10) : "undated";
  std::string slug;
  int words = 0;
  bool sep = false;
  for (unsigned char c : caption) {
    if (std::isalnum(c)) {
      if (sep && !slug.empty()) {
        if (++words >= 4) break;
        slug += '-';
      }
      sep = false;
      slug += char(std::tolower(c));
    } else if (c < 0x80) {
      sep = true;
    }
  }
  return fmt::format("{} {}", date, slug.empty() ? fmt::format("post-{}", index + 1) : slug);
}

}  // namespace

int RunPosts(const Options& o, const char* argv0) {
  SetupLogging(o);
  auto fail = [](const std::string& m) {
    log::Error(m);
    return kExitError;
  };
  if (Status st = InitLibraries(argv0); !st.ok()) return fail(st.message());
  if (o.apply && o.into.empty()) return fail("posts --apply needs --into DEST");
  std::vector<std::string> roots;
  for (const auto& p : o.paths) {
    std::error_code ec;
    roots.push_back(std::filesystem::absolute(p, ec).lexically_normal().string());
    while (roots.back().size() > 1 && roots.back().ends_with('/')) roots.back().pop_back();
  }
  if (o.from_catalog) {
    if (!roots.empty()) return fail("give folders or --from-catalog, not both");
    roots.push_back("/");
  } else {
    if (roots.empty()) return fail("posts needs folders (or --from-catalog)");
    if (Status st = CheckInputPaths(o.paths); !st.ok()) return fail(st.message());
    const int rc = IndexFirst(o, roots, !o.model.empty(), argv0);
    if (rc != kExitOk && rc != kExitSomeFailed) return rc;
  }
  auto c = OpenCatalog(o);
  if (!c.ok()) return fail(c.status().message());
  Catalog& cat = **c;
  std::vector<Catalog::Placed> placed;
  if (Status st = cat.LoadPlaced(roots, &placed); !st.ok()) return fail(st.message());
  std::vector<dupes::Item> items;
  if (Status st = cat.LoadDupeItems(&items); !st.ok()) return fail(st.message());
  std::unordered_map<int64_t, const dupes::Item*> by_asset;
  for (const auto& it : items) by_asset[it.asset] = &it;
  // Embeddings of the model with the most of them (any model: only similarity within is used).
  std::unique_ptr<FlatIndex> vectors;
  if (auto models = cat.EmbeddingModels(); models.ok() && !models->empty()) {
    auto best = std::max_element(models->begin(), models->end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    auto dim = cat.EmbeddingDim(best->first);
    if (dim.ok() && *dim > 0) {
      vectors = std::make_unique<FlatIndex>(*dim);
      if (!cat.LoadEmbeddings(best->first, vectors.get()).ok()) vectors.reset();
    }
  }

  std::vector<organize::PostPhoto> photos;
  std::vector<const Catalog::Placed*> source;
  std::unordered_map<int64_t, bool> seen;
  for (const auto& p : placed) {
    if (p.kind != MediaKind::kPhoto || seen[p.asset]) continue;
    seen[p.asset] = true;
    organize::PostPhoto ph;
    ph.asset = p.asset;
    ph.path = p.path;
    if (p.captured_at) {
      ph.captured = *p.captured_at;
      ph.seconds = dupes::CaptureSeconds(*p.captured_at);
    }
    ph.lat = p.latitude;
    ph.lon = p.longitude;
    if (auto it = by_asset.find(p.asset); it != by_asset.end()) {
      ph.phash = it->second->phash;
      ph.has_phash = true;
      ph.sharpness = it->second->sharpness;
    }
    ph.luma = ThumbnailLuma(cat, p.asset);
    if (p.enrichment) {
      const json j = json::parse(*p.enrichment, nullptr, false);
      if (j.is_object() && j.contains("social") && j["social"].is_object()) {
        double s = 0;
        for (const char* k : {"technical", "appeal", "engagement"})
          if (j["social"].contains(k) && j["social"][k].is_number())
            s += j["social"][k].get<double>();
        ph.social = s;
      }
    }
    if (vectors)
      if (const float* v = vectors->Vector(p.asset)) ph.embedding.assign(v, v + vectors->dim());
    photos.push_back(std::move(ph));
    source.push_back(&p);
  }
  organize::PostOptions po;
  po.max_per_post = o.max_per_post;
  po.gap_hours = o.gap_hours;
  const std::vector<organize::Post> posts = organize::GroupPosts(photos, po);

  // Captions: one request per post with its chosen photos, cached per (photos, prompt).
  std::vector<std::string> captions(posts.size());
  std::vector<std::vector<std::string>> hashtags(posts.size());
  int64_t asked = 0, from_cache = 0, caption_failures = 0;
  if (o.caption) {
    llm::Endpoint e;
    llm::Limits lim;
    std::string key_var;
    if (o.llm == "local")
      return fail("posts --caption needs a remote provider (--llm openai, ...)");
    if (Status st = MakeEndpoint(o, &e, &lim, &key_var); !st.ok()) return fail(st.message());
    const std::string provider = e.kind + ":" + e.base_url;
    const std::string schema = json{
        {"type", "object"},
        {"properties",
         {{"caption", {{"type", "string"}, {"maxLength", 300}}},
          {"hashtags",
           {{"type", "array"},
            {"items", {{"type", "string"}, {"maxLength", 30}}},
            {"maxItems", 10}}}}},
        {"required", {"caption", "hashtags"}},
        {"additionalProperties",
         false}}.dump();
    auto validate = [](std::string* text) -> Status {
      auto obj = llm::ExtractJsonObject(*text);
      if (!obj.ok()) return obj.status();
      json j = json::parse(*obj, nullptr, false);
      if (!j.is_object() || !j.contains("caption") || !j["caption"].is_string() ||
          j["caption"].get<std::string>().empty())
        return Status::Corrupt("the answer has no caption");
      json out{{"caption", lumen::json::TruncateUtf8(j["caption"].get<std::string>(), 600)},
               {"hashtags", json::array()}};
      if (j.contains("hashtags") && j["hashtags"].is_array())
        for (const auto& h : j["hashtags"]) {
          if (!h.is_string() || out["hashtags"].size() >= 10) continue;
          std::string tag;
          for (unsigned char ch : h.get<std::string>())
            if (std::isalnum(ch) || ch >= 0x80 || ch == '_') tag += char(ch);
          tag = lumen::json::TruncateUtf8(tag, 30);
          if (!tag.empty()) out["hashtags"].push_back("#" + tag);
        }
      *text = lumen::json::Dump(out);
      return Status::Ok();
    };
    auto version_of = [&](const organize::Post& post) {
      std::string ids;
      for (const auto& m : post.chosen) ids += source[m.photo]->hash.Hex();
      return "post-caption@1:" + HashBytes(ids.data(), ids.size()).Hex().substr(0, 16);
    };
    std::vector<llm::Job> jobs;
    for (size_t i = 0; i < posts.size(); ++i) {
      if (posts[i].chosen.empty()) continue;
      const int64_t key = source[posts[i].chosen[0].photo]->asset;
      if (!o.no_cache) {
        auto hit = cat.GetEnrichment(key, provider, e.model, version_of(posts[i]));
        std::string stored = hit.ok() && *hit ? (*hit)->result : "";
        if (!stored.empty() && validate(&stored).ok()) {
          const json j = json::parse(stored);
          captions[i] = j["caption"];
          for (const auto& h : j["hashtags"]) hashtags[i].push_back(h);
          ++from_cache;
          continue;
        }
      }
      std::vector<std::string> paths;
      for (const auto& m : posts[i].chosen) paths.push_back(source[m.photo]->path);
      llm::Job job;
      job.id = std::to_string(i);
      job.estimated_tokens = 300.0 + double(paths.size()) * 400;
      const int edge = std::min(o.image_edge, 512);
      job.prompt = [paths, edge, &schema]() -> Result<llm::Prompt> {
        llm::Prompt pr;
        for (size_t k = 0; k < paths.size(); ++k) {
          auto img = ModelImageBase64(paths[k], edge);
          if (!img.ok()) return img.status();
          (k == 0 ? pr.image_base64 : pr.more_images.emplace_back()) = std::move(img.value());
        }
        pr.image_mime = "image/jpeg";
        pr.schema_json = schema;
        pr.text = fmt::format(
            "These {} photos are one social media post (a carousel), in posting order. Write one "
            "short engaging caption for the whole post and up to 10 hashtags. Answer with a JSON "
            "object: \"caption\", \"hashtags\".",
            paths.size());
        return pr;
      };
      jobs.push_back(std::move(job));
    }
    asked = int64_t(jobs.size());
    llm::Accounting acc =
        llm::RunJobs(e, lim, std::move(jobs), validate, [&](const llm::JobResult& r) {
          const size_t i = std::stoul(r.id);
          if (!r.ok) {
            ++caption_failures;
            log::Warn(fmt::format("post {}: no caption: {}", i + 1, r.error));
            return;
          }
          const json j = json::parse(r.text);
          captions[i] = j["caption"];
          for (const auto& h : j["hashtags"]) hashtags[i].push_back(h);
          (void)cat.PutEnrichment(source[posts[i].chosen[0].photo]->asset, provider, e.model,
                                  version_of(posts[i]), {r.text, r.latency_ms, r.tokens});
        });
    if (!acc.fatal.empty()) return fail(fmt::format("stopped: {}", acc.fatal));
  }

  json out{{"posts", json::array()}};
  std::vector<organize::Source> sources;
  std::unordered_map<std::string, int> folders_used;  // two posts never share a folder
  for (size_t i = 0; i < posts.size(); ++i) {
    const organize::Post& post = posts[i];
    std::string folder = FolderName(post, i, captions[i]);
    if (const int n = ++folders_used[folder]; n > 1) folder += fmt::format(" ({})", n);
    auto list = [&](const std::vector<organize::PostMember>& ms) {
      json a = json::array();
      for (const auto& m : ms)
        a.push_back({{"path", log::Printable(source[m.photo]->path)}, {"reason", m.reason}});
      return a;
    };
    out["posts"].push_back({{"index", i + 1},
                            {"folder", folder},
                            {"start", post.start},
                            {"end", post.end},
                            {"photos", list(post.chosen)},
                            {"dropped", list(post.dropped)},
                            {"leftover", list(post.leftover)},
                            {"caption", captions[i]},
                            {"hashtags", hashtags[i]}});
    for (const auto& m : post.chosen) {
      const Catalog::Placed& p = *source[m.photo];
      organize::Source s{p.path, p.identity, p.hash, {}};
      s.fields.values["post"] = folder;
      sources.push_back(std::move(s));
    }
  }
  // The JSON plan: stdout, or -o FILE (written whole or not at all).
  const std::string text = lumen::json::Dump(out, 2) + "\n";
  if (o.output.empty()) {
    // With --into the plan of moves is what stdout shows (one document, not two).
    if (!o.apply && o.into.empty()) std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    auto t = OpenOutput(o.output, OutputKind::kJson, o.paths);
    if (!t.ok() || !t->stream())
      return fail(t.ok() ? "cannot write " + o.output : t.status().message());
    std::fwrite(text.data(), 1, text.size(), t->stream());
    if (Status st = t->Commit(); !st.ok()) return fail(st.message());
  }
  if (!o.html.empty()) {
    std::string h =
        "<!doctype html><meta charset=utf-8><title>lumen posts</title><style>body{font:14px "
        "sans-serif;margin:2em}section{margin-bottom:2em}img{height:160px;margin:2px;"
        "border-radius:4px}.dropped img{opacity:.35;height:80px}.tags{color:#357}</style>";
    h += fmt::format("<h1>{} posts</h1>", posts.size());
    auto thumb = [&](int64_t asset, const std::string& title) {
      auto t = cat.GetThumbnail(asset);
      if (!t.ok() || !*t) return std::string();
      return fmt::format("<img title=\"{}\" src=\"data:image/webp;base64,{}\">", HtmlEscape(title),
                         Base64((*t)->webp.data(), (*t)->webp.size()));
    };
    for (size_t i = 0; i < posts.size(); ++i) {
      const auto& post = posts[i];
      h += fmt::format("<section><h2>{}</h2><p>{}</p><p class=tags>",
                       HtmlEscape(out["posts"][i]["folder"].get<std::string>()),
                       HtmlEscape(captions[i]));
      for (const auto& t : hashtags[i]) h += HtmlEscape(t) + " ";
      h += "</p><div>";
      for (const auto& m : post.chosen)
        h += thumb(source[m.photo]->asset, log::Printable(source[m.photo]->path) + ": " + m.reason);
      h += "</div><div class=dropped>";
      for (const auto& m : post.dropped)
        h += thumb(source[m.photo]->asset, log::Printable(source[m.photo]->path) + ": " + m.reason);
      h += "</div></section>";
    }
    auto t = OpenOutput(o.html, OutputKind::kHtml, o.paths);
    if (!t.ok() || !t->stream())
      return fail(t.ok() ? "cannot write " + o.html : t.status().message());
    std::fwrite(h.data(), 1, h.size(), t->stream());
    if (Status st = t->Commit(); !st.ok()) return fail(st.message());
  }
  size_t chosen = 0, dropped = 0, leftover = 0;
  for (const auto& p : posts) {
    chosen += p.chosen.size();
    dropped += p.dropped.size();
    leftover += p.leftover.size();
  }
  if (!o.quiet)
    log::Info(
        fmt::format("{} photos: {} posts, {} photos chosen, {} dropped (duplicates, blurred, "
                    "dark), {} left over{}",
                    photos.size(), posts.size(), chosen, dropped, leftover,
                    o.caption ? fmt::format("; captions: {} asked, {} from the cache, {} failed",
                                            asked, from_cache, caption_failures)
                              : std::string()));
  const int rc = o.into.empty() ? kExitOk : RunPostsAction(o, cat, sources, roots);
  return rc == kExitOk && caption_failures > 0 ? kExitSomeFailed : rc;
}

}  // namespace lumen::cli
