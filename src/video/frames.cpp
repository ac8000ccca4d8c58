#include "frames.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "input.h"

namespace lumen::video {
namespace {

bool IsHdr(const AVFrame* f) {
  return f->color_trc == AVCOL_TRC_SMPTE2084 || f->color_trc == AVCOL_TRC_ARIB_STD_B67;
}

// Display light (in units of SDR reference white, 203 cd/m2, BT.2408) of a PQ or HLG code value,
// tone-mapped into [0, 1] by an extended Reinhard curve whose white is the signal's peak.
std::vector<float> ToneCurve(bool pq) {
  std::vector<float> lut(65536);
  constexpr double kWhite = 203.0;
  const double peak = 1000.0 / kWhite;  // mastering peak of phone HDR (HLG's nominal peak too)
  for (size_t i = 0; i < lut.size(); ++i) {
    const double v = double(i) / 65535.0;
    double nits;
    if (pq) {  // SMPTE ST 2084 EOTF
      constexpr double m1 = 2610.0 / 16384, m2 = 2523.0 / 4096 * 128, c1 = 3424.0 / 4096,
                       c2 = 2413.0 / 4096 * 32, c3 = 2392.0 / 4096 * 32;
      const double p = std::pow(v, 1 / m2);
      nits = 10000.0 * std::pow(std::max(p - c1, 0.0) / (c2 - c3 * p), 1 / m1);
    } else {  // ARIB STD-B67 inverse OETF, then the OOTF of a 1000 cd/m2 display (gamma 1.2)
      constexpr double a = 0.17883277, b = 1 - 4 * a, c = 0.55991073;
      const double e = v <= 0.5 ? v * v / 3 : (std::exp((v - c) / a) + b) / 12;
      nits = 1000.0 * std::pow(e, 1.2);
    }
    const double x = nits / kWhite;
    lut[i] = float(std::min(1.0, x * (1 + x / (peak * peak)) / (1 + x)));
  }
  return lut;
}

// Linear [0, 1] to 8-bit sRGB, 4096 steps.
const std::array<uint8_t, 4096>& SrgbCurve() {
  static const std::array<uint8_t, 4096> lut = [] {
    std::array<uint8_t, 4096> t{};
    for (size_t i = 0; i < t.size(); ++i) {
      const double l = double(i) / 4095.0;
      const double s = l <= 0.0031308 ? 12.92 * l : 1.055 * std::pow(l, 1 / 2.4) - 0.055;
      t[i] = uint8_t(std::lround(std::clamp(s, 0.0, 1.0) * 255));
    }
    return t;
  }();
  return lut;
}

// 16-bit RGB in BT.2020 primaries with a PQ/HLG transfer, to 8-bit sRGB (BT.709 primaries).
void ToneMap(const uint16_t* in, int w, int h, size_t in_stride, bool pq, Image* out) {
  static const std::vector<float> pq_lut = ToneCurve(true), hlg_lut = ToneCurve(false);
  const std::vector<float>& lut = pq ? pq_lut : hlg_lut;
  const auto& srgb = SrgbCurve();
  // BT.2020 to BT.709 (ITU-R BT.2087), on linear light.
  constexpr float m[9] = {1.6605f,  -0.5876f, -0.0728f, -0.1246f, 1.1329f,
                          -0.0083f, -0.0182f, -0.1006f, 1.1187f};
  for (int y = 0; y < h; ++y) {
    const uint16_t* src = in + size_t(y) * in_stride;
    uint8_t* dst = out->row(y);
    for (int x = 0; x < w; ++x) {
      const float r = lut[src[3 * x]], g = lut[src[3 * x + 1]], b = lut[src[3 * x + 2]];
      for (int c = 0; c < 3; ++c) {
        const float v = std::clamp(m[3 * c] * r + m[3 * c + 1] * g + m[3 * c + 2] * b, 0.0f, 1.0f);
        dst[3 * x + c] = srgb[size_t(v * 4095.0f + 0.5f)];
      }
    }
  }
}

}  // namespace

double FrameScore(const Image& rgb) {
  // On the luma at half size (2x2 means) when the frame is large: the same verdicts, a quarter of
  // the work.
  const int f = rgb.width >= 256 && rgb.height >= 128 ? 2 : 1;
  const int w = rgb.width / f, h = rgb.height / f;
  std::vector<uint8_t> y(size_t(w) * size_t(h));
  double sum = 0, sum2 = 0;
  for (int r = 0; r < h; ++r)
    for (int x = 0; x < w; ++x) {
      int acc = 0;
      for (int dy = 0; dy < f; ++dy) {
        const uint8_t* p = rgb.row(r * f + dy) + 3 * x * f;
        for (int dx = 0; dx < f; ++dx, p += 3) acc += 77 * p[0] + 150 * p[1] + 29 * p[2];
      }
      const int v = (acc / (f * f)) >> 8;
      y[size_t(r) * size_t(w) + size_t(x)] = uint8_t(v);
      sum += v;
      sum2 += double(v) * v;
    }
  const double n = double(w) * h, mean = sum / n;
  const double sd = std::sqrt(std::max(0.0, sum2 / n - mean * mean));
  double lap = 0;
  for (int r = 1; r + 1 < h; ++r) {
    const uint8_t* up = &y[size_t(r - 1) * size_t(w)];
    const uint8_t* mid = up + w;
    const uint8_t* down = mid + w;
    int64_t row = 0;
    for (int x = 1; x + 1 < w; ++x)
      row += std::abs(4 * mid[x] - up[x] - down[x] - mid[x - 1] - mid[x + 1]);
    lap += double(row);
  }
  lap /= std::max(1.0, double(w - 2) * (h - 2));
  if (mean < 20 || mean > 240 || sd < 8 || lap < 1.0) return 0;  // black, white, flat, blurred
  return sd * lap;
}

namespace {

// SmallFromYuv over samples of type T with `depth` bits (8: uint8_t; 10, 12: uint16_t).
template <typename T>
void SmallPlanes(const AVFrame* frame, int ow, int oh, bool one_field, int cx, int cy, bool semi,
                 int depth, bool full, bool bt709, Image* out) {
  const int w = frame->width, h = one_field ? frame->height / 2 : frame->height;
  const int field = one_field ? 2 : 1;                  // rows of the top field: every other one
  const double top = double((1 << depth) - 1) / 255.0;  // code values per 8-bit step
  // Y'CbCr to R'G'B' (BT.601 or BT.709), with the range expansion folded in.
  const double ys = (full ? 1.0 : 255.0 / 219) / top, cs = (full ? 1.0 : 255.0 / 224) / top;
  const double yo = full ? 0 : 16 * top, co = 128 * top;
  const double kr = bt709 ? 1.5748 : 1.402, kgu = bt709 ? 0.1873 : 0.344136,
               kgv = bt709 ? 0.4681 : 0.714136, kb = bt709 ? 1.8556 : 1.772;
  auto row_of = [&](int plane, int row) {
    return reinterpret_cast<const T*>(frame->data[plane] +
                                      size_t(row) * size_t(frame->linesize[plane]));
  };
  for (int oy = 0; oy < oh; ++oy) {
    const int y0 = oy * h / oh, y1 = std::max(y0 + 1, (oy + 1) * h / oh);
    const int sy = std::max(1, (y1 - y0 + 2) / 3);
    uint8_t* dst = out->row(oy);
    for (int ox = 0; ox < ow; ++ox) {
      const int x0 = ox * w / ow, x1 = std::max(x0 + 1, (ox + 1) * w / ow);
      const int sx = std::max(1, (x1 - x0 + 2) / 3);
      int64_t ysum = 0, us = 0, vs = 0;
      int n = 0;
      for (int y = y0; y < y1; y += sy) {
        const int row = y * field;
        const T* yp = row_of(0, row);
        const T* up = row_of(1, row >> cy);
        const T* vp = semi ? up : row_of(2, row >> cy);
        for (int x = x0; x < x1; x += sx, ++n) {
          ysum += yp[x];
          const int c = x >> cx;
          if (semi) {
            us += up[2 * c];
            vs += up[2 * c + 1];
          } else {
            us += up[c];
            vs += vp[c];
          }
        }
      }
      const double Y = (double(ysum) / n - yo) * ys, U = (double(us) / n - co) * cs,
                   V = (double(vs) / n - co) * cs;
      const double rgb[3] = {Y + kr * V, Y - kgu * U - kgv * V, Y + kb * U};
      for (int c = 0; c < 3; ++c) dst[3 * ox + c] = uint8_t(std::clamp(rgb[c] + 0.5, 0.0, 255.0));
    }
  }
}

}  // namespace

bool SmallFromYuv(const AVFrame* frame, int ow, int oh, bool one_field, Image* out) {
  const auto fmt = AVPixelFormat(frame->format);
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(fmt);
  if (!d ||
      (d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BE |
                   AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BITSTREAM)) ||
      d->nb_components != 3 || !(d->flags & AV_PIX_FMT_FLAG_PLANAR))
    return false;
  const int depth = d->comp[0].depth;
  // Planar (3 planes) or semi-planar (NV12, P010: interleaved chroma in plane 1); samples in the
  // low bits (P010 keeps them high: not handled here).
  const bool semi = d->comp[1].plane == 1 && d->comp[2].plane == 1;
  if (semi && d->comp[1].offset > d->comp[2].offset) return false;  // NV21: V first
  if (!semi && (d->comp[1].plane != 1 || d->comp[2].plane != 2)) return false;
  if (d->comp[0].shift != 0 || (depth != 8 && depth != 10 && depth != 12)) return false;
  if (d->comp[0].step != (depth > 8 ? 2 : 1)) return false;
  const int w = frame->width, h = one_field ? frame->height / 2 : frame->height;
  if (w < ow || h < oh) return false;
  const bool full = frame->color_range == AVCOL_RANGE_JPEG || fmt == AV_PIX_FMT_YUVJ420P ||
                    fmt == AV_PIX_FMT_YUVJ422P || fmt == AV_PIX_FMT_YUVJ444P;
  const bool bt709 = frame->colorspace == AVCOL_SPC_BT709 ||
                     frame->colorspace == AVCOL_SPC_BT2020_NCL ||
                     (frame->colorspace == AVCOL_SPC_UNSPECIFIED && frame->height >= 720);
  *out = Image(ow, oh, 3);
  if (depth == 8)
    SmallPlanes<uint8_t>(frame, ow, oh, one_field, d->log2_chroma_w, d->log2_chroma_h, semi, 8,
                         full, bt709, out);
  else
    SmallPlanes<uint16_t>(frame, ow, oh, one_field, d->log2_chroma_w, d->log2_chroma_h, semi, depth,
                          full, bt709, out);
  return true;
}

