// Resumable video conversion jobs and `lumen jobs` (jobs.h).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "cli_util.h"
#include "jobs.h"
#include "lumen/io/beneath.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/json.h"
#include "lumen/util/log.h"
#include "lumen/util/profile.h"

namespace lumen::cli {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr const char* kFolderPrefix = ".lumen-job-";
constexpr const char* kMarker = "lumen-job";  // a file in every job folder: lumen made it

bool IsTerminal(const std::string& state) {
  return state == "done" || state == "cancelled" || state == "failed";
}

// The folder's lock, held while a process works on the job (released by the kernel if it dies).
class JobLock {
 public:
  // false: another process holds it (or the folder is gone).
  bool Take(const std::string& folder) {
    fd_ = UniqueFd(
        ::open((folder + "/lock").c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd_.ok()) return false;
    // An open file description lock: released when the process dies, and testable by others
    // without taking it (F_OFD_GETLK), so a `lumen jobs list` never makes a resume fail.
    struct flock l = {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    if (::fcntl(fd_.get(), F_OFD_SETLK, &l) != 0) {
      fd_ = UniqueFd();
      return false;
    }
    return true;
  }
  // Kept by the process until FinishJob (the output placed), so that nobody takes the job for
  // interrupted meanwhile.
  void Keep(int64_t job_id);

 private:
  UniqueFd fd_;
};

std::mutex g_kept_mu;
std::map<int64_t, UniqueFd> g_kept;

void JobLock::Keep(int64_t job_id) {
  std::lock_guard<std::mutex> lock(g_kept_mu);
  g_kept[job_id] = std::move(fd_);
}

// Whether some process holds the job's lock now.
bool Running(const Catalog::Job& j) {
  if (j.folder.empty()) return false;
  const UniqueFd fd(::open((j.folder + "/lock").c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.ok()) return false;
  struct flock l = {};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  if (::fcntl(fd.get(), F_OFD_GETLK, &l) != 0) return false;
  return l.l_type != F_UNLCK;
}

constexpr const char* kOutputTemp = "output-temp";  // the path of the output's temporary

// The output's temporary that a killed process left (its name is recorded in the folder): only
// a ".lumen-XXXXXXXX.tmp" regular file, and only while no process holds the job.
void RemoveStaleOutput(const std::string& folder) {
  std::FILE* f = std::fopen((folder + "/" + kOutputTemp).c_str(), "re");
  if (!f) return;
  char buf[4096];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const std::string path(buf, n);
  const std::string name = fs::path(path).filename().string();
  struct stat st;
  if (name.rfind(".lumen-", 0) == 0 && name.size() > 4 &&
      name.compare(name.size() - 4, 4, ".tmp") == 0 && ::lstat(path.c_str(), &st) == 0 &&
      S_ISREG(st.st_mode))
    ::unlink(path.c_str());
  ::unlink((folder + "/" + kOutputTemp).c_str());
}

// Only a folder lumen made for a job (its name, its marker) and only its own plain files, through
// a descriptor of the folder itself (a link put in its place is not followed).
void RemoveFolder(const std::string& folder) {
  if (folder.empty() || fs::path(folder).filename().string().rfind(kFolderPrefix, 0) != 0) return;
  const int dfd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return;
  struct stat st;
  if (::fstatat(dfd, kMarker, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
    ::close(dfd);
    return;
  }
  RemoveStaleOutput(folder);
  if (DIR* d = ::fdopendir(dfd)) {  // takes dfd
    while (const dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      if (::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
        ::unlinkat(::dirfd(d), n.c_str(), 0);
    }
    ::closedir(d);
  } else {
    ::close(dfd);
  }
  ::rmdir(folder.c_str());
}

// Partial segments (a kill during one): removed before the job goes on.
void RemoveParts(const std::string& folder) {
  if (DIR* d = ::opendir(folder.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".part") == 0)
        ::unlink((folder + "/" + n).c_str());
    }
    ::closedir(d);
  }
}

std::string SegmentPath(const std::string& folder, int k) {
  return fmt::format("{}/seg-{:05}.pkt", folder, k);
}

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Status Update(const VideoJobContext& ctx, const Catalog::Job& j) {
  std::lock_guard<std::mutex> lock(*ctx.catalog_mu);
  return ctx.catalog->UpdateJob(j);
}

void SyncDir(const std::string& folder) {
  const UniqueFd d(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.ok()) ::fsync(d.get());
}

video::FieldOrder FieldFromName(const std::string& n) {
  for (auto f : {video::FieldOrder::kProgressive, video::FieldOrder::kTopFirst,
                 video::FieldOrder::kBottomFirst})
    if (n == video::FieldOrderName(f)) return f;
  return video::FieldOrder::kUnknown;
}

bool DiskFull(const Status& st) {
  return st.code() == Code::kIo && st.message().find("disk is full") != std::string::npos;
}

}  // namespace

std::string ShownState(const Catalog::Job& j) {
  if (j.state == "running" && !Running(j)) return "interrupted";
  return j.state;
}

Result<video::TranscodeReport> RunVideoJob(const VideoJobContext& ctx, const std::string& input,
                                           int out_fd, const std::string& container,
                                           const video::TranscodeSpec& spec,
                                           const video::TranscodeOptions& base, bool* is_job,
                                           int64_t* job_id) {
  *is_job = false;
  *job_id = 0;
  std::optional<Catalog::Job> found;
  {
    std::lock_guard<std::mutex> lock(*ctx.catalog_mu);
    auto f = ctx.catalog->FindJob(ctx.input, ctx.recipe, ctx.output);
    if (!f.ok()) return f.status();
    found = std::move(*f);
  }
  JobLock lock;
  if (found && found->state == "failed") {
    // Its folder went with the failure: a new job, and the old row is closed.
    found->state = "cancelled";
    found->error = "superseded by a new run";
    (void)Update(ctx, *found);
    found.reset();
  }
  // (Another process may hold the lock for a moment: `lumen jobs` sweeping partial segments.)
  bool held = false;
  for (int i = 0; found && i < 40 && !(held = lock.Take(found->folder)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (found && !held && Exists(found->folder + "/" + kMarker))
    return Status::Invalid(
        fmt::format("{}: job {} is converting it in another lumen process (pid {})", input,
                    found->id, found->pid));
  if (found &&
      (found->input_size != ctx.input_id.size || found->input_mtime_ns != ctx.input_id.mtime_ns ||
       !Exists(found->folder + "/" + kMarker))) {
    // The input changed since (or the folder went): its segments are not this file's.
    log::Warn(fmt::format("{}: job {} was for another version of the file: started again", input,
                          found->id));
    RemoveFolder(found->folder);
    found->state = "cancelled";
    found->error = "the input changed";
    (void)Update(ctx, *found);
    found.reset();
    lock = JobLock();
  }
  Catalog::Job job;
  Json plan;
  if (found) {
    job = *found;
    plan = Json::parse(job.plan, nullptr, false);
    if (plan.is_discarded() || !plan.contains("begins"))
      return Status::Corrupt(fmt::format("job {}: its plan in the catalog is unreadable", job.id));
  } else {
    auto p = video::PlanSegments(input, spec, ctx.segment_seconds);
    if (!p.ok()) return p.status();
    if (!p->cut) return video::TranscodeReport{};  // not a job: the caller converts it whole
    // The folder, its marker and its lock before the row: whoever finds the row finds the job
    // held.
    std::string folder = (fs::path(ctx.job_parent) / (std::string(kFolderPrefix) + "XXXXXX"));
    if (!::mkdtemp(folder.data()))
      return Status::Io(
          fmt::format("cannot make a job folder in {}: {}", ctx.job_parent, std::strerror(errno)));
    const UniqueFd m(::open((folder + "/" + kMarker).c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!m.ok() || !lock.Take(folder)) {
      const Status st = Status::Io(
          fmt::format("cannot make a job folder in {}: {}", ctx.job_parent, std::strerror(errno)));
      ::unlink((folder + "/" + kMarker).c_str());
      ::unlink((folder + "/lock").c_str());
      ::rmdir(folder.c_str());
      return st;
    }
    plan = {{"tb", {p->tb_num, p->tb_den}}, {"begins", p->begins}, {"duration", p->duration}};
    job.input = ctx.input;
    job.input_size = ctx.input_id.size;
    job.input_mtime_ns = ctx.input_id.mtime_ns;
    job.recipe = ctx.recipe;
    job.output = ctx.output;
    job.args = ctx.args;
    job.folder = folder;
    job.state = "running";
    job.segments = int(p->begins.size()) + 1;
    job.plan = lumen::json::Dump(plan);
    job.pid = ::getpid();
    {
      std::lock_guard<std::mutex> l(*ctx.catalog_mu);
      auto id = ctx.catalog->AddJob(job);
      if (!id.ok()) {
        RemoveFolder(folder);
        return id.status();
      }
      job.id = *id;
    }
    const std::string id = std::to_string(job.id) + "\n";
    (void)!::write(m.get(), id.data(), id.size());
  }
  *is_job = true;
  *job_id = job.id;
  RemoveParts(job.folder);
  RemoveStaleOutput(job.folder);
  {
    // This run's output temporary, for the next run to remove if this one is killed.
    char link[4096];
    const ssize_t n =
        ::readlink(fmt::format("/proc/self/fd/{}", out_fd).c_str(), link, sizeof link - 1);
    const UniqueFd f(::open((job.folder + "/" + kOutputTemp).c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (n > 0 && f.ok()) (void)!::write(f.get(), link, size_t(n));
  }
  const std::vector<int64_t> begins = plan["begins"].get<std::vector<int64_t>>();
  const int n = int(begins.size()) + 1;
  job.state = "running";
  job.pid = ::getpid();
  job.error.clear();
  int done = 0;
  for (int k = 0; k < n; ++k) done += Exists(SegmentPath(job.folder, k));
  job.done = done;
  (void)Update(ctx, job);
  if (done > 0 && done < n)
    log::Info(
        fmt::format("{}: job {} goes on: {} of {} segments were done", input, job.id, done, n),
        {{"event", "job_resume"},
         {"file", input},
         {"job", std::to_string(job.id)},
         {"done", std::to_string(done)},
         {"segments", std::to_string(n)}});
  // Ends the job on an error. A write error (a full disk, a quota, a failing device) pauses it
  // and an interruption stops it, both keeping the finished segments; what the input or the
  // chain cannot do fails it and removes the folder (a new run starts over).
  auto stop = [&](const Status& st) -> Status {
    std::string hint;
    if (st.code() == Code::kIo) {
      job.state = "paused";
      hint = fmt::format(" (job {} paused with {} of {} segments: {}, then `lumen jobs resume {}`)",
                         job.id, job.done, n,
                         DiskFull(st) ? "free some space" : "once it can be written", job.id);
    } else if (st.code() == Code::kInterrupted || Interrupted()) {
      job.state = "interrupted";
      hint = fmt::format(" (job {}: `lumen jobs resume {}` goes on from segment {} of {})", job.id,
                         job.id, job.done + 1, n);
    } else {
      job.state = "failed";
      RemoveFolder(job.folder);
    }
    RemoveParts(job.folder);
    job.error = st.message();
    (void)Update(ctx, job);
    return Status(st.code(), st.message() + hint);
  };

  video::TranscodeOptions opts = base;
  video::FieldOrder field = FieldFromName(plan.value("field", std::string()));
  video::TranscodeReport first;  // the first segment run here (its graph, fields, streams)
  bool have_first = false;
  int64_t frames = 0;
  double elapsed = 0;
  uint64_t bytes = 0;  // of the segments written
  int64_t corrupt = 0;
  for (int k = 0; k < n; ++k) {
    struct stat st;
    if (::stat(SegmentPath(job.folder, k).c_str(), &st) == 0) bytes += uint64_t(st.st_size);
  }
  const double duration = plan.value("duration", 0.0);
  const double resumed_at = done > 0 && done < n
                                ? double(begins[size_t(done - 1)]) * plan["tb"][0].get<double>() /
                                      plan["tb"][1].get<double>()
                                : 0;
  opts.progress = [&](const video::TranscodeProgress& p) {
    if (!base.progress) return;
    video::TranscodeProgress q = p;
    q.frames += frames;
    q.elapsed += elapsed;
    q.bytes += bytes;
    q.start_position = resumed_at;
    if (duration > 0) q.duration = duration;
    base.progress(q);
  };
  for (int k = 0; k < n; ++k) {
    const std::string seg = SegmentPath(job.folder, k);
    if (Exists(seg)) continue;
    if (Interrupted()) return stop(Status::Interrupted(fmt::format("{}: interrupted", input)));
    const std::string part = seg + ".part";
    const UniqueFd fd(
        ::open(part.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.ok())
      return stop(Status::Io(fmt::format("{}: cannot write a segment in {}: {}", input, job.folder,
                                         std::strerror(errno))));
    opts.segment = true;
    opts.segment_begin = k == 0 ? INT64_MIN : begins[size_t(k - 1)];
    opts.segment_end = k == n - 1 ? INT64_MAX : begins[size_t(k)];
    opts.field = field;
    const uint64_t t = MonotonicNs();
    auto r = video::Transcode(input, fd.get(), container, spec, opts);
    if (r.ok() && ::fsync(fd.get()) != 0)
      r = Status::Io(errno == ENOSPC ? fmt::format("{}: the disk is full (no space left for the "
                                                   "segments)",
                                                   input)
                                     : fmt::format("{}: cannot write a segment: {}", input,
                                                   std::strerror(errno)));
    if (r.ok() && ::rename(part.c_str(), seg.c_str()) != 0)
      r = Status::Io(fmt::format("{}: cannot keep a segment: {}", input, std::strerror(errno)));
    if (!r.ok()) return stop(r.status());
    SyncDir(job.folder);
    frames += r->last.frames;
    elapsed += double(MonotonicNs() - t) / 1e9;
    bytes += r->last.bytes;
    corrupt += r->corrupt_packets;
    if (!have_first) {
      first = *r;
      have_first = true;
      // What the output is, for a later run that only assembles (every segment done here).
      plan["width"] = r->width;
      plan["height"] = r->height;
      plan["video_filters"] = r->video_filters;
      plan["field_detected"] = r->field_detected;
      job.plan = lumen::json::Dump(plan);
    }
    if (field == video::FieldOrder::kUnknown && r->field != video::FieldOrder::kUnknown) {
      field = r->field;
      plan["field"] = video::FieldOrderName(field);
      job.plan = lumen::json::Dump(plan);
    }
    job.done = 0;
    for (int i = 0; i < n; ++i) job.done += Exists(SegmentPath(job.folder, i));
    (void)Update(ctx, job);
    // A JSON log gets every segment; a terminal, the progress line only.
    log::Write(log::IsJson() ? log::Level::kInfo : log::Level::kDebug,
               fmt::format("{}: job {} segment {} of {} done", input, job.id, k + 1, n),
               {{"event", "job_segment"},
                {"file", input},
                {"job", std::to_string(job.id)},
                {"segment", std::to_string(k + 1)},
                {"segments", std::to_string(n)},
                {"frames", std::to_string(r->last.frames)}});
  }
  // Every segment is there: the output, in one pass.
  opts.segment = false;
  opts.segment_begin = INT64_MIN;
  opts.segment_end = INT64_MAX;
  opts.video_segments.clear();
  for (int k = 0; k < n; ++k) opts.video_segments.push_back(SegmentPath(job.folder, k));
  opts.progress = nullptr;  // a copy: quick, and the encoding's figures are the ones to show
  const uint64_t t = MonotonicNs();
  auto r = video::Transcode(input, out_fd, container, spec, opts);
  if (!r.ok()) return stop(r.status());
  elapsed += double(MonotonicNs() - t) / 1e9;
  lock.Keep(job.id);
  video::TranscodeReport out = *r;
  out.last.frames = frames;
  out.last.elapsed = elapsed;
  out.last.start_position = resumed_at;
  out.corrupt_packets += corrupt;
  out.field = field;
  out.width = plan.value("width", 0);
  out.height = plan.value("height", 0);
  out.video_filters = plan.value("video_filters", out.video_filters);
  out.field_detected = plan.value("field_detected", false);
  if (have_first)
    for (const std::string& w : first.warnings) out.warnings.push_back(w);
  return out;
}

void ReleaseJob(Catalog* catalog, std::mutex* mu, int64_t job_id, const std::string& error) {
  {
    std::lock_guard<std::mutex> lock(*mu);
    auto j = catalog->JobById(job_id);
    if (j.ok() && *j && (*j)->state == "running") {
      (*j)->state = "interrupted";
      (*j)->error = error;
      (void)catalog->UpdateJob(**j);
    }
  }
  std::lock_guard<std::mutex> lock(g_kept_mu);
  g_kept.erase(job_id);
}

void FinishJob(Catalog* catalog, std::mutex* mu, int64_t job_id) {
  {
    std::lock_guard<std::mutex> lock(*mu);
    auto j = catalog->JobById(job_id);
    if (j.ok() && *j) {
      RemoveFolder((*j)->folder);
      (*j)->state = "done";
      (*j)->done = (*j)->segments;
      (*j)->error.clear();
      (void)catalog->UpdateJob(**j);
    }
  }
  std::lock_guard<std::mutex> lock(g_kept_mu);
  g_kept.erase(job_id);
}

void SweepJobs(Catalog* catalog, std::mutex* mu) {
  std::lock_guard<std::mutex> lock(*mu);
  auto jobs = catalog->ListJobs();
  if (!jobs.ok()) return;
  for (const Catalog::Job& j : *jobs) {
    struct stat st;
    if (j.folder.empty() || ::lstat(j.folder.c_str(), &st) != 0) continue;
    if (IsTerminal(j.state)) {
      RemoveFolder(j.folder);
    } else {
      JobLock l;
      if (l.Take(j.folder)) {
        RemoveParts(j.folder);
        RemoveStaleOutput(j.folder);
      }
    }
  }
}

int RunJobs(const std::string& action, const std::vector<int64_t>& ids, const Options& o,
            const char* argv0) {
  SetupLogging(o);
  auto cat = OpenCatalog(o);
  if (!cat.ok()) {
    log::Error(cat.status().message());
    return kExitError;
  }
  std::mutex mu;
  SweepJobs(cat->get(), &mu);
  auto listed = (*cat)->ListJobs();
  if (!listed.ok()) {
    log::Error(listed.status().message());
    return kExitError;
  }
  auto by_id = [&](int64_t id) -> const Catalog::Job* {
    for (const Catalog::Job& j : *listed)
      if (j.id == id) return &j;
    return nullptr;
  };
  for (int64_t id : ids)
    if (!by_id(id)) {
      log::Error(fmt::format("no job {} (lumen jobs list)", id));
      return kExitError;
    }
  if (action == "list") {
    Json rows = Json::array();
    for (const Catalog::Job& j : *listed) {
      if (!ids.empty() && !by_id(j.id)) continue;
      rows.push_back({{"id", j.id},
                      {"state", ShownState(j)},
                      {"segments", j.segments},
                      {"done", j.done},
                      {"input", lumen::json::ValidUtf8(j.input)},
                      {"output", lumen::json::ValidUtf8(j.output)},
                      {"recipe", j.recipe},
                      {"error", j.error},
                      {"folder", lumen::json::ValidUtf8(j.folder)},
                      {"created_at", j.created_at},
                      {"updated_at", j.updated_at}});
    }
    if (o.json_out) {
      std::printf("%s\n", lumen::json::Dump(rows, 2).c_str());
      return kExitOk;
    }
    if (rows.empty()) std::printf("no jobs\n");
    for (const auto& r : rows) {
      std::printf(
          "%5lld  %-11s %3d/%-3d  %s -> %s%s\n", static_cast<long long>(r["id"].get<int64_t>()),
          r["state"].get<std::string>().c_str(), r["done"].get<int>(), r["segments"].get<int>(),
          r["input"].get<std::string>().c_str(), r["output"].get<std::string>().c_str(),
          r["error"].get<std::string>().empty()
              ? ""
              : ("\n       " + r["error"].get<std::string>()).c_str());
    }
    return kExitOk;
  }
  if (action == "cancel") {
    if (ids.empty()) {
      log::Error("lumen jobs cancel needs the job's number (lumen jobs list)");
      return kExitError;
    }
    int rc = kExitOk;
    for (int64_t id : ids) {
      Catalog::Job j = *by_id(id);
      if (j.state == "done" || j.state == "cancelled") {
        log::Warn(fmt::format("job {} is already {}", id, j.state));
        continue;
      }
      if (Running(j)) {
        // The process converting it stops (as on Ctrl-C: its temporary output goes), then the
        // folder is removed here.
        if (j.pid > 0) ::kill(pid_t(j.pid), SIGTERM);
        for (int i = 0; i < 600 && Running(j); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (Running(j)) {
          log::Error(fmt::format("job {}: its process (pid {}) did not stop", id, j.pid));
          rc = kExitSomeFailed;
          continue;
        }
        auto again = (*cat)->JobById(id);
        if (again.ok() && *again) j = **again;
      }
      {
        JobLock held;  // nobody resumes it while its files go
        if (!held.Take(j.folder) && Running(j)) {
          log::Error(fmt::format("job {} was started again meanwhile: not cancelled", id));
          rc = kExitSomeFailed;
          continue;
        }
        RemoveFolder(j.folder);
      }
      j.state = "cancelled";
      if (Status st = (*cat)->UpdateJob(j); !st.ok()) {
        log::Error(st.message());
        rc = kExitSomeFailed;
        continue;
      }
      if (!o.quiet) log::Info(fmt::format("job {} cancelled: {}", id, j.input));
    }
    return rc;
  }
  // resume: the named jobs, or every one that can go on.
  std::vector<Catalog::Job> todo;
  for (const Catalog::Job& j : *listed) {
    const std::string state = ShownState(j);
    const bool named = !ids.empty() && by_id(j.id);
    if (!ids.empty() && !named) continue;
    if (state == "done" || state == "cancelled" || state == "running") {
      if (named) log::Warn(fmt::format("job {} is {}: nothing to resume", j.id, state));
      continue;
    }
    todo.push_back(j);
  }
  if (todo.empty()) {
    if (!o.quiet && ids.empty()) log::Info("no job to resume");
    return kExitOk;
  }
  cat->reset();  // each resume opens the catalog as convert does
  int rc = kExitOk;
  for (auto it = todo.rbegin(); it != todo.rend() && !Interrupted(); ++it) {
    const Json a = Json::parse(it->args, nullptr, false);
    if (a.is_discarded()) {
      log::Error(fmt::format("job {}: its arguments in the catalog are unreadable", it->id));
      rc = kExitSomeFailed;
      continue;
    }
    Options c = o;
    c.paths = {it->input};
    c.output = a.value("output", std::string());
    c.preset = a.value("preset", std::string("balanced"));
    c.chain = a.value("chain", std::string());
    c.name_template = a.value("name", std::string("{stem}.{ext}"));
    c.overwrite = a.value("overwrite", false);
    c.segment_seconds = a.value("segment", 60.0);
    c.recipe.clear();
    c.output_base.clear();
    c.output_rel.clear();
    c.no_cache = false;
    if (!o.quiet) log::Info(fmt::format("job {}: {} -> {}", it->id, it->input, it->output));
    const int r = RunConvert(c, argv0);
    rc = std::max(rc, r);
  }
  return Interrupted() ? 130 : rc;
}

}  // namespace lumen::cli
