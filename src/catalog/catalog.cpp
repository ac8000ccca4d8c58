#include "lumen/catalog/catalog.h"

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/util/json.h"

namespace lumen {
namespace {

// Migrations: index i takes the schema from version i to i+1. Never edit a shipped entry;
// append a new one.
const char* const kMigrations[] = {
    // v0 -> v1
    R"sql(
CREATE TABLE assets(
  id INTEGER PRIMARY KEY,
  hash BLOB NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  format TEXT,
  width INTEGER,
  height INTEGER,
  colorspace TEXT,
  first_seen INTEGER NOT NULL
);
CREATE TABLE locations(
  id INTEGER PRIMARY KEY,
  path BLOB NOT NULL UNIQUE,
  size INTEGER,
  mtime_ns INTEGER,
  inode INTEGER,
  device INTEGER,
  asset_id INTEGER REFERENCES assets(id),
  state TEXT NOT NULL CHECK(state IN ('ok','failed','skipped','missing')),
  reason TEXT,
  run_id INTEGER,
  updated_at INTEGER NOT NULL
);
CREATE INDEX locations_asset ON locations(asset_id);
CREATE INDEX locations_state ON locations(state);
CREATE TABLE thumbnails(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  producer TEXT NOT NULL,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL,
  webp BLOB NOT NULL,
  PRIMARY KEY(asset_id, producer)
);
CREATE TABLE perceptual_hashes(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  producer TEXT NOT NULL,
  dhash INTEGER NOT NULL,
  phash INTEGER NOT NULL,
  PRIMARY KEY(asset_id, producer)
);
CREATE TABLE metadata(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  producer TEXT NOT NULL,
  captured_at TEXT,
  utc_offset TEXT,
  camera_make TEXT,
  camera_model TEXT,
  lens TEXT,
  gps_latitude REAL,
  gps_longitude REAL,
  gps_altitude REAL,
  iso INTEGER,
  aperture REAL,
  exposure_time REAL,
  focal_length REAL,
  orientation INTEGER,
  PRIMARY KEY(asset_id, producer)
);
CREATE TABLE runs(
  id INTEGER PRIMARY KEY,
  command TEXT NOT NULL,
  roots TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  status TEXT NOT NULL,
  succeeded INTEGER, failed INTEGER, skipped INTEGER, unchanged INTEGER, missing INTEGER
);
)sql",
    // v1 -> v2
    R"sql(
CREATE TABLE embeddings(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  model TEXT NOT NULL,
  dim INTEGER NOT NULL,
  vector BLOB NOT NULL,
  PRIMARY KEY(asset_id, model)
);
)sql",
    // v2 -> v3
    R"sql(
CREATE TABLE tags(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  bank TEXT NOT NULL,
  term TEXT NOT NULL,
  category TEXT,
  confidence REAL NOT NULL,
  PRIMARY KEY(asset_id, bank, term)
);
CREATE INDEX tags_term ON tags(term);
)sql",
    // v3 -> v4: which bank rows each asset was scored against (an asset with no tag above the
    // threshold is still "tagged"; one scored while the bank was growing is re-scored later).
    R"sql(
CREATE TABLE tagged(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  bank TEXT NOT NULL,
  terms INTEGER NOT NULL,
  PRIMARY KEY(asset_id, bank)
);
INSERT OR IGNORE INTO tagged(asset_id, bank, terms) SELECT DISTINCT asset_id, bank, 0 FROM tags;
CREATE TABLE tag_pools(
  bank TEXT PRIMARY KEY,
  state BLOB NOT NULL
);
)sql",
    // v4 -> v5: the journal of file operations (catalog/journal.h) and image sharpness.
    R"sql(
CREATE TABLE journal_runs(
  id INTEGER PRIMARY KEY,
  command TEXT NOT NULL,
  args TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  state TEXT NOT NULL
);
CREATE TABLE journal_ops(
  run_id INTEGER NOT NULL REFERENCES journal_runs(id),
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  src BLOB,
  dst BLOB NOT NULL,
  size INTEGER, mtime_ns INTEGER, inode INTEGER, device INTEGER, mode INTEGER,
  hash BLOB,
  state TEXT NOT NULL,
  reason TEXT,
  PRIMARY KEY(run_id, seq)
) WITHOUT ROWID;
ALTER TABLE perceptual_hashes ADD COLUMN sharpness REAL;
)sql",
    // v5 -> v6: enrichment results (descriptions, OCR, names) per (asset, provider, model, prompt).
    R"sql(
CREATE TABLE enrichments(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  prompt_version TEXT NOT NULL,
  result TEXT NOT NULL,
  latency_ms REAL,
  tokens INTEGER,
  created_at INTEGER NOT NULL,
  PRIMARY KEY(asset_id, provider, model, prompt_version)
);
)sql",
    // v6 -> v7: the result cache of `lumen convert`: which file a recipe made from which content.
    R"sql(
CREATE TABLE conversions(
  source_hash BLOB NOT NULL,
  recipe TEXT NOT NULL,
  output BLOB NOT NULL,
  out_size INTEGER NOT NULL,
  out_mtime_ns INTEGER NOT NULL,
  width INTEGER,
  height INTEGER,
  format TEXT,
  source_path BLOB NOT NULL,
  source_size INTEGER NOT NULL,
  source_mtime_ns INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY(source_hash, recipe, output)
) WITHOUT ROWID;
CREATE INDEX conversions_source ON conversions(source_path);
CREATE INDEX conversions_output ON conversions(output);
)sql",
    // v7 -> v8: media kinds (issue 17): an asset is a photo or a document; a document's text and
    // its own metadata (title, author, creation date) per extraction producer.
    R"sql(
ALTER TABLE assets ADD COLUMN kind TEXT NOT NULL DEFAULT 'photo';
CREATE TABLE documents(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  producer TEXT NOT NULL,
  title TEXT,
  author TEXT,
  created TEXT,
  language TEXT,
  pages INTEGER NOT NULL,
  needs_render INTEGER NOT NULL,
  truncated INTEGER NOT NULL,
  text TEXT NOT NULL,
  PRIMARY KEY(asset_id, producer)
);
)sql",
    // v8 -> v9: videos (issue 18). Per analysis producer: the probe (JSON and the columns queries
    // filter on), the temporal signature, shots and key frames with their perceptual hashes; per
    // model, the key frames' embeddings (the video's pooled one is in `embeddings`); per label
    // bank, the key frames' tags (the video's pooled ones are in `tags`).
    R"sql(
CREATE TABLE videos(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  producer TEXT NOT NULL,
  duration REAL NOT NULL,
  codec TEXT NOT NULL,
  fps REAL NOT NULL,
  vfr INTEGER NOT NULL,
  rotation INTEGER NOT NULL,
  creation_time TEXT,
  probe TEXT NOT NULL,
  poster_time REAL NOT NULL,
  frames INTEGER NOT NULL,
  damaged INTEGER NOT NULL,
  signature BLOB NOT NULL,
  PRIMARY KEY(asset_id, producer)
);
CREATE TABLE video_shots(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  producer TEXT NOT NULL,
  idx INTEGER NOT NULL,
  start REAL NOT NULL,
  end REAL NOT NULL,
  PRIMARY KEY(asset_id, producer, idx)
);
CREATE TABLE video_frames(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  producer TEXT NOT NULL,
  idx INTEGER NOT NULL,
  t REAL NOT NULL,
  shot INTEGER NOT NULL,
  dhash INTEGER NOT NULL,
  phash INTEGER NOT NULL,
  PRIMARY KEY(asset_id, producer, idx)
);
CREATE TABLE frame_embeddings(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  model TEXT NOT NULL,
  idx INTEGER NOT NULL,
  t REAL NOT NULL,
  dim INTEGER NOT NULL,
  vector BLOB NOT NULL,
  PRIMARY KEY(asset_id, model, idx)
);
CREATE TABLE frame_tags(
  asset_id INTEGER NOT NULL REFERENCES assets(id),
  bank TEXT NOT NULL,
  idx INTEGER NOT NULL,
  term TEXT NOT NULL,
  confidence REAL NOT NULL,
  PRIMARY KEY(asset_id, bank, idx, term)
);
)sql",
    // v9 -> v10: resumable conversion jobs (issue 20).
    R"sql(
