#include "vips_loader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "convert_direct.h"
#include "jpeg_scaled.h"
#include "lumen/image/convert.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"
#include "lumen/util/module_path.h"
#include "lumen/util/profile.h"

namespace lumen {
namespace {

std::string& Argv0() {
  static std::string argv0 = "lumen";
  return argv0;
}

// libvips loads every loader module it finds at start (ImageMagick, poppler, OpenSlide, JPEG XL,
// HEIF), and with them ~7 MB of libraries' pages. lumen reads only HEIF/AVIF through a module: the
// module loads that one when a HEIF or AVIF file first comes, the others never. A VIPSHOME
// without modules (unless the user set one) is how libvips is told to skip them.
void SetVipsHome() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!std::getenv("VIPSHOME")) ::setenv("VIPSHOME", "/nonexistent/lumen-no-vips-modules", 0);
  });
}

// --- the executable's services (VipsHost) ---

void HostLogDebug(const std::string& line) {
  log::Debug(line);
}

Status HostCheckOverlay(const std::string& path, const DecodeLimits& limits) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Status::Io(fmt::format("overlay {}: {}", path, std::strerror(errno)));
  Status st = CheckInputFile("overlay " + path, fd, limits, nullptr);
  unsigned char magic[2] = {0, 0};
  const bool jpeg = ::pread(fd, magic, 2, 0) == 2 && magic[0] == 0xFF && magic[1] == 0xD8;
  if (st.ok() && jpeg && CountJpegScans(fd, limits.max_scans) > limits.max_scans)
    st = Status::TooLarge(
        fmt::format("overlay {}: more than {} JPEG scans", path, limits.max_scans));
  ::close(fd);
  return st;
}

bool HostShrinkJpeg(const std::string& input, const ChainOp& lead, int w, int h, int orientation,
                    ResampleKernel kernel, int max_scans, uint64_t deadline_ns, Image* out) {
  int uw, uh, fw, fh;  // upright: the file, the result
  OrientedSize(w, h, orientation, &uw, &uh);
  const bool swap = orientation >= 5 && orientation <= 8;
  if (!ShrinkSize(lead, uw, uh, &fw, &fh)) return false;
  if (JpegScaleFor(w, h, swap ? fh : fw, swap ? fw : fh) == 8) return false;
  JpegLimits limits;
  limits.max_scans = max_scans;
  limits.deadline_ns = deadline_ns;
  limits.stop = Interrupted;
  JpegReader jpeg;
  return jpeg.Open(input, false, &limits) && !jpeg.cmyk() &&
         DecodeShrunk(&jpeg, orientation, fw, fh, kernel, false, out);
}

// log::Debug takes a string_view and fields: the one service that needs a wrapper.
constexpr VipsHost kHost = {HostLogDebug,     Interrupted,        MonotonicNs,
                            HostCheckOverlay, NeedsSrgbTransform, HostShrinkJpeg};

Result<const VipsModuleApi*> Load() {
  SetVipsHome();
  // Never closed: libvips cannot be shut down and started again.
  auto loaded = LoadModule(
      ModuleCandidates("LUMEN_VIPS_MODULE", "liblumen_vips.so", LUMEN_VIPS_MODULE_PATH),
      "lumen_vips_module_v1",
      [](void* entry) -> const void* {
        using Entry = const VipsModuleApi* (*)();
        const VipsModuleApi* m = reinterpret_cast<Entry>(entry)();
        const bool ours = m && std::strcmp(m->abi_id, LUMEN_VIPS_ABI_ID) == 0 &&
                          m->host_size == sizeof(VipsHost) &&
                          m->request_size == sizeof(VipsConvertRequest) &&
                          m->outcome_size == sizeof(VipsConvertOutcome) &&
                          m->decoded_size == sizeof(DecodedImage);
        return ours ? m : nullptr;
      },
      "libvips module", "this image or operation");
  if (!loaded.ok()) return loaded.status();
  const auto* api = static_cast<const VipsModuleApi*>(*loaded);
  LUMEN_RETURN_IF_ERROR(api->start(&kHost, Argv0().c_str()));
  return api;
}

}  // namespace

Result<const VipsModuleApi*> VipsModule() {
  static const Result<const VipsModuleApi*> api = Load();
  return api;
}

Status InitImageLibraries(const char* argv0) {
  static std::once_flag once;
  std::call_once(once, [argv0] {
    if (argv0 && *argv0) Argv0() = argv0;
    SetVipsHome();
  });
  return Status::Ok();
}

Result<std::vector<uint8_t>> EncodeWithVips(const Image& image, const std::string& suffix) {
  auto api = VipsModule();
  if (!api.ok()) return api.status();
  return (*api)->encode(image, suffix);
}

void EnsureHeifSupport() {
  if (auto api = VipsModule(); api.ok()) (*api)->ensure_heif();
}

}  // namespace lumen
