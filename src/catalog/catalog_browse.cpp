// The catalog's browsing queries (lumen serve): the timeline and one asset's details.
#include <sqlite3.h>

#include <algorithm>

#include <fmt/format.h>

#include "lumen/catalog/catalog.h"
#include "lumen/io/magic.h"

namespace lumen {

namespace {
// "2021-06-01T12:34:56" -> 20210601; 0 when it is not a date.
int32_t DateKey(const std::string& s) {
  if (s.size() < 10 || s[4] != '-' || s[7] != '-') return 0;
  int32_t v = 0;
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
  }
  const int month = v / 100 % 100, day = v % 100;
  return month >= 1 && month <= 12 && day >= 1 && day <= 31 ? v : 0;
}
}  // namespace

Result<std::optional<Catalog::ServedThumbnail>> Catalog::GetServedThumbnail(int64_t asset) {
  if (!served_thumb_) {
    auto s =
        sql::Prepare(db_.get(),
                     "SELECT a.hash, t.width, t.height, t.webp FROM assets a JOIN thumbnails t "
                     "ON t.asset_id=a.id AND t.producer=(SELECT producer FROM thumbnails WHERE "
                     "asset_id=a.id ORDER BY width*height DESC LIMIT 1) WHERE a.id=?");
    if (!s.ok()) return s.status();
    served_thumb_ = std::move(*s);
  }
  sql::Stmt& s = served_thumb_;
  s.Bind(1, asset);
  Status st;
  std::optional<ServedThumbnail> out;
  if (s.Step(&st)) {
    out.emplace();
    const std::string h = s.Blob(0);
    if (h.size() == 16)
      out->hash = Hash128::FromBytes(reinterpret_cast<const unsigned char*>(h.data()));
    out->width = int(s.Int(1));
    out->height = int(s.Int(2));
    out->webp = s.Blob(3);
  }
  s.Reset();
  if (!st.ok()) return st;
  return out;
}

Status Catalog::LoadCurrentPaths(std::vector<std::pair<std::string, int64_t>>* out) {
  out->clear();
  auto s = sql::Prepare(db_.get(),
                        "SELECT path, asset_id FROM locations WHERE state='ok' AND asset_id IS "
                        "NOT NULL ORDER BY path");
  if (!s.ok()) return s.status();
  Status st;
  while (s->Step(&st)) out->emplace_back(s->Text(0), s->Int(1));
  return st;
}

Status Catalog::LoadTimeline(std::vector<TimelineEntry>* out) {
  out->clear();
  // The newest metadata row per asset (there is one producer today; MAX keeps it one row).
  auto s = sql::Prepare(db_.get(),
                        "SELECT a.id, (SELECT MAX(m.captured_at) FROM metadata m WHERE "
                        "m.asset_id=a.id), a.kind FROM assets a WHERE EXISTS(SELECT 1 FROM "
                        "locations l WHERE l.asset_id=a.id AND l.state='ok')");
  if (!s.ok()) return s.status();
  Status st;
  std::vector<std::pair<std::string, TimelineEntry>> rows;
  while (s->Step(&st)) {
    TimelineEntry e;
    e.id = s->Int(0);
    std::string when = s->IsNull(1) ? "" : s->Text(1);
    e.date = DateKey(when);
    if (e.date == 0) when.clear();
    e.kind = ParseMediaKind(s->IsNull(2) ? "" : s->Text(2));
    rows.emplace_back(std::move(when), e);
  }
  if (!st.ok()) return st;
  // Newest first by the full capture time; undated (empty) last; ties by id, newest first.
  std::sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) {
    if (x.first.empty() != y.first.empty()) return y.first.empty();
    if (x.first != y.first) return x.first > y.first;
    return x.second.id > y.second.id;
  });
  out->reserve(rows.size());
  for (auto& r : rows) out->push_back(r.second);
  return Status::Ok();
}

Status Catalog::LoadPlaces(std::vector<Place>* out) {
  out->clear();
  auto s = sql::Prepare(db_.get(),
                        "SELECT m.asset_id, MAX(m.gps_latitude), MAX(m.gps_longitude) FROM "
                        "metadata m WHERE m.gps_latitude IS NOT NULL AND m.gps_longitude IS NOT "
                        "NULL AND EXISTS(SELECT 1 FROM locations l WHERE l.asset_id=m.asset_id AND "
                        "l.state='ok') GROUP BY m.asset_id ORDER BY MAX(m.captured_at) IS NULL, "
                        "MAX(m.captured_at) DESC, m.asset_id DESC");
  if (!s.ok()) return s.status();
  Status st;
  while (s->Step(&st)) {
    const double lat = s->Double(1), lon = s->Double(2);
    // A file's EXIF is the file's word: out-of-range positions are left off the map.
    if (!(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180)) continue;
    out->push_back({s->Int(0), float(lat), float(lon)});
  }
  return st;
}

