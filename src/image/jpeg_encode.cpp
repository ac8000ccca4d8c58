// Strips of one image encoded in parallel and joined at restart markers (jpeg_encode.h).
//
// A baseline JPEG with a restart interval resets its DC predictions and byte-aligns its bit
// stream at every restart marker, so what lies between two markers depends only on the MCUs
// there. An encoder given only a strip of whole MCU rows, with a restart marker after every MCU
// row, writes exactly the bytes one encoder of the whole image would write for those rows
// (colour conversion, downsampling and the DCT never look across an MCU row; the Huffman tables
// are the standard ones): its markers are numbered from RST0, so strips of a multiple of 8 MCU
// rows keep the whole image's numbering, and the marker between two strips is the one the whole
// image has there. The file is the first strip's header with the whole height, every strip's
// entropy-coded data in order with that marker between them, and EOI.
#include "jpeg_encode.h"

#include <algorithm>
#include <atomic>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "jpeg_error.h"
#include "parallel.h"

namespace lumen {
namespace {

// Below this many pixels one encoder: the strips' headers and threads cost more than they give.
constexpr int64_t kStripsFrom = 2'000'000;

// libjpeg's destination into a std::vector (doubling). Not jpeg_mem_dest: that one reports its
// buffer only when the encode finishes, and frees the first buffer itself when it grows, so an
// encoder abandoned half way (an error, or `rows` throwing because the decode it follows stopped)
// left the caller holding a freed pointer: a double free, seen once the strips got far enough.
struct VectorOut {
  jpeg_destination_mgr pub;
  std::vector<uint8_t> bytes;

  static void Init(j_compress_ptr c) {
    auto* d = reinterpret_cast<VectorOut*>(c->dest);
    if (!d->Grow(size_t(1) << 16, 0)) ERREXIT1(c, JERR_OUT_OF_MEMORY, 10);
  }
  // libjpeg's contract: the whole buffer is full, whatever free_in_buffer says (the Huffman
  // encoder keeps its own copy of it).
  static boolean Empty(j_compress_ptr c) {
    auto* d = reinterpret_cast<VectorOut*>(c->dest);
    if (!d->Grow(d->bytes.size() * 2, d->bytes.size())) ERREXIT1(c, JERR_OUT_OF_MEMORY, 10);
    return TRUE;
  }
  static void Term(j_compress_ptr c) {
    auto* d = reinterpret_cast<VectorOut*>(c->dest);
    d->bytes.resize(d->bytes.size() - d->pub.free_in_buffer);
  }
  // Room for `size` bytes, the `used` ones written kept; false without memory (no exception may
  // cross libjpeg's C frames).
  bool Grow(size_t size, size_t used) {
    try {
      bytes.resize(size);
    } catch (const std::bad_alloc&) {
      return false;
    }
    pub.next_output_byte = bytes.data() + used;
    pub.free_in_buffer = bytes.size() - used;
    return true;
  }
};

// One libjpeg encoder over `h` rows from `rows` starting at image row `y0`.
Status EncodeRange(int w, int h, int bands, int y0, const JpegEncodeOptions& o, int restart_rows,
                   const JpegRows& rows, const JpegMarkers* markers, std::vector<uint8_t>* out) {
  jpeg_compress_struct c;
  JpegErrorManager err;
  c.err = UseJpegErrors(&err);
  VectorOut dest{};  // before setjmp: a longjmp must not skip a destructor
  std::vector<uint8_t> scratch;
  jpeg_create_compress(&c);
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&c);
    return Status::Internal(fmt::format("libjpeg: {}", err.message));
  }
  dest.pub.init_destination = VectorOut::Init;
  dest.pub.empty_output_buffer = VectorOut::Empty;
  dest.pub.term_destination = VectorOut::Term;
  c.dest = &dest.pub;
  c.image_width = JDIMENSION(w);
  c.image_height = JDIMENSION(h);
  c.input_components = bands;
  c.in_color_space = bands == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, o.quality, TRUE);
  if (bands == 3 && o.full_chroma) c.comp_info[0].h_samp_factor = c.comp_info[0].v_samp_factor = 1;
  c.restart_in_rows = restart_rows;
  jpeg_start_compress(&c, TRUE);
  if (markers && *markers) (*markers)(&c);
  constexpr int kBatch = 64;  // rows asked for at once (a multiple of every MCU height)
  const size_t stride = size_t(w) * size_t(bands);
  JSAMPROW ptrs[kBatch];
  try {
    for (int y = 0; y < h;) {
      const int n = std::min(kBatch, h - y);
      const uint8_t* p = rows(y0 + y, n, &scratch);
      for (int i = 0; i < n; ++i) ptrs[i] = const_cast<JSAMPROW>(p + size_t(i) * stride);
      for (int done = 0; done < n;)
        done += int(jpeg_write_scanlines(&c, ptrs + done, JDIMENSION(n - done)));
      y += n;
    }
  } catch (...) {  // from `rows`, never from libjpeg (whose errors jump)
    jpeg_destroy_compress(&c);
    throw;
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  *out = std::move(dest.bytes);
  return Status::Ok();
}

