#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lumen/llm/provider.h"
#include "lumen/llm/throttle.h"
#include "lumen/organize/plan.h"
#include "lumen/util/status.h"

namespace lumen::cli {

inline constexpr const char* kVersion = "lumen 0.1.0";

// Exit status.
inline constexpr int kExitOk = 0;          // every file succeeded (or was unchanged/skipped)
inline constexpr int kExitSomeFailed = 1;  // finished, but some files failed (see the summary)
inline constexpr int kExitError = 2;       // bad arguments, unusable catalog or output
// Interrupted by a signal: 128 + signal (130 for SIGINT, 143 for SIGTERM), work committed.

struct Options {
  std::vector<std::string> paths;
  std::string catalog;
  int jobs = 0;
  bool quiet = false, verbose = false, json_logs = false, profile = false;
  int thumbnail_size = 256;
  bool no_thumbnail = false;
  bool no_documents = false;
  bool include_hidden = false;
  std::vector<std::string> exclude;
  double max_file_mb = 200;
  double max_megapixels = 100;
  uint64_t limit = 0;
  int model_input_size = 0;
  std::string model;  // image encoder: a Hugging Face model folder
  bool no_embedding = false;
  int batch_size = 8;
  std::string weights = "auto";
  std::string quality;  // fast | high (default model 224 vs 384)
  // models
  std::string model_name;
  std::string base_url;
  std::string convert_out;
  std::string convert_type = "f16";
  // tags
  bool tags = false;
  float min_confidence = 0.1f;
  int max_tags = 15;
  bool no_wordnet = false;
  bool drop_ancestors = false;
  bool write_xmp = false;
  std::vector<std::string> vocab_files;
  std::string prompt = "a photo of a {}.";
  int bank_seed = 2000;  // terms encoded before indexing starts when the bank is new
  bool no_bank_wait = false;
  bool tag_pools = false;
  // dupes
  int distance = 6;
  double burst_seconds = 2.0;
  std::string keep = "best";
  std::string keep_under;
  float similarity = 0.95f;        // semantic tier: embedding cosine (above 1: off)
  std::vector<std::string> tiers;  // listed (and acted on) tiers; empty: all (actions: exact, near)
  std::string move_to;             // quarantine folder
  bool dupes_hardlink = false;
  std::string report;  // HTML report file
  // describe (remote vision-language models)
  std::string llm = "openai";  // openai | ollama | anthropic | gemini | local
  std::string llm_model, api_key_env, llm_profile = "balanced";
  double rpm = 0, tpm = 0, llm_timeout = 0, rate_window = 0;
  int concurrency = 0, max_attempts = 0, image_edge = 768;
  std::string image_format = "jpeg";
  std::vector<std::string> taxonomy;  // allowed folder names
  std::string taxonomy_file;
  bool social = false;
  bool no_cache = false;  // describe, convert: neither use nor fill the result cache
  std::string api_key;    // from the config file (never printed)
  std::map<std::string, std::map<std::string, double>> profiles;  // [profiles.NAME] overrides
  std::string mmproj;        // --llm local: the vision projector GGUF
  int max_new_tokens = 512;  // tokens to generate at most
  int images_per_request = 1;
  bool prefilter = false;  // describe: skip dark/blurred photos, reuse near-duplicates' answers
  // posts
  bool from_catalog = false;  // group what the catalog holds (no folders, no indexing)
  bool caption = false;       // a caption + hashtags per post from the provider
  int max_per_post = 10;
  double gap_hours = 4;
  std::string
      html;  // an HTML preview file       // describe: photos per request (remote providers)
  int document_chars = 2000;         // describe: bytes of a document's text in the prompt
  bool describe = false;             // index/process --describe
  bool describe_records = true;      // print enrichment records
  bool describe_append = false;      // append them to --output (process)
  bool describe_skip_index = false;  // the caller has just indexed the folders
  // convert
  std::string chain;
  std::string name_template = "{stem}.{ext}";
  bool in_place = false;
  std::string preset = "balanced";
  std::string recipe;  // a TOML or JSON file with chain, preset, name, skip_existing
  // -o from a recipe's `output`: that folder, relative to the recipe's folder, must stay inside
  // it (no link followed); empty otherwise.
  std::string output_base, output_rel;
  bool overwrite = false;        // replace existing outputs lumen has no record of writing
  double time_limit_s = 120;     // one image's conversion at most
  double segment_seconds = 60;   // a long video is a resumable job cut about this often (0: not)
  std::vector<int64_t> job_ids;  // jobs resume/cancel/list
  // compare
  std::vector<std::string> presets;
  std::vector<double> at;
  double excerpt_seconds = 3;
  // organize / undo / redo
  std::string into;
  std::string tmpl = "{year|unknown}/{month|unknown}";
  bool apply = false, dry_run = false, copy = false, move = false, hardlink = false;
  bool no_companions = false, no_index = false;
  bool resume = false;
  int64_t run_id = 0;  // 0: the latest that fits
  // search / similar
  std::string query;
  // serve
  std::string listen = "127.0.0.1:8750";
  std::string token;  // --token or $LUMEN_TOKEN
  int top = 20;
  std::string folder, camera, date_from, date_to, tag;
  std::string media;  // photo | video | document; "" any
  bool full = false;
  // process
  std::string format = "jsonl";
  std::string output;
  bool skip_existing = false;
  bool write_catalog = false;
  // stats
  bool list_failures = false;
  bool json_out = false;
};

int RunIndex(const Options& o, const char* argv0);
int RunProcess(const Options& o, const char* argv0);
int RunStats(const Options& o);
int RunDupes(const Options& o);
int RunModels(const std::string& action, const Options& o);
int RunSearch(const Options& o, bool similar);
int RunTagsBuild(const Options& o);
int RunTagsRescore(const Options& o);
int RunOrganize(const Options& o, const char* argv0);
int RunUndo(const Options& o, bool redo);
int RunHistory(const Options& o);
int RunDescribe(const Options& o, const char* argv0);
int RunConvert(const Options& o, const char* argv0);
int RunCompare(const Options& o);
int RunJobs(const std::string& action, const std::vector<int64_t>& ids, const Options& o,
            const char* argv0);
int RunPosts(const Options& o, const char* argv0);
int RunServe(const Options& o);

}  // namespace lumen::cli
namespace lumen {
class Catalog;
namespace organize {
struct DupeVictim;
}
}  // namespace lumen
namespace lumen::cli {
int RunDupesAction(const Options& o, Catalog& cat,
                   const std::vector<organize::DupeVictim>& victims);

// The provider, model, key and throughput limits of describe's options (and the config file),
// for every command that asks a model; `key_var` names the key's environment variable.
Status MakeEndpoint(const Options& o, llm::Endpoint* e, llm::Limits* lim, std::string* key_var);
// A photo as remote models get it: the reduced decode, upright, long edge `edge`, JPEG, base64.
Result<std::string> ModelImageBase64(const std::string& path, int edge);
// lumen posts --into: each source to DEST/{post}/{name} through the journal (copied unless
// --move), planned, shown, applied with --apply.
int RunPostsAction(const Options& o, Catalog& cat, const std::vector<organize::Source>& sources,
                   const std::vector<std::string>& roots);

}  // namespace lumen::cli
