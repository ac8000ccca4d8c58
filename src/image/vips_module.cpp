// The libvips module (vips_module.h): libvips' start, its decoder and saver, and the entry
// point. The conversion pipeline is vips_convert.cpp.
#include "vips_module.h"

#include <vips/vips.h>

#include <gmodule.h>

#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "decode_checks.h"
#include "vips_util.h"

namespace lumen {

namespace {
const VipsHost* g_host = nullptr;  // set once by Start, before any other entry point runs

std::string& LastWarning() {
  thread_local std::string last;
  return last;
}
}  // namespace

const VipsHost& Host() {
  return *g_host;
}

std::string TakeLastVipsWarning() {
  return std::exchange(LastWarning(), std::string());
}

namespace {

Status Start(const VipsHost* host, const char* argv0) {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [host, argv0] {
    g_host = host;
    // VIPSHOME is set by the executable (vips_loader.cpp) before this runs: libvips loads no
    // loader module at start, only the HEIF one when a HEIF or AVIF file comes (EnsureHeif).
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
          Host().log_debug(fmt::format("libvips: {}", m));
        },
        nullptr);
    ok = true;
  });
  return ok ? Status::Ok() : Status::Internal("cannot start libvips");
}

void EnsureHeif() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (vips_type_find("VipsOperation", "heifload") != 0) return;  // built in, or loaded
    GModule* m = g_module_open(LUMEN_VIPS_MODULE_DIR "/vips-heif.so",
                               static_cast<GModuleFlags>(G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL));
    if (!m) Host().log_debug(fmt::format("no HEIF/AVIF support in libvips: {}", g_module_error()));
  });
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

Result<DecodedImage> Decode(const uint8_t* data, size_t size, const DecodeTarget& target,
                            const DecodeLimits& limits) {
  try {
    return DecodeVips(data, size, target, limits);
  } catch (const std::exception& e) {  // std::bad_alloc and the like: never past the module
    return Status::Internal(fmt::format("cannot decode: {}", e.what()));
  }
}

Status ReadSize(const uint8_t* data, size_t size, int* width, int* height) {
  VipsPtr header(vips_image_new_from_buffer(data, size, "", nullptr));
  if (!header) return Status::Corrupt(fmt::format("cannot read image header: {}", TakeVipsError()));
  *width = vips_image_get_width(header.get());
  *height = vips_image_get_height(header.get());
  return Status::Ok();
}

Result<std::vector<uint8_t>> Encode(const Image& img, const std::string& suffix) {
  try {
    VipsPtr in(vips_image_new_from_memory(img.pixels.data(), img.pixels.size(), img.width,
                                          img.height, img.channels, VIPS_FORMAT_UCHAR));
    if (!in) return Status::Internal(fmt::format("cannot wrap the image: {}", TakeVipsError()));
    void* buf = nullptr;
    size_t len = 0;
    if (vips_image_write_to_buffer(in.get(), suffix.c_str(), &buf, &len, nullptr) != 0)
      return Status::Internal(fmt::format("cannot save {}: {}", suffix, TakeVipsError()));
    std::vector<uint8_t> out(static_cast<uint8_t*>(buf), static_cast<uint8_t*>(buf) + len);
    g_free(buf);
    return out;
  } catch (const std::exception& e) {
    return Status::Internal(fmt::format("cannot save {}: {}", suffix, e.what()));
  }
}

Result<VipsConvertOutcome> Convert(const VipsConvertRequest& request) {
  try {
    return ConvertWithVips(request);
  } catch (const std::exception& e) {  // ConvertWithVips catches its own; this is the backstop
    return Status::Internal(fmt::format("{}: {}", *request.input, e.what()));
  }
}

constexpr VipsModuleApi kApi = {
    LUMEN_VIPS_ABI_ID,
    sizeof(VipsHost),
    sizeof(VipsConvertRequest),
    sizeof(VipsConvertOutcome),
    sizeof(DecodedImage),
    Start,
    EnsureHeif,
    Decode,
    ReadSize,
    Convert,
    Encode,
};

}  // namespace
}  // namespace lumen

extern "C" __attribute__((visibility("default"))) const lumen::VipsModuleApi*
lumen_vips_module_v1() {
  return &lumen::kApi;
}
