#include "lumen/server/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "jobs.h"
#include "library.h"
#include "lumen/catalog/catalog.h"
#include "lumen/catalog/journal.h"
#include "lumen/io/magic.h"
#include "lumen/organize/duplicates.h"
#include "lumen/search/ann_index.h"
#include "lumen/search/flat_index.h"
#include "lumen/search/moments.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"
#include "web_assets.h"

namespace lumen::server {

using nlohmann::json;

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

namespace {

constexpr size_t kMaxBody = 1 << 20;  // JSON bodies: 1 MiB
constexpr int64_t kMaxRange = 10000;  // timeline entries per request
constexpr size_t kMaxResults = 1000;  // search results per request
constexpr int64_t kMaxGroups = 500;   // duplicate groups per request
constexpr int64_t kMaxFiles = 10000;  // a folder's files per request
constexpr size_t kMaxPaths = 10000;   // paths one job names

std::string RandomToken() {
  unsigned char b[16] = {};
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0 && ::read(fd, b, sizeof b) == ssize_t(sizeof b);
  if (fd >= 0) ::close(fd);
  if (!ok) {  // never reached on Linux; still not a constant
    const uint64_t t = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
    for (int i = 0; i < 16; ++i) b[i] = static_cast<unsigned char>(t >> (i % 8 * 8)) ^ (i * 151);
  }
  std::string s;
  for (unsigned char c : b) s += fmt::format("{:02x}", c);
  return s;
}

// Constant-time comparison: the token never leaks by timing.
bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

std::string CookieValue(const httplib::Request& req, const std::string& name) {
  const std::string cookies = req.get_header_value("Cookie");
  size_t pos = 0;
  while (pos < cookies.size()) {
    size_t end = cookies.find(';', pos);
    if (end == std::string::npos) end = cookies.size();
    std::string part = cookies.substr(pos, end - pos);
    part.erase(0, part.find_first_not_of(' '));
    if (part.rfind(name + "=", 0) == 0) return part.substr(name.size() + 1);
    pos = end + 1;
  }
  return "";
}

// No compression: cpp-httplib compresses text/*, application/javascript and a bare
// application/json, with brotli at its slowest setting when the browser offers it (tens of ms
// for a 30 KB script, more than everything else a request costs on loopback). JSON is sent with
// its charset (a type cpp-httplib leaves alone); text is sent through a content provider (never
// compressed).
constexpr const char* kJson = "application/json; charset=utf-8";

void SendText(httplib::Response& res, std::shared_ptr<const std::string> body, const char* type) {
  const size_t n = body->size();
  res.set_content_provider(n, type, [body](size_t offset, size_t length, httplib::DataSink& sink) {
    return sink.write(body->data() + offset, length);
  });
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", message}, {"status", status}}.dump(), kJson);
}

void SendJson(httplib::Response& res, const json& j) {
  res.set_header("Cache-Control", "no-store");
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), kJson);
}

std::string MonthOf(int32_t date) {
  return date == 0 ? "" : fmt::format("{:04}-{:02}", date / 10000, date / 100 % 100);
}
std::string DayOf(int32_t date) {
  return date == 0 ? ""
                   : fmt::format("{:04}-{:02}-{:02}", date / 10000, date / 100 % 100, date % 100);
}

const char* MimeOf(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  static const std::unordered_map<std::string, const char*> kTypes = {
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".png", "image/png"},
      {".webp", "image/webp"},
      {".gif", "image/gif"},
      {".heic", "image/heic"},
      {".heif", "image/heif"},
      {".avif", "image/avif"},
      {".tif", "image/tiff"},
      {".tiff", "image/tiff"},
      {".bmp", "image/bmp"},
      {".mp4", "video/mp4"},
      {".m4v", "video/mp4"},
      {".mov", "video/quicktime"},
      {".webm", "video/webm"},
      {".mkv", "video/x-matroska"},
      {".avi", "video/x-msvideo"},
      {".mts", "video/mp2t"},
      {".m2ts", "video/mp2t"},
      {".ts", "video/mp2t"},
      {".3gp", "video/3gpp"},
      {".pdf", "application/pdf"},
      {".txt", "text/plain; charset=utf-8"}};
  auto it = kTypes.find(ext);
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

// The timeline, in memory: one entry per asset (12 bytes), the months over it, rebuilt when the
// catalog changes. 1M assets: 16 MB and ~1 s to load; every timeline request is then a slice.
struct Timeline {
  std::vector<Catalog::TimelineEntry> entries;
  struct Bucket {
    std::string key;  // "YYYY-MM" or "YYYY-MM-DD"; "" for undated
    int64_t offset = 0, count = 0;
  };
  std::vector<Bucket> months, days;
  int64_t photos = 0, videos = 0, documents = 0;
  int64_t version = -1;
};

std::shared_ptr<Timeline> BuildTimeline(Catalog& cat, int64_t version) {
  auto t = std::make_shared<Timeline>();
  t->version = version;
  if (Status st = cat.LoadTimeline(&t->entries); !st.ok()) {
    log::Warn(fmt::format("serve: timeline: {}", st.message()));
    return nullptr;
  }
  for (int64_t i = 0; i < int64_t(t->entries.size()); ++i) {
    const auto& e = t->entries[size_t(i)];
    if (t->days.empty() || i == 0 || e.date != t->entries[size_t(i - 1)].date) {
      t->days.push_back({DayOf(e.date), i, 0});
      std::string m = MonthOf(e.date);
      if (t->months.empty() || t->months.back().key != m) t->months.push_back({std::move(m), i, 0});
    }
    ++t->days.back().count;
    ++t->months.back().count;
    if (e.kind == MediaKind::kVideo)
      ++t->videos;
    else if (e.kind == MediaKind::kDocument)
      ++t->documents;
    else
      ++t->photos;
  }
  return t;
}

// The thumbnails served last (64 MB: a few screens of the grid, back and forth), so that a
// scroll back, a second tab or a reload reads no SQLite. Entries of an older catalog version are
// misses.
struct CachedThumb {
  std::string etag, webp;
};
class ThumbCache {
 public:
  explicit ThumbCache(size_t capacity) : capacity_(capacity) {}
  std::shared_ptr<const CachedThumb> Get(int64_t id, int64_t version) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(id);
    if (it == map_.end() || it->second->version != version) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->thumb;
  }
  void Put(int64_t id, int64_t version, std::shared_ptr<const CachedThumb> t) {
    const size_t bytes = t->webp.size() + t->etag.size() + 64;
    if (bytes > capacity_ / 16) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = map_.find(id); it != map_.end()) {
      used_ -= it->second->bytes;
      lru_.erase(it->second);
      map_.erase(it);
    }
    lru_.push_front({id, version, bytes, std::move(t)});
    map_[id] = lru_.begin();
    used_ += bytes;
    while (used_ > capacity_ && !lru_.empty()) {
      used_ -= lru_.back().bytes;
      map_.erase(lru_.back().id);
      lru_.pop_back();
    }
  }

 private:
  struct Entry {
    int64_t id, version;
    size_t bytes;
    std::shared_ptr<const CachedThumb> thumb;
  };
  size_t capacity_, used_ = 0;
  std::mutex mu_;
  std::list<Entry> lru_;
  std::unordered_map<int64_t, std::list<Entry>::iterator> map_;
};

