#include "commands.h"
#include "bank.h"
#include "cli_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
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
#include "lumen/image/decode.h"
#include "lumen/io/file.h"
#include "lumen/io/hash.h"
#include "lumen/io/output.h"
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
#include "lumen/tags/pools.h"
#include "lumen/tags/scorer.h"
#include "lumen/tags/vocabulary.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/util/progress.h"

namespace lumen::cli {

int RunIndex(const Options& o, const char* argv0) {
  SetupLogging(o);
  if (Status st = CheckInputPaths(o.paths); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
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
  std::unique_ptr<BankBuild> bank;
  if (Status st = LoadEncoder(o, &p, &bank); !st.ok()) {
    log::Error(st.message());
    return st.code() == Code::kInterrupted ? 128 + InterruptSignal() : kExitError;
  }
  p.incremental = !o.full;
  if (o.tag_pools && p.tagging) {
    auto pools = std::make_shared<tags::RelevancePools>(*p.tagging->vocab);
    auto state = cat.GetTagPools(p.tagging->bank_id);
    if (!state.ok()) {
      log::Error(state.status().message());
      return kExitError;
    }
    if (*state) {
      if (Status st = pools->Load(**state); !st.ok())
        log::Warn(fmt::format("relevance pools start over: {}", st.message()));
    }
    p.tagging->pools = pools;
  }
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
  if (p.tagging && p.tagging->pools) {
    const auto& pl = *p.tagging->pools;
    if (Status st = cat.PutTagPools(p.tagging->bank_id, pl.Save()); !st.ok())
      log::Warn(st.message());
    if (pl.rows_full())
      log::Info(fmt::format(
          "relevance pools: {:.1f}% of the full scoring work ({} active, {} warm, "
          "{} cold terms)",
          100.0 * double(pl.rows_scored()) / double(pl.rows_full()), pl.count(tags::Pool::kActive),
          pl.count(tags::Pool::kWarm), pl.count(tags::Pool::kCold)));
  }
  if (bank) {
    // Finish the bank (unless told not to), then tag what is not tagged against all of it yet:
    // photos scored while it grew, photos cataloged before --tags or before a vocabulary change.
    if (Status st = bank->Finish(!o.no_bank_wait && !sum->interrupted, o.quiet); !st.ok())
      log::Warn(st.message());
    auto tagged = TagFromStoredEmbeddings(&cat, bank->tagging(), p.encoder_id, p.encoder->dim(),
                                          false, o.write_xmp ? &xmp : nullptr);
    if (!tagged.ok()) {
      log::Error(tagged.status().message());
      return kExitError;
    }
    auto now = bank->tagging().bank->Current();
    if (*tagged)
      log::Info(fmt::format("tagged {} images from their stored embeddings ({} of {} terms)",
                            *tagged, now->rows_done(), now->count()));
    if (!now->complete())
      log::Warn(
          fmt::format("the label bank has {} of {} terms; the next `lumen index --tags` "
                      "(or `lumen tags build`) resumes it, then re-tags",
                      now->rows_done(), now->count()));
  }
  if (Interrupted() && !sum->interrupted) return 128 + InterruptSignal();
  int rc = ExitCode(*sum);
  if (o.describe && !sum->interrupted) {
    Options d = o;
    d.describe_skip_index = true;
    d.describe_records = false;
    rc = std::max(rc, RunDescribe(d, argv0));
  }
  return rc;
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

// A JSONL file cut short by a kill ends without a newline: drop the partial record. Through a
// descriptor opened without following links (the output was checked, but a link could have
// been swapped in since).
void TrimPartialLine(const std::string& file) {
  const int fd = ::open(file.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    off_t keep = st.st_size;
    char buf[4096];
    while (keep > 0) {
      const off_t from = std::max<off_t>(0, keep - off_t(sizeof buf));
      const ssize_t n = ::pread(fd, buf, size_t(keep - from), from);
      if (n <= 0) break;
      const char* nl = static_cast<const char*>(::memrchr(buf, '\n', size_t(n)));
      if (nl) {
        keep = from + (nl - buf) + 1;
        break;
      }
      keep = from;
    }
    if (keep != st.st_size) (void)::ftruncate(fd, keep);
  }
  ::close(fd);
}
}  // namespace

int RunProcess(const Options& o, const char* argv0) {
  SetupLogging(o);
  if (Status st = CheckInputPaths(o.paths); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  if (Status st = InitLibraries(argv0); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  RecordFormat fmt = o.format == "json" ? RecordFormat::kJsonArray : RecordFormat::kJsonl;
  if (o.describe && fmt == RecordFormat::kJsonArray) {
    log::Error("--describe adds JSONL enrichment records: use -f jsonl");
    return kExitError;
  }
  if (!o.output.empty()) {
    if (Status st = CheckOutput(o.output, OutputKind::kJson, o.paths); !st.ok()) {
      log::Error(st.message());
      return kExitError;
    }
  }
  PipelineOptions p = MakePipelineOptions(o);
  std::unique_ptr<BankBuild> bank;
  if (Status st = LoadEncoder(o, &p, &bank); !st.ok()) {
    log::Error(st.message());
    return st.code() == Code::kInterrupted ? 128 + InterruptSignal() : kExitError;
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

  // JSONL is appended in place with --skip-existing; otherwise the records go to a temporary
  // file renamed over the output at the end: a failed run leaves what was there, an interrupted
  // one writes the complete records of the work it finished (never half an array). Either way the
  // output may not be an input or a file of another kind (a photo named by mistake).
  std::FILE* out = stdout;
  TempFile tmp;
  if (!o.output.empty()) {
    if (fmt == RecordFormat::kJsonl && o.skip_existing) {
      TrimPartialLine(o.output);
      auto f = OpenAppend(o.output, OutputKind::kJson, o.paths);
      if (!f.ok()) {
        log::Error(f.status().message());
        return kExitError;
      }
      out = *f;
    } else {
      auto t = OpenOutput(o.output, OutputKind::kJson, o.paths);
      if (!t.ok() || !t->stream()) {
        log::Error(t.ok() ? fmt::format("cannot write {}", o.output) : t.status().message());
        return kExitError;
      }
      tmp = std::move(*t);
      out = tmp.stream();
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
  if (bank) {
    // Records are already written: stop the background build (the next run resumes it).
    (void)bank->Finish(false, o.quiet);
    auto now = bank->tagging().bank->Current();
    if (!now->complete())
      log::Warn(
          fmt::format("tags came from {} of {} label-bank terms (the bank is still being "
                      "built; `lumen tags build` finishes it)",
                      now->rows_done(), now->count()));
  }
  Status write_st;
  if (!sum.ok()) {
    tmp.Discard();
  } else if (!tmp.path().empty()) {
    write_st = tmp.Commit();
  } else if (out != stdout && std::fclose(out) != 0) {
    write_st = Status::Io(fmt::format("cannot write {}: {}", o.output, std::strerror(errno)));
  }
  if (!sum.ok() || !write_st.ok()) {
    log::Error(sum.ok() ? write_st.message() : sum.status().message());
    return kExitError;
  }
  if (cat) {
    RunCounts c{sum->succeeded, sum->failed, sum->skipped, sum->unchanged, sum->missing};
    (void)cat->FinishRun(run, sum->interrupted ? "interrupted" : "done", c);
  }
  Report(o, *sum, profile, "processed");
  int rc = ExitCode(*sum);
  if (o.describe && !sum->interrupted) {
    // Enrichment records follow the image records, in the same output.
    Options d = o;
    d.describe_append = true;
    rc = std::max(rc, RunDescribe(d, argv0));
  }
  return rc;
}

int RunStats(const Options& o) {
  SetupLogging(o);
  auto c = OpenCatalog(o, Catalog::Mode::kReadOnly);
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
  j["photos"] = count("SELECT COUNT(*) FROM assets WHERE kind='photo'");
  j["documents"] = count("SELECT COUNT(*) FROM assets WHERE kind='document'");
  j["videos"] = count("SELECT COUNT(*) FROM assets WHERE kind='video'");
  {
    auto s = sql::Prepare(db,
                          "SELECT COALESCE(SUM(d),0) FROM (SELECT MAX(duration) d FROM videos "
                          "GROUP BY asset_id)");
    Status e;
    j["video_seconds"] = s.ok() && s->Step(&e) ? s->Double(0) : 0.0;
  }
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
    std::puts(json::Dump(j, 2).c_str());
    return kExitOk;
  }
  std::printf("catalog   %s (schema v%d)\n", (*c)->path().c_str(), j["schema_version"].get<int>());
  std::printf("assets    %lld distinct (%lld photos, %lld videos of %.1f h, %lld documents)\n",
              static_cast<long long>(j["assets"].get<int64_t>()),
              static_cast<long long>(j["photos"].get<int64_t>()),
              static_cast<long long>(j["videos"].get<int64_t>()),
              j["video_seconds"].get<double>() / 3600,
              static_cast<long long>(j["documents"].get<int64_t>()));
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

}  // namespace lumen::cli
