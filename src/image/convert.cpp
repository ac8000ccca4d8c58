#include "lumen/image/convert.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "convert_direct.h"
#include "lumen/image/decode.h"
#include "lumen/image/image.h"
#include "lumen/image/vectorize.h"
#include "lumen/io/magic.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/profile.h"
#include "vips_loader.h"
#include "vips_module.h"

namespace lumen {
namespace {

struct PresetValues {
  const char* name;
  ResampleKernel kernel;
  int effort;     // WebP scale 0-6 (AVIF and PNG scaled from it)
  int subsample;  // 1 on, 0 off, -1 libvips' choice
};
constexpr PresetValues kPresets[] = {
    {"draft", ResampleKernel::kLinear, 0, 1},       {"fast", ResampleKernel::kCubic, 2, 1},
    {"balanced", ResampleKernel::kLanczos3, 4, -1}, {"high", ResampleKernel::kLanczos3, 5, 0},
    {"ultra", ResampleKernel::kLanczos3, 6, 0},
};
const PresetValues& Values(const Preset& p) {
  for (const auto& v : kPresets)
    if (p.name == v.name) return v;
  return kPresets[2];
}

bool StopRequested() {
  return Interrupted();
}
Status LimitStatus(const std::string& input, const std::string& why) {
  if (Interrupted()) return Status::Interrupted(fmt::format("{}: stopped by a signal", input));
  return Status::TooLarge(fmt::format("{}: {}", input, why));
}

}  // namespace

// The scans of a JPEG (its SOS markers), counted by walking its segments without decoding:
// libvips' loader reads every scan of a progressive file before the first row, where no
// deadline can reach it, so the scan limit is checked before libvips opens the file. Stops
// counting past `limit`.
int CountJpegScans(int fd, int limit) {
  std::vector<uint8_t> buf(1 << 16);
  size_t have = 0, at = 0;
  off_t offset = 0;
  auto byte = [&](int* out) {  // the next byte, false at the end
    if (at == have) {
      const ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
      if (n <= 0) return false;
      offset += n;
      have = size_t(n);
      at = 0;
    }
    *out = buf[at++];
    return true;
  };
  auto skip = [&](uint64_t n) {  // n more bytes
    const uint64_t in_buf = std::min<uint64_t>(n, have - at);
    at += size_t(in_buf);
    offset += off_t(n - in_buf);
  };
  int scans = 0, c = 0;
  bool in_scan = false;
  while (byte(&c)) {
    // Bytes that are not a marker (scan data, or junk between markers, which libjpeg skips with
    // a warning) are passed over: one stray byte must not end the count.
    if (c != 0xFF) continue;
    int m = 0xFF;
    while (m == 0xFF)
      if (!byte(&m)) return scans;
    if (m == 0x00 || (m >= 0xD0 && m <= 0xD7)) continue;  // stuffed byte, restart marker
    if (m == 0xD8 || m == 0x01) continue;                 // SOI, TEM: no length
    if (m == 0xD9) return scans;                          // EOI
    int hi = 0, lo = 0;
    if (!byte(&hi) || !byte(&lo)) return scans;
    const int len = (hi << 8) | lo;
    if (len < 2) return scans;
    skip(uint64_t(len - 2));
    in_scan = m == 0xDA;
    if (in_scan && ++scans > limit) return scans;
  }
  return scans;
}

Status CheckInputFile(const std::string& input, int fd, const DecodeLimits& limits,
                      uint64_t* size) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::Io(fmt::format("{}: {}", input, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return Status::Unsupported(fmt::format("{}: {}", input, FileKind(st)));
  if (limits.max_file_bytes > 0 && uint64_t(st.st_size) > limits.max_file_bytes)
    return Status::TooLarge(fmt::format("{}: {:.1f} MB, above the file size limit of {:.1f} MB",
                                        input, double(st.st_size) / 1048576.0,
                                        double(limits.max_file_bytes) / 1048576.0));
  if (st.st_size == 0) return Status::Corrupt(fmt::format("{}: empty file", input));
  if (size) *size = uint64_t(st.st_size);
  return Status::Ok();
}

std::string FileKind(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISDIR(st.st_mode)) return "a folder, not an image file";
  if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe), not an image file";
  if (S_ISCHR(st.st_mode)) return "a character device, not an image file";
  if (S_ISBLK(st.st_mode)) return "a block device, not an image file";
  if (S_ISSOCK(st.st_mode)) return "a socket, not an image file";
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  return "not a regular file";
}

