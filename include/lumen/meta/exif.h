// Photo metadata from EXIF and XMP (exiv2), read from the in-memory file bytes.
//
// Every field is optional: a photo without EXIF is normal, not an error. ReadMetadata() fails
// only when exiv2 cannot parse the container at all, and callers treat that as "no metadata".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "lumen/util/status.h"

namespace lumen {

// Call once per process before ReadMetadata() from several threads (starts the XMP toolkit,
// mutes exiv2's own stderr warnings, enables HEIF/AVIF (BMFF) parsing).
void InitMetadataLibrary();

struct PhotoMetadata {
  std::optional<std::string> captured_at;  // "2021-06-01T12:34:56" local time, ".123" if subsec
  std::optional<std::string> utc_offset;   // "+02:00" when the camera recorded it
  std::optional<std::string> camera_make;
  std::optional<std::string> camera_model;
  std::optional<std::string> lens;
  std::optional<double> gps_latitude;   // degrees, north positive
  std::optional<double> gps_longitude;  // degrees, east positive
  std::optional<double> gps_altitude;   // metres, above sea level positive
  std::optional<int> iso;
  std::optional<double> aperture;       // f-number
  std::optional<double> exposure_time;  // seconds
  std::optional<double> focal_length;   // mm
  int orientation = 1;                  // EXIF 1..8 (1 when absent or invalid)
  bool has_exif = false;
  bool has_xmp = false;

  // "1/250" for exposures under a second, "2.5" (seconds) otherwise.
  std::optional<std::string> ShutterSpeedText() const;
  // captured_at with the offset appended when known.
  std::optional<std::string> CapturedAtWithOffset() const;
};

Result<PhotoMetadata> ReadMetadata(const uint8_t* data, size_t size);

}  // namespace lumen
