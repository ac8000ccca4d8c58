// lumen describe: descriptions, OCR text and suggested file/folder names from a vision-language
// model behind a remote API, under the throughput control of llm/throttle.h, cached per
// (content hash, provider, model, prompt version) in the catalog.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "config.h"
#include "lumen/doc/document.h"
#include "lumen/dupes/dupes.h"
#include "lumen/image/decode.h"
#include "lumen/image/derive.h"
#include "lumen/io/file.h"
#include "lumen/io/hash.h"
#include "lumen/io/output.h"
#include "lumen/llm/local_vlm.h"
#include "lumen/llm/provider.h"
#include "lumen/meta/exif.h"
#include "lumen/pipeline/sinks.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/video/analyze.h"

namespace lumen::cli {
namespace {

using nlohmann::json;

// "A Dog on the Beach!" -> "a-dog-on-the-beach", at most `words` words.
std::string Slug(const std::string& s, int words) {
  std::string out;
  int n = 0;
  bool sep = false;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c >= 0x80) {
      if (sep && !out.empty()) {
        if (++n >= words) break;
        out += '-';
      }
      sep = false;
      out += char(std::tolower(c));
    } else {
      sep = true;
    }
  }
  return lumen::json::TruncateUtf8(out, 80);  // model text: never cut inside a UTF-8 sequence
}

// The stored and printed size of each answer field (bytes, cut on a UTF-8 boundary): the schema
// asks for less, but a model or server need not obey it.
constexpr size_t kMaxDescription = 2000, kMaxOcr = 2000, kMaxCaption = 600, kMaxLabel = 100;

// The last (about) `n` bytes of `s`, starting on a UTF-8 character boundary.
std::string Tail(const std::string& s, size_t n) {
  size_t at = s.size() > n ? s.size() - n : 0;
  while (at < s.size() && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) ++at;
  return s.substr(at);
}

std::string Dump(const json& j) {
  return lumen::json::Dump(j);
}

// What is asked of the model: the answer's fields, its JSON schema (and grammar in process), the
// prompt, the validation, and the prompt version that keys the cache.

// The string field `k` of an answer, cut to `max` bytes (valid UTF-8); "" when absent.
std::string StringField(const json& o, const char* k, size_t max = std::string::npos) {
  return o.contains(k) && o[k].is_string() ? lumen::json::TruncateUtf8(o[k].get<std::string>(), max)
                                           : std::string();
}

struct Task {
  std::vector<std::string> taxonomy;  // allowed folder names (empty: free)
  bool social = false;
  std::string version = "describe@1";
  std::string schema;

  std::string Prompt(const std::vector<std::string>& tags) const {
    std::string t =
        "Describe this photo for a personal photo library. Answer with a JSON object: "
        "\"description\": 1 to 3 sentences about what the photo shows; \"ocr_text\": any "
        "legible text in the photo, or an empty string; \"file_name\": a short descriptive file "
        "name of at most 5 words; \"folder_name\": ";
    if (taxonomy.empty()) {
      t += "a category of at most 2 words.";
    } else {
      t += "the one of these folders that fits best:";
      for (size_t i = 0; i < taxonomy.size(); ++i) t += (i ? ", " : " ") + taxonomy[i];
      t += ".";
    }
    if (social)
      t += " \"social\": for posting it on social media, \"technical\", \"appeal\" and "
           "\"engagement\" scores from 1 to 10, a \"category\", a \"mood\", a short "
           "\"caption\" and up to 5 \"hashtags\".";
    if (!tags.empty()) {
      t += " Tags detected in the photo:";
      for (size_t i = 0; i < tags.size() && i < 10; ++i) t += (i ? ", " : " ") + tags[i];
      t += ".";
    }
    return t;
  }

  // Checks the model's answer and rewrites it as the normalised JSON object.
  Status Validate(std::string* text) const {
    auto obj = llm::ExtractJsonObject(*text);
    if (!obj.ok()) return obj.status();
    json j = json::parse(*obj, nullptr, false);
    if (!j.is_object()) return Status::Corrupt("no JSON object in the answer");
    json out{{"description", StringField(j, "description", kMaxDescription)},
             {"ocr_text", StringField(j, "ocr_text", kMaxOcr)},
             {"file_name", Slug(StringField(j, "file_name"), 5)},
             {"folder_name", Slug(StringField(j, "folder_name"), 2)}};
    if (out["description"].get<std::string>().empty())
      return Status::Corrupt("the answer has no description");
    if (!taxonomy.empty()) {
      const std::string got = Slug(StringField(j, "folder_name"), 10);
      auto it = std::find_if(taxonomy.begin(), taxonomy.end(),
                             [&](const std::string& t) { return Slug(t, 10) == got; });
      if (it == taxonomy.end())
        return Status::Corrupt(
            fmt::format("folder \"{}\" is not in the taxonomy", StringField(j, "folder_name", 80)));
      out["folder_name"] = *it;
    }
    if (social) {
      const json s = j.value("social", json::object());
      if (!s.is_object()) return Status::Corrupt("the answer has no social object");
      json so;
      for (const char* k : {"technical", "appeal", "engagement"}) {
        if (!s.contains(k) || !s[k].is_number())
          return Status::Corrupt(fmt::format("social.{} is not a number", k));
        so[k] = int(std::lround(std::clamp(s[k].get<double>(), 1.0, 10.0)));
      }
      so["category"] = StringField(s, "category", kMaxLabel);
      so["mood"] = StringField(s, "mood", kMaxLabel);
      so["caption"] = StringField(s, "caption", kMaxCaption);
      so["hashtags"] = json::array();
      if (s.contains("hashtags") && s["hashtags"].is_array())
        for (const auto& h : s["hashtags"])
          if (h.is_string() && so["hashtags"].size() < 5) {
            std::string tag = Slug(h.get<std::string>(), 4);
            tag.erase(std::remove(tag.begin(), tag.end(), '-'), tag.end());
            if (!tag.empty()) so["hashtags"].push_back("#" + tag);
          }
      out["social"] = so;
    }
    *text = Dump(out);
    return Status::Ok();
  }
};

// What is asked about a document: a summary, names and a category from its text (or, for a
// scanned PDF, from its first page as an image), with keywords; the same providers, cache and
// throttle as photos, its own schema and prompt version.
struct DocumentTask {
  std::vector<std::string> taxonomy;
  std::string version = "describe-document@1";
  std::string schema;
  size_t chars = 2000;  // of the document's text put in the prompt