CREATE TABLE jobs(
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  input BLOB NOT NULL,
  input_size INTEGER NOT NULL,
  input_mtime_ns INTEGER NOT NULL,
  recipe TEXT NOT NULL,
  output BLOB NOT NULL,
  args TEXT NOT NULL,
  folder BLOB NOT NULL,
  state TEXT NOT NULL,
  segments INTEGER NOT NULL,
  done INTEGER NOT NULL,
  plan TEXT NOT NULL,
  error TEXT,
  pid INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_input ON jobs(input, recipe);
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kCatalogSchemaVersion);

int64_t Now() {
  return static_cast<int64_t>(::time(nullptr));
}

// The byte range [lo, hi) of the paths strictly under folder `root` ('0' follows '/').
std::pair<std::string, std::string> PathRange(const std::string& root) {
  if (root == "/") return {"/", "0"};
  return {root + "/", root + "0"};
}

// Binds ?1 = root, ?2/?3 = its PathRange: for "path=?1 OR (path>=?2 AND path<?3)".
void BindUnderRoot(sql::Stmt& s, const std::string& root) {
  const auto [lo, hi] = PathRange(root);
  s.BindBlob(1, root.data(), root.size())
      .BindBlob(2, lo.data(), lo.size())
      .BindBlob(3, hi.data(), hi.size());
}

}  // namespace

std::string DefaultCatalogPath() {
  if (const char* p = std::getenv("LUMEN_CATALOG"); p && *p) return p;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x)
    return std::string(x) + "/lumen/catalog.db";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/lumen/catalog.db";
}

const char* LocationStateName(LocationState s) {
  switch (s) {
    case LocationState::kOk:
      return "ok";
    case LocationState::kFailed:
      return "failed";
    case LocationState::kSkipped:
      return "skipped";
    case LocationState::kMissing:
      return "missing";
  }
  return "ok";
}

static LocationState ParseState(const std::string& s) {
  if (s == "failed") return LocationState::kFailed;
  if (s == "skipped") return LocationState::kSkipped;
  if (s == "missing") return LocationState::kMissing;
  return LocationState::kOk;
}

Catalog::~Catalog() = default;

