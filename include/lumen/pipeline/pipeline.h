// The staged executor behind `lumen index` and `lumen process`.
//
//   scan (serial) -> read once -> hash -> [known asset? done] -> kind from the content
//     photo:    EXIF/XMP -> decode reduced -> thumbnail + perceptual hashes + model input
//     document: text and the document's own metadata (doc/document.h), bounded
//     video:    one streaming pass (video/analyze.h): hash, probe, shots, key frames, poster
//               -> thumbnail (the poster) + key frames' perceptual hashes and model inputs
//     (parallel, all cores)
//     -> image encoder (frames of photos and videos, in full batches) / text tower (documents)
//     -> sinks: catalog writer, JSON records (serial, batched transactions)
//
// Bounded: at most `tokens` items are in flight and the file bytes held in memory are capped by
// `memory_budget`, whatever the number of files. Every item carries its own outcome; a file that
// fails records why and the run goes on. SIGINT/SIGTERM stop the scan, let the items in flight
// finish (or drop them if they have not started decoding) and commit what is done.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lumen/catalog/catalog.h"
#include "lumen/doc/document.h"
#include "lumen/image/decode.h"
#include "lumen/image/derive.h"
#include "lumen/io/hash.h"
#include "lumen/io/magic.h"
#include "lumen/io/scan.h"
#include "lumen/meta/exif.h"
#include "lumen/ml/image_encoder.h"
#include "lumen/ml/text_encoder.h"
#include "lumen/tags/label_bank.h"
#include "lumen/tags/pools.h"
#include "lumen/tags/scorer.h"
#include "lumen/tags/vocabulary.h"
#include "lumen/util/profile.h"
#include "lumen/util/progress.h"
#include "lumen/util/status.h"
#include "lumen/video/analyze.h"

namespace lumen {

struct ItemResult {
  enum class Outcome {
    kNew,          // read, hashed and every product derived
    kKnown,        // read and hashed; the content was already complete in the catalog
    kFailed,       // recorded with a reason
    kSkipped,      // neither an image nor a document (nor named like one), or a link not followed
    kInterrupted,  // dropped because of a stop request; not recorded
  };
  Outcome outcome = Outcome::kFailed;
  Status status;  // the reason for kFailed / kSkipped
  std::string path;
  FileIdentity identity;
  Hash128 hash;
  MediaKind kind = MediaKind::kPhoto;
  Format format = Format::kUnknown;        // a photo's
  std::string format_name;                 // "jpeg", "pdf", "docx", ...
  std::optional<DocumentRecord> document;  // a document's text and metadata
  std::optional<VideoRecord> video;        // a video's probe, shots and key frames
  int width = 0, height = 0;
  std::string colorspace;
  bool has_alpha = false;
  std::optional<PhotoMetadata> metadata;
  std::optional<Thumbnail> thumbnail;
  std::optional<PerceptualHashes> hashes;
  std::optional<Image> model_input;
  // For the image encoder (freed once encoded): `encoder_frames` inputs, one for a photo
  // (preprocessed floats), one per key frame for a video (its upright input square, normalised
  // when it is encoded: a quarter of the memory while it waits).
  std::vector<float> encoder_input;
  std::vector<Image> encoder_squares;
  int encoder_frames = 0;
  // L2-normalised, when an encoder ran (image or text tower); a video's is its key frames' mean.
  std::vector<float> embedding;
  std::vector<float> frame_embeddings;  // a video's key frames' (frames x dim)
  struct ItemTag {
    std::string name, category, path;  // path: "animal > dog > retriever" (WordNet terms)
    float confidence = 0;
  };
  // Zero-shot tags, most confident first, when a bank is loaded; a video's are each term's best
  // over its key frames, and `frame_tags` are the key frames' own.
  std::vector<ItemTag> tags;
  std::vector<std::vector<ItemTag>> frame_tags;
  size_t tag_terms = 0;  // bank rows the tags were scored against (0: not scored)
};

// Consumers of finished items, called from one thread in completion order.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status Accept(const ItemResult& item) = 0;
  // Called at the end of the run (also after an interruption).
  virtual Status Finish() = 0;
};

