#include "lumen/image/convert.h"

#include <fcntl.h>
#include <glib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <thread>
#include <vips/vips8>

#include <fmt/format.h>

#include "convert_direct.h"
#include "jpeg_error.h"
#include "jpeg_scaled.h"
#include "lumen/image/decode.h"
#include "lumen/image/image.h"
#include "lumen/image/vectorize.h"
#include "lumen/io/magic.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/profile.h"
#include "unsharp.h"
#include "vips_util.h"

namespace lumen {
namespace {
int CountJpegScans(int fd, int limit);

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
    {
      const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) throw vips::VError(fmt::format("overlay {}: {}", path, std::strerror(errno)));
      Status st = CheckInputFile("overlay " + path, fd, limits, nullptr);
      unsigned char magic[2] = {0, 0};
      const bool jpeg = ::pread(fd, magic, 2, 0) == 2 && magic[0] == 0xFF && magic[1] == 0xD8;
      if (st.ok() && jpeg && CountJpegScans(fd, limits.max_scans) > limits.max_scans)
        st = Status::TooLarge(
            fmt::format("overlay {}: more than {} JPEG scans", path, limits.max_scans));
      ::close(fd);
      if (!st.ok()) throw vips::VError(st.message());
    }
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
  return lumen::NeedsSrgbTransform(data, len);
}

