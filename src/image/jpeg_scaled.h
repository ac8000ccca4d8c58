// Private: JPEG decode at M/8 scale, row by row (see jpeg_scaled.cpp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace lumen {

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
  // APP1 segment), XMP, ICC profile and IPTC (the APP13 segment as it is).
  bool Open(const std::string& path, bool metadata);
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
  bool Finish();
  const std::string& error() const { return error_; }

 private:
  template <class F>
  bool Guarded(F&& f);
  struct State;
  std::unique_ptr<State> s_;
  FILE* file_ = nullptr;
  std::string exif_, xmp_, icc_, iptc_, error_;
};

}  // namespace lumen
