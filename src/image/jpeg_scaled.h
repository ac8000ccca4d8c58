// Private: JPEG decode at M/8 scale, row by row (see jpeg_scaled.cpp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace lumen {

struct JpegLimits;

// The smallest M in 1..8 whose M/8 decode of a `width` x `height` JPEG is still at least
// `want_w` x `want_h` (so the downscale left is less than M/(M-1)).
int JpegScaleFor(int width, int height, int want_w, int want_h);

// A JPEG file read with libjpeg: the header and metadata first, then the pixels at M/8, one row
// at a time. Every call returns false with error() set on a corrupt file (never exits).
class JpegReader {
 public:
  JpegReader();
  ~JpegReader();
  JpegReader(const JpegReader&) = delete;
  JpegReader& operator=(const JpegReader&) = delete;

  // Reads the header; with `metadata`, also the EXIF (as TIFF, without the "Exif\0\0" of the
  // APP1 segment), XMP, ICC profile and IPTC (the APP13 segment as it is). `limits` (copied)
  // bound the decode: a scan limit, a deadline, a stop request (jpeg_error.h).
  bool Open(const std::string& path, bool metadata, const JpegLimits* limits = nullptr);
  int width() const;
  int height() const;
  bool grey() const;
  bool cmyk() const;  // CMYK or YCCK: not decoded here
  const std::string& exif() const { return exif_; }
  const std::string& xmp() const { return xmp_; }
  const std::string& icc() const { return icc_; }
  const std::string& iptc() const { return iptc_; }

  // Starts the decode at m/8, as RGB (grey files too when `rgb`) or the file's grey.
  bool Start(int m, bool rgb);
  int out_width() const;
  int out_height() const;
  int bands() const;
  bool ReadRow(uint8_t* row);

  // Or the file's own planes at m/8, without colour conversion or chroma upsampling (libjpeg's raw
  // output): Y, Cb, Cr as stored (full range), chroma at whatever size its sampling and the
  // scaled IDCT give. Only where planar(): a grey or YCbCr file.
  bool planar() const;
  bool StartPlanes(int m);
  int planes() const;  // 1 (grey) or 3
  int plane_width(int k) const;
  int plane_height(int k) const;
  // Decodes the next strip (one row of MCUs): strip_rows(k) more rows of plane k (none once
  // planes_done()), the i-th at strip_row(k, i), valid until the next call.
  bool ReadStrip();
  bool planes_done() const;
  int strip_rows(int k) const { return strip_rows_[k]; }
  const uint8_t* strip_row(int k, int i) const { return strip_[k][size_t(i)]; }

  bool Finish();
  const std::string& error() const { return error_; }
  // Whether the last failure was a limit of Open's `limits` (not a corrupt file).
  bool limited() const;

 private:
  template <class F>
  bool Guarded(F&& f);
  struct State;
  std::unique_ptr<State> s_;
  FILE* file_ = nullptr;
  std::string exif_, xmp_, icc_, iptc_, error_;
  std::vector<uint8_t> strip_pixels_[3];
  std::vector<uint8_t*> strip_[3];
  int strip_rows_[3] = {0, 0, 0}, plane_rows_[3] = {0, 0, 0};  // this strip's; all so far
};

}  // namespace lumen
