// convert's direct path: the commonest web chain (a JPEG made smaller, perhaps sharpened, saved as
// WebP, JPEG or PNG) without libvips.
//
// Through libvips the benchmark's chain took 16% more CPU (BENCHMARKS.md "Convert"): its
// pipeline copies regions between operations, its worker threads hand tiles over (sched_yield
// shows in a profile), and the saver buffers the whole image once more; for a 1600-pixel result
// those costs are as large as the resample itself. Here the M/8 decode (jpeg_scaled.cpp) feeds the
// resampler (resample.cpp) one row at a time, so the only full-size buffer is the result's; the
// EXIF orientation is applied to that, sharpen runs in place (unsharp.cpp) or in the encoder's
// strips, and libwebp, libjpeg (jpeg_encode.cpp) or zlib (png_encode.cpp) encode it. Metadata as
// libvips writes it: EXIF (Orientation 1, the new pixel size), XMP, the ICC profile and (into JPEG)
// IPTC, unless `strip`. Anything else (another operation, a profile to convert, CMYK, lossless)
// goes through libvips: the result is the same picture either way (test_convert.py compares them).
#include "convert_direct.h"

#include <lcms2.h>
#include <webp/encode.h>
#include <webp/mux.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "exif_tiff.h"
#include "jpeg_encode.h"
#include "jpeg_error.h"
#include "jpeg_scaled.h"
#include "lumen/image/image.h"
#include "lumen/image/vectorize.h"
#include "png_encode.h"
#include "unsharp.h"
#include "webp_encode.h"

namespace lumen {
namespace {

constexpr auto Num = ArgNumber;
constexpr auto Size = ArgSize;

// resize's kernel names.
bool KernelNamed(const std::string& name, ResampleKernel* k) {
  static constexpr std::pair<std::string_view, ResampleKernel> kNames[] = {
      {"nearest", ResampleKernel::kNearest},   {"linear", ResampleKernel::kLinear},
      {"cubic", ResampleKernel::kCubic},       {"mitchell", ResampleKernel::kMitchell},
      {"lanczos2", ResampleKernel::kLanczos2}, {"lanczos3", ResampleKernel::kLanczos3}};
  for (const auto& [n, v] : kNames)
    if (name == n) {
      *k = v;
      return true;
    }
  return false;
}

bool WriteFile(int fd, const void* data, size_t size, std::string* error) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = n < 0 ? std::strerror(errno) : "short write";
      return false;
    }
    p += n;
    size -= size_t(n);
  }
  return true;
}

struct Metadata {
  const std::string* exif = nullptr;  // TIFF, orientation already 1
  const std::string* xmp = nullptr;
  const std::string* icc = nullptr;
  const std::string* iptc = nullptr;  // JPEG only (WebP has no place for it, as in libvips)
};

// Encodes `pic` (filled; freed here) with libwebp and writes it, in the extended container with
// the metadata chunks if there are any.
bool WriteWebp(WebPPicture* pic, int quality, int effort, const Metadata& md, int out_fd,
               std::string* error) {
  auto encoded = EncodeWebpPicture(pic, quality, effort);
  if (!encoded.ok()) {
    *error = encoded.status().message();
    return false;
  }
  const std::vector<uint8_t>& bytes = *encoded;
  bool written;
  if (!md.exif && !md.xmp && !md.icc) {
    written = WriteFile(out_fd, bytes.data(), bytes.size(), error);
  } else {  // the VP8 bitstream in an extended container with the metadata chunks
    WebPMux* mux = WebPMuxNew();
    const WebPData image{bytes.data(), bytes.size()};
    WebPData assembled{nullptr, 0};
    bool muxed = mux && WebPMuxSetImage(mux, &image, 0) == WEBP_MUX_OK;
    auto chunk = [&](const char* fourcc, const std::string* d) {
      if (!muxed || !d) return;
      const WebPData data{reinterpret_cast<const uint8_t*>(d->data()), d->size()};
      muxed = WebPMuxSetChunk(mux, fourcc, &data, 1) == WEBP_MUX_OK;
    };
    chunk("ICCP", md.icc);
    chunk("EXIF", md.exif);
    chunk("XMP ", md.xmp);
    muxed = muxed && WebPMuxAssemble(mux, &assembled) == WEBP_MUX_OK;
    if (muxed) {
      written = WriteFile(out_fd, assembled.bytes, assembled.size, error);
    } else {
      written = false;
      *error = "WebP container error";
    }
    WebPDataClear(&assembled);
    WebPMuxDelete(mux);
  }
  return written;
}

