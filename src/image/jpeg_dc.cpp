// DC-only decode of progressive JPEGs at 1/8 scale.
//
// At 1/8 scale each 8x8 block becomes one pixel whose value is the block's DC coefficient. A
// progressive JPEG stores all DC coefficients in its first scan(s), a few percent of the file, so
// libjpeg's buffered-image mode can produce the 1/8 image after those scans without
// entropy-decoding the rest. (TurboJPEG's one-shot API decodes every scan first: ~15x slower on
// large photos.) The first DC scan usually carries all but the lowest bit of DC precision
// (successive approximation, Al=1): an error of at most half a quantisation step, invisible in a
// thumbnail.
#include "jpeg_dc.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include <jerror.h>
#include <jpeglib.h>

#include <fmt/format.h>

#include "jpeg_error.h"

namespace lumen {
namespace {

void OnMessage(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) err->premature_end = true;
}

bool AllDcPresent(const jpeg_decompress_struct& c) {
  for (int i = 0; i < c.num_components; ++i)
    if (c.coef_bits[i][0] < 0) return false;
  return true;
}

bool HasEndMarker(const uint8_t* from, const uint8_t* end) {
  // 0xFF 0xD9 cannot occur inside entropy-coded data (0xFF is always stuffed with 0x00 there).
  for (const uint8_t* p = end - 2; p >= from; --p)
    if (p[0] == 0xFF && p[1] == 0xD9) return true;
  return false;
}

}  // namespace

DcDecode DecodeProgressiveDc(const uint8_t* data, size_t size, Image* out, std::string* error,
                             int max_scans) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  JpegLimits limits;
  limits.max_scans = max_scans;
  cinfo.err = UseJpegErrors(&err);
  err.pub.emit_message = OnMessage;
  if (setjmp(err.jump)) {
    *error = limits.tripped ? std::string(err.message)
                            : fmt::format("corrupt JPEG data: {}", err.message);
    jpeg_destroy_decompress(&cinfo);
    return DcDecode::kFailed;
  }
  jpeg_create_decompress(&cinfo);
  UseJpegLimits(&cinfo, &limits);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (!jpeg_has_multiple_scans(&cinfo) || !cinfo.progressive_mode ||
      cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    return DcDecode::kNotApplicable;
  }
  cinfo.buffered_image = TRUE;
  cinfo.scale_num = 1;
  cinfo.scale_denom = 8;
  cinfo.out_color_space = JCS_RGB;
  cinfo.dct_method = JDCT_IFAST;
  cinfo.do_block_smoothing = FALSE;  // smoothing of early scans costs more than the decode
  cinfo.do_fancy_upsampling = FALSE;
  jpeg_start_decompress(&cinfo);
  for (;;) {
    int rc = jpeg_consume_input(&cinfo);
    if (rc == JPEG_REACHED_EOI || rc == JPEG_SUSPENDED) break;
    if (rc == JPEG_SCAN_COMPLETED && AllDcPresent(cinfo)) break;
  }
  if (!AllDcPresent(cinfo) || err.premature_end) {
    *error = "truncated JPEG: premature end of data in the first scans";
    jpeg_destroy_decompress(&cinfo);
    return DcDecode::kFailed;
  }
  const uint8_t* consumed = data + (size - cinfo.src->bytes_in_buffer);
  if (!HasEndMarker(consumed, data + size)) {
    *error = "truncated JPEG: the end-of-image marker is missing";
    jpeg_destroy_decompress(&cinfo);
    return DcDecode::kFailed;
  }
  jpeg_start_output(&cinfo, cinfo.input_scan_number);
  *out = Image(static_cast<int>(cinfo.output_width), static_cast<int>(cinfo.output_height), 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->row(static_cast<int>(cinfo.output_scanline));
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_output(&cinfo);
  jpeg_abort_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return DcDecode::kDone;
}

}  // namespace lumen