// A view of the catalog (folders, duplicates, places) rebuilt when the catalog has changed, but
// not sooner than 4x its last build time after that build: an index job that commits every
// second costs a view of 1M assets at most a fifth of a core, and the last view is served until
// then. Expire() (a job of the server's own ended) makes the next change show at once.
template <class T>
class CachedView {
 public:
  template <class Build>
  Result<std::shared_ptr<const T>> Get(int64_t version, Build&& build) {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t start = Now();
    if (view_ && (version_ == version || start < fresh_until_.load())) return view_;
    const int64_t epoch = epoch_.load();
    Result<std::shared_ptr<const T>> v = build(version);
    if (!v.ok()) return v.status();
    view_ = *v;
    version_ = version;
    const int64_t end = Now();
    // Expired while it was built (from data older than the job's end): the next change shows.
    fresh_until_ = epoch_.load() == epoch ? end + 4 * (end - start) : 0;
    return view_;
  }
  // Lock-free: called with the jobs' lock held.
  void Expire() {
    ++epoch_;
    fresh_until_ = 0;
  }

 private:
  static int64_t Now() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  std::mutex mu_;
  std::shared_ptr<const T> view_;
  int64_t version_ = -1;
  std::atomic<int64_t> fresh_until_{0}, epoch_{0};
};

// Where the photos were taken: every GPS position, for the map's clusters (12 bytes each).
struct Places {
  std::vector<Catalog::Place> all;
};

// What text search ranks: every embedding of the model, and the ANN index over them once built.
struct TextSearch {
  std::shared_ptr<const FlatIndex> flat;
  std::shared_ptr<const FrameIndex> frames;  // videos' key frames: hits name their moment
  std::shared_ptr<const AnnIndex> ann;
};
struct TextState {
  std::mutex mu;
  std::shared_ptr<const TextSearch> current;
};

class App {
 public:
  explicit App(const ServeOptions& o) : o_(o) {}

  Status Start() {
    auto c = Catalog::Open(o_.catalog, Catalog::Mode::kReadOnly);
    if (!c.ok()) return c.status();
    watch_ = std::move(*c);
    LUMEN_RETURN_IF_ERROR(LoadTextIndex(*watch_));
    if (!o_.exe.empty()) {
      jobs_ = std::make_unique<Jobs>(o_.exe, o_.catalog);
      // When a job ends, the views show what it changed at the next request.
      jobs_->OnExit([this] {
        {
          std::lock_guard<std::mutex> lock(mu_);
          checked_ = {};  // the timeline too: its next request looks for changes
        }
        folders_.Expire();
        dupes_.Expire();
        places_.Expire();
      });
    }
    return Status::Ok();
  }

  // Ends the jobs (and wakes the event streams) before the server stops.
  void Stop() {
    if (jobs_) jobs_->Stop();
  }