// `rgb` is let go of as soon as libwebp has its YUV copy: the encoder's own state is the
// largest thing in memory then, and the RGB is not needed any more (5 MB less at the peak for a
// 1600x1067 result).
bool EncodeWebp(Image rgb, int quality, int effort, const Metadata& md, int out_fd,
                std::string* error) {
  WebPPicture pic;
  WebPPictureInit(&pic);
  pic.width = rgb.width;
  pic.height = rgb.height;
  if (!WebPPictureImportRGB(&pic, rgb.pixels.data(), rgb.width * 3)) {
    *error = "out of memory";
    return false;
  }
  rgb = Image();
  return WriteWebp(&pic, quality, effort, md, out_fd, error);
}

// A picture as WebP codes it, 4:2:0: Y at w x h, U and V at (w+1)/2 x (h+1)/2 (one band each),
// with JPEG's full-range values (as the planar decode gives them).
struct Yuv {
  Image y, u, v;
};

// The planes into libwebp's picture, in its range (WebpRange), vectorised (sizes and pointers
// in locals: a byte store could otherwise change `from` as far as the compiler knows).
__attribute__((target_clones("avx2", "default"))) void CopyToWebpRange(const Image& from,
                                                                       uint8_t* to, int stride,
                                                                       bool chroma) {
  const int w = from.width, h = from.height;
  const uint8_t* s = from.pixels.data();
  for (int y = 0; y < h; ++y, s += w, to += stride)
    for (int x = 0; x < w; ++x) to[x] = WebpRange(s[x], chroma);
}

bool EncodeWebpYuv(Yuv yuv, int quality, int effort, const Metadata& md, int out_fd,
                   std::string* error) {
  WebPPicture pic;
  WebPPictureInit(&pic);
  pic.width = yuv.y.width;
  pic.height = yuv.y.height;
  pic.use_argb = 0;
  pic.colorspace = WEBP_YUV420;
  if (!WebPPictureAlloc(&pic)) {
    *error = "out of memory";
    return false;
  }
  CopyToWebpRange(yuv.y, pic.y, pic.y_stride, false);
  CopyToWebpRange(yuv.u, pic.u, pic.uv_stride, true);
  CopyToWebpRange(yuv.v, pic.v, pic.uv_stride, true);
  yuv = Yuv();
  return WriteWebp(&pic, quality, effort, md, out_fd, error);
}

struct Sharpen {
  double sigma, amount, threshold;
};

// How far a decoder running on its own thread has got, for encoders that follow it.
class Decoded {
 public:
  void Set(int rows) {
    std::lock_guard<std::mutex> l(mu_);
    rows_ = rows;
    cv_.notify_all();
  }
  void Fail() {
    std::lock_guard<std::mutex> l(mu_);
    failed_ = true;
    cv_.notify_all();
  }
  // Waits for the first `rows` rows; throws if the decode stopped before them.
  void WaitFor(int rows) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return rows_ >= rows || failed_; });
    if (rows_ < rows) throw std::runtime_error("the decode stopped");
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int rows_ = 0;
  bool failed_ = false;
};

