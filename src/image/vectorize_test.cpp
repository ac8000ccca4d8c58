// Vectorize: the SVG is well-formed and compact, renders (rsvg-convert, from librsvg2-bin) back
// to the quantised raster, holes stay holes, layers leave no seams, and the output is the same
// at every thread count.
#include "lumen/image/vectorize.h"

#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace lumen {
namespace {

using Rgb = std::array<uint8_t, 3>;

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kRed{220, 40, 40};
constexpr Rgb kBlue{40, 60, 200};
constexpr Rgb kGreen{20, 120, 40};

void Put(Image& im, int x, int y, const Rgb& c) {
  std::copy(c.begin(), c.end(), im.row(y) + 3 * x);
}

Rgb Get(const Image& im, int x, int y) {
  const uint8_t* p = im.row(y) + im.channels * x;
  return im.channels == 1 ? Rgb{p[0], p[0], p[0]} : Rgb{p[0], p[1], p[2]};
}

// 256x256, four flat colours: white ground, a red disc, a blue disc overlapping it (on top), and
// a green bar with a rectangular white hole.
Image Scene() {
  Image im(256, 256, 3);
  for (int y = 0; y < 256; ++y)
    for (int x = 0; x < 256; ++x) {
      auto in_disc = [&](int cx, int cy, int r) {
        return (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
      };
      Rgb c = kWhite;
      if (in_disc(90, 90, 50)) c = kRed;
      if (in_disc(150, 110, 50)) c = kBlue;
      if (x >= 30 && x < 226 && y >= 175 && y < 245 &&
          !(x >= 100 && x < 156 && y >= 195 && y < 225))
        c = kGreen;
      Put(im, x, y, c);
    }
  return im;
}

// Smooth gradients and a dark disc: something like a photo, many colours and no flat regions.
Image Gradients(int w, int h) {
  Image im(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double b = 128 + 100 * std::sin((x + y) / 20.0);
      Rgb c{uint8_t(x * 255 / (w - 1)), uint8_t(y * 255 / (h - 1)), uint8_t(std::lround(b))};
      const int dx = x - w / 3, dy = y - h / 2;
      if (dx * dx + dy * dy < (h / 4) * (h / 4)) c = {uint8_t(c[0] / 4), uint8_t(c[1] / 4), 20};
      Put(im, x, y, c);
    }
  return im;
}

double Psnr(const Image& a, const Image& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.channels, 3);
  EXPECT_EQ(b.channels, 3);
  if (a.pixels.size() != b.pixels.size()) return 0;
  double se = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const double d = double(a.pixels[i]) - double(b.pixels[i]);
    se += d * d;
  }
  if (se == 0) return std::numeric_limits<double>::infinity();
  return 10 * std::log10(255.0 * 255.0 * double(a.pixels.size()) / se);
}

// Renders an SVG with rsvg-convert at its own size (width/height attributes) into RGB. Every
// pixel must come out opaque: the background rect covers the whole canvas.
::testing::AssertionResult Render(const std::string& svg, Image* out) {
  if (std::system("command -v rsvg-convert >/dev/null 2>&1") != 0)
    return ::testing::AssertionFailure()
           << "rsvg-convert is not installed (Debian: apt-get install librsvg2-bin); the "
              "vectorizer's renderings cannot be checked without it";
  static std::atomic<int> counter{0};
  const std::filesystem::path base =
      std::filesystem::temp_directory_path() /
      ("lumen_vectorize_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  const std::string svg_path = base.string() + ".svg", png_path = base.string() + ".png";
  std::ofstream(svg_path, std::ios::binary) << svg;
  const std::string cmd = "rsvg-convert -f png -o '" + png_path + "' '" + svg_path + "'";
  const int rc = std::system(cmd.c_str());
  std::filesystem::remove(svg_path);
  if (rc != 0) return ::testing::AssertionFailure() << cmd << " failed (" << rc << ")";
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&png, png_path.c_str())) {
    std::filesystem::remove(png_path);
    return ::testing::AssertionFailure() << "cannot read " << png_path << ": " << png.message;
  }
  png.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(png));
  const bool read = png_image_finish_read(&png, nullptr, rgba.data(), 0, nullptr);
  std::filesystem::remove(png_path);
  if (!read) return ::testing::AssertionFailure() << "cannot decode the rendering: " << png.message;
  *out = Image(int(png.width), int(png.height), 3);
  for (size_t i = 0; i < rgba.size() / 4; ++i) {
    if (rgba[i * 4 + 3] != 255)
      return ::testing::AssertionFailure() << "rendered pixel " << i << " is not opaque";
    std::copy_n(&rgba[i * 4], 3, &out->pixels[i * 3]);
  }
  return ::testing::AssertionSuccess();
}

