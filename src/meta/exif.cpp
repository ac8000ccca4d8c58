#include "lumen/meta/exif.h"

#include <exiv2/bmffimage.hpp>
#include <exiv2/exiv2.hpp>

#include <cmath>
#include <mutex>

#include <fmt/format.h>

namespace lumen {

void InitMetadataLibrary() {
  static std::once_flag once;
  std::call_once(once, [] {
    Exiv2::LogMsg::setLevel(Exiv2::LogMsg::mute);
    Exiv2::XmpParser::initialize();
#ifdef EXV_ENABLE_BMFF
    Exiv2::enableBMFF(true);
#endif
  });
}

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0' || s.back() == '\n')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

const Exiv2::Exifdatum* FindExif(const Exiv2::ExifData& d, const char* key) {
  auto it = d.findKey(Exiv2::ExifKey(key));
  if (it == d.end() || it->count() == 0) return nullptr;
  return &*it;
}

const Exiv2::Xmpdatum* FindXmp(const Exiv2::XmpData& d, const char* key) {
  try {
    auto it = d.findKey(Exiv2::XmpKey(key));
    if (it == d.end() || it->count() == 0) return nullptr;
    return &*it;
  } catch (const Exiv2::AnyError&) {
    return nullptr;
  }
}

std::optional<std::string> Text(const Exiv2::Exifdatum* v) {
  if (!v) return std::nullopt;
  std::string s = Trim(v->toString());
  if (s.empty()) return std::nullopt;
  return s;
}

std::optional<double> Number(const Exiv2::Exifdatum* v) {
  if (!v) return std::nullopt;
  Exiv2::Rational r = v->toRational(0);
  if (r.second == 0) return std::nullopt;
  double x = double(r.first) / r.second;
  if (!std::isfinite(x)) return std::nullopt;
  return x;
}

// "2021:06:01 12:34:56" or ISO forms -> "2021-06-01T12:34:56".
std::optional<std::string> NormaliseDate(std::string s) {
  s = Trim(s);
  if (s.size() < 19) {
    if (s.size() == 10 && s[4] != ' ') {  // date only
      s[4] = '-';
      s[7] = '-';
      return s;
    }
    return std::nullopt;
  }
  if (s.compare(0, 4, "0000") == 0) return std::nullopt;
  std::string out = s.substr(0, 19);
  out[4] = '-';
  out[7] = '-';
  out[10] = 'T';
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18})
    if (out[i] < '0' || out[i] > '9') return std::nullopt;
  return out;
}

std::optional<std::string> NormaliseOffset(std::string s) {
  s = Trim(s);
  if (s.size() == 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':') return s;
  return std::nullopt;
}

std::optional<double> GpsCoordinate(const Exiv2::ExifData& d, const char* key, const char* ref_key,
                                    char negative_ref) {
  const auto* v = FindExif(d, key);
  if (!v || v->count() < 3) return std::nullopt;
  double parts[3];
  for (int i = 0; i < 3; ++i) {
    Exiv2::Rational r = v->toRational(i);
    if (r.second == 0) return std::nullopt;
    parts[i] = double(r.first) / r.second;
  }
  double deg = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0;
  auto ref = Text(FindExif(d, ref_key));
  if (ref && !ref->empty() && (*ref)[0] == negative_ref) deg = -deg;
  if (!std::isfinite(deg)) return std::nullopt;
  return deg;
}

}  // namespace

std::optional<std::string> PhotoMetadata::ShutterSpeedText() const {
  if (!exposure_time || *exposure_time <= 0) return std::nullopt;
  double t = *exposure_time;
  if (t < 1.0) return fmt::format("1/{}", static_cast<long>(std::lround(1.0 / t)));
  return fmt::format("{:g}", t);
}

std::optional<std::string> PhotoMetadata::CapturedAtWithOffset() const {
  if (!captured_at) return std::nullopt;
  return *captured_at + utc_offset.value_or("");
}