// The image's rows for a strip encoder (jpeg_encode.h, png_encode.h): straight from `img`, or,
// with `sharpen`, sharpened strip by strip in the encoder's threads (each band of rows from the
// unsharpened image with the filter's margin, so the result is the one of the whole image at
// once). With `decoded`, each waits for the rows it reads.
JpegRows RowsOf(const Image& img, const Sharpen* sharpen, Decoded* decoded) {
  return [&img, sharpen, decoded](int y0, int n, std::vector<uint8_t>* scratch) -> const uint8_t* {
    const int w = img.width, h = img.height, bands = img.channels;
    const size_t stride = size_t(w) * size_t(bands);
    const uint8_t* pix = img.pixels.data();
    const int m = sharpen ? UnsharpRadius(sharpen->sigma) : 0;
    const int a = std::max(0, y0 - m), b = std::min(h, y0 + n + m);
    if (decoded) decoded->WaitFor(b);
    if (!sharpen) return pix + size_t(y0) * stride;
    scratch->resize(size_t(b - a) * stride);
    UnsharpMask8(pix + size_t(a) * stride, scratch->data(), w, b - a, bands, sharpen->sigma,
                 sharpen->amount, sharpen->threshold);
    return scratch->data() + size_t(y0 - a) * stride;
  };
}

// libjpeg's encoder: baseline, Huffman tables not optimised, 4:2:0 below quality 90 and 4:4:4
// from 90 unless the preset says: what libvips' jpegsave does by default. A large image is
// encoded in strips on `threads` threads (jpeg_encode.h), `sharpen` (if given) done there too.
bool EncodeJpeg(const Image& img, int quality, int subsample, const Metadata& md, int threads,
                const Sharpen* sharpen, Decoded* decoded, int out_fd, std::string* error) {
  const int w = img.width, h = img.height, bands = img.channels;
  JpegEncodeOptions o;
  o.quality = quality;
  o.full_chroma = bands == 3 && (subsample == 0 || (subsample < 0 && quality >= 90));
  o.threads = threads;
  if (decoded) o.strips_per_thread = 8;  // each strip soon after its rows are decoded
  const JpegRows rows = RowsOf(img, sharpen, decoded);
  JpegMarkers markers = [&](jpeg_compress_struct* c) {
    auto app1 = [&](const char* head, size_t head_len, const std::string* d) {
      if (!d || head_len + d->size() > 65533) return;  // does not fit one segment: dropped
      std::string seg(head, head_len);
      seg += *d;
      jpeg_write_marker(c, JPEG_APP0 + 1, reinterpret_cast<const JOCTET*>(seg.data()),
                        unsigned(seg.size()));
    };
    app1("Exif\0\0", 6, md.exif);
    app1("http://ns.adobe.com/xap/1.0/", 29, md.xmp);
    if (md.iptc && md.iptc->size() <= 65533)
      jpeg_write_marker(c, JPEG_APP0 + 13, reinterpret_cast<const JOCTET*>(md.iptc->data()),
                        unsigned(md.iptc->size()));
    if (md.icc)
      jpeg_write_icc_profile(c, reinterpret_cast<const JOCTET*>(md.icc->data()),
                             unsigned(md.icc->size()));
  };
  auto jpeg = EncodeJpegStrips(w, h, bands, o, rows, markers);
  if (!jpeg.ok()) {
    *error = jpeg.status().message();
    return false;
  }
  return WriteFile(out_fd, jpeg->data(), jpeg->size(), error);
}

// PNG as libvips' pngsave writes it by default (every row unfiltered, zlib at `level`), deflated
// in strips on `threads` threads (png_encode.h), `sharpen` (if given) done there too. The ICC
// profile in iCCP, EXIF in eXIf, XMP in an iTXt chunk "XML:com.adobe.xmp" (where the XMP
// specification puts it; libvips writes zTXt, which readers take as well); PNG has no place
// for IPTC.
bool EncodePng(const Image& img, int level, const Metadata& md, int threads, const Sharpen* sharpen,
               Decoded* decoded, int out_fd, std::string* error) {
  std::vector<PngChunk> chunks;
  if (md.icc) {
    uLongf size = compressBound(uLong(md.icc->size()));
    std::string z(size, '\0');
    if (compress2(reinterpret_cast<Bytef*>(z.data()), &size,
                  reinterpret_cast<const Bytef*>(md.icc->data()), uLong(md.icc->size()),
                  9) == Z_OK) {
      z.resize(size);
      chunks.push_back({"iCCP", std::string("icc\0\0", 5) + z});  // name, method 0
    }
  }
  if (md.exif) chunks.push_back({"eXIf", *md.exif});
  if (md.xmp)  // keyword, no compression (flag, method), no language, no translated keyword
    chunks.push_back({"iTXt", std::string("XML:com.adobe.xmp\0\0\0\0\0", 22) + *md.xmp});
  PngEncodeOptions o;
  o.level = level;
  o.threads = threads;
  if (decoded) o.strips_per_thread = 8;
  const Status st =
      EncodePngStrips(img.width, img.height, img.channels, o, RowsOf(img, sharpen, decoded), chunks,
                      [&](const uint8_t* d, size_t n) { return WriteFile(out_fd, d, n, error); });
  if (!st.ok() && error->empty()) *error = st.message();
  return st.ok();
}

}  // namespace