  std::string Prompt(const DocumentRecord& d, bool as_image) const {
    std::string t = as_image
                        ? "This is the first page of a scanned document in a personal library. "
                        : "Here is the start of a document from a personal library. ";
    t += "Answer with a JSON object: \"description\": a summary of the document in 1 to 3 "
         "sentences; \"file_name\": a short descriptive file name of at most 5 words; "
         "\"folder_name\": ";
    if (taxonomy.empty()) {
      t += "a folder for it of at most 2 words;";
    } else {
      t += "the one of these folders that fits best:";
      for (size_t i = 0; i < taxonomy.size(); ++i) t += (i ? ", " : " ") + taxonomy[i];
      t += ";";
    }
    t += " \"category\": the kind of document (invoice, letter, report, manual, ...); "
         "\"keywords\": up to 8 keywords.";
    if (!d.title.empty()) t += "\nTitle: " + d.title;
    if (!d.author.empty()) t += "\nAuthor: " + d.author;
    if (!d.created.empty()) t += "\nCreated: " + d.created;
    if (d.pages > 0) t += fmt::format("\nPages: {}", d.pages);
    if (!as_image) {
      std::string body = lumen::json::TruncateUtf8(d.text, chars);
      t += "\nText:\n" + body;
      if (body.size() < d.text.size() || d.truncated) t += "\n[...]";
    }
    return t;
  }

  Status Validate(std::string* text) const {
    auto obj = llm::ExtractJsonObject(*text);
    if (!obj.ok()) return obj.status();
    json j = json::parse(*obj, nullptr, false);
    if (!j.is_object()) return Status::Corrupt("no JSON object in the answer");
    json out{{"kind", "document"},
             {"description", StringField(j, "description", kMaxDescription)},
             {"ocr_text", ""},
             {"file_name", Slug(StringField(j, "file_name"), 5)},
             {"folder_name", Slug(StringField(j, "folder_name"), 2)},
             {"category", StringField(j, "category", kMaxLabel)},
             {"keywords", json::array()}};
    if (out["description"].get<std::string>().empty())
      return Status::Corrupt("the answer has no description");
    if (!taxonomy.empty()) {
      const std::string got = Slug(StringField(j, "folder_name"), 10);
      auto it = std::find_if(taxonomy.begin(), taxonomy.end(),
                             [&](const std::string& t) { return Slug(t, 10) == got; });
      if (it == taxonomy.end())
        return Status::Corrupt(
            fmt::format("folder \"{}\" is not in the taxonomy", StringField(j, "folder_name", 80)));
      out["folder_name"] = *it;
    }
    if (j.contains("keywords") && j["keywords"].is_array())
      for (const auto& k : j["keywords"])
        if (k.is_string() && out["keywords"].size() < 8) {
          std::string w = lumen::json::TruncateUtf8(k.get<std::string>(), kMaxLabel);
          if (!w.empty()) out["keywords"].push_back(std::move(w));
        }
    *text = Dump(out);
    return Status::Ok();
  }
};

DocumentTask MakeDocumentTask(const Task& photo, const Options& o) {
  DocumentTask t;
  t.taxonomy = photo.taxonomy;
  t.chars = size_t(std::max(200, o.document_chars));
  if (!t.taxonomy.empty()) {
    std::string all;
    for (const auto& f : t.taxonomy) all += f + "\n";
    t.version += "+tax:" + HashBytes(all.data(), all.size()).Hex().substr(0, 8);
  }
  t.version += fmt::format("+chars:{}", t.chars);
  json folder{{"type", "string"}, {"maxLength", 40}};
  if (!t.taxonomy.empty()) folder = {{"type", "string"}, {"enum", t.taxonomy}};
  json name{{"type", "string"}, {"maxLength", 60}};
  json props{
      {"description", {{"type", "string"}, {"maxLength", 400}}},
      {"file_name", name},
      {"folder_name", folder},
      {"category", {{"type", "string"}, {"maxLength", 40}}},
      {"keywords",
       {{"type", "array"}, {"items", {{"type", "string"}, {"maxLength", 30}}}, {"maxItems", 8}}}};
  t.schema = json{
      {"type", "object"},
      {"properties", props},
      {"required", {"description", "file_name", "folder_name", "category", "keywords"}},
      {"additionalProperties",
       false}}.dump(-1, ' ', false, json::error_handler_t::replace);
  return t;
}

// The first page of a scanned PDF as the model sees it: RGB, long edge `edge`.
Result<Image> DocumentPage(const std::string& path, int edge) {
  auto f = OpenFile(path);
  if (!f.ok()) return f.status();
  std::vector<uint8_t> bytes;
  LUMEN_RETURN_IF_ERROR(ReadAll(*f, &bytes));
  return doc::RenderPdfPage(bytes.data(), bytes.size(), 0, edge);
}

// Several photos in one request (--images-per-request): one answer object per photo in a
// "photos" array, each naming its photo by index, each checked as a single answer would be.
struct BatchTask {
  const Task* photo = nullptr;

  std::string Prompt(const std::vector<std::vector<std::string>>& tags) const {
    const size_t n = tags.size();
    std::string t = fmt::format(
        "Here are {} photos from a personal photo library, numbered 1 to {} in the order given. "
        "Answer with a JSON object {{\"photos\": [...]}} holding one object per photo, in the "
        "same order, each with \"index\" (its number) and these fields. ",
        n, n);
    // The single-photo instructions, from their field list on.
    const std::string one = photo->Prompt({});
    const size_t at = one.find("\"description\"");
    t += at == std::string::npos ? one : one.substr(at);
    for (size_t i = 0; i < n; ++i)
      if (!tags[i].empty()) {
        t += fmt::format(" Tags detected in photo {}:", i + 1);
        for (size_t k = 0; k < tags[i].size() && k < 10; ++k) t += (k ? ", " : " ") + tags[i][k];
        t += ".";
      }
    return t;
  }

  std::string Schema(size_t n) const {
    json item = json::parse(photo->schema);
    item["properties"]["index"] = {{"type", "integer"}, {"minimum", 1}, {"maximum", n}};
    item["required"].push_back("index");
    return json{
        {"type", "object"},
        {"properties",
         {{"photos", {{"type", "array"}, {"items", item}, {"minItems", n}, {"maxItems", n}}}}},
        {"required", {"photos"}},
        {"additionalProperties", false}}
        .dump(-1, ' ', false, json::error_handler_t::replace);
  }