// Where a strip's JPEG has its height (in SOF) and where its entropy-coded data starts (after
// the SOS header); the data ends before the final EOI.
bool Layout(const std::vector<uint8_t>& j, size_t* height_at, size_t* data_at) {
  size_t i = 2;  // after SOI
  *height_at = 0;
  while (i + 4 <= j.size()) {
    if (j[i] != 0xFF) return false;
    const uint8_t m = j[i + 1];
    const size_t len = size_t(j[i + 2]) << 8 | j[i + 3];
    if (m == 0xC0 || m == 0xC1) *height_at = i + 5;
    if (m == 0xDA) {
      *data_at = i + 2 + len;
      return *height_at > 0 && *data_at + 2 <= j.size() && j[j.size() - 2] == 0xFF &&
             j[j.size() - 1] == 0xD9;
    }
    i += 2 + len;
  }
  return false;
}

}  // namespace

Result<std::vector<uint8_t>> EncodeJpegStrips(int w, int h, int bands, const JpegEncodeOptions& o,
                                              const JpegRows& rows, const JpegMarkers& markers) {
  if (w < 1 || h < 1 || w > 65500 || h > 65500 || (bands != 1 && bands != 3))
    return Status::Invalid(fmt::format("a {}x{} image of {} bands cannot be a JPEG", w, h, bands));
  const int mcu = bands == 3 && !o.full_chroma ? 16 : 8;  // MCU width and height
  const int mcu_rows = (h + mcu - 1) / mcu, mcus_per_row = (w + mcu - 1) / mcu;
  const int threads = std::max(1, o.threads);
  std::vector<uint8_t> out;
  if (threads == 1 || int64_t(w) * h < kStripsFrom || mcu_rows < 16 || mcus_per_row > 65535) {
    LUMEN_RETURN_IF_ERROR(EncodeRange(w, h, bands, 0, o, 0, rows, &markers, &out));
    return out;
  }
  // Strips of a multiple of 8 MCU rows, two per thread (one slow strip does not hold the rest).
  const int want = std::min(std::max(1, o.strips_per_thread) * threads, mcu_rows / 8);
  const int strip_mcus = ((mcu_rows + want - 1) / want + 7) & ~7;
  const int strips = (mcu_rows + strip_mcus - 1) / strip_mcus;
  const int strip_rows = strip_mcus * mcu;
  std::vector<std::vector<uint8_t>> parts(static_cast<size_t>(strips));
  std::vector<Status> status(static_cast<size_t>(strips), Status::Ok());
  std::atomic<bool> failed{false};
  ParallelFor(strips, threads, [&](int, int s) {
    if (failed) return;  // no more strips after a failure
    const int y0 = s * strip_rows, n = std::min(strip_rows, h - y0);
    try {
      status[size_t(s)] =
          EncodeRange(w, n, bands, y0, o, 1, rows, s == 0 ? &markers : nullptr, &parts[size_t(s)]);
    } catch (const std::exception& e) {  // std::bad_alloc from a strip's buffers
      status[size_t(s)] = Status::Internal(fmt::format("encoding a strip: {}", e.what()));
    }
    if (!status[size_t(s)].ok()) failed = true;
  });
  for (const Status& st : status) LUMEN_RETURN_IF_ERROR(st);
  size_t total = 0;
  for (const auto& p : parts) total += p.size();
  out.reserve(total);
  for (int s = 0; s < strips; ++s) {
    const std::vector<uint8_t>& p = parts[size_t(s)];
    size_t height_at, data_at;
    if (!Layout(p, &height_at, &data_at))
      return Status::Internal("libjpeg wrote a strip lumen cannot read back");
    if (s == 0) {
      out.insert(out.end(), p.begin(), p.begin() + long(data_at));
      out[height_at] = uint8_t(h >> 8);
      out[height_at + 1] = uint8_t(h & 0xFF);
    } else {
      // The marker after the whole image's MCU row s * strip_mcus (RST7: a multiple of 8).
      out.push_back(0xFF);
      out.push_back(uint8_t(0xD0 + (s * strip_mcus - 1) % 8));
    }
    out.insert(out.end(), p.begin() + long(data_at), p.end() - 2);
  }
  out.push_back(0xFF);
  out.push_back(0xD9);
  return out;
}

}  // namespace lumen
