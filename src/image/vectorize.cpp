#include "lumen/image/vectorize.h"

#include <potracelib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>

#include <fmt/format.h>

namespace lumen {
namespace {

using Rgb = std::array<uint8_t, 3>;

struct Box {
  std::vector<uint32_t> idx;  // into the samples
};

// Median cut, variance-driven: split the box with the largest squared error along its widest
// channel at that channel's mean (which separates distinct clusters even when one colour holds
// most pixels; the plain median would cut through it), until `k` boxes; the palette is each
// box's mean.
std::vector<std::array<double, 3>> MedianCut(const std::vector<Rgb>& s, int k) {
  std::vector<Box> boxes(1);
  boxes[0].idx.resize(s.size());
  for (uint32_t i = 0; i < s.size(); ++i) boxes[0].idx[i] = i;
  // The box's channel of largest variance, its mean and the squared error along it.
  auto measure = [&](const Box& b, int* axis, double* mean) {
    double sum[3] = {0, 0, 0}, sq[3] = {0, 0, 0};
    for (uint32_t i : b.idx)
      for (int c = 0; c < 3; ++c) sum[c] += s[i][c], sq[c] += double(s[i][c]) * s[i][c];
    const double n = double(std::max<size_t>(1, b.idx.size()));
    int best = 0;
    double err[3];
    for (int c = 0; c < 3; ++c) err[c] = sq[c] - sum[c] * sum[c] / n;
    for (int c = 1; c < 3; ++c)
      if (err[c] > err[best]) best = c;
    *axis = best;
    *mean = sum[best] / n;
    return err[best];
  };
  while (int(boxes.size()) < k) {
    int pick = -1, axis = 0;
    double score = 0.5, mean = 0;
    for (size_t b = 0; b < boxes.size(); ++b) {
      if (boxes[b].idx.size() < 2) continue;
      int ax;
      double m;
      const double e = measure(boxes[b], &ax, &m);
      if (e > score) score = e, pick = int(b), axis = ax, mean = m;
    }
    if (pick < 0) break;  // every box is one colour: fewer colours than asked
    auto& v = boxes[size_t(pick)].idx;
    auto mid = std::stable_partition(v.begin(), v.end(),
                                     [&](uint32_t i) { return double(s[i][axis]) <= mean; });
    if (mid == v.begin() || mid == v.end()) break;
    Box right;
    right.idx.assign(mid, v.end());
    v.erase(mid, v.end());
    boxes.push_back(std::move(right));
  }
  std::vector<std::array<double, 3>> pal;
  for (const auto& b : boxes) {
    std::array<double, 3> m{0, 0, 0};
    for (uint32_t i : b.idx)
      for (int c = 0; c < 3; ++c) m[c] += s[i][c];
    for (double& x : m) x /= double(std::max<size_t>(1, b.idx.size()));
    pal.push_back(m);
  }
  return pal;
}

int Nearest(const std::vector<std::array<double, 3>>& pal, double r, double g, double b) {
  int best = 0;
  double bd = 1e30;
  for (size_t i = 0; i < pal.size(); ++i) {
    const double dr = pal[i][0] - r, dg = pal[i][1] - g, db = pal[i][2] - b;
    const double d = dr * dr * 0.30 + dg * dg * 0.59 + db * db * 0.11;
    if (d < bd) bd = d, best = int(i);
  }
  return best;
}

// A compact number: at most 2 decimals, no trailing zeros ("12", "12.5", "-0.25").
void Num(std::string* o, double v) {
  long long q = std::llround(v * 100);
  if (q < 0) {
    *o += '-';
    q = -q;
  }
  *o += std::to_string(q / 100);
  const int frac = int(q % 100);
  if (frac) {
    *o += '.';
    *o += char('0' + frac / 10);
    if (frac % 10) *o += char('0' + frac % 10);
  }
}

void Point(std::string* o, const potrace_dpoint_t& p) {
  Num(o, p.x);
  *o += ' ';
  Num(o, p.y);
}

// One layer's mask traced into the `d` attribute of its path; false if potrace failed.
bool Trace(const std::vector<uint8_t>& rank, int w, int h, int layer, const VectorizeOptions& opt,
           std::string* d) {
  constexpr int kBits = int(sizeof(potrace_word) * 8);
  potrace_bitmap_t bm;
  bm.w = w;
  bm.h = h;
  bm.dy = (w + kBits - 1) / kBits;
  std::vector<potrace_word> map(size_t(bm.dy) * size_t(h), 0);
  bm.map = map.data();
  for (int y = 0; y < h; ++y) {
    const uint8_t* r = rank.data() + size_t(y) * size_t(w);
    potrace_word* line = map.data() + size_t(y) * size_t(bm.dy);
    for (int x0 = 0; x0 < w; x0 += kBits) {
      potrace_word word = 0;
      const int n = std::min(kBits, w - x0);
      for (int b = 0; b < n; ++b) word |= potrace_word(r[x0 + b] >= layer) << (kBits - 1 - b);
      line[x0 / kBits] = word;
    }
  }
  std::unique_ptr<potrace_param_t, decltype(&potrace_param_free)> p(potrace_param_default(),
                                                                    potrace_param_free);
  if (!p) return false;
  p->turdsize = opt.speckle;
  p->alphamax = opt.smooth;
  p->opticurve = 1;
  p->opttolerance = opt.tolerance;
  std::unique_ptr<potrace_state_t, decltype(&potrace_state_free)> st(potrace_trace(p.get(), &bm),
                                                                     potrace_state_free);
  if (!st || st->status != POTRACE_STATUS_OK) return false;
  // Scanline y is image row y, so the coordinates are already y-down; holes are their own
  // subpaths and the path is filled even-odd.
  for (const potrace_path_t* path = st->plist; path; path = path->next) {
    const potrace_curve_t& c = path->curve;
    if (c.n <= 0) continue;
    *d += 'M';
    Point(d, c.c[c.n - 1][2]);
    for (int i = 0; i < c.n; ++i) {
      if (c.tag[i] == POTRACE_CURVETO) {
        *d += 'C';
        Point(d, c.c[i][0]);
        *d += ' ';
        Point(d, c.c[i][1]);
        *d += ' ';
        Point(d, c.c[i][2]);
      } else {
        *d += 'L';
        Point(d, c.c[i][1]);
        *d += ' ';
        Point(d, c.c[i][2]);
      }
    }
    *d += 'Z';
  }
  return true;
}

}  // namespace

Result<VectorizeResult> Vectorize(const Image& img, const VectorizeOptions& opt) {
  if (img.empty() || (img.channels != 1 && img.channels != 3))
    return Status::Invalid("vectorize needs a grey or RGB image");
  if (opt.colors < 2 || opt.colors > 64)
    return Status::Invalid(fmt::format("svg colors must be 2-64, not {}", opt.colors));
  if (opt.speckle < 0 || opt.smooth < 0 || opt.smooth > 1.34 || opt.tolerance < 0)
    return Status::Invalid("svg speckle, smooth or tolerance out of range");
  const int w = img.width, h = img.height, ch = img.channels;
  const size_t n = size_t(w) * size_t(h);
  auto px = [&](size_t i) -> Rgb {
    const uint8_t* p = img.pixels.data() + i * size_t(ch);
    return ch == 1 ? Rgb{p[0], p[0], p[0]} : Rgb{p[0], p[1], p[2]};
  };
  // 1. Palette from at most ~64K samples on a regular grid (deterministic).
  const size_t step = std::max<size_t>(1, n / 65536);
  std::vector<Rgb> samples;
  for (size_t i = 0; i < n; i += step) samples.push_back(px(i));
  auto pal = MedianCut(samples, opt.colors);
  for (int iter = 0; iter < 4; ++iter) {  // k-means refinement on the samples
    std::vector<std::array<double, 4>> acc(pal.size(), {0, 0, 0, 0});
    for (const Rgb& s : samples) {
      auto& a = acc[size_t(Nearest(pal, s[0], s[1], s[2]))];
      a[0] += s[0], a[1] += s[1], a[2] += s[2], a[3] += 1;
    }
    for (size_t i = 0; i < pal.size(); ++i)
      if (acc[i][3] > 0)
        for (int c = 0; c < 3; ++c) pal[i][c] = acc[i][c] / acc[i][3];
  }
  // 2. Every pixel to its entry, through a cache of the nearest entry per 5-bit cell.
  std::vector<int8_t> cell(32 * 32 * 32, -1);
  std::vector<uint8_t> index(n);
  std::vector<size_t> area(pal.size(), 0);
  for (size_t i = 0; i < n; ++i) {
    const Rgb p = px(i);
    const int key = (p[0] >> 3) << 10 | (p[1] >> 3) << 5 | (p[2] >> 3);
    if (cell[size_t(key)] < 0)
      cell[size_t(key)] =
          int8_t(Nearest(pal, (p[0] & ~7) + 3.5, (p[1] & ~7) + 3.5, (p[2] & ~7) + 3.5));
    index[i] = uint8_t(cell[size_t(key)]);
    ++area[index[i]];
  }
  // Painting order: largest area first (it is the background the others sit on).
  std::vector<int> order;
  for (size_t i = 0; i < pal.size(); ++i)
    if (area[i]) order.push_back(int(i));
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return area[size_t(a)] > area[size_t(b)]; });
  std::vector<uint8_t> rank_of(pal.size(), 0);
  for (size_t r = 0; r < order.size(); ++r) rank_of[size_t(order[r])] = uint8_t(r);
  VectorizeResult out;
  for (int o : order)
    out.palette.push_back({uint8_t(std::lround(pal[size_t(o)][0])),
                           uint8_t(std::lround(pal[size_t(o)][1])),
                           uint8_t(std::lround(pal[size_t(o)][2]))});
  std::vector<uint8_t> rank(n);
  out.quantized = Image(w, h, 3);
  for (size_t i = 0; i < n; ++i) {
    rank[i] = rank_of[index[i]];
    std::memcpy(out.quantized.pixels.data() + 3 * i, out.palette[rank[i]].data(), 3);
  }
  index = {};
  // 3. Layers 1.. traced in parallel, each into its own string.
  const int layers = int(order.size());
  std::vector<std::string> d(size_t(std::max(0, layers)));
  std::atomic<int> next{1};
  std::atomic<bool> failed{false};
  int threads =
      opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::max(1, std::min(threads, layers - 1));
  auto work = [&] {
    for (int l = next++; l < layers && !failed; l = next++)
      if (!Trace(rank, w, h, l, opt, &d[size_t(l)])) failed = true;
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (failed) return Status::Internal("potrace could not trace a colour layer");
  auto hex = [](const Rgb& c) { return fmt::format("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]); };
  std::string& s = out.svg;
  s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\">\n<rect width=\"{0}\" height=\"{1}\" "
      "fill=\"{2}\"/>\n",
      w, h, hex(out.palette[0]));
  for (int l = 1; l < layers; ++l) {
    if (d[size_t(l)].empty()) continue;
    s += "<path fill=\"" + hex(out.palette[size_t(l)]) + "\" fill-rule=\"evenodd\" d=\"";
    s += d[size_t(l)];
    s += "\"/>\n";
    ++out.paths;
  }
  s += "</svg>\n";
  return out;
}

}  // namespace lumen