bool DecodeShrunk(JpegReader* jpeg, int orientation, int fw, int fh, ResampleKernel kernel,
                  bool rgb, Image* out) {
  const bool swap = orientation >= 5;
  const int rw = swap ? fh : fw, rh = swap ? fw : fh;  // the result as stored
  if (!jpeg->Start(JpegScaleFor(jpeg->width(), jpeg->height(), rw, rh), rgb)) return false;
  const int bands = jpeg->bands(), dw = jpeg->out_width(), dh = jpeg->out_height();
  Image img(rw, rh, bands);
  if (dw == rw && dh == rh) {  // nothing left to resample
    for (int y = 0; y < dh; ++y)
      if (!jpeg->ReadRow(img.row(y))) return false;
  } else {
    RowResampler resampler(dw, dh, rw, rh, bands, kernel, img.pixels.data());
    std::vector<uint8_t> row(size_t(dw) * size_t(bands));
    for (int y = 0; y < dh; ++y) {
      if (!jpeg->ReadRow(row.data())) return false;
      resampler.Push(row.data());
    }
  }
  if (!jpeg->Finish()) return false;
  *out = orientation > 1 ? ApplyOrientation(img, orientation) : std::move(img);
  return true;
}

namespace {

// DecodeShrunk's planar form for WebP (see ConvertDirect): the JPEG's own Y, Cb and Cr shrunk to
// the upright fw x fh, 4:2:0, never converted to RGB: libjpeg skips its colour conversion,
// libwebp its RGB import, and the resampler and sharpen see one and a half planes' worth of
// samples instead of three. Chroma decoded at more than twice the size wanted (4:4:4 files, and
// 4:2:0 ones, whose scaled IDCT makes chroma as large as luma) is halved by a 2x2 mean first: a
// quarter of the resampler's work on it, and JPEG chroma is rarely sharper than half-size.
bool DecodeShrunkYuv(JpegReader* jpeg, int orientation, int fw, int fh, ResampleKernel kernel,
                     Yuv* out) {
  const bool swap = orientation >= 5;
  const int rw = swap ? fh : fw, rh = swap ? fw : fh;  // the result as stored
  if (!jpeg->StartPlanes(JpegScaleFor(jpeg->width(), jpeg->height(), rw, rh))) return false;
  const int cw = (rw + 1) / 2, ch = (rh + 1) / 2;
  Image* planes[3] = {&out->y, &out->u, &out->v};
  out->y = Image(rw, rh, 1);
  out->u = Image(cw, ch, 1);
  out->v = Image(cw, ch, 1);
  struct Plane {
    std::unique_ptr<RowResampler> resampler;
    bool halve = false;
    std::vector<uint16_t> pair;  // halving: the sum of the row pair's horizontal pairs so far
    std::vector<uint8_t> row;
    int rows = 0, pushed = 0, in_h = 0;
  } p[3];
  for (int k = 0; k < jpeg->planes(); ++k) {
    const int pw = jpeg->plane_width(k), ph = jpeg->plane_height(k);
    const int tw = planes[k]->width, th = planes[k]->height;
    p[k].halve = k > 0 && pw >= 2 * tw && ph >= 2 * th;
    const int in_w = p[k].halve ? pw / 2 : pw;
    p[k].in_h = p[k].halve ? ph / 2 : ph;
    p[k].resampler =
        std::make_unique<RowResampler>(in_w, p[k].in_h, tw, th, 1, kernel, planes[k]->row(0));
    if (p[k].halve) {
      p[k].pair.assign(size_t(in_w), 0);
      p[k].row.resize(size_t(in_w));
    }
  }
  while (!jpeg->planes_done()) {
    if (!jpeg->ReadStrip()) return false;
    for (int k = 0; k < jpeg->planes(); ++k) {
      Plane& q = p[k];
      for (int i = 0; i < jpeg->strip_rows(k); ++i) {
        const uint8_t* r = jpeg->strip_row(k, i);
        if (!q.halve) {
          q.resampler->Push(r);
          continue;
        }
        const int n = int(q.pair.size());
        uint16_t* pair = q.pair.data();
        for (int x = 0; x < n; ++x) pair[x] = uint16_t(pair[x] + r[2 * x] + r[2 * x + 1]);
        if (++q.rows % 2 == 1 || q.pushed == q.in_h) continue;
        uint8_t* half = q.row.data();
        for (int x = 0; x < n; ++x) half[x] = uint8_t((pair[x] + 2) >> 2);
        std::fill(q.pair.begin(), q.pair.end(), 0);
        q.resampler->Push(q.row.data());
        ++q.pushed;
      }
    }
  }
  if (!jpeg->Finish()) return false;
  if (jpeg->planes() == 1) {  // grey: no colour
    std::fill(out->u.pixels.begin(), out->u.pixels.end(), 128);
    std::fill(out->v.pixels.begin(), out->v.pixels.end(), 128);
  }
  if (orientation > 1)
    for (Image* plane : planes) *plane = ApplyOrientation(*plane, orientation);
  return true;
}

// Keeps the w x h region at (x0, y0) of `img`, moved to the top-left (no second buffer).
void CropInPlace(Image* img, int x0, int y0, int w, int h) {
  const size_t bands = size_t(img->channels), from = size_t(img->width) * bands;
  uint8_t* pix = img->pixels.data();
  for (int y = 0; y < h; ++y)
    std::memmove(pix + size_t(y) * size_t(w) * bands,
                 pix + size_t(y + y0) * from + size_t(x0) * bands, size_t(w) * bands);
  img->width = w;
  img->height = h;
  img->pixels.resize(size_t(w) * size_t(h) * bands);
}

}  // namespace