// The size of `head` once upright (EXIF orientation applied); true if that swaps width and height.
bool UprightSize(const VImage& head, int* w, int* h) {
  const bool swap = vips_image_get_orientation_swap(head.get_image());
  *w = swap ? head.height() : head.width();
  *h = swap ? head.width() : head.height();
  return swap;
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
                VipsKernel kernel, const JpegLimits& limits, VImage* out) {
  int uw, uh, fw, fh;  // upright: the file, the result
  const bool swap = UprightSize(head, &uw, &uh);
  if (!ShrinkSize(lead, uw, uh, &fw, &fh)) return false;
  if (JpegScaleFor(head.width(), head.height(), swap ? fh : fw, swap ? fw : fh) == 8) return false;
  JpegReader jpeg;
  Image pixels;
  if (!jpeg.Open(input, false, &limits) || jpeg.cmyk() ||
      !DecodeShrunk(&jpeg, vips_image_get_orientation(head.get_image()), fw, fh,
                    ToResampleKernel(kernel), false, &pixels))
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

struct PresetValues {
  const char* name;
  VipsKernel kernel;
  int effort;     // WebP scale 0-6 (AVIF and PNG scaled from it)
  int subsample;  // 1 on, 0 off, -1 libvips' choice
};
constexpr PresetValues kPresets[] = {
    {"draft", VIPS_KERNEL_LINEAR, 0, 1},       {"fast", VIPS_KERNEL_CUBIC, 2, 1},
    {"balanced", VIPS_KERNEL_LANCZOS3, 4, -1}, {"high", VIPS_KERNEL_LANCZOS3, 5, 0},
    {"ultra", VIPS_KERNEL_LANCZOS3, 6, 0},
};
const PresetValues& Values(const Preset& p) {
  for (const auto& v : kPresets)
    if (p.name == v.name) return v;
  return kPresets[2];
}

// The scans of a JPEG (its SOS markers), counted by walking its segments without decoding:
// libvips' loader reads every scan of a progressive file before the first row, where no
// deadline can reach it, so the scan limit is checked before libvips opens the file. Stops
// counting past `limit`.
int CountJpegScans(int fd, int limit) {
  std::vector<uint8_t> buf(1 << 16);
  size_t have = 0, at = 0;
  off_t offset = 0;
  auto byte = [&](int* out) {  // the next byte, false at the end
    if (at == have) {
      const ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
      if (n <= 0) return false;
      offset += n;
      have = size_t(n);
      at = 0;
    }
    *out = buf[at++];
    return true;
  };
  auto skip = [&](uint64_t n) {  // n more bytes
    const uint64_t in_buf = std::min<uint64_t>(n, have - at);
    at += size_t(in_buf);
    offset += off_t(n - in_buf);
  };
  int scans = 0, c = 0;
  bool in_scan = false;
  while (byte(&c)) {
    // Bytes that are not a marker (scan data, or junk between markers, which libjpeg skips with
    // a warning) are passed over: one stray byte must not end the count.
    if (c != 0xFF) continue;
    int m = 0xFF;
    while (m == 0xFF)
      if (!byte(&m)) return scans;
    if (m == 0x00 || (m >= 0xD0 && m <= 0xD7)) continue;  // stuffed byte, restart marker
    if (m == 0xD8 || m == 0x01) continue;                 // SOI, TEM: no length
    if (m == 0xD9) return scans;                          // EOI
    int hi = 0, lo = 0;
    if (!byte(&hi) || !byte(&lo)) return scans;
    const int len = (hi << 8) | lo;
    if (len < 2) return scans;
    skip(uint64_t(len - 2));
    in_scan = m == 0xDA;
    if (in_scan && ++scans > limit) return scans;
  }
  return scans;
}

// libvips' side of the limits: an `eval` handler on the image being written kills the
// computation once the deadline has passed or a signal asked lumen to stop.
struct EvalGuard {
  uint64_t deadline_ns = 0;  // 0: none
  const char* why = nullptr;
};
void OnEval(VipsImage* image, VipsProgress*, void* data) {
  auto* g = static_cast<EvalGuard*>(data);
  if (!g->why && Interrupted()) g->why = "stopped by a signal";
  if (!g->why && g->deadline_ns > 0 && MonotonicNs() > g->deadline_ns)
    g->why = "took longer than the time limit";
  if (g->why) vips_image_set_kill(image, TRUE);
}
bool StopRequested() {
  return Interrupted();
}
Status LimitStatus(const std::string& input, const std::string& why) {
  if (Interrupted()) return Status::Interrupted(fmt::format("{}: stopped by a signal", input));
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

Status CheckInputFile(const std::string& input, int fd, const DecodeLimits& limits,
                      uint64_t* size) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::Io(fmt::format("{}: {}", input, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return Status::Unsupported(fmt::format("{}: {}", input, FileKind(st)));
  if (limits.max_file_bytes > 0 && uint64_t(st.st_size) > limits.max_file_bytes)
    return Status::TooLarge(fmt::format("{}: {:.1f} MB, above the file size limit of {:.1f} MB",
                                        input, double(st.st_size) / 1048576.0,
                                        double(limits.max_file_bytes) / 1048576.0));
  if (st.st_size == 0) return Status::Corrupt(fmt::format("{}: empty file", input));
  if (size) *size = uint64_t(st.st_size);
  return Status::Ok();
}

std::string FileKind(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISDIR(st.st_mode)) return "a folder, not an image file";
  if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe), not an image file";
  if (S_ISCHR(st.st_mode)) return "a character device, not an image file";
  if (S_ISBLK(st.st_mode)) return "a block device, not an image file";
  if (S_ISSOCK(st.st_mode)) return "a socket, not an image file";
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  return "not a regular file";
}

bool IsPreset(const std::string& name) {
  for (const auto& v : kPresets)
    if (name == v.name) return true;
  return false;
}

std::string OutputFormat(const Chain& chain, const std::string& input) {
  if (!chain.format.empty()) return chain.format;
  std::string ext = std::filesystem::path(input).extension().string();
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".png") return "png";
  if (ext == ".webp") return "webp";
  if (ext == ".tif" || ext == ".tiff") return "tiff";
  if (ext == ".avif") return "avif";
  return "jpeg";  // JPEG, and formats lumen reads but does not write (HEIC, GIF, ...)
}

namespace {
std::atomic<int> convert_threads{1};
}  // namespace

void SetConvertThreads(int threads) {
  convert_threads = std::max(1, threads);
}

// svg's denoise: the sigma of a Gaussian blur before quantisation, per 1024 pixels of the long
// edge (so the same setting keeps the same detail at any size). Quantising a photo's gradients
// and grain gives ragged borders between colours, which potrace follows point by point: a 4096
// px photo at 16 colours was 101 MB of SVG in 8.2 s, blurred by 4 first 9.9 MB in 1.7 s, and
// looks the same from a step away (BENCHMARKS.md "Vectorization"). Logos have flat colours and
// sharp corners: none.
double SvgDenoise(const std::vector<std::pair<std::string, std::string>>& settings) {
  double d = 1.0;
  for (const auto& [k, value] : settings) {
    if (k == "preset") d = value == "logo" ? 0.0 : value == "photo" ? 0.5 : 1.0;
    if (k == "denoise") d = std::stod(value);  // canonical, checked by ParseChain
  }
  return d;
}