  // The answer rewritten as {"photos": [answer of photo 1, ...]}, each validated.
  Status Validate(size_t n, std::string* text) const {
    auto obj = llm::ExtractJsonObject(*text);
    if (!obj.ok()) return obj.status();
    json j = json::parse(*obj, nullptr, false);
    if (!j.is_object() || !j.contains("photos") || !j["photos"].is_array())
      return Status::Corrupt("the answer has no \"photos\" array");
    std::vector<std::optional<std::string>> by_index(n);
    for (const json& item : j["photos"]) {
      if (!item.is_object() || !item.contains("index") || !item["index"].is_number_integer())
        return Status::Corrupt("an entry of \"photos\" has no index");
      const int64_t i = item["index"].get<int64_t>();
      if (i < 1 || i > int64_t(n))
        return Status::Corrupt(fmt::format("photo index {} is not 1 to {}", i, n));
      if (by_index[size_t(i - 1)])
        return Status::Corrupt(fmt::format("photo {} answered twice", i));
      std::string one = Dump(item);
      if (Status st = photo->Validate(&one); !st.ok())
        return Status::Corrupt(fmt::format("photo {}: {}", i, st.message()));
      by_index[size_t(i - 1)] = std::move(one);
    }
    json out{{"photos", json::array()}};
    for (size_t i = 0; i < n; ++i) {
      if (!by_index[i]) return Status::Corrupt(fmt::format("the answer has no photo {}", i + 1));
      out["photos"].push_back(json::parse(*by_index[i]));
    }
    *text = Dump(out);
    return Status::Ok();
  }
};

Result<Task> MakeTask(const Options& o) {
  Task t;
  t.social = o.social;
  t.taxonomy = o.taxonomy;
  if (!o.taxonomy_file.empty()) {
    std::ifstream in(o.taxonomy_file);
    if (!in) return Status::Io(fmt::format("cannot read {}", o.taxonomy_file));
    std::string line;
    while (std::getline(in, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty() && line[0] != '#') t.taxonomy.push_back(line);
    }
    if (t.taxonomy.empty())
      return Status::Invalid(fmt::format("{}: no folder names", o.taxonomy_file));
  }
  json folder{{"type", "string"}, {"maxLength", 40}};
  if (!t.taxonomy.empty()) {
    folder = {{"type", "string"}, {"enum", t.taxonomy}};
    std::string all;
    for (const auto& f : t.taxonomy) all += f + "\n";
    t.version += "+tax:" + HashBytes(all.data(), all.size()).Hex().substr(0, 8);
  }
  json props{{"description", {{"type", "string"}, {"maxLength", 300}}},
             {"ocr_text", {{"type", "string"}, {"maxLength", 200}}},
             {"file_name", {{"type", "string"}, {"maxLength", 60}}},
             {"folder_name", folder}};
  json required = {"description", "ocr_text", "file_name", "folder_name"};
  if (t.social) {
    t.version += "+social";
    json score{{"type", "integer"}, {"minimum", 1}, {"maximum", 10}};
    props["social"] = {
        {"type", "object"},
        {"properties",
         {{"technical", score},
          {"appeal", score},
          {"engagement", score},
          {"category", {{"type", "string"}, {"maxLength", 40}}},
          {"mood", {{"type", "string"}, {"maxLength", 40}}},
          {"caption", {{"type", "string"}, {"maxLength", 200}}},
          {"hashtags",
           {{"type", "array"},
            {"items", {{"type", "string"}, {"maxLength", 30}}},
            {"maxItems", 5}}}}},
        {"required",
         {"technical", "appeal", "engagement", "category", "mood", "caption", "hashtags"}},
        {"additionalProperties", false}};
    required.push_back("social");
  }
  t.schema = json{
      {"type", "object"},
      {"properties", props},
      {"required", required},
      {"additionalProperties",
       false}}.dump(-1, ' ', false, json::error_handler_t::replace);
  return t;
}

// The reduced decode (shrink-on-load, at least `edge` on the long side), upright.
Result<Image> ModelRgb(const std::string& path, int edge) {
  auto f = OpenFile(path);
  if (!f.ok()) return f.status();
  std::vector<uint8_t> bytes;
  LUMEN_RETURN_IF_ERROR(ReadAll(*f, &bytes));
  DecodeTarget target;
  target.min_long_edge = edge;
  target.min_short_edge = 0;
  auto d = DecodeReduced(bytes.data(), bytes.size(), f->format(), target, {});
  if (!d.ok()) return d.status();
  int orientation = 1;
  if (auto m = ReadMetadata(bytes.data(), bytes.size()); m.ok() && m->orientation)
    orientation = m->orientation;
  Image up = ApplyOrientation(d->rgb, orientation);
  const int longest = std::max(up.width, up.height);
  if (longest > edge) {
    const double s = double(edge) / longest;
    up = Resample(up, std::max(1, int(up.width * s + 0.5)), std::max(1, int(up.height * s + 0.5)));
  }
  return up;
}

// What a model sees of a video: its key frames (one per shot, at most 4, decoded again: the catalog
// keeps only the poster), in time order on a sheet two frames wide, long edge `edge`. One image,
// so that every provider and llama-server can take it.
Result<Image> VideoSheet(const std::string& path, int edge, int* frames) {
  video::AnalyzeOptions vo;
  vo.max_key_frames = 4;
  vo.frame_side = edge;
  auto a = video::Analyze(path, vo);
  if (!a.ok()) return a.status();
  std::vector<const Image*> keep;
  for (const auto& k : a->key_frames)
    if (k.content || a->key_frames.size() == 1) keep.push_back(&k.rgb);
  if (keep.empty()) keep.push_back(&a->poster);
  *frames = int(keep.size());
  if (keep.size() == 1) return *keep[0];
  const int cols = 2, rows = int(keep.size() + 1) / 2;
  const Image& first = *keep[0];
  const int cw = edge / cols, ch = std::max(1, int(double(cw) * first.height / first.width + 0.5));
  Image sheet(cw * cols, ch * rows, 3);  // black between and around frames of other shapes
  for (size_t i = 0; i < keep.size(); ++i) {
    const Image& f = *keep[i];
    const double s = std::min(double(cw) / f.width, double(ch) / f.height);
    const int w = std::max(1, int(f.width * s)), h = std::max(1, int(f.height * s));
    Image cell = Resample(f, w, h);
    const int x0 = int(i % cols) * cw + (cw - w) / 2, y0 = int(i / cols) * ch + (ch - h) / 2;
    for (int y = 0; y < h; ++y)
      std::copy(cell.row(y), cell.row(y) + 3 * w, sheet.row(y0 + y) + 3 * x0);
  }
  return sheet;
}

