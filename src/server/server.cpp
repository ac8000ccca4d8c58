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
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "lumen/catalog/catalog.h"
#include "lumen/io/magic.h"
#include "lumen/search/flat_index.h"
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

void SendError(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", message}, {"status", status}}.dump(), "application/json");
}

void SendJson(httplib::Response& res, const json& j) {
  res.set_header("Cache-Control", "no-store");
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

std::string MonthOf(int32_t date) {
  return date == 0 ? "" : fmt::format("{:04}-{:02}", date / 10000, date / 100 % 100);
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
    std::string month;  // "" for undated
    int64_t offset = 0, count = 0;
  };
  std::vector<Bucket> buckets;
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
    const std::string m = MonthOf(e.date);
    if (t->buckets.empty() || t->buckets.back().month != m) t->buckets.push_back({m, i, 0});
    ++t->buckets.back().count;
    if (e.kind == MediaKind::kVideo)
      ++t->videos;
    else if (e.kind == MediaKind::kDocument)
      ++t->documents;
    else
      ++t->photos;
  }
  return t;
}

class App {
 public:
  explicit App(const ServeOptions& o) : o_(o) {}

  Status Start() {
    auto c = Catalog::Open(o_.catalog, Catalog::Mode::kReadOnly);
    if (!c.ok()) return c.status();
    if (o_.encode_text) {
      auto dim = (*c)->EmbeddingDim(o_.model);
      if (dim.ok() && *dim > 0) {
        index_ = std::make_unique<FlatIndex>(*dim);
        if (Status st = (*c)->LoadEmbeddings(o_.model, index_.get()); !st.ok()) return st;
      }
    }
    return Status::Ok();
  }