VectorizeOptions SvgOptions(const std::vector<std::pair<std::string, std::string>>& settings) {
  VectorizeOptions v;
  auto get = [&](const char* key) -> const std::string* {
    for (const auto& [k, value] : settings)
      if (k == key) return &value;
    return nullptr;
  };
  // Presets (measured on the bench corpus, BENCHMARKS.md "Vectorization"): a logo has few flat
  // colours and wants clean curves; a photo wants more colours and keeps small details.
  const std::string* preset = get("preset");
  if (preset && *preset == "logo") {
    v.colors = 8, v.speckle = 8, v.smooth = 1.0, v.tolerance = 0.3;
  } else if (!preset || *preset == "illustration") {
    v.colors = 16, v.speckle = 4, v.smooth = 1.0, v.tolerance = 0.2;
  } else {  // photo
    v.colors = 32, v.speckle = 2, v.smooth = 0.9, v.tolerance = 0.4;
  }
  if (const std::string* s = get("colors")) v.colors = std::stoi(*s);
  if (const std::string* s = get("speckle")) v.speckle = std::stoi(*s);
  if (const std::string* s = get("smooth")) v.smooth = std::stod(*s);
  return v;
}

std::string FormatExtension(const std::string& format) {
  return format == "jpeg" ? "jpg" : format == "tiff" ? "tif" : format;
}

