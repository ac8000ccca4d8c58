#include "lumen/image/decode.h"

#include <turbojpeg.h>
#include <vips/vips.h>

#include <gmodule.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "jpeg_dc.h"
#include "lumen/util/log.h"
#include "vips_util.h"

namespace lumen {

namespace {
std::string& LastWarning() {
  thread_local std::string last;
  return last;
}
}  // namespace

std::string TakeLastVipsWarning() {
  return std::exchange(LastWarning(), std::string());
}

Status InitImageLibraries(const char* argv0) {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [argv0] {
    // libvips loads every loader module it finds at start (ImageMagick, poppler, OpenSlide,
    // JPEG XL, HEIF), and with them ~7 MB of libraries' pages into every lumen process, also one
    // that only converts a JPEG. lumen reads only HEIF/AVIF through a module: that one is loaded
    // when a HEIF or AVIF file first comes (EnsureHeifSupport), the others never. A VIPSHOME
    // without modules (unless the user set one) is how libvips is told to skip them.
    if (!std::getenv("VIPSHOME")) ::setenv("VIPSHOME", "/nonexistent/lumen-no-vips-modules", 0);
    if (VIPS_INIT(argv0 ? argv0 : "lumen") != 0) return;
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_concurrency_set(1);
    // libvips reports per-tile warnings through GLib's log; lumen reports the failure itself,
    // once, with the file name. Route them to the debug log instead of raw stderr, marked as
    // libvips' words (with -v they are not lumen's own lines).
    g_log_set_handler(
        "VIPS",
        static_cast<GLogLevelFlags>(G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO |
                                    G_LOG_LEVEL_DEBUG),
        [](const gchar*, GLogLevelFlags, const gchar* msg, gpointer) {
          std::string_view m = msg ? msg : "";
          while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.remove_suffix(1);
          if (m.empty() || m == LastWarning()) return;  // once, not once per row
          LastWarning() = m;
          log::Debug(fmt::format("libvips: {}", m));
        },
        nullptr);
    ok = true;
  });
  return ok ? Status::Ok() : Status::Internal("cannot start libvips");
}

void EnsureHeifSupport() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (vips_type_find("VipsOperation", "heifload") != 0) return;  // built in, or loaded
    GModule* m = g_module_open(LUMEN_VIPS_MODULE_DIR "/vips-heif.so",
                               static_cast<GModuleFlags>(G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL));
    if (!m) log::Debug(fmt::format("no HEIF/AVIF support in libvips: {}", g_module_error()));
  });
}

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

Status CheckPixels(int w, int h, const DecodeLimits& limits) {
  if (w <= 0 || h <= 0) return Status::Corrupt(fmt::format("invalid image size {}x{}", w, h));
  uint64_t px = uint64_t(w) * uint64_t(h);
  if (px > limits.max_pixels)
    return Status::TooLarge(
        fmt::format("image is {}x{} ({:.0f} MP), above the pixel limit of {:.0f} MP", w, h,
                    px / 1e6, limits.max_pixels / 1e6));
  return Status::Ok();
}

