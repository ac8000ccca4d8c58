#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <random>

#include "lumen/image/decode.h"
#include "lumen/image/derive.h"
#include "lumen/image/image.h"
#include "test_support.h"

namespace lumen {
namespace {

Image Tiny3x2() {
  // Pixel value = 10*y + x, so positions are recognisable after a transform.
  Image img(3, 2, 1);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x) img.row(y)[x] = static_cast<uint8_t>(10 * y + x);
  return img;
}

TEST(Orientation, AllEightMatchTheExifDefinition) {
  Image s = Tiny3x2();  // rows: [0 1 2] [10 11 12]
  auto flat = [](const Image& i) { return std::vector<uint8_t>(i.pixels.begin(), i.pixels.end()); };
  EXPECT_EQ(flat(ApplyOrientation(s, 1)), (std::vector<uint8_t>{0, 1, 2, 10, 11, 12}));
  EXPECT_EQ(flat(ApplyOrientation(s, 2)), (std::vector<uint8_t>{2, 1, 0, 12, 11, 10}));
  EXPECT_EQ(flat(ApplyOrientation(s, 3)), (std::vector<uint8_t>{12, 11, 10, 2, 1, 0}));
  EXPECT_EQ(flat(ApplyOrientation(s, 4)), (std::vector<uint8_t>{10, 11, 12, 0, 1, 2}));
  Image r6 = ApplyOrientation(s, 6);  // 90 CW: 2 wide, 3 tall
  EXPECT_EQ(r6.width, 2);
  EXPECT_EQ(r6.height, 3);
  EXPECT_EQ(flat(r6), (std::vector<uint8_t>{10, 0, 11, 1, 12, 2}));
  EXPECT_EQ(flat(ApplyOrientation(s, 8)), (std::vector<uint8_t>{2, 12, 1, 11, 0, 10}));
  EXPECT_EQ(flat(ApplyOrientation(s, 5)), (std::vector<uint8_t>{0, 10, 1, 11, 2, 12}));
  EXPECT_EQ(flat(ApplyOrientation(s, 7)), (std::vector<uint8_t>{12, 2, 11, 1, 10, 0}));
  // Rotating four times by 90 degrees gives the original back.
  Image r = s;
  for (int i = 0; i < 4; ++i) r = ApplyOrientation(r, 6);
  EXPECT_EQ(flat(r), flat(s));
}

TEST(ResizeArea, AveragesExactly) {
  Image img(4, 2, 1);
  uint8_t v[] = {0, 100, 200, 40, 20, 80, 60, 0};
  std::copy(v, v + 8, img.pixels.begin());
  Image one = ResizeArea(img, 1, 1);
  EXPECT_EQ(one.pixels[0], 63);  // (0+100+200+40+20+80+60+0)/8 = 62.5 -> 63
  Image two = ResizeArea(img, 2, 1);
  EXPECT_EQ(two.pixels[0], 50);         // (0+100+20+80)/4
  EXPECT_EQ(two.pixels[1], 75);         // (200+40+60+0)/4
  Image three = ResizeArea(img, 3, 1);  // fractional spans keep the mean
  double mean = (three.pixels[0] + three.pixels[1] + three.pixels[2]) / 3.0;
  EXPECT_NEAR(mean, 62.5, 1.0);
}

TEST(Resample, KeepsFlatFieldsAndAgreesWithAreaAveraging) {
  Image flat(300, 200, 3);
  std::fill(flat.pixels.begin(), flat.pixels.end(), 77);
  for (auto f : {ResampleFilter::kBilinear, ResampleFilter::kBicubic, ResampleFilter::kLanczos3}) {
    Image r = Resample(flat, 97, 61, f);
    EXPECT_EQ(r.width, 97);
    EXPECT_EQ(r.height, 61);
    EXPECT_TRUE(std::all_of(r.pixels.begin(), r.pixels.end(), [](uint8_t v) { return v == 77; }));
  }
  // On a smooth picture every filter lands close to the exact area average, and upscaling works.
  Image pic = test::MakePicture(640, 480);
  for (auto f : {ResampleFilter::kBilinear, ResampleFilter::kBicubic, ResampleFilter::kLanczos3})
    EXPECT_LT(test::MeanAbsDiff(Resample(pic, 160, 120, f), ResizeArea(pic, 160, 120)), 2.5);
  Image up = Resample(test::MakePicture(64, 48), 128, 96, ResampleFilter::kBicubic);
  EXPECT_EQ(up.width, 128);
}

TEST(Decode, JpegUsesDctScalingAndMatchesAFullDecode) {
  Image pic = test::MakePicture(3000, 2000);
  auto jpg = test::Encode(pic, ".jpg[Q=92]");
  auto d = DecodeReduced(jpg.data(), jpg.size(), Format::kJpeg, {256, 224}, {});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_STREQ(d->decoder, "turbojpeg");
  EXPECT_EQ(d->width, 3000);
  EXPECT_EQ(d->height, 2000);
  EXPECT_EQ(d->rgb.width, 375);  // 1/8 scale: the smallest that keeps >= 256 x 224
  EXPECT_EQ(d->rgb.height, 250);
  EXPECT_LT(test::MeanAbsDiff(d->rgb, ResizeArea(pic, 375, 250)), 3.0);

  // A bigger target needs a larger scale.
  auto d2 = DecodeReduced(jpg.data(), jpg.size(), Format::kJpeg, {1000, 224}, {});
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(d2->rgb.width, 1125);  // 3/8
}

TEST(Decode, ProgressiveJpegAtOneEighthUsesOnlyTheDcScans) {
  Image pic = test::MakePicture(3000, 2000, 2);
  auto jpg = test::Encode(pic, ".jpg[Q=90,interlace]");
  auto d = DecodeReduced(jpg.data(), jpg.size(), Format::kJpeg, {256, 224}, {});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_STREQ(d->decoder, "libjpeg-dc");
  EXPECT_EQ(d->rgb.width, 375);
  EXPECT_EQ(d->rgb.height, 250);
  EXPECT_LT(test::MeanAbsDiff(d->rgb, ResizeArea(pic, 375, 250)), 3.0);
  // A larger scale needs the AC scans too: the full TurboJPEG decode is used.
  auto big = DecodeReduced(jpg.data(), jpg.size(), Format::kJpeg, {1000, 224}, {});
  ASSERT_TRUE(big.ok());
  EXPECT_STREQ(big->decoder, "turbojpeg");
  // Truncation is still detected although the DC scans are complete.
  for (size_t keep : {jpg.size() * 3 / 4, jpg.size() / 20}) {
    std::vector<uint8_t> cut(jpg.begin(), jpg.begin() + keep);
    auto t = DecodeReduced(cut.data(), cut.size(), Format::kJpeg, {256, 224}, {});
    ASSERT_FALSE(t.ok()) << keep;
    EXPECT_NE(t.status().message().find("truncated"), std::string::npos) << t.status().message();
  }
}

TEST(Decode, EveryFormatDecodesToTheSamePicture) {
  Image pic = test::MakePicture(640, 480, 3);
  for (const char* suffix : {".jpg", ".jpg[interlace]", ".png", ".webp[Q=95]", ".tif",
                             ".heic[Q=90]", ".avif[Q=90]", ".gif"}) {
    auto bytes = test::Encode(pic, suffix);
    Format f = DetectFormat(bytes.data(), bytes.size());
    auto d = DecodeReduced(bytes.data(), bytes.size(), f, {256, 224}, {});
    ASSERT_TRUE(d.ok()) << suffix << ": " << d.status().ToString();
    EXPECT_EQ(d->width, 640) << suffix;
    EXPECT_EQ(d->height, 480) << suffix;
    EXPECT_GE(std::min(d->rgb.width, d->rgb.height), 224) << suffix;
    Image ref = ResizeArea(pic, d->rgb.width, d->rgb.height);
    double tol = std::string(suffix) == ".gif" ? 25.0 : 8.0;  // GIF is palettised
    EXPECT_LT(test::MeanAbsDiff(d->rgb, ref), tol) << suffix;
  }
}

std::vector<uint8_t> WithJpegSize(std::vector<uint8_t> jpg, int w, int h) {
  for (size_t i = 0; i + 9 < jpg.size(); ++i) {
    if (jpg[i] == 0xFF && (jpg[i + 1] == 0xC0 || jpg[i + 1] == 0xC2)) {
      jpg[i + 5] = static_cast<uint8_t>(h >> 8);
      jpg[i + 6] = static_cast<uint8_t>(h);
      jpg[i + 7] = static_cast<uint8_t>(w >> 8);
      jpg[i + 8] = static_cast<uint8_t>(w);
      break;
    }
  }
  return jpg;
}

std::vector<uint8_t> WithPngSize(std::vector<uint8_t> png, uint32_t w, uint32_t h) {
  // IHDR data starts at byte 16; its CRC covers "IHDR" + 13 data bytes.
  for (int i = 0; i < 4; ++i) {
    png[16 + i] = static_cast<uint8_t>(w >> (24 - 8 * i));
    png[20 + i] = static_cast<uint8_t>(h >> (24 - 8 * i));
  }
  uint32_t crc = static_cast<uint32_t>(crc32(0, png.data() + 12, 17));
  for (int i = 0; i < 4; ++i) png[29 + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  return png;
}

TEST(Decode, RefusesDecompressionBombsFromTheHeader) {
  Image pic = test::MakePicture(32, 32);
  auto jpg = WithJpegSize(test::Encode(pic, ".jpg"), 60000, 60000);
  auto d = DecodeReduced(jpg.data(), jpg.size(), Format::kJpeg, {}, {});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kTooLarge);
  EXPECT_NE(d.status().message().find("60000x60000"), std::string::npos) << d.status().message();

  auto png = WithPngSize(test::Encode(pic, ".png"), 60000, 60000);
  auto p = DecodeReduced(png.data(), png.size(), Format::kPng, {}, {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kTooLarge) << p.status().ToString();

  DecodeLimits tight;
  tight.max_pixels = 1000;
  auto ok_jpg = test::Encode(pic, ".jpg");
  EXPECT_EQ(DecodeReduced(ok_jpg.data(), ok_jpg.size(), Format::kJpeg, {}, tight).status().code(),
            Code::kTooLarge);
}

TEST(Decode, TruncatedAndCorruptDataAreErrors) {
  Image pic = test::MakePicture(400, 300);
  auto jpg = test::Encode(pic, ".jpg");
  std::vector<uint8_t> cut(jpg.begin(), jpg.begin() + jpg.size() / 2);
  auto d = DecodeReduced(cut.data(), cut.size(), Format::kJpeg, {}, {});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kCorrupt);
  EXPECT_NE(d.status().message().find("truncated"), std::string::npos) << d.status().message();
  // A failure leaves nothing behind: the next good file on this thread decodes. (TurboJPEG keeps
  // error state in its handle; a fatal error in the scan data used to fail the next file.)
  std::mt19937 rng(5);
  int fatal = 0;
  for (int round = 0; round < 200 && fatal < 5; ++round) {
    std::vector<uint8_t> bad = jpg;
    for (int k = 0; k < 40; ++k)
      bad[std::uniform_int_distribution<size_t>(700, bad.size() - 3)(rng)] = 0xFF;
    auto b = DecodeReduced(bad.data(), bad.size(), Format::kJpeg, {512, 400}, {});
    if (b.ok() || b.status().message().find("corrupt JPEG data") == std::string::npos) continue;
    ++fatal;
    auto good = DecodeReduced(jpg.data(), jpg.size(), Format::kJpeg, {512, 400}, {});
    EXPECT_TRUE(good.ok()) << good.status().ToString();
  }
  EXPECT_GT(fatal, 0);

  auto png = test::Encode(pic, ".png");
  for (size_t i = png.size() / 3; i < png.size() / 3 + 200; ++i) png[i] ^= 0x5A;
  auto p = DecodeReduced(png.data(), png.size(), Format::kPng, {}, {});
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kCorrupt);
}

