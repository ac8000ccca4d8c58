// EXIF is a TIFF structure: a byte-order mark, IFD0's offset, then directories of 12-byte
// entries (tag, type, count, value or offset). Orientation (0x0112) is in IFD0; the pixel
// dimensions (0xA002, 0xA003) are in the Exif sub-IFD that IFD0's 0x8769 points to. Values of
// 4 bytes or less sit in the entry itself, so both edits overwrite bytes in place: the rest of
// the data (maker notes with their own offsets included) stays byte for byte as it was.
#include "exif_tiff.h"

#include <cstdint>

namespace lumen {
namespace {

class Tiff {
 public:
  explicit Tiff(std::string_view d) : d_(d) {
    if (d.size() < 8) return;
    if (d[0] == 'I' && d[1] == 'I') {
      little_ = true;
    } else if (!(d[0] == 'M' && d[1] == 'M')) {
      return;
    }
    ok_ = U16(2) == 42;
  }
  bool ok() const { return ok_; }
  uint32_t U16(size_t at) const {
    if (at + 2 > d_.size()) return 0;
    const auto b0 = uint8_t(d_[at]), b1 = uint8_t(d_[at + 1]);
    return little_ ? uint32_t(b0 | b1 << 8) : uint32_t(b1 | b0 << 8);
  }
  uint32_t U32(size_t at) const {
    if (at + 4 > d_.size()) return 0;
    return little_ ? U16(at) | U16(at + 2) << 16 : U16(at) << 16 | U16(at + 2);
  }
  // The offset of the entry with `tag` in the IFD at `ifd`, or 0.
  size_t Find(size_t ifd, uint32_t tag) const {
    if (ifd < 8 || ifd + 2 > d_.size()) return 0;
    const uint32_t n = U16(ifd);
    for (uint32_t i = 0; i < n; ++i) {
      const size_t e = ifd + 2 + size_t(i) * 12;
      if (e + 12 > d_.size()) return 0;
      if (U16(e) == tag) return e;
    }
    return 0;
  }
  bool little() const { return little_; }

 private:
  std::string_view d_;
  bool little_ = false, ok_ = false;
};

constexpr uint32_t kOrientation = 0x0112, kExifIfd = 0x8769, kPixelX = 0xA002, kPixelY = 0xA003;
constexpr uint32_t kShort = 3, kLong = 4;

// Writes `v` into the value field of the SHORT or LONG entry at `e` (count 1).
void Put(std::string* d, const Tiff& t, size_t e, uint32_t v) {
  if (!e || t.U32(e + 4) != 1) return;
  const uint32_t type = t.U16(e + 2);
  const size_t at = e + 8;
  auto byte = [&](size_t i, uint32_t b) { (*d)[at + i] = char(b & 0xff); };
  if (type == kShort) {
    if (v > 0xffff) return;
    if (t.little()) {
      byte(0, v), byte(1, v >> 8);
    } else {
      byte(0, v >> 8), byte(1, v);
    }
  } else if (type == kLong) {
    for (size_t i = 0; i < 4; ++i) byte(i, t.little() ? v >> (8 * i) : v >> (8 * (3 - i)));
  }
}

}  // namespace

int ExifOrientation(std::string_view tiff) {
  const Tiff t(tiff);
  if (!t.ok()) return 1;
  const size_t e = t.Find(t.U32(4), kOrientation);
  if (!e || t.U16(e + 2) != kShort) return 1;
  const uint32_t v = t.U16(e + 8);
  return v >= 1 && v <= 8 ? int(v) : 1;
}

void ExifSetUpright(std::string* tiff, int width, int height) {
  const Tiff t(*tiff);
  if (!t.ok()) return;
  const size_t ifd0 = t.U32(4);
  Put(tiff, t, t.Find(ifd0, kOrientation), 1);
  const size_t sub = t.Find(ifd0, kExifIfd);
  if (!sub) return;
  const size_t exif = t.U32(sub + 8);
  Put(tiff, t, t.Find(exif, kPixelX), uint32_t(width));
  Put(tiff, t, t.Find(exif, kPixelY), uint32_t(height));
}

}  // namespace lumen
