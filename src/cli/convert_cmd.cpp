// lumen convert: operation chains (image/chain.h) over many files, in parallel, one libvips
// pipeline per image (image/convert.h). Errors are per file; the run goes on.
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <tuple>

#include <fmt/format.h>

#include "cli_util.h"
#include "commands.h"
#include "jobs.h"
#include "lumen/catalog/catalog.h"
#include "lumen/image/chain.h"
#include "lumen/image/convert.h"
#include "lumen/io/beneath.h"
#include "lumen/io/file.h"
#include "lumen/io/magic.h"
#include "lumen/io/scan.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/util/progress.h"
#include "lumen/util/temp_file.h"
#include "lumen/video/transcode.h"

namespace lumen::cli {
namespace {

namespace fs = std::filesystem;

bool IsImage(const fs::path& p) {
  std::string e = p.extension().string();
  for (char& c : e) c = char(std::tolower(static_cast<unsigned char>(c)));
  for (const char* k :
       {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".gif"})
    if (e == k) return true;
  return false;
}

bool IsVideo(const fs::path& p) {
  return HasVideoExtension(p.filename().string());
}

// "{stem}_{w}x{h}.{ext}" with the result's size and the output format's extension.
std::string OutputName(const std::string& tmpl, const fs::path& in, const std::string& ext, int w,
                       int h) {
  std::string out = tmpl;
  auto rep = [&](const std::string& k, const std::string& v) {
    for (size_t at = out.find(k); at != std::string::npos; at = out.find(k, at + v.size()))
      out.replace(at, k.size(), v);
  };
  rep("{stem}", in.stem().string());
  rep("{ext}", ext);
  rep("{w}", std::to_string(w));
  rep("{h}", std::to_string(h));
  return out;
}

// An output name from --name (or a recipe's name), once filled in: a relative path whose
// components are names, never "..", "." or empty ("{stem}" of "...jpg" is ".."), so that it
// stays inside -o.
Status CheckOutputName(const fs::path& rel, const std::string& tmpl) {
  bool ok = !rel.empty() && rel.is_relative() && !rel.has_root_name();
  for (const auto& part : rel) ok = ok && !part.empty() && part != "." && part != "..";
  if (!ok)
    return Status::Invalid(fmt::format(
        "output name '{}' (from --name '{}') leaves the output folder: names are relative to -o, "
        "without '..' or a leading '/'",
        rel.string(), tmpl));
  return Status::Ok();
}

// --in-place: the new file takes the original's owner, group, mode and extended attributes
// (POSIX ACLs are the system.posix_acl_* attributes); what cannot be kept is listed in *lost.
void KeepAttributes(int from, int to, const struct stat& st, std::vector<std::string>* lost) {
  if (::fchown(to, st.st_uid, st.st_gid) != 0)
    lost->push_back(
        fmt::format("owner and group {}:{} ({})", st.st_uid, st.st_gid, std::strerror(errno)));
  if (::fchmod(to, st.st_mode & 07777) != 0)
    lost->push_back(fmt::format("mode {:04o} ({})", st.st_mode & 07777, std::strerror(errno)));
  const ssize_t n = ::flistxattr(from, nullptr, 0);
  if (n <= 0) return;
  std::string names(size_t(n), '\0');
  const ssize_t got = ::flistxattr(from, names.data(), names.size());
  if (got <= 0) return;
  names.resize(size_t(got));
  for (size_t at = 0; at < names.size();) {
    const std::string name = names.c_str() + at;
    at += name.size() + 1;
    if (name.empty()) continue;
    const ssize_t len = ::fgetxattr(from, name.c_str(), nullptr, 0);
    std::string value(len > 0 ? size_t(len) : 0, '\0');
    const ssize_t vlen = len > 0 ? ::fgetxattr(from, name.c_str(), value.data(), value.size()) : 0;
    if (vlen < 0 || ::fsetxattr(to, name.c_str(), value.data(), size_t(vlen), 0) != 0)
      lost->push_back(fmt::format("extended attribute {} ({})", name, std::strerror(errno)));
  }
}

// Copies the whole of `from` into `to`.
Status CopyInto(int from, int to, const std::string& shown) {
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(from, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Io(fmt::format("cannot read {}: {}", shown, std::strerror(errno)));
    if (n == 0) return Status::Ok();
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(to, buf.data() + done, size_t(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Status::Io(fmt::format("cannot write: {}", std::strerror(errno)));
      done += w;
    }
  }
}

}  // namespace

// One video through video::Transcode into `fd` (a temporary in the output folder), one video at
// a time (`one_at_a_time`): its decoder, filters and encoder take every core. With `job` (a
// catalog), a long one runs as a resumable job (jobs.h); *job_id is then set.
Status ConvertVideo(const std::string& in, int fd, std::string container,
                    const video::TranscodeSpec& spec, const Options& o, std::mutex* one_at_a_time,
                    const VideoJobContext* job, Catalog::Conversion* out, uint64_t* bytes,
                    int64_t* job_id) {
  for (char& ch : container) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  std::lock_guard<std::mutex> lock(*one_at_a_time);
  if (Interrupted()) return Status::Interrupted("stopped by a signal");
  video::TranscodeOptions opts;
  uint64_t last = MonotonicNs();
  // Two lines a second as JSON (for a program to follow), one every 2 s as text.
  const uint64_t every = log::IsJson() ? 500'000'000ull : 2'000'000'000ull;
  auto rates = [](const video::TranscodeProgress& p, double* fps, double* speed, double* eta) {
    *fps = p.elapsed > 0 ? double(p.frames) / p.elapsed : 0;
    *speed = p.elapsed > 0 ? (p.position - p.start_position) / p.elapsed : 0;
    *eta = *speed > 0 && p.duration > p.position ? (p.duration - p.position) / *speed : 0;
  };
  opts.progress = [&](const video::TranscodeProgress& p) {
    const uint64_t now = MonotonicNs();
    if (o.quiet || now - last < every) return;
    last = now;
    double fps, speed, eta;
    rates(p, &fps, &speed, &eta);
    log::Info(fmt::format("{}: {:.0f}%, {} frames, {:.1f} frames/s, {:.2f}x realtime, {:.1f} MB, "
                          "{} left",
                          in, p.duration > 0 ? 100 * std::min(1.0, p.position / p.duration) : 0.0,
                          p.frames, fps, speed, double(p.bytes) / 1e6, Clock(eta)),
              {{"event", "video_progress"},
               {"file", in},
               {"frames", std::to_string(p.frames)},
               {"position_s", fmt::format("{:.3f}", p.position)},
               {"duration_s", fmt::format("{:.3f}", p.duration)},
               {"fps", fmt::format("{:.2f}", fps)},
               {"realtime", fmt::format("{:.3f}", speed)},
               {"eta_s", fmt::format("{:.1f}", eta)},
               {"bytes", std::to_string(p.bytes)}});
  };
  bool is_job = false;
  Result<video::TranscodeReport> r = video::TranscodeReport{};
  if (job) r = RunVideoJob(*job, in, fd, container, spec, opts, &is_job, job_id);
  if (r.ok() && !is_job) r = video::Transcode(in, fd, container, spec, opts);
  if (!r.ok()) return r.status();
  out->width = r->width;
  out->height = r->height;
  out->format = container;
  struct stat st;
  if (::fstat(fd, &st) == 0) r->last.bytes = uint64_t(st.st_size);
  *bytes = r->last.bytes;
  for (const std::string& w : r->warnings) log::Warn(fmt::format("{}: {}", in, w));
  if (r->corrupt_packets > 0)
    log::Warn(fmt::format("{}: {} damaged packets skipped (the rest was converted)", in,
                          r->corrupt_packets));
  if (!o.quiet) {
    double fps, speed, eta;
    rates(r->last, &fps, &speed, &eta);
    std::string streams;
    for (const std::string& st : r->streams) streams += (streams.empty() ? "" : "; ") + st;
    log::Info(fmt::format("{}: {} frames in {:.1f} s ({:.1f} frames/s, {:.2f}x realtime), {:.1f} "
                          "MB; {}{}",
                          in, r->last.frames, r->last.elapsed, fps, speed,
                          double(r->last.bytes) / 1e6, streams,
                          r->field_detected ? fmt::format("; fields: {} (detected)",
                                                          video::FieldOrderName(r->field))
                                            : ""),
              {{"event", "video_done"},
               {"file", in},
               {"frames", std::to_string(r->last.frames)},
               {"seconds", fmt::format("{:.3f}", r->last.elapsed)},
               {"bytes", std::to_string(r->last.bytes)},
               {"video_filters", r->video_filters},
               {"audio_filters", r->audio_filters},
               {"field_order", video::FieldOrderName(r->field)},
               {"job", std::to_string(is_job ? *job_id : 0)},
               {"corrupt_packets", std::to_string(r->corrupt_packets)}});
  }
  return Status::Ok();
}

int RunConvert(const Options& o, const char* argv0) {
  SetupLogging(o);
  // libvips is loaded by the first image that needs it (image/convert.h): a run that only takes
  // the direct path (a JPEG shrunk into WebP, JPEG, PNG or SVG) never loads it. What its start
  // needs from the environment is set here, before any worker thread reads the environment.
  if (Status st = InitImageLibraries(argv0); !st.ok()) {
    log::Error(st.message());
    return kExitError;
  }
  // SVT-AV1 prints its whole configuration to stderr at every start unless told (warnings and
  // errors still show). Set here, before any thread reads the environment.
  ::setenv("SVT_LOG", "2", 0);
  // A video preset (web, vhs, ...) is for the videos; the photos then take the default effort.
  const bool video_preset = video::IsVideoPreset(o.preset);
  if (o.chain.empty() && !video_preset) {
    log::Error(fmt::format("convert needs --chain OPS, --recipe FILE or a video --preset ({})",
                           video::VideoPresetList()));
    return kExitError;
  }
  if (!video_preset && !IsPreset(o.preset)) {
    log::Error(fmt::format(
        "unknown --preset {}: draft, fast, balanced, high or ultra for photos; for videos {}",
        o.preset, video::VideoPresetList()));
    return kExitError;
  }
  // The chain as photos read it and as videos read it: which of the two must be valid depends
  // on the inputs found (checked once they are listed).
  Result<Chain> chain_parsed =
      o.chain.empty() ? Result<Chain>(Status::Invalid(fmt::format(
                            "photos need --chain OPS (--preset {} is for videos)", o.preset)))
                      : ParseChain(o.chain);
  Result<video::TranscodeSpec> video_spec = video::TranscodeSpec{};
  if (video_preset) video_spec = video::VideoPreset(o.preset);
  if (video_spec.ok() && !o.chain.empty())
    video_spec = video::ParseVideoChain(o.chain, *video_spec);
  const Chain empty_chain;
  const Chain* chain = chain_parsed.ok() ? &*chain_parsed : &empty_chain;
  const Preset preset{video_preset ? std::string("balanced") : o.preset};
  if (o.output.empty() && !o.in_place) {
    log::Error("convert needs -o OUTDIR (or --in-place to replace the inputs)");
    return kExitError;
  }
  if (o.in_place && (o.name_template.find("{w}") != std::string::npos ||
                     o.name_template.find("{h}") != std::string::npos)) {
    log::Error("--in-place keeps each file's name: --name does not apply");
    return kExitError;
  }
  // Each input, and its folder relative to the folder given (empty for a file given by name):
  // the output tree mirrors the input's subfolders, so a/IMG_1.jpg and b/IMG_1.jpg do not
  // write the same output.
  // A path given that cannot be converted at all (missing, a FIFO, a device, an unreadable
  // folder) is a failure of the run, named, never skipped without a word. Links are followed to
  // files and folders, as index's scanner does; special files are refused by their type before
  // anything opens them (a FIFO would block, /dev/zero never end).
  std::vector<fs::path> inputs, subdirs;
  std::vector<std::pair<std::string, std::string>> failures;
  for (const auto& p : o.paths) {
    std::error_code ec;
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) {
      failures.emplace_back(p, errno == ENOENT ? fmt::format("{}: no such file or folder", p)
                                               : fmt::format("{}: {}", p, std::strerror(errno)));
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      auto it = fs::recursive_directory_iterator(p, ec);
      for (; !ec && it != fs::end(it); it.increment(ec)) {
        // A dangling link or a link loop in the tree is passed over, not the end of the walk.
        std::error_code entry_ec;
        if (it->is_regular_file(entry_ec) && (IsImage(it->path()) || IsVideo(it->path()))) {
          inputs.push_back(it->path());
          fs::path rel = it->path().parent_path().lexically_relative(p);
          subdirs.push_back(rel == "." ? fs::path() : rel);
        }
      }
      if (ec)
        failures.emplace_back(
            p, fmt::format("{}: cannot read the folder (or one inside it): {}", p, ec.message()));
    } else if (S_ISREG(st.st_mode)) {
      inputs.push_back(p);
      subdirs.emplace_back();
    } else {
      failures.emplace_back(p, fmt::format("{}: {}", p, FileKind(st)));
    }
  }
  // The chain must be valid for every kind of input given.
  {
    bool images = false, videos = false;
    for (const auto& p : inputs) (IsVideo(p) ? videos : images) = true;
    // Nothing found: the chain must still make sense for one of them.
    if (inputs.empty() && !video_spec.ok()) images = true;
    if (images && !chain_parsed.ok()) {
      log::Error(chain_parsed.status().message());
      return kExitError;
    }
    if (videos && !video_spec.ok()) {
      log::Error(video_spec.status().message());
      return kExitError;
    }
  }
  std::vector<uintmax_t> input_bytes;  // the size of each input
  // Largest first: the big photos start early and the small ones fill the gaps at the end, so no
  // core idles while one finishes a 20 MP file (names still decide among equal sizes).
  {
    std::vector<std::tuple<uintmax_t, fs::path, fs::path>> sized_inputs;
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::error_code ec;
      const uintmax_t size = fs::file_size(inputs[i], ec);
      sized_inputs.emplace_back(ec ? 0 : size, std::move(inputs[i]), std::move(subdirs[i]));
    }
    std::sort(sized_inputs.begin(), sized_inputs.end(), [](const auto& a, const auto& b) {
      return std::get<0>(a) != std::get<0>(b) ? std::get<0>(a) > std::get<0>(b)
                                              : std::get<1>(a) < std::get<1>(b);
    });
    inputs.clear();
    subdirs.clear();
    for (auto& [size, p, sub] : sized_inputs) {
      inputs.push_back(std::move(p));
      subdirs.push_back(std::move(sub));
      input_bytes.push_back(size);
    }
  }
  // The output folder: every output is created relative to it, beneath it (OpenDirBeneath).
  UniqueFd out_root;
  const std::string out_abs = o.output.empty() ? std::string() : AbsolutePath(o.output);
  if (!o.output.empty() && !o.output_base.empty()) {
    // A recipe's output: beneath the recipe's folder, no link followed (a recipe is not trusted).
    const std::string& base = o.output_base;
    const UniqueFd base_fd(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!base_fd.ok()) {
      log::Error(fmt::format("cannot open {}: {}", base, std::strerror(errno)));
      return kExitError;
    }
    auto d = OpenDirBeneath(base_fd.get(), o.output_rel, true, base);
    if (!d.ok()) {
      log::Error(fmt::format("recipe {}: output: {}", o.recipe, d.status().message()));
      return kExitError;
    }
    out_root = std::move(*d);
  } else if (!o.output.empty()) {
    std::error_code ec;
    fs::create_directories(o.output, ec);
    if (!ec) out_root = UniqueFd(::open(o.output.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (ec || !out_root.ok()) {
      log::Error(
          fmt::format("cannot create {}: {}", o.output, ec ? ec.message() : std::strerror(errno)));
      return kExitError;
    }
  }
  DecodeLimits limits = InputLimits(o);
  limits.max_seconds = o.time_limit_s;
  // The result cache (catalog table `conversions`): a rerun of the same recipe over the same
  // content costs a stat, or a hash where the file's stat changed.
  std::unique_ptr<Catalog> catalog;
  if (!o.no_cache) {
    auto c = OpenCatalog(o);
    if (c.ok())
      catalog = std::move(*c);
    else
      log::Warn(fmt::format("no result cache: {}", c.status().message()));
  }
  if (catalog) {
    std::mutex sweep_mu;
    SweepJobs(catalog.get(), &sweep_mu);
  }
  // The version at the end changes whenever a recipe starts giving other pixels, so that older
  // results are not taken for it (2: sharpen's threshold, WebP from the JPEG's planes).
  const std::string recipe_base =
      fmt::format("{}|preset={}|convert/2", CanonicalChain(*chain), preset.name);
  // A video's: the preset and the chain as given (video/1 changes when their output does).
  const std::string video_recipe =
      fmt::format("video|preset={}|chain={}|video/1", video_preset ? o.preset : "", o.chain);
  // The extension of a video's output: the spec's container, or the input's for a remux.
  auto video_ext = [&](const fs::path& in) {
    if (video_spec.ok() && !video_spec->extension.empty()) return video_spec->extension;
    std::string e = in.extension().string();
    if (!e.empty()) e.erase(0, 1);
    for (char& ch : e) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return e.empty() ? std::string("mkv") : e;
  };
  // One video at a time (its encoder takes every core); photos go on beside it.
  std::mutex video_mu;
  // Each image allocates and frees the same few large buffers (the decoded rows, the result,
  // the encoder's planes and tokens). glibc's defaults hand most of them back to the kernel
  // (mmap/munmap, or a trimmed heap) and fault them in again, zeroed, for the next image: half
  // of the page faults of a batch and most of its system time (40 photos: 97k faults, 0.5 s
  // sys). Kept in the heap instead (48k faults, 0.26 s), up to 256 MB idle at its top.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // Many images at once, each pipeline on one thread: better throughput than one image on all.
  const int workers = o.jobs > 0 ? o.jobs : int(std::max(1u, std::thread::hardware_concurrency()));
  // Fewer images than cores: each image's pipeline gets the cores the others leave.
  SetConvertThreads(inputs.empty() ? 1 : std::max<int>(1, workers / int(inputs.size())));
  std::atomic<size_t> next{0};
  std::mutex mu;  // the counters, the progress line and the catalog
  uint64_t bytes_in = 0, bytes_out = 0;
  const uint64_t t0 = MonotonicNs();
  Progress progress(Progress::Detect(o.quiet, o.json_logs));
  const bool sized = o.name_template.find("{w}") != std::string::npos ||
                     o.name_template.find("{h}") != std::string::npos;
  // Two inputs that would still write one output (photo.jpg and photo.png into WebP, or two
  // files of one name given from different folders): the later one fails, naming both, instead
  // of silently replacing the first one's result. (A sized --name is only known afterwards.)
  std::vector<size_t> clash(inputs.size(), SIZE_MAX);
  if (!o.in_place && !sized) {
    std::map<std::string, size_t> first_with;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::string ext = IsVideo(inputs[i])
                                  ? video_ext(inputs[i])
                                  : FormatExtension(OutputFormat(*chain, inputs[i].string()));
      const std::string out = AbsolutePath(
          (fs::path(o.output) / subdirs[i] / OutputName(o.name_template, inputs[i], ext, 0, 0))
              .string());
      auto [at, fresh] = first_with.emplace(out, i);
      if (!fresh) clash[i] = at->second;
    }
  }
  enum class Outcome { kConverted, kCached, kCopied, kSkipped, kFailed };
  uint64_t count[5] = {0, 0, 0, 0, 0};  // by Outcome
  // One input: returns what happened; `why` for a failure, `bytes` written.
  auto one = [&](size_t i, std::string* why, uint64_t* bytes) -> Outcome {
    const fs::path& in = inputs[i];
    const bool is_video = IsVideo(in);
    const std::string ext =
        is_video ? video_ext(in) : FormatExtension(OutputFormat(*chain, in.string()));
    const std::string abs_in = AbsolutePath(in.string());
    // Where the result goes, given its size (which only a sized --name needs): relative to -o.
    auto relative = [&](int w, int h) {
      return subdirs[i] / OutputName(o.name_template, in, ext, w, h);
    };
    auto target = [&](int w, int h) {
      return o.in_place ? abs_in : (fs::path(out_abs) / relative(w, h)).string();
    };
    auto fail = [&](const Status& st) {
      *why = st.message();
      return Outcome::kFailed;
    };
    const std::string out0 = target(0, 0);
    if (clash[i] != SIZE_MAX) {
      *why = fmt::format(
          "{}: its output {} is also {}'s (give --name another pattern, e.g. "
          "{{stem}}_{{w}}x{{h}}.{{ext}}, or convert them separately)",
          in.string(), out0, inputs[clash[i]].string());
      return Outcome::kFailed;
    }
    // The input: a regular file (links followed), checked again here (it may have changed since
    // the listing); --in-place also refuses what replacing it would damage.
    struct stat in_st;
    if (::stat(in.c_str(), &in_st) != 0)
      return fail(errno == ENOENT
                      ? Status::NotFound(fmt::format("{}: no such file", in.string()))
                      : Status::Io(fmt::format("{}: {}", in.string(), std::strerror(errno))));
    if (!S_ISREG(in_st.st_mode))
      return fail(Status::Unsupported(fmt::format("{}: {}", in.string(), FileKind(in_st))));
    if (o.in_place) {
      struct stat lst;
      if (::lstat(in.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode))
        return fail(Status::Invalid(fmt::format(
            "{}: is a symbolic link: --in-place would replace the link with a file (give the "
            "photo's own path)",
            in.string())));
      // Hard links: replacing by rename would leave the other names with the old photo, and
      // rewriting the shared inode in place could leave every name with half a photo if the
      // write is cut short. Neither is what "in place" promises: refused.
      if (in_st.st_nlink > 1)
        return fail(Status::Invalid(fmt::format(
            "{}: has {} hard links: --in-place would split them (the other names would keep the "
            "old photo); convert into -o instead",
            in.string(), in_st.st_nlink)));
      // Write protection is respected, also by root (as rm asks before a write-protected file).
      if ((in_st.st_mode & 0222) == 0 || ::faccessat(AT_FDCWD, in.c_str(), W_OK, AT_EACCESS) != 0)
        return fail(
            Status::Invalid(fmt::format("{}: is write-protected (mode {:04o}): not replaced",
                                        in.string(), in_st.st_mode & 07777)));
    }
    // The folder the output goes to, opened beneath -o without following links (for a sized
    // name, the temporary file waits in -o itself until its name is known).
    UniqueFd out_dir;
    std::string leaf;
    if (o.in_place) {
      const fs::path parent = fs::path(abs_in).parent_path();
      out_dir = UniqueFd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!out_dir.ok())
        return fail(
            Status::Io(fmt::format("cannot open {}: {}", parent.string(), std::strerror(errno))));
      leaf = fs::path(abs_in).filename().string();
    } else if (!sized) {
      const fs::path rel = relative(0, 0);
      if (Status st = CheckOutputName(rel, o.name_template); !st.ok()) return fail(st);
      auto d = OpenDirBeneath(out_root.get(), rel.parent_path().string(), true, out_abs);
      if (!d.ok()) return fail(d.status());
      out_dir = std::move(*d);
      leaf = rel.filename().string();
      struct stat ost;
      if (o.skip_existing && ::fstatat(out_dir.get(), leaf.c_str(), &ost, AT_SYMLINK_NOFOLLOW) == 0)
        return Outcome::kSkipped;
    }
    // The cache: the recipe, with the identity of any overlay image it reads.
    std::string recipe = is_video ? video_recipe : recipe_base;
    for (const auto& op : chain->ops) {
      if (is_video || op.name != "overlay") continue;
      fs::path over = op.args[0];
      if (!over.is_absolute()) over = in.parent_path() / over;
      struct stat st;
      if (::stat(over.c_str(), &st) == 0) {
        const FileIdentity id = IdentityFromStat(st);
        recipe += fmt::format("|overlay={}:{}:{}", over.string(), id.size, id.mtime_ns);
      }
    }
    auto intact = [](const Catalog::Conversion& c) {  // the file is still what was written
      struct stat st;
      if (::lstat(c.output.c_str(), &st) != 0) return false;
      const FileIdentity id = IdentityFromStat(st);
      return id.size == c.out_size && id.mtime_ns == c.out_mtime_ns;
    };
    std::optional<Hash128> hash;
    FileIdentity in_id = IdentityFromStat(in_st);
    // Refused by its size before it is read whole to be hashed.
    if (!is_video && limits.max_file_bytes > 0 && uint64_t(in_st.st_size) > limits.max_file_bytes)
      return fail(Status::TooLarge(fmt::format(
          "{}: {:.1f} MB, above the file size limit of {:.1f} MB", in.string(),
          double(in_st.st_size) / 1048576.0, double(limits.max_file_bytes) / 1048576.0)));
    if (catalog) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (o.in_place) {  // already this recipe's result? (never apply a chain twice)
          auto at = catalog->ConversionAt(abs_in, recipe);
          if (at.ok() && *at && intact(**at)) return Outcome::kCached;
        }
        auto known = catalog->KnownContent(abs_in, in_id);
        if (known.ok()) hash = *known;
      }
      const bool hashed = !hash;
      if (!hash) {
        // Through the link's target where the input is a link (followed, as index does).
        std::error_code ec;
        const fs::path real = fs::canonical(in, ec);
        auto h = HashFile(ec ? in.string() : real.string(), &in_id);
        if (!h.ok()) return fail(h.status());
        hash = *h;
      }
      std::vector<Catalog::Conversion> rows;
      {
        std::lock_guard<std::mutex> lock(mu);
        auto r = catalog->FindConversions(*hash, recipe);
        if (r.ok()) rows = std::move(*r);
      }
      for (const auto& row : rows) {
        if (row.output != target(row.width, row.height) || !intact(row)) continue;
        if (hashed) {  // same content under a new stat: remember it, so next time no hashing
          std::lock_guard<std::mutex> lock(mu);
          (void)catalog->PutConversion(*hash, recipe, abs_in, in_id, row);
        }
        return Outcome::kCached;
      }
    }
    // Whether the file at `leaf` in `dir` (shown as `shown`) may be replaced: only one lumen
    // recorded writing from this input (its path or its content), still as written, or any with
    // --overwrite; never a link or a special file. *exists says whether there is one.
    auto may_write = [&](int dir, const std::string& name, const std::string& shown,
                         bool* exists) -> Status {
      struct stat ost;
      *exists = false;
      if (::fstatat(dir, name.c_str(), &ost, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return Status::Ok();
        return Status::Io(fmt::format("{}: {}", shown, std::strerror(errno)));
      }
      *exists = true;
      if (o.in_place) return Status::Ok();
      if (!S_ISREG(ost.st_mode))
        return Status::Invalid(fmt::format("{} is {}: not replaced", shown, FileKind(ost)));
      if (ost.st_dev == in_st.st_dev && ost.st_ino == in_st.st_ino)
        return Status::Invalid(
            fmt::format("{}: the output would replace the input (use --in-place)", in.string()));
      if (o.overwrite) return Status::Ok();
      if (catalog) {
        std::lock_guard<std::mutex> lock(mu);
        auto owner = catalog->ConversionOwnerAt(shown);
        const FileIdentity now = IdentityFromStat(ost);
        if (owner.ok() && *owner && (*owner)->written.out_size == now.size &&
            (*owner)->written.out_mtime_ns == now.mtime_ns &&
            ((*owner)->source_path == abs_in || (hash && (*owner)->source == *hash)))
          return Status::Ok();
      }
      return Status::Invalid(fmt::format(
          "{} exists and lumen has no record of writing it from {} (or it changed since): not "
          "replaced (--overwrite replaces it, --skip-existing leaves it)",
          shown, in.string()));
    };
    // Writes into a temporary file in `dir`, then renames it into place; `fill` writes it.
    // Returns the output's identity.
    auto write_out = [&](auto&& fill, Catalog::Conversion* c) -> Status {
      // No new temporary once stopping: the watchdog's sweep would miss it.
      if (Interrupted()) return Status::Interrupted("stopped by a signal");
      const int tmp_dir = sized ? out_root.get() : out_dir.get();
      auto tmp = TempFile::CreateIn(tmp_dir,
                                    o.in_place ? fs::path(abs_in).parent_path().string() : out_abs,
                                    o.in_place ? 0600 : 0666);
      if (!tmp.ok()) return tmp.status();
      LUMEN_RETURN_IF_ERROR(fill(tmp->fd(), c));
      std::string shown = target(c->width, c->height);
      if (sized) {
        const fs::path rel = relative(c->width, c->height);
        LUMEN_RETURN_IF_ERROR(CheckOutputName(rel, o.name_template));
        auto d = OpenDirBeneath(out_root.get(), rel.parent_path().string(), true, out_abs);
        if (!d.ok()) return d.status();
        out_dir = std::move(*d);
        leaf = rel.filename().string();
      }
      bool exists = false;
      LUMEN_RETURN_IF_ERROR(may_write(out_dir.get(), leaf, shown, &exists));
      if (o.in_place) {
        const UniqueFd orig(::open(in.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
        std::vector<std::string> lost;
        if (orig.ok()) KeepAttributes(orig.get(), tmp->fd(), in_st, &lost);
        for (const auto& what : lost)
          log::Warn(fmt::format("{}: could not keep its {}", in.string(), what));
        if (::fsync(tmp->fd()) != 0)
          return Status::Io(fmt::format("cannot write {}: {}", shown, std::strerror(errno)));
        // Still the file that was checked (not replaced by another meanwhile)?
        struct stat now;
        if (::lstat(in.c_str(), &now) != 0 || now.st_ino != in_st.st_ino ||
            now.st_dev != in_st.st_dev)
          return Status::Invalid(
              fmt::format("{} changed while it was being converted: not replaced", shown));
      }
      LUMEN_RETURN_IF_ERROR(tmp->Place(out_dir.get(), leaf, exists, shown));
      struct stat ost;
      if (::fstat(tmp->fd(), &ost) == 0) {
        c->out_size = IdentityFromStat(ost).size;
        c->out_mtime_ns = IdentityFromStat(ost).mtime_ns;
      }
      c->output = shown;
      return Status::Ok();
    };
    if (catalog) {
      // The same content converted elsewhere (another output folder, a copy of the photo):
      // a file copy instead of a conversion.
      std::vector<Catalog::Conversion> rows;
      {
        std::lock_guard<std::mutex> lock(mu);
        auto r = catalog->FindConversions(*hash, recipe);
        if (r.ok()) rows = std::move(*r);
      }
      for (const auto& row : rows) {
        if (o.in_place || !intact(row)) continue;
        const UniqueFd from(
            ::open(row.output.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
        struct stat fst;
        if (!from.ok() || ::fstat(from.get(), &fst) != 0 || !S_ISREG(fst.st_mode)) continue;
        Catalog::Conversion c = row;
        const Status st = write_out(
            [&](int fd, Catalog::Conversion*) { return CopyInto(from.get(), fd, row.output); }, &c);
        if (!st.ok()) return fail(st);
        *bytes = c.out_size;
        std::lock_guard<std::mutex> lock(mu);
        (void)catalog->PutConversion(*hash, recipe, abs_in, in_id, c);
        return Outcome::kCopied;
      }
    }
    // Convert: a long video as a resumable job (jobs.h), given a catalog to keep it in.
    VideoJobContext job;
    int64_t job_id = 0;
    const bool as_job = is_video && catalog && !o.in_place && o.segment_seconds > 0;
    if (as_job) {
      job.catalog = catalog.get();
      job.catalog_mu = &mu;
      job.input = abs_in;
      job.input_id = in_id;
      job.recipe = recipe;
      job.output = out0;
      job.job_parent = out_abs;
      job.segment_seconds = o.segment_seconds;
      job.args = json::Dump(nlohmann::json{{"output", (fs::path(out_abs) / subdirs[i]).string()},
                                           {"preset", o.preset},
                                           {"chain", o.chain},
                                           {"name", o.name_template},
                                           {"overwrite", o.overwrite},
                                           {"segment", o.segment_seconds}});
    }
    Catalog::Conversion c;
    const Status st = write_out(
        [&](int fd, Catalog::Conversion* out) -> Status {
          if (is_video) {
            std::string container = ext;
            if (!sized) {
              container = fs::path(leaf).extension().string();
              if (!container.empty()) container.erase(0, 1);
            }
            return ConvertVideo(in.string(), fd, container, *video_spec, o, &video_mu,
                                as_job ? &job : nullptr, out, bytes, &job_id);
          }
          auto r = ConvertFile(in.string(), *chain, fd, preset, limits);
          if (!r.ok()) return r.status();
          out->width = r->width;
          out->height = r->height;
          out->format = r->format;
          *bytes = r->bytes;
          return Status::Ok();
        },
        &c);
    if (!st.ok()) {
      if (job_id > 0) ReleaseJob(catalog.get(), &mu, job_id, st.message());
      return fail(st);
    }
    if (job_id > 0) FinishJob(catalog.get(), &mu, job_id);
    if (catalog) {
      std::lock_guard<std::mutex> lock(mu);
      if (Status put = catalog->PutConversion(*hash, recipe, abs_in, in_id, c); !put.ok())
        log::Warn(fmt::format("result cache: {}", put.message()));
    }
    return Outcome::kConverted;
  };
  auto work = [&] {
    for (size_t i = next++; i < inputs.size() && !Interrupted(); i = next++) {
      std::string why;
      uint64_t bytes = 0;
      Outcome oc;
      try {  // nothing thrown may reach the thread's boundary
        oc = one(i, &why, &bytes);
      } catch (const std::exception& e) {
        oc = Outcome::kFailed;
        why = fmt::format("{}: {}", inputs[i].string(), e.what());
      }
      std::lock_guard<std::mutex> lock(mu);
      bytes_in += input_bytes[i];
      bytes_out += bytes;
      ++count[size_t(oc)];
      if (oc == Outcome::kFailed) failures.emplace_back(inputs[i].string(), why);
      progress.Update(count[0] + count[1] + count[2] + count[3] + count[4], inputs.size(), bytes_in,
                      count[size_t(Outcome::kFailed)]);
    }
  };
  std::vector<std::thread> threads;
  std::atomic<int> running{0};
  for (int t = 0; t < std::min<int>(workers, int(inputs.size())); ++t) {
    ++running;
    threads.emplace_back([&] {
      work();
      --running;
    });
  }
  // A signal stops the run within a second: the decoders and libvips poll the stop request
  // (image/convert.h); should one not come back in time, the temporary files are removed here
  // and the process ends (the catalog's WAL keeps it consistent, as after kill -9).
  uint64_t stop_seen = 0;
  while (running > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!Interrupted()) continue;
    if (stop_seen == 0) stop_seen = MonotonicNs();
    if (MonotonicNs() - stop_seen > 700'000'000ull) {
      TempFile::RemoveAll();
      log::Error(
          "convert: stopped by a signal (the images in flight were abandoned, their "
          "temporary files removed)");
      std::fflush(nullptr);
      ::_exit(128 + (InterruptSignal() ? InterruptSignal() : SIGTERM));
    }
  }
  for (auto& t : threads) t.join();
  count[size_t(Outcome::kFailed)] = failures.size();  // those of the paths given, too
  progress.Finish();
  const double secs = double(MonotonicNs() - t0) / 1e9;
  const uint64_t done = count[size_t(Outcome::kConverted)],
                 cached = count[size_t(Outcome::kCached)], copied = count[size_t(Outcome::kCopied)],
                 skipped = count[size_t(Outcome::kSkipped)],
                 failed = count[size_t(Outcome::kFailed)];
  for (size_t i = 0; i < failures.size(); ++i) {
    if (!o.verbose && i >= 20) {
      log::Warn(fmt::format("... and {} more failures", failures.size() - 20));
      break;
    }
    log::Warn(failures[i].second.starts_with(failures[i].first)
                  ? failures[i].second
                  : fmt::format("{}: {}", failures[i].first, failures[i].second));
  }
  const char* noun =
      std::any_of(inputs.begin(), inputs.end(), [](const fs::path& p) { return IsVideo(p); })
          ? "files"
          : "images";
  if (!o.quiet)
    log::Info(fmt::format(
        "converted {} of {} {} in {:.2f} s ({:.1f} {}/s): {} already done "
        "(result cache), {} copied from an earlier result, {} failed, {} skipped; "
        "{:.1f} MB in, {:.1f} MB out{}",
        done, inputs.size(), noun, secs, secs > 0 ? done / secs : 0.0, noun, cached, copied, failed,
        skipped, bytes_in / 1e6, bytes_out / 1e6, Interrupted() ? " (interrupted)" : ""));
  if (Interrupted()) return 128 + InterruptSignal();
  return failed ? kExitSomeFailed : kExitOk;
}

}  // namespace lumen::cli
