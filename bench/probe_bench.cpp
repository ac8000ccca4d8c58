// lumen's in-process probe (video/probe.h) on each file, median of R runs, in milliseconds:
//   build/bench/probe_bench R FILE...
// bench/probe_bench.sh times `ffprobe -show_format -show_streams` on the same files.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lumen/video/probe.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s RUNS FILE...\n", argv[0]);
    return 2;
  }
  const int runs = std::max(1, std::atoi(argv[1]));
  for (int i = 2; i < argc; ++i) {
    std::vector<double> ms;
    for (int r = 0; r < runs; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      auto p = lumen::video::Probe(argv[i]);
      const auto t1 = std::chrono::steady_clock::now();
      if (!p.ok()) {
        std::fprintf(stderr, "%s\n", p.status().message().c_str());
        return 1;
      }
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%s\t%.3f\n", argv[i], ms[ms.size() / 2]);
  }
  return 0;
}
