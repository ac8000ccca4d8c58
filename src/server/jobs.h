// The server's jobs: lumen's own commands (index, organize, undo, describe, convert) run as child
// processes of this binary on the served catalog, one at a time in the order they were started.
//
// A job's command line is built by the server from validated fields, never taken from a request.
// The child logs JSON lines (--json-logs) on stderr: its progress events (util/progress.h) become
// the job's progress, its warnings and errors the job's messages; its stdout (the JSON a command
// prints with --json) is the job's result. A child is its own process group: cancel sends it
// SIGTERM (lumen's commands stop cleanly between files and keep their journal), and SIGKILL
// after a grace period.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lumen/util/status.h"

namespace lumen::server {

class Jobs {
 public:
  // `exe`: this program; `catalog`: the catalog every job works on.
  Jobs(std::string exe, std::string catalog);
  ~Jobs();  // cancels what runs, drops what waits
  Jobs(const Jobs&) = delete;
  Jobs& operator=(const Jobs&) = delete;

  // Called in the runner thread when a job ends (any state), with the job's JSON.
  using Done = std::function<void(const nlohmann::json& job)>;
  // Called when a job's process has ended, before anyone can see that it has (so what shows the
  // catalog is refreshed before a page that waited for the job asks again); must be quick. Set
  // before the first Submit.
  void OnExit(std::function<void()> f) { on_exit_ = std::move(f); }

  // Queues `args` (a subcommand and its arguments; --catalog and --json-logs are added). `kind`
  // and `title` are shown; returns the job's id, or -1 when too many jobs wait already.
  int64_t Submit(const std::string& kind, const std::string& title, std::vector<std::string> args,
                 Done done = {});
  bool Full() const;            // as many jobs wait as Submit takes
  nlohmann::json List() const;  // newest first, each with its last few messages
  std::optional<nlohmann::json> Get(int64_t id) const;
  // NotFound, or Invalid when the job has already ended.
  Status Cancel(int64_t id);
  // Waits until something changed after `seen` (a value this returned) or `timeout` passed.
  int64_t Wait(int64_t seen, std::chrono::milliseconds timeout) const;
  // Ends the runner (cancelling the running job) and wakes every waiter; idempotent.
  void Stop();
  bool stopped() const;

 private:
  struct Job;
  void Run();
  void Execute(Job& job, std::unique_lock<std::mutex>& lock);
  void Line(Job& job, const std::string& line);
  nlohmann::json View(const Job& job, size_t messages) const;
  void Trim();
  bool FullLocked() const;

  std::string exe_, catalog_;
  mutable std::mutex mu_;
  mutable std::condition_variable changed_, queued_;
  std::deque<std::unique_ptr<Job>> jobs_;  // every job of this run, oldest first
  int64_t next_id_ = 1, version_ = 0;
  bool stop_ = false;
  std::function<void()> on_exit_;
  std::thread runner_;
};

}  // namespace lumen::server
