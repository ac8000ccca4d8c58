#include "jobs.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "lumen/util/log.h"

extern char** environ;

namespace lumen::server {

using nlohmann::json;

namespace {
constexpr size_t kMaxStdout = 16 << 20;  // a result bigger than this is cut (and marked so)
constexpr size_t kMaxLine = 64 << 10;    // a longer stderr line is cut
constexpr size_t kMaxMessages = 50;      // the last warnings/errors kept per job
constexpr size_t kMaxJobs = 200;         // ended jobs beyond this are forgotten, oldest first
constexpr size_t kMaxQueued = 64;        // a job past this many waiting is refused
constexpr size_t kKeepResults = 20;      // the results (stdout) of the last ended jobs are kept
constexpr size_t kListMessages = 5;      // messages per job in the list (all of them: Get)
constexpr auto kGrace = std::chrono::seconds(10);  // SIGTERM, then SIGKILL

int64_t Now() {
  return int64_t(std::time(nullptr));
}
}  // namespace

struct Jobs::Job {
  int64_t id = 0;
  std::string kind, title;
  std::vector<std::string> args;
  std::string state = "queued";  // queued | running | done | failed | cancelled
  int64_t created = 0, started = 0, ended = 0;
  int exit_code = -1;
  pid_t pid = -1;
  bool cancel = false;
  std::chrono::steady_clock::time_point cancel_at{};
  json progress;  // the last progress event
  json summary;   // the command's summary line, when it logs one
  std::deque<json> messages;
  std::string out, err_tail;
  bool out_cut = false;
  bool out_dropped = false;  // the result was let go (an older job)
  std::string line;          // stderr bytes after the last newline
  Done done;
};

Jobs::Jobs(std::string exe, std::string catalog)
    : exe_(std::move(exe)), catalog_(std::move(catalog)) {
  runner_ = std::thread([this] { Run(); });
}

Jobs::~Jobs() {
  Stop();
  if (runner_.joinable()) runner_.join();
}

void Jobs::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return;
  stop_ = true;
  for (auto& j : jobs_)
    if (j->state == "queued" || j->state == "running") {
      j->cancel = true;
      j->cancel_at = std::chrono::steady_clock::now();
      if (j->pid > 0) ::kill(-j->pid, SIGTERM);
    }
  ++version_;
  changed_.notify_all();
  queued_.notify_all();
}

bool Jobs::stopped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stop_;
}

bool Jobs::FullLocked() const {
  size_t queued = 0;
  for (const auto& q : jobs_) queued += q->state == "queued";
  return queued >= kMaxQueued;
}

bool Jobs::Full() const {
  std::lock_guard<std::mutex> lock(mu_);
  return FullLocked();
}

int64_t Jobs::Submit(const std::string& kind, const std::string& title,
                     std::vector<std::string> args, Done done) {
  std::lock_guard<std::mutex> lock(mu_);
  if (FullLocked()) return -1;
  auto j = std::make_unique<Job>();
  j->id = next_id_++;
  j->kind = kind;
  j->title = title;
  j->args = std::move(args);
  j->created = Now();
  j->done = std::move(done);
  if (stop_) {
    j->state = "cancelled";
    j->ended = j->created;
  }
  const int64_t id = j->id;
  jobs_.push_back(std::move(j));
  Trim();
  ++version_;
  changed_.notify_all();
  queued_.notify_all();
  return id;
}

// Forgets the oldest ended jobs beyond kMaxJobs (the queue itself is never cut) and the results
// of ended jobs older than the last kKeepResults (their summary and messages stay): at most
// ~320 MB of results however many jobs a long-running server sees.
void Jobs::Trim() {
  const auto ended = [](const Job& j) {
    return j.state == "done" || j.state == "failed" || j.state == "cancelled";
  };
  for (auto it = jobs_.begin(); jobs_.size() > kMaxJobs && it != jobs_.end();)
    it = ended(**it) ? jobs_.erase(it) : std::next(it);
  size_t kept = 0;
  for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) {
    Job& j = **it;
    if (!ended(j) || ++kept <= kKeepResults || j.out.empty()) continue;
    j.out.clear();
    j.out.shrink_to_fit();
    j.out_dropped = true;
  }
}

