#include "bank.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <unordered_map>

#include <fmt/format.h>

#include "cli_util.h"
#include "lumen/search/flat_index.h"
#include "lumen/tags/label_bank.h"
#include "lumen/tags/scorer.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"
#include "lumen/util/progress.h"

namespace lumen::cli {

namespace {
// Chunks of the background build: small, so a stop request or a Ctrl-C is honoured within a few
// seconds even for SigLIP's 64-token prompts, and the live scorer gains terms often.
constexpr size_t kBackgroundChunk = 64;
}  // namespace

Result<std::unique_ptr<BankBuild>> BankBuild::Start(const Options& o, const std::string& path,
                                                    const std::string& model_id, int dim) {
  std::unique_ptr<BankBuild> b(new BankBuild());
  auto tagging = TaggingFor(o, path, model_id, dim, &b->key_, &b->path_);
  if (!tagging.ok()) return tagging.status();
  b->tagging_ = std::move(tagging.value());
  PipelineOptions::Tagging& t = b->tagging_;

  auto bank = tags::LabelBank::Open(b->path_, b->key_);
  if (bank.ok() && (*bank)->complete()) {
    t.bank = std::make_shared<tags::LiveBank>(std::move(bank.value()));
    return b;
  }
  // Not finished (or not there): the text tower encodes the seed terms now, the rest later.
  ml::EncoderOptions eo;
  eo.threads = o.jobs;
  eo.weights = ml::ParseWeightType(o.weights).value_or(ml::WeightType::kStored);
  auto text = ml::TextEncoder::Load(path, eo);
  if (!text.ok())
    return Status::Invalid(fmt::format(
        "tags need the model's text tower to build the label bank: {}", text.status().message()));
  b->text_ = std::move(text.value());
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(b->path_).parent_path(), ec);
  b->order_ = tags::PriorityOrder(*t.vocab);
  const size_t seed = std::min(static_cast<size_t>(std::max(1, o.bank_seed)), b->order_.size());
  const size_t have = bank.ok() ? (*bank)->rows_done() : 0;
  tags::EncodeFn encode = [tx = b->text_.get(), self = b.get()](
                              const std::vector<std::string>& texts, float* out) {
    tx->set_threads(self->threads_.load());
    return tx->Encode(texts, out);
  };
  if (have < seed) {
    log::Info(fmt::format(
        "label bank {}: encoding its first {} of {} terms now; the rest follows in the background",
        b->path_, seed, b->order_.size()));
    b->threads_ = o.jobs;
    Progress progress(Progress::Detect(o.quiet, o.json_logs), "terms");
    tags::BuildOptions bo;
    bo.chunk = kBackgroundChunk;
    bo.on_chunk = [&](size_t done, size_t) {
      progress.Update(std::min(done, seed), seed, 0, 0);
      return done < seed && !Interrupted();
    };
    Status st = tags::BuildLabelBank(b->path_, b->key_, *t.vocab, b->order_, encode, bo);
    progress.Finish();
    if (!st.ok()) return st;
    if (Interrupted())
      return Status::Interrupted(
          "interrupted while encoding the label bank (the next run resumes)");
  }
  bank = tags::LabelBank::Open(b->path_, b->key_);
  if (!bank.ok()) return bank.status();
  const bool done = (*bank)->complete();
  t.bank = std::make_shared<tags::LiveBank>(std::move(bank.value()));
  if (done) return b;
  // In the background: one thread, so the image encoder keeps the other cores.
  b->threads_ = 1;
  b->thread_ = std::thread([self = b.get(), encode] {
    tags::BuildOptions bo;
    bo.chunk = kBackgroundChunk;
    bo.on_chunk = [self](size_t, size_t) {
      auto now = tags::LabelBank::Open(self->path_, self->key_);
      if (now.ok()) self->tagging_.bank->Publish(std::move(now.value()));
      return !self->stop_.load();
    };
    // No exception may end the process from this thread: it becomes the build's status.
    try {
      self->status_ = tags::BuildLabelBank(self->path_, self->key_, *self->tagging_.vocab,
                                           self->order_, encode, bo);
    } catch (const std::exception& ex) {
      self->status_ = Status::Internal(fmt::format("label bank: {}", ex.what()));
    } catch (...) {
      self->status_ = Status::Internal("label bank: unknown error");
    }
    self->failed_ = !self->status_.ok();
    if (!self->status_.ok())
      log::Warn(fmt::format("label bank build stopped: {} (tags use the {} terms done)",
                            self->status_.message(), self->tagging_.bank->Current()->rows_done()));
  });
  return b;
}

BankBuild::~BankBuild() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

