// Raster -> SVG. Three steps, each cheap next to potrace itself:
//  1. Palette: a colour histogram of a pixel sample (5 bits a channel), split into boxes by
//     variance (median cut that cuts where the squared error drops most), refined by k-means on
//     the histogram cells. All integer sums in a fixed order, so the palette is deterministic.
//  2. Every pixel to its palette entry through a table indexed by the histogram cell, writing
//     the colour-index ("rank") image and the quantised RGB image in one pass.
//  3. One potrace trace per layer over the cumulative mask rank >= i (the rank image padded by
//     its edge pixels), in parallel; each layer's path text is written by its worker, and the
//     document is joined in layer order.
#include "lumen/image/vectorize.h"

#include <potracelib.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <utility>

#include "parallel.h"

namespace lumen {
namespace {

using Rgb = std::array<uint8_t, 3>;

constexpr int kMaxColors = 64;
// potrace keeps a path's area in an int; 2^30 pixels leaves it room.
constexpr int64_t kMaxPixels = int64_t(1) << 30;
// The palette is fitted to at most this many pixels on a regular grid (every other pixel of
// every other row at 1 MP): as good as all of them for 64 colours or fewer, and it keeps the
// histogram's sums in 32 bits.
constexpr int64_t kMaxSamples = int64_t(1) << 18;
constexpr int kKMeansIterations = 8;
// The rank image is padded by this many pixels on every side, copies of the edge pixels. potrace
// sees nothing outside its bitmap, so a shape that touches the border would turn a corner there,
// and smoothing would round that corner inwards and let the layer below (or the ground) show
// along the image's edge. Padded, the shapes run on straight past the border, the smoothing
// happens outside the viewBox, and the canvas clips it away.
constexpr int kPad = 2;

// ---- Palette --------------------------------------------------------------------------------

// The histogram cell of a pixel: 5 bits a channel for RGB (32768 cells, so the pixel -> palette
// table is 32 KiB and stays in cache), the exact value for grey (256 cells).
struct CellSpace {
  bool grey;
  int cells() const { return grey ? 256 : 32768; }
  uint32_t Key(const uint8_t* p) const {
    if (grey) return p[0];
    return uint32_t(p[0] >> 3) << 10 | uint32_t(p[1] >> 3) << 5 | uint32_t(p[2] >> 3);
  }
  // A colour for a cell no sampled pixel fell in: its centre.
  std::array<double, 3> Centre(uint32_t key) const {
    if (grey) return {double(key), double(key), double(key)};
    return {(key >> 10) * 8 + 3.5, ((key >> 5) & 31) * 8 + 3.5, (key & 31) * 8 + 3.5};
  }
};

// A non-empty histogram cell: the sampled pixels in it and their colour sums.
struct Point {
  uint32_t key;
  uint8_t bucket[3];  // the cell's coordinate on each axis (the key's fields)
  uint64_t w;
  uint64_t s[3];
};

std::vector<Point> SampleHistogram(const Image& im, const CellSpace& space) {
  auto samples = [&](int64_t step) {
    return ((im.width + step - 1) / step) * ((im.height + step - 1) / step);
  };
  int64_t step = 1;
  while (samples(step) > kMaxSamples) ++step;
  // One cell's count and sums together: one cache line touched a sample.
  struct Cell {
    uint32_t n, s[3];
  };
  std::vector<Cell> cells(size_t(space.cells()), Cell{0, {0, 0, 0}});
  const int c = im.channels;
  // The grid is offset to the middle of its cells, but never off a one-pixel-thin image.
  for (int64_t y = std::min<int64_t>(step / 2, im.height - 1); y < im.height; y += step) {
    const uint8_t* row = im.row(int(y));
    for (int64_t x = std::min<int64_t>(step / 2, im.width - 1); x < im.width; x += step) {
      const uint8_t* p = row + x * c;
      Cell& cell = cells[space.Key(p)];
      ++cell.n;
      cell.s[0] += p[0];
      cell.s[1] += p[c == 3 ? 1 : 0];
      cell.s[2] += p[c == 3 ? 2 : 0];
    }
  }
  std::vector<Point> pts;
  for (uint32_t k = 0; k < uint32_t(space.cells()); ++k) {
    const Cell& cell = cells[k];
    if (!cell.n) continue;
    Point pt{k, {}, cell.n, {cell.s[0], cell.s[1], cell.s[2]}};
    if (space.grey) {
      pt.bucket[0] = pt.bucket[1] = pt.bucket[2] = uint8_t(k);
    } else {
      pt.bucket[0] = uint8_t(k >> 10), pt.bucket[1] = uint8_t((k >> 5) & 31);
      pt.bucket[2] = uint8_t(k & 31);
    }
    pts.push_back(pt);
  }
  return pts;
}

double Norm2(const double s[3]) {
  return s[0] * s[0] + s[1] * s[1] + s[2] * s[2];
}

// A box of points [begin, end) and its best cut: the points with bucket[axis] < cut go left.
struct Box {
  size_t begin, end;
  int axis = 0;
  int cut = 0;
  double gain = 0;  // drop in summed squared error (cell means as the points) if cut
};

// Finds the cut that removes most squared error: for a split into L and R of a set with weight W
// and colour sum S, the error drops by |S_L|^2/W_L + |S_R|^2/W_R - |S|^2/W. Cuts are planes
// between histogram buckets, tried on every axis from per-bucket totals, so a box costs one pass
// over its points whatever its size. Grey has one axis.
Box PlanCut(const std::vector<Point>& pts, size_t begin, size_t end, bool grey) {
  Box box{begin, end};
  const int buckets = grey ? 256 : 32;
  double tw = 0, ts[3] = {0, 0, 0};
  for (size_t i = begin; i < end; ++i) {
    tw += double(pts[i].w);
    for (int c = 0; c < 3; ++c) ts[c] += double(pts[i].s[c]);
  }
  const double base = Norm2(ts) / tw;
  double bw[256], bs[256 * 3];
  for (int axis = 0; axis < (grey ? 1 : 3); ++axis) {
    std::fill(bw, bw + buckets, 0.0);
    std::fill(bs, bs + buckets * 3, 0.0);
    for (size_t i = begin; i < end; ++i) {
      const size_t b = pts[i].bucket[axis];
      bw[b] += double(pts[i].w);
      for (int c = 0; c < 3; ++c) bs[b * 3 + size_t(c)] += double(pts[i].s[c]);
    }
    double lw = 0, ls[3] = {0, 0, 0};
    for (int b = 0; b + 1 < buckets; ++b) {
      lw += bw[size_t(b)];
      for (int c = 0; c < 3; ++c) ls[c] += bs[size_t(b) * 3 + size_t(c)];
      const double rw = tw - lw;
      if (lw <= 0 || rw <= 0) continue;
      const double rs[3] = {ts[0] - ls[0], ts[1] - ls[1], ts[2] - ls[2]};
      const double gain = Norm2(ls) / lw + Norm2(rs) / rw - base;
      if (gain > box.gain) box.gain = gain, box.axis = axis, box.cut = b + 1;
    }
  }
  return box;
}

// Up to k palette colours for the points (fewer if there are fewer cells), as integer colour
// sums and weights so that the k-means centroids are exact and reproducible.
std::vector<Rgb> FitPalette(std::vector<Point>& pts, int k, bool grey) {
  std::vector<Box> boxes{PlanCut(pts, 0, pts.size(), grey)};
  while (int(boxes.size()) < k) {
    size_t pick = 0;
    for (size_t i = 1; i < boxes.size(); ++i)
      if (boxes[i].gain > boxes[pick].gain) pick = i;
    const Box b = boxes[pick];
    if (b.gain <= 0) break;
    // std::stable_partition keeps the points in key order within each side, which keeps every
    // later step independent of how the cuts happened to shuffle them.
    const auto mid = std::stable_partition(
        pts.begin() + std::ptrdiff_t(b.begin), pts.begin() + std::ptrdiff_t(b.end),
        [&](const Point& p) { return p.bucket[b.axis] < b.cut; });
    const size_t m = size_t(mid - pts.begin());
    boxes[pick] = PlanCut(pts, b.begin, m, grey);
    boxes.push_back(PlanCut(pts, m, b.end, grey));
  }
  std::vector<std::array<double, 3>> centre(boxes.size());
  for (size_t j = 0; j < boxes.size(); ++j) {
    uint64_t w = 0, s[3] = {0, 0, 0};
    for (size_t i = boxes[j].begin; i < boxes[j].end; ++i) {
      w += pts[i].w;
      for (int c = 0; c < 3; ++c) s[c] += pts[i].s[c];
    }
    for (int c = 0; c < 3; ++c) centre[j][size_t(c)] = double(s[c]) / double(w);
  }
  // k-means over the cells, seeded by the boxes: moves the colours to where the pixels are
  // rather than where the cuts fell. An entry that loses all its cells keeps its colour (it is
  // dropped later if no pixel maps to it).
  const size_t kk = centre.size();
  std::vector<uint32_t> owner(pts.size(), UINT32_MAX);
  std::vector<uint64_t> w(kk), s(kk * 3);
  for (int it = 0; it < kKMeansIterations; ++it) {
    bool moved = false;
    for (size_t i = 0; i < pts.size(); ++i) {
      const double inv = 1.0 / double(pts[i].w);
      const double p[3] = {double(pts[i].s[0]) * inv, double(pts[i].s[1]) * inv,
                           double(pts[i].s[2]) * inv};
      uint32_t best = 0;
      double bd = INFINITY;
      for (size_t j = 0; j < kk; ++j) {
        const double d0 = p[0] - centre[j][0], d1 = p[1] - centre[j][1], d2 = p[2] - centre[j][2];
        const double d = d0 * d0 + d1 * d1 + d2 * d2;
        if (d < bd) bd = d, best = uint32_t(j);
      }
      if (owner[i] != best) owner[i] = best, moved = true;
    }
    if (!moved) break;
    std::fill(w.begin(), w.end(), 0);
    std::fill(s.begin(), s.end(), 0);
    for (size_t i = 0; i < pts.size(); ++i) {
      w[owner[i]] += pts[i].w;
      for (int c = 0; c < 3; ++c) s[owner[i] * 3 + size_t(c)] += pts[i].s[c];
    }
    for (size_t j = 0; j < kk; ++j)
      if (w[j])
        for (int c = 0; c < 3; ++c)
          centre[j][size_t(c)] = double(s[j * 3 + size_t(c)]) / double(w[j]);
  }
  std::vector<Rgb> pal;
  for (const auto& c : centre) {
    const Rgb q{uint8_t(std::lround(c[0])), uint8_t(std::lround(c[1])), uint8_t(std::lround(c[2]))};
    if (std::find(pal.begin(), pal.end(), q) == pal.end()) pal.push_back(q);
  }
  return pal;
}

int Luma(const Rgb& c) {
  return 299 * c[0] + 587 * c[1] + 114 * c[2];
}

// Paint order: by luminance, from the tone most of the image is in (the background rect) to the
// other extreme on top. Measured on a photo, a scanned newspaper page, a diagram and a chart at
// 16 colours (rsvg-convert rendering against the quantised raster):
//  - Luminance, not area: a boundary between the colours at paint positions a < b is traced by
//    every layer a+1..b, so colours that meet should sit close in the order. Neighbouring
//    regions mostly differ by shading, so in luminance order each cumulative mask is a
//    brightness threshold, one coherent shape per layer; area order puts neighbours far apart
//    and every layer traces a patchwork: twice the SVG size and 3 dB worse on the photo.
//  - Minority tone on top: the detail (text, lines, a subject on a plain ground) is then drawn
//    as its own shapes over the ground instead of as cracks in it, which the smoothing of the
//    ground's layers erodes. 3-4 dB better on dark-on-light graphics and, symmetrically, on
//    their inverted copies; within 0.5 dB either way on the photo.
// The side is chosen by comparing the mean luma of the sample with the midpoint between the
// lightest and darkest entry (integers, so the choice is exact). Equal lumas go by colour, so
// the order is total.
void SortForPainting(const std::vector<Point>& pts, std::vector<Rgb>& pal) {
  std::sort(pal.begin(), pal.end(), [](const Rgb& a, const Rgb& b) {
    const int la = Luma(a), lb = Luma(b);
    return la != lb ? la > lb : a > b;
  });
  uint64_t w = 0, luma = 0;
  for (const Point& p : pts) w += p.w, luma += 299 * p.s[0] + 587 * p.s[1] + 114 * p.s[2];
  const uint64_t mid2 = uint64_t(Luma(pal.front()) + Luma(pal.back()));  // twice the midpoint
  if (2 * luma < mid2 * w) std::reverse(pal.begin(), pal.end());
}

// ---- Quantisation ---------------------------------------------------------------------------

// rank[cell] = the nearest palette entry to the cell's sampled mean (or its centre if no sample
// fell in it), in parallel over blocks of cells.
std::vector<uint8_t> CellTable(const std::vector<Point>& pts, const CellSpace& space,
                               const std::vector<Rgb>& pal, int threads) {
  std::vector<std::array<double, 3>> colour(size_t(space.cells()));
  for (uint32_t k = 0; k < uint32_t(space.cells()); ++k) colour[k] = space.Centre(k);
  for (const Point& p : pts)
    for (int c = 0; c < 3; ++c) colour[p.key][size_t(c)] = double(p.s[c]) / double(p.w);
  std::vector<uint8_t> table(colour.size());
  constexpr int kBlock = 2048;
  const int blocks = int((colour.size() + kBlock - 1) / kBlock);
  ParallelFor(blocks, threads, [&](int, int block) {
    const size_t end = std::min(colour.size(), size_t(block + 1) * kBlock);
    for (size_t k = size_t(block) * kBlock; k < end; ++k) {
      double bd = INFINITY;
      for (size_t j = 0; j < pal.size(); ++j) {
        const double d0 = colour[k][0] - pal[j][0], d1 = colour[k][1] - pal[j][1],
                     d2 = colour[k][2] - pal[j][2];
        const double d = d0 * d0 + d1 * d1 + d2 * d2;
        if (d < bd) bd = d, table[k] = uint8_t(j);
      }
    }
  });
  return table;
}

// ---- Tracing --------------------------------------------------------------------------------

constexpr int kWordBits = int(sizeof(potrace_word)) * 8;

// One row of the mask rank >= t in potrace's layout (leftmost pixel in the most significant
// bit, bits past the width zero). Eight pixels at a time: ranks are < 64, so adding 128 - t to
// every byte of a 64-bit load sets a byte's top bit exactly when its rank is >= t, without
// carries between bytes; the multiply gathers those eight bits into one byte, first pixel
// highest.
static_assert(kMaxColors <= 128, "MaskRow's byte arithmetic needs ranks below 128");
void MaskRow(const uint8_t* rank, int w, int t, potrace_word* out) {
  int x = 0, word = 0;
  if constexpr (std::endian::native == std::endian::little) {
    const uint64_t add = uint64_t(128 - t) * 0x0101010101010101ull;
    for (; x + kWordBits <= w; x += kWordBits) {
      potrace_word acc = 0;
      for (int g = 0; g < kWordBits / 8; ++g) {
        uint64_t v;
        std::memcpy(&v, rank + x + 8 * g, 8);
        const uint64_t top = ((v + add) >> 7) & 0x0101010101010101ull;
        acc |= potrace_word((top * 0x8040201008040201ull) >> 56) << (kWordBits - 8 - 8 * g);
      }
      out[word++] = acc;
    }
  }
  for (; x < w; ++word) {
    potrace_word acc = 0;
    for (int b = kWordBits - 1; b >= 0 && x < w; --b, ++x)
      if (rank[x] >= t) acc |= potrace_word(1) << b;
    out[word] = acc;
  }
}

struct ParamFree {
  void operator()(potrace_param_t* p) const { potrace_param_free(p); }
};
struct StateFree {
  void operator()(potrace_state_t* s) const { potrace_state_free(s); }
};

// Path data in hundredths of a pixel, relative commands: the deltas of integers are exact, so
// rounding never accumulates along a path, and short deltas are what keeps the file small.
// Numbers are as short as SVG allows: no trailing zeros, no leading "0." ("-.5"), no separator
// before a minus sign or before ".5" after a number that already had its decimal point.
class PathWriter {
 public:
  // `pad`: the bitmap's padding, taken off every coordinate.
  PathWriter(std::string* out, int pad) : out_(out), pad_(int64_t(pad) * 100) {}