bool NeedsSrgbTransform(const void* data, size_t len) {
  cmsHPROFILE p = cmsOpenProfileFromMem(data, cmsUInt32Number(len));
  if (!p) return false;  // unreadable: libvips would fail on it too; leave the pixels as they are
  bool transform = true;
  const cmsColorSpaceSignature space = cmsGetColorSpace(p);
  if (space == cmsSigGrayData) {
    transform = false;
  } else if (space == cmsSigRgbData) {
    char desc[256] = {0};
    cmsGetProfileInfoASCII(p, cmsInfoDescription, "en", "US", desc, sizeof(desc));
    transform = std::string_view(desc).find("sRGB") == std::string_view::npos;
  }
  cmsCloseProfile(p);
  return transform;
}

Result<uint64_t> WriteSvg(const Image& img, const Chain& chain, int threads, int out_fd) {
  VectorizeOptions vo = SvgOptions(chain.svg);
  vo.threads = threads;
  Result<VectorizeResult> traced = Status::Internal("not traced");
  try {
    traced = Vectorize(img, vo);
  } catch (const std::exception& e) {  // std::bad_alloc: this file fails, not the run
    traced = Status::Internal(e.what());
  }
  if (!traced.ok()) return traced.status();
  std::string error;
  if (!WriteFile(out_fd, traced->svg.data(), traced->svg.size(), &error)) return Status::Io(error);
  return uint64_t(traced->svg.size());
}

