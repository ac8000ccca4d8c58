// Image format detection from the first bytes of a file (never from its name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lumen {

enum class Format { kUnknown = 0, kJpeg, kPng, kWebp, kTiff, kHeif, kAvif, kGif };

// What an asset is (../shared/DESIGN.md, "Media kinds"): decided from the content, never the name.
// The catalog stores the name ("photo", "document"); an unknown name reads as a photo, the kind
// of every asset an older lumen wrote.
enum class MediaKind { kPhoto = 0, kDocument };
const char* MediaKindName(MediaKind k);
MediaKind ParseMediaKind(std::string_view name);

// "jpeg", "png", "webp", "tiff", "heif", "avif", "gif", "unknown".
const char* FormatName(Format f);

// Bytes needed to recognise every supported format.
inline constexpr size_t kMagicBytes = 32;

// Detects the format from the file's first bytes (size may be less than kMagicBytes).
Format DetectFormat(const uint8_t* data, size_t size);

// A short description of what non-image content looks like ("empty", "text", "PDF document",
// "MP4/QuickTime video", "ZIP archive", "binary data"), for error messages and skip reasons.
const char* DescribeNonImage(const uint8_t* data, size_t size);

// True when the file name's extension claims an image format (used only to decide whether a
// non-image is an error worth reporting or a file to skip quietly).
bool HasImageExtension(std::string_view name);

}  // namespace lumen