  // One subpath per potrace curve. potrace numbers bitmap rows upwards from its origin; the mask
  // rows are given to it top row first, so its y is already the SVG's y-down coordinate (the
  // image is mirrored in potrace's eyes, which flips every path's winding alike: outer
  // boundaries and holes stay opposite, which is all fill-rule nonzero needs).
  void Curve(const potrace_curve_t& c) {
    if (c.n <= 0) return;
    const Pt start = Round(c.c[c.n - 1][2]);
    Command('m');
    Number(start.x - cur_.x);
    Number(start.y - cur_.y);
    cur_ = start;
    for (int i = 0; i < c.n; ++i) {
      const potrace_dpoint_t* s = c.c[i];
      if (c.tag[i] == POTRACE_CORNER) {
        LineTo(Round(s[1]));
        LineTo(Round(s[2]));
      } else {
        Command('c');
        for (int j = 0; j < 3; ++j) {
          const Pt q = Round(s[j]);
          Number(q.x - cur_.x);
          Number(q.y - cur_.y);
        }
        cur_ = Round(s[2]);
      }
    }
    // The last segment ends on the start point, which is where z leaves the current point.
    Command('z');
  }

 private:
  struct Pt {
    int64_t x = 0, y = 0;
  };
  Pt Round(const potrace_dpoint_t& p) const {
    return {int64_t(std::floor(p.x * 100 + 0.5)) - pad_,
            int64_t(std::floor(p.y * 100 + 0.5)) - pad_};
  }

