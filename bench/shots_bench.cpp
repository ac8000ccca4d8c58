// lumen's whole-video analysis (video/analyze.h: hash, shots, key frames, poster, signature) on
// each file, median of R runs in milliseconds, with its shot count and frames decoded:
//   build/bench/shots_bench [--threads N] [--print] R FILE...
// --print lists the shot boundaries and key frame times of the last run (for checking a detector
// change by eye). bench/shots.sh times `ffmpeg -threads 2 -i F -an -f null -` on the same files.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "lumen/video/analyze.h"

int main(int argc, char** argv) {
  lumen::video::AnalyzeOptions o;
  bool print = false;
  int a = 1;
  for (; a < argc && argv[a][0] == '-'; ++a) {
    if (std::strcmp(argv[a], "--print") == 0) {
      print = true;
    } else if (std::strcmp(argv[a], "--threads") == 0 && a + 1 < argc) {
      o.threads = std::atoi(argv[++a]);
    } else {
      break;
    }
  }
  if (argc - a < 2) {
    std::fprintf(stderr, "usage: shots_bench [--threads N] [--print] RUNS FILE...\n");
    return 2;
  }
  const int runs = std::max(1, std::atoi(argv[a]));
  for (int i = a + 1; i < argc; ++i) {
    std::vector<double> ms;
    lumen::Result<lumen::video::VideoAnalysis> r = lumen::Status::Internal("not run");
    for (int k = 0; k < runs; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      r = lumen::video::Analyze(argv[i], o);
      const auto t1 = std::chrono::steady_clock::now();
      if (!r.ok()) {
        std::fprintf(stderr, "%s\n", r.status().message().c_str());
        return 1;
      }
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%s\t%.3f\t%zu shots\t%lld frames\t%lld damaged\n", argv[i], ms[ms.size() / 2],
                r->shots.size(), static_cast<long long>(r->frames),
                static_cast<long long>(r->damaged));
    if (print) {
      for (const auto& s : r->shots) std::printf("  shot %.3f - %.3f\n", s.start, s.end);
      for (const auto& k : r->key_frames)
        std::printf("  key frame %.3f (shot %d)%s\n", k.time, k.shot, k.content ? "" : " blank");
      std::printf("  poster %.3f%s, %zu signature samples\n", r->poster_time,
                  r->poster_content ? "" : " (no content)", r->signature.size());
    }
  }
  return 0;
}
