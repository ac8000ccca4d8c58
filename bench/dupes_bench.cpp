// Near-duplicate grouping cost: N perceptual hashes, 10% of them planted copies of others with
// 1-5 bits flipped (re-encoded/resized copies), grouped at the default distance.
// Then the semantic tier's exact pair search (dupes::SimilarPairs, blocked sgemm) over M random
// 768-d embeddings with 5% planted near copies, at cosine >= 0.95.
//   build/bench/dupes_bench [n=100000] [distance=6] [M=10000]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "lumen/dupes/dupes.h"

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100000;
  const int distance = argc > 2 ? std::atoi(argv[2]) : 6;
  std::mt19937_64 rng(9);
  std::vector<lumen::dupes::Item> items(n);
  for (size_t i = 0; i < n; ++i) {
    auto& it = items[i];
    it.asset = int64_t(i + 1);
    it.width = 4000, it.height = 3000, it.size = 3'000'000, it.format = "jpeg";
    it.paths = {"/photos/" + std::to_string(i) + ".jpg"};
    if (i >= 10 && rng() % 10 == 0) {
      it.phash = items[rng() % i].phash;
      for (int b = 0; b < 1 + int(rng() % 5); ++b) it.phash ^= 1ull << (rng() % 64);
      it.width = 1600, it.height = 1200;
    } else {
      it.phash = rng();
    }
  }
  lumen::dupes::Options opt;
  opt.max_distance = distance;
  auto t0 = std::chrono::steady_clock::now();
  auto groups = lumen::dupes::FindGroups(items, opt);
  auto t1 = std::chrono::steady_clock::now();
  size_t files = 0;
  for (const auto& g : groups) files += g.members.size();
  std::printf("%zu hashes, distance <= %d: %zu groups (%zu files) in %.3f s\n", n, distance,
              groups.size(), files, std::chrono::duration<double>(t1 - t0).count());
  const size_t m = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 10000;
  const int dim = 768;
  std::normal_distribution<float> g;
  std::vector<float> v(m * dim);
  size_t planted = 0;
  for (size_t i = 0; i < m; ++i) {
    const bool copy = i > 0 && rng() % 20 == 0;
    planted += copy;
    const size_t src = copy ? rng() % i : 0;
    float norm = 0;
    for (int d = 0; d < dim; ++d) {
      float x = copy ? v[src * dim + d] + 0.01f * g(rng) : g(rng);
      v[i * dim + d] = x;
      norm += x * x;
    }
    for (int d = 0; d < dim; ++d) v[i * dim + d] /= std::sqrt(norm);
  }
  t0 = std::chrono::steady_clock::now();
  auto pairs = lumen::dupes::SimilarPairs(v.data(), m, dim, 0.95f);
  t1 = std::chrono::steady_clock::now();
  std::printf("%zu embeddings x %d: %zu pairs at cosine >= 0.95 (%zu planted) in %.3f s\n", m, dim,
              pairs.size(), planted, std::chrono::duration<double>(t1 - t0).count());
}