namespace {

// "file:" URI for a path (RFC 3986 escapes for what SQLite's URI parser treats specially).
std::string FileUri(const std::string& path, const char* query) {
  std::string u = "file:";
  for (unsigned char c : path) {
    if (c == '%' || c == '?' || c == '#' || c < 0x21 || c >= 0x7f)
      u += fmt::format("%{:02X}", c);
    else
      u += static_cast<char>(c);
  }
  return u + query;
}

int64_t PragmaInt(sqlite3* db, const char* pragma, Status* st) {
  auto s = sql::Prepare(db, pragma);
  if (!s.ok()) {
    *st = s.status();
    return -1;
  }
  return s->Step(st) ? s->Int(0) : -1;
}

// Whether the open database is lumen's (or new): refuses another program's database before
// anything is written to it.
Status CheckIsLumenCatalog(sqlite3* db, const std::string& path, bool* is_new) {
  Status st;
  const int64_t app = PragmaInt(db, "PRAGMA application_id", &st);
  if (!st.ok()) return Status::Io(fmt::format("cannot open catalog {}: {}", path, st.message()));
  if (app == Catalog::kApplicationId) return Status::Ok();
  auto q = sql::Prepare(db,
                        "SELECT name FROM sqlite_master WHERE type IN ('table','view') "
                        "AND name NOT LIKE 'sqlite_%' ORDER BY name");
  if (!q.ok())
    return Status::Io(fmt::format("cannot open catalog {}: {}", path, q.status().message()));
  std::vector<std::string> tables;
  while (q->Step(&st)) tables.push_back(q->Text(0));
  if (!st.ok()) return Status::Io(fmt::format("cannot open catalog {}: {}", path, st.message()));
  const int64_t version = PragmaInt(db, "PRAGMA user_version", &st);
  if (app == 0 && tables.empty() && version == 0) {
    *is_new = true;
    return Status::Ok();
  }
  auto has = [&](const char* t) {
    return std::find(tables.begin(), tables.end(), t) != tables.end();
  };
  // Catalogs written before the application id was set: lumen's version range and tables.
  if (app == 0 && version >= 1 && version <= kCatalogSchemaVersion && has("assets") &&
      has("locations") && has("thumbnails") && has("runs"))
    return Status::Ok();
  std::string names;
  for (size_t i = 0; i < tables.size() && i < 5; ++i) names += (i ? ", " : "") + tables[i];
  if (tables.size() > 5) names += ", ...";
  return Status::Invalid(fmt::format(
      "{} is not a lumen catalog: it is another SQLite database ({} table{}{}{}{}); lumen leaves "
      "it untouched. Pass --catalog a new file or an existing lumen catalog",
      path, tables.size(), tables.size() == 1 ? "" : "s", tables.empty() ? "" : ": ", names,
      app ? fmt::format(", application id {:#x}", static_cast<uint32_t>(app)) : ""));
}

}  // namespace

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path, Mode mode) {
  std::unique_ptr<Catalog> c(new Catalog());
  c->path_ = path;
  const bool read_only = mode == Mode::kReadOnly;
  struct stat st_file;
  if (read_only && ::stat(path.c_str(), &st_file) != 0)
    return Status::NotFound(
        fmt::format("no catalog at {} ({}); `lumen index` creates one", path, strerror(errno)));
  if (!read_only) {
    std::error_code ec;
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec)
      return Status::Io(
          fmt::format("cannot create catalog directory {}: {}", parent.string(), ec.message()));
  }
  auto open = [&](const std::string& name, int flags) -> Status {
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(name.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    c->db_.reset(raw);
    if (rc != SQLITE_OK)
      return Status::Io(fmt::format("cannot open catalog {}: {}", path,
                                    raw ? sqlite3_errmsg(raw) : "out of memory"));
    sqlite3_busy_timeout(raw, 10000);
    sqlite3_extended_result_codes(raw, 1);
    return Status::Ok();
  };
  LUMEN_RETURN_IF_ERROR(
      open(path, read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  bool is_new = false;
  Status check = CheckIsLumenCatalog(c->db_.get(), path, &is_new);
  if (!check.ok() && read_only && check.code() == Code::kIo &&
      ((sqlite3_extended_errcode(c->db_.get()) & 0xff) == SQLITE_CANTOPEN ||
       (sqlite3_extended_errcode(c->db_.get()) & 0xff) == SQLITE_READONLY)) {
    // A WAL catalog in a folder we cannot write: SQLite cannot create its shared-memory file.
    // Read it as an immutable file instead (nobody can be writing it there either).
    LUMEN_RETURN_IF_ERROR(
        open(FileUri(path, "?immutable=1"), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI));
    check = CheckIsLumenCatalog(c->db_.get(), path, &is_new);
  }
  if (!check.ok()) {
    if (check.message().find("file is not a database") != std::string::npos)
      return Status::Invalid(fmt::format(
          "{} is not a lumen catalog (not an SQLite database); lumen leaves it untouched", path));
    return check;
  }
  if (read_only) {
    const int v = c->SchemaVersion();
    if (is_new) return Status::NotFound(fmt::format("the catalog {} is empty", path));
    if (v > kCatalogSchemaVersion)
      return Status::Invalid(
          fmt::format("catalog {} has schema version {}, newer than this lumen ({}); upgrade lumen",
                      path, v, kCatalogSchemaVersion));
    if (v < kCatalogSchemaVersion)
      return Status::Invalid(fmt::format(
          "catalog {} has schema version {} (this lumen writes {}); any writing command (lumen "
          "index) upgrades it",
          path, v, kCatalogSchemaVersion));
    LUMEN_RETURN_IF_ERROR(c->PrepareStatements());
    return c;
  }
  // WAL + synchronous=NORMAL: a crash or kill -9 never corrupts the database and loses at most
  // the transaction in progress.
  Status st = sql::Exec(
      c->db_.get(), "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
  if (!st.ok()) return Status::Io(fmt::format("cannot open catalog {}: {}", path, st.message()));
  LUMEN_RETURN_IF_ERROR(c->Migrate());
  Status app_st;
  if (PragmaInt(c->db_.get(), "PRAGMA application_id", &app_st) != kApplicationId)
    LUMEN_RETURN_IF_ERROR(
        sql::Exec(c->db_.get(), fmt::format("PRAGMA application_id={}", kApplicationId)));
  LUMEN_RETURN_IF_ERROR(c->PrepareStatements());
  return c;
}

int Catalog::SchemaVersion() {
  auto s = sql::Prepare(db_.get(), "PRAGMA user_version");
  if (!s.ok()) return -1;
  Status st;
  return s->Step(&st) ? static_cast<int>(s->Int(0)) : -1;
}

Status Catalog::Migrate() {
  // One step per transaction, the version read again once the write lock is held: two
  // processes opening a new catalog at once (two jobs, an index beside them) must not both run
  // the same step.
  // A current catalog (the usual case) is not locked at all: a convert beside a busy index must
  // not wait for its write lock.
  if (SchemaVersion() == kCatalogSchemaVersion) return Status::Ok();
  while (true) {
    if (Status st = sql::Exec(db_.get(), "BEGIN IMMEDIATE"); !st.ok())
      return Status::Io(fmt::format("migrating catalog {}: {}", path_, st.message()));
    const int v = SchemaVersion();
    Status st;
    if (v < 0) {
      st = sql::Error(db_.get(), fmt::format("read schema version of {}", path_));
    } else if (v > kCatalogSchemaVersion) {
      st = Status::Invalid(
          fmt::format("catalog {} has schema version {}, newer than this lumen ({}); upgrade lumen",
                      path_, v, kCatalogSchemaVersion));
    } else if (v == kCatalogSchemaVersion) {
      return sql::Exec(db_.get(), "COMMIT");
    } else if (Status m = sql::Exec(db_.get(), fmt::format("{} PRAGMA user_version={}; COMMIT;",
                                                           kMigrations[v], v + 1));
               !m.ok()) {
      st = Status::Io(
          fmt::format("migrating catalog {} to version {}: {}", path_, v + 1, m.message()));
    }
    if (!st.ok()) {
      (void)sql::Exec(db_.get(), "ROLLBACK");
      return st;
    }
  }
}

Status Catalog::PrepareStatements() {
  auto prep = [&](sql::Stmt* out, const char* q) -> Status {
    auto s = sql::Prepare(db_.get(), q);
    if (!s.ok()) return s.status();
    *out = std::move(s.value());
    return Status::Ok();
  };
  LUMEN_RETURN_IF_ERROR(prep(&begin_, "BEGIN IMMEDIATE"));
  LUMEN_RETURN_IF_ERROR(prep(&commit_, "COMMIT"));
  LUMEN_RETURN_IF_ERROR(
      prep(&upsert_asset_,
           "INSERT INTO assets(hash,size,format,width,height,colorspace,first_seen,kind) "
           "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(hash) DO UPDATE SET "
           "format=excluded.format, width=excluded.width, height=excluded.height, "
           "colorspace=excluded.colorspace, kind=excluded.kind RETURNING id"));
  LUMEN_RETURN_IF_ERROR(prep(&find_asset_, "SELECT id FROM assets WHERE hash=?"));
  LUMEN_RETURN_IF_ERROR(prep(
      &put_thumb_,
      "INSERT OR REPLACE INTO thumbnails(asset_id,producer,width,height,webp) VALUES(?,?,?,?,?)"));
  LUMEN_RETURN_IF_ERROR(
      prep(&put_hashes_,
           "INSERT OR REPLACE INTO perceptual_hashes(asset_id,producer,dhash,phash,sharpness) "
           "VALUES(?,?,?,?,?)"));
  LUMEN_RETURN_IF_ERROR(
      prep(&put_meta_,
           "INSERT OR REPLACE INTO metadata(asset_id,producer,captured_at,utc_offset,camera_make,"
           "camera_model,lens,gps_latitude,gps_longitude,gps_altitude,iso,aperture,exposure_time,"
           "focal_length,orientation) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  LUMEN_RETURN_IF_ERROR(
      prep(&put_embedding_,
           "INSERT OR REPLACE INTO embeddings(asset_id,model,dim,vector) VALUES(?,?,?,?)"));
  LUMEN_RETURN_IF_ERROR(
      prep(&upsert_location_,
           "INSERT INTO "
           "locations(path,size,mtime_ns,inode,device,asset_id,state,reason,run_id,updated_at) "
           "VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET size=excluded.size, "
           "mtime_ns=excluded.mtime_ns, inode=excluded.inode, device=excluded.device, "
           "asset_id=excluded.asset_id, "
           "state=excluded.state, reason=excluded.reason, run_id=excluded.run_id, "
           "updated_at=excluded.updated_at"));
  LUMEN_RETURN_IF_ERROR(
      prep(&mark_missing_,
           "UPDATE locations SET state='missing', reason='not found at its path in the last scan', "
           "run_id=?, updated_at=? WHERE id=?"));
  return Status::Ok();
}

Status Catalog::Begin() {
  return begin_.Run();
}
Status Catalog::Commit() {
  return commit_.Run();
}

Result<int64_t> Catalog::BeginRun(const std::string& command,
                                  const std::vector<std::string>& roots) {
  auto s = sql::Prepare(
      db_.get(), "INSERT INTO runs(command,roots,started_at,status) VALUES(?,?,?,'running')");
  if (!s.ok()) return s.status();
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : roots) j.push_back(r);
  s->Bind(1, command).Bind(2, json::Dump(j, -1)).Bind(3, Now());
  LUMEN_RETURN_IF_ERROR(s->Run());
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_.get()));
}

Status Catalog::FinishRun(int64_t run, const std::string& status, const RunCounts& c) {
  auto s = sql::Prepare(
      db_.get(),
      "UPDATE runs SET finished_at=?, status=?, succeeded=?, failed=?, skipped=?, unchanged=?, "
      "missing=? WHERE id=?");
  if (!s.ok()) return s.status();
  s->Bind(1, Now()).Bind(2, status).Bind(3, int64_t(c.succeeded)).Bind(4, int64_t(c.failed));
  s->Bind(5, int64_t(c.skipped))
      .Bind(6, int64_t(c.unchanged))
      .Bind(7, int64_t(c.missing))
      .Bind(8, run);
  return s->Run();
}

Status Catalog::LoadLocations(const std::vector<std::string>& roots,
                              std::unordered_map<std::string, KnownLocation>* out) {
  auto s = sql::Prepare(db_.get(),
                        "SELECT id,path,size,mtime_ns,inode,device,asset_id,state FROM locations "
                        "WHERE path=?1 OR (path>=?2 AND path<?3)");
  if (!s.ok()) return s.status();
  for (const auto& root : roots) {
    BindUnderRoot(*s, root);
    Status st;
    while (s->Step(&st)) {
      KnownLocation k;
      k.id = s->Int(0);
      k.identity.size = static_cast<uint64_t>(s->Int(2));
      k.identity.mtime_ns = s->Int(3);
      k.identity.inode = static_cast<uint64_t>(s->Int(4));
      k.identity.device = static_cast<uint64_t>(s->Int(5));
      k.asset_id = s->OptInt(6);
      k.state = ParseState(s->Text(7));
      (*out)[s->Blob(1)] = k;
    }
    s->Reset();
    LUMEN_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status Catalog::LoadCompleteAssets(const Producers& p,
                                   std::unordered_set<Hash128, Hash128Hasher>* out,
                                   std::unordered_set<int64_t>* ids) {
  // Photos need every photo product of the run; documents their text (and, with an encoder whose
  // text tower embeds them, that embedding). One query per kind, so neither needs the other's.
  std::vector<std::string> binds;
  auto join = [&](std::string* q, const std::string& producer, const char* table,
                  const char* key = "producer") {
    if (producer.empty()) return;
    binds.push_back(producer);
    *q += fmt::format(" JOIN {0} t{1} ON t{1}.asset_id=a.id AND t{1}.{2}=?{1}", table, binds.size(),
                      key);
  };
  std::string photos = "SELECT a.hash, a.id FROM assets a";
  join(&photos, p.thumbnail, "thumbnails");
  join(&photos, p.hashes, "perceptual_hashes");
  join(&photos, p.metadata, "metadata");
  join(&photos, p.embedding, "embeddings", "model");
  photos += " WHERE a.kind='photo'";
  std::string q = photos;
  if (!p.document.empty()) {
    std::string docs = "SELECT a.hash, a.id FROM assets a";
    join(&docs, p.document, "documents");
    join(&docs, p.document_embedding, "embeddings", "model");
    q += " UNION ALL " + docs + " WHERE a.kind='document'";
  }
  if (!p.video.empty()) {
    std::string videos = "SELECT a.hash, a.id FROM assets a";
    join(&videos, p.video, "videos");
    join(&videos, p.thumbnail, "thumbnails");
    join(&videos, p.metadata, "metadata");
    join(&videos, p.embedding, "embeddings", "model");
    q += " UNION ALL " + videos + " WHERE a.kind='video'";
  }
  auto s = sql::Prepare(db_.get(), q);
  if (!s.ok()) return s.status();
  for (size_t i = 0; i < binds.size(); ++i) s->Bind(static_cast<int>(i + 1), binds[i]);
  Status st;
  while (s->Step(&st)) {
    std::string b = s->Blob(0);
    if (ids) ids->insert(s->Int(1));
    if (b.size() == 16)
      out->insert(Hash128::FromBytes(reinterpret_cast<const unsigned char*>(b.data())));
  }
  return st;
}

Result<int> Catalog::EmbeddingDim(const std::string& model) {
  auto s = sql::Prepare(db_.get(), "SELECT dim FROM embeddings WHERE model=? LIMIT 1");
  if (!s.ok()) return s.status();
  s->Bind(1, model);
  Status st;
  const int dim = s->Step(&st) ? int(s->Int(0)) : 0;
  if (!st.ok()) return st;
  return dim;
}

Status Catalog::PutVideo(int64_t asset, const std::string& producer, const VideoRecord& v) {
  static_assert(std::endian::native == std::endian::little, "signatures are stored little-endian");
  for (const char* table : {"video_shots", "video_frames"}) {
    auto del = sql::Prepare(db_.get(),
                            fmt::format("DELETE FROM {} WHERE asset_id=? AND producer=?", table));
    if (!del.ok()) return del.status();
    del->Bind(1, asset).Bind(2, producer);
    LUMEN_RETURN_IF_ERROR(del->Run());
  }
  // The signature: per sample, time (f32), flags (u32: bit 0 masked, bits 8-31 the mean RGB),
  // dHash (u64).
  std::vector<uint8_t> sig(v.signature.size() * 16);
  for (size_t i = 0; i < v.signature.size(); ++i) {
    const video::SignatureSample& x = v.signature[i];
    const uint32_t flags = (x.masked ? 1u : 0u) | uint32_t(x.rgb[0]) << 8 |
                           uint32_t(x.rgb[1]) << 16 | uint32_t(x.rgb[2]) << 24;
    std::memcpy(&sig[i * 16], &x.time, 4);
    std::memcpy(&sig[i * 16 + 4], &flags, 4);
    std::memcpy(&sig[i * 16 + 8], &x.dhash, 8);
  }
  const video::VideoTrack& t = video::MainTrack(v.probe);
  auto s = sql::Prepare(db_.get(),
                        "INSERT OR REPLACE INTO videos(asset_id,producer,duration,codec,fps,vfr,"
                        "rotation,creation_time,probe,poster_time,frames,damaged,signature) "
                        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!s.ok()) return s.status();
  s->Bind(1, asset).Bind(2, producer).Bind(3, v.probe.duration).Bind(4, t.codec).Bind(5, t.fps);
  s->Bind(6, int64_t(t.variable_rate)).Bind(7, int64_t(t.rotation));
  s->Bind(8, v.probe.creation_time.empty() ? std::nullopt : std::optional(v.probe.creation_time));
  s->Bind(9, video::ProbeJson(v.probe).dump()).Bind(10, v.poster_time).Bind(11, v.frames);
  s->Bind(12, v.damaged).BindBlob(13, sig.data(), sig.size());
  LUMEN_RETURN_IF_ERROR(s->Run());
  auto shot = sql::Prepare(
      db_.get(), "INSERT INTO video_shots(asset_id,producer,idx,start,end) VALUES(?,?,?,?,?)");
  if (!shot.ok()) return shot.status();
  for (size_t i = 0; i < v.shots.size(); ++i) {
    shot->Bind(1, asset).Bind(2, producer).Bind(3, int64_t(i)).Bind(4, v.shots[i].start);
    shot->Bind(5, v.shots[i].end);
    LUMEN_RETURN_IF_ERROR(shot->Run());
  }
  auto frame = sql::Prepare(db_.get(),
                            "INSERT INTO video_frames(asset_id,producer,idx,t,shot,dhash,phash) "
                            "VALUES(?,?,?,?,?,?,?)");
  if (!frame.ok()) return frame.status();
  for (size_t i = 0; i < v.key_frames.size(); ++i) {
    const VideoKeyFrame& k = v.key_frames[i];
    frame->Bind(1, asset).Bind(2, producer).Bind(3, int64_t(i)).Bind(4, k.time);
    frame->Bind(5, int64_t(k.shot))
        .Bind(6, int64_t(k.hashes.dhash))
        .Bind(7, int64_t(k.hashes.phash));
    LUMEN_RETURN_IF_ERROR(frame->Run());
  }
  return Status::Ok();
}

Status Catalog::PutFrameEmbeddings(int64_t asset, const std::string& model,
                                   const std::vector<double>& times,
                                   const std::vector<float>& vectors, int dim) {
  auto del = sql::Prepare(db_.get(), "DELETE FROM frame_embeddings WHERE asset_id=? AND model=?");
  if (!del.ok()) return del.status();
  del->Bind(1, asset).Bind(2, model);
  LUMEN_RETURN_IF_ERROR(del->Run());
  auto ins = sql::Prepare(
      db_.get(),
      "INSERT INTO frame_embeddings(asset_id,model,idx,t,dim,vector) VALUES(?,?,?,?,?,?)");
  if (!ins.ok()) return ins.status();
  for (size_t i = 0; i < times.size(); ++i) {
    ins->Bind(1, asset).Bind(2, model).Bind(3, int64_t(i)).Bind(4, times[i]).Bind(5, int64_t(dim));
    ins->BindBlob(6, vectors.data() + i * size_t(dim), size_t(dim) * sizeof(float));
    LUMEN_RETURN_IF_ERROR(ins->Run());
  }
  return Status::Ok();
}

Status Catalog::PutFrameTags(int64_t asset, const std::string& bank,
                             const std::vector<std::tuple<int, std::string, float>>& tags) {
  auto del = sql::Prepare(db_.get(), "DELETE FROM frame_tags WHERE asset_id=? AND bank=?");
  if (!del.ok()) return del.status();
  del->Bind(1, asset).Bind(2, bank);
  LUMEN_RETURN_IF_ERROR(del->Run());
  auto ins = sql::Prepare(
      db_.get(),
      "INSERT OR REPLACE INTO frame_tags(asset_id,bank,idx,term,confidence) VALUES(?,?,?,?,?)");
  if (!ins.ok()) return ins.status();
  for (const auto& [idx, term, conf] : tags) {
    ins->Bind(1, asset).Bind(2, bank).Bind(3, int64_t(idx)).Bind(4, term).Bind(5, double(conf));
    LUMEN_RETURN_IF_ERROR(ins->Run());
  }
  return Status::Ok();
}

Result<std::optional<std::pair<double, float>>> Catalog::BestFrame(
    int64_t asset, const std::string& model, const std::vector<float>& query) {
  auto s = sql::Prepare(db_.get(),
                        "SELECT t, vector FROM frame_embeddings WHERE asset_id=? AND model=?");
  if (!s.ok()) return s.status();
  s->Bind(1, asset).Bind(2, model);
  std::optional<std::pair<double, float>> best;
  Status st;
  while (s->Step(&st)) {
    const std::string b = s->Blob(1);
    if (b.size() != query.size() * sizeof(float)) continue;
    float dot = 0;
    for (size_t i = 0; i < query.size(); ++i) {
      float x;
      std::memcpy(&x, b.data() + i * sizeof(float), sizeof x);
      dot += x * query[i];
    }
    if (!best || dot > best->second) best = std::make_pair(s->Double(0), dot);
  }
  if (!st.ok()) return st;
  return best;
}

Status Catalog::PutDocument(int64_t asset, const std::string& producer, const DocumentRecord& d) {
  auto s = sql::Prepare(db_.get(),
                        "INSERT OR REPLACE INTO documents(asset_id,producer,title,author,created,"
                        "language,pages,needs_render,truncated,text) VALUES(?,?,?,?,?,?,?,?,?,?)");
  if (!s.ok()) return s.status();
  auto opt = [](const std::string& v) { return v.empty() ? std::nullopt : std::optional(v); };
  s->Bind(1, asset).Bind(2, producer).Bind(3, opt(d.title)).Bind(4, opt(d.author));
  s->Bind(5, opt(d.created)).Bind(6, opt(d.language)).Bind(7, int64_t(d.pages));
  s->Bind(8, int64_t(d.needs_render)).Bind(9, int64_t(d.truncated)).Bind(10, d.text);
  return s->Run();
}

Result<std::optional<DocumentRecord>> Catalog::GetDocument(int64_t asset) {
  auto s = sql::Prepare(db_.get(),
                        "SELECT title,author,created,language,pages,needs_render,truncated,text "
                        "FROM documents WHERE asset_id=? ORDER BY producer DESC LIMIT 1");
  if (!s.ok()) return s.status();
  s->Bind(1, asset);
  Status st;
  if (!s->Step(&st)) {
    if (!st.ok()) return st;
    return std::optional<DocumentRecord>();
  }
  DocumentRecord d;
  d.title = s->OptText(0).value_or("");
  d.author = s->OptText(1).value_or("");
  d.created = s->OptText(2).value_or("");
  d.language = s->OptText(3).value_or("");
  d.pages = int(s->Int(4));
  d.needs_render = s->Int(5) != 0;
  d.truncated = s->Int(6) != 0;
  d.text = s->Text(7);
  return std::optional<DocumentRecord>(std::move(d));
}

Result<int64_t> Catalog::UpsertAsset(const AssetRecord& a) {
  unsigned char h[16];
  a.hash.ToBytes(h);
  upsert_asset_.BindBlob(1, h, 16)
      .Bind(2, int64_t(a.size))
      .Bind(3, a.format)
      .Bind(4, int64_t(a.width));
  upsert_asset_.Bind(5, int64_t(a.height)).Bind(6, a.colorspace).Bind(7, Now());
  upsert_asset_.Bind(8, std::string(MediaKindName(a.kind)));
  Status st;
  int64_t id = -1;
  if (upsert_asset_.Step(&st)) id = upsert_asset_.Int(0);
  upsert_asset_.Reset();
  if (!st.ok()) return st;
  if (id < 0) return Status::Internal("asset upsert returned no id");
  return id;
}

Result<std::optional<int64_t>> Catalog::FindAsset(const Hash128& hash) {
  unsigned char h[16];
  hash.ToBytes(h);
  find_asset_.BindBlob(1, h, 16);
  Status st;
  std::optional<int64_t> id;
  if (find_asset_.Step(&st)) id = find_asset_.Int(0);
  find_asset_.Reset();
  if (!st.ok()) return st;
  return id;
}

Status Catalog::PutThumbnail(int64_t asset, const std::string& producer, const Thumbnail& t) {
  put_thumb_.Bind(1, asset).Bind(2, producer).Bind(3, int64_t(t.width)).Bind(4, int64_t(t.height));
  put_thumb_.BindBlob(5, t.webp.data(), t.webp.size());
  return put_thumb_.Run();
}

Status Catalog::PutHashes(int64_t asset, const std::string& producer, const PerceptualHashes& h) {
  put_hashes_.Bind(1, asset).Bind(2, producer).Bind(3, static_cast<int64_t>(h.dhash));
  put_hashes_.Bind(4, static_cast<int64_t>(h.phash)).Bind(5, h.sharpness);
  return put_hashes_.Run();
}

Status Catalog::PutMetadata(int64_t asset, const std::string& producer, const PhotoMetadata& m) {
  auto& s = put_meta_;
  s.Bind(1, asset)
      .Bind(2, producer)
      .Bind(3, m.captured_at)
      .Bind(4, m.utc_offset)
      .Bind(5, m.camera_make);
  s.Bind(6, m.camera_model).Bind(7, m.lens).Bind(8, m.gps_latitude).Bind(9, m.gps_longitude);
  s.Bind(10, m.gps_altitude);
  if (m.iso)
    s.Bind(11, int64_t(*m.iso));
  else
    s.BindNull(11);
  s.Bind(12, m.aperture)
      .Bind(13, m.exposure_time)
      .Bind(14, m.focal_length)
      .Bind(15, int64_t(m.orientation));
  return s.Run();
}

Status Catalog::PutEmbedding(int64_t asset, const std::string& model, const std::vector<float>& v) {
  static_assert(std::endian::native == std::endian::little, "embeddings are stored little-endian");
  put_embedding_.Bind(1, asset).Bind(2, model).Bind(3, int64_t(v.size()));
  put_embedding_.BindBlob(4, v.data(), v.size() * sizeof(float));
  return put_embedding_.Run();
}

Status Catalog::PutTags(int64_t asset, const std::string& bank, size_t terms,
                        const std::vector<std::tuple<std::string, std::string, float>>& tags) {
  auto mark =
      sql::Prepare(db_.get(), "INSERT OR REPLACE INTO tagged(asset_id,bank,terms) VALUES(?,?,?)");
  if (!mark.ok()) return mark.status();
  mark->Bind(1, asset).Bind(2, bank).Bind(3, int64_t(terms));
  LUMEN_RETURN_IF_ERROR(mark->Run());
  auto del = sql::Prepare(db_.get(), "DELETE FROM tags WHERE asset_id=? AND bank=?");
  if (!del.ok()) return del.status();
  del->Bind(1, asset).Bind(2, bank);
  LUMEN_RETURN_IF_ERROR(del->Run());
  auto ins = sql::Prepare(
      db_.get(),
      "INSERT OR REPLACE INTO tags(asset_id,bank,term,category,confidence) VALUES(?,?,?,?,?)");
  if (!ins.ok()) return ins.status();
  for (const auto& [term, category, conf] : tags) {
    ins->Bind(1, asset).Bind(2, bank).Bind(3, term).Bind(4, category).Bind(5, double(conf));
    LUMEN_RETURN_IF_ERROR(ins->Run());
  }
  return Status::Ok();
}

Status Catalog::UpsertLocation(const std::string& path, const FileIdentity& id,
                               std::optional<int64_t> asset, LocationState state,
                               const std::string& reason, int64_t run) {
  auto& s = upsert_location_;
  s.BindBlob(1, path.data(), path.size()).Bind(2, int64_t(id.size)).Bind(3, id.mtime_ns);
  s.Bind(4, int64_t(id.inode)).Bind(5, int64_t(id.device));
  if (asset)
    s.Bind(6, *asset);
  else
    s.BindNull(6);
  s.Bind(7, std::string_view(LocationStateName(state)));
  if (reason.empty())
    s.BindNull(8);
  else
    s.Bind(8, reason);
  s.Bind(9, run).Bind(10, Now());
  return s.Run();
}

Status Catalog::MarkMissing(int64_t location_id, int64_t run) {
  mark_missing_.Bind(1, run).Bind(2, Now()).Bind(3, location_id);
  return mark_missing_.Run();
}

Result<std::vector<std::pair<std::string, int64_t>>> Catalog::EmbeddingModels() {
  auto s = sql::Prepare(db_.get(),
                        "SELECT model, COUNT(*) FROM embeddings GROUP BY model ORDER BY model");
  if (!s.ok()) return s.status();
  std::vector<std::pair<std::string, int64_t>> out;
  Status st;
  while (s->Step(&st)) out.emplace_back(s->Text(0), s->Int(1));
  if (!st.ok()) return st;
  return out;
}

Result<std::optional<Thumbnail>> Catalog::GetThumbnail(int64_t asset) {
  auto s = sql::Prepare(db_.get(),
                        "SELECT width, height, webp FROM thumbnails WHERE asset_id=? "
                        "ORDER BY width*height DESC LIMIT 1");
  if (!s.ok()) return s.status();
  s->Bind(1, asset);
  Status st;
  std::optional<Thumbnail> out;
  if (s->Step(&st)) {
    out.emplace();
    out->width = int(s->Int(0));
    out->height = int(s->Int(1));
    const std::string b = s->Blob(2);
    out->webp.assign(b.begin(), b.end());
  }
  if (!st.ok()) return st;
  return out;
}

Result<std::optional<Catalog::Enrichment>> Catalog::GetEnrichment(int64_t asset,
                                                                  const std::string& provider,
                                                                  const std::string& model,
                                                                  const std::string& prompt) {
  auto s = sql::Prepare(db_.get(),
                        "SELECT result, latency_ms, tokens FROM enrichments WHERE asset_id=? AND "
                        "provider=? AND model=? AND prompt_version=?");
  if (!s.ok()) return s.status();
  s->Bind(1, asset).Bind(2, provider).Bind(3, model).Bind(4, prompt);
  Status st;
  std::optional<Enrichment> out;
  if (s->Step(&st)) out = Enrichment{s->Text(0), s->Double(1), s->Int(2)};
  if (!st.ok()) return st;
  return out;
}

Status Catalog::PutEnrichment(int64_t asset, const std::string& provider, const std::string& model,
                              const std::string& prompt, const Enrichment& e) {
  auto s = sql::Prepare(db_.get(),
                        "INSERT OR REPLACE INTO enrichments(asset_id,provider,model,prompt_version,"
                        "result,latency_ms,tokens,created_at) VALUES(?,?,?,?,?,?,?,?)");
  if (!s.ok()) return s.status();
  s->Bind(1, asset).Bind(2, provider).Bind(3, model).Bind(4, prompt).Bind(5, e.result);
  s->Bind(6, e.latency_ms).Bind(7, e.tokens).Bind(8, Now());
  return s->Run();
}

namespace {
Catalog::Conversion ReadConversion(const sql::Stmt& s) {
  Catalog::Conversion c;
  c.output = s.Blob(0);
  c.out_size = uint64_t(s.Int(1));
  c.out_mtime_ns = s.Int(2);
  c.width = int(s.Int(3));
  c.height = int(s.Int(4));
  c.format = s.Text(5);
  return c;
}
constexpr const char* kConversionColumns = "output, out_size, out_mtime_ns, width, height, format";
}  // namespace

Result<std::optional<Hash128>> Catalog::KnownContent(const std::string& path,
                                                     const FileIdentity& id) {
  auto s = sql::Prepare(
      db_.get(),
      "SELECT source_hash FROM conversions WHERE source_path=?1 AND source_size=?2 AND "
      "source_mtime_ns=?3 UNION ALL SELECT a.hash FROM locations l JOIN assets a ON "
      "a.id=l.asset_id WHERE l.path=?1 AND l.size=?2 AND l.mtime_ns=?3 AND l.state='ok' LIMIT 1");
  if (!s.ok()) return s.status();
  s->BindBlob(1, path.data(), path.size()).Bind(2, int64_t(id.size)).Bind(3, id.mtime_ns);
  Status st;
  std::optional<Hash128> out;
  if (s->Step(&st)) {
    const std::string b = s->Blob(0);
    if (b.size() == 16) out = Hash128::FromBytes(reinterpret_cast<const unsigned char*>(b.data()));
  }
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<Catalog::Conversion>> Catalog::FindConversions(const Hash128& source,
                                                                  const std::string& recipe) {
  auto s = sql::Prepare(db_.get(), fmt::format("SELECT {} FROM conversions WHERE source_hash=? "
                                               "AND recipe=? ORDER BY created_at DESC",
                                               kConversionColumns));
  if (!s.ok()) return s.status();
  unsigned char h[16];
  source.ToBytes(h);
  s->BindBlob(1, h, 16).Bind(2, recipe);
  std::vector<Conversion> out;
  Status st;
  while (s->Step(&st)) out.push_back(ReadConversion(*s));
  if (!st.ok()) return st;
  return out;
}

Result<std::optional<Catalog::Conversion>> Catalog::ConversionAt(const std::string& output,
                                                                 const std::string& recipe) {
  auto s = sql::Prepare(
      db_.get(),
      fmt::format("SELECT {} FROM conversions WHERE output=? AND recipe=? ORDER BY created_at "
                  "DESC LIMIT 1",
                  kConversionColumns));
  if (!s.ok()) return s.status();
  s->BindBlob(1, output.data(), output.size()).Bind(2, recipe);
  std::optional<Conversion> out;
  Status st;
  if (s->Step(&st)) out = ReadConversion(*s);
  if (!st.ok()) return st;
  return out;
}

Result<std::optional<Catalog::ConversionOwner>> Catalog::ConversionOwnerAt(
    const std::string& output) {
  auto s = sql::Prepare(db_.get(),
                        fmt::format("SELECT {}, source_hash, source_path FROM conversions WHERE "
                                    "output=? ORDER BY created_at DESC LIMIT 1",
                                    kConversionColumns));
  if (!s.ok()) return s.status();
  s->BindBlob(1, output.data(), output.size());
  std::optional<ConversionOwner> out;
  Status st;
  if (s->Step(&st)) {
    ConversionOwner o;
    o.written = ReadConversion(*s);
    const std::string h = s->Blob(6);
    if (h.size() == 16)
      o.source = Hash128::FromBytes(reinterpret_cast<const unsigned char*>(h.data()));
    o.source_path = s->Blob(7);
    out = std::move(o);
  }
  if (!st.ok()) return st;
  return out;
}

Status Catalog::PutConversion(const Hash128& source, const std::string& recipe,
                              const std::string& source_path, const FileIdentity& source_id,
                              const Conversion& c) {
  // One output holds one result: an older row for the same file (another recipe or source) is
  // stale once it is rewritten.
  auto del = sql::Prepare(db_.get(), "DELETE FROM conversions WHERE output=?");
  if (!del.ok()) return del.status();
  del->BindBlob(1, c.output.data(), c.output.size());
  LUMEN_RETURN_IF_ERROR(del->Run());
  auto s = sql::Prepare(db_.get(),
                        "INSERT OR REPLACE INTO conversions(source_hash,recipe,output,out_size,"
                        "out_mtime_ns,width,height,format,source_path,source_size,"
                        "source_mtime_ns,created_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!s.ok()) return s.status();
  unsigned char h[16];
  source.ToBytes(h);
  s->BindBlob(1, h, 16).Bind(2, recipe).BindBlob(3, c.output.data(), c.output.size());
  s->Bind(4, int64_t(c.out_size)).Bind(5, c.out_mtime_ns).Bind(6, int64_t(c.width));
  s->Bind(7, int64_t(c.height)).Bind(8, c.format);
  s->BindBlob(9, source_path.data(), source_path.size()).Bind(10, int64_t(source_id.size));
  s->Bind(11, source_id.mtime_ns).Bind(12, Now());
  return s->Run();
}

namespace {
constexpr const char* kJobColumns =
    "id, kind, input, input_size, input_mtime_ns, recipe, output, args, folder, state, "
    "segments, done, plan, error, pid, created_at, updated_at";
Catalog::Job ReadJob(const sql::Stmt& s) {
  Catalog::Job j;
  j.id = s.Int(0);
  j.kind = s.Text(1);
  j.input = s.Blob(2);
  j.input_size = uint64_t(s.Int(3));
  j.input_mtime_ns = s.Int(4);
  j.recipe = s.Text(5);
  j.output = s.Blob(6);
  j.args = s.Text(7);
  j.folder = s.Blob(8);
  j.state = s.Text(9);
  j.segments = int(s.Int(10));
  j.done = int(s.Int(11));
  j.plan = s.Text(12);
  j.error = s.OptText(13).value_or("");
  j.pid = s.Int(14);
  j.created_at = s.Int(15);
  j.updated_at = s.Int(16);
  return j;
}
}  // namespace

Result<int64_t> Catalog::AddJob(const Job& j) {
  auto s = sql::Prepare(db_.get(),
                        "INSERT INTO jobs(kind, input, input_size, input_mtime_ns, recipe, "
                        "output, args, folder, state, segments, done, plan, error, pid, "
                        "created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!s.ok()) return s.status();
  const int64_t now = Now();
  s->Bind(1, j.kind).BindBlob(2, j.input.data(), j.input.size()).Bind(3, int64_t(j.input_size));
  s->Bind(4, j.input_mtime_ns).Bind(5, j.recipe).BindBlob(6, j.output.data(), j.output.size());
  s->Bind(7, j.args).BindBlob(8, j.folder.data(), j.folder.size()).Bind(9, j.state);
  s->Bind(10, int64_t(j.segments)).Bind(11, int64_t(j.done)).Bind(12, j.plan).Bind(13, j.error);
  s->Bind(14, j.pid).Bind(15, now).Bind(16, now);
  LUMEN_RETURN_IF_ERROR(s->Run());
  return int64_t(sqlite3_last_insert_rowid(db_.get()));
}

Status Catalog::UpdateJob(const Job& j) {
  auto s = sql::Prepare(db_.get(),
                        "UPDATE jobs SET state=?, segments=?, done=?, plan=?, error=?, pid=?, "
                        "folder=?, updated_at=? WHERE id=?");
  if (!s.ok()) return s.status();
  s->Bind(1, j.state).Bind(2, int64_t(j.segments)).Bind(3, int64_t(j.done)).Bind(4, j.plan);
  s->Bind(5, j.error).Bind(6, j.pid).BindBlob(7, j.folder.data(), j.folder.size());
  s->Bind(8, Now()).Bind(9, j.id);
  return s->Run();
}

Result<std::vector<Catalog::Job>> Catalog::ListJobs() {
  auto s =
      sql::Prepare(db_.get(), fmt::format("SELECT {} FROM jobs ORDER BY id DESC", kJobColumns));
  if (!s.ok()) return s.status();
  std::vector<Job> out;
  Status st;
  while (s->Step(&st)) out.push_back(ReadJob(*s));
  if (!st.ok()) return st;
  return out;
}

Result<std::optional<Catalog::Job>> Catalog::JobById(int64_t id) {
  auto s = sql::Prepare(db_.get(), fmt::format("SELECT {} FROM jobs WHERE id=?", kJobColumns));
  if (!s.ok()) return s.status();
  s->Bind(1, id);
  std::optional<Job> out;
  Status st;
  if (s->Step(&st)) out = ReadJob(*s);
  if (!st.ok()) return st;
  return out;
}

Result<std::optional<Catalog::Job>> Catalog::FindJob(const std::string& input,
                                                     const std::string& recipe,
                                                     const std::string& output) {
  auto s = sql::Prepare(db_.get(), fmt::format("SELECT {} FROM jobs WHERE input=? AND recipe=? "
                                               "AND output=? AND state NOT IN ('done', "
                                               "'cancelled') ORDER BY id DESC LIMIT 1",
                                               kJobColumns));
  if (!s.ok()) return s.status();
  s->BindBlob(1, input.data(), input.size()).Bind(2, recipe);
  s->BindBlob(3, output.data(), output.size());
  std::optional<Job> out;
  Status st;
  if (s->Step(&st)) out = ReadJob(*s);
  if (!st.ok()) return st;
  return out;
}

Status Catalog::LoadPlaced(const std::vector<std::string>& roots, std::vector<Placed>* out) {
  auto s =
      sql::Prepare(db_.get(),
                   "SELECT l.path, l.size, l.mtime_ns, l.inode, l.device, a.id, a.hash, "
                   "COALESCE(m.captured_at, (SELECT created FROM documents d WHERE d.asset_id=a.id "
                   "ORDER BY producer DESC LIMIT 1)), "
                   "m.camera_make, m.camera_model, (SELECT result FROM enrichments e WHERE "
                   "e.asset_id=a.id AND e.prompt_version LIKE 'describe%' ORDER BY created_at DESC "
                   "LIMIT 1), a.kind, m.gps_latitude, m.gps_longitude "
                   "FROM locations l JOIN assets a "
                   "ON a.id=l.asset_id "
                   "LEFT JOIN metadata m ON m.asset_id=a.id "
                   "WHERE l.state='ok' AND (l.path=?1 OR (l.path>=?2 AND l.path<?3)) "
                   "GROUP BY l.id ORDER BY l.path");
  if (!s.ok()) return s.status();
  auto t = sql::Prepare(db_.get(),
                        "SELECT term FROM tags WHERE asset_id=? GROUP BY term "
                        "ORDER BY MAX(confidence) DESC, term");
  if (!t.ok()) return t.status();
  for (const auto& root : roots) {
    BindUnderRoot(*s, root);
    Status st;
    while (s->Step(&st)) {
      Placed p;
      p.path = s->Blob(0);
      p.identity.size = uint64_t(s->Int(1));
      p.identity.mtime_ns = s->Int(2);
      p.identity.inode = uint64_t(s->Int(3));
      p.identity.device = uint64_t(s->Int(4));
      p.asset = s->Int(5);
      const std::string h = s->Blob(6);
      if (h.size() == 16)
        p.hash = Hash128::FromBytes(reinterpret_cast<const unsigned char*>(h.data()));
      p.captured_at = s->OptText(7);
      p.make = s->OptText(8);
      p.model = s->OptText(9);
      p.enrichment = s->OptText(10);
      p.kind = ParseMediaKind(s->Text(11));
      p.latitude = s->OptDouble(12);
      p.longitude = s->OptDouble(13);
      t->Bind(1, p.asset);
      Status ts;
      while (t->Step(&ts)) p.tags.push_back(t->Text(0));
      t->Reset();
      LUMEN_RETURN_IF_ERROR(ts);
      out->push_back(std::move(p));
    }
    s->Reset();
    LUMEN_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status Catalog::LoadDupeItems(std::vector<dupes::Item>* out) {
  auto s = sql::Prepare(
      db_.get(),
      "SELECT a.id, a.size, COALESCE(a.format,''), COALESCE(a.width,0), COALESCE(a.height,0), "
      "MIN(p.phash), MIN(p.dhash), m.captured_at, "
      "(m.captured_at IS NOT NULL) + (m.camera_make IS NOT NULL) + (m.camera_model IS NOT NULL) + "
      "(m.lens IS NOT NULL) + (m.gps_latitude IS NOT NULL) + (m.iso IS NOT NULL) + "
      "(m.aperture IS NOT NULL) + (m.exposure_time IS NOT NULL) + (m.focal_length IS NOT NULL), "
      "MAX(p.sharpness) FROM assets a JOIN perceptual_hashes p ON p.asset_id=a.id "
      "LEFT JOIN metadata m ON m.asset_id=a.id "
      "WHERE EXISTS(SELECT 1 FROM locations l WHERE l.asset_id=a.id AND l.state='ok') "
      "GROUP BY a.id ORDER BY a.id");
  if (!s.ok()) return s.status();
  Status st;
  std::unordered_map<int64_t, size_t> at;
  while (s->Step(&st)) {
    dupes::Item it;
    it.asset = s->Int(0);
    it.size = static_cast<uint64_t>(s->Int(1));
    it.format = s->Text(2);
    it.width = static_cast<int>(s->Int(3));
    it.height = static_cast<int>(s->Int(4));
    it.phash = static_cast<uint64_t>(s->Int(5));
    it.dhash = static_cast<uint64_t>(s->Int(6));
    if (!s->IsNull(7)) it.captured = s->Text(7);
    it.exif_fields = static_cast<int>(s->Int(8));
    it.sharpness = s->OptDouble(9);
    at[it.asset] = out->size();
    out->push_back(std::move(it));
  }
  if (!st.ok()) return st;
  auto l = sql::Prepare(db_.get(),
                        "SELECT asset_id, path, mtime_ns FROM locations WHERE state='ok' AND "
                        "asset_id IS NOT NULL ORDER BY asset_id, path");
  if (!l.ok()) return l.status();
  while (l->Step(&st))
    if (auto it = at.find(l->Int(0)); it != at.end()) {
      (*out)[it->second].paths.push_back(l->Blob(1));
      (*out)[it->second].mtimes.push_back(l->Int(2));
    }
  return st;
}

Status Catalog::LoadVideoDupeItems(std::vector<dupes::Item>* items,
                                   std::vector<dupes::VideoItem>* videos) {
  // One row per video asset with a current location: its newest analysis.
  auto s = sql::Prepare(
      db_.get(),
      "SELECT a.id, a.size, COALESCE(a.format,''), COALESCE(a.width,0), COALESCE(a.height,0), "
      "v.duration, v.codec, v.fps, v.probe, v.signature, m.captured_at FROM assets a "
      "JOIN videos v ON v.asset_id=a.id AND v.rowid=(SELECT MAX(rowid) FROM videos w WHERE "
      "w.asset_id=a.id) LEFT JOIN metadata m ON m.asset_id=a.id "
      "WHERE a.kind='video' AND EXISTS(SELECT 1 FROM locations l WHERE l.asset_id=a.id AND "
      "l.state='ok') GROUP BY a.id ORDER BY a.id");
  if (!s.ok()) return s.status();
  Status st;
  std::unordered_map<int64_t, size_t> at;
  while (s->Step(&st)) {
    dupes::Item it;
    it.asset = s->Int(0);
    it.size = static_cast<uint64_t>(s->Int(1));
    it.format = s->Text(2);
    it.width = static_cast<int>(s->Int(3));
    it.height = static_cast<int>(s->Int(4));
    if (!s->IsNull(10)) it.captured = s->Text(10);
    it.video = true;
    dupes::VideoItem v;
    v.item = items->size();
    v.duration = s->Double(5);
    v.codec = s->Text(6);
    v.fps = s->Double(7);
    v.width = it.width;
    v.height = it.height;
    auto probe = nlohmann::json::parse(s->Text(8), nullptr, false);
    if (probe.is_object()) {
      v.bit_rate = probe.value("bit_rate", int64_t(0));
      v.audio = probe.contains("audio") && probe["audio"].is_array() && !probe["audio"].empty();
    }
    const std::string sig = s->Blob(9);
    for (size_t o = 0; o + 16 <= sig.size(); o += 16) {
      video::SignatureSample x;
      uint32_t flags;
      std::memcpy(&x.time, sig.data() + o, 4);
      std::memcpy(&flags, sig.data() + o + 4, 4);
      std::memcpy(&x.dhash, sig.data() + o + 8, 8);
      x.masked = flags & 1;
      x.rgb[0] = uint8_t(flags >> 8);
      x.rgb[1] = uint8_t(flags >> 16);
      x.rgb[2] = uint8_t(flags >> 24);
      v.signature.push_back(x);
    }
    at[it.asset] = items->size();
    items->push_back(std::move(it));
    videos->push_back(std::move(v));
  }
  if (!st.ok()) return st;
  auto l = sql::Prepare(db_.get(),
                        "SELECT asset_id, path, mtime_ns FROM locations WHERE state='ok' AND "
                        "asset_id IS NOT NULL ORDER BY asset_id, path");
  if (!l.ok()) return l.status();
  while (l->Step(&st))
    if (auto it = at.find(l->Int(0)); it != at.end()) {
      (*items)[it->second].paths.push_back(l->Blob(1));
      (*items)[it->second].mtimes.push_back(l->Int(2));
    }
  return st;
}

Result<std::optional<std::string>> Catalog::GetTagPools(const std::string& bank) {
  auto s = sql::Prepare(db_.get(), "SELECT state FROM tag_pools WHERE bank=?");
  if (!s.ok()) return s.status();
  s->Bind(1, bank);
  Status st;
  std::optional<std::string> out;
  if (s->Step(&st)) out = s->Blob(0);
  if (!st.ok()) return st;
  return out;
}

Status Catalog::PutTagPools(const std::string& bank, const std::string& state) {
  auto s = sql::Prepare(db_.get(), "INSERT OR REPLACE INTO tag_pools(bank, state) VALUES(?,?)");
  if (!s.ok()) return s.status();
  s->Bind(1, bank).BindBlob(2, state.data(), state.size());
  return s->Run();
}

Status Catalog::LoadEmbeddings(const std::string& model, FlatIndex* index) {
  return LoadEmbeddingsToTag(model, "", 0, index);
}

Status Catalog::LoadEmbeddingsToTag(const std::string& model, const std::string& bank, size_t terms,
                                    FlatIndex* index) {
  std::string q =
      "SELECT e.asset_id, e.dim, e.vector FROM embeddings e WHERE e.model=?1 AND EXISTS("
      "SELECT 1 FROM locations l WHERE l.asset_id=e.asset_id AND l.state='ok')";
  if (!bank.empty())
    q += " AND NOT EXISTS(SELECT 1 FROM tagged t WHERE t.asset_id=e.asset_id AND t.bank=?2 "
         "AND t.terms>=?3)";
  auto s = sql::Prepare(db_.get(), q);
  if (!s.ok()) return s.status();
  s->Bind(1, model);
  if (!bank.empty()) s->Bind(2, bank).Bind(3, int64_t(terms));
  Status st;
  std::vector<float> v;
  while (s->Step(&st)) {
    if (s->Int(1) != index->dim())
      return Status::Invalid(fmt::format("catalog embeddings of {} have dim {}, the model gives {}",
                                         model, s->Int(1), index->dim()));
    std::string blob = s->Blob(2);
    if (blob.size() != size_t(index->dim()) * sizeof(float))
      return Status::Corrupt("embedding blob of the wrong size");
    v.resize(size_t(index->dim()));
    std::memcpy(v.data(), blob.data(), blob.size());
    index->Add(s->Int(0), v.data());
  }
  return st;
}

Result<Catalog::AssetView> Catalog::GetAsset(int64_t id) {
  auto s = sql::Prepare(
      db_.get(),
      "SELECT a.hash, (SELECT path FROM locations l WHERE l.asset_id=a.id AND l.state='ok' "
      "ORDER BY l.path LIMIT 1), m.captured_at, "
      "TRIM(COALESCE(m.camera_make,'') || ' ' || COALESCE(m.camera_model,'')), a.kind "
      "FROM assets a LEFT JOIN metadata m ON m.asset_id=a.id WHERE a.id=? LIMIT 1");
  if (!s.ok()) return s.status();
  s->Bind(1, id);
  Status st;
  if (!s->Step(&st))
    return st.ok() ? Status::NotFound(fmt::format("asset {} not in the catalog", id)) : st;
  AssetView v;
  v.id = id;
  std::string h = s->Blob(0);
  if (h.size() == 16) v.hash = Hash128::FromBytes(reinterpret_cast<const unsigned char*>(h.data()));
  v.path = s->IsNull(1) ? "" : s->Blob(1);
  v.captured_at = s->OptText(2);
  if (!s->IsNull(3) && !s->Text(3).empty()) v.camera = s->Text(3);
  v.kind = ParseMediaKind(s->IsNull(4) ? "" : s->Text(4));
  return v;
}

Status Catalog::LoadFrameEmbeddings(const std::string& model, FlatIndex* index,
                                    std::vector<std::pair<int64_t, double>>* frames) {
  auto s = sql::Prepare(db_.get(),
                        "SELECT f.asset_id, f.t, f.dim, f.vector FROM frame_embeddings f "
                        "WHERE f.model=?1 AND EXISTS(SELECT 1 FROM locations l WHERE "
                        "l.asset_id=f.asset_id AND l.state='ok') ORDER BY f.asset_id, f.idx");
  if (!s.ok()) return s.status();
  s->Bind(1, model);
  Status st;
  std::vector<float> v(size_t(index->dim()));
  while (s->Step(&st)) {
    const std::string blob = s->Blob(3);
    if (s->Int(2) != index->dim() || blob.size() != v.size() * sizeof(float))
      return Status::Invalid(
          fmt::format("catalog frame embeddings of {} have dim {}, the model "
                      "gives {}",
                      model, s->Int(2), index->dim()));
    std::memcpy(v.data(), blob.data(), blob.size());
    index->Add(int64_t(frames->size()), v.data());
    frames->emplace_back(s->Int(0), s->Double(1));
  }
  return st;
}

Result<std::unordered_set<int64_t>> Catalog::FilterAssets(const AssetFilter& f) {
  const std::string &folder = f.folder, &camera = f.camera, &from = f.from, &to = f.to;
  std::string q =
      "SELECT DISTINCT a.id FROM assets a JOIN locations l ON l.asset_id=a.id AND l.state='ok' "
      "LEFT JOIN metadata m ON m.asset_id=a.id WHERE 1=1";
  std::vector<std::string> binds;
  if (!folder.empty()) {
    const auto [lo, hi] = PathRange(folder);
    binds.push_back(lo);
    binds.push_back(hi);
    q += fmt::format(" AND l.path>=CAST(?{} AS BLOB) AND l.path<CAST(?{} AS BLOB)",
                     binds.size() - 1, binds.size());
  }
  if (!camera.empty()) {
    binds.push_back("%" + camera + "%");
    q += fmt::format(
        " AND (COALESCE(m.camera_make,'') || ' ' || COALESCE(m.camera_model,'')) LIKE ?{}",
        binds.size());
  }
  if (!from.empty()) {
    binds.push_back(from);
    q += fmt::format(" AND m.captured_at>=?{}", binds.size());
  }
  if (!to.empty()) {
    binds.push_back(to + "~");  // inclusive of the whole last day
    q += fmt::format(" AND m.captured_at<=?{}", binds.size());
  }
  if (!f.tag.empty()) {
    binds.push_back(f.tag);
    q += fmt::format(" AND EXISTS(SELECT 1 FROM tags t WHERE t.asset_id=a.id AND t.term=?{})",
                     binds.size());
  }
  if (!f.media.empty()) {
    binds.push_back(f.media);
    q += fmt::format(" AND a.kind=?{}", binds.size());
  }
  auto s = sql::Prepare(db_.get(), q);
  if (!s.ok()) return s.status();
  for (size_t i = 0; i < binds.size(); ++i) s->Bind(static_cast<int>(i + 1), binds[i]);
  std::unordered_set<int64_t> out;
  Status st;
  while (s->Step(&st)) out.insert(s->Int(0));
  if (!st.ok()) return st;
  return out;
}

}  // namespace lumen
