#include "lumen/video/analyze.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <limits>

#include <fmt/format.h>

#include "frames.h"
#include "input.h"

namespace lumen::video {
namespace {

constexpr int kSmallW = 64, kSmallH = 36;
constexpr int kLookahead = 2, kBehind = 3;  // frames of context on each side of a decision

// Detector thresholds, on the 64x36 RGB frame (mean absolute difference, 0-255).
constexpr double kCutFloor = 18;     // below this no change is a cut
constexpr double kCutRatio = 3.0;    // ... and it must be this many times its neighbours'
constexpr double kNewPicture = 0.5;  // ShapeDiff: another picture after a blank run
constexpr double kFlashShare = 0.5;  // a flash: the frames around it differ by less than this
// A dissolve: over a second, the ends differ by this much, the middle frame is their mix (within
// this share of their difference), and neither end is a faded version of the other.
constexpr double kDissolveFloor = 45, kDissolveMix = 0.35, kDissolveContrast = 0.6;

// What the detector keeps of a frame.
struct Small {
  std::array<uint8_t, kSmallW * kSmallH * 3> rgb;
  std::array<uint8_t, kSmallW * kSmallH> luma;
  double mean = 0, sd = 0;
  uint8_t rgb_mean[3] = {0, 0, 0};
  bool blank = false;  // black, white or flat
};

void Describe(const Image& im, Small* s) {
  std::copy(im.pixels.begin(), im.pixels.begin() + long(s->rgb.size()), s->rgb.begin());
  double sum = 0, sum2 = 0;
  const int n = kSmallW * kSmallH;
  int64_t channel[3] = {0, 0, 0};
  for (int i = 0; i < n; ++i) {
    const uint8_t* p = &s->rgb[size_t(3 * i)];
    channel[0] += p[0];
    channel[1] += p[1];
    channel[2] += p[2];
    const int y = (77 * p[0] + 150 * p[1] + 29 * p[2]) >> 8;
    s->luma[size_t(i)] = uint8_t(y);
    sum += y;
    sum2 += double(y) * y;
  }
  for (int c = 0; c < 3; ++c) s->rgb_mean[c] = uint8_t((channel[c] + n / 2) / n);
  s->mean = sum / n;
  s->sd = std::sqrt(std::max(0.0, sum2 / n - s->mean * s->mean));
  s->blank = s->mean < 20 || s->mean > 235 || s->sd < 6;
}

// How unlike two pictures are whatever their brightness: the mean absolute difference of their
// lumas, each normalised to zero mean and unit spread (a faded or flashed version of a picture is
// that picture; about 0.1-0.3 for one shot's frames, 0.8 and more for different pictures).
double ShapeDiff(const Small& a, const Small& b) {
  const double sa = std::max(a.sd, 1.0), sb = std::max(b.sd, 1.0);
  double d = 0;
  for (size_t i = 0; i < a.luma.size(); ++i)
    d += std::abs((a.luma[i] - a.mean) / sa - (b.luma[i] - b.mean) / sb);
  return d / double(a.luma.size());
}

double Diff(const Small& a, const Small& b) {
  int64_t d = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) d += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return double(d) / double(a.rgb.size());
}

// 64-bit difference hash of the frame: 9x8 box means of the luma, each compared with its right
// neighbour.
uint64_t DHash(const Small& s) {
  double cell[8][9] = {};
  int count[8][9] = {};
  for (int y = 0; y < kSmallH; ++y)
    for (int x = 0; x < kSmallW; ++x) {
      const uint8_t* p = &s.rgb[size_t(3 * (y * kSmallW + x))];
      const int cy = y * 8 / kSmallH, cx = x * 9 / kSmallW;
      cell[cy][cx] += (77 * p[0] + 150 * p[1] + 29 * p[2]) >> 8;
      ++count[cy][cx];
    }
  uint64_t h = 0;
  int bit = 0;
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x, ++bit)
      if (cell[y][x] / count[y][x] < cell[y][x + 1] / count[y][x + 1]) h |= uint64_t(1) << bit;
  return h;
}

// A decoded frame waiting for the detector's lookahead: its small image, and for a few frames a
// second a `frame_side` one (so that no decoded picture is held).
struct Pending {
  double time = 0;
  bool poster_candidate = false;
  Small small;
  double diff = 0;  // from the frame before (0 for the first)
  Image large;      // empty when the frame is not sampled
};