Status BankBuild::Finish(bool wait, bool quiet) {
  if (!thread_.joinable()) return status_;
  auto count = [&] { return tagging_.bank->Current()->count(); };
  auto rows = [&] { return tagging_.bank->Current()->rows_done(); };
  if (wait && !Interrupted() && rows() < count()) {
    log::Info(
        fmt::format("finishing the label bank: {} of {} terms so far (Ctrl-C stops; the next "
                    "run resumes)",
                    rows(), count()));
    threads_ = 0;  // all cores from the next chunk on
    Progress progress(Progress::Detect(quiet, log::IsJson()), "terms");
    // The thread ends by itself when the bank is complete or on an error.
    while (rows() < count() && !failed_ && !Interrupted()) {
      progress.Update(rows(), count(), 0, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    progress.Update(rows(), count(), 0, 0, true);
    progress.Finish();
  }
  stop_ = true;
  thread_.join();
  // The last chunk may have landed after the last publish.
  if (auto now = tags::LabelBank::Open(path_, key_); now.ok())
    tagging_.bank->Publish(std::move(now.value()));
  return status_;
}

Result<size_t> TagFromStoredEmbeddings(Catalog* cat, const PipelineOptions::Tagging& t,
                                       const std::string& model_id, int dim, bool all,
                                       XmpSink* xmp) {
  std::shared_ptr<const tags::LabelBank> bank = t.bank->Current();
  FlatIndex stored(dim);
  LUMEN_RETURN_IF_ERROR(
      all ? cat->LoadEmbeddings(model_id, &stored)
          : cat->LoadEmbeddingsToTag(model_id, t.bank_id, bank->rows_done(), &stored));
  // A video is tagged as the index run tags it: each key frame scored (frame_tags), and each
  // term's best over its frames as the video's tags; its pooled embedding is not scored.
  FlatIndex frames(dim);
  std::vector<std::pair<int64_t, double>> frame_at;
  LUMEN_RETURN_IF_ERROR(cat->LoadFrameEmbeddings(model_id, &frames, &frame_at));
  std::unordered_map<int64_t, std::pair<size_t, size_t>> rows_of;  // asset: its frames' rows
  for (size_t r = 0; r < frame_at.size(); ++r) {
    auto [it, added] = rows_of.emplace(frame_at[r].first, std::make_pair(r, r + 1));
    if (!added) it->second.second = r + 1;
  }
  const size_t batch = 256, d = size_t(dim);
  LUMEN_RETURN_IF_ERROR(cat->Begin());
  for (size_t at = 0; at < stored.size(); at += batch) {
    const size_t n = std::min(batch, stored.size() - at);
    auto scored = tags::ScoreImages(stored.data() + at * d, n, *bank, t.calibration, t.score);
    for (size_t i = 0; i < n; ++i) {
      if (auto v = rows_of.find(stored.ids()[at + i]); v != rows_of.end()) {
        const auto [begin, end] = v->second;
        auto per_frame = tags::ScoreImages(frames.data() + begin * d, end - begin, *bank,
                                           t.calibration, t.score);
        std::vector<std::tuple<int, std::string, float>> frame_rows;
        std::unordered_map<uint32_t, size_t> best;  // term -> index in scored[i]
        scored[i].clear();
        for (size_t f = 0; f < per_frame.size(); ++f) {
          if (t.drop_ancestors) tags::DropAncestors(*t.vocab, &per_frame[f]);
          for (const tags::Tag& tag : per_frame[f]) {
            frame_rows.emplace_back(int(f), t.vocab->terms()[tag.term].text, tag.confidence);
            auto [it, added] = best.emplace(tag.term, scored[i].size());
            if (added)
              scored[i].push_back(tag);
            else if (tag.confidence > scored[i][it->second].confidence)
              scored[i][it->second].confidence = tag.confidence;
          }
        }
        std::stable_sort(
            scored[i].begin(), scored[i].end(),
            [](const tags::Tag& a, const tags::Tag& b) { return a.confidence > b.confidence; });
        if (scored[i].size() > t.score.max_tags) scored[i].resize(t.score.max_tags);
        LUMEN_RETURN_IF_ERROR(cat->PutFrameTags(stored.ids()[at + i], t.bank_id, frame_rows));
      } else if (t.drop_ancestors) {
        tags::DropAncestors(*t.vocab, &scored[i]);
      }
      std::vector<std::tuple<std::string, std::string, float>> rows;
      for (const tags::Tag& tag : scored[i]) {
        const tags::Term& term = t.vocab->terms()[tag.term];
        rows.emplace_back(term.text, term.category, tag.confidence);
      }
      LUMEN_RETURN_IF_ERROR(cat->PutTags(stored.ids()[at + i], t.bank_id, bank->rows_done(), rows));
      if (xmp && !scored[i].empty()) {
        auto asset = cat->GetAsset(stored.ids()[at + i]);
        if (!asset.ok()) return asset.status();
        if (asset->path.empty()) continue;
        ItemResult r;
        r.path = asset->path;
        for (const tags::Tag& tag : scored[i]) {
          const tags::Term& term = t.vocab->terms()[tag.term];
          r.tags.push_back({term.text, term.category, t.vocab->Path(tag.term), tag.confidence});
        }
        if (Status st = xmp->Accept(r); !st.ok())
          log::Warn(
              fmt::format("{}: XMP sidecar not updated: {}", log::Printable(r.path), st.message()));
      }
    }
  }
  LUMEN_RETURN_IF_ERROR(cat->Commit());
  return stored.size();
}

}  // namespace lumen::cli
