// Private: what the poster and the analyzer share about decoded frames: owners for libav's
// objects, the content score of a frame, and the conversion of a frame to RGB.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <string>

#include "lumen/image/image.h"
#include "lumen/util/status.h"

namespace lumen::video {

struct CodecCloser {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameCloser {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketCloser {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct ScaleCloser {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
using CodecPtr = std::unique_ptr<AVCodecContext, CodecCloser>;
using FramePtr = std::unique_ptr<AVFrame, FrameCloser>;
using PacketPtr = std::unique_ptr<AVPacket, PacketCloser>;
using ScalePtr = std::unique_ptr<SwsContext, ScaleCloser>;

// How much a frame shows: 0 for black, white, flat or blurred ones, else the spread of its tones
// times its sharpness (the mean absolute Laplacian of the luma), so a sharp frame with content
// wins.
double FrameScore(const Image& rgb);

// `frame` as 8-bit RGB of `ow` x `oh` (area-averaged), through the cached context `scale`; with
// `one_field`, only the top field of an interlaced frame. HDR frames (PQ, HLG) are tone-mapped to
// SDR BT.709. Unsupported when libswscale cannot convert its format.
Result<Image> FrameToRgb(const AVFrame* frame, int ow, int oh, bool one_field, ScalePtr* scale,
                         const std::string& path);

// The detector's small picture of a planar or semi-planar YUV frame of 8, 10 or 12 bits (yuv420p,
// yuv422p10le, nv12, ...), box
// means over a sparse grid of each cell (at most 3x3 samples), converted with the frame's matrix
// and range: a fraction of a full conversion's cost. False for other formats (then FrameToRgb).
bool SmallFromYuv(const AVFrame* frame, int ow, int oh, bool one_field, Image* out);

// The stored frame's size with square pixels, its long edge at most `max_side` (never enlarged).
void DisplaySize(const AVFrame* frame, int max_side, int* ow, int* oh);

// A decoder for the best video stream of `f` (every other stream discarded), or Unsupported
// naming the file. `index` receives the stream's index.
// `lowres` (0-3): decode at 1/2^lowres of the size where the codec can (capped to what it can).
Result<CodecPtr> OpenVideoDecoder(AVFormatContext* f, const std::string& path, int threads,
                                  int* index, int lowres = 0);

}  // namespace lumen::video