bool IsPreset(const std::string& name) {
  for (const auto& v : kPresets)
    if (name == v.name) return true;
  return false;
}

std::string OutputFormat(const Chain& chain, const std::string& input) {
  if (!chain.format.empty()) return chain.format;
  std::string ext = std::filesystem::path(input).extension().string();
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".png") return "png";
  if (ext == ".webp") return "webp";
  if (ext == ".tif" || ext == ".tiff") return "tiff";
  if (ext == ".avif") return "avif";
  return "jpeg";  // JPEG, and formats lumen reads but does not write (HEIC, GIF, ...)
}

namespace {
std::atomic<int> convert_threads{1};
}  // namespace

void SetConvertThreads(int threads) {
  convert_threads = std::max(1, threads);
}

// svg's denoise: the sigma of a Gaussian blur before quantisation, per 1024 pixels of the long
// edge (so the same setting keeps the same detail at any size). Quantising a photo's gradients
// and grain gives ragged borders between colours, which potrace follows point by point: a 4096
// px photo at 16 colours was 101 MB of SVG in 8.2 s, blurred by 4 first 9.9 MB in 1.7 s, and
// looks the same from a step away (BENCHMARKS.md "Vectorization"). Logos have flat colours and
// sharp corners: none.
double SvgDenoise(const std::vector<std::pair<std::string, std::string>>& settings) {
  double d = 1.0;
  for (const auto& [k, value] : settings) {
    if (k == "preset") d = value == "logo" ? 0.0 : value == "photo" ? 0.5 : 1.0;
    if (k == "denoise") d = std::stod(value);  // canonical, checked by ParseChain
  }
  return d;
}

VectorizeOptions SvgOptions(const std::vector<std::pair<std::string, std::string>>& settings) {
  VectorizeOptions v;
  auto get = [&](const char* key) -> const std::string* {
    for (const auto& [k, value] : settings)
      if (k == key) return &value;
    return nullptr;
  };
  // Presets (measured on the bench corpus, BENCHMARKS.md "Vectorization"): a logo has few flat
  // colours and wants clean curves; a photo wants more colours and keeps small details.
  const std::string* preset = get("preset");
  if (preset && *preset == "logo") {
    v.colors = 8, v.speckle = 8, v.smooth = 1.0, v.tolerance = 0.3;
  } else if (!preset || *preset == "illustration") {
    v.colors = 16, v.speckle = 4, v.smooth = 1.0, v.tolerance = 0.2;
  } else {  // photo
    v.colors = 32, v.speckle = 2, v.smooth = 0.9, v.tolerance = 0.4;
  }
  if (const std::string* s = get("colors")) v.colors = std::stoi(*s);
  if (const std::string* s = get("speckle")) v.speckle = std::stoi(*s);
  if (const std::string* s = get("smooth")) v.smooth = std::stod(*s);
  return v;
}

std::string FormatExtension(const std::string& format) {
  return format == "jpeg" ? "jpg" : format == "tiff" ? "tif" : format;
}

