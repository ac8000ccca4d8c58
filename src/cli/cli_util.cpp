#include "cli_util.h"

#include "bank.h"
#include "commands.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/catalog/catalog.h"
#include "lumen/image/convert.h"
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

std::string BesideCatalog(const std::string& catalog, const std::string& sub,
                          const std::string& model_id) {
  std::string dir = std::filesystem::path(catalog).parent_path().string();
  std::string id = model_id;
  for (auto& c : id)
    if (c == ':' || c == '/') c = '-';
  return fmt::format("{}/{}/{}", dir.empty() ? "." : dir, sub, id);
}

// Where the bank for (model, vocabulary, prompt) lives: beside the catalog.
std::string BankPath(const std::string& catalog, const tags::BankKey& key) {
  std::string salt = HashBytes(key.prompt.data(), key.prompt.size()).Hex().substr(0, 8);
  return fmt::format("{}-{}-{}.bank", BesideCatalog(catalog, "banks", key.model_id),
                     key.vocab_hash.substr(0, 12), salt);
}

// The model's own calibration: SigLIP's learned logit scale and bias; CLIP's scale with the
// documented offset (see tags/scorer.h).
tags::Calibration ModelCalibration(const ml::ModelSource& m) {
  const ml::ModelLogits l = ml::ReadLogits(m);
  if (m.config.family == ml::Family::kSiglip)
    return {l.scale.value_or(10.0f), l.bias.value_or(-10.0f)};
  return tags::Calibration::Clip(l.scale.value_or(100.0f));
}

Result<PipelineOptions::Tagging> TaggingFor(const Options& o, const std::string& path,
                                            const std::string& model_id, int dim,
                                            tags::BankKey* key, std::string* bank_path) {
  auto vocab = tags::Vocabulary::Build(VocabOptions(o));
  if (!vocab.ok()) return vocab.status();
  *key = tags::BankKey{model_id, vocab->Hash(), o.prompt, dim};
  *bank_path = BankPath(o.catalog.empty() ? DefaultCatalogPath() : o.catalog, *key);
  auto source = ml::OpenModel(path);
  if (!source.ok()) return source.status();
  PipelineOptions::Tagging t;
  t.vocab = std::make_shared<tags::Vocabulary>(std::move(vocab.value()));
  t.calibration = ModelCalibration(**source);
  t.score.min_confidence = o.min_confidence;
  t.score.max_tags = static_cast<size_t>(o.max_tags);
  t.drop_ancestors = o.drop_ancestors;
  t.bank_id = fmt::format("{}|{}|{}", model_id, key->vocab_hash.substr(0, 12), o.prompt);
  return t;
}

// The label bank and calibration for tagging with the model at `path` (id `model_id`).
Result<PipelineOptions::Tagging> LoadTagging(const Options& o, const std::string& path,
                                             const std::string& model_id, int dim) {
  tags::BankKey key;
  std::string bank_path;
  auto t = TaggingFor(o, path, model_id, dim, &key, &bank_path);
  if (!t.ok()) return t.status();
  auto bank = tags::LabelBank::Open(bank_path, key);
  if (!bank.ok())
    return Status::NotFound(
        fmt::format("no label bank for {} ({}): run `lumen tags build --model {}` first", model_id,
                    bank.status().message(), o.model.empty() ? "MODEL" : o.model));
  if (!(*bank)->complete())
    log::Warn(fmt::format("the label bank has {} of {} terms so far (lumen tags build resumes it)",
                          (*bank)->rows_done(), (*bank)->count()));
  t->bank = std::make_shared<tags::LiveBank>(std::move(bank.value()));
  return t;
}

