// Image format detection from the first bytes of a file (never from its name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lumen {

enum class Format { kUnknown = 0, kJpeg, kPng, kWebp, kTiff, kHeif, kAvif, kGif };

// What an asset is (../shared/DESIGN.md, "Media kinds"): decided from the content, never the name.
// The catalog stores the name ("photo", "document", "video"); an unknown name reads as a photo,
// the kind of every asset an older lumen wrote.
enum class MediaKind { kPhoto = 0, kDocument, kVideo };
const char* MediaKindName(MediaKind k);
MediaKind ParseMediaKind(std::string_view name);

// "jpeg", "png", "webp", "tiff", "heif", "avif", "gif", "unknown".
const char* FormatName(Format f);

// Bytes needed to recognise every supported format (an MPEG transport stream's second packet
// starts at 188, an M2TS one's sync byte is at 196).
inline constexpr size_t kMagicBytes = 200;

// Detects the format from the file's first bytes (size may be less than kMagicBytes).
Format DetectFormat(const uint8_t* data, size_t size);

// A short description of what non-image content looks like ("empty", "text", "PDF document",
// "MP4/QuickTime video", "ZIP archive", "binary data"), for error messages and skip reasons.
const char* DescribeNonImage(const uint8_t* data, size_t size);

// True when the first bytes are those of a container that holds video (ISO media that is not
// HEIF/AVIF, QuickTime, Matroska/WebM, AVI, MPEG program and transport streams, FLV, ASF/WMV,
// Ogg, DV). Audio-only files share some of these: the demuxer decides.
bool MaybeVideo(const uint8_t* data, size_t size);

// True when the file name's extension is a video container's (.mp4, .mov, .mkv, .avi...): used,
// like HasImageExtension, only to word a skip or a failure.
bool HasVideoExtension(std::string_view name);

// True when the file name's extension claims an image format (used only to decide whether a
// non-image is an error worth reporting or a file to skip quietly).
bool HasImageExtension(std::string_view name);

}  // namespace lumen