  void LineTo(Pt q) {
    const int64_t dx = q.x - cur_.x, dy = q.y - cur_.y;
    if (dx == 0 && dy == 0) return;
    if (dy == 0) {
      Command('h');
      Number(dx);
    } else if (dx == 0) {
      Command('v');
      Number(dy);
    } else {
      Command('l');
      Number(dx);
      Number(dy);
    }
    cur_ = q;
  }

  // A repeated command letter may be left out (the numbers continue it); z and m always differ
  // from what precedes them.
  void Command(char c) {
    if (c == last_) return;
    out_->push_back(c);
    last_ = c;
    after_number_ = false;
  }

  void Number(int64_t v) {
    char buf[24];
    char* const end = buf + sizeof(buf);
    char* p = end;
    const bool neg = v < 0;
    uint64_t a = neg ? uint64_t(0) - uint64_t(v) : uint64_t(v);
    const unsigned frac = unsigned(a % 100);
    a /= 100;
    if (frac) {
      if (frac % 10) *--p = char('0' + frac % 10);
      *--p = char('0' + frac / 10);
      *--p = '.';
    }
    if (a || !frac) {
      do {
        *--p = char('0' + a % 10);
        a /= 10;
      } while (a);
    }
    const bool leading_dot = *p == '.';
    if (neg) *--p = '-';
    if (after_number_ && !neg && !(leading_dot && last_had_dot_)) out_->push_back(' ');
    out_->append(p, end);
    after_number_ = true;
    last_had_dot_ = frac != 0;
  }

