// lumen convert: operation chains (image/chain.h) over many files, in parallel, one libvips
// pipeline per image (image/convert.h). Errors are per file; the run goes on.
#include <vips/vips.h>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "cli_util.h"
#include "commands.h"
#include "lumen/image/chain.h"
#include "lumen/image/convert.h"
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
  if (Status st = InitLibraries(argv0); !st.ok()) {
    log::Error(st.message());
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
  std::vector<fs::path> inputs;
  for (const auto& p : o.paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (auto it = fs::recursive_directory_iterator(p, ec); it != fs::end(it); it.increment(ec))
        if (it->is_regular_file(ec) && IsImage(it->path())) inputs.push_back(it->path());
    } else if (fs::exists(p, ec)) {
      inputs.push_back(p);
    } else {
      log::Warn(fmt::format("{}: no such file or folder", p));
    }
  }
  std::sort(inputs.begin(), inputs.end());
  if (!o.output.empty()) {
    std::error_code ec;
    fs::create_directories(o.output, ec);
    if (ec) {
      log::Error(fmt::format("cannot create {}: {}", o.output, ec.message()));
      return kExitError;
    }
  }
  // Many images at once, each pipeline on one thread: better throughput than one image on all.
  const int workers = o.jobs > 0 ? o.jobs : int(std::max(1u, std::thread::hardware_concurrency()));
  vips_concurrency_set(1);
  std::atomic<size_t> next{0};
  std::mutex mu;
  uint64_t done = 0, failed = 0, skipped = 0, bytes_in = 0, bytes_out = 0;
  std::vector<std::pair<std::string, std::string>> failures;
  const uint64_t t0 = MonotonicNs();
  Progress progress(Progress::Detect(o.quiet, o.json_logs));
  auto work = [&] {
    for (size_t i = next++; i < inputs.size() && !Interrupted(); i = next++) {
      const fs::path& in = inputs[i];
      const std::string fmt_ = OutputFormat(*chain, in.string());
      const std::string ext = FormatExtension(fmt_);
      std::error_code ec;
      std::string out;
      Result<ConvertResult> r = Status::Internal("not run");
      if (o.in_place) {
        out = in.string();  // written beside it and renamed over it (atomic)
        r = ConvertFile(in.string(), *chain, out, preset);
      } else {
        // The name may need the result's size: known names are checked first.
        const bool sized = o.name_template.find("{w}") != std::string::npos ||
                           o.name_template.find("{h}") != std::string::npos;
        out = (fs::path(o.output) / OutputName(o.name_template, in, ext, 0, 0)).string();
        if (!sized && o.skip_existing && fs::exists(out, ec)) {
          std::lock_guard<std::mutex> lock(mu);
          ++skipped;
          continue;
        }
        if (fs::exists(out, ec) && fs::equivalent(out, in, ec)) {
          r = Status::Invalid(
              fmt::format("{}: the output would replace the input (use --in-place)", in.string()));
        } else {
          const std::string target =
              sized ? (fs::path(o.output) / fmt::format(".lumen-convert-{}.{}", i, ext)).string()
                    : out;
          r = ConvertFile(in.string(), *chain, target, preset);
          if (r.ok() && sized) {
            out = (fs::path(o.output) / OutputName(o.name_template, in, ext, r->width, r->height))
                      .string();
            fs::rename(target, out, ec);
            if (ec) r = Status::Io(fmt::format("cannot write {}: {}", out, ec.message()));
          }
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      bytes_in += fs::file_size(in, ec);
      if (r.ok()) {
        ++done;
        bytes_out += r->bytes;
      } else {
        ++failed;
        failures.emplace_back(in.string(), r.status().message());
      }
      progress.Update(done + failed + skipped, inputs.size(), bytes_in, failed);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min<int>(workers, int(inputs.size())); ++t) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  progress.Finish();
  const double secs = double(MonotonicNs() - t0) / 1e9;
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
    log::Info(
        fmt::format("converted {} of {} images in {:.2f} s ({:.1f} images/s): {} failed, {} "
                    "skipped; {:.1f} MB in, {:.1f} MB out{}",
                    done, inputs.size(), secs, secs > 0 ? done / secs : 0.0, failed, skipped,
                    bytes_in / 1e6, bytes_out / 1e6, Interrupted() ? " (interrupted)" : ""));
  if (Interrupted()) return 128 + InterruptSignal();
  return failed ? kExitSomeFailed : kExitOk;
}

}  // namespace lumen::cli
