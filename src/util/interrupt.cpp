#include "lumen/util/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "lumen/util/temp_file.h"

namespace lumen {
namespace {
std::atomic<int> g_signal{0};
std::atomic<bool> g_stop{false};

void Handler(int sig) {
  if (g_stop.exchange(true)) {
    // Second signal: the user means it. Exit without running destructors; SQLite's WAL keeps
    // the catalog consistent, and the temporaries of outputs being written go first.
    TempFile::RemoveAll();
    _exit(128 + sig);
  }
  g_signal = sig;
  static const char msg[] = "\nlumen: stopping after the files in flight (signal again to abort)\n";
  ssize_t r = ::write(2, msg, sizeof(msg) - 1);
  (void)r;
}
}  // namespace

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = Handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool Interrupted() {
  return g_stop.load(std::memory_order_relaxed);
}
int InterruptSignal() {
  return g_signal.load();
}
void RequestInterrupt() {
  g_stop = true;
}
void ResetInterrupt() {
  g_stop = false;
  g_signal = 0;
}

}  // namespace lumen