  std::string* out_;
  int64_t pad_;
  Pt cur_;
  char last_ = 0;
  bool after_number_ = false;
  bool last_had_dot_ = false;
};

// Traces the mask rank >= t into `d` (path data, empty if potrace found nothing to keep).
// `rank` is the padded rank image, w x h with the padding; `map` is the worker's bitmap buffer.
Status TraceLayer(const std::vector<uint8_t>& rank, int w, int h, int t,
                  const potrace_param_t& param, std::vector<potrace_word>& map, std::string* d) {
  const int dy = (w + kWordBits - 1) / kWordBits;
  map.resize(size_t(dy) * size_t(h));
  for (int y = 0; y < h; ++y)
    MaskRow(rank.data() + size_t(y) * size_t(w), w, t, map.data() + size_t(y) * size_t(dy));
  const potrace_bitmap_t bm{w, h, dy, map.data()};
  errno = 0;
  std::unique_ptr<potrace_state_t, StateFree> st(potrace_trace(&param, &bm));
  if (!st || st->status != POTRACE_STATUS_OK) {
    const int err = errno;
    return Status::Internal("potrace could not trace colour layer " + std::to_string(t) + ": " +
                            (err ? std::strerror(err) : "incomplete trace"));
  }
  PathWriter pw(d, kPad);
  for (const potrace_path_t* p = st->plist; p; p = p->next) pw.Curve(p->curve);
  return Status::Ok();
}

void AppendColour(std::string* out, const Rgb& c) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('#');
  // #rgb when every channel is a doubled digit: 3 bytes a layer, but free.
  const bool shorter =
      std::all_of(c.begin(), c.end(), [](uint8_t v) { return v >> 4 == (v & 15); });
  for (uint8_t v : c) {
    out->push_back(kHex[v >> 4]);
    if (!shorter) out->push_back(kHex[v & 15]);
  }
}

Status Check(const Image& im, const VectorizeOptions& opt) {
  if (im.width <= 0 || im.height <= 0) return Status::Invalid("cannot vectorize an empty image");
  if (im.channels != 1 && im.channels != 3)
    return Status::Invalid("cannot vectorize an image with " + std::to_string(im.channels) +
                           " channels (1 or 3)");
  const int64_t n = int64_t(im.width) * im.height;
  if (im.pixels.size() != size_t(n) * size_t(im.channels))
    return Status::Invalid("image buffer holds " + std::to_string(im.pixels.size()) +
                           " bytes, not width * height * channels");
  if (n > kMaxPixels)
    return Status::TooLarge("image is " + std::to_string(im.width) + "x" +
                            std::to_string(im.height) +
                            ", above the 2^30 pixels vectorization allows");
  if (opt.colors < 2 || opt.colors > kMaxColors)
    return Status::Invalid("colors must be 2..64, not " + std::to_string(opt.colors));
  if (opt.speckle < 0)
    return Status::Invalid("speckle must be >= 0, not " + std::to_string(opt.speckle));
  if (!(opt.smooth >= 0 && opt.smooth <= 1.34))
    return Status::Invalid("smooth must be 0..1.34, not " + std::to_string(opt.smooth));
  if (!(opt.tolerance >= 0 && std::isfinite(opt.tolerance)))
    return Status::Invalid("tolerance must be >= 0, not " + std::to_string(opt.tolerance));
  if (opt.threads < 0)
    return Status::Invalid("threads must be >= 0, not " + std::to_string(opt.threads));
  return Status::Ok();
}

}  // namespace

