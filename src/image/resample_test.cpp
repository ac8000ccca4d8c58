// The direct path's pieces: the resampler and the in-place EXIF edits.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convert_direct.h"
#include "exif_tiff.h"
#include "resample.h"

namespace lumen {
namespace {

std::vector<uint8_t> Resample(const std::vector<uint8_t>& in, int w, int h, int bands, int ow,
                              int oh, ResampleKernel k) {
  std::vector<uint8_t> out(size_t(ow) * size_t(oh) * size_t(bands), 0);
  RowResampler r(w, h, ow, oh, bands, k, out.data());
  for (int y = 0; y < h; ++y) r.Push(in.data() + size_t(y) * size_t(w) * size_t(bands));
  EXPECT_TRUE(r.done());
  return out;
}

std::vector<uint8_t> Noise(int w, int h, int bands) {
  std::vector<uint8_t> v(size_t(w) * size_t(h) * size_t(bands));
  uint32_t s = 12345;
  for (auto& b : v) b = uint8_t((s = s * 1664525u + 1013904223u) >> 24);
  return v;
}

TEST(Resample, WeightsSumToOneAndStayInsideTheInput) {
  for (auto k : {ResampleKernel::kNearest, ResampleKernel::kLinear, ResampleKernel::kCubic,
                 ResampleKernel::kMitchell, ResampleKernel::kLanczos2, ResampleKernel::kLanczos3})
    for (auto [in, out] : {std::pair{2052, 1600}, {7, 3}, {100, 100}, {3, 10}, {1, 1}}) {
      const auto t = RowResampler::MakeTaps(in, out, k);
      for (int x = 0; x < out; ++x) {
        int sum = 0;
        for (int i = 0; i < t.n; ++i) sum += t.weights[size_t(x * t.n + i)];
        EXPECT_EQ(sum, 1 << 14) << in << "->" << out << " x " << x;
        EXPECT_GE(t.first[size_t(x)], 0);
        EXPECT_LE(t.first[size_t(x)] + t.n, in);
      }
    }
}

TEST(Resample, FlatStaysFlatAndTheSameSizeIsACopy) {
  std::vector<uint8_t> flat(size_t(97) * 61 * 3, 0);
  for (size_t i = 0; i < flat.size(); ++i)
    flat[i] = uint8_t(i % 3 == 0 ? 10 : i % 3 == 1 ? 128 : 250);
  for (auto [ow, oh] : {std::pair{40, 25}, {97, 61}, {13, 60}}) {
    const auto out = Resample(flat, 97, 61, 3, ow, oh, ResampleKernel::kLanczos3);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], flat[i % 3]) << ow << "x" << oh;
  }
  const auto noise = Noise(50, 40, 3);
  EXPECT_EQ(Resample(noise, 50, 40, 3, 50, 40, ResampleKernel::kLanczos3), noise);
  EXPECT_EQ(Resample(noise, 50, 40, 3, 50, 40, ResampleKernel::kCubic), noise);
}

// The resampler's arithmetic written out plainly from its taps: vertical pass to x64, then
// horizontal, rounded once. Whichever clone of the loops runs (AVX2 or baseline), the result is
// this.
std::vector<uint8_t> Reference(const std::vector<uint8_t>& in, int w, int h, int bands, int ow,
                               int oh, ResampleKernel k) {
  const auto th = RowResampler::MakeTaps(w, ow, k), tv = RowResampler::MakeTaps(h, oh, k);
  std::vector<uint8_t> out(size_t(ow) * size_t(oh) * size_t(bands));
  std::vector<int32_t> col(size_t(w) * size_t(bands));
  for (int y = 0; y < oh; ++y) {
    for (int x = 0; x < w * bands; ++x) {
      int32_t a = 0;
      for (int i = 0; i < tv.n; ++i)
        a += tv.weights[size_t(y * tv.n + i)] *
             in[size_t((tv.first[size_t(y)] + i) * w * bands + x)];
      col[size_t(x)] = (a + 128) >> 8;
    }
    for (int x = 0; x < ow; ++x)
      for (int c = 0; c < bands; ++c) {
        int32_t a = 1 << 19;
        for (int i = 0; i < th.n; ++i)
          a +=
              th.weights[size_t(x * th.n + i)] * col[size_t((th.first[size_t(x)] + i) * bands + c)];
        out[size_t((y * ow + x) * bands + c)] = uint8_t(std::clamp(a >> 20, 0, 255));
      }
  }
  return out;
}

TEST(Resample, EqualsItsArithmeticWrittenOut) {
  // Few taps and many, 1 and 3 bands, shrinking and enlarging.
  for (int bands : {1, 3})
    for (auto [w, h, ow, oh] : {std::array{200, 150, 160, 120},
                                {300, 200, 100, 70},
                                {90, 60, 9, 6},
                                {64, 64, 200, 20},
                                {513, 99, 401, 77}}) {
      const auto in = Noise(w, h, bands);
      for (auto k : {ResampleKernel::kLanczos3, ResampleKernel::kCubic, ResampleKernel::kLinear})
        ASSERT_EQ(Resample(in, w, h, bands, ow, oh, k), Reference(in, w, h, bands, ow, oh, k))
            << w << "x" << h << " -> " << ow << "x" << oh << " bands " << bands;
    }
}

