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
#include "lumen/search/flat_index.h"
#include "lumen/tags/label_bank.h"
#include "lumen/tags/scorer.h"
#include "lumen/tags/vocabulary.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/util/progress.h"

namespace lumen::cli {
namespace {

void SetupLogging(const Options& o) {
  log::SetJson(o.json_logs);
  log::SetLevel(o.verbose ? log::Level::kDebug : o.quiet ? log::Level::kError : log::Level::kInfo);
}

Status InitLibraries(const char* argv0) {
  InitMetadataLibrary();
  return InitImageLibraries(argv0);
}

// The catalog's id for a model: family and the folder's (or file's) name,
// "siglip:siglip-base-patch16-224".
std::string EncoderId(const std::string& path, ml::Family family) {
  std::string dir = AbsolutePath(path);
  return fmt::format("{}:{}", family == ml::Family::kSiglip ? "siglip" : "clip",
                     dir.substr(dir.rfind('/') + 1));
}

tags::VocabularyOptions VocabOptions(const Options& o) {
  tags::VocabularyOptions v;
  if (o.no_wordnet) v.wordnet_dir.clear();
  v.user_files = o.vocab_files;
  return v;
}

// Where the bank for (model, vocabulary, prompt) lives: beside the catalog.
std::string BankPath(const std::string& catalog, const tags::BankKey& key) {
  std::string dir = std::filesystem::path(catalog).parent_path().string();
  std::string id = key.model_id;
  for (auto& c : id)
    if (c == ':' || c == '/') c = '-';
  std::string salt = HashBytes(key.prompt.data(), key.prompt.size()).Hex().substr(0, 8);
  return fmt::format("{}/banks/{}-{}-{}.bank", dir.empty() ? "." : dir, id,
                     key.vocab_hash.substr(0, 12), salt);
}

// The model's own calibration: SigLIP's learned logit scale and bias; CLIP's scale with the
// documented offset (see tags/scorer.h).
tags::Calibration ModelCalibration(const ml::ModelSource& m) {
  auto scalar = [&](const char* name, float fallback) {
    const ml::TensorView* v = m.tensors->Find(name);
    if (!v || v->elements() != 1) return fallback;
    float f;
    ml::ToFloat32(*v, &f);
    return f;
  };
  if (m.config.family == ml::Family::kSiglip)
    return {std::exp(scalar("logit_scale", std::log(10.0f))), scalar("logit_bias", -10.0f)};
  return tags::Calibration::Clip(std::exp(scalar("logit_scale", std::log(100.0f))));
}

// The label bank and calibration for tagging with the model at `path` (id `model_id`).
Result<PipelineOptions::Tagging> LoadTagging(const Options& o, const std::string& path,
                                             const std::string& model_id, int dim) {
  auto vocab = tags::Vocabulary::Build(VocabOptions(o));
  if (!vocab.ok()) return vocab.status();
  tags::BankKey key{model_id, vocab->Hash(), o.prompt, dim};
  std::string catalog = o.catalog.empty() ? DefaultCatalogPath() : o.catalog;
  auto bank = tags::LabelBank::Open(BankPath(catalog, key), key);
  if (!bank.ok())
    return Status::NotFound(
        fmt::format("no label bank for {} ({}): run `lumen tags build --model {}` first", model_id,
                    bank.status().message(), o.model.empty() ? "MODEL" : o.model));
  if (!(*bank)->complete())
    log::Warn(fmt::format("the label bank has {} of {} terms so far (lumen tags build resumes it)",
                          (*bank)->rows_done(), (*bank)->count()));
  auto source = ml::OpenModel(path);
  if (!source.ok()) return source.status();
  PipelineOptions::Tagging t;
  t.vocab = std::make_shared<tags::Vocabulary>(std::move(vocab.value()));
  t.bank = std::shared_ptr<tags::LabelBank>(std::move(bank.value()));
  t.calibration = ModelCalibration(**source);
  t.score.min_confidence = o.min_confidence;
  t.score.max_tags = static_cast<size_t>(o.max_tags);
  t.drop_ancestors = o.drop_ancestors;
  t.bank_id = fmt::format("{}|{}|{}", key.model_id, key.vocab_hash.substr(0, 12), key.prompt);
  return t;
}

// Loads the image encoder: --model NAME|PATH, else the default model for --quality when it is
// installed. Without a model, runs go on without embeddings (and say how to add them).
Status LoadEncoder(const Options& o, PipelineOptions* p) {
  if (o.write_xmp && !o.tags) return Status::Invalid("--write-xmp writes tags: add --tags");
  if (o.no_embedding) return Status::Ok();
  std::string path;
  if (!o.model.empty()) {
    path = ml::ResolveModelPath(o.model);
  } else {
    std::string name = ml::DefaultModelName(o.quality == "high");
    path = ml::ResolveModelPath(name);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      if (!o.quality.empty())
        return Status::NotFound(fmt::format("--quality {} needs {}: run `lumen models pull {}`",
                                            o.quality, name, name));
      log::Debug(
          fmt::format("no image model installed; `lumen models pull {}` adds embeddings", name));
      return Status::Ok();
    }
  }
  ml::EncoderOptions eo;
  eo.threads = o.jobs;
  eo.weights = o.weights == "f32"    ? ml::WeightType::kF32
               : o.weights == "f16"  ? ml::WeightType::kF16
               : o.weights == "q8_0" ? ml::WeightType::kQ8_0
                                     : ml::WeightType::kStored;
  auto enc = ml::ImageEncoder::Load(path, eo);
  if (!enc.ok()) return enc.status();
  p->encoder_id = EncoderId(path, (*enc)->config().family);
  if (o.tags) {
    auto t = LoadTagging(o, path, p->encoder_id, (*enc)->dim());
    if (!t.ok()) return t.status();
    p->tagging = std::move(t.value());
  }
  p->encoder = std::move(enc.value());
  p->batch_size = o.batch_size;
  return Status::Ok();
}

PipelineOptions MakePipelineOptions(const Options& o) {
  PipelineOptions p;
  p.roots = o.paths;
  p.scan.include_hidden = o.include_hidden;
  p.scan.exclude = o.exclude;
  p.jobs = o.jobs;
  p.thumbnails = !o.no_thumbnail;
  p.thumbnail.size = o.thumbnail_size;
  p.limits.max_pixels = static_cast<uint64_t>(o.max_megapixels * 1e6);
  p.max_file_bytes = static_cast<uint64_t>(o.max_file_mb * 1048576.0);
  p.limit = o.limit;
  if (o.model_input_size > 0) {
    p.model_input = true;
    p.model.size = o.model_input_size;
  }
  return p;
}

Result<std::unique_ptr<Catalog>> OpenCatalog(const Options& o) {
  std::string path = o.catalog.empty() ? DefaultCatalogPath() : o.catalog;
  return Catalog::Open(path);
}

int ExitCode(const RunSummary& s) {
  if (s.interrupted) return 128 + (InterruptSignal() ? InterruptSignal() : 2);
  return s.failed ? kExitSomeFailed : kExitOk;
}

void Report(const Options& o, const RunSummary& s, const Profile& profile, const char* verb) {
  double rate = s.elapsed_s > 0 ? (s.succeeded + s.failed) / s.elapsed_s : 0;
  if (o.json_logs) {
    log::Fields f = {{"succeeded", std::to_string(s.succeeded)},
                     {"known_content", std::to_string(s.known)},
                     {"failed", std::to_string(s.failed)},
                     {"skipped", std::to_string(s.skipped)},
                     {"unchanged", std::to_string(s.unchanged)},
                     {"missing", std::to_string(s.missing)},
                     {"seconds", fmt::format("{:.3f}", s.elapsed_s)},
                     {"images_per_second", fmt::format("{:.2f}", rate)},
                     {"interrupted", s.interrupted ? "true" : "false"}};
    log::Write(log::Level::kInfo, "summary", f);
    for (const auto& [path, reason] : s.failures)
      log::Write(log::Level::kWarn, "failed", {{"path", path}, {"reason", reason}});
  } else if (!o.quiet) {
    std::string line = fmt::format(
        "{} {} files in {:.2f} s: {} succeeded ({} already known), {} failed, {} skipped, {} "
        "unchanged, "
        "{} missing; {:.1f} images/s, {:.1f} MB/s{}",
        verb, s.succeeded + s.failed + s.skipped, s.elapsed_s, s.succeeded, s.known, s.failed,
        s.skipped, s.unchanged, s.missing, rate,
        s.elapsed_s > 0 ? s.bytes / s.elapsed_s / 1e6 : 0.0,
        s.interrupted ? " (interrupted: run again to finish)"
        : s.limited   ? " (stopped at --limit)"
                      : "");
    size_t shown = 0;
    for (const auto& [path, reason] : s.failures) {
      if (!o.verbose && shown >= 20) {
        log::Warn(fmt::format("... and {} more failures (lumen stats --failures lists them all)",
                              s.failed - shown));
        break;
      }
      log::Warn(fmt::format("{}: {}", path, reason));
      ++shown;
    }
    log::Info(line);
  }
  if (o.profile) {
    std::string t = profile.Table(s.elapsed_s);
    std::fputs(t.c_str(), stderr);
  }
}

}  // namespace

