#include "bank.h"
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
#include "lumen/search/flat_index.h"
#include "lumen/tags/label_bank.h"
#include "lumen/tags/scorer.h"
#include "lumen/tags/vocabulary.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/util/progress.h"

namespace lumen::cli {

int RunTagsBuild(const Options& o) {
  SetupLogging(o);
  auto fail = [](const Status& st) {
    log::Error(st.message());
    return kExitError;
  };
  std::string path = ml::ResolveModelPath(o.model);
  ml::EncoderOptions eo;
  eo.threads = o.jobs;
  eo.weights = ml::ParseWeightType(o.weights).value_or(ml::WeightType::kStored);
  auto text = ml::TextEncoder::Load(path, eo);
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
  // Stored embeddings only: no image is read or encoded again.
  const uint64_t t0 = MonotonicNs();
  auto n = TagFromStoredEmbeddings(&cat, *tagging, model_id, cfg.embed_dim(), true);
  if (!n.ok()) return fail(n.status());
  auto bank = tagging->bank->Current();
  log::Info(fmt::format(
      "re-scored {} images from their stored embeddings against {} of {} terms in {:.2f} s", *n,
      bank->rows_done(), bank->count(), (MonotonicNs() - t0) / 1e9));
  return kExitOk;
}

}  // namespace lumen::cli