struct PipelineOptions {
  std::vector<std::string> roots;
  ScanOptions scan;
  int jobs = 0;             // worker threads; 0 = all cores
  bool incremental = true;  // skip unchanged locations and complete assets (needs catalog)
  bool thumbnails = true;
  ThumbnailOptions thumbnail;
  bool model_input = false;  // compute the encoder input (measured with --profile)
  ModelInputSpec model;
  // Image encoder: items are preprocessed in the parallel stage, then encoded in batches of
  // `batch_size` with all threads while the next items are being decoded.
  std::shared_ptr<ml::ImageEncoder> encoder;
  std::string encoder_id;  // catalog model id of the encoder
  int batch_size = 8;
  // Zero-shot tagging of each encoded batch (needs `encoder`): one GEMM against the bank.
  struct Tagging {
    std::shared_ptr<tags::Vocabulary> vocab;
    std::shared_ptr<tags::LiveBank> bank;  // may grow during the run (a background build)
    tags::Calibration calibration;
    tags::ScoreOptions score;
    bool drop_ancestors = false;
    std::string bank_id;  // catalog key: model id + vocabulary hash + prompt
    std::shared_ptr<tags::RelevancePools> pools;  // opt-in: score a learned subset of the bank
  };
  std::optional<Tagging> tagging;
  // Documents (text, PDF, office files, RTF, EPUB): extracted within `doc_limits`; off: skipped
  // like any other non-image.
  bool documents = true;
  doc::DocLimits doc_limits;
  // The text tower that embeds documents into the image encoder's space (so text search finds
  // them), loaded on the first document only; may return null (no text tower: no embedding).
  std::function<ml::TextEncoder*()> document_encoder;
  // Videos (MP4, MOV, MKV, AVI, ...): analysed in one pass (video/analyze.h); off: skipped.
  bool videos = true;
  video::AnalyzeOptions video;
  DecodeLimits limits;
  // Set with `limits` (cli_util.h, InputLimits): one default for every command.
  uint64_t max_file_bytes = DecodeLimits{}.max_file_bytes;
  uint64_t memory_budget = 256ull << 20;  // file bytes held in memory at once
  uint64_t limit = 0;                     // process at most this many files (0 = all)
  std::function<bool(const std::string& path)> skip_path;  // e.g. --skip-existing
  std::function<void()> after_read_for_test;               // fault injection in tests
  int64_t run_id = 0;  // the catalog run these results belong to
};

struct RunSummary {
  uint64_t succeeded = 0;  // new + known
  uint64_t known = 0;      // of which the content was already cataloged
  uint64_t failed = 0;
  uint64_t skipped = 0;
  uint64_t unchanged = 0;
  uint64_t missing = 0;
  uint64_t bytes = 0;  // bytes read
  double elapsed_s = 0;
  bool interrupted = false;
  bool limited = false;                                       // stopped by --limit
  std::vector<std::pair<std::string, std::string>> failures;  // (path, reason), first 1000
};

// The catalog product names for the given options ("webp256q80@1", ...).
Producers ProducersFor(const PipelineOptions& opt);

// Runs the pipeline. `catalog` may be null (process without a catalog). Errors are fatal ones
// only (the catalog cannot be written); per-file failures are counted in the summary.
Result<RunSummary> RunPipeline(const PipelineOptions& opt, Catalog* catalog,
                               const std::vector<Sink*>& sinks, Profile* profile,
                               Progress* progress);

// Exposed for tests: the per-file work of the parallel stage.
ItemResult ProcessFile(const std::string& path, const PipelineOptions& opt,
                       const std::unordered_set<Hash128, Hash128Hasher>* complete,
                       Profile* profile);

}  // namespace lumen
