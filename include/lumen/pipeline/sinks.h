// Sinks: the catalog writer and the JSON record stream (Photon's field layout).
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "lumen/catalog/catalog.h"
#include "lumen/pipeline/pipeline.h"

namespace lumen {

// Writes each item to the catalog in batched transactions (every `batch` items or 1 s).
class CatalogSink : public Sink {
 public:
  CatalogSink(Catalog* catalog, const Producers& producers, int64_t run, int batch = 512);
  ~CatalogSink() override;
  Status Accept(const ItemResult& item) override;
  Status Finish() override;

 private:
  Status CommitIfDue(bool force);
  Catalog* catalog_;
  Producers producers_;
  int64_t run_;
  int batch_;
  int pending_ = 0;
  bool open_ = false;
  uint64_t last_commit_ns_ = 0;
};

// One record per successfully processed image:
// {file_path, file_name, content_hash, width, height, format, file_size, color_space,
//  exif{captured_at, camera_make, camera_model, lens, gps_latitude, gps_longitude, gps_altitude,
//       iso, aperture, shutter_speed, focal_length, orientation},
//  perceptual_hash, dhash, thumbnail (base64 WebP), thumbnail_width, thumbnail_height,
//  embedding (when an image encoder ran: L2-normalised floats)}
// Absent values are null. Paths that are not valid UTF-8 have the bad bytes replaced by U+FFFD.
nlohmann::json ToRecord(const ItemResult& item);
std::string Base64(const uint8_t* data, size_t size);

// Writes each tagged image's tags into its XMP sidecar (dc:subject, lr:hierarchicalSubject),
// merging with what the sidecar has. A sidecar that cannot be written is a warning, not a failure.
class XmpSink : public Sink {
 public:
  Status Accept(const ItemResult& item) override;
  Status Finish() override { return Status::Ok(); }
  uint64_t written() const { return written_; }

 private:
  uint64_t written_ = 0;
};

enum class RecordFormat { kJsonl, kJsonArray };

// Streams records to a FILE* (stdout or a file): one per line, or a JSON array.
class JsonSink : public Sink {
 public:
  // `prefix` records (from --skip-existing with a JSON array) are written first.
  JsonSink(std::FILE* out, RecordFormat format, std::vector<nlohmann::json> prefix = {});
  Status Accept(const ItemResult& item) override;
  Status Finish() override;
  uint64_t written() const { return written_; }

 private:
  Status Write(const nlohmann::json& j);
  std::FILE* out_;
  RecordFormat format_;
  uint64_t written_ = 0;
  bool started_ = false;
};

}  // namespace lumen
