#include "lumen/image/decode.h"

#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "decode_checks.h"
#include "jpeg_dc.h"
#include "vips_loader.h"

namespace lumen {

namespace {

struct TjDeleter {
  void operator()(void* h) const {
    if (h) tjDestroy(h);
  }
};

std::unique_ptr<void, TjDeleter>& ThreadHandle() {
  thread_local std::unique_ptr<void, TjDeleter> handle(tjInitDecompress());
  return handle;
}

tjhandle ThreadDecompressor() {
  return ThreadHandle().get();
}

// A TurboJPEG handle keeps error state (the warning flag, the message) from a failed call into
// the next one: after any failure, replace it so that one bad file cannot fail the next.
void ResetThreadDecompressor() {
  ThreadHandle().reset(tjInitDecompress());
}

const char* TjColorspace(int cs) {
  switch (cs) {
    case TJCS_RGB:
    case TJCS_YCbCr:
      return "srgb";
    case TJCS_GRAY:
      return "grey";
    case TJCS_CMYK:
    case TJCS_YCCK:
      return "cmyk";
  }
  return "unknown";
}

// Every format but JPEG (and CMYK JPEG, which needs colour management), through the libvips
// module.
Result<DecodedImage> DecodeVips(const uint8_t* data, size_t size, Format format,
                                const DecodeTarget& target, const DecodeLimits& limits) {
  auto api = VipsModule();
  if (!api.ok()) return api.status();
  if (format == Format::kHeif || format == Format::kAvif) (*api)->ensure_heif();
  return (*api)->decode(data, size, target, limits);
}

Result<DecodedImage> DecodeJpeg(const uint8_t* data, size_t size, const DecodeTarget& target,
                                const DecodeLimits& limits) {
  tjhandle h = ThreadDecompressor();
  if (!h) return Status::Internal("cannot create a TurboJPEG decompressor");
  int w = 0, hgt = 0, subsamp = 0, cs = 0;
  if (tjDecompressHeader3(h, data, static_cast<unsigned long>(size), &w, &hgt, &subsamp, &cs) !=
      0) {
    Status st = Status::Corrupt(fmt::format("not a valid JPEG header: {}", tjGetErrorStr2(h)));
    ResetThreadDecompressor();
    return st;
  }
  LUMEN_RETURN_IF_ERROR(CheckPixels(w, hgt, limits));
  // CMYK/YCCK JPEGs need colour management: libvips does that.
  if (cs == TJCS_CMYK || cs == TJCS_YCCK)
    return DecodeVips(data, size, Format::kJpeg, target, limits);

  double want = WantedScale(w, hgt, target);
  int n = 0;
  tjscalingfactor* factors = tjGetScalingFactors(&n);
  tjscalingfactor best{1, 1};
  double best_v = 1.0;
  for (int i = 0; i < n; ++i) {
    double v = double(factors[i].num) / factors[i].denom;
    if (v > 1.0) continue;
    // TJSCALED rounds up, so any factor >= the wanted scale meets both edge minimums.
    if (v >= want - 1e-9 && v < best_v) {
      best = factors[i];
      best_v = v;
    }
  }
  int sw = TJSCALED(w, best), sh = TJSCALED(hgt, best);
  DecodedImage out;
  out.width = w;
  out.height = hgt;
  out.colorspace = TjColorspace(cs);
  if (best.num == 1 && best.denom == 8) {
    std::string error;
    DcDecode dc = DecodeProgressiveDc(data, size, &out.rgb, &error, limits.max_scans);
    if (dc == DcDecode::kFailed) return Status::Corrupt(error);
    if (dc == DcDecode::kDone) {
      out.decoder = "libjpeg-dc";
      return out;
    }
  }
  out.decoder = "turbojpeg";
  out.rgb = Image(sw, sh, 3);
  int rc = tjDecompress2(h, data, static_cast<unsigned long>(size), out.rgb.pixels.data(), sw, 0,
                         sh, TJPF_RGB, TJFLAG_FASTDCT | TJFLAG_LIMITSCANS);
  if (rc != 0) {
    std::string msg = tjGetErrorStr2(h);
    bool fatal = tjGetErrorCode(h) == TJERR_FATAL;
    ResetThreadDecompressor();
    // TJFLAG_LIMITSCANS' refusal ("Progressive JPEG image has more than 500 scans").
    if (msg.find("scans") != std::string::npos)
      return Status::TooLarge(fmt::format("{} (the scan limit)", msg));
    if (fatal) return Status::Corrupt(fmt::format("corrupt JPEG data: {}", msg));
    // Warnings: a truncated file is an error (the bottom of the picture is missing); the
    // harmless ones ("extraneous bytes before marker") are accepted.
    if (msg.find("Premature end") != std::string::npos)
      return Status::Corrupt(fmt::format("truncated JPEG: {}", msg));
  }
  return out;
}

}  // namespace

Result<DecodedImage> DecodeReduced(const uint8_t* data, size_t size, Format format,
                                   const DecodeTarget& target, const DecodeLimits& limits) {
  if (size == 0) return Status::Corrupt("empty file");
  if (format == Format::kJpeg) return DecodeJpeg(data, size, target, limits);
  if (format == Format::kUnknown) return Status::Unsupported("not a supported image format");
  return DecodeVips(data, size, format, target, limits);
}

Status ReadImageSize(const uint8_t* data, size_t size, Format format, int* width, int* height) {
  if (format == Format::kJpeg) {
    int subsamp = 0, cs = 0;
    tjhandle h = ThreadDecompressor();
    if (tjDecompressHeader3(h, data, static_cast<unsigned long>(size), width, height, &subsamp,
                            &cs) != 0) {
      Status st = Status::Corrupt(fmt::format("not a valid JPEG header: {}", tjGetErrorStr2(h)));
      ResetThreadDecompressor();
      return st;
    }
    return Status::Ok();
  }
  auto api = VipsModule();
  if (!api.ok()) return api.status();
  if (format == Format::kHeif || format == Format::kAvif) (*api)->ensure_heif();
  return (*api)->read_size(data, size, width, height);
}

}  // namespace lumen
