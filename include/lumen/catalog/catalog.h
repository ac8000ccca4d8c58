// The catalog: an SQLite database (WAL) that is content-addressed.
//
//  assets      one row per distinct content (XXH3-128 of the bytes): size, format, dimensions.
//  locations   one row per path ever seen: its identity (size, mtime, inode, device), the asset
//              it holds, and a state: ok | failed | skipped | missing, with a readable reason.
//  thumbnails, perceptual_hashes, metadata
//              derived data keyed by (asset, producer), where the producer names the algorithm
//              and its version/parameters ("webp256q80@1"). A new producer adds rows; old rows
//              stay until pruned.
//  embeddings  image embeddings keyed by (asset, model id) (schema v2).
//  tags        zero-shot tags keyed by (asset, label bank, term) (schema v3).
//  runs        one row per index/process run with its counts.
//  conversions `lumen convert`'s result cache: (source content, recipe) -> output file (v7).
//  documents   a document's extracted text and its own metadata per (asset, producer) (v8);
//              assets.kind says what an asset is (photo | document | video).
//  videos, video_shots, video_frames
//              a video's probe, signature, shots and key frames per (asset, producer) (v9);
//  frame_embeddings, frame_tags
//              its key frames' embeddings per model and tags per bank; its pooled embedding and
//              tags are in `embeddings` and `tags`, like a photo's.
//  jobs        long conversions cut into segments, resumable after a kill (v10).
//
// One writer at a time (the pipeline's serial stage); batched transactions via Begin/Commit.
// The schema is versioned with PRAGMA user_version and migrated forward on Open(). Paths are
// stored as BLOBs of their raw bytes, so names that are not UTF-8 survive unchanged.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lumen/catalog/sqlite.h"
#include "lumen/dupes/dupes.h"
#include "lumen/dupes/video.h"
#include "lumen/image/derive.h"
#include "lumen/io/file.h"
#include "lumen/io/hash.h"
#include "lumen/meta/exif.h"
#include "lumen/search/flat_index.h"
#include "lumen/util/status.h"
#include "lumen/video/analyze.h"
#include "lumen/video/probe.h"

namespace lumen {

inline constexpr int kCatalogSchemaVersion = 10;

// $LUMEN_CATALOG, else $XDG_DATA_HOME/lumen/catalog.db, else ~/.local/share/lumen/catalog.db.
std::string DefaultCatalogPath();

enum class LocationState { kOk, kFailed, kSkipped, kMissing };
const char* LocationStateName(LocationState s);

// Names of the producers whose rows an index run needs for an asset to count as complete.
struct Producers {
  std::string thumbnail;  // empty: thumbnails not wanted
  std::string hashes;
  std::string metadata;
  std::string embedding;           // model id; empty: no image encoder in this run
  std::string tags;                // label bank id; empty: no tagging (not part of completeness)
  std::string document;            // document text producer ("text20000@1"); empty: no documents
  std::string document_embedding;  // model id of the text tower that embeds documents, or empty
  std::string video;               // video analysis producer ("shots32k@1"); empty: no videos
};

// A document's extracted text and its own metadata (doc/document.h), as the catalog keeps it.
struct DocumentRecord {
  std::string title, author, created, language;  // "" when the document does not say
  int pages = 0;
  bool needs_render = false;  // no text layer (a scanned PDF): described from its first page
  bool truncated = false;     // the text is the first part of a longer one
  std::string text;
};

// A video as the catalog keeps it: the probe, the analysis, and its key frames (their images
// are not kept: the poster is the video's thumbnail).
struct VideoKeyFrame {
  double time = 0;
  int shot = 0;
  PerceptualHashes hashes;
};
struct VideoRecord {
  video::VideoProbe probe;
  std::vector<video::Shot> shots;
  std::vector<VideoKeyFrame> key_frames;
  std::vector<video::SignatureSample> signature;
  double poster_time = 0;
  bool poster_content = true;
  int64_t frames = 0, damaged = 0;
  bool interlaced = false;
};

struct KnownLocation {
  int64_t id = 0;
  FileIdentity identity;
  std::optional<int64_t> asset_id;
  LocationState state = LocationState::kOk;
  bool seen = false;  // set by the caller during a run
};

struct AssetRecord {
  Hash128 hash;
  uint64_t size = 0;
  std::string format;
  int width = 0;
  int height = 0;
  std::string colorspace;
  MediaKind kind = MediaKind::kPhoto;
};

struct RunCounts {
  uint64_t succeeded = 0, failed = 0, skipped = 0, unchanged = 0, missing = 0;
};

class Catalog {
 public:
  enum class Mode {
    kReadWrite,  // creates the file (and its folders) when missing, sets WAL, migrates
    kReadOnly,   // stats, search, history: never writes, works on a read-only file or folder
  };
  // Opens the catalog at `path`. Only a lumen catalog (PRAGMA application_id kApplicationId, or
  // an older lumen catalog by its tables), a new or empty file is ever touched: any other SQLite
  // database is refused before anything is written to it (no WAL switch, no migration).
  // kReadWrite creates or migrates; kReadOnly opens read-only (immutable when the WAL's shared
  // memory cannot be created, as on a read-only folder).
  // Errors: Io with the path and SQLite's reason; Invalid if the file is another program's
  // database, or from a newer lumen, or (read-only) older than this lumen; NotFound (read-only)
  // when there is no catalog there.
  static Result<std::unique_ptr<Catalog>> Open(const std::string& path,
                                               Mode mode = Mode::kReadWrite);
  // "LUMN": what PRAGMA application_id holds in every catalog lumen writes.
  static constexpr int32_t kApplicationId = 0x4C554D4E;
  ~Catalog();