namespace {

// The direct path's SVG: the blur before quantising (convert.h, SvgDenoise), then the trace of
// the colour layers in parallel (vectorize.h); the limits (deadline, a signal) are checked
// between the steps, as the decoder checks them per row.
Direct TraceSvg(Image* img, const Chain& chain, double sigma, const DirectSettings& settings,
                int out_fd, ConvertResult* result, std::string* error) {
  if (sigma >= 0.3) {
    if (const char* why = JpegLimitReached(settings.jpeg)) {
      *error = why;
      return Direct::kLimit;
    }
    GaussBlur8(img->pixels.data(), img->pixels.data(), img->width, img->height, img->channels,
               sigma);
  }
  if (const char* why = JpegLimitReached(settings.jpeg)) {
    *error = why;
    return Direct::kLimit;
  }
  auto written = WriteSvg(*img, chain, settings.threads, out_fd);
  if (!written.ok()) {
    *error = written.status().message();
    return written.status().code() == Code::kIo ? Direct::kWriteFailed : Direct::kTraceFailed;
  }
  result->width = img->width;
  result->height = img->height;
  return Direct::kDone;
}

}  // namespace

Direct ConvertDirect(const std::string& input, const Chain& chain, const std::string& format,
                     int tmp, const DirectSettings& settings, ConvertResult* result,
                     std::string* error) {
  if (format != "webp" && format != "jpeg" && format != "png" && format != "svg")
    return Direct::kNotApplicable;
  // The chain: options anywhere, one shrink, then only sharpen.
  const ChainOp* lead = nullptr;
  std::vector<Sharpen> sharpen;
  bool strip = false;
  int effort = settings.effort;
  ResampleKernel kernel = settings.kernel;
  for (const ChainOp& op : chain.ops) {
    const auto& a = op.args;
    if (op.name == "strip" || op.name == "keep") {
      strip = op.name == "strip";
    } else if (op.name == "effort") {
      effort = int(Num(a[0]));
    } else if (op.name == "autorotate") {  // done anyway
    } else if (!lead && (op.name == "fit" || op.name == "fill" || op.name == "resize")) {
      if (op.name == "fill" && a.size() > 1 && a[1] != "centre") return Direct::kNotApplicable;
      if (op.name == "resize" && (Num(a[0]) >= 1 || (a.size() > 1 && !KernelNamed(a[1], &kernel))))
        return Direct::kNotApplicable;
      lead = &op;
    } else if (op.name == "sharpen") {
      const double sigma = a.empty() ? 1.0 : Num(a[0]), amount = a.size() > 1 ? Num(a[1]) : 1.0;
      const double threshold = a.size() > 2 ? Num(a[2]) : kUnsharpThreshold;
      if (sigma > 3) return Direct::kNotApplicable;  // the streaming float path (convert.cpp)
      if (amount > 0) sharpen.push_back({sigma, amount, threshold});
    } else {
      return Direct::kNotApplicable;  // lossless, other operations
    }
  }

  JpegReader jpeg;
  if (!jpeg.Open(input, true, &settings.jpeg)) {
    *error = jpeg.error();
    return jpeg.limited() ? Direct::kLimit : Direct::kFailed;
  }
  const uint64_t pixels = uint64_t(jpeg.width()) * uint64_t(jpeg.height());
  if (settings.max_pixels > 0 && pixels > settings.max_pixels) {
    *error =
        fmt::format("image is {}x{} ({:.0f} MP), above the pixel limit of {:.0f} MP", jpeg.width(),
                    jpeg.height(), double(pixels) / 1e6, double(settings.max_pixels) / 1e6);
    return Direct::kLimit;
  }
  if (jpeg.cmyk() ||
      (!jpeg.icc().empty() && NeedsSrgbTransform(jpeg.icc().data(), jpeg.icc().size())))
    return Direct::kNotApplicable;
  const int orientation = ExifOrientation(jpeg.exif());
  const bool swap = orientation >= 5;
  const int uw = swap ? jpeg.height() : jpeg.width(), uh = swap ? jpeg.width() : jpeg.height();
  int fw = uw, fh = uh, tw = 0, th = 0;  // the result, upright
  if (!lead) {
    // At full size (sharpen alone): the whole image is held decoded, where libvips streams it
    // (through a floating-point blur, 3x the time). Up to the byte budget given for it.
    if (pixels * 3 > settings.full_size_bytes) return Direct::kNotApplicable;
  } else {
    if (lead->name != "resize") Size(lead->args[0], &tw, &th);
    if (!ShrinkSize(*lead, uw, uh, &fw, &fh) && lead->name == "fill")
      return Direct::kNotApplicable;  // smaller than the box: libvips' rules for the crop
  }
  // The result: fill keeps the centre of the cover.
  const bool fill = lead && lead->name == "fill";
  const int w = fill ? std::min(tw, fw) : fw;
  const int h = fill ? std::min(th, fh) : fh;
  const int x0 = (fw - w) / 2, y0 = (fh - h) / 2;
  // SVG's blur before tracing (convert.h, SvgDenoise) in 8-bit weights is exact enough up to a
  // sigma of about 8 (weights of 1/256 lose the tails of wider ones): wider blurs, rare (a large
  // svg:denoise on a large image), are libvips' floating-point gaussblur.
  const double svg_sigma = settings.svg_denoise * std::max(w, h) / 1024.0;
  if (format == "svg" && svg_sigma > 8) return Direct::kNotApplicable;
  // Into WebP, a YCbCr or grey file goes as planes, unless a crop at an odd offset would split
  // the chroma samples.
  const bool planar = format == "webp" && jpeg.planar() && x0 % 2 == 0 && y0 % 2 == 0;
  std::string exif = jpeg.exif();
  Metadata md;
  if (!strip) {
    if (!exif.empty()) {
      ExifSetUpright(&exif, w, h);
      md.exif = &exif;
    }
    if (!jpeg.xmp().empty()) md.xmp = &jpeg.xmp();
    if (!jpeg.icc().empty()) md.icc = &jpeg.icc();
    if (!jpeg.iptc().empty()) md.iptc = &jpeg.iptc();
  }
  const int quality = chain.quality > 0 ? chain.quality : 75;
  const int png_level = std::min(9, effort * 3 / 2);
  // Into JPEG or PNG, upright as stored, at full size or shrunk without a crop, a result of 4 MP
  // or more, on more than one thread: the decode (and the resampler, which writes each output row
  // once the input rows under it are in) runs on a thread of its own and the encoder's strips
  // follow it (each waits for the rows it reads), so decoding, the one serial step, overlaps the
  // encoding instead of coming before all of it. The same pixels as DecodeShrunk's.
  if ((!lead || (w == fw && h == fh)) && orientation <= 1 &&
      (format == "jpeg" || format == "png") && sharpen.size() <= 1 && settings.threads > 1 &&
      uint64_t(w) * uint64_t(h) >= 4'000'000) {
    if (!jpeg.Start(JpegScaleFor(jpeg.width(), jpeg.height(), w, h), false)) {
      *error = jpeg.error();
      return jpeg.limited() ? Direct::kLimit : Direct::kFailed;
    }
    const int dw = jpeg.out_width(), dh = jpeg.out_height();
    Image full(w, h, jpeg.bands());
    Decoded decoded;
    bool decode_ok = false;
    auto decode = [&] {
      bool ok = true;
      if (dw == w && dh == h) {
        for (int y = 0; ok && y < h; ++y) {
          ok = jpeg.ReadRow(full.row(y));
          if (ok && ((y + 1) % 16 == 0 || y + 1 == h)) decoded.Set(y + 1);
        }
      } else {
        RowResampler resampler(dw, dh, w, h, full.channels, kernel, full.pixels.data());
        std::vector<uint8_t> row(size_t(dw) * size_t(full.channels));
        int published = 0;
        for (int y = 0; ok && y < dh; ++y) {
          ok = jpeg.ReadRow(row.data());
          if (!ok) break;
          resampler.Push(row.data());
          if (resampler.emitted() - published >= 16 || resampler.done())
            decoded.Set(published = resampler.emitted());
        }
      }
      ok = ok && jpeg.Finish();
      if (!ok) decoded.Fail();
      decode_ok = ok;
    };
    std::thread decoder;
    try {
      decoder = std::thread(decode);
    } catch (const std::system_error&) {  // no thread to be had: decoded here, then encoded
      decode();
    }
    const Sharpen* one = sharpen.empty() ? nullptr : &sharpen[0];
    std::string why;
    bool ok = false;
    try {
      ok = format == "png"
               ? EncodePng(full, png_level, md, settings.threads, one, &decoded, tmp, &why)
               : EncodeJpeg(full, quality, settings.subsample, md, settings.threads, one, &decoded,
                            tmp, &why);
    } catch (const std::exception& e) {  // the decode stopped under a single encoder
      why = e.what();
    }
    if (decoder.joinable()) decoder.join();
    if (!decode_ok) {
      *error = jpeg.error();
      return jpeg.limited() ? Direct::kLimit : Direct::kFailed;
    }
    if (!ok) {
      *error = why;
      return Direct::kWriteFailed;
    }
    result->width = full.width;
    result->height = full.height;
    return Direct::kDone;
  }
  Image img;
  Yuv yuv;
  const Sharpen* strip_sharpen = nullptr;  // done by the JPEG encoder's strips
  if (planar ? !DecodeShrunkYuv(&jpeg, orientation, fw, fh, kernel, &yuv)
             : !DecodeShrunk(&jpeg, orientation, fw, fh, kernel, format == "webp", &img)) {
    *error = jpeg.error();
    return jpeg.limited() ? Direct::kLimit : Direct::kFailed;
  }
  if (planar) {
    if (w != fw || h != fh) {
      CropInPlace(&yuv.y, x0, y0, w, h);
      CropInPlace(&yuv.u, x0 / 2, y0 / 2, (w + 1) / 2, (h + 1) / 2);
      CropInPlace(&yuv.v, x0 / 2, y0 / 2, (w + 1) / 2, (h + 1) / 2);
    }
    // The unsharp mask is linear, so on Y, Cb and Cr it is the one on R, G and B (but for
    // rounding): chroma has half the pixels a side, so half the sigma. The threshold is not
    // linear: applied to each plane, it decides as on R, G and B wherever the detail is grey
    // (equal differences in R, G and B are that difference in Y, none in chroma), and chroma
    // detail below it stays unsharpened.
    for (const auto& [sigma, amount, threshold] : sharpen) {
      UnsharpMask8(yuv.y.pixels.data(), yuv.y.pixels.data(), w, h, 1, sigma, amount, threshold);
      for (Image* c : {&yuv.u, &yuv.v})
        UnsharpMask8(c->pixels.data(), c->pixels.data(), c->width, c->height, 1, sigma / 2, amount,
                     threshold);
    }
  } else {
    if (w != fw || h != fh) CropInPlace(&img, x0, y0, w, h);
    // Into JPEG or PNG, one sharpen is done by the encoder's strips, in parallel; more in place
    // here.
    if ((format == "jpeg" || format == "png") && sharpen.size() == 1)
      strip_sharpen = &sharpen[0];
    else
      for (const auto& [sigma, amount, threshold] : sharpen)
        UnsharpMask8(img.pixels.data(), img.pixels.data(), w, h, img.channels, sigma, amount,
                     threshold);
  }

  if (format == "svg") return TraceSvg(&img, chain, svg_sigma, settings, tmp, result, error);
  const bool ok =
      planar             ? EncodeWebpYuv(std::move(yuv), quality, effort, md, tmp, error)
      : format == "webp" ? EncodeWebp(std::move(img), quality, effort, md, tmp, error)
      : format == "png"
          ? EncodePng(img, png_level, md, settings.threads, strip_sharpen, nullptr, tmp, error)
          : EncodeJpeg(img, quality, settings.subsample, md, settings.threads, strip_sharpen,
                       nullptr, tmp, error);
  if (!ok) return Direct::kWriteFailed;
  result->width = w;
  result->height = h;
  return Direct::kDone;
}

}  // namespace lumen
