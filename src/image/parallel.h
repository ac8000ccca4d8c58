// Private: a parallel loop over items for the image layer (vectorize.cpp, the JPEG and PNG strip
// encoders).
#pragma once

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>
#include <vector>

namespace lumen {

// How many workers ParallelFor uses for `items` on `threads`: at least one, at most one an item.
inline int Workers(int items, int threads) {
  return std::max(1, std::min(threads, items));
}

// fn(worker, i) for every i in [0, items), handed out one at a time so that uneven items balance;
// worker is in [0, Workers(items, threads)). The caller's thread is worker 0. If the system
// refuses a thread, the ones already running finish the work.
template <typename Fn>
void ParallelFor(int items, int threads, const Fn& fn) {
  const int workers = Workers(items, threads);
  std::atomic<int> next{0};
  auto run = [&](int worker) {
    for (int i; (i = next.fetch_add(1, std::memory_order_relaxed)) < items;) fn(worker, i);
  };
  std::vector<std::thread> pool;
  pool.reserve(size_t(workers - 1));
  for (int w = 1; w < workers; ++w) {
    try {
      pool.emplace_back(run, w);
    } catch (const std::system_error&) {
      break;
    }
  }
  run(0);
  for (auto& t : pool) t.join();
}

}  // namespace lumen