json Jobs::View(const Job& j, size_t messages) const {
  json v = {{"id", j.id},       {"kind", j.kind},       {"title", j.title},
            {"state", j.state}, {"created", j.created}, {"args", j.args}};
  if (j.started) v["started"] = j.started;
  if (j.ended) v["ended"] = j.ended;
  if (j.exit_code >= 0) v["exit_code"] = j.exit_code;
  if (!j.progress.is_null()) v["progress"] = j.progress;
  if (!j.summary.is_null()) v["summary"] = j.summary;
  v["messages"] = json::array();
  const size_t skip = j.messages.size() > messages ? j.messages.size() - messages : 0;
  for (size_t i = skip; i < j.messages.size(); ++i) v["messages"].push_back(j.messages[i]);
  if (skip) v["messages_total"] = j.messages.size();
  return v;
}

json Jobs::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  json a = json::array();
  for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) a.push_back(View(**it, kListMessages));
  return a;
}

std::optional<json> Jobs::Get(int64_t id) const {
  json v;
  std::string out;
  {
    std::unique_lock<std::mutex> lock(mu_);
    const auto it =
        std::find_if(jobs_.begin(), jobs_.end(), [&](const auto& j) { return j->id == id; });
    if (it == jobs_.end()) return std::nullopt;
    const Job& j = **it;
    v = View(j, kMaxMessages);
    if (j.state == "queued" || j.state == "running") return v;
    if (j.out_cut) v["result_cut"] = true;
    if (j.out_dropped) {
      v["result_dropped"] = true;
      v["result"] = nullptr;
      return v;
    }
    out = j.out;
  }
  // The command's stdout: JSON when it printed JSON, else its text (parsed outside the lock: a
  // result may be megabytes).
  json r = json::parse(out, nullptr, false);
  v["result"] = r.is_discarded() ? json(std::move(out)) : std::move(r);
  return v;
}

Status Jobs::Cancel(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& j : jobs_) {
    if (j->id != id) continue;
    if (j->state == "queued") {
      j->state = "cancelled";
      j->ended = Now();
      Trim();  // may erase older jobs: j and the loop are not used again
      ++version_;
      changed_.notify_all();
      return Status::Ok();
    } else if (j->state == "running") {
      if (!j->cancel) {
        j->cancel = true;
        j->cancel_at = std::chrono::steady_clock::now();
        if (j->pid > 0) ::kill(-j->pid, SIGTERM);
      }
    } else {
      return Status::Invalid(fmt::format("job {} has already ended ({})", id, j->state));
    }
    ++version_;
    changed_.notify_all();
    return Status::Ok();
  }
  return Status::NotFound(fmt::format("there is no job {}", id));
}

int64_t Jobs::Wait(int64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, timeout, [&] { return version_ != seen || stop_; });
  return version_;
}

void Jobs::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    Job* next = nullptr;
    queued_.wait(lock, [&] {
      if (stop_) return true;
      for (auto& j : jobs_)
        if (j->state == "queued") return true;
      return false;
    });
    if (stop_) break;
    for (auto& j : jobs_)
      if (j->state == "queued") {
        next = j.get();
        break;
      }
    if (!next) continue;
    Execute(*next, lock);
    if (next->done) {
      const json v = View(*next, kMaxMessages);
      Done done = next->done;
      lock.unlock();
      done(v);
      lock.lock();
    }
  }
  // Jobs still queued when the server stops never ran.
  for (auto& j : jobs_)
    if (j->state == "queued") {
      j->state = "cancelled";
      j->ended = Now();
    }
}

namespace {
// A string member of a log line, `fallback` when it is missing or not a string (a line from a
// library or a model may hold anything: it must never throw).
std::string Field(const json& e, const char* key, const char* fallback) {
  auto it = e.find(key);
  return it != e.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
}
}  // namespace

void Jobs::Line(Job& j, const std::string& line) {
  if (line.empty()) return;
  json e = json::parse(line, nullptr, false);
  if (e.is_object() && Field(e, "event", "") == "progress") {
    json p = json::object();
    for (const char* k : {"done", "total", "bytes", "failed"})
      p[k] = std::strtoll(Field(e, k, "0").c_str(), nullptr, 10);
    p["rate"] = std::strtod(Field(e, "rate", "0").c_str(), nullptr);
    const std::string eta = Field(e, "eta_s", "");
    if (!eta.empty()) p["eta_s"] = std::strtoll(eta.c_str(), nullptr, 10);
    p["unit"] = Field(e, "unit", "files");
    j.progress = std::move(p);
    return;
  }
  json m;
  if (e.is_object()) {
    // "msg" and its fields: "summary (done=12, failed=0)"; the summary is also kept whole.
    std::string text = Field(e, "msg", "");
    std::string fields;
    json rest = json::object();
    for (const auto& [k, v] : e.items()) {
      if (k == "msg" || k == "level" || k == "ts") continue;
      const std::string val = v.is_string() ? v.get<std::string>() : v.dump();
      fields += fmt::format("{}{}={}", fields.empty() ? "" : ", ", k, val);
      rest[k] = v;
    }
    if (text == "summary") j.summary = rest;
    if (!fields.empty()) text += " (" + fields + ")";
    m = {{"level", Field(e, "level", "info")}, {"message", text}};
  } else {
    m = {{"level", "info"}, {"message", line}};
  }
  j.messages.push_back(std::move(m));
  while (j.messages.size() > kMaxMessages) j.messages.pop_front();
}