// What the prompt says first about a video's sheet ("" for a photo).
std::string VideoNote(MediaKind kind, int frames) {
  if (kind != MediaKind::kVideo) return "";
  return fmt::format(
      "This is a video, shown as {} of its frames{}. Describe the video as you would a photo. ",
      frames, frames > 1 ? " in time order, left to right, top to bottom" : "");
}

// The image the model sees: the reduced decode, upright, long edge `edge` (a video's sheet of
// key frames), as JPEG (every API and llama-server read it) or WebP (smaller; not every server
// decodes it).
Result<std::string> ModelImage(const std::string& path, int edge, bool webp,
                               MediaKind kind = MediaKind::kPhoto, int* frames = nullptr) {
  int n = 1;
  auto rgb = kind == MediaKind::kVideo ? VideoSheet(path, edge, &n) : ModelRgb(path, edge);
  if (frames) *frames = n;
  if (!rgb.ok()) return rgb.status();
  Result<std::vector<uint8_t>> bytes = Status::Internal("no encoder");
  if (webp) {
    ThumbnailOptions to;
    to.size = edge;
    to.quality = 85;
    auto th = MakeThumbnail(*rgb, 1, to);  // already upright and at most `edge`
    if (!th.ok()) return th.status();
    bytes = std::move(th->webp);
  } else {
    bytes = EncodeJpeg(*rgb, 85);
  }
  if (!bytes.ok()) return bytes.status();
  return Base64(bytes->data(), bytes->size());
}

// --prefilter, before any request: nearly black (thumbnail mean luma <= 10) and very blurred
// (sharpness < 15, image/derive.h) photos are not asked about; of each group of near-duplicates
// (pHash within 4 bits) one is asked, or none when one already has an answer in the cache, and
// the others reuse that answer.
Status Prefilter(const Options& o, Catalog& cat, const std::vector<Catalog::Placed>& placed,
                 const std::string& provider, const std::string& model, const Task& task,
                 std::unordered_map<int64_t, std::string>* skip,
                 std::unordered_map<int64_t, const Catalog::Placed*>* reuse_from) {
  (void)o;
  constexpr double kDarkLuma = 10, kBlurred = 15;
  constexpr int kNear = 4;
  std::vector<dupes::Item> items;
  LUMEN_RETURN_IF_ERROR(cat.LoadDupeItems(&items));
  std::unordered_map<int64_t, const dupes::Item*> by_asset;
  for (const auto& it : items) by_asset[it.asset] = &it;
  std::vector<uint64_t> hashes;
  std::vector<const Catalog::Placed*> who;
  std::unordered_set<int64_t> seen;
  for (const auto& p : placed) {
    if (p.kind != MediaKind::kPhoto || !seen.insert(p.asset).second) continue;
    if (auto luma = ThumbnailLuma(cat, p.asset); luma && *luma <= kDarkLuma) {
      (*skip)[p.asset] = fmt::format("nearly black (mean luma {:.0f})", *luma);
      continue;
    }
    auto it = by_asset.find(p.asset);
    if (it == by_asset.end()) continue;  // no perceptual hash nor sharpness: asked as it is
    if (it->second->sharpness && *it->second->sharpness < kBlurred) {
      (*skip)[p.asset] = fmt::format("very blurred (sharpness {:.1f})", *it->second->sharpness);
      continue;
    }
    hashes.push_back(it->second->phash);
    who.push_back(&p);
  }
  const std::vector<uint32_t> group = dupes::NearGroups(hashes, kNear);
  std::vector<size_t> members(who.size(), 0);
  for (uint32_t g : group) ++members[g];
  // Each group's leader: one with a cached answer, else the sharpest.
  std::unordered_map<size_t, size_t> leader;
  auto rank = [&](size_t i) -> std::pair<int, double> {
    auto hit = cat.GetEnrichment(who[i]->asset, provider, model, task.version);
    const bool answered = hit.ok() && *hit;
    return {answered ? 1 : 0, by_asset[who[i]->asset]->sharpness.value_or(0)};
  };
  std::unordered_map<size_t, std::pair<int, double>> ranks;
  for (size_t i = 0; i < who.size(); ++i) {
    if (members[group[i]] < 2) continue;  // no near-duplicate
    ranks[i] = rank(i);
    auto [at, fresh] = leader.emplace(group[i], i);
    if (!fresh && ranks[i] > ranks[at->second]) at->second = i;
  }
  for (const auto& [i, r] : ranks) {
    const size_t l = leader.at(group[i]);
    // A photo with an answer of its own keeps it; only the unanswered reuse the leader's.
    if (l != i && r.first == 0) (*reuse_from)[who[i]->asset] = who[l];
  }
  return Status::Ok();
}

double CpuSeconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

Result<std::string> ModelImageBase64(const std::string& path, int edge) {
  return ModelImage(path, edge, false);
}

