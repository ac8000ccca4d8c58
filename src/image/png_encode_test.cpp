#include "png_encode.h"

#include <gtest/gtest.h>
#include <png.h>
#include <zlib.h>

#include <csetjmp>
#include <cstring>

#include "jpeg_encode.h"
#include "jpeg_error.h"
#include "lumen/image/image.h"
#include "test_support.h"
#include "unsharp.h"

namespace lumen {
namespace {

std::vector<uint8_t> Encode(const Image& img, int threads, const std::vector<PngChunk>& chunks = {},
                            int level = 6) {
  PngEncodeOptions o;
  o.level = level;
  o.threads = threads;
  const size_t stride = size_t(img.width) * size_t(img.channels);
  std::vector<uint8_t> out;
  const Status st = EncodePngStrips(
      img.width, img.height, img.channels, o,
      [&](int y0, int, std::vector<uint8_t>*) { return img.pixels.data() + size_t(y0) * stride; },
      chunks,
      [&](const uint8_t* d, size_t n) {
        out.insert(out.end(), d, d + n);
        return true;
      });
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

struct Chunk {
  std::string type;
  std::string data;
  bool crc_ok;
};

// The file's chunks in order, each with whether its CRC is right.
std::vector<Chunk> Chunks(const std::vector<uint8_t>& png) {
  std::vector<Chunk> out;
  size_t p = 8;
  while (p + 12 <= png.size()) {
    const uint32_t n = uint32_t(png[p]) << 24 | uint32_t(png[p + 1]) << 16 |
                       uint32_t(png[p + 2]) << 8 | png[p + 3];
    if (p + 12 + n > png.size()) break;
    Chunk c{std::string(png.begin() + long(p + 4), png.begin() + long(p + 8)),
            std::string(png.begin() + long(p + 8), png.begin() + long(p + 8 + n)), false};
    const uint32_t crc = uint32_t(crc32(0, &png[p + 4], uInt(n + 4)));
    const uint8_t* t = &png[p + 8 + n];
    c.crc_ok = crc == (uint32_t(t[0]) << 24 | uint32_t(t[1]) << 16 | uint32_t(t[2]) << 8 | t[3]);
    out.push_back(std::move(c));
    p += 12 + n;
  }
  return out;
}

struct Read {
  Image img;
  std::string error;
};

// libpng's reader: it checks every chunk's CRC and the zlib stream (Adler-32 included).
Read Decode(const std::vector<uint8_t>& png) {
  Read r;
  png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, nullptr, nullptr);
  png_infop info = png_create_info_struct(p);
  struct Src {
    const std::vector<uint8_t>* d;
    size_t at;
  } src{&png, 0};
  png_set_error_fn(
      p, &r,
      [](png_structp s, png_const_charp msg) {
        static_cast<Read*>(png_get_error_ptr(s))->error = msg;
        png_longjmp(s, 1);
      },
      [](png_structp, png_const_charp) {});
  png_set_read_fn(p, &src, [](png_structp s, png_bytep out, png_size_t n) {
    auto* q = static_cast<Src*>(png_get_io_ptr(s));
    if (q->at + n > q->d->size()) png_error(s, "read past the end");
    std::memcpy(out, q->d->data() + q->at, n);
    q->at += n;
  });
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(p))) {
    png_destroy_read_struct(&p, &info, nullptr);
    r.img = Image();
    return r;
  }
  png_read_info(p, info);
  const int w = int(png_get_image_width(p, info)), h = int(png_get_image_height(p, info));
  r.img = Image(w, h, png_get_channels(p, info));
  for (int y = 0; y < h; ++y) rows.push_back(r.img.row(y));
  png_read_image(p, rows.data());
  png_read_end(p, nullptr);
  png_destroy_read_struct(&p, &info, nullptr);
  return r;
}

// `img` as a baseline JPEG at `quality` (lumen's strip encoder on two threads), written to `path`;
// its bytes.
Result<std::vector<uint8_t>> WriteJpeg(const Image& img, int quality, const std::string& path) {
  JpegEncodeOptions o;
  o.quality = quality;
  o.threads = 2;
  auto jpeg = EncodeJpegStrips(img.width, img.height, img.channels, o,
                               [&](int y0, int, std::vector<uint8_t>*) { return img.row(y0); }, {});
  if (jpeg.ok()) test::WriteFile(path, *jpeg);
  return jpeg;
}