  void Routes(httplib::Server& svr) {
    // The most frequent request first: cpp-httplib tries the routes' patterns in order.
    svr.Get(R"(/api/v1/assets/(\d{1,18})/thumbnail)",
            [this](const httplib::Request& req, httplib::Response& res) { Thumbnail(req, res); });
    svr.Get("/", [this](const httplib::Request& req, httplib::Response& res) { Index(req, res); });
    for (const WebAsset& a : WebAssets()) {
      if (std::string(a.path) == "/index.html") continue;
      svr.Get(a.path, [a](const httplib::Request&, httplib::Response& res) {
        res.set_header("Cache-Control", "no-cache");
        SendText(res,
                 std::make_shared<const std::string>(reinterpret_cast<const char*>(a.data), a.size),
                 a.type);
      });
    }
    svr.Get("/api/v1/info", [this](const httplib::Request&, httplib::Response& res) {
      auto t = Current();
      if (!t) return SendError(res, 503, "the catalog cannot be read");
      SendJson(res, {{"version", "1"},
                     {"assets", t->entries.size()},
                     {"photos", t->photos},
                     {"videos", t->videos},
                     {"documents", t->documents},
                     {"text_search", TextIndex() != nullptr},
                     {"jobs", jobs_ != nullptr},
                     {"quarantine", o_.quarantine}});
    });
    svr.Get("/api/v1/timeline", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string group = req.has_param("group") ? req.get_param_value("group") : "month";
      if (group != "month" && group != "day") return SendError(res, 400, "group is month or day");
      auto t = Current();
      if (!t) return SendError(res, 503, "the catalog cannot be read");
      json keys = json::array(), counts = json::array(), offsets = json::array();
      for (const auto& b : group == "day" ? t->days : t->months) {
        keys.push_back(b.key);
        counts.push_back(b.count);
        offsets.push_back(b.offset);
      }
      SendJson(res, {{"total", t->entries.size()},
                     {"version", t->version},
                     {group == "day" ? "days" : "months", keys},
                     {"counts", counts},
                     {"offsets", offsets}});
    });
    svr.Get("/api/v1/timeline/assets", [this](const httplib::Request& req, httplib::Response& res) {
      TimelineSlice(req, res);
    });
    svr.Get(R"(/api/v1/assets/(\d{1,18}))",
            [this](const httplib::Request& req, httplib::Response& res) { Details(req, res); });
    svr.Get(R"(/api/v1/assets/(\d{1,18})/original)",
            [this](const httplib::Request& req, httplib::Response& res) { Original(req, res); });
    svr.Get("/api/v1/search", [this](const httplib::Request& req, httplib::Response& res) {
      json q = json::object();
      for (const char* k :
           {"q", "similar", "folder", "camera", "from", "to", "tag", "media", "limit"})
        if (req.has_param(k)) q[k] = req.get_param_value(k);
      Search(q, res);
    });
    svr.Post("/api/v1/search", [this](const httplib::Request& req, httplib::Response& res) {
      json q;
      if (JsonBody(req, res, &q)) Search(q, res);
    });
    svr.Get("/api/v1/folders",
            [this](const httplib::Request& req, httplib::Response& res) { FoldersList(req, res); });
    svr.Get("/api/v1/map",
            [this](const httplib::Request& req, httplib::Response& res) { MapClusters(req, res); });
    svr.Get("/api/v1/map/assets",
            [this](const httplib::Request& req, httplib::Response& res) { MapAssets(req, res); });
    svr.Get("/api/v1/duplicates", [this](const httplib::Request& req, httplib::Response& res) {
      DuplicatesPage(req, res);
    });
    svr.Post(
        "/api/v1/duplicates/apply",
        [this](const httplib::Request& req, httplib::Response& res) { DuplicatesApply(req, res); });
    svr.Get("/api/v1/runs", [this](const httplib::Request&, httplib::Response& res) {
      Catalog* db = Db();
      if (!db) return SendError(res, 503, "the catalog cannot be read");
      Journal j(db);
      auto runs = j.Runs();
      if (!runs.ok()) return SendError(res, 500, runs.status().message());
      json a = json::array();
      for (auto it = runs->rbegin(); it != runs->rend(); ++it) a.push_back(RunJson(*it));
      SendJson(res, {{"runs", a}});
    });
    svr.Post(R"(/api/v1/runs/(\d{1,18})/(apply|undo|redo))",
             [this](const httplib::Request& req, httplib::Response& res) { RunAction(req, res); });
    svr.Get("/api/v1/jobs", [this](const httplib::Request&, httplib::Response& res) {
      SendJson(res, {{"jobs", jobs_ ? jobs_->List() : json::array()}});
    });
    svr.Post("/api/v1/jobs",
             [this](const httplib::Request& req, httplib::Response& res) { StartJob(req, res); });
    svr.Get(R"(/api/v1/jobs/(\d{1,18}))",
            [this](const httplib::Request& req, httplib::Response& res) {
              auto j = jobs_ ? jobs_->Get(IdOf(req)) : std::nullopt;
              if (!j) return SendError(res, 404, fmt::format("there is no job {}", IdOf(req)));
              SendJson(res, *j);
            });
    svr.Post(R"(/api/v1/jobs/(\d{1,18})/cancel)",
             [this](const httplib::Request& req, httplib::Response& res) {
               if (!jobs_) return SendError(res, 404, fmt::format("there is no job {}", IdOf(req)));
               Status st = jobs_->Cancel(IdOf(req));
               if (!st.ok())
                 return SendError(res, st.code() == Code::kNotFound ? 404 : 409, st.message());
               auto j = jobs_->Get(IdOf(req));
               res.status = 202;
               SendJson(res, j ? *j : json{{"id", IdOf(req)}, {"state", "cancelled"}});
             });
    svr.Get("/api/v1/events",
            [this](const httplib::Request&, httplib::Response& res) { Events(res); });
  }

  // Host, token and origin checks for every request (pre-routing).
  bool Allowed(const httplib::Request& req, httplib::Response& res, int port) {
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    const std::string host = req.get_header_value("Host");
    if (!HostAllowed(host, port)) {
      SendError(res, 403, "unknown Host: open the address lumen serve printed");
      return false;
    }
    const bool api = req.path.rfind("/api/", 0) == 0;
    const bool changes = req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS";
    if (!api && !changes) return true;  // the page and its scripts hold no data
    std::string header = req.get_header_value("X-Lumen-Token");
    const std::string auth = req.get_header_value("Authorization");
    if (header.empty() && auth.rfind("Bearer ", 0) == 0) header = auth.substr(7);
    const bool by_header = SameSecret(header, token_);
    const bool by_cookie = !by_header && SameSecret(CookieValue(req, "lumen_token"), token_);
    if (!by_header && !by_cookie) {
      SendError(res, 401, "missing or wrong token: open the address lumen serve printed");
      return false;
    }
    if (changes) {
      const std::string origin = req.get_header_value("Origin");
      const std::string site = req.get_header_value("Sec-Fetch-Site");
      if (!by_header || (!origin.empty() && origin != "http://" + host) ||
          (!site.empty() && site != "same-origin" && site != "none")) {
        SendError(res, 403, "a change needs the token header and the same origin");
        return false;
      }
    }
    return true;
  }

  void set_token(std::string t) { token_ = std::move(t); }
  void set_host(std::string h) { bound_host_ = std::move(h); }

 private:
  bool HostAllowed(const std::string& host, int port) const {
    const std::string p = fmt::format(":{}", port);
    if (host == "localhost" + p || host == "[::1]" + p) return true;
    if (host.size() > p.size() && host.compare(host.size() - p.size(), p.size(), p) == 0) {
      const std::string name = host.substr(0, host.size() - p.size());
      if (name.rfind("127.", 0) == 0 && name.find_first_not_of("0123456789.") == std::string::npos)
        return true;
      if (!IsLoopback(bound_host_) && (name == bound_host_ || bound_host_ == "0.0.0.0"))
        return true;
    }
    return false;
  }

  // This thread's read-only connection to the catalog (SQLite connections are not shared).
  Catalog* Db() {
    thread_local std::unique_ptr<Catalog> db;
    thread_local std::string path;
    if (!db || path != o_.catalog) {
      auto c = Catalog::Open(o_.catalog, Catalog::Mode::kReadOnly);
      if (!c.ok()) {
        log::Warn(fmt::format("serve: {}", c.status().message()));
        return nullptr;
      }
      db = std::move(*c);
      path = o_.catalog;
    }
    return db.get();
  }

  // The timeline, rebuilt at most once a second when the catalog has changed.
  std::shared_ptr<Timeline> Current() {
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (timeline_ && now - checked_ < std::chrono::seconds(1)) return timeline_;
      checked_ = now;
    }
    std::lock_guard<std::mutex> build(build_mu_);
    auto version = watch_->DataVersion();
    auto current = [&] {
      std::lock_guard<std::mutex> lock(mu_);
      return timeline_;
    }();
    // data_version is per connection: one connection, watch_, numbers every view.
    if (version.ok()) seen_version_ = *version;
    if (current && version.ok() && current->version == *version) return current;
    auto t = BuildTimeline(*watch_, version.ok() ? *version : -1);
    if (!t) return current;
    std::lock_guard<std::mutex> lock(mu_);
    timeline_ = t;
    return t;
  }

  void Index(const httplib::Request& req, httplib::Response& res) {
    const WebAsset* page = nullptr;
    for (const WebAsset& a : WebAssets())
      if (std::string(a.path) == "/index.html") page = &a;
    if (req.has_param("token")) {
      // The printed URL: the token becomes an HttpOnly, same-site cookie and leaves the address
      // bar.
      if (!SameSecret(req.get_param_value("token"), token_))
        return SendError(res, 401, "wrong token: open the address lumen serve printed");
      res.set_header("Set-Cookie", "lumen_token=" + token_ + "; Path=/; HttpOnly; SameSite=Strict");
      res.set_redirect("/", 303);
      return;
    }
    if (!SameSecret(CookieValue(req, "lumen_token"), token_))
      return SendError(res, 401, "missing token: open the address lumen serve printed");
    res.set_header("Cache-Control", "no-cache");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' blob: data:; media-src 'self'; "
                   "style-src 'self'; script-src 'self'; frame-ancestors 'none'");
    // The page's scripts send the token on changes (X-Lumen-Token); reads use the cookie.
    std::string html(reinterpret_cast<const char*>(page->data), page->size);
    const std::string mark = "{{TOKEN}}";
    if (auto at = html.find(mark); at != std::string::npos) html.replace(at, mark.size(), token_);
    SendText(res, std::make_shared<const std::string>(std::move(html)), "text/html; charset=utf-8");
  }

  static bool ParseInt(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
      return false;
    const int64_t v = std::stoll(s);
    if (v < lo || v > hi) return false;
    *out = v;
    return true;
  }

  // A decimal number in [lo, hi] ("12", "-3.25"; no exponent, no inf/nan).
  static bool ParseDegrees(const std::string& s, double lo, double hi, double* out) {
    if (s.empty() || s.size() > 24 || s.find_first_not_of("+-.0123456789") != std::string::npos)
      return false;
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
  }

  // The map's box: west < east, south < north, in degrees (the whole world by default).
  struct Box {
    double west = -180, south = -90, east = 180, north = 90;
    // Half-open, as the cells are (west and north edges in, east and south out, but the
    // world's own edges in): boxes side by side hold each photo once.
    bool Holds(const Catalog::Place& p) const {
      return p.lon >= west && (p.lon < east || (east == 180 && p.lon == 180)) && p.lat <= north &&
             (p.lat > south || (south == -90 && p.lat == -90));
    }
  };
  static Status ParseBox(const httplib::Request& req, Box* b) {
    const std::pair<const char*, double*> sides[] = {
        {"west", &b->west}, {"south", &b->south}, {"east", &b->east}, {"north", &b->north}};
    for (const auto& [key, at] : sides) {
      if (!req.has_param(key)) continue;
      const bool lat = key[0] == 's' || key[0] == 'n';
      if (!ParseDegrees(req.get_param_value(key), lat ? -90 : -180, lat ? 90 : 180, at))
        return Status::Invalid(fmt::format("{} is a {} in degrees, {}", key,
                                           lat ? "latitude" : "longitude",
                                           lat ? "-90..90" : "-180..180"));
    }
    if (!(b->west < b->east) || !(b->south < b->north))
      return Status::Invalid("the box needs west < east and south < north");
    return Status::Ok();
  }

  Result<std::shared_ptr<const Places>> PlacesNow() {
    return places_.Get(Version(), [&](int64_t) -> Result<std::shared_ptr<const Places>> {
      Catalog* db = Db();
      if (!db) return Status::Io("the catalog cannot be read");
      auto p = std::make_shared<Places>();
      LUMEN_RETURN_IF_ERROR(db->LoadPlaces(&p->all));
      return std::shared_ptr<const Places>(std::move(p));
    });
  }

  // The photos with a position in the box, as at most cols x rows clusters (one per cell of a
  // grid over the box that holds any): never every marker at once, whatever the library.
  void MapClusters(const httplib::Request& req, httplib::Response& res) {
    Box box;
    if (Status st = ParseBox(req, &box); !st.ok()) return SendError(res, 400, st.message());
    int64_t cols = 0, rows = 0;
    if (!Param(req, "cols", 1, 256, 64, &cols) || !Param(req, "rows", 1, 256, 32, &rows))
      return SendError(res, 400, "cols and rows are 1..256");
    auto places = PlacesNow();
    if (!places.ok()) return SendError(res, 503, places.status().message());
    struct Cell {
      double lat = 0, lon = 0;
      int64_t count = 0, id = 0;
    };
    std::vector<Cell> cells(size_t(cols * rows));
    const double cw = (box.east - box.west) / double(cols),
                 ch = (box.north - box.south) / double(rows);
    int64_t in_box = 0;
    for (const Catalog::Place& p : (*places)->all) {
      if (!box.Holds(p)) continue;
      ++in_box;
      const int64_t x = std::min(cols - 1, int64_t((p.lon - box.west) / cw));
      const int64_t y = std::min(rows - 1, int64_t((box.north - p.lat) / ch));
      Cell& c = cells[size_t(y * cols + x)];
      if (c.count++ == 0) c.id = p.id;  // the newest photo of the cell stands for it
      c.lat += p.lat;
      c.lon += p.lon;
    }
    json lat = json::array(), lon = json::array(), count = json::array(), id = json::array(),
         cell = json::array();
    for (size_t k = 0; k < cells.size(); ++k) {
      const Cell& c = cells[k];
      if (c.count == 0) continue;
      lat.push_back(c.lat / double(c.count));
      lon.push_back(c.lon / double(c.count));
      count.push_back(c.count);
      id.push_back(c.id);
      cell.push_back(k);
    }
    SendJson(res, {{"total", in_box},
                   {"all", (*places)->all.size()},
                   {"cols", cols},
                   {"rows", rows},
                   {"lat", lat},
                   {"lon", lon},
                   {"count", count},
                   {"id", id},
                   {"cell", cell}});
  }

  // The photos with a position in the box, in timeline order.
  void MapAssets(const httplib::Request& req, httplib::Response& res) {
    Box box;
    if (Status st = ParseBox(req, &box); !st.ok()) return SendError(res, 400, st.message());
    int64_t limit = 0;
    if (!Param(req, "limit", 1, kMaxFiles, 1000, &limit))
      return SendError(res, 400, fmt::format("limit is 1..{}", kMaxFiles));
    auto places = PlacesNow();
    if (!places.ok()) return SendError(res, 503, places.status().message());
    json ids = json::array();
    int64_t total = 0;
    for (const Catalog::Place& p : (*places)->all)
      if (box.Holds(p) && total++ < limit) ids.push_back(p.id);
    SendJson(res, {{"total", total}, {"ids", ids}});
  }

  void TimelineSlice(const httplib::Request& req, httplib::Response& res) {
    auto t = Current();
    if (!t) return SendError(res, 503, "the catalog cannot be read");
    int64_t offset = 0, count = 0;
    if (!ParseInt(req.get_param_value("offset"), 0, INT64_MAX / 2, &offset) ||
        !ParseInt(req.get_param_value("count"), 1, kMaxRange, &count))
      return SendError(res, 400, fmt::format("give offset >= 0 and count in 1..{}", kMaxRange));
    const int64_t n = int64_t(t->entries.size());
    const int64_t end = std::min(n, offset + count);
    json ids = json::array(), dates = json::array(), kinds = json::array();
    for (int64_t i = std::min(offset, n); i < end; ++i) {
      const auto& e = t->entries[size_t(i)];
      ids.push_back(e.id);
      dates.push_back(e.date);
      kinds.push_back(e.kind == MediaKind::kVideo      ? "v"
                      : e.kind == MediaKind::kDocument ? "d"
                                                       : "p");
    }
    SendJson(res, {{"offset", offset},
                   {"total", n},
                   {"version", t->version},
                   {"ids", ids},
                   {"dates", dates},
                   {"kinds", kinds}});
  }

  static int64_t IdOf(const httplib::Request& req) {
    int64_t id = 0;
    return ParseInt(req.matches[1], 1, INT64_MAX, &id) ? id : 0;
  }

  void Details(const httplib::Request& req, httplib::Response& res) {
    Catalog* db = Db();
    if (!db) return SendError(res, 503, "the catalog cannot be read");
    auto d = db->GetAssetDetails(IdOf(req));
    if (!d.ok())
      return SendError(res, d.status().code() == Code::kNotFound ? 404 : 500, d.status().message());
    const PhotoMetadata& m = d->metadata;
    json meta = json::object();
    auto put = [&](const char* k, const auto& v) {
      if (v) meta[k] = *v;
    };
    put("captured_at", m.captured_at);
    put("utc_offset", m.utc_offset);
    put("make", m.camera_make);
    put("model", m.camera_model);
    put("lens", m.lens);
    put("latitude", m.gps_latitude);
    put("longitude", m.gps_longitude);
    put("altitude", m.gps_altitude);
    put("iso", m.iso);
    put("aperture", m.aperture);
    put("exposure_time", m.exposure_time);
    put("shutter", m.ShutterSpeedText());
    put("focal_length", m.focal_length);
    json tags = json::array();
    for (const auto& [term, conf] : d->tags) tags.push_back({{"term", term}, {"confidence", conf}});
    json out = {{"id", d->id},
                {"hash", d->record.hash.Hex()},
                {"media", MediaKindName(d->record.kind)},
                {"size", d->record.size},
                {"format", d->record.format},
                {"width", d->record.width},
                {"height", d->record.height},
                {"paths", d->paths},
                {"metadata", meta},
                {"tags", tags}};
    if (d->description) {
      json desc = json::parse(*d->description, nullptr, false);
      out["description"] = desc.is_discarded() ? json(*d->description) : desc;
    }
    if (d->duration) {
      out["duration"] = *d->duration;
      json shots = json::array();
      for (const auto& [a, b] : d->shots) shots.push_back({a, b});
      out["shots"] = shots;
    }
    SendJson(res, out);
  }

  void Thumbnail(const httplib::Request& req, httplib::Response& res) {
    const int64_t id = IdOf(req);
    std::shared_ptr<const CachedThumb> t = thumbs_.Get(id, seen_version_.load());
    if (!t) {
      Catalog* db = Db();
      if (!db) return SendError(res, 503, "the catalog cannot be read");
      auto got = db->GetServedThumbnail(id);
      if (!got.ok()) return SendError(res, 500, got.status().message());
      if (!*got) {
        if (!db->GetAsset(id).ok())
          return SendError(res, 404, fmt::format("there is no asset {}", id));
        return SendError(res, 404, fmt::format("asset {} has no thumbnail", id));
      }
      auto c = std::make_shared<CachedThumb>();
      // Content-addressed: the file's hash and the thumbnail's size name its bytes.
      c->etag = fmt::format("\"{}-{}x{}\"", (*got)->hash.Hex(), (*got)->width, (*got)->height);
      c->webp = std::move((*got)->webp);
      t = c;
      thumbs_.Put(id, seen_version_.load(), c);
    }
    res.set_header("ETag", t->etag);
    res.set_header("Cache-Control", "private, max-age=31536000, immutable");
    if (req.get_header_value("If-None-Match") == t->etag) {
      res.status = 304;
      return;
    }
    res.set_content(t->webp.data(), t->webp.size(), "image/webp");
  }

  void Original(const httplib::Request& req, httplib::Response& res) {
    Catalog* db = Db();
    if (!db) return SendError(res, 503, "the catalog cannot be read");
    auto d = db->GetAssetDetails(IdOf(req));
    if (!d.ok())
      return SendError(res, d.status().code() == Code::kNotFound ? 404 : 500, d.status().message());
    // The first current location that is still a regular file of the indexed size.
    for (const std::string& path : d->paths) {
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) continue;
      struct stat st {};
      if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || uint64_t(st.st_size) != d->record.size) {
        ::close(fd);
        continue;
      }
      auto file = std::shared_ptr<int>(new int(fd), [](int* p) {
        ::close(*p);
        delete p;
      });
      res.set_header("Cache-Control", "private, no-cache");
      res.set_header("ETag", "\"" + d->record.hash.Hex() + "\"");
      res.set_header("Content-Disposition", "inline");
      res.set_content_provider(size_t(st.st_size), MimeOf(path),
                               [file](size_t offset, size_t length, httplib::DataSink& sink) {
                                 char buf[1 << 16];
                                 while (length > 0) {
                                   const ssize_t n =
                                       ::pread(*file, buf, std::min(length, sizeof buf),
                                               static_cast<off_t>(offset));
                                   if (n <= 0) return false;
                                   if (!sink.write(buf, size_t(n))) return false;
                                   offset += size_t(n);
                                   length -= size_t(n);
                                 }
                                 return true;
                               });
      return;
    }
    SendError(res, 404,
              fmt::format("asset {}: no location holds the indexed file any more", d->id));
  }

  void Search(const json& q, httplib::Response& res) {
    auto text = [&](const char* k) -> std::string {
      if (!q.contains(k)) return "";
      if (q[k].is_string()) return q[k].get<std::string>();
      if (q[k].is_number_integer()) return std::to_string(q[k].get<int64_t>());
      return "\x01";  // not a string: refused below
    };
    Catalog::AssetFilter f;
    f.folder = text("folder");
    f.camera = text("camera");
    f.from = text("from");
    f.to = text("to");
    f.tag = text("tag");
    f.media = text("media");
    const std::string query = text("q"), limit_s = text("limit"), similar_s = text("similar");
    for (const std::string* s : std::initializer_list<const std::string*>{
             &f.folder, &f.camera, &f.from, &f.to, &f.tag, &f.media, &query, &similar_s})
      if (*s == "\x01" || s->size() > 4096)
        return SendError(res, 400, "search fields are strings of at most 4096 bytes");
    if (!f.media.empty() && f.media != "photo" && f.media != "video" && f.media != "document")
      return SendError(res, 400, "media is photo, video or document");
    if (!f.folder.empty() && f.folder[0] != '/')
      return SendError(res, 400, "folder is an absolute path of a folder the catalog holds");
    int64_t limit = 100, similar = 0;
    if (!limit_s.empty() && !ParseInt(limit_s, 1, kMaxResults, &limit))
      return SendError(res, 400, fmt::format("limit is 1..{}", kMaxResults));
    if (!similar_s.empty() && !ParseInt(similar_s, 1, INT64_MAX, &similar))
      return SendError(res, 400, "similar is an asset id");
    if (similar && !query.empty()) return SendError(res, 400, "give q or similar, not both");
    Catalog* db = Db();
    if (!db) return SendError(res, 503, "the catalog cannot be read");
    std::optional<std::unordered_set<int64_t>> keep;
    if (!f.empty()) {
      auto ids = db->FilterAssets(f);
      if (!ids.ok()) return SendError(res, 500, ids.status().message());
      keep = std::move(*ids);
    }
    json ids = json::array(), scores = json::array(), moments = json::array();
    if (!query.empty() || similar) {
      std::shared_ptr<const TextSearch> ts = TextIndex();
      if (!ts || !o_.encode_text)
        return SendError(res, 501,
                         "search by text or similarity needs an image-text model: lumen serve "
                         "--model MODEL");
      std::vector<float> v;
      if (similar) {
        // The asset's own image embedding is the query; the asset itself is left out.
        const float* row = ts->flat->Vector(similar);
        if (!row)
          return SendError(res, 404,
                           fmt::format("asset {} has no embedding of {}", similar, o_.model));
        v.assign(row, row + ts->flat->dim());
      } else {
        std::lock_guard<std::mutex> lock(encode_mu_);
        auto e = o_.encode_text(query);
        if (!e.ok()) return SendError(res, 500, e.status().message());
        v = std::move(*e);
      }
      if (int(v.size()) != ts->flat->dim())
        return SendError(res, 500, "the text and image embeddings disagree on the size");
      std::function<bool(int64_t)> pass;
      if (keep || similar)
        pass = [&](int64_t id) { return id != similar && (!keep || keep->count(id) > 0); };
      std::vector<Hit> hits = ts->ann ? ts->ann->Search(*ts->flat, v.data(), size_t(limit), pass)
                                      : ts->flat->Search(v.data(), size_t(limit), pass);
      std::unordered_map<int64_t, double> moment;
      if (ts->frames)
        hits = MergeMoments(std::move(hits), *ts->frames, v.data(), size_t(limit), pass, &moment);
      for (const Hit& h : hits) {
        ids.push_back(h.id);
        scores.push_back(h.cosine);
        const auto m = moment.find(h.id);
        moments.push_back(m == moment.end() ? json(nullptr) : json(m->second));
      }
    } else {
      // Filters alone: the matches in timeline order.
      auto t = Current();
      if (!t) return SendError(res, 503, "the catalog cannot be read");
      for (const auto& e : t->entries) {
        if (int64_t(ids.size()) >= limit) break;
        if (!keep || keep->count(e.id)) ids.push_back(e.id);
      }
    }
    SendJson(res, {{"ids", ids}, {"scores", scores}, {"moments", moments}});
  }

  // ---- text index ----

  std::shared_ptr<const TextSearch> TextIndex() {
    std::lock_guard<std::mutex> lock(text_->mu);
    return text_->current;
  }

  // (Re)loads the embeddings text search ranks (at start, and after a job that may add some).
  // Above AnnThreshold() vectors the ANN index lumen search keeps beside the catalog is brought
  // in step in the background (a first build of 100,000 takes minutes); until then, and if that
  // fails, search scans them all.
  Status LoadTextIndex(Catalog& cat) {
    if (!o_.encode_text) return Status::Ok();
    auto dim = cat.EmbeddingDim(o_.model);
    if (!dim.ok() || *dim <= 0) return Status::Ok();
    auto flat = std::make_shared<FlatIndex>(*dim);
    LUMEN_RETURN_IF_ERROR(cat.LoadEmbeddings(o_.model, flat.get()));
    auto frames = std::make_shared<FrameIndex>(*dim);
    LUMEN_RETURN_IF_ERROR(cat.LoadFrameEmbeddings(o_.model, &frames->frames, &frames->at));
    auto ts = std::make_shared<TextSearch>();
    ts->flat = flat;
    if (frames->frames.size() > 0) ts->frames = frames;
    {
      std::lock_guard<std::mutex> lock(text_->mu);
      text_->current = ts;
    }
    if (flat->size() < AnnThreshold() || !o_.ann_path) return Status::Ok();
    // Detached: it holds only what it shares (the server may stop before it ends).
    // Weak: a sync waiting its turn does not keep replaced embeddings in memory.
    std::thread([state = text_, weak_flat = std::weak_ptr<const FlatIndex>(flat),
                 weak_frames = std::weak_ptr<const FrameIndex>(ts->frames),
                 path = o_.ann_path(o_.model)] {
      // One sync at a time (two index jobs in a row would write the same files), and none for
      // embeddings a later load has replaced already.
      static std::mutex one;
      std::lock_guard<std::mutex> only(one);
      const std::shared_ptr<const FlatIndex> flat = weak_flat.lock();
      const std::shared_ptr<const FrameIndex> frames = weak_frames.lock();
      {
        std::lock_guard<std::mutex> lock(state->mu);
        if (!flat || !state->current || state->current->flat != flat) return;
      }
      auto ann = AnnIndex::Sync(path, *flat);
      if (!ann.ok()) {
        log::Warn(fmt::format("serve: the ANN index ({}): {}; text search scans every embedding",
                              path, ann.status().message()));
        return;
      }
      auto with = std::make_shared<TextSearch>();
      with->flat = flat;
      with->frames = frames;
      with->ann = std::shared_ptr<const AnnIndex>(std::move(*ann));
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->current && state->current->flat == flat) state->current = with;
    }).detach();
    return Status::Ok();
  }

  // The catalog version on watch_ (the one connection whose versions are compared).
  int64_t Version() {
    std::lock_guard<std::mutex> build(build_mu_);
    auto v = watch_->DataVersion();
    return v.ok() ? *v : -1;
  }

  // ---- folders and duplicates ----

  static bool Param(const httplib::Request& req, const char* key, int64_t lo, int64_t hi,
                    int64_t fallback, int64_t* out) {
    if (!req.has_param(key)) {
      *out = fallback;
      return true;
    }
    return ParseInt(req.get_param_value(key), lo, hi, out);
  }

  void FoldersList(const httplib::Request& req, httplib::Response& res) {
    int64_t offset = 0, limit = 0;
    if (!Param(req, "offset", 0, INT64_MAX / 2, 0, &offset) ||
        !Param(req, "limit", 1, kMaxFiles, 1000, &limit))
      return SendError(res, 400, fmt::format("offset >= 0, limit 1..{}", kMaxFiles));
    auto view =
        folders_.Get(Version(), [&](int64_t version) -> Result<std::shared_ptr<const Folders>> {
          Catalog* db = Db();
          if (!db) return Status::Io("the catalog cannot be read");
          return Folders::Build(*db, version);
        });
    if (!view.ok())
      return SendError(res, view.status().code() == Code::kIo ? 503 : 500, view.status().message());
    const std::shared_ptr<const Folders> f = *view;
    std::string folder = f->root();
    if (req.has_param("path")) {
      auto p = CheckedPath(json(req.get_param_value("path")), "path", false);
      if (!p.ok()) return SendError(res, 400, p.status().message());
      folder = *p;
    }
    auto list = f->List(folder, offset, limit);
    if (!list.ok()) return SendError(res, 404, list.status().message());
    SendJson(res, *list);
  }

  Result<std::shared_ptr<const DupesView>> Dupes() {
    return dupes_.Get(Version(), [&](int64_t version) -> Result<std::shared_ptr<const DupesView>> {
      Catalog* db = Db();
      if (!db) return Status::Io("the catalog cannot be read");
      organize::DupesQuery q;  // lumen dupes' defaults: every tier, keep the best
      q.ann_path = o_.ann_path;
      return DupesView::Build(*db, q, version, o_.quarantine);
    });
  }

  int64_t Submit(const std::string& kind, const std::string& title, std::vector<std::string> args,
                 Jobs::Done done = {}) {
    return jobs_->Submit(kind, title, std::move(args), std::move(done));
  }

  static bool KnownTier(const std::string& t) {
    for (const char* k : {"exact", "near", "burst", "semantic", "remux", "reencode", "trim"})
      if (t == k) return true;
    return false;
  }

  void DuplicatesPage(const httplib::Request& req, httplib::Response& res) {
    int64_t offset = 0, limit = 0;
    if (!Param(req, "offset", 0, INT64_MAX / 2, 0, &offset) ||
        !Param(req, "limit", 1, kMaxGroups, 50, &limit))
      return SendError(res, 400, fmt::format("offset >= 0, limit 1..{}", kMaxGroups));
    const std::string tier = req.get_param_value("tier");
    if (!tier.empty() && !KnownTier(tier))
      return SendError(res, 400, "tier is exact, near, burst, semantic, remux, reencode or trim");
    auto v = Dupes();
    if (!v.ok()) return SendError(res, 500, v.status().message());
    SendJson(res, (*v)->Page(tier, offset, limit));
  }

  // {"action": "quarantine"|"hardlink", "tier": T} (the suggested choice in every group of T)
  // or {"action": ..., "remove": [{"path", "keep"}, ...]} (the page's choice): plans and records
  // the run, then applies it as a job. 202 {run, job}.
  void DuplicatesApply(const httplib::Request& req, httplib::Response& res) {
    json b;
    if (!Writable(res) || !Room(res) || !JsonBody(req, res, &b)) return;
    const std::string action =
        b.value("action", json("")).is_string() ? b.value("action", std::string()) : std::string();
    if (action != "quarantine" && action != "hardlink")
      return SendError(res, 400, "action is quarantine or hardlink");
    const bool hardlink = action == "hardlink";
    if (!hardlink && o_.quarantine.empty())
      return SendError(res, 409, "no quarantine folder is set (lumen serve --quarantine DIR)");
    if (b.contains("tier") == b.contains("remove"))
      return SendError(res, 400, "give either tier (the suggested choice) or remove");
    auto v = Dupes();
    if (!v.ok()) return SendError(res, 500, v.status().message());
    std::vector<organize::DupeVictim> victims;
    size_t not_identical = 0;
    if (b.contains("tier")) {
      if (!b["tier"].is_string() || !KnownTier(b["tier"].get<std::string>()))
        return SendError(res, 400, "tier is exact, near, burst, semantic, remux, reencode or trim");
      victims = (*v)->Suggested(b["tier"].get<std::string>(), hardlink, &not_identical);
    } else {
      auto chosen = (*v)->Chosen(b["remove"], hardlink);
      if (!chosen.ok()) return SendError(res, 400, chosen.status().message());
      victims = std::move(*chosen);
    }
    if (victims.empty())
      return SendError(res, 409,
                       not_identical ? "no identical copies to link (near duplicates differ)"
                                     : "nothing to do: no duplicates in that choice");
    // Plan and record on a connection of its own that writes; the job applies the run.
    auto rw = Catalog::Open(o_.catalog, Catalog::Mode::kReadWrite);
    if (!rw.ok()) return SendError(res, 500, rw.status().message());
    std::string args;
    auto plan = organize::PlanDupes(**rw, victims, hardlink ? "" : o_.quarantine, &args);
    if (!plan.ok()) return SendError(res, 500, plan.status().message());
    Journal j(rw->get());
    auto run = organize::RecordRun(j, "dupes", args, *plan);
    if (!run.ok()) return SendError(res, 500, run.status().message());
    const int64_t job =
        Submit("dupes",
               fmt::format("{} {} duplicates (run {})", hardlink ? "hard-link" : "quarantine",
                           victims.size(), *run),
               {"organize", "--resume", "--run", std::to_string(*run)});
    if (job < 0) return Busy(res);  // the run stays planned: Runs can apply it later
    res.status = 202;
    SendJson(
        res,
        {{"run", *run}, {"job", job}, {"files", victims.size()}, {"not_identical", not_identical}});
  }

  // ---- runs and jobs ----

  // Whether this server may change anything (jobs exist); else answers 403.
  bool Writable(httplib::Response& res) {
    if (jobs_) return true;
    SendError(res, 403, "this server is read-only (lumen serve --read-only)");
    return false;
  }

  // Room in the queue for one more job (checked before anything is planned or recorded).
  bool Room(httplib::Response& res) {
    if (!jobs_->Full()) return true;
    Busy(res);
    return false;
  }
  static void Busy(httplib::Response& res) {
    res.set_header("Retry-After", "10");
    SendError(res, 429, "too many jobs are waiting: try again when some have run");
  }

  // The request's body as a JSON object; else answers 400.
  static bool JsonBody(const httplib::Request& req, httplib::Response& res, json* out) {
    *out = json::parse(req.body, nullptr, false);
    if (!out->is_discarded() && out->is_object()) return true;
    SendError(res, 400, "the body is not a JSON object");
    return false;
  }

  static json RunJson(const JournalRun& r) {
    json args = json::parse(r.args, nullptr, false);
    if (args.is_object()) args.erase("real");
    return {{"id", r.id},
            {"command", r.command},
            {"args", args.is_discarded() ? json() : args},
            {"created", r.created_at},
            {"state", r.state},
            {"files", r.files},
            {"pending", r.pending},
            {"done", r.done},
            {"skipped", r.skipped},
            {"failed", r.failed},
            {"undone", r.undone}};
  }

  void RunAction(const httplib::Request& req, httplib::Response& res) {
    if (!Writable(res) || !Room(res)) return;
    const int64_t id = IdOf(req);
    const std::string what = req.matches[2];
    Catalog* db = Db();
    if (!db) return SendError(res, 503, "the catalog cannot be read");
    Journal j(db);
    auto runs = j.Runs();
    if (!runs.ok()) return SendError(res, 500, runs.status().message());
    const JournalRun* run = nullptr;
    for (const auto& r : *runs)
      if (r.id == id) run = &r;
    if (!run) return SendError(res, 404, fmt::format("there is no run {}", id));
    // The command checks the state again when it runs; this refuses the obvious at once.
    const bool ok = what == "apply"  ? run->state == "planned" || run->state == "applying"
                    : what == "undo" ? run->state != "undone" && run->state != "planned"
                                     : run->state == "undone";
    if (!ok)
      return SendError(res, 409,
                       fmt::format("run {} is {}: it cannot be {}", id, run->state,
                                   what == "apply" ? "applied" : what + "ne"));
    std::vector<std::string> args;
    if (what == "apply")
      args = {"organize", "--resume", "--run", std::to_string(id)};
    else
      args = {what, std::to_string(id)};
    const int64_t job = Submit(what, fmt::format("{} run {}", what, id), args);
    if (job < 0) return Busy(res);
    res.status = 202;
    SendJson(res, {{"run", id}, {"job", job}});
  }

  // Paths of a job: a non-empty array of checked paths.
  static Result<std::vector<std::string>> PathList(const json& b, const char* field, bool files) {
    if (!b.contains(field) || !b[field].is_array() || b[field].empty() ||
        b[field].size() > kMaxPaths)
      return Status::Invalid(
          fmt::format("{} is a non-empty array of at most {} absolute paths", field, kMaxPaths));
    std::vector<std::string> out;
    for (const json& p : b[field]) {
      auto c = CheckedPath(p, field, true, files);
      if (!c.ok()) return c.status();
      out.push_back(*c);
    }
    return out;
  }

  // An optional string option of a job: at most 1024 bytes, printable, passed as --name=value.
  static Status Opt(const json& b, const char* field, const char* flag,
                    std::vector<std::string>* args) {
    if (!b.contains(field)) return Status::Ok();
    if (!b[field].is_string()) return Status::Invalid(fmt::format("{} must be a string", field));
    const std::string v = b[field].get<std::string>();
    if (v.size() > 1024) return Status::Invalid(fmt::format("{}: at most 1024 bytes", field));
    for (unsigned char c : v)
      if (c < 0x20 || c == 0x7f)
        return Status::Invalid(fmt::format("{}: no control characters", field));
    if (!v.empty()) args->push_back(fmt::format("--{}={}", flag, v));
    return Status::Ok();
  }

  // POST /api/v1/jobs: {"kind": index|organize|describe|convert, ...}; 202 the job.
  void StartJob(const httplib::Request& req, httplib::Response& res) {
    json b;
    if (!Writable(res) || !Room(res) || !JsonBody(req, res, &b)) return;
    const std::string kind =
        b.contains("kind") && b["kind"].is_string() ? b["kind"].get<std::string>() : "";
    std::vector<std::string> args;
    std::string title;
    Status st;
    auto paths = [&](const char* field, bool files) -> bool {
      auto p = PathList(b, field, files);
      if (!p.ok()) {
        st = p.status();
        return false;
      }
      args.insert(args.end(), p->begin(), p->end());
      title += fmt::format(" {}{}", p->front(),
                           p->size() > 1 ? fmt::format(" (+{})", p->size() - 1) : "");
      return true;
    };
    if (kind == "index") {
      args = {"index"};
      args.insert(args.end(), o_.index_args.begin(), o_.index_args.end());
      if (b.value("full", false) == true) args.push_back("--full");
      title = "index";
      paths("paths", true);
    } else if (kind == "organize") {
      auto into = b.contains("into") ? CheckedPath(b["into"], "into", false)
                                     : Result<std::string>(Status::Invalid("organize needs into"));
      if (!into.ok()) return SendError(res, 400, into.status().message());
      const std::string mode =
          b.value("mode", json("move")).is_string() ? b.value("mode", std::string("move")) : "";
      if (mode != "move" && mode != "copy" && mode != "hardlink")
        return SendError(res, 400, "mode is move, copy or hardlink");
      args = {"organize", "--json", "--into=" + *into, "--" + mode};
      st = Opt(b, "template", "template", &args);
      if (st.ok() && b.value("apply", false) == true) args.push_back("--apply");
      title = fmt::format("organize into {}:", *into);
      if (st.ok()) paths("paths", false);
    } else if (kind == "describe") {
      args = {"describe"};
      for (auto [field, flag] : {std::pair{"llm", "llm"},
                                 {"llm_model", "llm-model"},
                                 {"base_url", "base-url"},
                                 {"llm_profile", "llm-profile"}})
        if (st.ok()) st = Opt(b, field, flag, &args);
      title = "describe";
      if (st.ok()) paths("paths", true);
    } else if (kind == "convert") {
      auto out = b.contains("output")
                     ? CheckedPath(b["output"], "output", false)
                     : Result<std::string>(Status::Invalid("convert needs output"));
      if (!out.ok()) return SendError(res, 400, out.status().message());
      args = {"convert", "--output=" + *out};
      for (auto [field, flag] :
           {std::pair{"chain", "chain"}, {"preset", "preset"}, {"name", "name"}})
        if (st.ok()) st = Opt(b, field, flag, &args);
      if (st.ok() && !b.contains("chain"))
        st = Status::Invalid("convert needs a chain (e.g. \"fit:1600x1600,webp:82\")");
      if (st.ok() && b.value("skip_existing", false) == true) args.push_back("--skip-existing");
      title = fmt::format("convert to {}:", *out);
      if (st.ok()) paths("paths", true);
    } else {
      return SendError(res, 400, "kind is index, organize, describe or convert");
    }
    if (!st.ok()) return SendError(res, st.code() == Code::kNotFound ? 404 : 400, st.message());
    Jobs::Done done;
    if (kind == "index") {
      // New embeddings: text search ranks them once the job ends.
      done = [this](const json&) {
        auto c = Catalog::Open(o_.catalog, Catalog::Mode::kReadOnly);
        if (!c.ok()) return;
        if (Status s = LoadTextIndex(**c); !s.ok())
          log::Warn(fmt::format("serve: reloading the embeddings: {}", s.message()));
      };
    }
    const int64_t id = Submit(kind, title, args, done);
    if (id < 0) return Busy(res);
    res.status = 202;
    SendJson(res, *jobs_->Get(id));
  }

  // GET /api/v1/events: server-sent events; a "jobs" event with every job whenever one changes
  // (at most 4 a second), a comment every 15 s to keep the connection open.
  void Events(httplib::Response& res) {
    if (streams_.fetch_add(1) >= max_streams_) {
      streams_.fetch_sub(1);
      return SendError(res, 503, "too many event streams are open");
    }
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");
    auto seen = std::make_shared<int64_t>(-1);
    auto idle = std::make_shared<int>(0);
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, seen, idle](size_t, httplib::DataSink& sink) {
          if (Interrupted() || (jobs_ && jobs_->stopped())) {
            sink.done();
            return true;
          }
          int64_t now = -1;
          if (jobs_)
            now = jobs_->Wait(*seen, std::chrono::milliseconds(1000));
          else
            std::this_thread::sleep_for(std::chrono::milliseconds(1000));
          if (now != *seen) {
            *seen = now;
            *idle = 0;
            const std::string data = "event: jobs\ndata: " +
                                     json{{"jobs", jobs_ ? jobs_->List() : json::array()}}.dump(
                                         -1, ' ', false, json::error_handler_t::replace) +
                                     "\n\n";
            if (!sink.write(data.data(), data.size())) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
          } else if (++*idle >= 3) {  // a closed page is noticed within seconds
            *idle = 0;
            static const std::string beat = ": keep-alive\n\n";
            if (!sink.write(beat.data(), beat.size())) return false;
          }
          return true;
        },
        [this](bool) { streams_.fetch_sub(1); });
  }

  ServeOptions o_;
  std::string token_, bound_host_;
  std::unique_ptr<Catalog> watch_;  // used under build_mu_
  std::shared_ptr<TextState> text_ = std::make_shared<TextState>();
  std::mutex mu_, build_mu_, encode_mu_;
  std::shared_ptr<Timeline> timeline_;
  CachedView<Folders> folders_;
  CachedView<Places> places_;
  CachedView<DupesView> dupes_;
  std::chrono::steady_clock::time_point checked_{};
  std::unique_ptr<Jobs> jobs_;
  std::atomic<int> streams_{0};
  std::atomic<int64_t> seen_version_{-1};  // the catalog version Current() last saw
  ThumbCache thumbs_{64 << 20};

 public:
  int max_streams_ = 4;
};

}  // namespace

