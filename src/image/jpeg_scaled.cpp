// JPEG decode at M/8 scale.
//
// libjpeg-turbo can run its inverse DCT at any of 1/8, 2/8 ... 8/8 of the stored size: an M/8
// decode does the entropy decoding as usual but computes only MxM pixels per 8x8 block, with
// colour conversion and upsampling on the smaller image. That is both the cheapest and a
// high-quality way down (the DCT basis is band-limited): against a full decode followed by a
// Lanczos3 reduce to the same size, the real photos of the benchmark corpus differ by 37 dB PSNR
// at worst, 45-54 dB typically. libvips only uses 1/2, 1/4 and 1/8 (its "shrink"): a 2560-pixel
// photo fitted into 1600 is decoded in full and then resampled, where 5/8 is exactly the size
// wanted. The caller resamples the rest (less than M/(M-1)).
#include "jpeg_scaled.h"

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstring>
#include <ctime>

#include <jpeglib.h>

#include "jpeg_error.h"

namespace lumen {
namespace {

void Quiet(j_common_ptr, int) {}

constexpr char kExif[] = "Exif\0\0";                     // 6 bytes
constexpr char kXmp[] = "http://ns.adobe.com/xap/1.0/";  // and a NUL

}  // namespace

const char* JpegLimitReached(const JpegLimits& limits) {
  if (limits.stop && limits.stop()) return "stopped by a signal";
  if (limits.deadline_ns > 0) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec) > limits.deadline_ns)
      return "took longer than the time limit";
  }
  return nullptr;
}

void JpegLimitMonitor(j_common_ptr cinfo) {
  auto* limits = reinterpret_cast<JpegLimits*>(cinfo->progress);
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  if (cinfo->is_decompressor && limits->max_scans > 0 &&
      reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number > limits->max_scans) {
    std::snprintf(err->message, sizeof(err->message),
                  "progressive JPEG with more than %d scans (the scan limit)", limits->max_scans);
    limits->tripped = true;
    std::longjmp(err->jump, 1);
  }
  const char* why = JpegLimitReached(*limits);
  if (!why) return;
  std::snprintf(err->message, sizeof(err->message), "%s", why);
  limits->tripped = true;
  std::longjmp(err->jump, 1);
}

int JpegScaleFor(int width, int height, int want_w, int want_h) {
  int m = 8;
  while (m > 1 && (width * (m - 1) + 7) / 8 >= want_w && (height * (m - 1) + 7) / 8 >= want_h) --m;
  return m;
}

struct JpegReader::State {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  JpegLimits limits;
  bool created = false;
};

JpegReader::JpegReader() : s_(std::make_unique<State>()) {}

JpegReader::~JpegReader() {
  if (s_->created) jpeg_destroy_decompress(&s_->cinfo);
  if (file_) std::fclose(file_);
}

// Runs `f` with libjpeg's fatal errors turned into `false` (the setjmp lives in this frame, which
// is on the stack for as long as `f` runs).
template <class F>
bool JpegReader::Guarded(F&& f) {
  if (setjmp(s_->err.jump)) {
    error_ = s_->limits.tripped ? std::string(s_->err.message)
                                : std::string("corrupt JPEG data: ") + s_->err.message;
    return false;
  }
  f();
  return true;
}

bool JpegReader::Open(const std::string& path, bool metadata, const JpegLimits* limits) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) {
    error_ = std::strerror(errno);
    return false;
  }
  jpeg_decompress_struct& c = s_->cinfo;
  c.err = UseJpegErrors(&s_->err);
  s_->err.pub.emit_message = Quiet;  // warnings (a few corrupt bytes) do not stop a decode
  jpeg_create_decompress(&c);
  s_->created = true;
  if (limits) {
    s_->limits = *limits;
    UseJpegLimits(&c, &s_->limits);
  }
  return Guarded([&] {
    jpeg_stdio_src(&c, file_);
    if (metadata) {
      jpeg_save_markers(&c, JPEG_APP0 + 1, 0xffff);
      jpeg_save_markers(&c, JPEG_APP0 + 2, 0xffff);
      jpeg_save_markers(&c, JPEG_APP0 + 13, 0xffff);
    }
    jpeg_read_header(&c, TRUE);
    if (!metadata) return;
    for (jpeg_saved_marker_ptr m = c.marker_list; m; m = m->next) {
      const char* d = reinterpret_cast<const char*>(m->data);
      if (m->marker == JPEG_APP0 + 13 && iptc_.empty()) iptc_.assign(d, m->data_length);
      if (m->marker != JPEG_APP0 + 1) continue;
      if (exif_.empty() && m->data_length > 6 && std::memcmp(d, kExif, 6) == 0)
        exif_.assign(d + 6, m->data_length - 6);
      else if (xmp_.empty() && m->data_length > sizeof(kXmp) &&
               std::memcmp(d, kXmp, sizeof(kXmp)) == 0)
        xmp_.assign(d + sizeof(kXmp), m->data_length - sizeof(kXmp));
    }
    JOCTET* icc = nullptr;
    unsigned int icc_len = 0;
    if (jpeg_read_icc_profile(&c, &icc, &icc_len) && icc) {
      icc_.assign(reinterpret_cast<const char*>(icc), icc_len);
      std::free(icc);
    }
  });
}