  const std::string& path() const { return path_; }
  sqlite3* db() { return db_.get(); }
  int SchemaVersion();

  Status Begin();
  Status Commit();

  Result<int64_t> BeginRun(const std::string& command, const std::vector<std::string>& roots);
  Status FinishRun(int64_t run, const std::string& status, const RunCounts& counts);

  // Locations at or under the given absolute roots, keyed by path.
  Status LoadLocations(const std::vector<std::string>& roots,
                       std::unordered_map<std::string, KnownLocation>* out);
  // Assets that already have rows for every non-empty producer: their hashes, and (if `ids` is
  // given) their ids.
  Status LoadCompleteAssets(const Producers& producers,
                            std::unordered_set<Hash128, Hash128Hasher>* out,
                            std::unordered_set<int64_t>* ids = nullptr);

  // Inserts the asset if new; returns its id either way.
  Result<int64_t> UpsertAsset(const AssetRecord& a);
  Result<std::optional<int64_t>> FindAsset(const Hash128& h);
  Status PutThumbnail(int64_t asset, const std::string& producer, const Thumbnail& t);
  Status PutHashes(int64_t asset, const std::string& producer, const PerceptualHashes& h);
  Status PutMetadata(int64_t asset, const std::string& producer, const PhotoMetadata& m);
  // An L2-normalised image embedding (little-endian f32) from the model `model`.
  Status PutEmbedding(int64_t asset, const std::string& model, const std::vector<float>& v);
  Status PutDocument(int64_t asset, const std::string& producer, const DocumentRecord& d);
  // A video's probe, signature, shots and key frames (replacing the producer's earlier rows).
  Status PutVideo(int64_t asset, const std::string& producer, const VideoRecord& v);
  // The key frames' embeddings from `model` (frame i at times[i], vectors frames x dim).
  Status PutFrameEmbeddings(int64_t asset, const std::string& model,
                            const std::vector<double>& times, const std::vector<float>& vectors,
                            int dim);
  // The key frames' tags from `bank`: (frame, term, confidence), replacing the bank's earlier ones.
  Status PutFrameTags(int64_t asset, const std::string& bank,
                      const std::vector<std::tuple<int, std::string, float>>& tags);
  // The best-matching key frame of `asset` for the L2-normalised `query`: its time and score
  // (nullopt when the asset has no frame embeddings from `model`).
  Result<std::optional<std::pair<double, float>>> BestFrame(int64_t asset, const std::string& model,
                                                            const std::vector<float>& query);
  // The document row of `asset` (the newest producer), nullopt for a photo.
  Result<std::optional<DocumentRecord>> GetDocument(int64_t asset);
  // Replaces the asset's tags from `bank` with (term, category, confidence) rows.
  // Replaces the asset's tags from `bank`, scored against its first `terms` rows.
  Status PutTags(int64_t asset, const std::string& bank, size_t terms,
                 const std::vector<std::tuple<std::string, std::string, float>>& tags);

  // The files (state ok) at or under `roots` with what organize templates use.
  struct Placed {
    std::string path;
    FileIdentity identity;
    int64_t asset = 0;
    Hash128 hash;
    MediaKind kind = MediaKind::kPhoto;
    // A photo's capture time, or a document's creation date from its own metadata.
    std::optional<std::string> captured_at, make, model;
    std::optional<double> latitude, longitude;  // GPS, from EXIF
    std::vector<std::string> tags;              // most confident first, any bank
    std::optional<std::string> enrichment;      // the latest enrichment result (JSON), if any
  };
  Status LoadPlaced(const std::vector<std::string>& roots, std::vector<Placed>* out);