// A segment of a shot (a whole shot, or a part of a long one) and the best frame seen in it.
struct Segment {
  int shot = 0;
  double start = 0, end = 0;
  double best_score = -1;
  double best_time = 0;
  Image best;
};

class Analyzer {
 public:
  Analyzer(Input& in, const AnalyzeOptions& o, bool interlaced)
      : in_(in), o_(o), interlaced_(interlaced) {}

  // A decoded frame, in presentation order.
  Status Add(AVFrame* f, double t) {
    auto p = std::make_unique<Pending>();
    p->time = t;
    const bool key = f->key_frame != 0;  // FFmpeg 5.1: the flag is AV_FRAME_FLAG_KEY from 6.1
    p->poster_candidate = key && t <= o_.poster_seconds && poster_queued_ < o_.poster_candidates;
    if (p->poster_candidate) ++poster_queued_;
    if (p->poster_candidate || t - last_sampled_ >= o_.candidate_seconds) {
      int ow = 0, oh = 0;
      DisplaySize(f, o_.frame_side, &ow, &oh);
      auto rgb = FrameToRgb(f, ow, oh, false, &large_scale_, in_.path());
      if (!rgb.ok()) return rgb.status();
      p->large = std::move(*rgb);
      if (t - last_sampled_ >= o_.candidate_seconds) last_sampled_ = t;
    }
    const bool one_field = interlaced_ || f->interlaced_frame;
    if (f->interlaced_frame) saw_interlaced_ = true;
    Image small;
    if (!SmallFromYuv(f, kSmallW, kSmallH, one_field, &small)) {
      auto converted = FrameToRgb(f, kSmallW, kSmallH, one_field, &small_scale_, in_.path());
      if (!converted.ok()) return converted.status();
      small = std::move(*converted);
    }
    Describe(small, &p->small);
    if (!window_.empty()) p->diff = Diff(p->small, window_.back()->small);
    last_time_ = t;
    if (frame_step_ <= 0 && !window_.empty()) frame_step_ = t - window_.back()->time;
    window_.push_back(std::move(p));
    if (int(window_.size()) > kBehind + 1 + kLookahead) window_.pop_front();
    // The frame kLookahead back now has its neighbours after it.
    if (int(window_.size()) > kLookahead)
      LUMEN_RETURN_IF_ERROR(Decide(window_.size() - 1 - kLookahead));
    return Status::Ok();
  }

  // The end of the stream: the last frames are decided with what lookahead there is.
  Status Finish(VideoAnalysis* out) {
    const size_t first = window_.size() > size_t(kLookahead) ? window_.size() - kLookahead : 0;
    for (size_t i = first; i < window_.size(); ++i) LUMEN_RETURN_IF_ERROR(Decide(i));
    if (!decided_) return Status::Corrupt(fmt::format("{}: no frame could be decoded", in_.path()));
    const double step = frame_step_ > 0 ? frame_step_ : 1 / 30.0;
    CloseSegment(last_time_ + step);
    shots_.back().end = last_time_ + step;
    shots_.front().start = 0;  // the video's start, even where the first frame is shown later
    out->shots = std::move(shots_);
    // The longest segments (the most evenly spread among equals), back in time order.
    KeepBest(size_t(std::max(1, o_.max_key_frames)));
    for (Segment& s : kept_)
      out->key_frames.push_back({s.best_time, s.shot, std::move(s.best), s.best_score > 0});
    std::sort(out->key_frames.begin(), out->key_frames.end(),
              [](const KeyFrame& a, const KeyFrame& b) { return a.time < b.time; });
    if (!poster_.empty() && poster_score_ > 0) {
      out->poster = std::move(poster_);
      out->poster_time = poster_time_;
    } else if (fallback_score_ > 0) {  // no stream key frame with content: a sampled frame
      out->poster = std::move(fallback_);
      out->poster_time = fallback_time_;
    } else if (!poster_.empty()) {
      out->poster = std::move(poster_);
      out->poster_time = poster_time_;
      out->poster_content = false;
    } else if (!out->key_frames.empty()) {
      out->poster = out->key_frames.front().rgb;
      out->poster_time = out->key_frames.front().time;
      out->poster_content = false;
    } else {
      return Status::Corrupt(fmt::format("{}: no frame could be converted", in_.path()));
    }
    out->signature = std::move(signature_);
    out->interlaced = out->interlaced || saw_interlaced_;
    return Status::Ok();
  }

