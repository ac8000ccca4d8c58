// lumen convert: operation chains (image/chain.h) over many files, in parallel, one libvips
// pipeline per image (image/convert.h). Errors are per file; the run goes on.
#include <malloc.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include <fmt/format.h>

#include "cli_util.h"
#include "commands.h"
#include "lumen/catalog/catalog.h"
#include "lumen/image/chain.h"
#include "lumen/image/convert.h"
#include "lumen/io/file.h"
#include "lumen/io/scan.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"
#include "lumen/util/progress.h"

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

}  // namespace

int RunConvert(const Options& o, const char* argv0) {
  SetupLogging(o);
  // libvips is started by the first image that needs it (image/convert.h): a run that only
  // takes the direct path (a JPEG shrunk into WebP or JPEG) never loads its thousand types.
  (void)argv0;
  if (o.chain.empty()) {
    log::Error("convert needs --chain OPS or --recipe FILE");
    return kExitError;
  }
  auto chain = ParseChain(o.chain);
  if (!chain.ok()) {
    log::Error(chain.status().message());
    return kExitError;
  }
  if (!IsPreset(o.preset)) {
    log::Error(fmt::format("unknown --preset {}: draft, fast, balanced, high or ultra", o.preset));
    return kExitError;
  }
  const Preset preset{o.preset};
  if (o.output.empty() && !o.in_place) {
    log::Error("convert needs -o OUTDIR (or --in-place to replace the inputs)");
    return kExitError;
  }
  if (o.in_place && o.name_template.find("{w}") != std::string::npos) {
    log::Error("--in-place keeps each file's name: --name does not apply");
    return kExitError;
  }
  // Each input, and its folder relative to the folder given (empty for a file given by name):
  // the output tree mirrors the input's subfolders, so a/IMG_1.jpg and b/IMG_1.jpg do not
  // write the same output.
  std::vector<fs::path> inputs, subdirs;
  for (const auto& p : o.paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (auto it = fs::recursive_directory_iterator(p, ec); it != fs::end(it); it.increment(ec))
        if (it->is_regular_file(ec) && IsImage(it->path())) {
          inputs.push_back(it->path());
          fs::path rel = it->path().parent_path().lexically_relative(p);
          subdirs.push_back(rel == "." ? fs::path() : rel);
        }
    } else if (fs::exists(p, ec)) {
      inputs.push_back(p);
      subdirs.emplace_back();
    } else {
      log::Warn(fmt::format("{}: no such file or folder", p));
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
  if (!o.output.empty()) {
    std::error_code ec;
    fs::create_directories(o.output, ec);
    if (ec) {
      log::Error(fmt::format("cannot create {}: {}", o.output, ec.message()));
      return kExitError;
    }
  }
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
  // The version at the end changes whenever a recipe starts giving other pixels, so that older
  // results are not taken for it (2: sharpen's threshold, WebP from the JPEG's planes).
  const std::string recipe_base =
      fmt::format("{}|preset={}|convert/2", CanonicalChain(*chain), preset.name);
  // Each image allocates and frees the same few large buffers (the decoded rows, the result,
  // the encoder's planes and tokens). glibc's defaults hand most of them back to the kernel
  // (mmap/munmap, or a trimmed heap) and fault them in again, zeroed, for the next image: half
  // of the page faults of a batch and most of its system time (40 photos: 97k faults, 0.5 s
  // sys). Kept in the heap instead (48k faults, 0.26 s), up to 256 MB idle at its top.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // Many images at once, each pipeline on one thread: better throughput than one image on all.
  const int workers = o.jobs > 0 ? o.jobs : int(std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  std::mutex mu;  // the counters, the progress line and the catalog
  uint64_t bytes_in = 0, bytes_out = 0;
  std::vector<std::pair<std::string, std::string>> failures;
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
      const std::string ext = FormatExtension(OutputFormat(*chain, inputs[i].string()));
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
    const std::string fmt_ = OutputFormat(*chain, in.string());
    const std::string ext = FormatExtension(fmt_);
    const std::string abs_in = AbsolutePath(in.string());
    // Where the result goes, given its size (which only a sized --name needs).
    auto target = [&](int w, int h) {
      return o.in_place ? abs_in
                        : AbsolutePath((fs::path(o.output) / subdirs[i] /
                                        OutputName(o.name_template, in, ext, w, h))
                                           .string());
    };
    std::error_code ec;
    const std::string out0 = target(0, 0);
    if (clash[i] != SIZE_MAX) {
      *why = fmt::format(
          "{}: its output {} is also {}'s (give --name another pattern, e.g. "
          "{{stem}}_{{w}}x{{h}}.{{ext}}, or convert them separately)",
          in.string(), out0, inputs[clash[i]].string());
      return Outcome::kFailed;
    }
    if (!o.in_place) {
      fs::create_directories(fs::path(out0).parent_path(), ec);
      if (!sized && o.skip_existing && fs::exists(out0, ec)) return Outcome::kSkipped;
      if (fs::exists(out0, ec) && fs::equivalent(out0, in, ec)) {
        *why = fmt::format("{}: the output would replace the input (use --in-place)", in.string());
        return Outcome::kFailed;
      }
    }
    // The cache: the recipe, with the identity of any overlay image it reads.
    std::string recipe = recipe_base;
    for (const auto& op : chain->ops) {
      if (op.name != "overlay") continue;
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
      if (::stat(c.output.c_str(), &st) != 0) return false;
      const FileIdentity id = IdentityFromStat(st);
      return id.size == c.out_size && id.mtime_ns == c.out_mtime_ns;
    };
    std::optional<Hash128> hash;
    FileIdentity in_id;
    if (catalog) {
      struct stat st;
      if (::stat(in.c_str(), &st) != 0) {
        *why = fmt::format("{}: {}", in.string(), std::strerror(errno));
        return Outcome::kFailed;
      }
      in_id = IdentityFromStat(st);
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
        auto h = HashFile(in.string(), &in_id);
        if (!h.ok()) {
          *why = h.status().message();
          return Outcome::kFailed;
        }
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
      // The same content converted elsewhere (another output folder, a copy of the photo):
      // a file copy instead of a conversion.
      for (const auto& row : rows) {
        if (o.in_place || !intact(row)) continue;
        const std::string dst = target(row.width, row.height);
        const std::string tmp = fmt::format("{}.lumen-{}.{}", dst, ::getpid(), ext);
        fs::copy_file(row.output, tmp, fs::copy_options::overwrite_existing, ec);
        if (!ec) fs::rename(tmp, dst, ec);
        if (ec) {
          fs::remove(tmp, ec);
          continue;
        }
        struct stat ost;
        if (::stat(dst.c_str(), &ost) != 0) continue;
        Catalog::Conversion c = row;
        c.output = dst;
        c.out_size = IdentityFromStat(ost).size;
        c.out_mtime_ns = IdentityFromStat(ost).mtime_ns;
        *bytes = c.out_size;
        std::lock_guard<std::mutex> lock(mu);
        (void)catalog->PutConversion(*hash, recipe, abs_in, in_id, c);
        return Outcome::kCopied;
      }
    }
    // Convert. A sized name is known only afterwards: written under a temporary name first.
    std::string out = out0;
    const std::string first =
        sized ? (fs::path(o.output) / fmt::format(".lumen-convert-{}.{}", i, ext)).string() : out;
    auto r = ConvertFile(in.string(), *chain, first, preset, /*durable=*/o.in_place);
    if (r.ok() && sized) {
      out = target(r->width, r->height);
      fs::rename(first, out, ec);
      if (ec) r = Status::Io(fmt::format("cannot write {}: {}", out, ec.message()));
    }
    if (!r.ok()) {
      *why = r.status().message();
      return Outcome::kFailed;
    }
    *bytes = r->bytes;
    struct stat ost;
    if (catalog && ::stat(out.c_str(), &ost) == 0) {
      const FileIdentity oid = IdentityFromStat(ost);
      Catalog::Conversion c{out, oid.size, oid.mtime_ns, r->width, r->height, r->format};
      std::lock_guard<std::mutex> lock(mu);
      if (Status st = catalog->PutConversion(*hash, recipe, abs_in, in_id, c); !st.ok())
        log::Warn(fmt::format("result cache: {}", st.message()));
    }
    return Outcome::kConverted;
  };
  auto work = [&] {
    for (size_t i = next++; i < inputs.size() && !Interrupted(); i = next++) {
      std::string why;
      uint64_t bytes = 0;
      const Outcome oc = one(i, &why, &bytes);
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
  for (int t = 0; t < std::min<int>(workers, int(inputs.size())); ++t) threads.emplace_back(work);
  for (auto& t : threads) t.join();
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
  if (!o.quiet)
    log::Info(fmt::format(
        "converted {} of {} images in {:.2f} s ({:.1f} images/s): {} already done "
        "(result cache), {} copied from an earlier result, {} failed, {} skipped; "
        "{:.1f} MB in, {:.1f} MB out{}",
        done, inputs.size(), secs, secs > 0 ? done / secs : 0.0, cached, copied, failed, skipped,
        bytes_in / 1e6, bytes_out / 1e6, Interrupted() ? " (interrupted)" : ""));
  if (Interrupted()) return 128 + InterruptSignal();
  return failed ? kExitSomeFailed : kExitOk;
}

}  // namespace lumen::cli
