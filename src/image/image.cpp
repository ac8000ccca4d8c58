#include "lumen/image/image.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "resample.h"

namespace lumen {

Image ApplyOrientation(const Image& src, int o) {
  if (o < 2 || o > 8) return src;
  int w = src.width, h = src.height, c = src.channels;
  int ow, oh;
  OrientedSize(w, h, o, &ow, &oh);
  Image dst(ow, oh, c);
  for (int y = 0; y < h; ++y) {
    const uint8_t* s = src.row(y);
    for (int x = 0; x < w; ++x) {
      int dx, dy;
      switch (o) {
        case 2:
          dx = w - 1 - x;
          dy = y;
          break;  // mirror horizontal
        case 3:
          dx = w - 1 - x;
          dy = h - 1 - y;
          break;  // rotate 180
        case 4:
          dx = x;
          dy = h - 1 - y;
          break;  // mirror vertical
        case 5:
          dx = y;
          dy = x;
          break;  // transpose
        case 6:
          dx = h - 1 - y;
          dy = x;
          break;  // rotate 90 CW
        case 7:
          dx = h - 1 - y;
          dy = w - 1 - x;
          break;  // transverse
        default:
          dx = y;
          dy = w - 1 - x;
          break;  // 8: rotate 90 CCW
      }
      uint8_t* d = dst.pixels.data() + (size_t(dy) * ow + dx) * c;
      for (int k = 0; k < c; ++k) d[k] = s[x * c + k];
    }
  }
  return dst;
}

Image ToGray(const Image& src) {
  if (src.channels == 1) return src;
  Image g(src.width, src.height, 1);
  const uint8_t* s = src.pixels.data();
  size_t n = size_t(src.width) * src.height;
  for (size_t i = 0; i < n; ++i, s += src.channels) {
    // Fixed-point 0.299 R + 0.587 G + 0.114 B.
    g.pixels[i] =
        static_cast<uint8_t>((19595u * s[0] + 38470u * s[1] + 7471u * s[2] + 32768u) >> 16);
  }
  return g;
}

namespace {
// For each destination index, the contributing source indices and weights (summing to 1).
struct Span {
  int first;
  std::vector<float> weights;
};

std::vector<Span> AreaSpans(int src, int dst) {
  std::vector<Span> spans(dst);
  double scale = double(src) / dst;
  for (int i = 0; i < dst; ++i) {
    double a = i * scale, b = (i + 1) * scale;
    int first = static_cast<int>(std::floor(a));
    int last = std::min(src - 1, static_cast<int>(std::ceil(b)) - 1);
    spans[i].first = first;
    for (int s = first; s <= last; ++s) {
      double lo = std::max(a, double(s)), hi = std::min(b, double(s + 1));
      spans[i].weights.push_back(static_cast<float>((hi - lo) / scale));
    }
  }
  return spans;
}
}  // namespace

Image ResizeArea(const Image& src, int w, int h) {
  int c = src.channels;
  auto xs = AreaSpans(src.width, w);
  auto ys = AreaSpans(src.height, h);
  // Horizontal pass into floats, then vertical.
  std::vector<float> tmp(size_t(w) * src.height * c);
  for (int y = 0; y < src.height; ++y) {
    const uint8_t* s = src.row(y);
    float* t = tmp.data() + size_t(y) * w * c;
    for (int x = 0; x < w; ++x) {
      const Span& sp = xs[x];
      for (int k = 0; k < c; ++k) {
        float acc = 0;
        for (size_t j = 0; j < sp.weights.size(); ++j)
          acc += sp.weights[j] * s[(sp.first + j) * c + k];
        t[x * c + k] = acc;
      }
    }
  }
  Image dst(w, h, c);
  std::vector<float> acc(size_t(w) * c);
  for (int y = 0; y < h; ++y) {
    std::fill(acc.begin(), acc.end(), 0.f);
    const Span& sp = ys[y];
    for (size_t j = 0; j < sp.weights.size(); ++j) {
      const float* t = tmp.data() + size_t(sp.first + j) * w * c;
      float wt = sp.weights[j];
      for (size_t i = 0; i < acc.size(); ++i) acc[i] += wt * t[i];
    }
    uint8_t* d = dst.row(y);
    for (size_t i = 0; i < acc.size(); ++i)
      d[i] = static_cast<uint8_t>(std::clamp(acc[i] + 0.5f, 0.f, 255.f));
  }
  return dst;
}

namespace {
// The kernels are resample.h's (convert's streaming resampler): one definition of each.
ResampleKernel Kernel(ResampleFilter f) {
  return f == ResampleFilter::kBilinear  ? ResampleKernel::kLinear
         : f == ResampleFilter::kBicubic ? ResampleKernel::kCubic
                                         : ResampleKernel::kLanczos3;
}
double FilterSupport(ResampleFilter f) {
  return KernelSupport(Kernel(f));
}
double FilterValue(ResampleFilter f, double x) {
  return KernelWeight(Kernel(f), x);
}

// Taps for each output index: first source index and normalised weights.
std::vector<Span> FilterSpans(int src, int dst, ResampleFilter f) {
  std::vector<Span> spans(dst);
  double scale = double(src) / dst;
  double fscale = std::max(1.0, scale);
  double support = FilterSupport(f) * fscale;
  for (int i = 0; i < dst; ++i) {
    double center = (i + 0.5) * scale;
    int lo = std::max(0, static_cast<int>(std::floor(center - support)));
    int hi = std::min(src, static_cast<int>(std::ceil(center + support)));
    Span& sp = spans[i];
    sp.first = lo;
    double total = 0;
    for (int s = lo; s < hi; ++s) {
      double wgt = FilterValue(f, (s + 0.5 - center) / fscale);
      sp.weights.push_back(static_cast<float>(wgt));
      total += wgt;
    }
    if (total != 0)
      for (auto& w : sp.weights) w = static_cast<float>(w / total);
    // Trim zero taps at both ends.
    while (!sp.weights.empty() && sp.weights.back() == 0.f) sp.weights.pop_back();
    size_t z = 0;
    while (z < sp.weights.size() && sp.weights[z] == 0.f) ++z;
    sp.first += static_cast<int>(z);
    sp.weights.erase(sp.weights.begin(), sp.weights.begin() + static_cast<long>(z));
  }
  return spans;
}
}  // namespace

Image Resample(const Image& src, int w, int h, ResampleFilter filter) {
  const int c = src.channels;
  auto xs = FilterSpans(src.width, w, filter);
  auto ys = FilterSpans(src.height, h, filter);
  // Only the source rows some output row needs go through the horizontal pass.
  int row_lo = ys.front().first;
  int row_hi = ys.back().first + static_cast<int>(ys.back().weights.size());
  std::vector<float> tmp(size_t(w) * (row_hi - row_lo) * c);
  for (int y = row_lo; y < row_hi; ++y) {
    const uint8_t* s = src.row(y);
    float* t = tmp.data() + size_t(y - row_lo) * w * c;
    for (int x = 0; x < w; ++x) {
      const Span& sp = xs[x];
      const uint8_t* p = s + size_t(sp.first) * c;
      const size_t n = sp.weights.size();
      if (c == 3) {
        float a0 = 0, a1 = 0, a2 = 0;
        for (size_t j = 0; j < n; ++j, p += 3) {
          float wt = sp.weights[j];
          a0 += wt * p[0];
          a1 += wt * p[1];
          a2 += wt * p[2];
        }
        t[x * 3] = a0;
        t[x * 3 + 1] = a1;
        t[x * 3 + 2] = a2;
      } else {
        for (int k = 0; k < c; ++k) {
          float acc = 0;
          for (size_t j = 0; j < n; ++j) acc += sp.weights[j] * p[j * c + k];
          t[x * c + k] = acc;
        }
      }
    }
  }
  Image dst(w, h, c);
  const size_t row_len = size_t(w) * c;
  std::vector<float> acc(row_len);
  for (int y = 0; y < h; ++y) {
    const Span& sp = ys[y];
    std::fill(acc.begin(), acc.end(), 0.f);
    for (size_t j = 0; j < sp.weights.size(); ++j) {
      const float* t = tmp.data() + size_t(sp.first + static_cast<int>(j) - row_lo) * row_len;
      const float wt = sp.weights[j];
      for (size_t i = 0; i < row_len; ++i) acc[i] += wt * t[i];
    }
    uint8_t* d = dst.row(y);
    for (size_t i = 0; i < row_len; ++i)
      d[i] = static_cast<uint8_t>(std::clamp(acc[i] + 0.5f, 0.f, 255.f));
  }
  return dst;
}

}  // namespace lumen
