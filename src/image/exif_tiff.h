// Private: the two EXIF fields a resized, upright copy of a photo must change, read and written in
// place in the EXIF's TIFF structure (see exif_tiff.cpp).
#pragma once

#include <string>
#include <string_view>

namespace lumen {

// The Orientation tag (1..8) of EXIF data given as TIFF ("II*\0..." or "MM\0*..."); 1 when it
// is missing or the data is malformed.
int ExifOrientation(std::string_view tiff);

// Sets Orientation to 1 (the pixels are upright now) and PixelXDimension / PixelYDimension to
// `width` x `height`, where those tags exist; nothing else changes. Malformed data is left as
// it is.
void ExifSetUpright(std::string* tiff, int width, int height);

}  // namespace lumen