  // Enrichment results (llm/provider.h) per (asset, provider, model, prompt version): the cache
  // that makes a rerun cost no requests.
  struct Enrichment {
    std::string result;  // JSON object
    double latency_ms = 0;
    int64_t tokens = 0;
  };
  Result<std::optional<Enrichment>> GetEnrichment(int64_t asset, const std::string& provider,
                                                  const std::string& model,
                                                  const std::string& prompt);
  Status PutEnrichment(int64_t asset, const std::string& provider, const std::string& model,
                       const std::string& prompt, const Enrichment& e);

  // The result cache of `lumen convert`: what a recipe (canonical chain + preset) made from a
  // content, written where, and that file's size and mtime as written (so a later change to it
  // is noticed).
  struct Conversion {
    std::string output;  // absolute path
    uint64_t out_size = 0;
    int64_t out_mtime_ns = 0;
    int width = 0, height = 0;
    std::string format;
  };
  // The content hash of `path` if it is known for exactly this size and mtime (from an earlier
  // conversion or from the index): saves reading the file again.
  Result<std::optional<Hash128>> KnownContent(const std::string& path, const FileIdentity& id);
  // The outputs `recipe` made from `source`, newest first.
  Result<std::vector<Conversion>> FindConversions(const Hash128& source, const std::string& recipe);
  // What `recipe` last wrote at `output` (for --in-place: is this file already a result?).
  Result<std::optional<Conversion>> ConversionAt(const std::string& output,
                                                 const std::string& recipe);
  Status PutConversion(const Hash128& source, const std::string& recipe,
                       const std::string& source_path, const FileIdentity& source_id,
                       const Conversion& c);
  // Who wrote `output` (any recipe): the source's content hash and path as recorded, and the
  // file as written; nullopt where lumen has no record of it. convert replaces an existing output
  // only where this says lumen wrote it from the same input (issue 15).
  struct ConversionOwner {
    Hash128 source;
    std::string source_path;
    Conversion written;
  };
  Result<std::optional<ConversionOwner>> ConversionOwnerAt(const std::string& output);

  // Long conversions as resumable jobs (issue 20, `lumen jobs`): what to run again (the input as
  // it was, the output folder and the convert arguments), where its segments are kept, and how
  // far it got. The running process holds a lock in the folder; state says what it last wrote.
  struct Job {
    int64_t id = 0;
    std::string kind = "convert";
    std::string input;  // absolute path
    uint64_t input_size = 0;
    int64_t input_mtime_ns = 0;
    std::string recipe;  // the result cache's recipe (preset + chain)
    std::string output;  // the output file (absolute)
    std::string args;    // JSON: the convert options that made it (preset, chain, name, ...)
    std::string folder;  // the job's own temporary folder (absolute)
    std::string state;   // running | interrupted | paused | failed | done | cancelled
    int segments = 0, done = 0;
    std::string plan;  // JSON: time base, segment starts, field order
    std::string error;
    int64_t pid = 0;
    int64_t created_at = 0, updated_at = 0;
  };
  Result<int64_t> AddJob(const Job& job);
  Status UpdateJob(const Job& job);     // state, done, segments, plan, error, pid (by id)
  Result<std::vector<Job>> ListJobs();  // newest first
  Result<std::optional<Job>> JobById(int64_t id);
  // The latest unfinished job (not done or cancelled) for this input, recipe and output folder.
  Result<std::optional<Job>> FindJob(const std::string& input, const std::string& recipe,
                                     const std::string& output);

  // Every current asset with perceptual hashes, with its current paths (for dupes).
  Status LoadDupeItems(std::vector<dupes::Item>* out);
  // Every current video with its signature: an Item each (video = true) appended to `items`, and
  // its VideoItem (item: that index) to `videos`.
  Status LoadVideoDupeItems(std::vector<dupes::Item>* items, std::vector<dupes::VideoItem>* videos);

  // Relevance-pool state per label bank (tags/pools.h), opaque here.
  Result<std::optional<std::string>> GetTagPools(const std::string& bank);
  Status PutTagPools(const std::string& bank, const std::string& state);