// What the SVG holds, by parsing it (libxml2): fails on anything that is not well-formed XML.
struct SvgDoc {
  std::string width, height, view_box;
  int rects = 0;
  std::vector<std::string> fills;  // every element's fill, in document order
  std::vector<std::string> data;   // every <path>'s d
  int others = 0;                  // elements other than <rect> and <path> under <svg>
};

::testing::AssertionResult Parse(const std::string& svg, SvgDoc* doc) {
  struct Free {
    void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
  };
  std::unique_ptr<xmlDoc, Free> xml(
      xmlReadMemory(svg.data(), int(svg.size()), "vectorized.svg", nullptr, XML_PARSE_NONET));
  if (!xml) return ::testing::AssertionFailure() << "the SVG is not well-formed XML";
  const xmlNode* root = xmlDocGetRootElement(xml.get());
  if (!root || std::string(reinterpret_cast<const char*>(root->name)) != "svg")
    return ::testing::AssertionFailure() << "the root element is not <svg>";
  auto prop = [](const xmlNode* n, const char* name) {
    xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
    std::string s = v ? reinterpret_cast<const char*>(v) : "";
    xmlFree(v);
    return s;
  };
  doc->width = prop(root, "width");
  doc->height = prop(root, "height");
  doc->view_box = prop(root, "viewBox");
  for (const xmlNode* n = root->children; n; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    const std::string name = reinterpret_cast<const char*>(n->name);
    if (name == "rect") {
      ++doc->rects;
    } else if (name == "path") {
      doc->data.push_back(prop(n, "d"));
    } else {
      ++doc->others;
      continue;
    }
    doc->fills.push_back(prop(n, "fill"));
  }
  return ::testing::AssertionSuccess();
}

std::string Hex(const Rgb& c) {
  static const char kDigits[] = "0123456789abcdef";
  std::string full = "#", short_form = "#";
  for (uint8_t v : c) {
    full += kDigits[v >> 4], full += kDigits[v & 15];
    short_form += kDigits[v & 15];
  }
  const bool doubled =
      std::all_of(c.begin(), c.end(), [](uint8_t v) { return v >> 4 == (v & 15); });
  return doubled ? short_form : full;
}

// Every number in path data has at most two decimals.
bool AtMostTwoDecimals(const std::string& d) {
  int digits = -1;  // digits since the last '.', -1 outside a fraction
  for (char ch : d) {
    if (ch == '.') {
      digits = 0;
    } else if (ch >= '0' && ch <= '9') {
      if (digits >= 0 && ++digits > 2) return false;
    } else {
      digits = -1;
    }
  }
  return true;
}

int Luma(const Rgb& c) {
  return 299 * c[0] + 587 * c[1] + 114 * c[2];
}