int RunIndex(const Options& o, const char* argv0) {
  SetupLogging(o);
  if (Status st = InitLibraries(argv0); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  auto catalog = OpenCatalog(o);
  if (!catalog.ok()) {
    log::Error(catalog.status().message());
    return kExitError;
  }
  Catalog& cat = **catalog;
  PipelineOptions p = MakePipelineOptions(o);
  if (Status st = LoadEncoder(o, &p); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  p.incremental = !o.full;
  auto run = cat.BeginRun("index", p.roots);
  if (!run.ok()) {
    log::Error(run.status().message());
    return kExitError;
  }
  p.run_id = *run;
  CatalogSink sink(&cat, ProducersFor(p), *run);
  XmpSink xmp;
  std::vector<Sink*> sinks{&sink};
  if (o.write_xmp) sinks.push_back(&xmp);
  Profile profile;
  Progress progress(Progress::Detect(o.quiet, o.json_logs));
  auto sum = RunPipeline(p, &cat, sinks, o.profile ? &profile : nullptr, &progress);
  progress.Finish();
  if (!sum.ok()) {
    log::Error(sum.status().message());
    (void)cat.FinishRun(*run, "error", {});
    return kExitError;
  }
  RunCounts c{sum->succeeded, sum->failed, sum->skipped, sum->unchanged, sum->missing};
  (void)cat.FinishRun(*run, sum->interrupted ? "interrupted" : "done", c);
  Report(o, *sum, profile, "indexed");
  return ExitCode(*sum);
}

namespace {
// Paths already present in an existing output file, and (for a JSON array) its records.
Status LoadExisting(const std::string& file, RecordFormat fmt,
                    std::unordered_set<std::string>* paths, std::vector<nlohmann::json>* records) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::Ok();
  if (fmt == RecordFormat::kJsonArray) {
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_array())
      return Status::Invalid(
          fmt::format("{} is not a JSON array of records; cannot --skip-existing", file));
    for (auto& r : j) {
      if (r.contains("file_path") && r["file_path"].is_string())
        paths->insert(r["file_path"].get<std::string>());
      records->push_back(std::move(r));
    }
    return Status::Ok();
  }
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("file_path") && j["file_path"].is_string())
      paths->insert(j["file_path"].get<std::string>());
  }
  return Status::Ok();
}