TEST(PngStrips, StripsOnSeveralThreadsAreOnePngOfTheSamePixels) {
  struct Case {
    int w, h, bands;
  } cases[] = {{2501, 1703, 3}, {1999, 2503, 1}};
  for (const Case& k : cases) {
    SCOPED_TRACE(testing::Message() << k.w << "x" << k.h << "x" << k.bands);
    const Image img = test::MakeNoisyPicture(k.w, k.h, k.bands, uint32_t(k.h));
    for (int threads : {1, 2, 3, 8}) {
      SCOPED_TRACE(testing::Message() << threads << " threads");
      const std::vector<uint8_t> png = Encode(img, threads);
      const Read r = Decode(png);
      ASSERT_EQ(r.error, "");
      ASSERT_EQ(r.img.width, k.w);
      ASSERT_EQ(r.img.height, k.h);
      ASSERT_EQ(r.img.channels, k.bands);
      EXPECT_TRUE(r.img.pixels == img.pixels);
      // One IDAT chunk a strip, every CRC right, and the joined data one zlib stream whose
      // Adler-32 zlib checks: every row behind filter byte 0.
      std::string idat;
      int idats = 0;
      for (const Chunk& c : Chunks(png)) {
        EXPECT_TRUE(c.crc_ok) << c.type;
        if (c.type == "IDAT") {
          ++idats;
          idat += c.data;
        }
      }
      EXPECT_EQ(idats > 1, threads > 1);
      const size_t line = size_t(k.w) * size_t(k.bands) + 1;
      std::vector<uint8_t> raw(line * size_t(k.h) + 1);
      uLongf got = uLongf(raw.size());
      ASSERT_EQ(uncompress(raw.data(), &got, reinterpret_cast<const Bytef*>(idat.data()),
                           uLong(idat.size())),
                Z_OK);
      ASSERT_EQ(got, line * size_t(k.h));
      for (int y = 0; y < k.h; ++y) ASSERT_EQ(raw[size_t(y) * line], 0) << y;
    }
  }
}

TEST(PngStrips, TheLevelAndTheChunksAreWrittenAsAsked) {
  // Gradients without noise, so that the levels differ in size.
  Image img(1600, 1200, 3);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width * 3; ++x) img.row(y)[x] = uint8_t((x / 5 + y / 3) % 251);
  const std::vector<PngChunk> chunks = {{"eXIf", std::string("MM\0*\0\0\0\x08\0\0", 10)},
                                        {"tEXt", std::string("Comment\0lumen", 13)}};
  const std::vector<uint8_t> fast = Encode(img, 2, chunks, 1), small = Encode(img, 2, chunks, 9);
  EXPECT_LT(small.size(), fast.size());
  for (const auto* png : {&fast, &small}) {
    EXPECT_EQ(Decode(*png).error, "");
    const std::vector<Chunk> c = Chunks(*png);
    ASSERT_GE(c.size(), 5u);
    EXPECT_EQ(c[0].type, "IHDR");
    EXPECT_EQ(c[1].type, "eXIf");
    EXPECT_EQ(c[1].data, chunks[0].data);
    EXPECT_EQ(c[2].type, "tEXt");
    EXPECT_EQ(c[3].type, "IDAT");
    EXPECT_EQ(c.back().type, "IEND");
  }
  // The zlib header says the level class (FLEVEL 0 for level 1, 3 for level 9).
  auto first_idat = [](const std::vector<uint8_t>& png) {
    for (const Chunk& c : Chunks(png))
      if (c.type == "IDAT") return c.data;
    return std::string();
  };
  EXPECT_EQ(uint8_t(first_idat(fast)[1]) >> 6, 0);
  EXPECT_EQ(uint8_t(first_idat(small)[1]) >> 6, 3);
}

TEST(PngStrips, AFailedWriteStopsTheEncoderAndBadArgumentsAreRefused) {
  const Image img = test::MakeNoisyPicture(1500, 1500, 3, 9);
  int calls = 0;
  const size_t stride = size_t(img.width) * 3;
  PngEncodeOptions o;
  o.threads = 2;
  const Status st = EncodePngStrips(
      img.width, img.height, 3, o,
      [&](int y0, int, std::vector<uint8_t>*) { return img.pixels.data() + size_t(y0) * stride; },
      {}, [&](const uint8_t*, size_t) { return ++calls < 4; });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(calls, 4);  // nothing after the write that failed
  auto rows = [&](int, int, std::vector<uint8_t>*) { return img.pixels.data(); };
  auto sink = [](const uint8_t*, size_t) { return true; };
  EXPECT_FALSE(EncodePngStrips(10, 10, 4, o, rows, {}, sink).ok());  // no alpha here
  o.level = 12;
  EXPECT_FALSE(EncodePngStrips(10, 10, 3, o, rows, {}, sink).ok());
  o.level = 6;
  EXPECT_FALSE(EncodePngStrips(10, 10, 3, o, rows, {{"toolong", ""}}, sink).ok());
}

