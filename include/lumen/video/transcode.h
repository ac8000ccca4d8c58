// Video conversion (issue 20): one file in, one file out, in process, in constant memory.
//
// The spec is what `lumen convert --chain/--preset` asked for (video_chain.cpp parses the chain
// language of image/chain.h and the presets; no FFmpeg there). Transcode (in the video module)
// opens the input, detects what the spec depends on (the field order of interlaced video, the
// display aspect, the rotation), turns the operations into one libavfilter graph per stream and
// encodes them. Every other stream the input has is kept: all audio tracks (encoded as the spec
// says, or copied), subtitles (copied, or text ones turned into mov_text for MP4), attachments
// and data streams where the container can hold them, chapters, the file's and each stream's
// metadata (creation time, GPS location, language) and the display rotation. What the container
// cannot take is refused before any work (the video or audio codec) or dropped with a warning in
// the report (a bitmap subtitle in MP4, a font attachment outside Matroska).
#pragma once

#include <climits>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lumen/util/status.h"

namespace lumen::video {

// One operation of a chain, as parsed (checked names and arguments).
struct VideoStep {
  std::string name;
  std::vector<std::string> args;
};

struct TranscodeSpec {
  // Video: an FFmpeg encoder name (libx264, libx265, libsvtav1, libvpx-vp9), or "copy".
  std::string video_codec = "libx264";
  int crf = -1;                  // -1: the encoder's default of this spec
  std::string speed;             // x264/x265 preset (medium), SVT-AV1 preset (8), VP9 cpu-used
  std::string pix_fmt;           // "": the encoder's closest to the source's
  std::string tune;              // x264/x265 tune ("" none)
  std::vector<VideoStep> video;  // pixel and time operations, in order
  // Audio: "aac", "libopus", "copy"; kbps 0: the encoder's default of this spec.
  std::string audio_codec = "aac";
  int audio_kbps = 0;
  std::vector<VideoStep> audio;  // loudnorm, audio-denoise, channels
  bool faststart = false;        // MP4/MOV: the index first, so a browser plays while loading
  double trim_start = 0, trim_duration = 0;  // seconds; duration 0: to the end
  double speed_factor = 1;                   // > 1 faster
  std::string extension = "mp4";  // the output's when the name does not say (without the dot)
  std::string name;               // the preset's name, or "chain"
};

// What the spec's filters depend on, known once the input is open.
enum class FieldOrder { kUnknown, kProgressive, kTopFirst, kBottomFirst };
const char* FieldOrderName(FieldOrder f);

struct SourceFacts {
  int width = 0, height = 0;  // stored frame size
  int sar_num = 1, sar_den = 1;
  int rotation = 0;  // clockwise degrees the display matrix turns the stored frames
  double fps = 0;
  FieldOrder field = FieldOrder::kUnknown;
  int bit_depth = 8;
  double start = 0;  // the stream's first timestamp, seconds (trim counts from it)
};

// The video filter graph text for `spec` on a source with `facts` ("null" when nothing is to
// be done), and the output's stored size. Notes (e.g. "progressive source: not deinterlaced")
// are appended to *notes.
// Where a graph names the motion file of a two-pass stabilisation (replaced by Transcode).
inline constexpr const char* kTransformsToken = "@transforms@";
struct VideoGraph {
  std::string filters;
  // Stabilisation's first pass: the filters before it, then vidstabdetect ("" without it).
  std::string detect;
  int width = 0, height = 0;
  bool rotated = false;  // the display rotation was applied to the pixels (no matrix written)
};
Result<VideoGraph> BuildVideoGraph(const TranscodeSpec& spec, const SourceFacts& facts,
                                   std::vector<std::string>* notes);
// The audio filter text ("anull" when nothing is to be done); `start` as SourceFacts::start.
std::string BuildAudioGraph(const TranscodeSpec& spec, double start);

// `text`: the chain language (image/chain.h) with video operations; Invalid naming the position
// of what is wrong. Starts from `base` (a preset, or the default: H.264 + AAC in MP4).
Result<TranscodeSpec> ParseVideoChain(std::string_view text, const TranscodeSpec& base = {});
// web, archive-hevc, archive-av1, remux, vhs; NotFound otherwise.
Result<TranscodeSpec> VideoPreset(std::string_view name);
bool IsVideoPreset(std::string_view name);
// One line per preset, for --help and errors.
std::string VideoPresetList();

struct TranscodeProgress {
  int64_t frames = 0;         // video frames encoded (or packets copied)
  double position = 0;        // seconds of the output written
  double duration = 0;        // seconds the output will have (0: unknown)
  uint64_t bytes = 0;         // written so far
  double elapsed = 0;         // seconds since the start
  double start_position = 0;  // where this run began (a resumed job: its first segment to do)
};

struct TranscodeOptions {
  int threads = 0;  // 0: all cores
  // Called at most twice a second, and once at the end.
  std::function<void(const TranscodeProgress&)> progress;
  // Where the field order is not flagged, frames looked at by the detector (idet).
  int detect_frames = 240;
  // Known from an earlier segment of the same job: not detected again.
  FieldOrder field = FieldOrder::kUnknown;
  // Resumable jobs. A segment: only the main video stream, encoded for the container
  // `extension`, but written as NUT (it keeps every timestamp exactly); only the frames whose time
  // is in [segment_begin, segment_end) (SegmentPlan's units; INT64_MIN / INT64_MAX: open ends).
  // Decoding starts about a second earlier, so that temporal filters (bwdif, hqdn3d) see the
  // frames before the boundary as an uncut run would.
  bool segment = false;
  int64_t segment_begin = INT64_MIN, segment_end = INT64_MAX;
  // Assembly: the main video stream's packets are taken from these segment files, in order (the
  // input's video is not decoded); every other stream comes from the input as usual.
  std::vector<std::string> video_segments;
};

// Where a long conversion is cut: key frames of the main video stream about `seconds` apart.
// A spec that changes the timeline (trim, speed) or copies the video is not cut (why_not says so).
struct SegmentPlan {
  bool cut = false;
  std::string why_not;
  int tb_num = 1, tb_den = 1;   // the video stream's time base
  std::vector<int64_t> begins;  // segment k starts at begins[k] (k > 0), counted from the start
  double duration = 0;          // seconds
};
Result<SegmentPlan> PlanSegments(const std::string& input, const TranscodeSpec& spec,
                                 double seconds);

struct TranscodeReport {
  TranscodeProgress last;
  std::string video_filters;  // the graph that ran ("copy" for a stream copy)
  std::string audio_filters;
  FieldOrder field = FieldOrder::kUnknown;
  bool field_detected = false;  // by idet (else from the stream's flags)
  int width = 0, height = 0;
  bool upright = false;         // the display rotation was applied to the pixels (graph.rotated)
  int64_t corrupt_packets = 0;  // packets the demuxer or a decoder refused (the run went on)
  std::vector<std::string> streams;   // "0 video h264 -> libx264", "1 audio aac -> copy", ...
  std::vector<std::string> warnings;  // streams dropped and why, notes of the filters
};

// Converts `input` into the open, empty file `out_fd` (written through /proc/self/fd, so the
// caller's exclusive temporary is what is written), as a `extension` container (mp4, mkv, mov,
// webm, ...). Errors name the input; an error writing (a full disk) says so.
Result<TranscodeReport> Transcode(const std::string& input, int out_fd,
                                  const std::string& extension, const TranscodeSpec& spec,
                                  const TranscodeOptions& options);

}  // namespace lumen::video