// Robustness: randomly damaged files of every format give a Status, never a crash (this test also
// runs under ASan+UBSan).
TEST(Decode, RandomlyDamagedFilesNeverCrash) {
  Image pic = test::MakePicture(320, 240, 5);
  std::mt19937 rng(1234);
  int failures = 0, total = 0;
  for (const char* suffix :
       {".jpg", ".jpg[interlace]", ".png", ".webp", ".tif", ".gif", ".heic", ".avif"}) {
    const auto clean = test::Encode(pic, suffix);
    for (int round = 0; round < 40; ++round) {
      std::vector<uint8_t> b = clean;
      if (round % 4 == 3) {
        b.resize(std::uniform_int_distribution<size_t>(1, b.size() - 1)(rng));
      } else {
        int flips = std::uniform_int_distribution<int>(1, 24)(rng);
        for (int k = 0; k < flips; ++k)
          b[std::uniform_int_distribution<size_t>(0, b.size() - 1)(rng)] ^=
              static_cast<uint8_t>(1u << std::uniform_int_distribution<int>(0, 7)(rng));
      }
      Format f = DetectFormat(b.data(), b.size());
      auto d = DecodeReduced(b.data(), b.size(), f, {128, 96}, {});
      ++total;
      if (!d.ok()) {
        ++failures;
        EXPECT_FALSE(d.status().message().empty());
      } else {
        EXPECT_GT(d->rgb.width, 0);
        EXPECT_EQ(d->rgb.pixels.size(), size_t(d->rgb.width) * d->rgb.height * 3);
      }
    }
  }
  EXPECT_GT(failures, 0);
  EXPECT_EQ(total, 320);
}

