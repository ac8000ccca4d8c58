#include "lumen/image/derive.h"

#include <turbojpeg.h>
#include <webp/encode.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "webp_encode.h"

namespace lumen {
namespace {

Result<std::vector<uint8_t>> EncodeWebp(const Image& img, int quality, int effort) {
  WebPPicture pic;
  if (!WebPPictureInit(&pic)) return Status::Internal("libwebp version mismatch");
  pic.width = img.width;
  pic.height = img.height;
  int ok = img.channels == 3 ? WebPPictureImportRGB(&pic, img.pixels.data(), img.width * 3) : 0;
  if (!ok) {
    WebPPictureFree(&pic);
    return Status::Internal("cannot import pixels into libwebp");
  }
  return EncodeWebpPicture(&pic, quality, effort);
}

}  // namespace

Result<Thumbnail> MakeThumbnail(const Image& reduced, int orientation,
                                const ThumbnailOptions& opt) {
  if (reduced.empty()) return Status::Invalid("empty image");
  int longest = std::max(reduced.width, reduced.height);
  Image upright;
  if (longest > opt.size) {
    double s = double(opt.size) / longest;
    int w = std::max(1, static_cast<int>(std::lround(reduced.width * s)));
    int h = std::max(1, static_cast<int>(std::lround(reduced.height * s)));
    upright = ApplyOrientation(Resample(reduced, w, h, ResampleFilter::kLanczos3), orientation);
  } else {
    upright = ApplyOrientation(reduced, orientation);
  }
  auto webp = EncodeWebp(upright, opt.quality, opt.effort);
  if (!webp.ok()) return webp.status();
  Thumbnail t;
  t.webp = std::move(webp.value());
  t.width = upright.width;
  t.height = upright.height;
  return t;
}

Result<std::vector<uint8_t>> EncodeJpeg(const Image& rgb, int quality) {
  if (rgb.empty() || rgb.channels != 3) return Status::Invalid("JPEG encoding needs an RGB image");
  std::unique_ptr<void, int (*)(tjhandle)> h(tjInitCompress(), tjDestroy);
  if (!h) return Status::Internal("cannot start libjpeg-turbo");
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (tjCompress2(h.get(), rgb.pixels.data(), rgb.width, rgb.width * 3, rgb.height, TJPF_RGB, &buf,
                  &size, TJSAMP_420, std::clamp(quality, 1, 100), TJFLAG_FASTDCT) != 0) {
    std::string why = tjGetErrorStr2(h.get());
    tjFree(buf);
    return Status::Internal(fmt::format("JPEG encoding failed: {}", why));
  }
  std::vector<uint8_t> out(buf, buf + size);
  tjFree(buf);
  return out;
}

PerceptualHashes ComputePerceptualHashes(const Image& reduced, int orientation) {
  PerceptualHashes out;
  if (reduced.empty()) return out;
  // Reduce to 64x64 luma first (area average), orient that small square, then derive.
  Image gray = ToGray(reduced);
  {
    const double s = 256.0 / std::max(gray.width, gray.height);
    Image g = s < 1 ? ResizeArea(gray, std::max(3, int(gray.width * s + 0.5)),
                                 std::max(3, int(gray.height * s + 0.5)))
                    : gray;
    double sum = 0, sq = 0;
    int64_t n = 0;
    for (int y = 1; y + 1 < g.height; ++y) {
      const uint8_t *up = g.row(y - 1), *row = g.row(y), *down = g.row(y + 1);
      for (int x = 1; x + 1 < g.width; ++x) {
        const double lap = double(up[x]) + down[x] + row[x - 1] + row[x + 1] - 4.0 * row[x];
        sum += lap;
        sq += lap * lap;
        ++n;
      }
    }
    if (n > 0) out.sharpness = sq / double(n) - (sum / double(n)) * (sum / double(n));
  }
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
  // Sizes are in the stored frame; the result is oriented afterwards.
  int w, h;
  if (spec.mode == ModelResize::kSquash) {
    w = h = spec.size;
  } else {
    double s = double(spec.size) / std::min(reduced.width, reduced.height);
    w = std::max(spec.size, static_cast<int>(std::lround(reduced.width * s)));
    h = std::max(spec.size, static_cast<int>(std::lround(reduced.height * s)));
  }
  Image up = ApplyOrientation(Resample(reduced, w, h, ResampleFilter::kBicubic), orientation);
  if (up.width == spec.size && up.height == spec.size) return up;
  // Centre crop.
  Image out(spec.size, spec.size, 3);
  int x0 = (up.width - spec.size) / 2, y0 = (up.height - spec.size) / 2;
  for (int y = 0; y < spec.size; ++y)
    std::memcpy(out.row(y), up.row(y0 + y) + size_t(x0) * 3, size_t(spec.size) * 3);
  return out;
}

}  // namespace lumen
