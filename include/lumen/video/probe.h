// Probing a video file in process (FFmpeg's libavformat, no ffprobe): container, streams and the
// tags phones write, read through lumen's own I/O so that the bytes are content-hashed as they
// are read.
//
// Reading and hashing: libavformat reads through an AVIOContext whose reads lumen serves from the
// file. Bytes read in order from the start feed the XXH3-128 content hash (io/hash.h) as they
// pass; a container that makes libavformat seek ahead (MP4 with its `moov` box at the end, as
// cameras write it) reads those bytes out of order, and the hash reads the gap afterwards:
// `second_read_bytes` says how many bytes were read twice. With `ProbeOptions::hash` the rest of
// the file is read to finish the hash (what indexing does while it decodes anyway).
//
// Bounded: the file must be a regular file (never a FIFO or a device), within `max_file_bytes`;
// libavformat's probe reads at most `probe_bytes` and `analyze_seconds` of the streams; the
// whole call stops at `max_seconds` (an interrupt callback), so a hostile file cannot hang it.
// Errors name the file: NotFound, Unsupported (not a container libavformat knows, no video
// stream), TooLarge, Corrupt (libavformat's reason), Interrupted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lumen/io/hash.h"
#include "lumen/util/status.h"

namespace lumen::video {

struct VideoTrack {
  int index = 0;
  std::string codec;             // libavcodec's name: h264, hevc, vp9, av1, mpeg4...
  std::string profile;           // "High", "Main 10"... ("" if none)
  int width = 0, height = 0;     // coded size, as stored (before rotation)
  int rotation = 0;              // clockwise degrees to display it upright: 0, 90, 180, 270
  int sar_num = 1, sar_den = 1;  // sample (pixel) aspect ratio
  int dar_num = 0, dar_den = 0;  // display aspect ratio of the stored frame (width x SAR : height)
  double fps = 0;                // average frame rate (frames / duration); 0 if unknown
  double nominal_fps = 0;        // the container's base rate (r_frame_rate)
  bool variable_rate = false;    // average and base rates differ by more than 1%: VFR (phones)
  std::string pix_fmt;           // yuv420p, yuv420p10le...
  int bit_depth = 0;             // per sample of the first component
  std::string color_transfer, color_primaries, color_space;  // smpte2084, bt2020... ("" unknown)
  bool hdr = false;                                          // PQ or HLG transfer
  std::string field_order;  // progressive, tt, bb, tb, bt ("" unknown)
  int64_t frames = 0;       // from the container's index where it has one (0 unknown)
  double duration = 0;      // seconds, this stream's
};

struct AudioTrack {
  int index = 0;
  std::string codec;
  int channels = 0;
  int sample_rate = 0;
  std::string language;  // ISO 639 as tagged ("" none, "und" as tagged)
};

struct SubtitleTrack {
  int index = 0;
  std::string codec;
  std::string language;
};

struct VideoProbe {
  std::string container;  // libavformat's short names: "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
  double duration = 0;    // seconds
  int64_t bit_rate = 0;   // bits per second, whole file
  std::vector<VideoTrack> video;  // at least one
  int main = -1;                  // the stream index of the one analysed (Analyze), -1 unknown
  std::vector<AudioTrack> audio;
  std::vector<SubtitleTrack> subtitles;
  // Tags: the creation time as written (ISO 8601, with its zone where the file has one: Apple's
  // com.apple.quicktime.creationdate keeps the local zone, `creation_time` is UTC).
  std::string creation_time;
  std::string make, model;  // com.apple.quicktime.make/model, or make/model tags
  std::optional<double> latitude, longitude, altitude;  // ISO 6709 `location` / `©xyz`
  // Reading.
  uint64_t file_bytes = 0;
  uint64_t read_bytes = 0;              // bytes read in all (the probe, then the hash's rest)
  uint64_t second_read_bytes = 0;       // bytes the hash read again after libavformat read them
  std::optional<Hash128> content_hash;  // with ProbeOptions::hash
};

struct ProbeOptions {
  bool hash = false;                      // read the rest of the file to finish the hash
  uint64_t max_file_bytes = 64ull << 30;  // the file's size
  int64_t probe_bytes = 5'000'000;        // libavformat's probesize
  int64_t analyze_seconds = 5;            // libavformat's analyzeduration
  double max_seconds = 30;                // the whole probe (0: none)
};

Result<VideoProbe> Probe(const std::string& path, const ProbeOptions& options = {});

// The video track that stands for the file: the one Analyze decoded, else the first.
const VideoTrack& MainTrack(const VideoProbe& p);

// The probe as JSON (docs/RECORDS.md, `video`): {container, duration, bit_rate, creation_time,
// make, model, latitude, longitude, altitude, video: [{codec, profile, width, height, rotation,
// sar, dar, fps, nominal_fps, vfr, pix_fmt, bit_depth, color_transfer, color_primaries,
// color_space, hdr, field_order, frames, duration}], audio: [{codec, channels, sample_rate,
// language}], subtitles: [{codec, language}]}; absent values are null. Reading statistics are
// not part of it.
nlohmann::json ProbeJson(const VideoProbe& p);

}  // namespace lumen::video