Result<ConvertResult> ConvertFile(const std::string& input, const Chain& chain, int out_fd,
                                  const Preset& preset, const DecodeLimits& limits) {
  const PresetValues& pv = Values(preset);
  const std::string format = OutputFormat(chain, input);
  const uint64_t deadline =
      limits.max_seconds > 0 ? MonotonicNs() + uint64_t(limits.max_seconds * 1e9) : 0;
  ConvertResult r;
  // The input, refused by its type before anything reads it (a FIFO would block, /dev/zero never
  // end) and by its size. O_NONBLOCK: opening a FIFO does not wait for a writer.
  const int in_fd = ::open(input.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (in_fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(fmt::format("{}: no such file", input));
    return Status::Io(fmt::format("{}: {}", input, std::strerror(err)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{in_fd};
  LUMEN_RETURN_IF_ERROR(CheckInputFile(input, in_fd, limits, nullptr));
  // The input's format by its magic bytes: HEIF/AVIF in or out needs libvips' HEIF module
  // (decode.h) before libvips can even read the header; a JPEG may take the direct path
  // (convert_direct.h) and never touch libvips.
  uint8_t magic[64] = {0};
  const ssize_t got = ::pread(in_fd, magic, sizeof(magic), 0);
  const Format in_format = DetectFormat(magic, got > 0 ? size_t(got) : 0);
  auto output_error = [&](const std::string& why) {
    return Status::Io(fmt::format("cannot write the output of {}: {}", input, why));
  };
  if (in_format == Format::kJpeg) {
    DirectSettings ds;
    ds.kernel = ToResampleKernel(pv.kernel);
    ds.effort = pv.effort;
    ds.subsample = pv.subsample;
    ds.max_pixels = limits.max_pixels;
    ds.jpeg.max_scans = limits.max_scans;
    ds.jpeg.deadline_ns = deadline;
    ds.jpeg.stop = StopRequested;
    ds.threads = convert_threads;
    // Full-size chains held decoded: 1 GiB in all, shared by the images converted at once
    // (convert_threads is this image's share of the cores).
    const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    ds.full_size_bytes =
        (uint64_t(1) << 30) * uint64_t(std::min(convert_threads.load(), cores)) / uint64_t(cores);
    std::string error;
    switch (ConvertDirect(input, chain, format, out_fd, ds, &r, &error)) {
      case Direct::kDone: {
        struct stat st;
        r.format = format;
        r.bytes = ::fstat(out_fd, &st) == 0 ? uint64_t(st.st_size) : 0;
        return r;
      }
      case Direct::kFailed:
        return Status::Corrupt(fmt::format("{}: {}", input, error));
      case Direct::kLimit:
        return LimitStatus(input, error);
      case Direct::kWriteFailed:
        return output_error(error);
      case Direct::kNotApplicable:
        break;
    }
    if (limits.max_scans > 0 && CountJpegScans(in_fd, limits.max_scans) > limits.max_scans)
      return Status::TooLarge(
          fmt::format("{}: progressive JPEG with more than {} scans (the scan limit)", input,
                      limits.max_scans));
  }
  // libvips, started on first use: a run that only takes the direct path never pays for it.
  if (Status st = InitImageLibraries(nullptr); !st.ok()) return st;
  if (vips_concurrency_get() != convert_threads) vips_concurrency_set(convert_threads);
  if (format == "avif" || in_format == Format::kHeif || in_format == Format::kAvif)
    EnsureHeifSupport();
  (void)TakeLastVipsWarning();  // this file's warnings only
  EvalGuard guard;
  guard.deadline_ns = deadline;
  JpegLimits jpeg_limits;
  jpeg_limits.max_scans = limits.max_scans;
  jpeg_limits.deadline_ns = deadline;
  jpeg_limits.stop = StopRequested;
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
    VipsKernel kernel = pv.kernel;
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
    if (tw > 0 && in_format == Format::kJpeg &&
        ShrinkJpeg(head, input, *lead, tw, th, kernel, jpeg_limits, &img)) {
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
      img = Apply(img, chain.ops[i], input, pv.kernel);
    if (img.format() != VIPS_FORMAT_UCHAR) img = img.cast(VIPS_FORMAT_UCHAR);
    if ((format == "jpeg" || format == "svg") && img.has_alpha())
      img = img.flatten(VImage::option()->set("background", std::vector<double>{255, 255, 255}));
    if (format == "svg") {
      // Traced from the finished raster (image/vectorize.h): the pixels in memory once, then
      // colour layers traced in parallel.
      if (img.bands() != 1 && img.bands() != 3)
        img = img.extract_band(0, VImage::option()->set("n", 3));
      if (const double sigma = SvgDenoise(chain.svg) * std::max(img.width(), img.height()) / 1024.0;
          sigma >= 0.3)
        img = img.gaussblur(sigma).cast(VIPS_FORMAT_UCHAR);
      vips_image_set_progress(img.get_image(), TRUE);
      g_signal_connect(img.get_image(), "eval", G_CALLBACK(OnEval), &guard);
      size_t bytes = 0;
      void* mem = img.write_to_memory(&bytes);
      Image raster(img.width(), img.height(), img.bands());
      if (bytes == raster.pixels.size()) std::memcpy(raster.pixels.data(), mem, bytes);
      g_free(mem);
      if (guard.why) return LimitStatus(input, guard.why);
      if (bytes != raster.pixels.size())
        return Status::Internal(
            fmt::format("{}: libvips gave {} bytes for the raster", input, bytes));
      VectorizeOptions vo = SvgOptions(chain.svg);
      vo.threads = convert_threads;
      auto v = Vectorize(raster, vo);
      if (!v.ok())
        return Status(v.status().code(), fmt::format("{}: {}", input, v.status().message()));
      for (size_t at = 0; at < v->svg.size();) {
        const ssize_t n = ::write(out_fd, v->svg.data() + at, v->svg.size() - at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return output_error(std::strerror(errno));
        at += size_t(n);
      }
      r.width = img.width();
      r.height = img.height();
      r.format = format;
      r.bytes = v->svg.size();
      return r;
    }
    auto o = VImage::option()->set("strip", strip);
    if (chain.quality > 0 && format != "png") o->set("Q", chain.quality);
    if (effort < 0) effort = format == "avif" ? (pv.effort * 9 + 3) / 6 : pv.effort;
    if (format == "webp" || format == "avif") {
      if (lossless) o->set("lossless", true);
      o->set("effort", std::min(effort, format == "webp" ? 6 : 9));
    }
    if (format == "png") o->set("compression", std::min(9, effort * 3 / 2));
    if (format == "jpeg" && pv.subsample >= 0)
      o->set("subsample_mode",
             pv.subsample ? VIPS_FOREIGN_SUBSAMPLE_ON : VIPS_FOREIGN_SUBSAMPLE_OFF);
    if (format == "avif") o->set("compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1);
    vips_image_set_progress(img.get_image(), TRUE);
    g_signal_connect(img.get_image(), "eval", G_CALLBACK(OnEval), &guard);
    const char* suffix = format == "jpeg"   ? ".jpg"
                         : format == "tiff" ? ".tif"
                         : format == "avif" ? ".heif"
                         : format == "png"  ? ".png"
                                            : ".webp";
    img.write_to_target(suffix, vips::VTarget::new_to_descriptor(out_fd), o);
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
  struct stat st;
  r.format = format;
  r.bytes = ::fstat(out_fd, &st) == 0 ? uint64_t(st.st_size) : 0;
  return r;
}

}  // namespace lumen