Result<Catalog::AssetDetails> Catalog::GetAssetDetails(int64_t id) {
  AssetDetails d;
  d.id = id;
  {
    auto s = sql::Prepare(db_.get(),
                          "SELECT hash, size, format, width, height, colorspace, kind FROM assets "
                          "WHERE id=?");
    if (!s.ok()) return s.status();
    s->Bind(1, id);
    Status st;
    if (!s->Step(&st))
      return st.ok() ? Status::NotFound(fmt::format("asset {} not in the catalog", id)) : st;
    const std::string h = s->Blob(0);
    if (h.size() == 16)
      d.record.hash = Hash128::FromBytes(reinterpret_cast<const unsigned char*>(h.data()));
    d.record.size = uint64_t(s->Int(1));
    d.record.format = s->IsNull(2) ? "" : s->Text(2);
    d.record.width = int(s->Int(3));
    d.record.height = int(s->Int(4));
    d.record.colorspace = s->IsNull(5) ? "" : s->Text(5);
    d.record.kind = ParseMediaKind(s->IsNull(6) ? "" : s->Text(6));
  }
  {
    auto s = sql::Prepare(
        db_.get(), "SELECT path FROM locations WHERE asset_id=? AND state='ok' ORDER BY path");
    if (!s.ok()) return s.status();
    s->Bind(1, id);
    Status st;
    while (s->Step(&st)) d.paths.push_back(s->Blob(0));
    if (!st.ok()) return st;
  }
  {
    auto s =
        sql::Prepare(db_.get(),
                     "SELECT captured_at, utc_offset, camera_make, camera_model, lens, "
                     "gps_latitude, gps_longitude, gps_altitude, iso, aperture, exposure_time, "
                     "focal_length FROM metadata WHERE asset_id=? ORDER BY producer DESC "
                     "LIMIT 1");
    if (!s.ok()) return s.status();
    s->Bind(1, id);
    Status st;
    if (s->Step(&st)) {
      PhotoMetadata& m = d.metadata;
      auto dbl = [&](int c) -> std::optional<double> {
        if (s->IsNull(c)) return std::nullopt;
        return s->Double(c);
      };
      m.captured_at = s->OptText(0);
      m.utc_offset = s->OptText(1);
      m.camera_make = s->OptText(2);
      m.camera_model = s->OptText(3);
      m.lens = s->OptText(4);
      m.gps_latitude = dbl(5);
      m.gps_longitude = dbl(6);
      m.gps_altitude = dbl(7);
      if (!s->IsNull(8)) m.iso = int(s->Int(8));
      m.aperture = dbl(9);
      m.exposure_time = dbl(10);
      m.focal_length = dbl(11);
    }
    if (!st.ok()) return st;
  }
  {
    auto s = sql::Prepare(db_.get(),
                          "SELECT term, MAX(confidence) c FROM tags WHERE asset_id=? GROUP BY term "
                          "ORDER BY c DESC, term");
    if (!s.ok()) return s.status();
    s->Bind(1, id);
    Status st;
    while (s->Step(&st)) d.tags.emplace_back(s->Text(0), float(s->Double(1)));
    if (!st.ok()) return st;
  }
  {
    auto s =
        sql::Prepare(db_.get(),
                     "SELECT result FROM enrichments WHERE asset_id=? ORDER BY created_at DESC "
                     "LIMIT 1");
    if (!s.ok()) return s.status();
    s->Bind(1, id);
    Status st;
    if (s->Step(&st)) d.description = s->Text(0);
    if (!st.ok()) return st;
  }
  if (d.record.kind == MediaKind::kVideo) {
    auto s =
        sql::Prepare(db_.get(), "SELECT duration, producer FROM videos WHERE asset_id=? LIMIT 1");
    if (!s.ok()) return s.status();
    s->Bind(1, id);
    Status st;
    std::string producer;
    if (s->Step(&st)) {
      d.duration = s->Double(0);
      producer = s->Text(1);
    }
    if (!st.ok()) return st;
    auto shots = sql::Prepare(db_.get(),
                              "SELECT start, end FROM video_shots WHERE asset_id=? AND producer=? "
                              "ORDER BY idx");
    if (!shots.ok()) return shots.status();
    shots->Bind(1, id).Bind(2, producer);
    while (shots->Step(&st)) d.shots.emplace_back(shots->Double(0), shots->Double(1));
    if (!st.ok()) return st;
  }
  return d;
}

Result<int64_t> Catalog::DataVersion() {
  auto s = sql::Prepare(db_.get(), "PRAGMA data_version");
  if (!s.ok()) return s.status();
  Status st;
  int64_t v = 0;
  if (s->Step(&st)) v = s->Int(0);
  if (!st.ok()) return st;
  return v * 1000003 + sqlite3_total_changes64(db_.get());
}

}  // namespace lumen
