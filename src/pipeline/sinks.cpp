#include "lumen/pipeline/sinks.h"

#include <fmt/format.h>

#include "lumen/meta/xmp_sidecar.h"
#include "lumen/util/log.h"

#include <unordered_set>

#include "lumen/util/json.h"
#include "lumen/util/profile.h"

namespace lumen {

CatalogSink::CatalogSink(Catalog* catalog, const Producers& producers, int64_t run, int batch)
    : catalog_(catalog), producers_(producers), run_(run), batch_(batch) {}

CatalogSink::~CatalogSink() {
  if (open_) (void)catalog_->Commit();
}

Status CatalogSink::CommitIfDue(bool force) {
  if (!open_) return Status::Ok();
  uint64_t now = MonotonicNs();
  if (force || pending_ >= batch_ || now - last_commit_ns_ > 1'000'000'000ull) {
    LUMEN_RETURN_IF_ERROR(catalog_->Commit());
    open_ = false;
    pending_ = 0;
    last_commit_ns_ = now;
  }
  return Status::Ok();
}

Status CatalogSink::Accept(const ItemResult& r) {
  if (!open_) {
    LUMEN_RETURN_IF_ERROR(catalog_->Begin());
    open_ = true;
    if (last_commit_ns_ == 0) last_commit_ns_ = MonotonicNs();
  }
  ++pending_;
  switch (r.outcome) {
    case ItemResult::Outcome::kNew: {
      AssetRecord a{r.hash,   r.identity.size, r.format_name, r.width,
                    r.height, r.colorspace,    r.kind};
      auto id = catalog_->UpsertAsset(a);
      if (!id.ok()) return id.status();
      if (r.document && !producers_.document.empty())
        LUMEN_RETURN_IF_ERROR(catalog_->PutDocument(*id, producers_.document, *r.document));
      if (r.video && !producers_.video.empty()) {
        LUMEN_RETURN_IF_ERROR(catalog_->PutVideo(*id, producers_.video, *r.video));
        if (!r.frame_embeddings.empty() && !producers_.embedding.empty()) {
          std::vector<double> times;
          for (const auto& k : r.video->key_frames) times.push_back(k.time);
          const int dim = int(r.frame_embeddings.size() / std::max<size_t>(1, times.size()));
          LUMEN_RETURN_IF_ERROR(catalog_->PutFrameEmbeddings(*id, producers_.embedding, times,
                                                             r.frame_embeddings, dim));
        }
        if (r.tag_terms && !producers_.tags.empty()) {
          std::vector<std::tuple<int, std::string, float>> rows;
          for (size_t f = 0; f < r.frame_tags.size(); ++f)
            for (const auto& t : r.frame_tags[f]) rows.emplace_back(int(f), t.name, t.confidence);
          LUMEN_RETURN_IF_ERROR(catalog_->PutFrameTags(*id, producers_.tags, rows));
        }
      }
      const std::string& embedder =
          r.document ? producers_.document_embedding : producers_.embedding;
      if (!r.embedding.empty() && !embedder.empty())
        LUMEN_RETURN_IF_ERROR(catalog_->PutEmbedding(*id, embedder, r.embedding));
      if (r.thumbnail && !producers_.thumbnail.empty())
        LUMEN_RETURN_IF_ERROR(catalog_->PutThumbnail(*id, producers_.thumbnail, *r.thumbnail));
      if (r.hashes) LUMEN_RETURN_IF_ERROR(catalog_->PutHashes(*id, producers_.hashes, *r.hashes));
      if (r.metadata)
        LUMEN_RETURN_IF_ERROR(catalog_->PutMetadata(*id, producers_.metadata, *r.metadata));
      if (r.tag_terms && !producers_.tags.empty()) {
        std::vector<std::tuple<std::string, std::string, float>> rows;
        for (const auto& t : r.tags) rows.emplace_back(t.name, t.category, t.confidence);
        LUMEN_RETURN_IF_ERROR(catalog_->PutTags(*id, producers_.tags, r.tag_terms, rows));
      }
      LUMEN_RETURN_IF_ERROR(
          catalog_->UpsertLocation(r.path, r.identity, *id, LocationState::kOk, "", run_));
      break;
    }
    case ItemResult::Outcome::kKnown: {
      auto id = catalog_->FindAsset(r.hash);
      if (!id.ok()) return id.status();
      if (!id->has_value()) return Status::Internal("known asset vanished from the catalog");
      LUMEN_RETURN_IF_ERROR(
          catalog_->UpsertLocation(r.path, r.identity, **id, LocationState::kOk, "", run_));
      break;
    }
    case ItemResult::Outcome::kFailed:
      LUMEN_RETURN_IF_ERROR(catalog_->UpsertLocation(
          r.path, r.identity, std::nullopt, LocationState::kFailed, r.status.ToString(), run_));
      break;
    case ItemResult::Outcome::kSkipped:
      LUMEN_RETURN_IF_ERROR(catalog_->UpsertLocation(
          r.path, r.identity, std::nullopt, LocationState::kSkipped, r.status.message(), run_));
      break;
    case ItemResult::Outcome::kInterrupted:
      break;
  }
  return CommitIfDue(false);
}

Status CatalogSink::Finish() {
  return CommitIfDue(true);
}

Status XmpSink::Accept(const ItemResult& r) {
  if (r.tags.empty()) return Status::Ok();
  std::vector<std::string> keywords, hierarchical;
  for (const auto& t : r.tags) {
    keywords.push_back(t.name);
    // Lightroom's hierarchy separator is '|': "animal > dog" -> "animal|dog".
    std::string h;
    for (size_t at = 0; at < t.path.size();) {
      if (t.path.compare(at, 3, " > ") == 0) {
        h += '|';
        at += 3;
      } else {
        h += t.path[at++];
      }
    }
    hierarchical.push_back(std::move(h));
  }
  auto written = WriteTagsSidecar(r.path, keywords, hierarchical);
  if (!written.ok()) {
    log::Warn(written.status().message());
    return Status::Ok();
  }
  ++written_;
  return Status::Ok();
}

std::string Base64(const uint8_t* data, size_t n) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t(data[i]) << 16) | (uint32_t(data[i + 1]) << 8) | data[i + 2];
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += k[v & 63];
  }
  if (i < n) {
    uint32_t v = uint32_t(data[i]) << 16;
    if (i + 1 < n) v |= uint32_t(data[i + 1]) << 8;
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += i + 1 < n ? k[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

namespace {
template <typename T>
nlohmann::json Opt(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
std::string Hex64(uint64_t v) {
  return fmt::format("{:016x}", v);
}
}  // namespace

nlohmann::json ToRecord(const ItemResult& r) {
  nlohmann::json j;
  j["file_path"] = r.path;
  auto slash = r.path.rfind('/');
  j["file_name"] = slash == std::string::npos ? r.path : r.path.substr(slash + 1);
  j["content_hash"] = r.hash.Hex();
  j["width"] = r.width;
  j["height"] = r.height;
  j["kind"] = MediaKindName(r.kind);
  j["format"] = r.format_name.empty() ? FormatName(r.format) : r.format_name;
  j["file_size"] = r.identity.size;
  j["color_space"] = r.colorspace;
  nlohmann::json e = nlohmann::json::object();
  const PhotoMetadata m = r.metadata.value_or(PhotoMetadata{});
  e["captured_at"] = Opt(m.CapturedAtWithOffset());
  e["camera_make"] = Opt(m.camera_make);
  e["camera_model"] = Opt(m.camera_model);
  e["lens"] = Opt(m.lens);
  e["gps_latitude"] = Opt(m.gps_latitude);
  e["gps_longitude"] = Opt(m.gps_longitude);
  e["gps_altitude"] = Opt(m.gps_altitude);
  e["iso"] = Opt(m.iso);
  e["aperture"] = Opt(m.aperture);
  e["shutter_speed"] = Opt(m.ShutterSpeedText());
  e["focal_length"] = Opt(m.focal_length);
  e["orientation"] = m.orientation;
  j["exif"] = std::move(e);
  j["perceptual_hash"] =
      r.hashes ? nlohmann::json(Hex64(r.hashes->phash)) : nlohmann::json(nullptr);
  j["dhash"] = r.hashes ? nlohmann::json(Hex64(r.hashes->dhash)) : nlohmann::json(nullptr);
  if (r.thumbnail) {
    j["thumbnail"] = Base64(r.thumbnail->webp.data(), r.thumbnail->webp.size());
    j["thumbnail_width"] = r.thumbnail->width;
    j["thumbnail_height"] = r.thumbnail->height;
  } else {
    j["thumbnail"] = nullptr;
  }
  if (r.document) {
    auto opt_text = [](const std::string& v) {
      return v.empty() ? nlohmann::json() : nlohmann::json(v);
    };
    j["document"] = {{"title", opt_text(r.document->title)},
                     {"author", opt_text(r.document->author)},
                     {"created", opt_text(r.document->created)},
                     {"language", opt_text(r.document->language)},
                     {"pages", r.document->pages},
                     {"needs_render", r.document->needs_render},
                     {"truncated", r.document->truncated},
                     {"text", r.document->text}};
  }
  if (r.video) {
    const VideoRecord& v = *r.video;
    const video::VideoTrack& t = video::MainTrack(v.probe);
    j["media"] = "video";
    j["duration"] = v.probe.duration;
    nlohmann::json probe = video::ProbeJson(v.probe);
    nlohmann::json vj = probe["video"][size_t(&t - v.probe.video.data())];
    vj["container"] = v.probe.container;
    vj["bit_rate"] = v.probe.bit_rate;
    vj["interlaced"] = v.interlaced;
    vj["frames_decoded"] = v.frames;
    vj["damaged"] = v.damaged;
    vj["poster_time"] = v.poster_time;
    vj["poster_has_content"] = v.poster_content;
    vj["audio"] = probe["audio"];
    vj["subtitles"] = probe["subtitles"];
    vj["display_width"] = t.rotation % 180 ? t.height : t.width;
    vj["display_height"] = t.rotation % 180 ? t.width : t.height;
    j["video"] = std::move(vj);
    nlohmann::json shots = nlohmann::json::array();
    for (size_t i = 0; i < v.shots.size(); ++i) {
      nlohmann::json shot = {{"start", v.shots[i].start}, {"end", v.shots[i].end}};
      nlohmann::json frames = nlohmann::json::array(), tags = nlohmann::json::array();
      std::vector<const ItemResult::ItemTag*> best;
      for (size_t f = 0; f < v.key_frames.size(); ++f) {
        if (v.key_frames[f].shot != int(i)) continue;
        frames.push_back({{"t", v.key_frames[f].time},
                          {"phash", Hex64(v.key_frames[f].hashes.phash)},
                          {"dhash", Hex64(v.key_frames[f].hashes.dhash)}});
        if (f < r.frame_tags.size())
          for (const auto& t : r.frame_tags[f]) best.push_back(&t);
      }
      std::stable_sort(best.begin(), best.end(),
                       [](auto* a, auto* b) { return a->confidence > b->confidence; });
      std::unordered_set<std::string> seen;
      for (auto* t : best)
        if (seen.insert(t->name).second)
          tags.push_back({{"name", t->name}, {"confidence", t->confidence}});
      shot["key_frames"] = std::move(frames);
      shot["tags"] = std::move(tags);
      shots.push_back(std::move(shot));
    }
    j["shots"] = std::move(shots);
  } else {
    j["media"] = MediaKindName(r.kind);
  }
  if (!r.embedding.empty()) j["embedding"] = r.embedding;
  if (!r.tags.empty()) {
    nlohmann::json tags = nlohmann::json::array();
    for (const auto& t : r.tags)
      tags.push_back({{"name", t.name},
                      {"confidence", t.confidence},
                      {"category", t.category},
                      {"path", t.path}});
    j["tags"] = std::move(tags);
  }
  return j;
}

JsonSink::JsonSink(std::FILE* out, RecordFormat format, std::vector<nlohmann::json> prefix)
    : out_(out), format_(format) {
  for (auto& j : prefix) (void)Write(j);
}

Status JsonSink::Write(const nlohmann::json& j) {
  std::string s = json::Dump(j, -1);
  if (format_ == RecordFormat::kJsonArray) {
    s = (started_ ? ",\n" : "[\n") + s;
  } else {
    s += "\n";
  }
  started_ = true;
  if (std::fwrite(s.data(), 1, s.size(), out_) != s.size())
    return Status::Io("cannot write records (disk full or closed pipe?)");
  ++written_;
  return Status::Ok();
}

Status JsonSink::Accept(const ItemResult& r) {
  if (r.outcome != ItemResult::Outcome::kNew && r.outcome != ItemResult::Outcome::kKnown)
    return Status::Ok();
  return Write(ToRecord(r));
}

Status JsonSink::Finish() {
  if (format_ == RecordFormat::kJsonArray) {
    const char* end = started_ ? "\n]\n" : "[]\n";
    std::fputs(end, out_);
  }
  if (std::fflush(out_) != 0) return Status::Io("cannot write records (disk full or closed pipe?)");
  return Status::Ok();
}

}  // namespace lumen