  // ---- queries for search ----
  // Models that have embeddings, with their counts.
  Result<std::vector<std::pair<std::string, int64_t>>> EmbeddingModels();
  // The dimension of `model`'s stored embeddings (0 when it has none).
  Result<int> EmbeddingDim(const std::string& model);
  // Every embedding of `model` whose asset has a current location, into `index` (its dim must
  // match the stored one).
  Status LoadEmbeddings(const std::string& model, FlatIndex* index);
  // The embeddings of current assets not yet scored against `terms` rows of `bank`: never
  // tagged with it, or tagged while the bank was still being built.
  Status LoadEmbeddingsToTag(const std::string& model, const std::string& bank, size_t terms,
                             FlatIndex* index);
  struct AssetView {
    int64_t id = 0;
    Hash128 hash;
    std::string path;  // a current location ("" if none is ok)
    std::optional<std::string> captured_at, camera;
    MediaKind kind = MediaKind::kPhoto;
  };
  Result<AssetView> GetAsset(int64_t id);
  // Every key frame embedding of `model` whose video has a current location, into `index` with
  // ids 0, 1, ...: frames[id] is its (asset, time).
  Status LoadFrameEmbeddings(const std::string& model, FlatIndex* index,
                             std::vector<std::pair<int64_t, double>>* frames);
  // The asset's thumbnail (any producer; the largest), if it has one.
  Result<std::optional<Thumbnail>> GetThumbnail(int64_t asset);
  // The largest thumbnail of `asset` with the asset's content hash, by one statement prepared once
  // per connection (lumen serve's most frequent request). nullopt: no such asset, or no thumbnail.
  struct ServedThumbnail {
    Hash128 hash;
    int width = 0, height = 0;
    std::string webp;
  };
  Result<std::optional<ServedThumbnail>> GetServedThumbnail(int64_t asset);
  // Every condition that is set must hold: a current location under `folder`, a camera
  // make/model containing `camera`, captured in [from, to] (ISO dates), tagged `tag` (any bank),
  // of media kind `media` ("photo", "video", "document").
  struct AssetFilter {
    std::string folder, camera, from, to, tag, media;
    bool empty() const {
      return folder.empty() && camera.empty() && from.empty() && to.empty() && tag.empty() &&
             media.empty();
    }
  };
  Result<std::unordered_set<int64_t>> FilterAssets(const AssetFilter& f);

  // Browsing (lumen serve), in catalog_browse.cpp.
  // Every asset with a current location, newest capture first (undated last, by id).
  struct TimelineEntry {
    int64_t id = 0;
    int32_t date = 0;  // yyyymmdd of the capture (local time); 0: undated
    MediaKind kind = MediaKind::kPhoto;
  };
  Status LoadTimeline(std::vector<TimelineEntry>* out);
  // Every asset with a current location and a GPS position (degrees, in range), in timeline order
  // (newest capture first, undated last).
  struct Place {
    int64_t id = 0;
    float lat = 0, lon = 0;
  };
  Status LoadPlaces(std::vector<Place>* out);
  // Every current location (state ok) with its asset: (path, asset id), in path order.
  Status LoadCurrentPaths(std::vector<std::pair<std::string, int64_t>>* out);
  // Everything the catalog knows of one asset.
  struct AssetDetails {
    int64_t id = 0;
    AssetRecord record;
    std::vector<std::string> paths;                   // current locations, sorted
    PhotoMetadata metadata;                           // empty when it has no metadata row
    std::vector<std::pair<std::string, float>> tags;  // best confidence first (any bank)
    std::optional<std::string> description;           // the newest describe result (JSON text)
    std::optional<double> duration;                   // videos
    std::vector<std::pair<double, double>> shots;     // videos: [start, end) seconds
  };
  Result<AssetDetails> GetAssetDetails(int64_t id);
  // Changes whenever any connection commits to the catalog (PRAGMA data_version, plus this
  // connection's own changes).
  Result<int64_t> DataVersion();

  Status UpsertLocation(const std::string& path, const FileIdentity& id,
                        std::optional<int64_t> asset, LocationState state,
                        const std::string& reason, int64_t run);
  Status MarkMissing(int64_t location_id, int64_t run);

 private:
  Catalog() = default;
  Status Migrate();
  Status PrepareStatements();

  std::string path_;
  sql::DbPtr db_;
  sql::Stmt begin_, commit_, upsert_asset_, find_asset_, put_thumb_, put_hashes_, put_meta_,
      put_embedding_, upsert_location_, mark_missing_, served_thumb_;
};

}  // namespace lumen
