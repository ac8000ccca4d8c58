// Private: convert's direct path (see convert_direct.cpp).
#pragma once

#include <cstddef>
#include <string>

#include "lumen/image/chain.h"
#include "lumen/image/convert.h"
#include "resample.h"

namespace lumen {

// Whether an embedded ICC profile asks for a conversion to sRGB: not an sRGB profile (most
// camera JPEGs embed one), nor a grey one, nor one that cannot be read.
bool NeedsSrgbTransform(const void* icc, size_t len);

struct DirectSettings {
  ResampleKernel kernel = ResampleKernel::kLanczos3;  // the preset's
  int effort = 4;                                     // WebP method
  int subsample = -1;  // JPEG chroma: 1 4:2:0, 0 4:4:4, -1 4:4:4 from quality 90 (as libvips)
};

enum class Direct { kNotApplicable, kDone, kFailed, kWriteFailed };

// A JPEG whose chain is a shrink (fit, fill to the centre, resize below 1), then at most
// sharpen, into lossy WebP or JPEG: decoded at M/8 row by row straight into the resampler,
// oriented, sharpened and encoded with libwebp or libjpeg, without libvips (whose pipeline,
// threads and copies cost more than these steps themselves). Writes `tmp`. kNotApplicable
// when the chain or the file needs more (another operation, a profile to convert, CMYK): the
// caller goes through libvips then, nothing written. kFailed (a corrupt file) and kWriteFailed
// (the output could not be written) set *error.
Direct ConvertDirect(const std::string& input, const Chain& chain, const std::string& format,
                     const std::string& tmp, const DirectSettings& settings, ConvertResult* result,
                     std::string* error);

}  // namespace lumen