Status MakeEndpoint(const Options& o, llm::Endpoint* e, llm::Limits* lim,
                    std::string* key_var_out) {
  const bool local = o.llm == "local";
  e->kind = o.llm;
  // Any spelling of a base URL ("http://h/v1/", "http://h") is one endpoint and one cache key.
  e->base_url =
      llm::NormalizeBaseUrl(o.llm, o.base_url.empty() ? llm::DefaultBaseUrl(o.llm) : o.base_url);
  e->model = o.llm_model;
  if (e->model.empty())
    return Status::Invalid(
        fmt::format("describe needs --llm-model (or llm_model in [describe] of {})", ConfigPath()));
  std::string& key_var = *key_var_out;
  key_var = o.api_key_env;
  if (key_var.empty())
    key_var = o.llm == "anthropic" ? "ANTHROPIC_API_KEY"
              : o.llm == "gemini"  ? "GEMINI_API_KEY"
              : o.llm == "openai"  ? "OPENAI_API_KEY"
                                   : "";
  if (!key_var.empty())
    if (const char* k = std::getenv(key_var.c_str())) e->api_key = k;
  if (e->api_key.empty() && o.api_key_env.empty()) e->api_key = o.api_key;  // config file
  // Whatever a server echoes back (error bodies, answers) never shows or stores the key.
  log::AddSecret(e->api_key);
  log::AddSecret(o.api_key);
  const bool remote_default = o.base_url.empty() && o.llm != "ollama" && !local;
  if (e->api_key.empty() && remote_default)
    return Status::Invalid(
        fmt::format("{} needs an API key: set ${} (or --api-key-env VAR)", o.llm, key_var));

  auto custom = o.profiles.find(o.llm_profile);
  if (!llm::ProfileLimits(o.llm_profile, lim) && custom == o.profiles.end())
    return Status::Invalid(fmt::format(
        "unknown --llm-profile {}: conservative, balanced or aggressive", o.llm_profile));
  if (custom != o.profiles.end()) {  // the config file's [profiles.NAME]
    const auto& p = custom->second;
    auto get = [&](const char* k, double* to) {
      if (auto it = p.find(k); it != p.end()) *to = it->second;
    };
    double conc = lim->concurrency, attempts = lim->max_attempts;
    get("rpm", &lim->requests);
    get("tpm", &lim->tokens);
    get("timeout", &lim->timeout_s);
    get("window", &lim->window_s);
    get("concurrency", &conc);
    get("max_attempts", &attempts);
    get("retry_after_max", &lim->max_retry_after_s);
    get("max_wait", &lim->max_wait_s);
    double reply_mb = double(lim->max_reply_bytes) / (1 << 20);
    get("max_reply_mb", &reply_mb);
    lim->max_reply_bytes = size_t(std::clamp(reply_mb, 0.01, 4096.0) * (1 << 20));
    lim->concurrency = std::max(1, int(conc));
    lim->max_attempts = std::max(1, int(attempts));
  }
  if (o.rpm > 0) lim->requests = o.rpm;
  if (o.tpm > 0) lim->tokens = o.tpm;
  if (o.concurrency > 0) lim->concurrency = o.concurrency;
  if (o.llm_timeout > 0) lim->timeout_s = o.llm_timeout;
  if (o.max_attempts > 0) lim->max_attempts = o.max_attempts;
  if (o.rate_window > 0) lim->window_s = o.rate_window;
  return Status::Ok();
}