TEST(Resample, HalvingWithLinearAveragesPairs) {
  // Shrinking 2:1 with the linear kernel stretched to 2 pixels: output x sits between input 2x
  // and 2x + 1, whose weights are 3/8 each, their outer neighbours 1/8 each.
  std::vector<uint8_t> row = {0, 80, 160, 240, 0, 80, 160, 240};
  const auto out = Resample(row, 8, 1, 1, 4, 1, ResampleKernel::kLinear);
  const double want[] = {
      (0 * 1 + 0 * 3 + 80 * 3 + 160 * 1) / 8.0, (80 * 1 + 160 * 3 + 240 * 3 + 0 * 1) / 8.0,
      (240 * 1 + 0 * 3 + 80 * 3 + 160 * 1) / 8.0, (80 * 1 + 160 * 3 + 240 * 3 + 240 * 1) / 8.0};
  for (int x = 0; x < 4; ++x) EXPECT_NEAR(out[size_t(x)], want[x], 0.51) << x;
}

TEST(Resample, MirroredInputGivesTheMirroredOutput) {
  const int w = 123, h = 77, ow = 50, oh = 31;
  const auto in = Noise(w, h, 3);
  std::vector<uint8_t> mirrored(in.size());
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        mirrored[size_t((y * w + (w - 1 - x)) * 3 + c)] = in[size_t((y * w + x) * 3 + c)];
  const auto a = Resample(in, w, h, 3, ow, oh, ResampleKernel::kLanczos3);
  const auto b = Resample(mirrored, w, h, 3, ow, oh, ResampleKernel::kLanczos3);
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x)
      for (int c = 0; c < 3; ++c)
        ASSERT_NEAR(a[size_t((y * ow + x) * 3 + c)], b[size_t((y * ow + (ow - 1 - x)) * 3 + c)], 1)
            << x << "," << y;
}

// A minimal EXIF TIFF: IFD0 with Make, Orientation and the Exif sub-IFD pointer; the sub-IFD
// with PixelXDimension (LONG) and PixelYDimension (SHORT).
std::string Tiff(bool little, int orientation) {
  std::string d;
  auto u16 = [&](uint32_t v) {
    if (little)
      d += char(v & 0xff), d += char(v >> 8 & 0xff);
    else
      d += char(v >> 8 & 0xff), d += char(v & 0xff);
  };
  auto u32 = [&](uint32_t v) {
    if (little)
      u16(v & 0xffff), u16(v >> 16);
    else
      u16(v >> 16), u16(v & 0xffff);
  };
  d += little ? "II" : "MM";
  u16(42);
  u32(8);
  u16(3);  // IFD0 at 8: 3 entries, ends at 8 + 2 + 36 + 4 = 50
  u16(0x010f), u16(2), u32(4), d += "Sam", d += '\0';  // Make "Sam"
  u16(0x0112), u16(3), u32(1), u16(uint32_t(orientation)), u16(0);
  u16(0x8769), u16(4), u32(1), u32(50);
  u32(0);
  u16(2);  // Exif IFD at 50
  u16(0xa002), u16(4), u32(1), u32(4000);
  u16(0xa003), u16(3), u32(1), u16(3000), u16(0);
  u32(0);
  return d;
}

TEST(ExifTiff, ReadsOrientationAndRewritesItAndThePixelSizeInPlace) {
  for (bool little : {true, false}) {
    std::string t = Tiff(little, 6);
    EXPECT_EQ(ExifOrientation(t), 6);
    const std::string before = t;
    ExifSetUpright(&t, 1600, 1200);
    EXPECT_EQ(t.size(), before.size());
    EXPECT_EQ(ExifOrientation(t), 1);
    // Only the three values changed: Orientation, PixelXDimension, PixelYDimension.
    int changed = 0;
    for (size_t i = 0; i < t.size(); ++i) changed += t[i] != before[i];
    EXPECT_LE(changed, 6);
    const size_t x = 50 + 2 + 8, y = 50 + 2 + 12 + 8;  // value fields in the Exif IFD
    auto u32 = [&](size_t at) {
      uint32_t v = 0;
      for (size_t i = 0; i < 4; ++i)
        v |= uint32_t(uint8_t(t[at + i])) << (little ? 8 * i : 8 * (3 - i));
      return v;
    };
    auto u16 = [&](size_t at) {
      return little ? uint32_t(uint8_t(t[at]) | uint8_t(t[at + 1]) << 8)
                    : uint32_t(uint8_t(t[at]) << 8 | uint8_t(t[at + 1]));
    };
    EXPECT_EQ(u32(x), 1600u);
    EXPECT_EQ(u16(y), 1200u);
  }
}

// convert's planar path hands libwebp JPEG's Y, Cb and Cr rescaled to WebP's limited range.
TEST(WebpRange, IsTheRoundedRescaleForEveryByte) {
  for (int v = 0; v < 256; ++v) {
    EXPECT_EQ(WebpRange(uint8_t(v), false), 16 + int(std::lround(v * 219.0 / 255))) << v;
    EXPECT_EQ(WebpRange(uint8_t(v), true), 128 + int(std::lround((v - 128) * 224.0 / 255))) << v;
  }
  EXPECT_EQ(WebpRange(0, false), 16);
  EXPECT_EQ(WebpRange(255, false), 235);
  EXPECT_EQ(WebpRange(0, true), 16);
  EXPECT_EQ(WebpRange(255, true), 240);
}

TEST(ExifTiff, MalformedDataIsLeftAlone) {
  for (std::string bad : {std::string(), std::string("II*"), std::string("XX\0*\0\0\0\x08", 8),
                          Tiff(true, 6).substr(0, 20)}) {
    const std::string before = bad;
    EXPECT_EQ(ExifOrientation(bad), 1);
    ExifSetUpright(&bad, 10, 10);
    EXPECT_EQ(bad, before);
  }
  std::string odd = Tiff(true, 9);  // out of range
  EXPECT_EQ(ExifOrientation(odd), 1);
}

}  // namespace
}  // namespace lumen
