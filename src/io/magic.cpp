#include "lumen/io/magic.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>

namespace lumen {

const char* FormatName(Format f) {
  switch (f) {
    case Format::kJpeg:
      return "jpeg";
    case Format::kPng:
      return "png";
    case Format::kWebp:
      return "webp";
    case Format::kTiff:
      return "tiff";
    case Format::kHeif:
      return "heif";
    case Format::kAvif:
      return "avif";
    case Format::kGif:
      return "gif";
    case Format::kUnknown:
      break;
  }
  return "unknown";
}

namespace {
bool Has(const uint8_t* d, size_t n, size_t off, const char* sig) {
  size_t len = std::strlen(sig);
  return n >= off + len && std::memcmp(d + off, sig, len) == 0;
}
}  // namespace

Format DetectFormat(const uint8_t* d, size_t n) {
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return Format::kJpeg;
  if (Has(d, n, 0, "\x89PNG\r\n\x1a\n")) return Format::kPng;
  if (Has(d, n, 0, "RIFF") && Has(d, n, 8, "WEBP")) return Format::kWebp;
  if (Has(d, n, 0, "II*\0") || Has(d, n, 0, "MM\0*")) return Format::kTiff;
  if (Has(d, n, 0, "GIF87a") || Has(d, n, 0, "GIF89a")) return Format::kGif;
  // ISO-BMFF: size(4) "ftyp" major_brand(4) minor(4) compatible brands...
  if (Has(d, n, 4, "ftyp") && n >= 12) {
    std::string major(reinterpret_cast<const char*>(d + 8), 4);
    if (major == "avif" || major == "avis") return Format::kAvif;
    if (major == "heic" || major == "heix" || major == "heim" || major == "heis" ||
        major == "hevc" || major == "hevx" || major == "mif1" || major == "msf1")
      return Format::kHeif;
  }
  return Format::kUnknown;
}

const char* DescribeNonImage(const uint8_t* d, size_t n) {
  if (n == 0) return "empty file";
  if (Has(d, n, 0, "%PDF")) return "PDF document";
  if (Has(d, n, 4, "ftyp")) return "MP4/QuickTime video or other ISO media";
  if (Has(d, n, 0, "PK\x03\x04")) return "ZIP archive";
  if (Has(d, n, 0, "\x1a\x45\xdf\xa3")) return "Matroska/WebM video";
  if (Has(d, n, 0, "RIFF")) return "RIFF media (AVI/WAV)";
  bool text = true;
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = d[i];
    if (c < 0x09 || (c > 0x0d && c < 0x20 && c != 0x1b)) {
      text = false;
      break;
    }
  }
  return text ? "text" : "binary data of no known image format";
}

bool HasImageExtension(std::string_view name) {
  auto dot = name.rfind('.');
  if (dot == std::string_view::npos) return false;
  std::string ext(name.substr(dot + 1));
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  static const char* kExts[] = {"jpg",  "jpeg", "jpe",  "jfif", "png",  "webp", "tif",
                                "tiff", "heic", "heif", "hif",  "avif", "gif"};
  for (const char* e : kExts)
    if (ext == e) return true;
  return false;
}

const char* MediaKindName(MediaKind k) {
  switch (k) {
    case MediaKind::kDocument:
      return "document";
    case MediaKind::kVideo:
      return "video";
    case MediaKind::kPhoto:
      break;
  }
  return "photo";
}

MediaKind ParseMediaKind(std::string_view name) {
  if (name == "document") return MediaKind::kDocument;
  if (name == "video") return MediaKind::kVideo;
  return MediaKind::kPhoto;
}

bool MaybeVideo(const uint8_t* d, size_t n) {
  if (DetectFormat(d, n) != Format::kUnknown) return false;  // HEIF and AVIF are ISO media too
  if (Has(d, n, 4, "ftyp") || Has(d, n, 4, "moov") || Has(d, n, 4, "mdat") ||
      Has(d, n, 4, "wide") || Has(d, n, 4, "free") || Has(d, n, 4, "skip"))
    return true;                                      // MP4, MOV, 3GP
  if (Has(d, n, 0, "\x1a\x45\xdf\xa3")) return true;  // Matroska, WebM
  if (Has(d, n, 0, "RIFF") && (Has(d, n, 8, "AVI ") || Has(d, n, 8, "AVIX"))) return true;
  if (n >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 1 && (d[3] == 0xBA || d[3] == 0xB3))
    return true;  // MPEG program stream, MPEG-1/2 elementary video
  if (n > 188 && d[0] == 0x47 && d[188] == 0x47) return true;  // MPEG-TS
  if (n > 196 && d[4] == 0x47 && d[196] == 0x47) return true;  // M2TS (Blu-ray, AVCHD .MTS)
  if (Has(d, n, 0, "FLV\x01")) return true;
  if (Has(d, n, 0, "\x30\x26\xb2\x75\x8e\x66\xcf\x11")) return true;  // ASF, WMV
  if (Has(d, n, 0, "OggS")) return true;
  if (n >= 3 && d[0] == 0x1F && d[1] == 0x07 && d[2] == 0x00) return true;  // DV
  return false;
}

bool HasVideoExtension(std::string_view name) {
  auto dot = name.rfind('.');
  if (dot == std::string_view::npos) return false;
  std::string ext(name.substr(dot + 1));
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  static const char* kExts[] = {"mp4", "m4v", "mov", "qt",   "mkv", "webm", "avi",  "wmv",
                                "asf", "flv", "mts", "m2ts", "ts",  "mpg",  "mpeg", "3gp",
                                "3g2", "ogv", "mxf", "dv",   "vob", "insv"};
  for (const char* e : kExts)
    if (ext == e) return true;
  return false;
}

}  // namespace lumen