void Jobs::Execute(Job& j, std::unique_lock<std::mutex>& lock) {
  // The subcommand, then the catalog and JSON logs, then the job's own arguments.
  std::vector<std::string> argv = {exe_};
  if (!j.args.empty()) argv.push_back(j.args[0]);
  argv.insert(argv.end(), {"--catalog", catalog_, "--json-logs"});
  if (!j.args.empty()) argv.insert(argv.end(), j.args.begin() + 1, j.args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  int out[2] = {-1, -1}, err[2] = {-1, -1};
  auto fail = [&](const std::string& why) {
    for (int fd : {out[0], out[1], err[0], err[1]})
      if (fd >= 0) ::close(fd);
    j.state = "failed";
    j.ended = Now();
    j.messages.push_back({{"level", "error"}, {"message", why}});
    ++version_;
    changed_.notify_all();
  };
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    return fail(fmt::format("cannot start the job: {}", std::strerror(errno)));
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  // Nothing else of the server's (its listening socket, clients, the catalog) reaches the child.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGINT, SIGTERM}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, exe_.c_str(), &fa, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return fail(fmt::format("cannot start {}: {}", exe_, std::strerror(rc)));
  ::close(out[1]);
  ::close(err[1]);
  out[1] = err[1] = -1;
  j.pid = pid;
  j.state = "running";
  j.started = Now();
  ++version_;
  changed_.notify_all();
  log::Info(fmt::format("serve: job {} ({}) started", j.id, j.kind));

  // Read both pipes to their end; the lock is held only to record what arrived.
  bool open_out = true, open_err = true;
  bool killed = false;
  char buf[1 << 16];
  while (open_out || open_err) {
    pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    lock.unlock();
    const int n =
        ::poll(p + (open_out ? 0 : 1), nfds_t(int(open_out) + int(open_err)), 250 /* ms */);
    lock.lock();
    if (n < 0 && errno != EINTR) break;
    if (j.cancel && !killed && std::chrono::steady_clock::now() - j.cancel_at > kGrace) {
      ::kill(-pid, SIGKILL);
      killed = true;
    }
    if (n <= 0) continue;
    bool any = false;
    for (int k = open_out ? 0 : 1; k < 2; ++k) {
      if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      lock.unlock();
      const ssize_t got = ::read(p[k].fd, buf, sizeof buf);
      lock.lock();
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        (k == 0 ? open_out : open_err) = false;
        continue;
      }
      any = true;
      if (k == 0) {
        const size_t room = kMaxStdout - std::min(kMaxStdout, j.out.size());
        j.out.append(buf, std::min(room, size_t(got)));
        if (size_t(got) > room) j.out_cut = true;
        continue;
      }
      for (ssize_t i = 0; i < got; ++i) {
        if (buf[i] == '\n') {
          Line(j, j.line);
          j.line.clear();
        } else if (j.line.size() < kMaxLine) {
          j.line += buf[i];
        }
      }
    }
    if (any) {
      ++version_;
      changed_.notify_all();
    }
  }
  Line(j, j.line);
  j.line.clear();
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  // Wait for the exit without reaping, so the pid (and process group) cannot be reused while a
  // cancel may still signal it; forget the pid under the lock, then reap.
  lock.unlock();
  siginfo_t info{};
  while (::waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  lock.lock();
  j.pid = -1;
  pid_t w;
  do {
    w = ::waitpid(pid, &status, 0);
  } while (w < 0 && errno == EINTR);
  j.ended = Now();
  if (w == pid && WIFEXITED(status)) j.exit_code = WEXITSTATUS(status);
  if (w == pid && WIFSIGNALED(status)) j.exit_code = 128 + WTERMSIG(status);
  // lumen's exit codes: 0 all done, 1 some files failed (the job did its work), 2 an error.
  if (on_exit_) on_exit_();
  j.state = j.cancel ? "cancelled" : j.exit_code == 0 || j.exit_code == 1 ? "done" : "failed";
  Trim();
  ++version_;
  changed_.notify_all();
  log::Info(fmt::format("serve: job {} ({}) {}", j.id, j.kind, j.state));
}

}  // namespace lumen::server
