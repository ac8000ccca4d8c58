#include "jpeg_encode.h"

#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>

#include "jpeg_error.h"
#include "lumen/image/decode.h"
#include "lumen/image/image.h"
#include "test_support.h"
#include "unsharp.h"

namespace lumen {
namespace {

struct Decoded {
  Image img;
  long warnings = 0;
  int restart_interval = 0;
};

// libjpeg's decode, with its count of warnings (a misplaced restart marker is one).
Decoded Decode(const std::vector<uint8_t>& jpeg) {
  jpeg_decompress_struct d;
  JpegErrorManager err;
  d.err = UseJpegErrors(&err);
  Decoded out;
  jpeg_create_decompress(&d);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&d);
    ADD_FAILURE() << "libjpeg: " << err.message;
    return out;
  }
  jpeg_mem_src(&d, jpeg.data(), jpeg.size());
  jpeg_read_header(&d, TRUE);
  jpeg_start_decompress(&d);
  out.img = Image(int(d.output_width), int(d.output_height), d.output_components);
  while (d.output_scanline < d.output_height) {
    JSAMPROW row = out.img.row(int(d.output_scanline));
    jpeg_read_scanlines(&d, &row, 1);
  }
  out.restart_interval = int(d.restart_interval);
  jpeg_finish_decompress(&d);
  out.warnings = err.pub.num_warnings;
  jpeg_destroy_decompress(&d);
  return out;
}

Result<std::vector<uint8_t>> Encode(const Image& img, bool full_chroma, int threads) {
  JpegEncodeOptions o;
  o.quality = 88;
  o.full_chroma = full_chroma;
  o.threads = threads;
  const size_t stride = size_t(img.width) * size_t(img.channels);
  auto rows = [&](int y0, int, std::vector<uint8_t>*) {
    return img.pixels.data() + size_t(y0) * stride;
  };
  auto markers = [](jpeg_compress_struct* c) {
    const char text[] = "lumen test";
    jpeg_write_marker(c, JPEG_COM, reinterpret_cast<const JOCTET*>(text), sizeof text - 1);
  };
  return EncodeJpegStrips(img.width, img.height, img.channels, o, rows, markers);
}

TEST(JpegStrips, AnEncoderAbandonedHalfWayFreesItsOutputOnce) {
  // Rows that stop coming (the decode the strips follow has failed) after the output buffer has
  // grown several times: one encoder passes the exception on, strips turn it into the file's
  // error; nothing is freed twice (it was, with libjpeg's jpeg_mem_dest: ASan's double free,
  // glibc's "double free or corruption" once the strips got far enough).
  const Image img = test::MakeNoisyPicture(2400, 2000, 3, 5);
  const size_t stride = size_t(img.width) * 3;
  auto rows = [&](int y0, int n, std::vector<uint8_t>*) -> const uint8_t* {
    if (y0 + n > 1500) throw std::runtime_error("the decode stopped");
    return img.pixels.data() + size_t(y0) * stride;
  };
  for (int threads : {1, 2, 3}) {
    JpegEncodeOptions o;
    o.quality = 95;
    o.threads = threads;
    if (threads == 1) {
      EXPECT_THROW((void)EncodeJpegStrips(img.width, img.height, 3, o, rows, {}),
                   std::runtime_error);
      continue;
    }
    auto r = EncodeJpegStrips(img.width, img.height, 3, o, rows, {});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("the decode stopped"), std::string::npos)
        << r.status().message();
  }
}

TEST(JpegStrips, StripsOnSeveralThreadsDecodeToTheSamePixelsAsOneEncoder) {
  // Odd sizes (a partial MCU at the right and the bottom), 4:2:0, 4:4:4 and grey, above the
  // size from which strips are used.
  struct Case {
    int w, h, bands;
    bool full;
  } cases[] = {{1999, 1333, 3, false}, {1777, 1301, 3, true}, {2101, 1003, 1, false}};
  for (const Case& k : cases) {
    SCOPED_TRACE(testing::Message() << k.w << "x" << k.h << "x" << k.bands << " full " << k.full);
    const Image img = test::MakeNoisyPicture(k.w, k.h, k.bands, uint32_t(k.w));
    auto one = Encode(img, k.full, 1);
    ASSERT_TRUE(one.ok()) << one.status().message();
    const Decoded a = Decode(*one);
    EXPECT_EQ(a.restart_interval, 0);  // one encoder: an ordinary file
    for (int threads : {2, 3, 8}) {
      auto many = Encode(img, k.full, threads);
      ASSERT_TRUE(many.ok()) << many.status().message();
      const Decoded b = Decode(*many);
      EXPECT_EQ(b.warnings, 0) << threads << " threads";
      EXPECT_GT(b.restart_interval, 0);  // joined at restart markers
      ASSERT_EQ(b.img.width, k.w);
      ASSERT_EQ(b.img.height, k.h);
      EXPECT_TRUE(b.img.pixels == a.img.pixels) << threads << " threads";
      // The header's own markers once, from the first strip.
      const std::string bytes(many->begin(), many->end());
      EXPECT_EQ(bytes.find("lumen test"), bytes.rfind("lumen test"));
      EXPECT_NE(bytes.find("lumen test"), std::string::npos);
    }
  }
  // Small images are one encoder whatever the threads.
  const Image small = test::MakeNoisyPicture(640, 480, 3, 7);
  auto s = Encode(small, false, 4);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Decode(*s).restart_interval, 0);
  // What cannot be a JPEG is refused, not encoded.
  EXPECT_FALSE(Encode(Image(70000, 8, 3), false, 2).ok());
}

TEST(JpegStrips, FullSizeSharpenIsTheSameOnOneThreadAndOnSeveral) {
  // convert's direct path at full size: sharpen done strip by strip in the encoder's threads
  // (4 MP and up on more than one thread: the strips following the decode on its own thread)
  // gives the whole image's unsharp mask, then the same JPEG pixels whatever the threads.
  test::TempDir dir;
  const Image img = test::MakeNoisyPicture(2501, 1701, 3, 11);
  auto src = Encode(img, true, 1);
  ASSERT_TRUE(src.ok());
  const std::string input = dir.File("in.jpg");
  test::WriteFile(input, *src);
  std::vector<Image> got;
  for (int threads : {1, 2, 5}) {
    auto bytes = test::ConvertOnThreads(input, "sharpen:1.5:1.2,jpeg:92", threads,
                                        dir.File("out" + std::to_string(threads) + ".jpg"));
    ASSERT_TRUE(bytes.ok()) << bytes.status().message();
    Decoded d = Decode(*bytes);
    EXPECT_EQ(d.warnings, 0);
    got.push_back(std::move(d.img));
  }
  EXPECT_TRUE(got[0].pixels == got[1].pixels);
  EXPECT_TRUE(got[0].pixels == got[2].pixels);
  // And that is the unsharp mask of the whole decoded image, encoded by one encoder.
  const Decoded decoded = Decode(*src);
  Image sharp(decoded.img.width, decoded.img.height, 3);
  UnsharpMask8(decoded.img.pixels.data(), sharp.pixels.data(), sharp.width, sharp.height, 3, 1.5,
               1.2);
  JpegEncodeOptions o;
  o.quality = 92;
  o.full_chroma = true;  // libvips' choice from quality 90
  auto ref =
      EncodeJpegStrips(sharp.width, sharp.height, 3, o,
                       [&](int y0, int, std::vector<uint8_t>*) { return sharp.row(y0); }, {});
  ASSERT_TRUE(ref.ok());
  EXPECT_TRUE(Decode(*ref).img.pixels == got[0].pixels);
}

}  // namespace
}  // namespace lumen