TEST(PerceptualHash, StableUnderReencodeResizeAndOrientation) {
  Image pic = test::MakePicture(800, 600, 1);
  auto a = ComputePerceptualHashes(pic, 1);
  // Re-encoded at low quality and decoded at another scale.
  auto jpg = test::Encode(pic, ".jpg[Q=40]");
  auto d = DecodeReduced(jpg.data(), jpg.size(), Format::kJpeg, {512, 400}, {});
  ASSERT_TRUE(d.ok());
  auto b = ComputePerceptualHashes(d->rgb, 1);
  EXPECT_LE(HammingDistance(a.phash, b.phash), 4);
  EXPECT_LE(HammingDistance(a.dhash, b.dhash), 6);
  // Pixels rotated 90 CW and labelled with orientation 8 (rotate back) hash like the original.
  Image rotated = ApplyOrientation(pic, 6);
  auto c = ComputePerceptualHashes(rotated, 8);
  EXPECT_LE(HammingDistance(a.phash, c.phash), 2);
  EXPECT_LE(HammingDistance(a.dhash, c.dhash), 2);
  // A different picture is far away.
  Image other = ApplyOrientation(test::MakePicture(800, 600, 4), 3);
  auto e = ComputePerceptualHashes(other, 1);
  EXPECT_GE(HammingDistance(a.phash, e.phash), 16);
  EXPECT_GE(HammingDistance(a.dhash, e.dhash), 16);
  EXPECT_EQ(HammingDistance(0, ~0ull), 64);
}