Status Serve(const ServeOptions& options) {
  if (!IsLoopback(options.host) && options.token.empty())
    return Status::Invalid(fmt::format(
        "--listen {}: a non-loopback address needs --token (or LUMEN_TOKEN): anyone on the "
        "network could otherwise read the library",
        options.host));
  if (!options.token.empty() && options.token.size() < 16)
    return Status::Invalid("the token must be at least 16 characters");
  App app(options);
  if (Status st = app.Start(); !st.ok()) return st;
  const std::string token = options.token.empty() ? RandomToken() : options.token;
  app.set_token(token);
  app.set_host(options.host);

  httplib::Server svr;
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(8, 2 * int(std::max(1u, std::thread::hardware_concurrency())));
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, with which a second server (any
  // process of this user) could bind the same port and take part of the connections.
  svr.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  svr.set_tcp_nodelay(true);
  svr.set_keep_alive_max_count(10000);
  svr.set_keep_alive_timeout(30);
  svr.set_read_timeout(30, 0);
  svr.set_payload_max_length(kMaxBody);
  std::atomic<int> port{0};
  svr.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    return app.Allowed(req, res, port.load()) ? httplib::Server::HandlerResponse::Unhandled
                                              : httplib::Server::HandlerResponse::Handled;
  });
  svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const char* what = res.status == 404   ? "no such resource"
                       : res.status == 413 ? "the request body is too large"
                                           : "the request was refused";
    SendError(res, res.status, what);
  });
  svr.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::Warn(fmt::format("serve: {} {}: {}", req.method, req.path, what));
        SendError(res, 500, "internal error");
      });
  app.max_streams_ = std::max(1, threads / 2);  // the rest of the threads answer requests
  app.Routes(svr);

  int bound = options.port;
  if (options.port == 0) {
    bound = svr.bind_to_any_port(options.host);
    if (bound <= 0)
      return Status::Io(fmt::format("cannot listen on {}: {}", options.host, std::strerror(errno)));
  } else if (!svr.bind_to_port(options.host, options.port)) {
    return Status::Io(fmt::format("cannot listen on {}:{} ({}): is another server running there?",
                                  options.host, options.port, std::strerror(errno)));
  }
  port = bound;
  const std::string shown = options.host.find(':') != std::string::npos && options.host[0] != '['
                                ? "[" + options.host + "]"
                                : options.host;
  // The token is in the URL only when lumen made it: a user's own is not echoed to logs (open
  // /?token=THEIRS once).
  std::string url = fmt::format("http://{}:{}/", shown == "0.0.0.0" ? "127.0.0.1" : shown, bound);
  if (options.token.empty()) url += "?token=" + token;
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load() && !Interrupted())
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    app.Stop();  // cancels the running job, ends the event streams
    svr.stop();
  });
  if (options.on_listening) options.on_listening(url);
  const bool ok = svr.listen_after_bind();
  done = true;
  watcher.join();
  if (!ok && !Interrupted()) return Status::Io("the server stopped unexpectedly");
  return Status::Ok();
}

}  // namespace lumen::server