Result<VectorizeResult> Vectorize(const Image& image, const VectorizeOptions& opt) {
  LUMEN_RETURN_IF_ERROR(Check(image, opt));
  const int w = image.width, h = image.height;
  const int threads =
      opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const CellSpace space{image.channels == 1};

  std::vector<Point> pts = SampleHistogram(image, space);
  std::vector<Rgb> pal = FitPalette(pts, opt.colors, space.grey);
  SortForPainting(pts, pal);
  const std::vector<uint8_t> table = CellTable(pts, space, pal, threads);

  // Every pixel through the table, in bands of rows; per-worker counts find the entries no
  // pixel chose (possible when the palette was fitted to a sample).
  VectorizeResult r;
  r.quantized = Image(w, h, 3);
  const int pw = w + 2 * kPad, ph = h + 2 * kPad;
  std::vector<uint8_t> rank(size_t(pw) * size_t(ph));
  constexpr int kBand = 64;
  const int bands = (h + kBand - 1) / kBand;
  std::vector<std::array<uint64_t, kMaxColors>> used(size_t(Workers(bands, threads)));
  for (auto& u : used) u.fill(0);
  ParallelFor(bands, threads, [&](int worker, int band) {
    auto& u = used[size_t(worker)];
    for (int y = band * kBand; y < std::min(h, (band + 1) * kBand); ++y) {
      const uint8_t* src = image.row(y);
      uint8_t* q = r.quantized.row(y);
      uint8_t* rk = rank.data() + size_t(y + kPad) * size_t(pw) + kPad;
      for (int x = 0; x < w; ++x, src += image.channels, q += 3) {
        const uint8_t j = table[space.Key(src)];
        rk[x] = j;
        ++u[j];
        std::memcpy(q, pal[j].data(), 3);
      }
      std::memset(rk - kPad, rk[0], kPad);
      std::memset(rk + w, rk[w - 1], kPad);
    }
  });
  for (int y = 0; y < kPad; ++y) {
    std::memcpy(&rank[size_t(y) * size_t(pw)], &rank[size_t(kPad) * size_t(pw)], size_t(pw));
    std::memcpy(&rank[size_t(ph - 1 - y) * size_t(pw)], &rank[size_t(ph - 1 - kPad) * size_t(pw)],
                size_t(pw));
  }
  std::array<uint8_t, kMaxColors> remap{};
  std::vector<Rgb> kept;
  for (size_t j = 0; j < pal.size(); ++j) {
    uint64_t n = 0;
    for (const auto& u : used) n += u[j];
    remap[j] = uint8_t(kept.size());
    if (n) kept.push_back(pal[j]);
  }
  if (kept.size() != pal.size())
    for (uint8_t& v : rank) v = remap[v];
  r.palette = std::move(kept);

  // Layers 1.. in parallel, each into its own string; joined in order below, so the document
  // does not depend on which thread traced what.
  std::unique_ptr<potrace_param_t, ParamFree> param(potrace_param_default());
  if (!param) return Status::Internal("potrace_param_default: out of memory");
  param->turdsize = opt.speckle;
  param->alphamax = opt.smooth;
  param->opticurve = opt.tolerance > 0;
  param->opttolerance = opt.tolerance;
  const int layers = int(r.palette.size()) - 1;
  std::vector<std::string> data(size_t(std::max(layers, 0)));
  std::vector<Status> status(data.size());
  std::vector<std::vector<potrace_word>> maps(size_t(Workers(layers, threads)));
  ParallelFor(layers, threads, [&](int worker, int i) {
    // An exception must not leave a worker thread (that would terminate the process).
    try {
      status[size_t(i)] =
          TraceLayer(rank, pw, ph, i + 1, *param, maps[size_t(worker)], &data[size_t(i)]);
    } catch (const std::bad_alloc&) {
      status[size_t(i)] =
          Status::Internal("out of memory tracing colour layer " + std::to_string(i + 1) +
                           " of a " + std::to_string(w) + "x" + std::to_string(h) + " image");
    }
  });
  for (const Status& s : status) LUMEN_RETURN_IF_ERROR(s);

  const std::string ws = std::to_string(w), hs = std::to_string(h);
  size_t bytes = 256;
  for (const auto& d : data) bytes += d.size() + 32;
  std::string& svg = r.svg;
  svg.reserve(bytes);
  svg += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" ";
  svg += "width=\"" + ws + "\" height=\"" + hs + "\" viewBox=\"0 0 " + ws + " " + hs + "\">\n";
  svg += "<rect width=\"" + ws + "\" height=\"" + hs + "\" fill=\"";
  AppendColour(&svg, r.palette[0]);
  svg += "\"/>\n";
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i].empty()) continue;
    svg += "<path fill=\"";
    AppendColour(&svg, r.palette[i + 1]);
    svg += "\" d=\"";
    svg += data[i];
    svg += "\"/>\n";
    ++r.paths;
  }
  svg += "</svg>\n";
  return r;
}

}  // namespace lumen