TEST(PngStrips, FullSizeSharpenIntoPngIsTheWholeImagesUnsharpMaskOnAnyThreads) {
  // convert's direct path into PNG: the JPEG decoded (on more than one thread, on a thread of
  // its own, the strips following it: 4 MP and up), sharpened strip by strip in the encoder's
  // threads: exactly the unsharp mask of the whole decoded image (PNG is lossless), whatever the
  // threads.
  test::TempDir dir;
  const std::string input = dir.File("in.jpg");
  auto src = WriteJpeg(test::MakeNoisyPicture(2501, 1701, 3, 11), 90, input);
  ASSERT_TRUE(src.ok());
  std::vector<Image> got;
  for (int threads : {1, 2, 5}) {
    auto bytes = test::ConvertOnThreads(input, "sharpen:1.5:1.2,png", threads,
                                        dir.File("out" + std::to_string(threads) + ".png"));
    ASSERT_TRUE(bytes.ok()) << bytes.status().message();
    Read d = Decode(*bytes);
    ASSERT_EQ(d.error, "");
    got.push_back(std::move(d.img));
  }
  // The source as libjpeg decodes it, sharpened whole.
  jpeg_decompress_struct c;
  JpegErrorManager err;
  c.err = UseJpegErrors(&err);
  jpeg_create_decompress(&c);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&c);
    FAIL() << "libjpeg: " << err.message;
  }
  jpeg_mem_src(&c, src->data(), src->size());
  jpeg_read_header(&c, TRUE);
  jpeg_start_decompress(&c);
  Image decoded(int(c.output_width), int(c.output_height), 3);
  while (c.output_scanline < c.output_height) {
    JSAMPROW row = decoded.row(int(c.output_scanline));
    jpeg_read_scanlines(&c, &row, 1);
  }
  jpeg_finish_decompress(&c);
  jpeg_destroy_decompress(&c);
  Image sharp(decoded.width, decoded.height, 3);
  UnsharpMask8(decoded.pixels.data(), sharp.pixels.data(), sharp.width, sharp.height, 3, 1.5, 1.2);
  for (const Image& g : got) EXPECT_TRUE(g.pixels == sharp.pixels);
}

TEST(PngStrips, AShrinkFollowedByTheStripsGivesTheOneThreadPixels) {
  // Shrunk without a crop to 4 MP or more, the decode and the resampler run on their own thread
  // and the encoder's strips follow the rows the resampler writes: the same pixels as one thread
  // (PNG is lossless), with and without a sharpen in the strips, through M/8 (resize:0.5 is 4/8
  // exactly: no resampling left) and through the resampler.
  test::TempDir dir;
  const std::string input = dir.File("in.jpg");
  ASSERT_TRUE(WriteJpeg(test::MakeNoisyPicture(5000, 3400, 3, 17), 90, input).ok());
  for (const char* chain : {"resize:0.7,png", "fit:3000x3000,sharpen,png", "resize:0.5,png"}) {
    std::vector<Image> got;
    for (int threads : {1, 2, 3}) {
      auto bytes = test::ConvertOnThreads(input, chain, threads,
                                          dir.File("out" + std::to_string(threads) + ".png"));
      ASSERT_TRUE(bytes.ok()) << chain << ": " << bytes.status().message();
      Read d = Decode(*bytes);
      ASSERT_EQ(d.error, "") << chain;
      got.push_back(std::move(d.img));
    }
    EXPECT_GE(int64_t(got[0].width) * got[0].height, 4'000'000) << chain;  // the following path
    for (const Image& g : got) {
      EXPECT_EQ(g.width, got[0].width) << chain;
      EXPECT_TRUE(g.pixels == got[0].pixels) << chain;
    }
  }
}

TEST(PngStrips, ADecodeStoppedUnderTheFollowingStripsIsAnErrorNotAHang) {
  // The decode on its own thread stops at the deadline while the strips wait for its rows: each
  // waiting strip is released, the file's error comes back, nothing is left running.
  test::TempDir dir;
  const std::string input = dir.File("big.jpg");
  ASSERT_TRUE(WriteJpeg(test::MakeNoisyPicture(6000, 4000, 3, 3), 95, input).ok());
  DecodeLimits limits;
  limits.max_seconds = 0.02;
  for (const char* chain : {"sharpen,png", "jpeg:90"}) {
    auto r = test::ConvertOnThreads(input, chain, 2, dir.File("out"), limits);
    ASSERT_FALSE(r.ok()) << chain;
    EXPECT_NE(r.status().message().find("big.jpg"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("time limit"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace lumen
