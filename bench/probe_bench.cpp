// lumen's in-process probe (video/probe.h), or with --poster its poster frame (video/poster.h)
// and the thumbnail made from it (a 256 px WebP, what the catalog keeps), on each file, median of
// R runs, in milliseconds:
//   build/bench/probe_bench [--poster] R FILE...
// bench/probe_bench.sh times ffprobe and an ffmpeg thumbnail command on the same files.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cstring>

#include "lumen/image/derive.h"
#include "lumen/video/poster.h"
#include "lumen/video/probe.h"

int main(int argc, char** argv) {
  const bool poster = argc > 1 && std::strcmp(argv[1], "--poster") == 0;
  if (poster) ++argv, --argc;
  if (argc < 3) {
    std::fprintf(stderr, "usage: probe_bench [--poster] RUNS FILE...\n");
    return 2;
  }
  const int runs = std::max(1, std::atoi(argv[1]));
  for (int i = 2; i < argc; ++i) {
    std::vector<double> ms;
    for (int r = 0; r < runs; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      lumen::Status st;
      if (poster) {
        auto p = lumen::video::PosterFrame(argv[i]);
        st = p.status();
        if (p.ok()) st = lumen::MakeThumbnail(p->rgb, 1, lumen::ThumbnailOptions{}).status();
      } else {
        st = lumen::video::Probe(argv[i]).status();
      }
      const auto t1 = std::chrono::steady_clock::now();
      if (!st.ok()) {
        std::fprintf(stderr, "%s\n", st.message().c_str());
        return 1;
      }
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%s\t%.3f\n", argv[i], ms[ms.size() / 2]);
  }
  return 0;
}