// Smallest scale s in (0, 1] such that the long edge >= min_long and the short edge >= min_short.
double WantedScale(int w, int h, const DecodeTarget& t) {
  int lo = std::min(w, h), hi = std::max(w, h);
  double s = std::max(double(t.min_long_edge) / hi, double(t.min_short_edge) / lo);
  return std::min(1.0, s);
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

Result<DecodedImage> DecodeVips(const uint8_t* data, size_t size, const DecodeTarget& target,
                                const DecodeLimits& limits);

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
  if (cs == TJCS_CMYK || cs == TJCS_YCCK) return DecodeVips(data, size, target, limits);

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

std::string InterpretationName(VipsInterpretation i) {
  switch (i) {
    case VIPS_INTERPRETATION_sRGB:
      return "srgb";
    case VIPS_INTERPRETATION_B_W:
      return "grey";
    case VIPS_INTERPRETATION_CMYK:
      return "cmyk";
    case VIPS_INTERPRETATION_RGB16:
      return "rgb16";
    case VIPS_INTERPRETATION_GREY16:
      return "grey16";
    case VIPS_INTERPRETATION_scRGB:
      return "scrgb";
    case VIPS_INTERPRETATION_LAB:
      return "lab";
    case VIPS_INTERPRETATION_MULTIBAND:
      return "multiband";
    default:
      return vips_enum_nick(VIPS_TYPE_INTERPRETATION, i);
  }
}

Result<DecodedImage> DecodeVips(const uint8_t* data, size_t size, const DecodeTarget& target,
                                const DecodeLimits& limits) {
  VipsPtr header(
      vips_image_new_from_buffer(data, size, "", "access", VIPS_ACCESS_SEQUENTIAL, nullptr));
  if (!header) return Status::Corrupt(fmt::format("cannot read image header: {}", TakeVipsError()));
  int w = vips_image_get_width(header.get()), h = vips_image_get_height(header.get());
  LUMEN_RETURN_IF_ERROR(CheckPixels(w, h, limits));
  DecodedImage out;
  out.width = w;
  out.height = h;
  out.colorspace = InterpretationName(vips_image_get_interpretation(header.get()));
  out.has_alpha = vips_image_hasalpha(header.get());
  out.decoder = "vips";
  header.reset();

  double s = WantedScale(w, h, target);
  int bw = std::max(1, static_cast<int>(std::ceil(w * s))),
      bh = std::max(1, static_cast<int>(std::ceil(h * s)));
  VipsImage* raw = nullptr;
  if (vips_thumbnail_buffer(const_cast<uint8_t*>(data), size, &raw, bw, "height", bh, "no_rotate",
                            TRUE, "size", VIPS_SIZE_DOWN, "option_string", "fail=true",
                            nullptr) != 0)
    return Status::Corrupt(fmt::format("cannot decode: {}", TakeVipsError()));
  VipsPtr img(raw);
  if (vips_image_hasalpha(img.get())) {
    VipsImage* t = nullptr;
    VipsArrayDouble* white = vips_array_double_newv(1, 255.0);
    int rc = vips_flatten(img.get(), &t, "background", white, nullptr);
    vips_area_unref(VIPS_AREA(white));
    if (rc != 0) return Status::Corrupt(fmt::format("cannot flatten alpha: {}", TakeVipsError()));
    img.reset(t);
  }
  if (vips_image_get_interpretation(img.get()) != VIPS_INTERPRETATION_sRGB || img->Bands != 3) {
    VipsImage* t = nullptr;
    if (vips_colourspace(img.get(), &t, VIPS_INTERPRETATION_sRGB, nullptr) != 0)
      return Status::Corrupt(fmt::format("cannot convert to sRGB: {}", TakeVipsError()));
    img.reset(t);
  }
  if (img->BandFmt != VIPS_FORMAT_UCHAR) {
    VipsImage* t = nullptr;
    if (vips_cast_uchar(img.get(), &t, nullptr) != 0)
      return Status::Corrupt(fmt::format("cannot convert to 8 bits: {}", TakeVipsError()));
    img.reset(t);
  }
  if (img->Bands != 3) {
    VipsImage* t = nullptr;
    if (vips_extract_band(img.get(), &t, 0, "n", 3, nullptr) != 0)
      return Status::Corrupt(fmt::format("unexpected band layout: {}", TakeVipsError()));
    img.reset(t);
  }
  size_t len = 0;
  void* mem = vips_image_write_to_memory(img.get(), &len);
  if (!mem) return Status::Corrupt(fmt::format("cannot decode: {}", TakeVipsError()));
  int ow = vips_image_get_width(img.get()), oh = vips_image_get_height(img.get());
  out.rgb = Image(ow, oh, 3);
  if (len != out.rgb.pixels.size()) {
    g_free(mem);
    return Status::Internal("decoded buffer has an unexpected size");
  }
  std::memcpy(out.rgb.pixels.data(), mem, len);
  g_free(mem);
  return out;
}

}  // namespace

Result<DecodedImage> DecodeReduced(const uint8_t* data, size_t size, Format format,
                                   const DecodeTarget& target, const DecodeLimits& limits) {
  if (size == 0) return Status::Corrupt("empty file");
  if (format == Format::kJpeg) return DecodeJpeg(data, size, target, limits);
  if (format == Format::kUnknown) return Status::Unsupported("not a supported image format");
  if (format == Format::kHeif || format == Format::kAvif) EnsureHeifSupport();
  return DecodeVips(data, size, target, limits);
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
  if (format == Format::kHeif || format == Format::kAvif) EnsureHeifSupport();
  VipsPtr header(vips_image_new_from_buffer(data, size, "", nullptr));
  if (!header) return Status::Corrupt(fmt::format("cannot read image header: {}", TakeVipsError()));
  *width = vips_image_get_width(header.get());
  *height = vips_image_get_height(header.get());
  return Status::Ok();
}

}  // namespace lumen
