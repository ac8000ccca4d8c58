#include "lumen/image/derive.h"

#include <vips/vips.h>
#include <webp/encode.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "vips_util.h"

namespace lumen {
namespace {

// Resizes with libvips (shrink + Lanczos3 reduce) by independent horizontal/vertical scales.
Result<Image> VipsResize(const Image& src, double hscale, double vscale) {
  VipsPtr in(vips_image_new_from_memory(src.pixels.data(), src.pixels.size(), src.width, src.height,
                                        src.channels, VIPS_FORMAT_UCHAR));
  if (!in) return Status::Internal(fmt::format("cannot wrap pixels: {}", TakeVipsError()));
  VipsImage* out = nullptr;
  if (vips_resize(in.get(), &out, hscale, "vscale", vscale, "kernel", VIPS_KERNEL_LANCZOS3, nullptr) != 0)
    return Status::Internal(fmt::format("resize failed: {}", TakeVipsError()));
  VipsPtr res(out);
  Image dst(vips_image_get_width(res.get()), vips_image_get_height(res.get()), src.channels);
  size_t len = 0;
  void* mem = vips_image_write_to_memory(res.get(), &len);
  if (!mem) return Status::Internal(fmt::format("resize failed: {}", TakeVipsError()));
  if (len == dst.pixels.size()) std::memcpy(dst.pixels.data(), mem, len);
  g_free(mem);
  if (len != dst.pixels.size()) return Status::Internal("resize produced an unexpected size");
  return dst;
}

Result<std::vector<uint8_t>> EncodeWebp(const Image& img, int quality, int effort) {
  WebPConfig config;
  if (!WebPConfigInit(&config)) return Status::Internal("libwebp version mismatch");
  config.quality = static_cast<float>(std::clamp(quality, 0, 100));
  config.method = std::clamp(effort, 0, 6);
  WebPPicture pic;
  if (!WebPPictureInit(&pic)) return Status::Internal("libwebp version mismatch");
  pic.width = img.width;
  pic.height = img.height;
  int ok = img.channels == 3 ? WebPPictureImportRGB(&pic, img.pixels.data(), img.width * 3) : 0;
  if (!ok) {
    WebPPictureFree(&pic);
    return Status::Internal("cannot import pixels into libwebp");
  }
  WebPMemoryWriter writer;
  WebPMemoryWriterInit(&writer);
  pic.writer = WebPMemoryWrite;
  pic.custom_ptr = &writer;
  ok = WebPEncode(&config, &pic);
  WebPPictureFree(&pic);
  if (!ok) {
    WebPMemoryWriterClear(&writer);
    return Status::Internal(fmt::format("WebP encoding failed (error {})", static_cast<int>(pic.error_code)));
  }
  std::vector<uint8_t> out(writer.mem, writer.mem + writer.size);
  WebPMemoryWriterClear(&writer);
  return out;
}

}  // namespace

Result<Thumbnail> MakeThumbnail(const Image& reduced, int orientation, const ThumbnailOptions& opt) {
  if (reduced.empty()) return Status::Invalid("empty image");
  int longest = std::max(reduced.width, reduced.height);
  Image small;
  if (longest > opt.size) {
    double s = double(opt.size) / longest;
    auto r = VipsResize(reduced, s, s);
    if (!r.ok()) return r.status();
    small = std::move(r.value());
  } else {
    small = reduced;
  }
  Image upright = ApplyOrientation(small, orientation);
  auto webp = EncodeWebp(upright, opt.quality, opt.effort);
  if (!webp.ok()) return webp.status();
  Thumbnail t;
  t.webp = std::move(webp.value());
  t.width = upright.width;
  t.height = upright.height;
  return t;
}

PerceptualHashes ComputePerceptualHashes(const Image& reduced, int orientation) {
  PerceptualHashes out;
  if (reduced.empty()) return out;
  // Reduce to 64x64 luma first (area average), orient that small square, then derive.
  Image gray = ToGray(reduced);
  Image base = ResizeArea(gray, std::min(64, gray.width), std::min(64, gray.height));
  Image up = ApplyOrientation(base, orientation);

  Image d = ResizeArea(up, 9, 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) {
      out.dhash <<= 1;
      out.dhash |= d.row(y)[x] < d.row(y)[x + 1] ? 1 : 0;
    }

  Image p = ResizeArea(up, 32, 32);
  // Separable DCT-II on 32x32, keeping only the 8 lowest frequencies in each direction.
  static const auto kCos = [] {
    std::array<std::array<double, 32>, 8> c{};
    for (int u = 0; u < 8; ++u)
      for (int x = 0; x < 32; ++x) c[u][x] = std::cos((2 * x + 1) * u * M_PI / 64.0);
    return c;
  }();
  double rows[32][8];
  for (int y = 0; y < 32; ++y)
    for (int u = 0; u < 8; ++u) {
      double acc = 0;
      for (int x = 0; x < 32; ++x) acc += p.row(y)[x] * kCos[u][x];
      rows[y][u] = acc;
    }
  double coef[64];
  for (int v = 0; v < 8; ++v)
    for (int u = 0; u < 8; ++u) {
      double acc = 0;
      for (int y = 0; y < 32; ++y) acc += rows[y][u] * kCos[v][y];
      coef[v * 8 + u] = acc;
    }
  double sorted[64];
  std::copy(coef, coef + 64, sorted);
  std::nth_element(sorted, sorted + 32, sorted + 64);
  double hi = sorted[32];
  double lo = *std::max_element(sorted, sorted + 32);
  double median = (lo + hi) / 2;
  for (int i = 0; i < 64; ++i) {
    out.phash <<= 1;
    out.phash |= coef[i] > median ? 1 : 0;
  }
  return out;
}

Result<Image> MakeModelInput(const Image& reduced, int orientation, const ModelInputSpec& spec) {
  if (reduced.empty()) return Status::Invalid("empty image");
  if (spec.size <= 0) return Status::Invalid("model input size must be positive");
  // Scales are in the stored frame; the square result is oriented afterwards.
  double sx, sy;
  if (spec.mode == ModelResize::kSquash) {
    sx = double(spec.size) / reduced.width;
    sy = double(spec.size) / reduced.height;
  } else {
    double s = double(spec.size) / std::min(reduced.width, reduced.height);
    sx = sy = s;
  }
  auto r = VipsResize(reduced, sx, sy);
  if (!r.ok()) return r.status();
  Image up = ApplyOrientation(r.value(), orientation);
  if (up.width == spec.size && up.height == spec.size) return up;
  // Centre crop (or fix a rounding pixel of a squash).
  Image out(spec.size, spec.size, 3);
  int x0 = std::max(0, (up.width - spec.size) / 2), y0 = std::max(0, (up.height - spec.size) / 2);
  for (int y = 0; y < spec.size; ++y) {
    int sy2 = std::min(up.height - 1, y0 + y);
    for (int x = 0; x < spec.size; ++x) {
      int sx2 = std::min(up.width - 1, x0 + x);
      std::memcpy(out.row(y) + x * 3, up.row(sy2) + sx2 * 3, 3);
    }
  }
  return out;
}

}  // namespace lumen