TEST(Vectorize, FlatShapesComeBackWithTheirHole) {
  const Image im = Scene();
  VectorizeOptions o;
  o.colors = 4;
  auto v = Vectorize(im, o);
  ASSERT_TRUE(v.ok()) << v.status().ToString();

  // Four flat colours are four histogram cells: the palette is exact, and so is the raster.
  ASSERT_EQ(v->palette.size(), 4u);
  EXPECT_EQ(std::set<Rgb>(v->palette.begin(), v->palette.end()),
            (std::set<Rgb>{kWhite, kRed, kBlue, kGreen}));
  EXPECT_EQ(v->palette[0], kWhite);  // the ground (most of the image is light) is the rect
  for (size_t i = 2; i < v->palette.size(); ++i)
    EXPECT_LE(Luma(v->palette[i]), Luma(v->palette[i - 1])) << "paint order is by luminance";
  ASSERT_EQ(v->quantized.channels, 3);
  EXPECT_EQ(v->quantized.pixels, im.pixels);

  SvgDoc doc;
  ASSERT_TRUE(Parse(v->svg, &doc));
  EXPECT_EQ(doc.width, "256");
  EXPECT_EQ(doc.height, "256");
  EXPECT_EQ(doc.view_box, "0 0 256 256");
  EXPECT_EQ(doc.rects, 1);
  EXPECT_EQ(doc.others, 0);
  EXPECT_EQ(v->paths, 3u);
  ASSERT_EQ(doc.data.size(), v->paths);
  ASSERT_EQ(doc.fills.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(doc.fills[i], Hex(v->palette[i])) << i;
  for (const std::string& d : doc.data) {
    EXPECT_TRUE(AtMostTwoDecimals(d)) << d.substr(0, 200);
    EXPECT_NE(d.find('c'), std::string::npos) << "discs are traced as Bezier curves";
  }

  Image r;
  ASSERT_TRUE(Render(v->svg, &r));
  EXPECT_GE(Psnr(r, v->quantized), 25.0);
  auto near = [&](int x, int y, const Rgb& want) {
    const Rgb got = Get(r, x, y);
    for (int c = 0; c < 3; ++c)
      if (std::abs(got[size_t(c)] - want[size_t(c)]) > 2) return false;
    return true;
  };
  EXPECT_TRUE(near(128, 210, kWhite)) << "the bar's hole is a hole";
  EXPECT_TRUE(near(102, 197, kWhite)) << "near the hole's corner";
  EXPECT_TRUE(near(10, 10, kWhite));
  EXPECT_TRUE(near(60, 80, kRed));
  EXPECT_TRUE(near(120, 100, kBlue)) << "the blue disc is on top where they overlap";
  EXPECT_TRUE(near(180, 120, kBlue));
  EXPECT_TRUE(near(50, 210, kGreen));
  EXPECT_TRUE(near(200, 240, kGreen));
}

TEST(Vectorize, LayersLeaveNoSeams) {
  // A white ground on the left and diagonal stripes of three saturated colours on the right:
  // every stripe edge is antialiased. Luma is linear, so any blend of the stripe colours is at
  // most as light as the lightest stripe; a seam that lets the white ground through is lighter.
  const Rgb stripes[3] = {{200, 30, 30}, {30, 140, 30}, {30, 30, 200}};
  Image im(256, 256, 3);
  for (int y = 0; y < 256; ++y)
    for (int x = 0; x < 256; ++x) Put(im, x, y, x < 150 ? kWhite : stripes[(x + y) / 17 % 3]);
  VectorizeOptions o;
  o.colors = 4;
  auto v = Vectorize(im, o);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v->palette.size(), 4u);
  EXPECT_EQ(v->palette[0], kWhite);
  EXPECT_EQ(v->paths, 3u);
  Image r;
  ASSERT_TRUE(Render(v->svg, &r));
  EXPECT_GE(Psnr(r, v->quantized), 25.0);
  const int lightest = Luma(stripes[1]);
  int worst = 0, wx = 0, wy = 0;
  for (int y = 0; y < 256; ++y)
    for (int x = 153; x < 256; ++x)  // off the ground's own edge at x = 150
      if (const int l = Luma(Get(r, x, y)); l > worst) worst = l, wx = x, wy = y;
  EXPECT_LE(worst, lightest + 2 * 1000) << "the ground shows through at " << wx << "," << wy;
}

