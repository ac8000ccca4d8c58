// The libvips module's conversion (vips_module.h): ConvertFile's pipeline for every chain and
// format that the direct path (convert_direct.h) does not take.
#include <glib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vips/vips8>

#include <fmt/format.h>

#include "lumen/image/chain.h"
#include "lumen/image/image.h"
#include "unsharp.h"
#include "vips_module.h"
#include "vips_util.h"

namespace lumen {
namespace {
using vips::VError;
using vips::VImage;

constexpr auto Num = ArgNumber;
constexpr auto Size = ArgSize;
VipsInteresting Interesting(const std::string& s) {
  if (s == "attention") return VIPS_INTERESTING_ATTENTION;
  if (s == "entropy") return VIPS_INTERESTING_ENTROPY;
  return VIPS_INTERESTING_CENTRE;
}
VipsKernel Kernel(const std::string& s) {
  if (s == "lanczos2") return VIPS_KERNEL_LANCZOS2;
  if (s == "cubic") return VIPS_KERNEL_CUBIC;
  if (s == "linear") return VIPS_KERNEL_LINEAR;
  if (s == "nearest") return VIPS_KERNEL_NEAREST;
  return VIPS_KERNEL_LANCZOS3;
}
std::vector<double> Colour(const std::string& s) {
  std::vector<double> rgb(3, 0.0);  // black, and anything ParseChain would have refused
  if (!ParseColour(s, &rgb)) rgb.assign(3, 0.0);
  return rgb;
}

// The image's colour bands and its alpha (if any), as separate images.
void SplitAlpha(const VImage& img, VImage* colour, VImage* alpha, bool* has_alpha) {
  *has_alpha = img.has_alpha();
  if (*has_alpha) {
    *colour = img.extract_band(0, VImage::option()->set("n", img.bands() - 1));
    *alpha = img.extract_band(img.bands() - 1);
  } else {
    *colour = img;
  }
}
VImage JoinAlpha(const VImage& colour, const VImage& alpha, bool has_alpha) {
  return has_alpha ? colour.bandjoin(alpha) : colour;
}
// A per-band transfer function applied through a LUT (colour bands only).
template <typename F>
VImage ApplyCurve(const VImage& img, F f) {
  VImage lut = VImage::identity();
  std::vector<double> v(256);
  for (int i = 0; i < 256; ++i) v[size_t(i)] = std::clamp(f(double(i)), 0.0, 255.0);
  lut = VImage::new_matrix(256, 1, v.data(), 256).cast(VIPS_FORMAT_UCHAR);
  VImage colour, alpha;
  bool has_alpha;
  SplitAlpha(img, &colour, &alpha, &has_alpha);
  return JoinAlpha(colour.maplut(lut), alpha, has_alpha);
}

// Unsharp mask on the colour bands: out = in + amount * (in - gauss(in, sigma)) where the
// difference is at least threshold / 2 of the range, the classic definition (ImageMagick's
// -unsharp, with its default threshold 0.05; Photoshop's). vips_sharpen is another filter (on L* in
// CIELAB, through two colour conversions: ~170 ms on a 1600x900 photo here) and libvips' 2-D
// integer convolution of a 5x5 kernel misses its vector path (~100 ms); so an image of up to
// kUnsharpInMemory pixels (what a web-size chain has after fit) is done here in integer
// arithmetic, separable, rows through a ring buffer: ~20 ms. Larger ones stream through a
// floating-point gaussblur and arithmetic (a few times slower, but memory stays flat). Both
// match the formula computed in floating point (test_convert.py).
constexpr int64_t kUnsharpInMemory = 8'000'000;

VImage UnsharpInMemory(const VImage& in, double sigma, double amount, double threshold) {
  const VImage src = in.copy_memory();
  // In place when the copy is ours (no second 5 MB buffer for a web-size photo).
  VImage out = src;
  if (src.get_image() == in.get_image()) {  // in memory already, shared with the caller
    out = VImage(vips_image_new_memory());
    vips_image_pipelinev(out.get_image(), VIPS_DEMAND_STYLE_THINSTRIP, src.get_image(), nullptr);
    if (vips_image_write_prepare(out.get_image()) != 0) throw vips::VError();
  }
  UnsharpMask8(static_cast<const uint8_t*>(src.data()),
               reinterpret_cast<uint8_t*>(VIPS_IMAGE_ADDR(out.get_image(), 0, 0)), src.width(),
               src.height(), src.bands(), sigma, amount, threshold);
  return out;
}

VImage UnsharpMask(const VImage& img, double sigma, double amount, double threshold) {
  if (amount <= 0) return img;
  VImage colour, alpha;
  bool has_alpha;
  SplitAlpha(img, &colour, &alpha, &has_alpha);
  if (colour.format() == VIPS_FORMAT_UCHAR && sigma <= 3 &&
      int64_t(colour.width()) * colour.height() <= kUnsharpInMemory) {
    // The colour bands are read whole into memory first, the alpha band afterwards: from a
    // sequential (streamed) source that second pass would start at the top again ("out of order
    // read"), so an image with alpha is taken into memory once and split there.
    if (has_alpha) SplitAlpha(img.copy_memory(), &colour, &alpha, &has_alpha);
    return JoinAlpha(UnsharpInMemory(colour, sigma, amount, threshold), alpha, has_alpha);
  }
  VImage blurred = colour.gaussblur(sigma, VImage::option()
                                               ->set("min_ampl", 0.05)  // as above
                                               ->set("precision", VIPS_PRECISION_FLOAT));
  const VImage d = colour - blurred;
  VImage out = (colour + d * amount).rint();
  // ImageMagick's rule: where the difference is under half the threshold, the sample stays.
  if (threshold > 0) out = (d.abs() * 2 < threshold * 255).ifthenelse(colour, out);
  return JoinAlpha(out.cast(colour.format()), alpha, has_alpha);
}

void Place(const std::string& pos, int W, int H, int w, int h, int* x, int* y) {
  const int m = std::max(4, std::min(W, H) / 50);  // margin
  *x = pos == "north-west" || pos == "south-west" ? m : pos == "centre" ? (W - w) / 2 : W - w - m;
  *y = pos == "north-west" || pos == "north-east" ? m : pos == "centre" ? (H - h) / 2 : H - h - m;
}

// `over` (RGBA) composited onto `img` at `pos` with `opacity`.
VImage Stamp(const VImage& img, VImage over, const std::string& pos, double opacity) {
  if (!over.has_alpha()) over = over.bandjoin(255);
  if (over.bands() == 2) over = over.extract_band(0).bandjoin({over.extract_band(0), over});
  VImage a = over.extract_band(3) * opacity;
  over = over.extract_band(0, VImage::option()->set("n", 3))
             .bandjoin(a.cast(VIPS_FORMAT_UCHAR))
             .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
  int x, y;
  Place(pos, img.width(), img.height(), over.width(), over.height(), &x, &y);
  VImage base = img.bands() < 3 ? img.colourspace(VIPS_INTERPRETATION_sRGB) : img;
  return base.composite2(over, VIPS_BLEND_MODE_OVER, VImage::option()->set("x", x)->set("y", y));
}

VImage Apply(VImage img, const ChainOp& op, const std::string& input, VipsKernel kernel) {
  const auto& a = op.args;
  const std::string& n = op.name;
  if (n == "fit" || n == "fill") {
    int w, h;
    Size(a[0], &w, &h);
    auto o = VImage::option()->set("height", h)->set("size", VIPS_SIZE_DOWN);
    if (n == "fill") o->set("crop", Interesting(a.size() > 1 ? a[1] : "centre"));
    return img.thumbnail_image(w, o);
  }
  if (n == "resize")
    return img.resize(Num(a[0]),
                      VImage::option()->set("kernel", a.size() > 1 ? Kernel(a[1]) : kernel));
  if (n == "crop") {
    if (a.size() == 4) {
      const int x = int(Num(a[0])), y = int(Num(a[1])), w = int(Num(a[2])), h = int(Num(a[3]));
      if (w < 1 || h < 1 || x + w > img.width() || y + h > img.height())
        throw VError(fmt::format("crop {}:{}:{}:{} is outside the {}x{} image", x, y, w, h,
                                 img.width(), img.height()));
      return img.extract_area(x, y, w, h);
    }
    int w, h;
    Size(a[0], &w, &h);
    return img.smartcrop(
        std::min(w, img.width()), std::min(h, img.height()),
        VImage::option()->set("interesting", Interesting(a.size() > 1 ? a[1] : "attention")));
  }
  if (n == "rotate") {
    const double d = std::fmod(Num(a[0]) + 360.0, 360.0);
    if (d == 0) return img;
    if (d == 90) return img.rot(VIPS_ANGLE_D90);
    if (d == 180) return img.rot(VIPS_ANGLE_D180);
    if (d == 270) return img.rot(VIPS_ANGLE_D270);
    return img.rotate(d);
  }
  if (n == "autorotate") return img.autorot();
  if (n == "flip")
    return img.flip(a[0] == "h" ? VIPS_DIRECTION_HORIZONTAL : VIPS_DIRECTION_VERTICAL);
  if (n == "blur") return img.gaussblur(Num(a[0]));
  if (n == "sharpen")
    return UnsharpMask(img, a.empty() ? 1.0 : Num(a[0]), a.size() > 1 ? Num(a[1]) : 1.0,
                       a.size() > 2 ? Num(a[2]) : kUnsharpThreshold);
  if (n == "brightness") {
    const double f = Num(a[0]);
    return ApplyCurve(img, [f](double v) { return v * f; });
  }
  if (n == "contrast") {
    const double f = Num(a[0]);
    return ApplyCurve(img, [f](double v) { return (v - 128) * f + 128; });
  }
  if (n == "gamma") {
    const double g = Num(a[0]);
    return ApplyCurve(img, [g](double v) { return 255.0 * std::pow(v / 255.0, 1.0 / g); });
  }
  if (n == "saturation") {
    VImage colour, alpha;
    bool has_alpha;
    SplitAlpha(img, &colour, &alpha, &has_alpha);
    if (colour.bands() < 3) return img;
    VImage lch = colour.colourspace(VIPS_INTERPRETATION_LCH);
    lch = lch * std::vector<double>{1, Num(a[0]), 1};
    return JoinAlpha(lch.colourspace(VIPS_INTERPRETATION_sRGB).cast(VIPS_FORMAT_UCHAR), alpha,
                     has_alpha);
  }
  if (n == "grayscale") return img.colourspace(VIPS_INTERPRETATION_B_W);
  if (n == "edges") {
    VImage g = img.colourspace(VIPS_INTERPRETATION_B_W).extract_band(0);
    // Canny's gradient magnitude (after non-maximum suppression) is small: x16 makes the edges
    // of a photo white on black.
    if (!a.empty() && a[0] == "canny") return (g.canny() * 16).cast(VIPS_FORMAT_UCHAR);
    return g.sobel().cast(VIPS_FORMAT_UCHAR);
  }
  if (n == "border") {
    const int px = int(Num(a[0]));
    std::vector<double> bg = Colour(a.size() > 1 ? a[1] : "black");
    bg.resize(size_t(img.bands()), img.has_alpha() ? 255 : bg.empty() ? 0 : bg[0]);
    return img.embed(
        px, px, img.width() + 2 * px, img.height() + 2 * px,
        VImage::option()->set("extend", VIPS_EXTEND_BACKGROUND)->set("background", bg));
  }
  if (n == "watermark") {
    const int size = a.size() > 1 ? int(Num(a[1])) : std::max(12, img.width() / 30);
    // libvips renders Pango markup: the text is escaped so that "Tom & Jerry <b>" is printed as
    // written, never read as markup.
    std::unique_ptr<gchar, decltype(&g_free)> literal(g_markup_escape_text(a[0].c_str(), -1),
                                                      &g_free);
    VImage mask = VImage::text(
        literal.get(),
        VImage::option()
            ->set("font", fmt::format("{} {}", a.size() > 4 ? a[4] : "sans", size).c_str())
            ->set("dpi", 72));
    VImage rgba = mask.new_from_image({255, 255, 255}).cast(VIPS_FORMAT_UCHAR).bandjoin(mask);
    return Stamp(img, rgba, a.size() > 2 ? a[2] : "south-east", a.size() > 3 ? Num(a[3]) : 0.5);
  }
  if (n == "overlay") {
    std::string path = a[0];
    if (!std::filesystem::path(path).is_absolute())
      path = (std::filesystem::path(input).parent_path() / path).string();
    // The overlay is an input too (a recipe may name it): the same type, size, scan and pixel
    // limits as the photo, checked before libvips reads it.
    const DecodeLimits limits;
    if (Status st = Host().check_overlay(path, limits); !st.ok()) throw VError(st.message());
    VImage over = VImage::new_from_file(path.c_str());
    if (uint64_t(over.width()) * uint64_t(over.height()) > limits.max_pixels)
      throw vips::VError(fmt::format("overlay {}: {}x{}, above the pixel limit", path, over.width(),
                                     over.height()));
    over = over.colourspace(VIPS_INTERPRETATION_sRGB);
    return Stamp(img, over, a.size() > 1 ? a[1] : "south-east", a.size() > 2 ? Num(a[2]) : 1.0);
  }
  return img;  // strip, keep, lossless, effort: options of the output
}

// Whether the image's embedded ICC profile asks for a conversion to sRGB (convert_direct.h).
bool NeedsSrgbTransform(const VImage& img) {
  if (!img.get_typeof(VIPS_META_ICC_NAME)) return false;
  size_t len = 0;
  const void* data = img.get_blob(VIPS_META_ICC_NAME, &len);
  return Host().needs_srgb(data, len);
}

// The size of `head` once upright (EXIF orientation applied); true if that swaps width and height.
bool UprightSize(const VImage& head, int* w, int* h) {
  const bool swap = vips_image_get_orientation_swap(head.get_image());
  *w = swap ? head.height() : head.width();
  *h = swap ? head.width() : head.height();
  return swap;
}

VipsKernel ToVipsKernel(ResampleKernel k) {
  switch (k) {
    case ResampleKernel::kNearest:
      return VIPS_KERNEL_NEAREST;
    case ResampleKernel::kLinear:
      return VIPS_KERNEL_LINEAR;
    case ResampleKernel::kCubic:
      return VIPS_KERNEL_CUBIC;
    case ResampleKernel::kMitchell:
      return VIPS_KERNEL_MITCHELL;
    case ResampleKernel::kLanczos2:
      return VIPS_KERNEL_LANCZOS2;
    case ResampleKernel::kLanczos3:
      break;
  }
  return VIPS_KERNEL_LANCZOS3;
}

ResampleKernel ToResampleKernel(VipsKernel k) {
  switch (k) {
    case VIPS_KERNEL_NEAREST:
      return ResampleKernel::kNearest;
    case VIPS_KERNEL_LINEAR:
      return ResampleKernel::kLinear;
    case VIPS_KERNEL_CUBIC:
      return ResampleKernel::kCubic;
    case VIPS_KERNEL_MITCHELL:
      return ResampleKernel::kMitchell;
    case VIPS_KERNEL_LANCZOS2:
      return ResampleKernel::kLanczos2;
    default:
      return ResampleKernel::kLanczos3;
  }
}

// The lead operation (fit, fill or resize below 1, to the box `tw` x `th`) done on a JPEG by the
// direct path's M/8 decode and resample (convert_direct.h, DecodeShrunk), then handed to libvips
// upright, metadata kept. False where that saves nothing (no M/8 below 8/8) or the decoder
// refuses the file: vips_thumbnail does it then (and reports a corrupt file in its words).
bool ShrinkJpeg(const VImage& head, const std::string& input, const ChainOp& lead, int tw, int th,
                VipsKernel kernel, const VipsConvertRequest& req, VImage* out) {
  Image pixels;
  if (!Host().shrink_jpeg(input, lead, head.width(), head.height(),
                          vips_image_get_orientation(head.get_image()), ToResampleKernel(kernel),
                          req.limits.max_scans, req.deadline_ns, &pixels))
    return false;
  VImage img(vips_image_new_from_memory_copy(pixels.pixels.data(), pixels.pixels.size(),
                                             pixels.width, pixels.height, pixels.channels,
                                             VIPS_FORMAT_UCHAR));
  // The metadata of the file (the decode has pixels only); the pixels are upright.
  for (const char* name :
       {VIPS_META_EXIF_NAME, VIPS_META_XMP_NAME, VIPS_META_IPTC_NAME, VIPS_META_ICC_NAME}) {
    if (!head.get_typeof(name)) continue;
    size_t len = 0;
    const void* data = head.get_blob(name, &len);
    vips_image_set_blob_copy(img.get_image(), name, data, len);
  }
  img.set(VIPS_META_ORIENTATION, 1);
  if (lead.name == "fill") {
    const std::string how = lead.args.size() > 1 ? lead.args[1] : "centre";
    const int cw = std::min(tw, img.width()), ch = std::min(th, img.height());
    img = how == "centre"
              ? img.extract_area((img.width() - cw) / 2, (img.height() - ch) / 2, cw, ch)
              : img.smartcrop(cw, ch, VImage::option()->set("interesting", Interesting(how)));
  }
  *out = img;
  return true;
}

// Operations that are options of the output, not steps on the pixels.
bool IsOption(const std::string& n) {
  return n == "strip" || n == "keep" || n == "lossless" || n == "effort" || n == "autorotate";
}

// libvips' side of the limits: an `eval` handler on the image being written kills the
// computation once the deadline has passed or a signal asked lumen to stop.
struct EvalGuard {
  uint64_t deadline_ns = 0;  // 0: none
  const char* why = nullptr;
};
void OnEval(VipsImage* image, VipsProgress*, void* data) {
  auto* g = static_cast<EvalGuard*>(data);
  if (!g->why && Host().interrupted()) g->why = "stopped by a signal";
  if (!g->why && g->deadline_ns > 0 && Host().now_ns() > g->deadline_ns)
    g->why = "took longer than the time limit";
  if (g->why) vips_image_set_kill(image, TRUE);
}
Status LimitStatus(const std::string& input, const std::string& why) {
  if (Host().interrupted())
    return Status::Interrupted(fmt::format("{}: stopped by a signal", input));
  return Status::TooLarge(fmt::format("{}: {}", input, why));
}

// The first line of a libvips error that says something ("" where none does).
std::string FirstLine(const std::string& text) {
  size_t from = 0;
  while (from < text.size()) {
    size_t nl = text.find('\n', from);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(from, nl - from);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (!line.empty()) return line;
    from = nl + 1;
  }
  return "";
}

}  // namespace

Result<VipsConvertOutcome> ConvertWithVips(const VipsConvertRequest& req) {
  const std::string& input = *req.input;
  const Chain& chain = *req.chain;
  const std::string& format = req.format;
  const DecodeLimits& limits = req.limits;
  const VipsKernel preset_kernel = ToVipsKernel(req.kernel);
  VipsConvertOutcome outcome;
  ConvertResult& r = outcome.result;
  if (vips_concurrency_get() != req.threads) vips_concurrency_set(req.threads);
  (void)TakeLastVipsWarning();  // this file's warnings only
  EvalGuard guard;
  guard.deadline_ns = req.deadline_ns;
  try {
    bool strip = false, lossless = false;
    int effort = -1;
    for (const auto& op : chain.ops) {
      if (op.name == "strip") strip = true;
      if (op.name == "keep") strip = false;
      if (op.name == "lossless") lossless = true;
      if (op.name == "effort") effort = int(Num(op.args[0]));
    }
    size_t first = 0;  // the first operation not done by the load
    while (first < chain.ops.size() && IsOption(chain.ops[first].name)) ++first;
    const ChainOp* lead = first < chain.ops.size() ? &chain.ops[first] : nullptr;
    const VImage head = VImage::new_from_file(input.c_str());  // the header only, so far
    // The pixel limit, from the header, before any pixel is decoded (a 600-byte PNG can claim
    // 100000x100000).
    const uint64_t pixels = uint64_t(head.width()) * uint64_t(head.height());
    if (limits.max_pixels > 0 && pixels > limits.max_pixels)
      return Status::TooLarge(fmt::format(
          "{}: image is {}x{} ({:.0f} MP), above the pixel limit of {:.0f} MP", input, head.width(),
          head.height(), double(pixels) / 1e6, double(limits.max_pixels) / 1e6));
    // The target box when the chain starts by shrinking, so the load can shrink instead of
    // decoding at full size: JPEG at M/8 (ShrinkJpeg), other formats through vips_thumbnail
    // (WebP, HEIF and TIFF pyramids load reduced; PNG streams). Not for CMYK:
    // vips_thumbnail's own CMYK import disagrees with littleCMS's transform through the
    // embedded profile (a 100% blue comes out 30 levels off in red), so CMYK, rare in photos,
    // is decoded in full and transformed below.
    int tw = 0, th = 0;
    VipsSize size = VIPS_SIZE_DOWN;
    VipsKernel kernel = preset_kernel;
    const bool cmyk = head.interpretation() == VIPS_INTERPRETATION_CMYK;
    if (!cmyk && lead && (lead->name == "fit" || lead->name == "fill")) {
      Size(lead->args[0], &tw, &th);
    } else if (!cmyk && lead && lead->name == "resize" && Num(lead->args[0]) < 1) {
      // resize:SCALE as the exact upright size it gives.
      int uw, uh;
      UprightSize(head, &uw, &uh);
      ShrinkSize(*lead, uw, uh, &tw, &th);
      size = VIPS_SIZE_FORCE;
      if (lead->args.size() > 1) kernel = Kernel(lead->args[1]);
    }
    VImage img;
    if (tw > 0 && req.in_format == Format::kJpeg &&
        ShrinkJpeg(head, input, *lead, tw, th, kernel, req, &img)) {
      ++first;
    } else if (tw > 0 && kernel == VIPS_KERNEL_LANCZOS3) {  // vips_thumbnail's kernel
      // Shrink-on-load, orientation applied.
      auto o = VImage::option()->set("height", th)->set("size", size);
      if (lead->name == "fill")
        o->set("crop", Interesting(lead->args.size() > 1 ? lead->args[1] : "centre"));
      img = VImage::thumbnail(input.c_str(), tw, o);
      ++first;
    } else {
      // Streamed top to bottom unless an operation needs the pixels in another order.
      bool sequential = vips_image_get_orientation(head.get_image()) <= 1;
      for (const auto& op : chain.ops)
        if (op.name == "rotate" || op.name == "flip" || op.name == "crop" || op.name == "fill")
          sequential = false;
      img = sequential ? VImage::new_from_file(
                             input.c_str(), VImage::option()->set("access", VIPS_ACCESS_SEQUENTIAL))
                       : head.autorot();
    }
    // Colour managed to sRGB: an embedded profile that is not sRGB is honoured (vips_thumbnail
    // leaves Display P3 or Adobe RGB as they are).
    if (NeedsSrgbTransform(img))
      img = img.icc_transform("srgb", VImage::option()->set("embedded", true));
    else if (img.interpretation() != VIPS_INTERPRETATION_B_W &&
             img.interpretation() != VIPS_INTERPRETATION_sRGB)
      img = img.colourspace(VIPS_INTERPRETATION_sRGB);
    for (size_t i = first; i < chain.ops.size(); ++i)
      img = Apply(img, chain.ops[i], input, preset_kernel);
    if (img.format() != VIPS_FORMAT_UCHAR) img = img.cast(VIPS_FORMAT_UCHAR);
    if ((format == "jpeg" || format == "svg") && img.has_alpha())
      img = img.flatten(VImage::option()->set("background", std::vector<double>{255, 255, 255}));
    if (format == "svg") {
      // Traced from the finished raster (image/vectorize.h): the pixels in memory once, then
      // colour layers traced in parallel.
      if (img.bands() != 1 && img.bands() != 3)
        img = img.extract_band(0, VImage::option()->set("n", 3));
      if (const double sigma = req.svg_denoise * std::max(img.width(), img.height()) / 1024.0;
          sigma >= 0.3)
        img = img.gaussblur(sigma).cast(VIPS_FORMAT_UCHAR);
      vips_image_set_progress(img.get_image(), TRUE);
      g_signal_connect(img.get_image(), "eval", G_CALLBACK(OnEval), &guard);
      size_t bytes = 0;
      void* mem = img.write_to_memory(&bytes);
      Image& raster = outcome.raster;
      raster = Image(img.width(), img.height(), img.bands());
      if (bytes == raster.pixels.size()) std::memcpy(raster.pixels.data(), mem, bytes);
      g_free(mem);
      if (guard.why) return LimitStatus(input, guard.why);
      if (bytes != raster.pixels.size())
        return Status::Internal(
            fmt::format("{}: libvips gave {} bytes for the raster", input, bytes));
      outcome.svg = true;  // traced by the caller (ConvertFile)
      r.width = img.width();
      r.height = img.height();
      return outcome;
    }
    auto o = VImage::option()->set("strip", strip);
    if (chain.quality > 0 && format != "png") o->set("Q", chain.quality);
    if (effort < 0) effort = format == "avif" ? (req.effort * 9 + 3) / 6 : req.effort;
    if (format == "webp" || format == "avif") {
      if (lossless) o->set("lossless", true);
      o->set("effort", std::min(effort, format == "webp" ? 6 : 9));
    }
    if (format == "png") o->set("compression", std::min(9, effort * 3 / 2));
    if (format == "jpeg" && req.subsample >= 0)
      o->set("subsample_mode",
             req.subsample ? VIPS_FOREIGN_SUBSAMPLE_ON : VIPS_FOREIGN_SUBSAMPLE_OFF);
    if (format == "avif") o->set("compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1);
    vips_image_set_progress(img.get_image(), TRUE);
    g_signal_connect(img.get_image(), "eval", G_CALLBACK(OnEval), &guard);
    const char* suffix = format == "jpeg"   ? ".jpg"
                         : format == "tiff" ? ".tif"
                         : format == "avif" ? ".heif"
                         : format == "png"  ? ".png"
                                            : ".webp";
    img.write_to_target(suffix, vips::VTarget::new_to_descriptor(req.out_fd), o);
    r.width = img.width();
    r.height = img.height();
  } catch (const VError& e) {
    // libvips' error buffer is the process's: taken and cleared, so that the next failure (on
    // any thread) does not show this one's words.
    std::string why = FirstLine(e.what());
    vips_error_clear();
    if (guard.why) return LimitStatus(input, guard.why);
    if (why.empty()) why = TakeLastVipsWarning();
    if (why.empty()) why = "libvips could not read or convert it and gave no reason";
    return Status::Corrupt(fmt::format("{}: {}", input, why));
  } catch (const std::exception& e) {  // std::bad_alloc and the like: never past this point
    return Status::Internal(fmt::format("{}: {}", input, e.what()));
  }
  if (guard.why) return LimitStatus(input, guard.why);
  return outcome;
}

}  // namespace lumen