Result<ConvertResult> ConvertFile(const std::string& input, const Chain& chain, int out_fd,
                                  const Preset& preset, const DecodeLimits& limits) {
  const PresetValues& pv = Values(preset);
  const std::string format = OutputFormat(chain, input);
  const double svg_denoise = format == "svg" ? SvgDenoise(chain.svg) : 0;
  const uint64_t deadline =
      limits.max_seconds > 0 ? MonotonicNs() + uint64_t(limits.max_seconds * 1e9) : 0;
  ConvertResult r;
  // The input, refused by its type before anything reads it (a FIFO would block, /dev/zero never
  // end) and by its size. O_NONBLOCK: opening a FIFO does not wait for a writer.
  const int in_fd = ::open(input.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (in_fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(fmt::format("{}: no such file", input));
    return Status::Io(fmt::format("{}: {}", input, std::strerror(err)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{in_fd};
  LUMEN_RETURN_IF_ERROR(CheckInputFile(input, in_fd, limits, nullptr));
  // The input's format by its magic bytes: HEIF/AVIF in or out needs libvips' HEIF module
  // (decode.h) before libvips can even read the header; a JPEG may take the direct path
  // (convert_direct.h) and never touch libvips.
  uint8_t magic[64] = {0};
  const ssize_t got = ::pread(in_fd, magic, sizeof(magic), 0);
  const Format in_format = DetectFormat(magic, got > 0 ? size_t(got) : 0);
  auto output_error = [&](const std::string& why) {
    return Status::Io(fmt::format("cannot write the output of {}: {}", input, why));
  };
  if (in_format == Format::kJpeg) {
    DirectSettings ds;
    ds.kernel = pv.kernel;
    ds.effort = pv.effort;
    ds.subsample = pv.subsample;
    ds.max_pixels = limits.max_pixels;
    ds.jpeg.max_scans = limits.max_scans;
    ds.jpeg.deadline_ns = deadline;
    ds.jpeg.stop = StopRequested;
    ds.threads = convert_threads;
    ds.svg_denoise = svg_denoise;
    // Full-size chains held decoded: 1 GiB in all, shared by the images converted at once
    // (convert_threads is this image's share of the cores).
    const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    ds.full_size_bytes =
        (uint64_t(1) << 30) * uint64_t(std::min(convert_threads.load(), cores)) / uint64_t(cores);
    std::string error;
    switch (ConvertDirect(input, chain, format, out_fd, ds, &r, &error)) {
      case Direct::kDone: {
        struct stat st;
        r.format = format;
        r.bytes = ::fstat(out_fd, &st) == 0 ? uint64_t(st.st_size) : 0;
        return r;
      }
      case Direct::kFailed:
        return Status::Corrupt(fmt::format("{}: {}", input, error));
      case Direct::kLimit:
        return LimitStatus(input, error);
      case Direct::kWriteFailed:
        return output_error(error);
      case Direct::kTraceFailed:
        return Status::Internal(fmt::format("{}: {}", input, error));
      case Direct::kNotApplicable:
        break;
    }
    if (limits.max_scans > 0 && CountJpegScans(in_fd, limits.max_scans) > limits.max_scans)
      return Status::TooLarge(
          fmt::format("{}: progressive JPEG with more than {} scans (the scan limit)", input,
                      limits.max_scans));
  }
  // libvips, loaded on first use: a run that only takes the direct path never pays for it.
  auto vips = VipsModule();
  if (!vips.ok())
    return Status(vips.status().code(), fmt::format("{}: {}", input, vips.status().message()));
  if (format == "avif" || in_format == Format::kHeif || in_format == Format::kAvif)
    (*vips)->ensure_heif();
  VipsConvertRequest req;
  req.input = &input;
  req.chain = &chain;
  req.out_fd = out_fd;
  req.format = format;
  req.in_format = in_format;
  req.kernel = pv.kernel;
  req.effort = pv.effort;
  req.subsample = pv.subsample;
  req.limits = limits;
  req.deadline_ns = deadline;
  req.threads = convert_threads;
  req.svg_denoise = svg_denoise;
  auto done = (*vips)->convert(req);
  if (!done.ok()) return done.status();
  r = done->result;
  r.format = format;
  if (done->svg) {
    // Traced from the finished raster (image/vectorize.h): colour layers traced in parallel.
    auto written = WriteSvg(done->raster, chain, convert_threads, out_fd);
    if (!written.ok()) {
      if (written.status().code() == Code::kIo) return output_error(written.status().message());
      return Status(written.status().code(),
                    fmt::format("{}: {}", input, written.status().message()));
    }
    r.bytes = *written;
    return r;
  }
  struct stat st;
  r.bytes = ::fstat(out_fd, &st) == 0 ? uint64_t(st.st_size) : 0;
  return r;
}

}  // namespace lumen