TEST(Vectorize, ShapesKeepTheirColourUpToTheImageEdge) {
  // The stripes meet the image's edges at 45 degrees. potrace sees nothing beyond its bitmap, so
  // unless the shapes are carried on past the edge, it rounds their corners there and pulls
  // them in, and the edge pixels take the colour of the layer below.
  const Rgb stripes[3] = {{200, 30, 30}, {30, 140, 30}, {30, 30, 200}};
  Image im(200, 200, 3);
  for (int y = 0; y < 200; ++y)
    for (int x = 0; x < 200; ++x) Put(im, x, y, stripes[(x + y) / 13 % 3]);
  auto v = Vectorize(im, VectorizeOptions{});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  Image r;
  ASSERT_TRUE(Render(v->svg, &r));
  int worst = 0, wx = 0, wy = 0;
  for (int y = 0; y < 200; ++y)
    for (int x = 0; x < 200; ++x) {
      if (x != 0 && x != 199 && y != 0 && y != 199) continue;
      if ((x + y) % 13 < 2 || (x + y) % 13 > 10) continue;  // next to a stripe's edge: blended
      const Rgb want = Get(im, x, y), got = Get(r, x, y);
      for (int c = 0; c < 3; ++c)
        if (const int d = std::abs(got[size_t(c)] - want[size_t(c)]); d > worst)
          worst = d, wx = x, wy = y;
    }
  EXPECT_LE(worst, 8) << "edge pixel " << wx << "," << wy;
}

TEST(Vectorize, SameSvgTwiceAndAtAnyThreadCount) {
  const Image im = Gradients(320, 240);
  VectorizeOptions o;
  o.colors = 16;
  o.threads = 1;
  auto a = Vectorize(im, o);
  auto b = Vectorize(im, o);
  o.threads = 2;
  auto c = Vectorize(im, o);
  o.threads = 7;
  auto d = Vectorize(im, o);
  o.threads = 0;
  auto e = Vectorize(im, o);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok() && e.ok());
  EXPECT_EQ(a->svg, b->svg);
  EXPECT_EQ(a->svg, c->svg);
  EXPECT_EQ(a->svg, d->svg);
  EXPECT_EQ(a->svg, e->svg);
  EXPECT_EQ(a->quantized.pixels, c->quantized.pixels);
  EXPECT_EQ(a->palette, d->palette);

  // Photo-like input: the palette is full, and the layers render back close to the raster.
  EXPECT_EQ(a->palette.size(), 16u);
  EXPECT_LE(a->paths, 15u);
  EXPECT_GE(a->paths, 10u);
  SvgDoc doc;
  ASSERT_TRUE(Parse(a->svg, &doc));
  EXPECT_EQ(doc.data.size(), a->paths);
  Image r;
  ASSERT_TRUE(Render(a->svg, &r));
  EXPECT_GE(Psnr(r, a->quantized), 25.0);
}

TEST(Vectorize, GreyInput) {
  Image im(200, 150, 1);
  for (int y = 0; y < 150; ++y)
    for (int x = 0; x < 200; ++x) {
      uint8_t v = 230;
      if ((x - 70) * (x - 70) + (y - 75) * (y - 75) < 40 * 40) v = 40;
      if (x >= 120 && x < 180 && y >= 40 && y < 110) v = 128;
      im.row(y)[x] = v;
    }
  VectorizeOptions o;
  o.colors = 8;  // more than the image has
  auto v = Vectorize(im, o);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->palette, (std::vector<Rgb>{{230, 230, 230}, {128, 128, 128}, {40, 40, 40}}));
  EXPECT_EQ(v->paths, 2u);
  ASSERT_EQ(v->quantized.channels, 3);
  for (int y = 0; y < 150; ++y)
    for (int x = 0; x < 200; ++x)
      ASSERT_EQ(Get(v->quantized, x, y), Get(im, x, y)) << x << "," << y;
  SvgDoc doc;
  ASSERT_TRUE(Parse(v->svg, &doc));
  Image r;
  ASSERT_TRUE(Render(v->svg, &r));
  EXPECT_GE(Psnr(r, v->quantized), 25.0);
}

