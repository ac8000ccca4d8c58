// Vectorization: the SVG is valid, renders (rsvg-convert, librsvg2-bin) close to the quantised
// raster, holes are holes, layers leave no gaps, and the output is deterministic at any thread
// count.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "lumen/image/decode.h"
#include "lumen/image/vectorize.h"
#include "lumen/io/magic.h"

namespace lumen {
namespace {

// White, a red disc, a blue square with a white hole, a green bar.
Image Scene(int size) {
  Image im(size, size, 3);
  const double s = size / 256.0;
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      uint8_t* p = im.row(y) + 3 * x;
      p[0] = p[1] = p[2] = 255;
      const double dx = x - 80 * s, dy = y - 80 * s;
      if (dx * dx + dy * dy < 50 * s * 50 * s) p[0] = 220, p[1] = 30, p[2] = 30;
      const bool square = x >= 130 * s && x < 230 * s && y >= 120 * s && y < 220 * s;
      const bool hole = x >= 160 * s && x < 200 * s && y >= 150 * s && y < 190 * s;
      if (square && !hole) p[0] = 20, p[1] = 40, p[2] = 200;
      if (y >= 230 * s && y < 245 * s && x >= 20 * s && x < 120 * s)
        p[0] = 30, p[1] = 160, p[2] = 60;
    }
  return im;
}

// Renders `svg` with rsvg-convert and decodes the PNG.
Image Render(const std::string& svg) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string base = (dir / ("lumen-vec-" + std::to_string(::getpid()))).string();
  {
    std::ofstream f(base + ".svg", std::ios::binary);
    f << svg;
  }
  const std::string cmd = "rsvg-convert -b white -o '" + base + ".png' '" + base + ".svg'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "rsvg-convert (Debian librsvg2-bin) failed";
  std::ifstream in(base + ".png", std::ios::binary);
  std::vector<uint8_t> png((std::istreambuf_iterator<char>(in)), {});
  std::filesystem::remove(base + ".svg");
  std::filesystem::remove(base + ".png");
  DecodeTarget t;
  t.min_long_edge = 1 << 20;
  auto d = DecodeReduced(png.data(), png.size(), Format::kPng, t, {});
  EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.status().message());
  return d.ok() ? d->rgb : Image();
}

double Psnr(const Image& a, const Image& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  if (a.pixels.size() != b.pixels.size()) return 0;
  double se = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const double d = double(a.pixels[i]) - b.pixels[i];
    se += d * d;
  }
  const double mse = se / double(a.pixels.size());
  return mse == 0 ? 99 : 10 * std::log10(255.0 * 255.0 / mse);
}

TEST(Vectorize, RendersCloseToTheQuantisedRasterWithHolesAndNoGaps) {
  const Image scene = Scene(256);
  VectorizeOptions o;
  o.colors = 4;
  auto v = Vectorize(scene, o);
  ASSERT_TRUE(v.ok()) << v.status().message();
  ASSERT_EQ(v->palette.size(), 4u);
  EXPECT_EQ(v->palette[0], (std::array<uint8_t, 3>{255, 255, 255}));  // largest: background
  EXPECT_EQ(v->paths, 3u);
  EXPECT_NE(v->svg.find("viewBox=\"0 0 256 256\""), std::string::npos);
  EXPECT_EQ(v->svg.rfind("</svg>\n"), v->svg.size() - 7);
  const Image r = Render(v->svg);
  ASSERT_FALSE(r.empty());
  EXPECT_GE(Psnr(r, v->quantized), 25.0);
  // Inside the hole: the background; inside the square's frame: blue; in the disc: red.
  const uint8_t* hole = r.row(170) + 3 * 180;
  EXPECT_GT(hole[0], 240);
  EXPECT_GT(hole[2], 240);
  const uint8_t* frame = r.row(130) + 3 * 140;
  EXPECT_LT(frame[0], 60);
  EXPECT_GT(frame[2], 160);
  const uint8_t* disc = r.row(80) + 3 * 80;
  EXPECT_GT(disc[0], 180);
  EXPECT_LT(disc[1], 80);
}

// Two colours that meet inside a background: tracing each alone would let the background show
// along their seam; the cumulative layers leave none.
TEST(Vectorize, NoBackgroundBetweenTouchingRegions) {
  Image im(200, 200, 3);
  for (int y = 0; y < 200; ++y)
    for (int x = 0; x < 200; ++x) {
      uint8_t* p = im.row(y) + 3 * x;
      p[0] = p[1] = p[2] = 255;
      const double dx = x - 100, dy = y - 100;
      if (dx * dx + dy * dy < 70 * 70) {  // a disc split along a wavy line
        const bool left = x < 100 + 12 * std::sin(y / 9.0);
        p[0] = left ? 200 : 20, p[1] = 20, p[2] = left ? 20 : 200;
      }
    }
  VectorizeOptions o;
  o.colors = 3;
  auto v = Vectorize(im, o);
  ASSERT_TRUE(v.ok()) << v.status().message();
  const Image r = Render(v->svg);
  ASSERT_FALSE(r.empty());
  EXPECT_GE(Psnr(r, v->quantized), 25.0);
  int light = 0;
  for (int y = 50; y < 150; ++y)
    for (int x = 60; x < 140; ++x) {
      const uint8_t* p = r.row(y) + 3 * x;
      light += p[1] > 100;  // green is low in both colours, high only in the white background
    }
  EXPECT_EQ(light, 0);
}

TEST(Vectorize, DeterministicAtAnyThreadCountGreyAndFlatInputs) {
  const Image scene = Scene(300);
  VectorizeOptions o;
  o.colors = 8;
  o.threads = 1;
  auto a = Vectorize(scene, o);
  o.threads = 2;
  auto b = Vectorize(scene, o);
  o.threads = 7;
  auto c = Vectorize(scene, o);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->svg, b->svg);
  EXPECT_EQ(a->svg, c->svg);

  Image grey(64, 48, 1);
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x) grey.row(y)[x] = uint8_t(x < 32 ? 20 : 230);
  auto g = Vectorize(grey, VectorizeOptions{});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->palette.size(), 2u);
  EXPECT_EQ(g->paths, 1u);

  Image flat(40, 30, 3);
  std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t(77));
  auto f = Vectorize(flat, VectorizeOptions{});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->paths, 0u);
  EXPECT_NE(f->svg.find("<rect width=\"40\" height=\"30\" fill=\"#4d4d4d\"/>"), std::string::npos);

  VectorizeOptions bad;
  bad.colors = 1;
  EXPECT_EQ(Vectorize(flat, bad).status().code(), Code::kInvalid);
  EXPECT_EQ(Vectorize(Image(), VectorizeOptions{}).status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace lumen
