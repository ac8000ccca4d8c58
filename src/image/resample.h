// Private: a separable 8-bit resampler fed one input row at a time (see resample.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lumen {

// The kernels of `resize:SCALE:KERNEL` and of the presets, as libvips names them. Nearest is
// point sampling (the input pixel under each output centre, never widened).
enum class ResampleKernel { kNearest, kLinear, kCubic, kMitchell, kLanczos2, kLanczos3 };
// The kernel's value at `x` (in input pixels, before any widening) and its half-width. Cubic is
// Catmull-Rom (Keys, a = -0.5), Mitchell is B = C = 1/3, Lanczos is windowed by its own sinc.
double KernelWeight(ResampleKernel kernel, double x);
double KernelSupport(ResampleKernel kernel);

// Resamples an `in_w` x `in_h` image of `bands` interleaved 8-bit bands to `out_w` x `out_h`
// (each axis scaled on its own; the kernel widened by the shrink factor, so a reduction does not
// alias). Input rows are pushed top to bottom and each output row is written to `out` (row
// stride out_w * bands) as soon as the rows under its kernel are in: only a ring of as many
// input rows as the vertical kernel has taps is held, never the whole input.
class RowResampler {
 public:
  RowResampler(int in_w, int in_h, int out_w, int out_h, int bands, ResampleKernel kernel,
               uint8_t* out);
  void Push(const uint8_t* row);
  bool done() const { return next_out_ == out_h_; }
  int emitted() const { return next_out_; }  // output rows written so far

  struct Taps {  // per output pixel: first input index, n weights (Q14, summing to 1 << 14)
    std::vector<int> first;
    std::vector<int16_t> weights;
    int n = 0;
  };
  static Taps MakeTaps(int in, int out, ResampleKernel kernel);

 private:
  void Emit(int y);

  int in_w_, in_h_, out_w_, out_h_, bands_;
  uint8_t* out_;
  Taps h_, v_;
  std::vector<uint8_t> ring_;         // the last v_.n input rows
  std::vector<int32_t> acc_;          // one vertically resampled row, before scaling
  std::vector<int16_t> column_;       // the same, x64 (then n16_ zeros)
  std::vector<int16_t> w16_;          // one band with AVX2: the horizontal taps, zero-padded
  int n16_ = 0;                       // to this many a pixel (a multiple of 16)
  std::vector<const uint8_t*> rows_;  // the ring's rows under the kernel, in order
  int pushed_ = 0, next_out_ = 0;
};

}  // namespace lumen