TEST(Thumbnail, LongestEdgeAndOrientation) {
  Image pic = test::MakePicture(400, 300);
  auto t = MakeThumbnail(pic, 6, {128, 80, 2});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->width, 96);  // 400x300 -> 128x96, rotated to 96x128
  EXPECT_EQ(t->height, 128);
  ASSERT_GT(t->webp.size(), 12u);
  EXPECT_EQ(std::string(t->webp.begin() + 8, t->webp.begin() + 12), "WEBP");
  // Decode the WebP back: the bright block (top-left of the stored picture) is now top-right.
  auto back = DecodeReduced(t->webp.data(), t->webp.size(), Format::kWebp, {128, 96}, {});
  ASSERT_TRUE(back.ok());
  const Image& im = back->rgb;
  const uint8_t* tr = im.row(5) + (im.width - 6) * 3;
  const uint8_t* tl = im.row(5) + 5 * 3;
  EXPECT_GT(tr[0], 200);
  EXPECT_LT(tl[0], 200);
  // Small images are not upscaled.
  auto small = MakeThumbnail(test::MakePicture(50, 40), 1, {256, 80, 2});
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->width, 50);
}

TEST(ModelInput, SquareOfTheRequestedSize) {
  Image pic = test::MakePicture(500, 300);
  for (auto mode : {ModelResize::kSquash, ModelResize::kCenterCrop}) {
    for (int size : {224, 384}) {
      auto m = MakeModelInput(pic, 6, {size, mode});
      ASSERT_TRUE(m.ok());
      EXPECT_EQ(m->width, size);
      EXPECT_EQ(m->height, size);
      EXPECT_EQ(m->channels, 3);
    }
  }
}

}  // namespace
}  // namespace lumen