  void Routes(httplib::Server& svr) {
    svr.Get("/", [this](const httplib::Request& req, httplib::Response& res) { Index(req, res); });
    for (const WebAsset& a : WebAssets()) {
      if (std::string(a.path) == "/index.html") continue;
      svr.Get(a.path, [a](const httplib::Request&, httplib::Response& res) {
        res.set_header("Cache-Control", "no-cache");
        res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.type);
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
                     {"text_search", index_ != nullptr}});
    });
    svr.Get("/api/v1/timeline", [this](const httplib::Request&, httplib::Response& res) {
      auto t = Current();
      if (!t) return SendError(res, 503, "the catalog cannot be read");
      json months = json::array(), counts = json::array(), offsets = json::array();
      for (const auto& b : t->buckets) {
        months.push_back(b.month);
        counts.push_back(b.count);
        offsets.push_back(b.offset);
      }
      SendJson(res, {{"total", t->entries.size()},
                     {"version", t->version},
                     {"months", months},
                     {"counts", counts},
                     {"offsets", offsets}});
    });
    svr.Get("/api/v1/timeline/assets", [this](const httplib::Request& req, httplib::Response& res) {
      TimelineSlice(req, res);
    });
    svr.Get(R"(/api/v1/assets/(\d{1,18}))",
            [this](const httplib::Request& req, httplib::Response& res) { Details(req, res); });
    svr.Get(R"(/api/v1/assets/(\d{1,18})/thumbnail)",
            [this](const httplib::Request& req, httplib::Response& res) { Thumbnail(req, res); });
    svr.Get(R"(/api/v1/assets/(\d{1,18})/original)",
            [this](const httplib::Request& req, httplib::Response& res) { Original(req, res); });
    svr.Get("/api/v1/search", [this](const httplib::Request& req, httplib::Response& res) {
      json q = json::object();
      for (const char* k : {"q", "folder", "camera", "from", "to", "tag", "media", "limit"})
        if (req.has_param(k)) q[k] = req.get_param_value(k);
      Search(q, res);
    });
    svr.Post("/api/v1/search", [this](const httplib::Request& req, httplib::Response& res) {
      json q = json::parse(req.body, nullptr, false);
      if (q.is_discarded() || !q.is_object())
        return SendError(res, 400, "the body is not a JSON object");
      Search(q, res);
    });
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
    const bool by_cookie = SameSecret(CookieValue(req, "lumen_token"), token_);
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
    Catalog* db = Db();
    if (!db) return nullptr;
    auto version = db->DataVersion();
    auto current = [&] {
      std::lock_guard<std::mutex> lock(mu_);
      return timeline_;
    }();
    // data_version is per connection: the builder's own connection is the one compared.
    if (current && version.ok() && current->version == *version) return current;
    auto t = BuildTimeline(*db, version.ok() ? *version : -1);
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
    res.set_content(html, "text/html; charset=utf-8");
  }

  static bool ParseInt(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
      return false;
    const int64_t v = std::stoll(s);
    if (v < lo || v > hi) return false;
    *out = v;
    return true;
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
    Catalog* db = Db();
    if (!db) return SendError(res, 503, "the catalog cannot be read");
    const int64_t id = IdOf(req);
    auto a = db->GetAsset(id);
    if (!a.ok()) return SendError(res, 404, a.status().message());
    auto t = db->GetThumbnail(id);
    if (!t.ok()) return SendError(res, 500, t.status().message());
    if (!*t) return SendError(res, 404, fmt::format("asset {} has no thumbnail", id));
    // Content-addressed: the file's hash and the thumbnail's size name its bytes.
    const std::string etag = fmt::format("\"{}-{}x{}\"", a->hash.Hex(), (*t)->width, (*t)->height);
    res.set_header("ETag", etag);
    res.set_header("Cache-Control", "private, max-age=31536000, immutable");
    if (req.get_header_value("If-None-Match") == etag) {
      res.status = 304;
      return;
    }
    res.set_content(reinterpret_cast<const char*>((*t)->webp.data()), (*t)->webp.size(),
                    "image/webp");
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
    const std::string query = text("q"), limit_s = text("limit");
    for (const std::string* s : std::initializer_list<const std::string*>{
             &f.folder, &f.camera, &f.from, &f.to, &f.tag, &f.media, &query})
      if (*s == "\x01" || s->size() > 4096)
        return SendError(res, 400, "search fields are strings of at most 4096 bytes");
    if (!f.media.empty() && f.media != "photo" && f.media != "video" && f.media != "document")
      return SendError(res, 400, "media is photo, video or document");
    if (!f.folder.empty() && f.folder[0] != '/')
      return SendError(res, 400, "folder is an absolute path of a folder the catalog holds");
    int64_t limit = 100;
    if (!limit_s.empty() && !ParseInt(limit_s, 1, kMaxResults, &limit))
      return SendError(res, 400, fmt::format("limit is 1..{}", kMaxResults));
    Catalog* db = Db();
    if (!db) return SendError(res, 503, "the catalog cannot be read");
    std::optional<std::unordered_set<int64_t>> keep;
    if (!f.empty()) {
      auto ids = db->FilterAssets(f);
      if (!ids.ok()) return SendError(res, 500, ids.status().message());
      keep = std::move(*ids);
    }
    json ids = json::array(), scores = json::array();
    if (!query.empty()) {
      if (!index_ || !o_.encode_text)
        return SendError(res, 501,
                         "text search needs an image-text model: lumen serve --model MODEL");
      std::vector<float> v;
      {
        std::lock_guard<std::mutex> lock(encode_mu_);
        auto e = o_.encode_text(query);
        if (!e.ok()) return SendError(res, 500, e.status().message());
        v = std::move(*e);
      }
      if (int(v.size()) != index_->dim())
        return SendError(res, 500, "the text and image embeddings disagree on the size");
      std::function<bool(int64_t)> pass;
      if (keep) pass = [&](int64_t id) { return keep->count(id) > 0; };
      for (const Hit& h : index_->Search(v.data(), size_t(limit), pass)) {
        ids.push_back(h.id);
        scores.push_back(h.cosine);
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
    SendJson(res, {{"ids", ids}, {"scores", scores}});
  }

  ServeOptions o_;
  std::string token_, bound_host_;
  std::unique_ptr<FlatIndex> index_;
  std::mutex mu_, build_mu_, encode_mu_;
  std::shared_ptr<Timeline> timeline_;
  std::chrono::steady_clock::time_point checked_{};
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