// Loads the image encoder: --model NAME|PATH, else the default model for --quality when it is
// installed. Without a model, runs go on without embeddings (and say how to add them).
Status LoadEncoder(const Options& o, PipelineOptions* p, std::unique_ptr<BankBuild>* bank) {
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
  eo.weights = ml::ParseWeightType(o.weights).value_or(ml::WeightType::kStored);
  auto enc = ml::ImageEncoder::Load(path, eo);
  if (!enc.ok()) return enc.status();
  log::Debug(fmt::format("image encoder {}: {} weights, {}", path, ml::WeightTypeName(eo.weights),
                         (*enc)->own_matrices()   ? "lumen's " + (*enc)->own_kernel() + " kernels"
                         : (*enc)->amx_matrices() ? std::string("ggml's AMX kernels")
                                                  : std::string("ggml's kernels")));
  p->encoder_id = EncoderId(path, (*enc)->config().family);
  if (o.tags) {
    auto b = BankBuild::Start(o, path, p->encoder_id, (*enc)->dim());
    if (!b.ok()) return b.status();
    p->tagging = (*b)->tagging();
    *bank = std::move(b.value());
  }
  if ((*enc)->config().text.present) {
    // Documents are embedded by the text tower of the same model, loaded at the first document.
    auto held = std::make_shared<std::unique_ptr<ml::TextEncoder>>();
    p->document_encoder = [held, path, eo]() -> ml::TextEncoder* {
      if (*held) return held->get();
      auto text = ml::TextEncoder::Load(path, eo);
      if (!text.ok()) {
        log::Warn(fmt::format("documents get no embedding: {}", text.status().message()));
        return nullptr;
      }
      *held = std::move(text.value());
      return held->get();
    };
  }
  p->encoder = std::move(enc.value());
  p->batch_size = o.batch_size;
  return Status::Ok();
}

DecodeLimits InputLimits(const Options& o) {
  DecodeLimits l;
  l.max_pixels = static_cast<uint64_t>(o.max_megapixels * 1e6);
  l.max_file_bytes = static_cast<uint64_t>(o.max_file_mb * 1048576.0);
  return l;
}

PipelineOptions MakePipelineOptions(const Options& o) {
  PipelineOptions p;
  p.roots = o.paths;
  p.scan.include_hidden = o.include_hidden;
  p.scan.exclude = o.exclude;
  p.jobs = o.jobs;
  p.thumbnails = !o.no_thumbnail;
  p.documents = !o.no_documents;
  p.thumbnail.size = o.thumbnail_size;
  p.limits = InputLimits(o);
  p.max_file_bytes = p.limits.max_file_bytes;
  p.limit = o.limit;
  if (o.model_input_size > 0) {
    p.model_input = true;
    p.model.size = o.model_input_size;
  }
  return p;
}

Result<std::unique_ptr<Catalog>> OpenCatalog(const Options& o, Catalog::Mode mode) {
  std::string path = o.catalog.empty() ? DefaultCatalogPath() : o.catalog;
  return Catalog::Open(path, mode);
}

Status CheckInputPaths(const std::vector<std::string>& paths) {
  for (const auto& path : paths) {
    const std::string shown = log::Printable(path);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      const int err = errno;
      struct stat lst;
      if (err == ENOENT && ::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode))
        return Status::NotFound(fmt::format("{}: broken symbolic link", shown));
      if (err == ENOENT) return Status::NotFound(fmt::format("{}: no such file or folder", shown));
      if (err == ELOOP) return Status::Io(fmt::format("{}: symbolic link loop", shown));
      return Status::Io(fmt::format("{}: {}", shown, std::strerror(err)));
    }
    if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) continue;
    // The same words convert uses for what a path is ("a FIFO (named pipe), not an image file").
    return Status::Unsupported(
        fmt::format("{}: {}; lumen reads only regular files and folders", shown, FileKind(st)));
  }
  return Status::Ok();
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
        "{} missing; {:.1f} files/s, {:.1f} MB/s{}",
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

std::string Clock(double seconds) {
  const int64_t t = int64_t(std::max(0.0, seconds));
  return fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
}

std::string HtmlEscape(std::string_view s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

int IndexFirst(const Options& o, const std::vector<std::string>& roots, bool embeddings,
               const char* argv0) {
  Options io = o;
  io.paths = roots;
  io.describe = false;
  io.no_embedding = !embeddings;
  io.quiet = true;
  const int rc = RunIndex(io, argv0);
  SetupLogging(o);
  return rc;
}

std::optional<double> ThumbnailLuma(Catalog& cat, int64_t asset) {
  auto t = cat.GetThumbnail(asset);
  if (!t.ok() || !*t) return std::nullopt;
  DecodeTarget target;
  target.min_long_edge = 64;
  target.min_short_edge = 0;
  auto d = DecodeReduced((*t)->webp.data(), (*t)->webp.size(), Format::kWebp, target, {});
  if (!d.ok() || d->rgb.empty()) return std::nullopt;
  const Image g = ToGray(d->rgb);
  double sum = 0;
  for (uint8_t v : g.pixels) sum += v;
  return sum / double(std::max<size_t>(1, g.pixels.size()));
}

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

}  // namespace lumen::cli