 private:
  // Decides whether window_[i] starts a shot, then samples it.
  Status Decide(size_t i) {
    Pending& p = *window_[i];
    const double t = p.time;
    if (!decided_) {
      decided_ = true;
      shots_.push_back({t, t});
      OpenSegment(t);
      history_.clear();
    } else if (IsCut(i)) {
      shots_.back().end = t;
      CloseSegment(t);
      shots_.push_back({t, t});
      OpenSegment(t);
      history_.clear();
    } else if (t - segment_.start >= o_.sample_seconds) {
      CloseSegment(t);
      OpenSegment(t);
    }
    was_blank_ = p.small.blank;
    if (!p.small.blank) {
      shot_has_content_ = true;
      last_content_ = p.small;
    }
    history_.push_back({t, p.small});
    while (history_.size() > 2 && t - history_.front().first > 1.0) history_.pop_front();
    // The signature: one sample every signature_seconds.
    if (t >= next_signature_) {
      signature_.push_back({float(t),
                            DHash(p.small),
                            {p.small.rgb_mean[0], p.small.rgb_mean[1], p.small.rgb_mean[2]},
                            p.small.blank});
      next_signature_ = t + o_.signature_seconds;
    }
    // Key frame candidates and poster candidates, scored.
    if (!p.large.empty()) {
      const double score = FrameScore(p.large);
      if (p.poster_candidate && score > poster_score_) {
        poster_score_ = score;
        poster_ = p.large;
        poster_time_ = t;
      }
      if (t <= o_.poster_seconds && score > fallback_score_) {
        fallback_score_ = score;
        fallback_ = p.large;
        fallback_time_ = t;
      }
      if (score > segment_.best_score) {
        segment_.best_score = score;
        segment_.best = std::move(p.large);
        segment_.best_time = t;
      }
    }
    return Status::Ok();
  }

  bool IsCut(size_t i) {
    const Pending& p = *window_[i];
    const double t = p.time;
    const bool long_enough = t - shots_.back().start >= o_.min_shot_seconds;
    // Content after a run of black or flat frames: a fade (through black or white) or a cut
    // through a blank frame, unless the picture is the one from before the run (a flash, a
    // dropped signal).
    if (!p.small.blank && was_blank_ && shot_has_content_)
      return long_enough && ShapeDiff(p.small, last_content_) >= kNewPicture;
    if (p.small.blank || i == 0) return false;
    const double d = p.diff;
    if (d >= kCutFloor && long_enough) {
      double around = 0;
      int n = 0;
      for (size_t k = i >= size_t(kLookahead) ? i - kLookahead : 0; k <= i + kLookahead; ++k) {
        if (k == i || k >= window_.size()) continue;
        around += window_[k]->diff;
        ++n;
      }
      around = n ? around / n : 0;
      if (d >= kCutRatio * std::max(around, 2.0)) {
        // A flash: a frame (or two) unlike those on both sides, which resemble each other; and
        // the frame after a flash, which is like those before it.
        const Small& before = window_[i - 1]->small;
        for (size_t k = i + 1; k < window_.size() && k <= i + 2; ++k)
          if (Diff(window_[k]->small, before) < kFlashShare * d) return false;
        for (size_t k = i >= 3 ? i - 3 : 0; k + 1 < i; ++k)
          if (Diff(p.small, window_[k]->small) < kFlashShare * d) return false;
        return true;
      }
    }
    // A dissolve: over the last second the picture became another, each frame a mix of the two.
    if (long_enough && history_.size() > 2 && t - history_.front().first >= 0.9) {
      const Small& a = history_.front().second;
      const Small& mid = history_[history_.size() / 2].second;
      const double ends = Diff(a, p.small);
      if (ends >= kDissolveFloor &&
          std::min(a.sd, p.small.sd) >= kDissolveContrast * std::max(a.sd, p.small.sd)) {
        int64_t off = 0;
        for (size_t k = 0; k < mid.rgb.size(); ++k)
          off += std::abs(2 * int(mid.rgb[k]) - int(a.rgb[k]) - int(p.small.rgb[k]));
        if (double(off) / 2 / double(mid.rgb.size()) <= kDissolveMix * ends) return true;
      }
    }
    return false;
  }

