// lumen: the command-line entry point. Subcommands live in commands.cpp.
#include <CLI/CLI.hpp>

#include <cstdlib>

#include "commands.h"
#include "config.h"
#include "lumen/util/interrupt.h"

int main(int argc, char** argv) {
  // ggml's crash handler runs gdb from PATH unless GGML_NO_BACKTRACE is set: a crash must not
  // run whatever program is called gdb there. (Set only when unset.)
  ::setenv("GGML_NO_BACKTRACE", "1", 0);
  lumen::cli::Options o;
  CLI::App app{
      "lumen: turns folders of photos into an organized, searchable, deduplicated library"};
  app.set_version_flag("--version", std::string(lumen::cli::kVersion));
  app.require_subcommand(1);

  auto add_common = [&](CLI::App* c) {
    c->add_option("--catalog", o.catalog,
                  "catalog database (default ~/.local/share/lumen/catalog.db)");
    c->add_option("-j,--jobs", o.jobs, "worker threads (default: all cores)")
        ->check(CLI::Range(0, 1024));
    c->add_flag("-q,--quiet", o.quiet, "no progress and no summary");
    c->add_flag("-v,--verbose", o.verbose, "log every failed file");
    c->add_flag("--json-logs", o.json_logs, "log lines as JSON objects on stderr");
    c->add_flag("--profile", o.profile, "print a per-stage timing table at the end");
    c->add_option("--thumbnail-size", o.thumbnail_size, "thumbnail longest edge in pixels")
        ->check(CLI::Range(16, 4096));
    c->add_flag("--no-thumbnail", o.no_thumbnail, "do not make thumbnails");
    c->add_flag("--no-documents", o.no_documents,
                "skip documents (text, Markdown, PDF, DOCX/ODT/PPTX/XLSX, RTF, EPUB)");
    c->add_flag("--include-hidden", o.include_hidden,
                "also scan hidden (.name) and system folders");
    c->add_option("--exclude", o.exclude, "skip names or paths matching this glob (repeatable)");
    c->add_option("--max-file-size", o.max_file_mb, "refuse files larger than this many MB")
        ->check(CLI::PositiveNumber);
    c->add_option("--max-pixels", o.max_megapixels, "refuse images above this many megapixels")
        ->check(CLI::PositiveNumber);
    c->add_option("--limit", o.limit, "process at most N files");
    c->add_option("--model", o.model,
                  "image encoder: a SigLIP/CLIP model folder (Hugging Face layout)");
    c->add_flag("--no-embedding", o.no_embedding, "do not compute image embeddings");
    c->add_flag("--tags", o.tags, "zero-shot tags from the label bank (lumen tags build)");
    c->add_option("--bank-seed", o.bank_seed,
                  "with --tags and no finished label bank: terms encoded before indexing starts "
                  "(the rest is encoded in the background) (2000)")
        ->check(CLI::Range(1, 10000000));
    c->add_flag("--tag-pools", o.tag_pools,
                "with --tags: score each photo against the terms this library uses (relevance "
                "pools, learned and kept in the catalog) instead of the whole bank");
    c->add_flag("--no-bank-wait", o.no_bank_wait,
                "with --tags: do not finish the label bank after the photos (next run resumes)");
    c->add_flag("--write-xmp", o.write_xmp,
                "with --tags: merge the tags into each photo's XMP sidecar");
    c->add_option("--min-confidence", o.min_confidence,
                  "tags below this confidence are dropped (0.1)")
        ->check(CLI::Range(0.0, 1.0));
    c->add_option("--max-tags", o.max_tags, "at most this many tags per image (15)")
        ->check(CLI::Range(1, 1000));
    c->add_option("--quality", o.quality,
                  "fast (224 px model) or high (384 px) when --model is not given")
        ->check(CLI::IsMember({"fast", "high"}));
    c->add_option("--batch-size", o.batch_size, "images per encoder batch")
        ->check(CLI::Range(1, 256));
    c->add_option("--weights", o.weights,
                  "encoder weights: auto (int8 on lumen's kernels where the CPU has AVX2, else as "
                  "stored), stored, f32, f16, bf16, q8_0, int8")
        ->check(CLI::IsMember({"auto", "stored", "f32", "f16", "bf16", "q8_0", "int8"}));
    c->add_option(
        "--model-input", o.model_input_size,
        "also prepare the square model input at this size (224 or 384; timed by --profile)");
  };

  auto* index = app.add_subcommand("index", "scan folders into the catalog (incremental)");
  add_common(index);
  index->add_option("paths", o.paths, "folders or files to index")->required();
  index->add_flag("--full", o.full, "re-read every file, even unchanged ones");

  auto* process = app.add_subcommand("process", "emit one JSON record per image (Photon layout)");
  add_common(process);
  process->add_option("paths", o.paths, "folders or files to process")->required();
  process->add_option("-f,--format", o.format, "jsonl (default) or json")
      ->check(CLI::IsMember({"jsonl", "json"}));
  process->add_option("-o,--output", o.output, "write records to FILE instead of stdout");
  process->add_flag("--skip-existing", o.skip_existing,
                    "skip files already present in the output file");
  process->add_flag("--write-catalog", o.write_catalog, "also record the results in the catalog");

  auto* stats = app.add_subcommand("stats", "summarise the catalog");
  stats->add_option("--catalog", o.catalog, "catalog database");
  stats->add_flag("--failures", o.list_failures, "list failed files with their reasons");
  stats->add_flag("--json", o.json_out, "print as JSON");

  auto* dupes = app.add_subcommand("dupes", "find duplicate photos (exact and re-encoded copies)");
  dupes->add_option("--catalog", o.catalog, "catalog database");
  dupes
      ->add_option("--distance", o.distance,
                   "near duplicates: at most this many differing pHash bits (6; 0-15)")
      ->check(CLI::Range(0, 15));
  dupes
      ->add_option("--keep", o.keep,
                   "which copy to keep: best (resolution, format, EXIF, size), oldest, newest, "
                   "largest, smallest")
      ->check(CLI::IsMember({"best", "oldest", "newest", "largest", "smallest"}));
  dupes->add_option("--keep-under", o.keep_under, "keep the copy under this folder when one is");
  dupes->add_flag("--json", o.json_out, "print the groups (or the action's plan) as JSON");
  dupes
      ->add_option("--tier", o.tiers,
                   "only these tiers: exact, near, burst, semantic, and for videos remux, "
                   "reencode, trim (repeatable; actions default to exact and near)")
      ->check(CLI::IsMember({"exact", "near", "burst", "semantic", "remux", "reencode", "trim"}))
      ->delimiter(',');
  dupes
      ->add_option("--burst-seconds", o.burst_seconds,
                   "burst tier: photos taken at most this many seconds apart (2; 0 turns it off)")
      ->check(CLI::Range(0.0, 3600.0));
  dupes
      ->add_option("--similarity", o.similarity,
                   "semantic tier: photos whose image embeddings have at least this cosine "
                   "(0.95; 2 turns the tier off)")
      ->check(CLI::Range(0.0, 2.0));
  dupes->add_option("--model", o.model,
                    "semantic tier: the embeddings of this model (default: the catalog's most "
                    "used)");
  dupes->add_option("--report", o.report, "also write an HTML report with thumbnails to FILE");
  auto* move_to = dupes->add_option(
      "--move-to", o.move_to,
      "plan moving every duplicate but the kept one into this folder, keeping its full path "
      "(journaled; lumen undo restores)");
  dupes
      ->add_flag("--hardlink", o.dupes_hardlink,
                 "plan replacing identical copies by hard links to the kept one (same filesystem, "
                 "content verified; journaled)")
      ->excludes(move_to);
  auto* dupes_apply =
      dupes->add_flag("--apply", o.apply, "carry out the --move-to or --hardlink plan");
  dupes->add_flag("--dry-run", o.dry_run, "show and save the plan only (the default)")
      ->excludes(dupes_apply);
  dupes->add_flag("-q,--quiet", o.quiet, "no summary");
  dupes->add_flag("--json-logs", o.json_logs, "log lines as JSON objects on stderr");
  dupes->add_flag("-v,--verbose", o.verbose, "list every file of the plan");

  auto* organize = app.add_subcommand(
      "organize", "plan (and with --apply, carry out) moving photos into a folder tree");
  organize->add_option("paths", o.paths, "folders (or files) to organize");
  organize->add_option("--into", o.into, "destination folder");
  organize->add_option("--template", o.tmpl,
                       "destination path: {year} {month} {day} {date} {camera} {make} {model} "
                       "{tag} {tags[N]} {city} {name} {stem} {ext} {hash8}; {field|fallback}, "
                       "{field?}; a folder-only template gets /{name} (default "
                       "\"{year|unknown}/{month|unknown}\")");
  auto* org_apply =
      organize->add_flag("--apply", o.apply, "carry out the plan (default: show it only)");
  organize->add_flag("--dry-run", o.dry_run, "show and save the plan only (the default)")
      ->excludes(org_apply);
  auto* copy = organize->add_flag("--copy", o.copy, "copy instead of moving");
  auto* move = organize->add_flag("--move", o.move, "move (the default)");
  auto* link = organize->add_flag("--hardlink", o.hardlink, "hard-link instead of moving");
  copy->excludes(move, link);
  move->excludes(link);
  organize->add_flag("--no-companions", o.no_companions,
                     "leave XMP sidecars, .AAE, RAW and live-photo videos where they are");
  organize->add_flag("--no-index", o.no_index,
                     "plan from the catalog as it is (default: index the folders first)");
  organize->add_flag("--resume", o.resume,
                     "apply a saved plan or finish an interrupted run (the latest, or --run)");
  organize->add_option("--run", o.run_id, "the run for --resume");
  organize->add_option("--catalog", o.catalog, "catalog database");
  organize->add_flag("--json", o.json_out, "print the plan as JSON");
  organize->add_flag("-q,--quiet", o.quiet, "no plan, progress or summary");
  organize->add_flag("--json-logs", o.json_logs, "log lines as JSON objects on stderr");
  organize->add_flag("-v,--verbose", o.verbose, "list every file of the plan");
  organize->add_option("-j,--jobs", o.jobs, "worker threads for indexing")
      ->check(CLI::Range(0, 1024));
  organize->add_option("--model", o.model, "also compute embeddings with this model");

  auto add_llm = [&](CLI::App* c, bool required) {
    c->add_option("--llm", o.llm,
                  "provider: openai (any OpenAI-compatible server), ollama, "
                  "anthropic, gemini")
        ->check(CLI::IsMember({"openai", "ollama", "anthropic", "gemini", "local"}));
    auto* model = c->add_option("--llm-model", o.llm_model,
                                "the provider's model name (--llm local: the text model .gguf)");
    c->add_option("--mmproj", o.mmproj, "--llm local: the vision projector .gguf (mmproj)");
    c->add_option("--max-new-tokens", o.max_new_tokens, "tokens to generate at most (512)")
        ->check(CLI::Range(1, 8192));
    if (required) model->required();
    c->add_option("--base-url", o.base_url,
                  "server URL (default: the provider's; e.g. http://127.0.0.1:8080 for "
                  "llama-server)");
    c->add_option("--api-key-env", o.api_key_env,
                  "environment variable holding the API key (default OPENAI_API_KEY, "
                  "ANTHROPIC_API_KEY, GEMINI_API_KEY)");
    c->add_option("--llm-profile", o.llm_profile,
                  "throughput profile: conservative, balanced (default), aggressive")
        ->check(CLI::IsMember({"conservative", "balanced", "aggressive"}));
    c->add_option("--rpm", o.rpm, "requests per minute at most")->check(CLI::PositiveNumber);
    c->add_option("--tpm", o.tpm, "tokens per minute at most")->check(CLI::PositiveNumber);
    c->add_option("--concurrency", o.concurrency, "requests in flight at most")
        ->check(CLI::Range(1, 1024));
    c->add_option("--timeout", o.llm_timeout, "seconds per request")->check(CLI::PositiveNumber);
    c->add_option("--max-attempts", o.max_attempts, "attempts per image (retries + 1)")
        ->check(CLI::Range(1, 100));
    c->add_option("--rate-window", o.rate_window,
                  "length in seconds of the --rpm/--tpm window (60)")
        ->check(CLI::PositiveNumber);
    c->add_option("--images-per-request", o.images_per_request,
                  "photos sent in one request, each answer matched by its index (1)")
        ->check(CLI::Range(1, 16));
    c->add_flag("--prefilter", o.prefilter,
                "no request for nearly black or very blurred photos; near-duplicates of a "
                "described photo reuse its answer");
    c->add_option("--document-chars", o.document_chars,
                  "bytes of a document's text put in the prompt (2000)")
        ->check(CLI::Range(200, 200000));
    c->add_option("--image-edge", o.image_edge, "long edge of the image sent (768)")
        ->check(CLI::Range(64, 4096));
    c->add_option("--image-format", o.image_format,
                  "image sent to remote models: jpeg (default; every API reads it) or webp")
        ->check(CLI::IsMember({"jpeg", "webp"}));
    c->add_option("--taxonomy", o.taxonomy_file,
                  "a file of allowed folder names (one per line): folder_name is one of them");
    c->add_flag(
        "--social", o.social,
        "also score each photo for social media: technical/appeal/engagement 1-10, category, "
        "mood, caption, hashtags");
    c->add_flag("--no-cache", o.no_cache, "ask again even when a result is cached");
  };
  auto* describe = app.add_subcommand(
      "describe", "descriptions, OCR text and file/folder names from a vision-language model");
  describe->add_option("paths", o.paths, "folders or files")->required();
  add_llm(describe, false);
  describe->add_option("-o,--output", o.output, "write the records to FILE (JSONL)");
  describe->add_option("--catalog", o.catalog, "catalog database");
  describe->add_flag("-q,--quiet", o.quiet, "no summary");
  describe->add_flag("--json-logs", o.json_logs, "log lines as JSON objects on stderr");
  describe->add_flag("-v,--verbose", o.verbose, "list every failure");

  auto* posts = app.add_subcommand(
      "posts",
      "group photos into social-media posts (captions with --caption; folders with --into)");
  posts->add_option("paths", o.paths, "folders or files");
  posts->add_flag("--from-catalog", o.from_catalog, "group what the catalog holds (no indexing)");
  posts->add_option("--max-per-post", o.max_per_post, "photos per post at most (10)")
      ->check(CLI::Range(1, 100));
  posts->add_option("--gap-hours", o.gap_hours, "a pause this long starts a new post (4)")
      ->check(CLI::PositiveNumber);
  posts->add_flag("--caption", o.caption,
                  "a caption and hashtags per post from the provider (one request per post)");
  add_llm(posts, false);
  posts->add_option("--into", o.into, "a folder per post under DEST (copies; --move to move)");
  auto* posts_apply = posts->add_flag("--apply", o.apply, "carry out the plan (default: show it)");
  posts->add_flag("--dry-run", o.dry_run, "show and save the plan only (the default)")
      ->excludes(posts_apply);
  posts->add_flag("--move", o.move, "move the photos into the post folders instead of copying");
  posts->add_option("-o,--output", o.output, "write the posts as JSON to FILE (default stdout)");
  posts->add_option("--html", o.html, "write an HTML preview with thumbnails to FILE");
  posts->add_option("--model", o.model, "also compute embeddings with this model");
  posts->add_option("--catalog", o.catalog, "catalog database");
  posts->add_flag("-q,--quiet", o.quiet, "no summary");
  posts->add_flag("-v,--verbose", o.verbose, "list every file of the plan");
  posts->add_flag("--json", o.json_out, "print the plan as JSON");

  auto* convert = app.add_subcommand(
      "convert",
      "batch image operations: 'fit:1600x1600,sharpen:0.5,watermark:\"(c) me\",webp:82'");
  convert->add_option("paths", o.paths, "images, videos or folders")->required();
  convert->add_option("--chain", o.chain, "the operations (see README: Convert)");
  convert->add_option("--recipe", o.recipe,
                      "a TOML or JSON file with the chain (and preset, name, skip_existing, "
                      "output); options given here win");
  convert->add_flag("--no-cache", o.no_cache,
                    "neither use nor fill the result cache (kept in the catalog)");
  convert->add_option("--catalog", o.catalog, "catalog database (holds the result cache)");
  convert->add_option("-o,--output", o.output, "output folder");
  convert->add_option("--name", o.name_template,
                      "output file name: {stem} {ext} {w} {h} (default {stem}.{ext})");
  convert->add_flag("--skip-existing", o.skip_existing, "skip images whose output exists");
  convert
      ->add_option("--preset", o.preset,
                   "photos: draft, fast, balanced (default), high, ultra (resampling kernel, "
                   "encoder effort, chroma subsampling); videos: web, archive-hevc, "
                   "archive-av1, remux, vhs (docs/VIDEO.md)")
      ->check(CLI::IsMember({"draft", "fast", "balanced", "high", "ultra", "web", "archive-hevc",
                             "archive-av1", "remux", "vhs"}));
  convert->add_flag("--in-place", o.in_place,
                    "replace each input (written beside it, fsynced, renamed over it)");
  convert->add_option("-j,--jobs", o.jobs, "images at once (default: all cores)")
      ->check(CLI::Range(0, 1024));
  convert->add_flag("--overwrite", o.overwrite,
                    "replace existing files at the output paths (by default only outputs lumen "
                    "recorded writing from the same input are replaced)");
  convert->add_option("--max-file-size", o.max_file_mb, "refuse files larger than this many MB")
      ->check(CLI::PositiveNumber);
  convert->add_option("--max-pixels", o.max_megapixels, "refuse images above this many megapixels")
      ->check(CLI::PositiveNumber);
  convert->add_option("--time-limit", o.time_limit_s, "seconds one image may take (default 120)")
      ->check(CLI::PositiveNumber);
  convert
      ->add_option("--segment", o.segment_seconds,
                   "a video longer than two segments runs as a resumable job cut at key frames "
                   "about this many seconds apart (default 60; 0: never; lumen jobs)")
      ->check(CLI::Range(0.0, 86400.0));
  convert->add_flag("-q,--quiet", o.quiet, "no progress and no summary");
  convert->add_flag("--json-logs", o.json_logs, "log lines as JSON objects on stderr");
  convert->add_flag("-v,--verbose", o.verbose, "list every failure");

  auto* compare = app.add_subcommand(
      "compare", "what video presets do to a file: excerpts encoded, SSIM/PSNR, stills, estimates");
  compare->add_option("paths", o.paths, "the video")->required()->expected(1);
  compare->add_option("--presets", o.presets, "the presets (default vhs,web,archive-hevc)")
      ->delimiter(',')
      ->check(CLI::IsMember({"web", "archive-hevc", "archive-av1", "remux", "vhs"}));
  compare
      ->add_option("--at", o.at, "excerpts starting at these seconds (default: three key frames)")
      ->delimiter(',');
  compare->add_option("--excerpt", o.excerpt_seconds, "seconds per excerpt (default 3)")
      ->check(CLI::Range(0.2, 60.0));
  compare->add_option("-o,--report", o.report, "the HTML report (default STEM-compare.html)");
  compare->add_flag("--json", o.json_out, "print the figures as JSON");
  compare->add_flag("-q,--quiet", o.quiet, "no progress");
  compare->add_flag("--json-logs", o.json_logs, "log lines as JSON objects on stderr");

  auto* jobs = app.add_subcommand(
      "jobs", "long video conversions kept in the catalog: list, resume, cancel");
  jobs->require_subcommand(1);
  auto* j_list = jobs->add_subcommand("list", "every job, its state and how far it got");
  j_list->add_option("ids", o.job_ids, "only these jobs");
  j_list->add_flag("--json", o.json_out, "print as JSON");
  auto* j_resume = jobs->add_subcommand(
      "resume", "go on with interrupted, paused or failed jobs (redoes at most one segment)");
  j_resume->add_option("ids", o.job_ids, "the jobs (default: every one that can go on)");
  auto* j_cancel = jobs->add_subcommand(
      "cancel", "stop a job (its process too, if running) and remove everything it wrote");
  j_cancel->add_option("ids", o.job_ids, "the jobs")->required();
  for (auto* sub : {j_list, j_resume, j_cancel}) {
    sub->add_option("--catalog", o.catalog, "catalog database");
    sub->add_flag("-q,--quiet", o.quiet, "no progress and no summary");
    sub->add_flag("--json-logs", o.json_logs, "log lines as JSON objects on stderr");
    sub->add_flag("-v,--verbose", o.verbose, "list every failure");
  }

  auto add_run_cmd = [&](const char* name, const char* help) {
    auto* c = app.add_subcommand(name, help);
    c->add_option("run", o.run_id, "run number (lumen history); default: the latest");
    c->add_option("--catalog", o.catalog, "catalog database");
    c->add_flag("-q,--quiet", o.quiet, "no progress or summary");
    c->add_flag("-v,--verbose", o.verbose, "list every file left as it was");
    c->add_flag("--json-logs", o.json_logs, "log lines as JSON objects on stderr");
    return c;
  };
  auto* undo = add_run_cmd("undo", "reverse an organize or dupes run (never overwrites a file)");
  auto* redo = add_run_cmd("redo", "carry out an undone run again");
  auto* history = app.add_subcommand("history", "organize and dupes runs with their counts");
  history->add_option("--catalog", o.catalog, "catalog database");
  history->add_flag("--json", o.json_out, "print as JSON");

  auto add_search = [&](CLI::App* c) {
    c->add_option("--catalog", o.catalog, "catalog database");
    c->add_option("--model", o.model,
                  "the model the images were indexed with (name, folder or .gguf)");
    c->add_option("-k,--top", o.top, "how many results (default 20)")->check(CLI::Range(1, 100000));
    c->add_flag("--json", o.json_out, "print as JSON");
    c->add_option("--folder", o.folder, "only images under this folder");
    c->add_option("--camera", o.camera, "only images whose camera make/model contains this");
    c->add_option("--from", o.date_from, "only images captured on or after this date (YYYY-MM-DD)");
    c->add_option("--to", o.date_to, "only images captured on or before this date (YYYY-MM-DD)");
    c->add_option("--tag", o.tag, "only images with this tag (lumen index --tags)");
    c->add_option("--media", o.media, "only photos, videos or documents")
        ->check(CLI::IsMember({"photo", "video", "document"}));
  };
  auto* search = app.add_subcommand(
      "search", "find photos, video moments and documents by a text description");
  search->add_option("text", o.query, "what to look for")->required();
  add_search(search);
  auto* similar = app.add_subcommand(
      "similar", "find photos and video moments that look like an image or a video");
  similar
      ->add_option("image", o.query, "an image or video file, or a content hash from the catalog")
      ->required();
  add_search(similar);

  auto add_vocab = [&](CLI::App* c) {
    c->add_flag("--drop-ancestors", o.drop_ancestors,
                "drop a tag when a more specific one is present");
    c->add_flag("--no-wordnet", o.no_wordnet, "leave WordNet's nouns out of the vocabulary");
    c->add_option("--vocab", o.vocab_files,
                  "extra vocabulary file: term<TAB>category lines (repeatable)");
    c->add_option("--prompt", o.prompt,
                  "prompt template, {} is the term (default \"a photo of a {}.\")");
  };
  add_vocab(index);
  add_vocab(process);
  for (auto* c : {index, process}) {
    c->add_flag("--describe", o.describe,
                "also describe each photo with a vision-language model (lumen describe)");
    add_llm(c, false);
  }
  auto* serve = app.add_subcommand("serve", "browse the library in a web browser (and a REST API)");
  serve->add_option("--catalog", o.catalog, "catalog database");
  serve->add_option("--listen", o.listen,
                    "address and port to listen on (127.0.0.1:8750; :0 picks a free port); "
                    "another than loopback needs --token");
  serve->add_option("--token", o.token,
                    "the access token (default: $LUMEN_TOKEN, else a new one each run)");
  serve->add_option("--model", o.model,
                    "image-text model for text search (default: the catalog's)");
  serve
      ->add_option("--weights", o.weights,
                   "text tower weights for search: stored (default), f32, f16, bf16, q8_0, int8")
      ->check(CLI::IsMember({"stored", "f32", "f16", "bf16", "q8_0", "int8"}));
  serve->add_option("--quarantine", o.move_to,
                    "where the duplicates page moves duplicates (default: a folder "
                    "\"quarantine\" beside the catalog)");
  serve->add_flag("--read-only", o.dry_run,
                  "browse only: no jobs, no duplicate actions, nothing changed from the page");
  serve->add_flag("-v,--verbose", o.verbose, "log every request");
  auto* tags_cmd = app.add_subcommand("tags", "zero-shot tags: the label bank");
  tags_cmd->require_subcommand(1);
  auto* t_build = tags_cmd->add_subcommand(
      "build", "encode the vocabulary with a model's text tower (resumable)");
  t_build->add_option("--catalog", o.catalog, "catalog database (the bank is stored beside it)");
  t_build->add_option("--model", o.model, "model name, folder or .gguf")->required();
  t_build->add_flag("-q,--quiet", o.quiet, "no progress");
  t_build
      ->add_option(
          "--weights", o.weights,
          "text tower weights: auto (int8 where the CPU has AVX2, else as stored), stored, "
          "f32, f16, bf16, q8_0, int8")
      ->check(CLI::IsMember({"auto", "stored", "f32", "f16", "bf16", "q8_0", "int8"}));
  add_vocab(t_build);
  auto* t_rescore =
      tags_cmd->add_subcommand("rescore", "re-tag from stored embeddings (no image is re-read)");
  t_rescore->add_option("--catalog", o.catalog, "catalog database");
  t_rescore->add_option("--model", o.model, "the model the images were indexed with")->required();
  t_rescore
      ->add_option("--min-confidence", o.min_confidence,
                   "tags below this confidence are dropped (0.1)")
      ->check(CLI::Range(0.0, 1.0));
  t_rescore->add_option("--max-tags", o.max_tags, "at most this many tags per image (15)")
      ->check(CLI::Range(1, 1000));
  add_vocab(t_rescore);

  auto* models =
      app.add_subcommand("models", "image-text models: list, pull, verify, path, convert");
  models->require_subcommand(1);
  auto* m_list = models->add_subcommand("list", "known models and whether they are installed");
  m_list->add_flag("--json", o.json_out, "print as JSON");
  auto* m_path = models->add_subcommand("path", "print the local folder of a model");
  m_path->add_option("name", o.model_name, "model name")->required();
  auto* m_pull = models->add_subcommand("pull", "download a model (resumable, checksummed)");
  m_pull->add_option("name", o.model_name, "model name")->required();
  m_pull->add_option("--base-url", o.base_url,
                     "mirror to download from (default: the Hugging Face hub)");
  auto* m_verify = models->add_subcommand("verify", "re-check a model's files and that it loads");
  m_verify->add_option("name", o.model_name, "model name or folder")->required();
  auto* m_convert = models->add_subcommand("convert", "write a GGUF file from a model folder");
  m_convert->add_option("name", o.model_name, "model name or folder")->required();
  m_convert->add_option("output", o.convert_out, "output .gguf file")->required();
  for (auto* sub : {m_pull, m_verify, m_convert}) {
    sub->add_flag("-q,--quiet", o.quiet, "no progress, errors only");
    sub->add_flag("--json-logs", o.json_logs, "log lines as JSON objects on stderr");
  }
  m_convert->add_option("--type", o.convert_type, "f32, f16 (default), q8_0 or q4_0")
      ->check(CLI::IsMember({"f32", "f16", "q8_0", "q4_0"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : lumen::cli::kExitError;
  }
  lumen::InstallSignalHandlers();
  for (auto* c : {describe, index, process, posts}) {
    if (!c->parsed()) continue;
    if (lumen::Status st = lumen::cli::ApplyConfig(lumen::cli::ConfigPath(), *c, &o); !st.ok()) {
      std::fprintf(stderr, "lumen: error: %s\n", st.message().c_str());
      return lumen::cli::kExitError;
    }
  }
  if (convert->parsed() && !o.recipe.empty()) {
    if (lumen::Status st = lumen::cli::ApplyRecipe(o.recipe, *convert, &o); !st.ok()) {
      std::fprintf(stderr, "lumen: error: %s\n", st.message().c_str());
      return lumen::cli::kExitError;
    }
  }
  if (index->parsed()) return lumen::cli::RunIndex(o, argv[0]);
  if (process->parsed()) return lumen::cli::RunProcess(o, argv[0]);
  if (stats->parsed()) return lumen::cli::RunStats(o);
  if (dupes->parsed()) return lumen::cli::RunDupes(o);
  if (organize->parsed()) return lumen::cli::RunOrganize(o, argv[0]);
  if (undo->parsed()) return lumen::cli::RunUndo(o, false);
  if (redo->parsed()) return lumen::cli::RunUndo(o, true);
  if (history->parsed()) return lumen::cli::RunHistory(o);
  if (describe->parsed()) return lumen::cli::RunDescribe(o, argv[0]);
  if (convert->parsed()) return lumen::cli::RunConvert(o, argv[0]);
  if (serve->parsed()) return lumen::cli::RunServe(o);
  if (compare->parsed()) return lumen::cli::RunCompare(o);
  if (posts->parsed()) return lumen::cli::RunPosts(o, argv[0]);
  if (search->parsed()) return lumen::cli::RunSearch(o, false);
  if (t_build->parsed()) return lumen::cli::RunTagsBuild(o);
  if (t_rescore->parsed()) return lumen::cli::RunTagsRescore(o);
  if (similar->parsed()) return lumen::cli::RunSearch(o, true);
  for (auto* sub : {j_list, j_resume, j_cancel})
    if (sub->parsed()) return lumen::cli::RunJobs(sub->get_name(), o.job_ids, o, argv[0]);
  for (auto* sub : {m_list, m_path, m_pull, m_verify, m_convert})
    if (sub->parsed()) return lumen::cli::RunModels(sub->get_name(), o);
  return lumen::cli::kExitError;
}
