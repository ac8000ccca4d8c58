// The label bank during an index run: opened when it is finished; otherwise its seed terms are
// encoded first (synchronously), and the rest in a background thread that publishes each
// persisted chunk to the live scorer. At the end, assets scored against fewer rows than the bank
// now has are re-scored from their stored embeddings (no image is read again).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "commands.h"
#include "lumen/catalog/catalog.h"
#include "lumen/ml/text_encoder.h"
#include "lumen/pipeline/pipeline.h"
#include "lumen/pipeline/sinks.h"
#include "lumen/util/status.h"

namespace lumen::cli {

class BankBuild {
 public:
  // Tagging for the image model at `path`; builds the seed set first when the bank is not
  // finished. Interrupted (Ctrl-C) during the seed: Status kInterrupted-like Invalid.
  static Result<std::unique_ptr<BankBuild>> Start(const Options& o, const std::string& path,
                                                  const std::string& model_id, int dim);
  ~BankBuild();

  const PipelineOptions::Tagging& tagging() const { return tagging_; }
  bool building() const { return thread_.joinable(); }
  // Finishes the background build (wait: to the last term, on all cores, with progress; else
  // stops after the current chunk). A Ctrl-C while waiting stops it too; it resumes next time.
  Status Finish(bool wait, bool quiet);

 private:
  BankBuild() = default;
  void Run();

  PipelineOptions::Tagging tagging_;
  std::string path_;
  tags::BankKey key_;
  std::unique_ptr<ml::TextEncoder> text_;
  std::vector<uint32_t> order_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> threads_{1};
  std::atomic<bool> failed_{false};
  Status status_;
};

// Scores the current assets that have an embedding from `model_id` but were not yet scored
// against every finished row of the bank (or all of them: `all`), from the stored embeddings.
// Returns how many were scored.
// `xmp` (optional) also merges the new tags into the XMP sidecar of each asset's current file.
Result<size_t> TagFromStoredEmbeddings(Catalog* cat, const PipelineOptions::Tagging& t,
                                       const std::string& model_id, int dim, bool all,
                                       XmpSink* xmp = nullptr);

}  // namespace lumen::cli