Result<PhotoMetadata> ReadMetadata(const uint8_t* data, size_t size) {
  PhotoMetadata m;
  try {
    auto image = Exiv2::ImageFactory::open(data, static_cast<long>(size));
    if (!image.get()) return Status::Unsupported("exiv2 does not recognise this file");
    image->readMetadata();
    const Exiv2::ExifData& e = image->exifData();
    const Exiv2::XmpData& x = image->xmpData();
    m.has_exif = !e.empty();
    m.has_xmp = !x.empty();

    // Capture time: DateTimeOriginal, then digitised, then XMP, then the file's DateTime.
    std::optional<std::string> date;
    for (const char* k : {"Exif.Photo.DateTimeOriginal", "Exif.Photo.DateTimeDigitized"}) {
      if (auto t = Text(FindExif(e, k)); t && (date = NormaliseDate(*t))) break;
    }
    if (!date) {
      for (const char* k :
           {"Xmp.exif.DateTimeOriginal", "Xmp.photoshop.DateCreated", "Xmp.xmp.CreateDate"}) {
        if (const auto* v = FindXmp(x, k)) {
          std::string s = v->toString();
          if ((date = NormaliseDate(s))) {
            // XMP dates carry their offset inline: 2021-06-01T12:34:56+02:00
            if (s.size() >= 25) m.utc_offset = NormaliseOffset(s.substr(19, 6));
            break;
          }
        }
      }
    }
    if (!date) {
      if (auto t = Text(FindExif(e, "Exif.Image.DateTime"))) date = NormaliseDate(*t);
    }
    if (date) {
      if (auto sub = Text(FindExif(e, "Exif.Photo.SubSecTimeOriginal"))) {
        bool digits = !sub->empty() && sub->find_first_not_of("0123456789") == std::string::npos;
        if (digits && date->size() == 19) *date += "." + *sub;
      }
      m.captured_at = date;
      if (!m.utc_offset) {
        if (auto o = Text(FindExif(e, "Exif.Photo.OffsetTimeOriginal")))
          m.utc_offset = NormaliseOffset(*o);
      }
    }

    m.camera_make = Text(FindExif(e, "Exif.Image.Make"));
    m.camera_model = Text(FindExif(e, "Exif.Image.Model"));
    m.lens = Text(FindExif(e, "Exif.Photo.LensModel"));
    if (!m.lens) {
      if (const auto* v = FindXmp(x, "Xmp.aux.Lens")) m.lens = Trim(v->toString());
    }
    m.gps_latitude =
        GpsCoordinate(e, "Exif.GPSInfo.GPSLatitude", "Exif.GPSInfo.GPSLatitudeRef", 'S');
    m.gps_longitude =
        GpsCoordinate(e, "Exif.GPSInfo.GPSLongitude", "Exif.GPSInfo.GPSLongitudeRef", 'W');
    if (auto alt = Number(FindExif(e, "Exif.GPSInfo.GPSAltitude"))) {
      const auto* ref = FindExif(e, "Exif.GPSInfo.GPSAltitudeRef");
      m.gps_altitude = (ref && ref->toLong(0) == 1) ? -*alt : *alt;
    }
    if (const auto* v = FindExif(e, "Exif.Photo.ISOSpeedRatings")) {
      long iso = v->toLong(0);
      if (iso > 0) m.iso = static_cast<int>(iso);
    }
    m.aperture = Number(FindExif(e, "Exif.Photo.FNumber"));
    m.exposure_time = Number(FindExif(e, "Exif.Photo.ExposureTime"));
    m.focal_length = Number(FindExif(e, "Exif.Photo.FocalLength"));
    if (const auto* v = FindExif(e, "Exif.Image.Orientation")) {
      long o = v->toLong(0);
      if (o >= 1 && o <= 8) m.orientation = static_cast<int>(o);
    }
  } catch (const Exiv2::AnyError& err) {
    return Status::Corrupt(fmt::format("metadata unreadable: {}", err.what()));
  } catch (const std::exception& err) {
    return Status::Corrupt(fmt::format("metadata unreadable: {}", err.what()));
  }
  return m;
}

}  // namespace lumen