  void OpenSegment(double t) {
    segment_ = Segment{};
    segment_.shot = int(shots_.size()) - 1;
    segment_.start = t;
    if (shots_.back().start == t) shot_has_content_ = false;
  }

  void CloseSegment(double t) {
    segment_.end = t;
    if (segment_.best.empty()) return;
    kept_.push_back(std::move(segment_));
    segment_ = Segment{};
    // Bounded: past twice the cap, the shortest segment goes.
    if (kept_.size() > 2 * size_t(std::max(1, o_.max_key_frames)))
      KeepBest(2 * size_t(std::max(1, o_.max_key_frames)) - 1);
  }

  // Keeps the `n` longest segments; among equal lengths, the one closest to its predecessor goes
  // first (a long static clip keeps frames spread over its length).
  void KeepBest(size_t n) {
    while (kept_.size() > n) {
      size_t worst = 0;
      double worst_len = std::numeric_limits<double>::max(), worst_gap = worst_len;
      for (size_t k = 0; k < kept_.size(); ++k) {
        const double len = std::round((kept_[k].end - kept_[k].start) * 10) / 10;
        const double gap = k ? kept_[k].best_time - kept_[k - 1].best_time : 1e9;
        if (len < worst_len || (len == worst_len && gap < worst_gap)) {
          worst = k;
          worst_len = len;
          worst_gap = gap;
        }
      }
      kept_.erase(kept_.begin() + long(worst));
    }
  }

  Input& in_;
  const AnalyzeOptions& o_;
  bool interlaced_, saw_interlaced_ = false;
  ScalePtr small_scale_, large_scale_;
  std::deque<std::unique_ptr<Pending>> window_;
  std::deque<std::pair<double, Small>> history_;  // the last second of the shot
  Small last_content_;                            // the last frame that was not blank
  bool decided_ = false, was_blank_ = false, shot_has_content_ = false;
  double last_time_ = 0, frame_step_ = 0, next_signature_ = -1e9, last_sampled_ = -1e9;
  std::vector<Shot> shots_;
  Segment segment_;
  std::vector<Segment> kept_;
  Image poster_, fallback_;
  double poster_score_ = -1, poster_time_ = 0, fallback_score_ = 0, fallback_time_ = 0;
  int poster_queued_ = 0;
  std::vector<SignatureSample> signature_;
};

}  // namespace