bool JpegReader::limited() const {
  return s_->limits.tripped;
}

int JpegReader::width() const {
  return int(s_->cinfo.image_width);
}
int JpegReader::height() const {
  return int(s_->cinfo.image_height);
}
bool JpegReader::grey() const {
  return s_->cinfo.jpeg_color_space == JCS_GRAYSCALE;
}
bool JpegReader::cmyk() const {
  return s_->cinfo.jpeg_color_space == JCS_CMYK || s_->cinfo.jpeg_color_space == JCS_YCCK;
}
int JpegReader::out_width() const {
  return int(s_->cinfo.output_width);
}
int JpegReader::out_height() const {
  return int(s_->cinfo.output_height);
}
int JpegReader::bands() const {
  return s_->cinfo.output_components;
}

bool JpegReader::Start(int m, bool rgb) {
  if (cmyk()) {
    error_ = "CMYK JPEG";
    return false;
  }
  jpeg_decompress_struct& c = s_->cinfo;
  c.out_color_space = grey() && !rgb ? JCS_GRAYSCALE : JCS_RGB;
  c.scale_num = static_cast<unsigned>(m);
  c.scale_denom = 8;
  c.dct_method = JDCT_ISLOW;
  return Guarded([&] { jpeg_start_decompress(&c); });
}

bool JpegReader::planar() const {
  const jpeg_decompress_struct& c = s_->cinfo;
  return c.jpeg_color_space == JCS_GRAYSCALE ||
         (c.jpeg_color_space == JCS_YCbCr && c.num_components == 3);
}

bool JpegReader::StartPlanes(int m) {
  jpeg_decompress_struct& c = s_->cinfo;
  c.out_color_space = grey() ? JCS_GRAYSCALE : JCS_YCbCr;
  c.raw_data_out = TRUE;
  c.scale_num = static_cast<unsigned>(m);
  c.scale_denom = 8;
  c.dct_method = JDCT_ISLOW;
  if (!Guarded([&] { jpeg_start_decompress(&c); })) return false;
  // Each read gives one row of MCUs: v_samp_factor x the scaled block size rows of each plane,
  // each as wide as its blocks.
  for (int k = 0; k < c.num_components; ++k) {
    const jpeg_component_info& comp = c.comp_info[k];
    const size_t rows = size_t(comp.v_samp_factor) * size_t(comp.DCT_scaled_size);
    const size_t stride = size_t(comp.width_in_blocks) * size_t(comp.DCT_scaled_size);
    strip_pixels_[k].resize(rows * stride);
    strip_[k].resize(rows);
    for (size_t i = 0; i < rows; ++i) strip_[k][i] = strip_pixels_[k].data() + i * stride;
  }
  return true;
}

int JpegReader::planes() const {
  return s_->cinfo.num_components;
}
int JpegReader::plane_width(int k) const {
  return int(s_->cinfo.comp_info[k].downsampled_width);
}
int JpegReader::plane_height(int k) const {
  return int(s_->cinfo.comp_info[k].downsampled_height);
}
bool JpegReader::planes_done() const {
  return s_->cinfo.output_scanline >= s_->cinfo.output_height;
}

bool JpegReader::ReadStrip() {
  jpeg_decompress_struct& c = s_->cinfo;
  JSAMPARRAY planes[3] = {strip_[0].data(), strip_[1].data(), strip_[2].data()};
  JDIMENSION lines = 0;
  if (!Guarded([&] {
        lines =
            jpeg_read_raw_data(&c, planes, JDIMENSION(c.max_v_samp_factor * c.min_DCT_scaled_size));
      }))
    return false;
  if (lines == 0) {  // no progress (only a suspending source would do that): never loop on it
    error_ = "corrupt JPEG data: no rows decoded";
    return false;
  }
  for (int k = 0; k < c.num_components; ++k) {  // the last strip may run past the plane
    strip_rows_[k] = std::min(int(strip_[k].size()), plane_height(k) - plane_rows_[k]);
    plane_rows_[k] += strip_rows_[k];
  }
  return true;
}

bool JpegReader::ReadRow(uint8_t* row) {
  return Guarded([&] {
    JSAMPROW r = row;
    jpeg_read_scanlines(&s_->cinfo, &r, 1);
  });
}

bool JpegReader::Finish() {
  return Guarded([&] { jpeg_finish_decompress(&s_->cinfo); });
}

}  // namespace lumen