void DisplaySize(const AVFrame* frame, int max_side, int* ow, int* oh) {
  double w = frame->width, h = frame->height;
  const AVRational sar = frame->sample_aspect_ratio;
  if (sar.num > 0 && sar.den > 0) w *= av_q2d(sar);
  const double s = std::min(1.0, double(max_side) / std::max(w, h));
  *ow = std::max(1, int(std::lround(w * s)));
  *oh = std::max(1, int(std::lround(h * s)));
}

Result<Image> FrameToRgb(const AVFrame* frame, int ow, int oh, bool one_field, ScalePtr* scale,
                         const std::string& path) {
  const int w = frame->width, h = one_field ? frame->height / 2 : frame->height;
  if (w <= 0 || h <= 0) return Status::Corrupt(fmt::format("{}: a frame without pixels", path));
  const bool hdr = IsHdr(frame) && ow * oh > 64 * 64;  // the detector's small frames are not
  const AVPixelFormat to = hdr ? AV_PIX_FMT_RGB48 : AV_PIX_FMT_RGB24;
  scale->reset(sws_getCachedContext(scale->release(), w, h, AVPixelFormat(frame->format), ow, oh,
                                    to, SWS_AREA, nullptr, nullptr, nullptr));
  if (!*scale) return Status::Unsupported(fmt::format("{}: cannot convert its frames", path));
  // The frame's own matrix and range (BT.2020 for HDR, BT.601 for SD...), not swscale's default.
  int cs = SWS_CS_DEFAULT;
  switch (frame->colorspace) {
    case AVCOL_SPC_BT709:
      cs = SWS_CS_ITU709;
      break;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL:
      cs = SWS_CS_BT2020;
      break;
    case AVCOL_SPC_SMPTE170M:
    case AVCOL_SPC_BT470BG:
      cs = SWS_CS_ITU601;
      break;
    default:
      cs = frame->height >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601;
  }
  const int full = frame->color_range == AVCOL_RANGE_JPEG ? 1 : 0;
  sws_setColorspaceDetails(scale->get(), sws_getCoefficients(cs), full, sws_getCoefficients(cs), 1,
                           0, 1 << 16, 1 << 16);
  const uint8_t* src[4];
  int stride[4];
  for (int i = 0; i < 4; ++i) {
    src[i] = frame->data[i];
    stride[i] = one_field ? frame->linesize[i] * 2 : frame->linesize[i];
  }
  // swscale's vector code may write past the end of a row: it writes into a padded buffer of
  // aligned rows (as libav allocates its own frames), copied out after.
  const int px = hdr ? 6 : 3;
  const int stride_bytes = (ow * px + 63) & ~63;
  std::unique_ptr<uint8_t, void (*)(void*)> buf(
      static_cast<uint8_t*>(av_malloc(size_t(stride_bytes) * size_t(oh + 1) + 64)), av_free);
  if (!buf) return Status::Internal("out of memory");
  uint8_t* dst[4] = {buf.get(), nullptr, nullptr, nullptr};
  int dst_stride[4] = {stride_bytes, 0, 0, 0};
  sws_scale(scale->get(), src, stride, 0, h, dst, dst_stride);
  Image rgb(ow, oh, 3);
  if (!hdr) {
    for (int y = 0; y < oh; ++y)
      std::memcpy(rgb.row(y), buf.get() + size_t(y) * size_t(stride_bytes), size_t(ow) * 3);
    return rgb;
  }
  ToneMap(reinterpret_cast<const uint16_t*>(buf.get()), ow, oh, size_t(stride_bytes) / 2,
          frame->color_trc == AVCOL_TRC_SMPTE2084, &rgb);
  return rgb;
}

Result<CodecPtr> OpenVideoDecoder(AVFormatContext* f, const std::string& path, int threads,
                                  int* index, int lowres) {
  const AVCodec* codec = nullptr;
  *index = av_find_best_stream(f, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (*index < 0 || !codec)
    return Status::Unsupported(fmt::format("{}: no video stream lumen can decode", path));
  for (unsigned i = 0; i < f->nb_streams; ++i)
    if (int(i) != *index) f->streams[i]->discard = AVDISCARD_ALL;
  CodecPtr dec(avcodec_alloc_context3(codec));
  if (!dec || avcodec_parameters_to_context(dec.get(), f->streams[*index]->codecpar) < 0)
    return Status::Internal("out of memory");
  dec->thread_count = std::max(1, threads);
  dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
  dec->pkt_timebase = f->streams[*index]->time_base;
  dec->lowres = std::clamp(lowres, 0, int(codec->max_lowres));
  if (int rc = avcodec_open2(dec.get(), codec, nullptr); rc < 0)
    return Status::Unsupported(
        fmt::format("{}: cannot decode {}: {}", path, codec->name, AvError(rc)));
  return dec;
}

}  // namespace lumen::video
