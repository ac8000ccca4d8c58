// Private to the CLI: what the subcommands share (logging set-up, catalog and model loading,
// pipeline options from flags, the end-of-run report).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "lumen/catalog/catalog.h"
#include "lumen/ml/model_files.h"
#include "lumen/pipeline/pipeline.h"
#include "lumen/tags/label_bank.h"
#include "lumen/tags/scorer.h"
#include "lumen/tags/vocabulary.h"
#include "lumen/util/profile.h"
#include "lumen/util/status.h"

namespace lumen::cli {

void SetupLogging(const Options& o);
Status InitLibraries(const char* argv0);
// The catalog of --catalog / $LUMEN_CATALOG / the default path; `mode` kReadOnly for commands
// that only read it (stats, search, similar, history).
Result<std::unique_ptr<Catalog>> OpenCatalog(const Options& o,
                                             Catalog::Mode mode = Catalog::Mode::kReadWrite);

// The catalog's id for a model: family and the folder's (or file's) name,
// "siglip:siglip-base-patch16-224".
std::string EncoderId(const std::string& path, ml::Family family);
// Which model a search uses: --model, or the catalog's only model when it is an installed
// registry model. Errors say what the catalog has.
Result<std::string> SearchModelPath(const Options& o, Catalog& cat);
tags::VocabularyOptions VocabOptions(const Options& o);
// "<catalog dir>/<sub>/<model id made file-safe>": per-model files kept beside the catalog.
std::string BesideCatalog(const std::string& catalog, const std::string& sub,
                          const std::string& model_id);
// Where the bank for (model, vocabulary, prompt) lives: beside the catalog.
std::string BankPath(const std::string& catalog, const tags::BankKey& key);
tags::Calibration ModelCalibration(const ml::ModelSource& m);
// Tagging for the model at `path` (id `model_id`) without its bank: vocabulary, calibration,
// thresholds, bank id; `key` and `bank_path` say which bank file it needs.
Result<PipelineOptions::Tagging> TaggingFor(const Options& o, const std::string& path,
                                            const std::string& model_id, int dim,
                                            tags::BankKey* key, std::string* bank_path);
// The same with its bank, which must exist (`lumen tags build`).
Result<PipelineOptions::Tagging> LoadTagging(const Options& o, const std::string& path,
                                             const std::string& model_id, int dim);
// The image encoder (and tagging) for --model/--quality/--tags.
// With --tags, `bank` receives the label bank's build (see bank.h).
class BankBuild;
Status LoadEncoder(const Options& o, PipelineOptions* p, std::unique_ptr<BankBuild>* bank);
PipelineOptions MakePipelineOptions(const Options& o);
// The input limits of every command that reads images (--max-file-size, --max-pixels; the scan
// limit's default): index and process through MakePipelineOptions, convert directly.
DecodeLimits InputLimits(const Options& o);

// Every path named on the command line must be a folder or a regular file (or a link to one):
// a typo, a broken link, a FIFO or a device is an error naming it, before any work starts.
Status CheckInputPaths(const std::vector<std::string>& paths);

int ExitCode(const RunSummary& s);
// The mean luma (0..255) of the asset's stored thumbnail: nearly black frames. nullopt when it
// has none.
std::optional<double> ThumbnailLuma(Catalog& cat, int64_t asset);
void Report(const Options& o, const RunSummary& s, const Profile& profile, const char* verb);

// Text for an HTML page (element content and double-quoted attributes): & < > " escaped.
std::string HtmlEscape(std::string_view s);
// Seconds as H:MM:SS (whole seconds; negative as 0), for durations and times of day in a video.
std::string Clock(double seconds);

// Brings the catalog up to date for `roots` before a command reads it (unchanged files cost
// nothing): quietly, with embeddings only when `embeddings`. kExitOk or kExitSomeFailed when
// the command can go on; any other code is the command's exit code.
int IndexFirst(const Options& o, const std::vector<std::string>& roots, bool embeddings,
               const char* argv0);

}  // namespace lumen::cli