TEST(Vectorize, OneColourIsOneRect) {
  Image im(40, 30, 3);
  std::fill(im.pixels.begin(), im.pixels.end(), uint8_t(0x44));
  auto v = Vectorize(im, VectorizeOptions{});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->palette, (std::vector<Rgb>{{0x44, 0x44, 0x44}}));
  EXPECT_EQ(v->paths, 0u);
  EXPECT_NE(v->svg.find("<rect width=\"40\" height=\"30\" fill=\"#444\"/>"), std::string::npos)
      << v->svg;
  EXPECT_EQ(v->svg.find("<path"), std::string::npos);
  SvgDoc doc;
  ASSERT_TRUE(Parse(v->svg, &doc));
  EXPECT_EQ(doc.rects, 1);
  EXPECT_EQ(doc.view_box, "0 0 40 30");
  Image r;
  ASSERT_TRUE(Render(v->svg, &r));
  EXPECT_EQ(r.pixels, v->quantized.pixels);

  // A one-pixel image, and one-pixel-thin ones, are images too.
  for (auto [w, h] : {std::pair{1, 1}, {1, 300}, {300, 1}}) {
    Image thin(w, h, 3);
    for (int x = 0; x < w; ++x)
      for (int y = 0; y < h; ++y) Put(thin, x, y, (x + y) % 40 < 20 ? kRed : kBlue);
    auto t = Vectorize(thin, VectorizeOptions{});
    ASSERT_TRUE(t.ok()) << w << "x" << h << ": " << t.status().ToString();
    EXPECT_TRUE(Parse(t->svg, &doc));
  }
}

TEST(Vectorize, RejectsBadImagesAndOptions) {
  const Image good = Scene();
  auto code = [](const Image& im, const VectorizeOptions& o) {
    return Vectorize(im, o).status().code();
  };
  EXPECT_EQ(code(Image(), VectorizeOptions{}), Code::kInvalid);
  EXPECT_EQ(code(Image(0, 10, 3), VectorizeOptions{}), Code::kInvalid);
  EXPECT_EQ(code(Image(10, 10, 2), VectorizeOptions{}), Code::kInvalid);
  EXPECT_EQ(code(Image(10, 10, 4), VectorizeOptions{}), Code::kInvalid);
  Image short_buffer(10, 10, 3);
  short_buffer.pixels.pop_back();
  EXPECT_EQ(code(short_buffer, VectorizeOptions{}), Code::kInvalid);

  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<VectorizeOptions> bad(11);
  bad[0].colors = 1;
  bad[1].colors = 65;
  bad[2].colors = -3;
  bad[3].speckle = -1;
  bad[4].smooth = -0.1;
  bad[5].smooth = 2;
  bad[6].smooth = nan;
  bad[7].tolerance = -1;
  bad[8].tolerance = inf;
  bad[9].tolerance = nan;
  bad[10].threads = -1;
  for (size_t i = 0; i < bad.size(); ++i) {
    auto v = Vectorize(good, bad[i]);
    EXPECT_EQ(v.status().code(), Code::kInvalid) << i;
    EXPECT_FALSE(v.status().message().empty()) << i;
  }
  VectorizeOptions edge;
  edge.colors = 2;
  edge.smooth = 0;
  edge.tolerance = 0;
  edge.speckle = 0;
  EXPECT_TRUE(Vectorize(good, edge).ok());
  edge.colors = 64;
  edge.smooth = 1.34;
  EXPECT_TRUE(Vectorize(good, edge).ok());
}

TEST(Vectorize, Large4096) {
  // 16 MP: the palette is fitted to a sample, the bitmaps are 2 MiB each.
  const int n = 4096;
  Image im(n, n, 3);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      Rgb c = kWhite;
      if ((x - 1500) * (x - 1500) + (y - 1500) * (y - 1500) < 1000 * 1000) c = kRed;
      if (x >= 2600 && x < 4000 && y >= 2600 && y < 4000 &&
          !(x >= 3000 && x < 3600 && y >= 3000 && y < 3600))
        c = kBlue;
      Put(im, x, y, c);
    }
  VectorizeOptions o;
  o.colors = 4;
  auto v = Vectorize(im, o);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->palette.size(), 3u);
  EXPECT_EQ(v->paths, 2u);
  EXPECT_EQ(v->quantized.pixels, im.pixels);
  EXPECT_NE(v->svg.find("viewBox=\"0 0 4096 4096\""), std::string::npos);
  // The square's hole: a second subpath in the top layer.
  const size_t last = v->svg.rfind("<path");
  ASSERT_NE(last, std::string::npos);
  EXPECT_EQ(std::count(v->svg.begin() + std::ptrdiff_t(last), v->svg.end(), 'm'), 2);
}

}  // namespace
}  // namespace lumen
