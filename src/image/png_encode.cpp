// PNG strips deflated in parallel and joined into one zlib stream (png_encode.h).
//
// A deflate stream is a sequence of blocks; a sync flush ends the current block and adds an
// empty stored block, which leaves the stream byte-aligned and not final. So raw deflate streams
// of consecutive pieces of the data, each but the last ended by a sync flush and the last by a
// finish, concatenated, are one valid deflate stream of the whole (the technique of pigz). The
// zlib wrapper around it is a two-byte header and the Adler-32 of the uncompressed bytes, which
// adler32_combine assembles from the pieces' own. Each strip is one IDAT chunk (PNG joins the
// IDAT chunks' data), so a worker computes its chunk's CRC too and the writer only copies.
#include "png_encode.h"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>

#include <fmt/format.h>

#include "parallel.h"

namespace lumen {
namespace {

// Below this many bytes of rows one stream: the strips' threads cost more than they give.
constexpr size_t kStripsFrom = size_t(4) << 20;
// At most this many bytes of rows a strip (so a strip's chunk stays far below 2^31).
constexpr size_t kMaxStrip = size_t(32) << 20;

void Be32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

uint32_t ChunkCrc(const char* type, const uint8_t* data, size_t size) {
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(type), 4);
  while (size > 0) {  // zlib's lengths are 32-bit
    const uInt n = uInt(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, data, n);
    data += n;
    size -= n;
  }
  return uint32_t(crc);
}

struct Strip {
  int y0 = 0, rows = 0;
  std::vector<uint8_t> data;  // the chunk's data: deflate (strip 0 after the zlib header)
  uint32_t adler = 1, crc = 0;
  size_t raw = 0;  // bytes of rows (filter byte included) it holds
  Status status = Status::Ok();
};

// Rows y0 .. y0 + rows - 1, each behind its filter byte (0: None), deflated raw at `level` and
// ended by a sync flush, or by the end of the stream for the `last` strip.
Status DeflateStrip(int w, int bands, int level, bool first, bool last, const PngRows& rows,
                    Strip* s) {
  z_stream z;
  std::memset(&z, 0, sizeof(z));
  if (deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return Status::Internal("zlib: cannot start a deflate stream");
  struct End {
    z_stream* z;
    ~End() { deflateEnd(z); }
  } end{&z};
  const size_t stride = size_t(w) * size_t(bands), line = stride + 1;
  s->raw = line * size_t(s->rows);
  // The output in one buffer of deflate's bound for the strip (grown should it not suffice),
  // `used` bytes of it written.
  s->data.assign(deflateBound(&z, uLong(s->raw)) + 64, 0);
  size_t used = 0;
  if (first) {
    // CMF 0x78 (deflate, 32 KiB window), FLG with the level's class and the check bits.
    static constexpr uint8_t kFlg[4] = {0x01, 0x5E, 0x9C, 0xDA};
    s->data[used++] = 0x78;
    s->data[used++] = kFlg[level <= 1 ? 0 : level <= 5 ? 1 : level == 6 ? 2 : 3];
  }
  constexpr int kBatch = 32;
  std::vector<uint8_t> scratch, buf(line * kBatch);
  uLong adler = adler32(0, Z_NULL, 0);
  for (int y = 0; y < s->rows;) {
    const int n = std::min(kBatch, s->rows - y);
    const uint8_t* p = rows(s->y0 + y, n, &scratch);
    for (int i = 0; i < n; ++i) {
      buf[size_t(i) * line] = 0;
      std::memcpy(&buf[size_t(i) * line + 1], p + size_t(i) * stride, stride);
    }
    y += n;
    const int flush = y < s->rows ? Z_NO_FLUSH : last ? Z_FINISH : Z_SYNC_FLUSH;
    adler = adler32(adler, buf.data(), uInt(line * size_t(n)));
    z.next_in = buf.data();
    z.avail_in = uInt(line * size_t(n));
    for (;;) {
      if (s->data.size() - used < 4096) s->data.resize(s->data.size() * 2);
      const size_t room = std::min<size_t>(s->data.size() - used, 1u << 30);
      z.next_out = s->data.data() + used;
      z.avail_out = uInt(room);
      const int r = deflate(&z, flush);
      used += room - z.avail_out;
      if (r == Z_STREAM_ERROR) return Status::Internal("zlib: deflate failed");
      if (flush == Z_FINISH ? r == Z_STREAM_END : z.avail_in == 0 && z.avail_out > 0) break;
    }
  }
  s->data.resize(used);
  s->adler = uint32_t(adler);
  s->crc = ChunkCrc("IDAT", s->data.data(), s->data.size());
  return Status::Ok();
}

}  // namespace

Status EncodePngStrips(int w, int h, int bands, const PngEncodeOptions& o, const PngRows& rows,
                       const std::vector<PngChunk>& chunks, const PngSink& sink) {
  if (w < 1 || h < 1 || w > (1 << 24) || h > (1 << 24) || (bands != 1 && bands != 3))
    return Status::Invalid(
        fmt::format("a {}x{} image of {} bands cannot be this PNG", w, h, bands));
  if (o.level < 0 || o.level > 9)
    return Status::Invalid(fmt::format("PNG compression {} is not 0-9", o.level));
  const size_t line = size_t(w) * size_t(bands) + 1, total = line * size_t(h);
  const int threads = std::max(1, o.threads);
  int count = 1;
  if (threads > 1 && total >= kStripsFrom)  // two a thread: a slow strip does not hold the rest
    count = std::max(1, o.strips_per_thread) * threads;
  count = int(
      std::min<size_t>(size_t(h), std::max(size_t(count), (total + kMaxStrip - 1) / kMaxStrip)));
  const int per = (h + count - 1) / count;
  count = (h + per - 1) / per;
  std::vector<Strip> strips(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    strips[size_t(i)].y0 = i * per;
    strips[size_t(i)].rows = std::min(per, h - i * per);
  }
  std::atomic<bool> failed{false};
  ParallelFor(count, threads, [&](int, int i) {
    if (failed) return;  // no more strips after a failure
    Strip& s = strips[size_t(i)];
    try {
      s.status = DeflateStrip(w, bands, o.level, i == 0, i == count - 1, rows, &s);
    } catch (const std::exception& e) {  // std::bad_alloc, or from `rows`
      s.status = Status::Internal(
          fmt::format("deflating rows {}-{}: {}", s.y0, s.y0 + s.rows - 1, e.what()));
    }
    if (!s.status.ok()) failed = true;
  });
  for (const Strip& s : strips) LUMEN_RETURN_IF_ERROR(s.status);

  auto put = [&](const char* type, const uint8_t* data, size_t size, uint32_t crc) {
    uint8_t head[8], tail[4];
    Be32(head, uint32_t(size));
    std::memcpy(head + 4, type, 4);
    Be32(tail, crc);
    return sink(head, 8) && (size == 0 || sink(data, size)) && sink(tail, 4);
  };
  auto put_chunk = [&](const char* type, const uint8_t* data, size_t size) {
    return put(type, data, size, ChunkCrc(type, data, size));
  };
  static constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  uint8_t ihdr[13];
  Be32(ihdr, uint32_t(w));
  Be32(ihdr + 4, uint32_t(h));
  ihdr[8] = 8;                         // bit depth
  ihdr[9] = bands == 1 ? 0 : 2;        // grey or RGB
  ihdr[10] = ihdr[11] = ihdr[12] = 0;  // deflate, adaptive filtering (method 0), no interlace
  const Status write_failed = Status::Io("the write of the PNG failed");
  if (!sink(kSignature, 8) || !put_chunk("IHDR", ihdr, 13)) return write_failed;
  for (const PngChunk& c : chunks)
    if (c.type.size() != 4 ||
        !put_chunk(c.type.c_str(), reinterpret_cast<const uint8_t*>(c.data.data()), c.data.size()))
      return c.type.size() != 4 ? Status::Invalid("a PNG chunk type is four letters")
                                : write_failed;
  uLong adler = strips[0].adler;
  for (size_t i = 1; i < strips.size(); ++i)
    adler = adler32_combine(adler, strips[i].adler, z_off_t(strips[i].raw));
  for (Strip& s : strips) {
    if (&s == &strips.back()) {  // the stream's Adler-32 ends the last chunk
      uint8_t a[4];
      Be32(a, uint32_t(adler));
      s.data.insert(s.data.end(), a, a + 4);
      s.crc = uint32_t(crc32(s.crc, a, 4));
    }
    if (!put("IDAT", s.data.data(), s.data.size(), s.crc)) return write_failed;
    s.data = std::vector<uint8_t>();
  }
  if (!put_chunk("IEND", nullptr, 0)) return write_failed;
  return Status::Ok();
}

}  // namespace lumen
