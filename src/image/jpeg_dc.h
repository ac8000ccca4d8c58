// Private: fast 1/8-scale decode of progressive JPEGs from their DC scans (see jpeg_dc.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "lumen/image/image.h"

namespace lumen {

enum class DcDecode { kDone, kNotApplicable, kFailed };

// kNotApplicable: not progressive (or CMYK); decode another way. kFailed: *error says why.
// More than `max_scans` scans (0: no limit) fail (kFailed, the reason in *error).
DcDecode DecodeProgressiveDc(const uint8_t* data, size_t size, Image* out, std::string* error,
                             int max_scans = 0);

}  // namespace lumen