Result<VideoAnalysis> Analyze(const std::string& path, const AnalyzeOptions& options) {
  InputLimits limits;
  limits.max_file_bytes = options.max_file_bytes;
  limits.max_seconds = options.base_seconds;  // until the duration is known
  auto opened = Input::Open(path, limits);
  if (!opened.ok()) return opened.status();
  Input& in = **opened;
  VideoAnalysis out;
  LUMEN_RETURN_IF_ERROR(ReadProbe(in, &out.probe));
  in.SetTimeLimit(std::min(
      options.max_seconds,
      options.base_seconds + options.seconds_per_second * std::max(0.0, out.probe.duration)));
  out.time_limit = in.time_limit();
  AVFormatContext* f = in.format();
  int index = 0;
  {
    const AVCodec* codec = nullptr;
    index = av_find_best_stream(f, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (index >= 0) {
      const AVCodecParameters* par = f->streams[index]->codecpar;
      if (par->width > 0 && par->height > 0 &&
          uint64_t(par->width) * uint64_t(par->height) > options.max_pixels)
        return Status::TooLarge(
            fmt::format("{}: {}x{} frames, above the limit of {:.1f} megapixels", path, par->width,
                        par->height, double(options.max_pixels) / 1e6));
    }
  }
  int lowres = 0;
  if (index >= 0) {
    const AVCodecParameters* par = f->streams[index]->codecpar;
    const int short_side = std::min(par->width, par->height);
    while (lowres < 3 && (short_side >> (lowres + 1)) >= options.min_short_side) ++lowres;
  }
  auto opened_dec = OpenVideoDecoder(f, path, options.threads, &index, lowres);
  if (!opened_dec.ok()) return opened_dec.status();
  CodecPtr dec = std::move(*opened_dec);
  AVStream* st = f->streams[index];
  // The loop filter smooths block edges that a 2x or larger reduction averages away anyway: off
  // for every frame of a large video, for the non-key frames (not poster candidates) of a small
  // one.
  const AVCodecParameters* par = st->codecpar;
  dec->skip_loop_filter = std::max(par->width, par->height) >> dec->lowres >= 2 * options.frame_side
                              ? AVDISCARD_ALL
                              : AVDISCARD_NONKEY;
  dec->flags2 |= AV_CODEC_FLAG2_FAST;
  const AVFieldOrder fo = st->codecpar->field_order;
  out.interlaced = fo == AV_FIELD_TT || fo == AV_FIELD_BB || fo == AV_FIELD_TB || fo == AV_FIELD_BT;
  Analyzer an(in, options, out.interlaced);

  PacketPtr pkt(av_packet_alloc());
  FramePtr frame(av_frame_alloc());
  if (!pkt || !frame) return Status::Internal("out of memory");
  const double tb = av_q2d(st->time_base);
  int64_t start = st->start_time;
  double last_t = -1, rebase = 0;
  const double rate = av_q2d(st->avg_frame_rate) > 0 ? av_q2d(st->avg_frame_rate) : 30;
  const double step = 1 / std::clamp(rate, 1.0, 1000.0);
  bool done = false;
  while (!done) {
    LUMEN_RETURN_IF_ERROR(in.Stopped());
    const int rc = av_read_frame(f, pkt.get());
    if (rc < 0) {
      LUMEN_RETURN_IF_ERROR(in.Stopped());
      avcodec_send_packet(dec.get(), nullptr);  // the end: drain the decoder
      done = true;
    } else if (pkt->stream_index == index) {
      if (int s = avcodec_send_packet(dec.get(), pkt.get()); s < 0 && s != AVERROR(EAGAIN))
        ++out.damaged;  // a damaged packet: counted, and the stream goes on
    }
    av_packet_unref(pkt.get());
    while (true) {
      const int got = avcodec_receive_frame(dec.get(), frame.get());
      if (got == AVERROR(EAGAIN) || got == AVERROR_EOF) break;
      if (got < 0) {
        ++out.damaged;
        break;
      }
      if (frame->decode_error_flags || (frame->flags & AV_FRAME_FLAG_CORRUPT)) ++out.damaged;
      if (uint64_t(frame->width) * uint64_t(frame->height) > options.max_pixels)
        return Status::TooLarge(
            fmt::format("{}: {}x{} frames, above the limit of {:.1f} megapixels", path,
                        frame->width, frame->height, double(options.max_pixels) / 1e6));
      const int64_t pts = frame->best_effort_timestamp;
      double t;
      if (pts == AV_NOPTS_VALUE) {
        t = last_t < 0 ? 0 : last_t + step;
      } else {
        if (start == AV_NOPTS_VALUE) start = pts;
        t = (double(pts) - double(start)) * tb + rebase;  // double: hostile pts cannot overflow
      }
      // Timestamps that jump back (joined transport streams, a camera's reset) continue from
      // where the video was, a frame later: the rest of the file keeps its shots and samples.
      if (t < last_t - step && pts != AV_NOPTS_VALUE) {
        rebase += last_t + step - t;
        t = last_t + step;
      } else if (t <= last_t) {
        t = last_t + 1e-3;  // a repeated or slightly early time: kept in presentation order
      }
      last_t = t;
      ++out.frames;
      LUMEN_RETURN_IF_ERROR(an.Add(frame.get(), t));
      av_frame_unref(frame.get());
    }
  }
  LUMEN_RETURN_IF_ERROR(an.Finish(&out));
  out.probe.main = index;
  auto hash = in.FinishHash();
  if (!hash.ok()) return hash.status();
  out.probe.content_hash = *hash;
  out.probe.second_read_bytes = in.ahead_bytes();
  out.probe.read_bytes = in.read_bytes();
  const int rotation = DisplayRotation(st);  // EXIF's orientations: 6 is 90 clockwise, 3 180, 8 270
  if (rotation != 0) {
    const int orientation = rotation == 90 ? 6 : rotation == 180 ? 3 : 8;
    for (KeyFrame& k : out.key_frames) k.rgb = ApplyOrientation(k.rgb, orientation);
    out.poster = ApplyOrientation(out.poster, orientation);
  }
  return out;
}

}  // namespace lumen::video