int RunDescribe(const Options& o, const char* argv0) {
  SetupLogging(o);
  auto fail = [](const std::string& m) {
    log::Error(m);
    return kExitError;
  };
  if (Status st = InitLibraries(argv0); !st.ok()) return fail(st.message());
  const bool local = o.llm == "local";
  std::unique_ptr<llm::LocalVlm> vlm;
  if (local) {
    if (o.llm_model.empty())
      return fail(
          "--llm local needs --llm-model MODEL.gguf (and --mmproj MMPROJ.gguf to describe "
          "photos)");
    llm::LocalVlmOptions lo;
    lo.model = o.llm_model;
    lo.mmproj = o.mmproj;
    lo.threads = o.jobs;
    Result<std::unique_ptr<llm::LocalVlm>> v = Status::Internal("not loaded");
    try {  // llama.cpp/mtmd use exceptions inside; none may end the program
      v = llm::LocalVlm::Load(lo);
    } catch (const std::exception& ex) {
      v = Status::Invalid(fmt::format("cannot load {}: {}", o.llm_model, ex.what()));
    }
    if (!v.ok()) return fail(v.status().message());
    vlm = std::move(v.value());
  }
  llm::Endpoint e;
  llm::Limits lim;
  std::string key_var;
  if (Status st = MakeEndpoint(o, &e, &lim, &key_var); !st.ok()) return fail(st.message());
  auto task_or = MakeTask(o);
  if (!task_or.ok()) return fail(task_or.status().message());
  const Task task = std::move(task_or.value());
  const DocumentTask doc_task = MakeDocumentTask(task, o);

  std::vector<std::string> roots;
  for (const auto& p : o.paths) {
    std::error_code ec;
    roots.push_back(std::filesystem::absolute(p, ec).lexically_normal().string());
    while (roots.back().size() > 1 && roots.back().ends_with('/')) roots.back().pop_back();
  }
  if (Status st = CheckInputPaths(o.paths); !st.ok()) return fail(st.message());
  // The records file may not be a photo or another input (it used to be truncated first).
  if (o.describe_records && !o.output.empty()) {
    if (Status st = CheckOutput(o.output, OutputKind::kJson, o.paths); !st.ok())
      return fail(st.message());
  }
  if (!o.describe_skip_index) {
    const int rc = IndexFirst(o, roots, false, argv0);
    if (rc != kExitOk && rc != kExitSomeFailed) return rc;
  }
  auto c = OpenCatalog(o);
  if (!c.ok()) return fail(c.status().message());
  Catalog& cat = **c;
  std::vector<Catalog::Placed> placed;
  if (Status st = cat.LoadPlaced(roots, &placed); !st.ok()) return fail(st.message());
  // In process without a projector only documents can be read: with nothing but photos that
  // is a usage error; in a mixed folder the photos fail one by one and the documents go on.
  if (local && o.mmproj.empty() && !placed.empty() &&
      std::none_of(placed.begin(), placed.end(),
                   [](const Catalog::Placed& p) { return p.kind == MediaKind::kDocument; }))
    return fail(
        "describing photos in process needs --mmproj MMPROJ.gguf (the model's vision projector); "
        "without it --llm local reads documents only");

  FILE* out = stdout;
  TempFile out_tmp;
  if (!o.describe_records) {
    out = nullptr;
  } else if (!o.output.empty() && o.describe_append) {
    auto f = OpenAppend(o.output, OutputKind::kJson, o.paths);
    if (!f.ok()) return fail(f.status().message());
    out = *f;
  } else if (!o.output.empty()) {
    // A temporary renamed over the output at the end (results are in the catalog's cache: a
    // rerun after a kill writes them again without asking).
    auto t = OpenOutput(o.output, OutputKind::kJson, o.paths);
    if (!t.ok() || !t->stream())
      return fail(t.ok() ? "cannot write " + o.output : t.status().message());
    out_tmp = std::move(*t);
    out = out_tmp.stream();
  }
  std::mutex out_mu;
  const std::string provider = local
                                   ? "local:" + (o.mmproj.empty() ? std::string("text") : o.mmproj)
                                   : e.kind + ":" + e.base_url;
  if (local) e.model = std::filesystem::path(o.llm_model).filename().string();
  uint64_t records_written = 0;
  auto emit = [&](const Catalog::Placed& p, const std::string& result, double ms, int64_t tokens,
                  bool cached, const std::string* reused_from = nullptr) {
    const json r = json::parse(result, nullptr, false);
    if (!r.is_object()) return;  // validated before: cannot happen
    auto field = [&](const char* k) { return r.contains(k) ? r[k] : json(""); };
    json rec{{"type", "enrichment"},
             {"content_hash", p.hash.Hex()},
             {"file_path", log::Printable(p.path)},
             {"provider", e.kind},
             {"llm_model", lumen::json::ValidUtf8(e.model)},
             {"prompt_version", task.version},
             {"description", field("description")},
             {"ocr_text", field("ocr_text")},
             {"file_name", field("file_name")},
             {"folder_name", field("folder_name")},
             {"llm_latency_ms", ms},
             {"llm_tokens", tokens},
             {"cached", cached}};
    if (r.contains("social")) rec["social"] = r["social"];
    if (reused_from) rec["reused_from"] = log::Printable(*reused_from);
    if (p.kind == MediaKind::kDocument) {
      rec["kind"] = "document";
      rec["prompt_version"] = doc_task.version;
      rec["category"] = field("category");
      rec["keywords"] = r.contains("keywords") ? r["keywords"] : json::array();
    }
    std::lock_guard<std::mutex> lock(out_mu);
    if (out) {
      std::fprintf(out, "%s\n", log::Redact(Dump(rec)).c_str());
      ++records_written;
    }
  };

  std::vector<llm::Job> jobs;
  std::unordered_map<std::string, const Catalog::Placed*> by_id;
  // --images-per-request N: photos asked N at a time (remote providers; in process one by one).
  const size_t batch = local ? 1 : size_t(std::max(1, o.images_per_request));
  const BatchTask batch_task{&task};
  std::vector<const Catalog::Placed*> batchable;
  std::unordered_map<std::string, std::vector<const Catalog::Placed*>> batches;
  std::unordered_set<int64_t> seen;
  int64_t cached = 0, stored_errors = 0;
  std::unordered_map<int64_t, std::string> cached_text;  // answers from the cache, by asset
  std::unordered_map<int64_t, const Catalog::Placed*> by_asset;
  for (const auto& p : placed) by_asset.emplace(p.asset, &p);
  // Documents: their stored text, read once here (the prompt is made from it in the worker).
  std::unordered_map<int64_t, DocumentRecord> documents;
  auto version_of = [&](const Catalog::Placed& p) -> const std::string& {
    return p.kind == MediaKind::kDocument ? doc_task.version : task.version;
  };
  auto validate_for = [&](const Catalog::Placed& p, std::string* text) {
    return p.kind == MediaKind::kDocument ? doc_task.Validate(text) : task.Validate(text);
  };
  // --prefilter: no request for nearly black or very blurred photos, nor for near-duplicates of
  // another photo (its answer is reused: from the cache, or once it arrives).
  std::unordered_map<int64_t, std::string> skip_reason;
  std::unordered_map<int64_t, const Catalog::Placed*> reuse_from;  // follower -> leader
  std::unordered_map<int64_t, std::vector<const Catalog::Placed*>> followers;
  int64_t skipped_dark = 0, skipped_blurred = 0, reused = 0;
  if (o.prefilter) {
    if (Status st = Prefilter(o, cat, placed, provider, e.model, task, &skip_reason, &reuse_from);
        !st.ok())
      return fail(st.message());
  }
  // Stores and prints a leader's answer for each near-duplicate that waits for it.
  auto share = [&](const Catalog::Placed& leader, const std::string& text) {
    auto it = followers.find(leader.asset);
    if (it == followers.end()) return;
    for (const Catalog::Placed* f : it->second) {
      if (Status st = cat.PutEnrichment(f->asset, provider, e.model, task.version, {text, 0, 0});
          !st.ok())
        ++stored_errors;
      emit(*f, text, 0, 0, true, &leader.path);
      ++reused;
    }
  };
  // One photo, one request.
  auto photo_job = [&](const Catalog::Placed& p) {
    llm::Job job;
    job.id = std::to_string(p.asset);
    job.estimated_tokens = 300 + o.image_edge * o.image_edge / 750.0;  // ~image tiles + answer
    const std::string path = p.path;
    const std::vector<std::string> tags = p.tags;
    const int edge = o.image_edge;
    const bool webp = o.image_format == "webp";
    const int max_tokens = o.max_new_tokens;
    const MediaKind kind = p.kind;
    job.prompt = [path, tags, edge, webp, max_tokens, kind, &task]() -> Result<llm::Prompt> {
      int frames = 1;
      auto img = ModelImage(path, edge, webp, kind, &frames);
      if (!img.ok()) return img.status();
      llm::Prompt pr;
      pr.text = task.Prompt(tags);
      pr.text = VideoNote(kind, frames) + pr.text;
      pr.image_base64 = std::move(img.value());
      pr.image_mime = webp ? "image/webp" : "image/jpeg";
      pr.schema_json = task.schema;
      pr.max_tokens = max_tokens;
      return pr;
    };
    return job;
  };
  for (const auto& p : placed) {
    if (!seen.insert(p.asset).second) continue;  // one request per content
    if (auto s = skip_reason.find(p.asset); s != skip_reason.end()) {
      ++(s->second.starts_with("nearly black") ? skipped_dark : skipped_blurred);
      log::Debug(fmt::format("{}: not asked: {}", log::Printable(p.path), s->second));
      continue;
    }
    if (auto r = reuse_from.find(p.asset); r != reuse_from.end()) {
      followers[r->second->asset].push_back(&p);
      continue;
    }
    if (p.kind == MediaKind::kDocument) {
      auto d = cat.GetDocument(p.asset);
      if (!d.ok()) return fail(d.status().message());
      if (!*d) continue;  // indexed with --no-documents by an older run: nothing to ask from
      documents[p.asset] = std::move(**d);
    }
    if (!o.no_cache) {
      auto hit = cat.GetEnrichment(p.asset, provider, e.model, version_of(p));
      if (!hit.ok()) return fail(hit.status().message());
      // A stored result is checked (and capped) again: an older lumen stored answers whole.
      std::string stored = *hit ? (*hit)->result : "";
      if (*hit && validate_for(p, &stored).ok()) {
        emit(p, stored, (*hit)->latency_ms, (*hit)->tokens, true);
        ++cached;
        cached_text[p.asset] = stored;
        continue;
      }
    }
    if (batch > 1 && p.kind == MediaKind::kPhoto) {
      batchable.push_back(&p);
      continue;
    }
    llm::Job job = photo_job(p);
    const std::string path = p.path;
    const int edge = o.image_edge;
    const bool webp = o.image_format == "webp";
    const int max_tokens = o.max_new_tokens;
    if (p.kind == MediaKind::kDocument) {
      const DocumentRecord* d = &documents.at(p.asset);
      const bool as_image = d->needs_render;
      job.estimated_tokens = as_image
                                 ? job.estimated_tokens
                                 : 200 + double(std::min(d->text.size(), doc_task.chars)) / 3.5;
      job.prompt = [path, d, as_image, edge, webp, max_tokens, &doc_task]() -> Result<llm::Prompt> {
        llm::Prompt pr;
        pr.text = doc_task.Prompt(*d, as_image);
        if (as_image) {
          auto page = DocumentPage(path, edge);
          if (!page.ok()) return page.status();
          auto bytes = EncodeJpeg(*page, 85);
          if (!bytes.ok()) return bytes.status();
          pr.image_base64 = Base64(bytes->data(), bytes->size());
          pr.image_mime = "image/jpeg";
        }
        pr.schema_json = doc_task.schema;
        pr.max_tokens = max_tokens;
        return pr;
      };
      job.validate = [&doc_task](std::string* text) { return doc_task.Validate(text); };
    }
    by_id[job.id] = &p;
    jobs.push_back(std::move(job));
  }
  for (const auto& [leader, waiting] : followers)
    if (auto c = cached_text.find(leader); c != cached_text.end())
      share(*by_asset.at(leader), c->second);
  for (size_t at = 0; at < batchable.size(); at += batch) {
    std::vector<const Catalog::Placed*> group(
        batchable.begin() + long(at),
        batchable.begin() + long(std::min(batchable.size(), at + batch)));
    llm::Job job;
    for (const Catalog::Placed* p : group)
      job.id += (job.id.empty() ? "b" : ",") + std::to_string(p->asset);
    job.estimated_tokens = double(group.size()) * (300 + o.image_edge * o.image_edge / 750.0);
    std::vector<std::string> paths;
    std::vector<std::vector<std::string>> tags;
    for (const Catalog::Placed* p : group) {
      paths.push_back(p->path);
      tags.push_back(p->tags);
    }
    const int edge = o.image_edge;
    const bool webp = o.image_format == "webp";
    const int max_tokens = o.max_new_tokens * int(group.size());
    const size_t n = group.size();
    job.prompt = [paths, tags, edge, webp, max_tokens, &batch_task]() -> Result<llm::Prompt> {
      llm::Prompt pr;
      for (size_t i = 0; i < paths.size(); ++i) {
        auto img = ModelImage(paths[i], edge, webp);
        if (!img.ok())
          return Status(img.status().code(),
                        fmt::format("photo {} ({}): {}", i + 1, log::Printable(paths[i]),
                                    img.status().message()));
        if (i == 0)
          pr.image_base64 = std::move(img.value());
        else
          pr.more_images.push_back(std::move(img.value()));
      }
      pr.text = batch_task.Prompt(tags);
      pr.image_mime = webp ? "image/webp" : "image/jpeg";
      pr.schema_json = batch_task.Schema(paths.size());
      pr.max_tokens = max_tokens;
      return pr;
    };
    job.validate = [n, &batch_task](std::string* text) { return batch_task.Validate(n, text); };
    batches[job.id] = std::move(group);
    jobs.push_back(std::move(job));
  }
  const int64_t to_ask = int64_t(jobs.size());
  const double cpu0 = CpuSeconds();
  const uint64_t t0 = MonotonicNs();
  std::vector<std::pair<std::string, std::string>> failures;
  int64_t items_ok = 0, items_failed = 0;  // files (a batch request answers several)
  auto fail_followers = [&](const Catalog::Placed& leader, const std::string& why) {
    if (auto it = followers.find(leader.asset); it != followers.end())
      for (const Catalog::Placed* f : it->second) {
        failures.emplace_back(f->path, fmt::format("its near-duplicate {} failed: {}",
                                                   log::Printable(leader.path), why));
        ++items_failed;
      }
  };
  std::vector<const Catalog::Placed*> alone;  // photos of batches that failed
  auto on_result = [&](const llm::JobResult& r) {
    if (auto b = batches.find(r.id); b != batches.end()) {
      const auto& group = b->second;
      if (!r.ok && group.size() > 1) {
        // No valid answer for the batch: its photos are asked one by one after this round
        // (one photo the model stumbles on does not fail the others).
        alone.insert(alone.end(), group.begin(), group.end());
        return;
      }
      (r.ok ? items_ok : items_failed) += int64_t(group.size());
      // One answer for several photos: each stored and printed as its own result, the request's
      // time and tokens shared out.
      const json all = r.ok ? json::parse(r.text, nullptr, false) : json();
      const double part = 1.0 / double(group.size());
      for (size_t i = 0; i < group.size(); ++i) {
        const Catalog::Placed& p = *group[i];
        if (!r.ok) {
          failures.emplace_back(p.path, r.error);
          fail_followers(p, r.error);
          continue;
        }
        const std::string one = Dump(all["photos"][i]);
        if (Status st =
                cat.PutEnrichment(p.asset, provider, e.model, task.version,
                                  {one, r.latency_ms * part, int64_t(double(r.tokens) * part)});
            !st.ok())
          ++stored_errors;
        emit(p, one, r.latency_ms * part, int64_t(double(r.tokens) * part), false);
        share(p, one);
      }
      return;
    }
    const Catalog::Placed& p = *by_id.at(r.id);
    ++(r.ok ? items_ok : items_failed);
    if (!r.ok) {
      failures.emplace_back(p.path, r.error);
      fail_followers(p, r.error);
      return;
    }
    if (Status st = cat.PutEnrichment(p.asset, provider, e.model, version_of(p),
                                      {r.text, r.latency_ms, r.tokens});
        !st.ok())
      ++stored_errors;
    emit(p, r.text, r.latency_ms, r.tokens, false);
    share(p, r.text);
  };
  llm::Accounting acc;
  if (local) {
    // In process, one image at a time (the model uses every core).
    for (auto& job : jobs) {
      if (Interrupted()) break;
      llm::JobResult r;
      r.id = job.id;
      r.attempts = 1;
      const Catalog::Placed& p = *by_id.at(job.id);
      const bool is_doc = p.kind == MediaKind::kDocument;
      const DocumentRecord* d = is_doc ? &documents.at(p.asset) : nullptr;
      Result<Image> img = Image();
      int frames = 1;
      if (p.kind == MediaKind::kVideo)
        img = VideoSheet(p.path, o.image_edge, &frames);
      else if (!is_doc)
        img = ModelRgb(p.path, o.image_edge);
      else if (d->needs_render)
        img = DocumentPage(p.path, o.image_edge);
      if (!img.ok()) {
        r.error = img.status().message();
      } else {
        Result<llm::LocalReply> reply = Status::Internal("not run");
        try {
          reply = is_doc
                      ? vlm->Generate(*img, doc_task.Prompt(*d, d->needs_render), o.max_new_tokens,
                                      llm::DocumentGrammar(300, doc_task.taxonomy))
                      : vlm->Generate(*img, VideoNote(p.kind, frames) + task.Prompt(p.tags),
                                      o.max_new_tokens,
                                      llm::DescribeGrammar(300, task.taxonomy, task.social));
        } catch (const std::exception& ex) {
          reply = Status::Internal(fmt::format("the model failed: {}", ex.what()));
        }
        if (!reply.ok()) {
          r.error = reply.status().message();
        } else {
          r.text = reply->text;
          r.tokens = reply->prompt_tokens + reply->generated_tokens;
          r.latency_ms = reply->encode_ms + reply->generate_ms;
          log::Debug(
              fmt::format("{}: {} prompt tokens ({} from the cache) in {:.0f} ms, {} "
                          "generated in {:.0f} ms",
                          log::Printable(p.path), reply->prompt_tokens, reply->reused_tokens,
                          reply->encode_ms, reply->generated_tokens, reply->generate_ms));
          const std::string raw = r.text;
          Status v = validate_for(p, &r.text);
          r.ok = v.ok();
          if (!v.ok())
            r.error = fmt::format("{} ({} tokens, ending: {})", v.message(),
                                  reply->generated_tokens, log::Printable(Tail(raw, 120)));
        }
      }
      ++acc.requests;
      if (r.ok) {
        ++acc.succeeded;
      } else {
        ++acc.failed;
        ++acc.failures[r.error];
      }
      on_result(r);
    }
  } else {
    // A photo's answer (jobs with a validator of their own, documents and batches, use theirs).
    auto validate = [&task](std::string* text) { return task.Validate(text); };
    acc = llm::RunJobs(e, lim, std::move(jobs), validate, on_result);
    if (!alone.empty() && acc.fatal.empty() && !Interrupted()) {
      log::Info(fmt::format("{} photos of batches without a valid answer: asked one by one",
                            alone.size()));
      std::vector<llm::Job> singles;
      for (const Catalog::Placed* p : alone) {
        singles.push_back(photo_job(*p));
        by_id[singles.back().id] = p;
      }
      alone.clear();
      const llm::Accounting more = llm::RunJobs(e, lim, std::move(singles), validate, on_result);
      acc.succeeded += more.succeeded;
      acc.failed += more.failed;
      acc.retries += more.retries;
      acc.requests += more.requests;
      for (const auto& [why, n] : more.failures) acc.failures[why] += n;
      for (const auto& [st, n] : more.statuses) acc.statuses[st] += n;
      if (acc.fatal.empty()) acc.fatal = more.fatal, acc.fatal_status = more.fatal_status;
    }
    for (const Catalog::Placed* p : alone) {  // not asked again (the run was ended or stopped)
      failures.emplace_back(p->path, "its batch had no valid answer");
      ++items_failed;
    }
  }
  const double secs = double(MonotonicNs() - t0) / 1e9;
  const double cpu = CpuSeconds() - cpu0;
  Status written;
  if (!out_tmp.path().empty()) {
    // Replaces the output only with a complete run that has records: a stopped run, or one whose
    // every request failed, leaves what was there (every result is in the catalog's cache, so a
    // rerun writes them again without asking).
    if (acc.fatal.empty() && !Interrupted() && records_written > 0) {
      written = out_tmp.Commit();
    } else {
      out_tmp.Discard();
      log::Warn(fmt::format("{} left as it was ({})", o.output,
                            records_written ? "the run did not finish" : "no records"));
    }
  } else if (out && out != stdout && std::fclose(out) != 0) {
    written = Status::Io(fmt::format("cannot write {}: {}", o.output, std::strerror(errno)));
  }
  if (!written.ok()) log::Error(written.message());
  for (size_t i = 0; i < failures.size(); ++i) {
    if (!o.verbose && i >= 20) {
      log::Warn(fmt::format("... and {} more failures", failures.size() - 20));
      break;
    }
    log::Warn(fmt::format("{}: {}", log::Printable(failures[i].first), failures[i].second));
  }
  if (!o.quiet) {
    std::string statuses;
    for (const auto& [s, n] : acc.statuses)
      statuses += fmt::format("{}{}: {}", statuses.empty() ? "" : ", ",
                              s == 0 ? std::string("no answer") : std::to_string(s), n);
    log::Info(fmt::format(
        "described {} files in {:.2f} s: {} succeeded, {} from the cache, {} failed; {} "
        "requests ({}), {} retries; {:.1f} requests/s, {:.2f} ms CPU per request{}",
        items_ok + items_failed + cached, secs, items_ok, cached, items_failed, acc.requests,
        statuses.empty() ? "none" : statuses, acc.retries,
        secs > 0 ? double(acc.requests) / secs : 0.0,
        acc.requests ? cpu * 1000 / double(acc.requests) : 0.0,
        Interrupted() ? " (interrupted: run again to finish)"
        : acc.fatal.empty()
            ? ""
            : fmt::format(" (stopped: {} not asked)", to_ask - acc.succeeded - acc.failed)));
  }
  if (o.prefilter && !o.quiet)
    log::Info(fmt::format(
        "prefilter: {} not asked (nearly black {}, very blurred {}), {} answers reused from a "
        "near-duplicate",
        skipped_dark + skipped_blurred, skipped_dark, skipped_blurred, reused));
  if (stored_errors)
    log::Warn(fmt::format("{} results could not be stored in the catalog", stored_errors));
  if (!acc.fatal.empty()) {
    // The same answer would come for every photo: one message, the run ends (what finished is
    // stored; the rest is asked for by the next run).
    std::string hint;
    if (acc.fatal_status == 401 || acc.fatal_status == 403)
      hint = key_var.empty()
                 ? "; check the API key"
                 : fmt::format("; check the API key in ${} and its permissions", key_var);
    else if (acc.fatal_status == 404)
      hint = "; check --llm-model and --base-url";
    log::Error(fmt::format("stopped: {}{}", acc.fatal, hint));
    return kExitError;
  }
  if (Interrupted()) return 128 + InterruptSignal();
  if (!written.ok()) return kExitError;
  // By files: a batch that failed and whose photos then succeeded one by one is no failure.
  return items_failed > 0 ? kExitSomeFailed : kExitOk;
}

}  // namespace lumen::cli