// A JSONL file cut short by a kill ends without a newline: drop the partial record.
void TrimPartialLine(const std::string& file) {
  std::FILE* f = std::fopen(file.c_str(), "r+b");
  if (!f) return;
  std::fseek(f, 0, SEEK_END);
  long size = std::ftell(f);
  long keep = size;
  while (keep > 0) {
    std::fseek(f, keep - 1, SEEK_SET);
    if (std::fgetc(f) == '\n') break;
    --keep;
  }
  std::fclose(f);
  if (keep != size) (void)::truncate(file.c_str(), keep);
}
}  // namespace

int RunProcess(const Options& o, const char* argv0) {
  SetupLogging(o);
  if (Status st = InitLibraries(argv0); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  RecordFormat fmt = o.format == "json" ? RecordFormat::kJsonArray : RecordFormat::kJsonl;
  PipelineOptions p = MakePipelineOptions(o);
  if (Status st = LoadEncoder(o, &p); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  p.incremental = false;

  std::unordered_set<std::string> existing;
  std::vector<nlohmann::json> prefix;
  if (o.skip_existing) {
    if (o.output.empty()) {
      log::Error("--skip-existing needs -o FILE");
      return kExitError;
    }
    if (Status st = LoadExisting(o.output, fmt, &existing, &prefix); !st.ok()) {
      log::Error(st.message());
      return kExitError;
    }
    p.skip_path = [&existing](const std::string& path) { return existing.count(path) > 0; };
  }

  // JSONL is appended in place with --skip-existing; a JSON array is rewritten through a
  // temporary file and renamed at the end, so an interrupted run never leaves half an array.
  std::FILE* out = stdout;
  std::string tmp;
  if (!o.output.empty()) {
    if (fmt == RecordFormat::kJsonl && o.skip_existing) {
      TrimPartialLine(o.output);
      out = std::fopen(o.output.c_str(), "ab");
    } else {
      tmp = o.output + ".lumen-tmp";
      out = std::fopen(tmp.c_str(), "wb");
    }
    if (!out) {
      log::Error(fmt::format("cannot write {}: {}", o.output, std::strerror(errno)));
      return kExitError;
    }
  }
  JsonSink json(out, fmt, std::move(prefix));
  std::vector<Sink*> sinks{&json};
  XmpSink xmp;
  if (o.write_xmp) sinks.push_back(&xmp);

  std::unique_ptr<Catalog> cat;
  std::unique_ptr<CatalogSink> csink;
  int64_t run = 0;
  if (o.write_catalog || !o.catalog.empty()) {
    auto c = OpenCatalog(o);
    if (!c.ok()) {
      log::Error(c.status().message());
      return kExitError;
    }
    cat = std::move(c.value());
    auto r = cat->BeginRun("process", p.roots);
    if (!r.ok()) {
      log::Error(r.status().message());
      return kExitError;
    }
    run = *r;
    p.run_id = run;
    csink = std::make_unique<CatalogSink>(cat.get(), ProducersFor(p), run);
    sinks.push_back(csink.get());
  }

  Profile profile;
  Progress progress(Progress::Detect(o.quiet, o.json_logs));
  auto sum = RunPipeline(p, cat.get(), sinks, o.profile ? &profile : nullptr, &progress);
  progress.Finish();
  bool write_ok = true;
  if (out != stdout) write_ok = std::fclose(out) == 0;
  if (!tmp.empty() && write_ok && sum.ok()) {
    if (std::rename(tmp.c_str(), o.output.c_str()) != 0) write_ok = false;
  }
  if (!sum.ok() || !write_ok) {
    log::Error(sum.ok() ? fmt::format("cannot write {}", o.output) : sum.status().message());
    if (!tmp.empty()) std::remove(tmp.c_str());
    return kExitError;
  }
  if (cat) {
    RunCounts c{sum->succeeded, sum->failed, sum->skipped, sum->unchanged, sum->missing};
    (void)cat->FinishRun(run, sum->interrupted ? "interrupted" : "done", c);
  }
  Report(o, *sum, profile, "processed");
  return ExitCode(*sum);
}

int RunStats(const Options& o) {
  SetupLogging(o);
  auto c = OpenCatalog(o);
  if (!c.ok()) {
    log::Error(c.status().message());
    return kExitError;
  }
  sqlite3* db = (*c)->db();
  nlohmann::json j;
  auto count = [&](const char* q) -> int64_t {
    auto s = sql::Prepare(db, q);
    Status st;
    return s.ok() && s->Step(&st) ? s->Int(0) : -1;
  };
  j["catalog"] = (*c)->path();
  j["schema_version"] = (*c)->SchemaVersion();
  j["assets"] = count("SELECT COUNT(*) FROM assets");
  j["thumbnails"] = count("SELECT COUNT(*) FROM thumbnails");
  for (const char* st : {"ok", "failed", "skipped", "missing"}) {
    auto s = sql::Prepare(db, "SELECT COUNT(*) FROM locations WHERE state=?");
    Status e;
    s->Bind(1, std::string_view(st));
    j["locations"][st] = s->Step(&e) ? s->Int(0) : 0;
  }
  if (o.list_failures) {
    auto s =
        sql::Prepare(db, "SELECT path, reason FROM locations WHERE state='failed' ORDER BY path");
    Status e;
    j["failures"] = nlohmann::json::array();
    while (s->Step(&e)) j["failures"].push_back({{"path", s->Blob(0)}, {"reason", s->Text(1)}});
  }
  if (o.json_out) {
    std::puts(j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  std::printf("catalog   %s (schema v%d)\n", (*c)->path().c_str(), j["schema_version"].get<int>());
  std::printf("assets    %lld distinct images\n",
              static_cast<long long>(j["assets"].get<int64_t>()));
  std::printf("locations %lld ok, %lld failed, %lld skipped, %lld missing\n",
              static_cast<long long>(j["locations"]["ok"].get<int64_t>()),
              static_cast<long long>(j["locations"]["failed"].get<int64_t>()),
              static_cast<long long>(j["locations"]["skipped"].get<int64_t>()),
              static_cast<long long>(j["locations"]["missing"].get<int64_t>()));
  if (o.list_failures)
    for (auto& f : j["failures"])
      std::printf("%s: %s\n", log::Printable(f["path"].get<std::string>()).c_str(),
                  f["reason"].get<std::string>().c_str());
  return kExitOk;
}

int RunModels(const std::string& action, const Options& o) {
  SetupLogging(o);
  if (action == "list") {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& m : ml::Registry()) {
      std::string path = ml::ModelsDir() + "/" + m.name;
      bool installed = std::filesystem::exists(path + "/lumen-manifest.json");
      j.push_back({{"name", m.name},
                   {"repo", m.repo},
                   {"family", m.family},
                   {"image_size", m.image_size},
                   {"dim", m.dim},
                   {"installed", installed},
                   {"path", path}});
    }
    if (o.json_out) {
      std::puts(j.dump(2).c_str());
    } else {
      std::printf("%-26s %-32s %-7s %5s %5s  %s\n", "name", "repository", "family", "size", "dim",
                  "installed");
      for (const auto& m : j)
        std::printf("%-26s %-32s %-7s %5d %5d  %s\n", m["name"].get<std::string>().c_str(),
                    m["repo"].get<std::string>().c_str(), m["family"].get<std::string>().c_str(),
                    m["image_size"].get<int>(), m["dim"].get<int>(),
                    m["installed"].get<bool>() ? "yes" : "no");
    }
    return kExitOk;
  }
  const ml::RegistryEntry* entry = ml::FindModel(o.model_name);
  if (action == "path") {
    if (!entry) {
      log::Error(
          fmt::format("unknown model {} (lumen models list shows the known ones)", o.model_name));
      return kExitError;
    }
    std::printf("%s\n", ml::ResolveModelPath(o.model_name).c_str());
    return kExitOk;
  }
  if (action == "pull") {
    if (!entry) {
      log::Error(
          fmt::format("unknown model {} (lumen models list shows the known ones)", o.model_name));
      return kExitError;
    }
    ml::PullOptions po;
    if (!o.base_url.empty())
      po.base_url = o.base_url;
    else if (const char* b = std::getenv("LUMEN_HF_BASE"); b && *b)
      po.base_url = b;
    Progress progress(Progress::Detect(o.quiet, o.json_logs));
    po.progress = [&](const std::string&, uint64_t done, uint64_t total) {
      progress.Update(done, total, done, 0);
    };
    std::string dest = ml::ResolveModelPath(o.model_name);
    Status st = ml::Pull(*entry, dest, po);
    progress.Finish();
    if (!st.ok()) {
      log::Error(st.message());
      return kExitError;
    }
    log::Info(fmt::format("{} is in {}", o.model_name, dest));
    return kExitOk;
  }
  std::string path = ml::ResolveModelPath(o.model_name);
  if (action == "verify") {
    auto problems = ml::Verify(path, entry);
    if (!problems.ok()) {
      log::Error(problems.status().message());
      return kExitError;
    }
    for (const auto& p : *problems) log::Error(fmt::format("{}: {}", path, p));
    if (!problems->empty()) return kExitSomeFailed;
    auto enc = ml::ImageEncoder::Load(path, {});
    if (!enc.ok()) {
      log::Error(enc.status().message());
      return kExitSomeFailed;
    }
    auto txt = ml::TextEncoder::Load(path, {});
    log::Info(
        fmt::format("{}: files intact; image tower loads ({}-dim){}", path, (*enc)->dim(),
                    txt.ok() ? "; text tower loads" : "; text tower: " + txt.status().message()));
    return txt.ok() ? kExitOk : kExitSomeFailed;
  }
  if (action == "convert") {
    ml::GgufType t = o.convert_type == "f32"    ? ml::GgufType::kF32
                     : o.convert_type == "q8_0" ? ml::GgufType::kQ8_0
                     : o.convert_type == "q4_0" ? ml::GgufType::kQ4_0
                                                : ml::GgufType::kF16;
    Status st = ml::ConvertToGguf(path, o.convert_out, t);
    if (!st.ok()) {
      log::Error(st.message());
      return kExitError;
    }
    log::Info(fmt::format("wrote {} ({})", o.convert_out, o.convert_type));
    return kExitOk;
  }
  return kExitError;
}

namespace {
// Which model a search uses: --model, or the catalog's only model when it is an installed
// registry model. Errors say what the catalog has.
Result<std::string> SearchModelPath(const Options& o, Catalog& cat) {
  auto models = cat.EmbeddingModels();
  if (!models.ok()) return models.status();
  std::string have;
  for (const auto& [m, n] : *models)
    have += fmt::format("{}{} ({} images)", have.empty() ? "" : ", ", m, n);
  if (models->empty())
    return Status::NotFound(
        "no image embeddings in the catalog yet: run `lumen index DIR --model MODEL` first");
  if (!o.model.empty()) return ml::ResolveModelPath(o.model);
  if (models->size() == 1) {
    const std::string& id = models->front().first;
    std::string name = id.substr(id.find(':') + 1);
    std::string path = ml::ResolveModelPath(name);
    std::error_code ec;
    if (ml::FindModel(name) && std::filesystem::exists(path, ec)) return path;
  }
  return Status::Invalid(
      fmt::format("say which model with --model (the catalog has embeddings from: {})", have));
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
  auto c = OpenCatalog(o);
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
      auto opened = OpenFile(query);
      if (!opened.ok()) return fail(opened.status());
      std::vector<uint8_t> bytes;
      if (Status st = ReadAll(*opened, &bytes); !st.ok()) return fail(st);
      hash = HashBytes(bytes.data(), bytes.size());
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
      if (r.outcome != ItemResult::Outcome::kNew) return fail(r.status);
      if (Status st = p.encoder->Encode(r.encoder_input.data(), 1, q.data()); !st.ok())
        return fail(st);
    } else {
      return fail(Status::NotFound(
          fmt::format("content hash {} has no embedding from {} in the catalog", query, model_id)));
    }
  }

  std::unordered_set<int64_t> allowed;
  Catalog::AssetFilter filter{o.folder.empty() ? "" : AbsolutePath(o.folder), o.camera, o.date_from,
                              o.date_to, o.tag};
  const bool filtered = !filter.empty();
  if (filtered) {
    auto f = cat.FilterAssets(filter);
    if (!f.ok()) return fail(f.status());
    allowed = std::move(f.value());
  }
  auto keep = [&](int64_t id) { return id != exclude && (!filtered || allowed.count(id) > 0); };
  auto hits = index.Search(q.data(), static_cast<size_t>(o.top), keep);

  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < hits.size(); ++i) {
    auto a = cat.GetAsset(hits[i].id);
    if (!a.ok()) return fail(a.status());
    nlohmann::json j{{"rank", i + 1},
                     {"path", a->path},
                     {"content_hash", a->hash.Hex()},
                     {"cosine", hits[i].cosine},
                     {"captured_at", a->captured_at ? nlohmann::json(*a->captured_at) : nullptr},
                     {"camera", a->camera ? nlohmann::json(*a->camera) : nullptr}};
    // SigLIP: the model's own match probability; CLIP: its scaled logit.
    if (!similar)
      j["score"] = sigmoid ? 1.0 / (1.0 + std::exp(-(scale * hits[i].cosine + bias)))
                           : double(scale) * hits[i].cosine;
    out.push_back(std::move(j));
  }
  if (o.json_out) {
    std::puts(out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  if (out.empty()) std::printf("no matching images\n");
  for (const auto& j : out) {
    std::string score =
        j.contains("score") ? fmt::format("score {:.4f}  ", j["score"].get<double>()) : "";
    std::printf("%3d  %scos %.4f  %s\n", j["rank"].get<int>(), score.c_str(),
                j["cosine"].get<double>(), log::Printable(j["path"].get<std::string>()).c_str());
  }
  return kExitOk;
}

int RunTagsBuild(const Options& o) {
  SetupLogging(o);
  auto fail = [](const Status& st) {
    log::Error(st.message());
    return kExitError;
  };
  std::string path = ml::ResolveModelPath(o.model);
  auto text = ml::TextEncoder::Load(path, {});
  if (!text.ok()) return fail(text.status());
  auto vocab = tags::Vocabulary::Build(VocabOptions(o));
  if (!vocab.ok()) return fail(vocab.status());
  tags::BankKey key{EncoderId(path, (*text)->config().family), vocab->Hash(), o.prompt,
                    (*text)->dim()};
  std::string catalog = o.catalog.empty() ? DefaultCatalogPath() : o.catalog;
  std::string bank_path = BankPath(catalog, key);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(bank_path).parent_path(), ec);
  Progress progress(Progress::Detect(o.quiet, false), "terms");
  tags::BuildOptions bo;
  bo.chunk = 256;
  const uint64_t t0 = MonotonicNs();
  bo.on_chunk = [&](size_t done, size_t total) {
    progress.Update(done, total, 0, 0);
    return !Interrupted();
  };
  tags::EncodeFn encode = [&](const std::vector<std::string>& texts, float* out) {
    return (*text)->Encode(texts, out);
  };
  Status st = tags::BuildLabelBank(bank_path, key, *vocab, tags::PriorityOrder(*vocab), encode, bo);
  progress.Finish();
  if (!st.ok()) return fail(st);
  auto bank = tags::LabelBank::Open(bank_path, key);
  if (!bank.ok()) return fail(bank.status());
  double el = (MonotonicNs() - t0) / 1e9;
  log::Info(fmt::format("label bank {}: {} of {} terms ({} vocabulary), {:.1f} s{}", bank_path,
                        (*bank)->rows_done(), (*bank)->count(), vocab->size(), el,
                        (*bank)->complete() ? "" : "; interrupted: run again to resume"));
  return (*bank)->complete() ? kExitOk : 128 + (InterruptSignal() ? InterruptSignal() : 2);
}

int RunTagsRescore(const Options& o) {
  SetupLogging(o);
  auto fail = [](const Status& st) {
    log::Error(st.message());
    return kExitError;
  };
  auto c = OpenCatalog(o);
  if (!c.ok()) return fail(c.status());
  Catalog& cat = **c;
  std::string path = ml::ResolveModelPath(o.model);
  auto source = ml::OpenModel(path);
  if (!source.ok()) return fail(source.status());
  const ml::ModelConfig cfg = (*source)->config;
  source->reset();
  const std::string model_id = EncoderId(path, cfg.family);
  auto tagging = LoadTagging(o, path, model_id, cfg.embed_dim());
  if (!tagging.ok()) return fail(tagging.status());
  FlatIndex stored(cfg.embed_dim());
  if (Status st = cat.LoadEmbeddings(model_id, &stored); !st.ok()) return fail(st);
  // Stored embeddings only: no image is read or encoded again.
  const uint64_t t0 = MonotonicNs();
  const size_t batch = 256, dim = size_t(cfg.embed_dim());
  if (Status st = cat.Begin(); !st.ok()) return fail(st);
  for (size_t at = 0; at < stored.size(); at += batch) {
    const size_t n = std::min(batch, stored.size() - at);
    auto scored = tags::ScoreImages(stored.data() + at * dim, n, *tagging->bank,
                                    tagging->calibration, tagging->score);
    for (size_t i = 0; i < n; ++i) {
      if (tagging->drop_ancestors) tags::DropAncestors(*tagging->vocab, &scored[i]);
      std::vector<std::tuple<std::string, std::string, float>> rows;
      for (const tags::Tag& t : scored[i]) {
        const tags::Term& term = tagging->vocab->terms()[t.term];
        rows.emplace_back(term.text, term.category, t.confidence);
      }
      if (Status st = cat.PutTags(stored.ids()[at + i], tagging->bank_id, rows); !st.ok())
        return fail(st);
    }
  }
  if (Status st = cat.Commit(); !st.ok()) return fail(st);
  log::Info(fmt::format(
      "re-scored {} images from their stored embeddings against {} of {} terms in {:.2f} s",
      stored.size(), tagging->bank->rows_done(), tagging->bank->count(),
      (MonotonicNs() - t0) / 1e9));
  return kExitOk;
}

}  // namespace lumen::cli
