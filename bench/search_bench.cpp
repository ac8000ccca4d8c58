// Search over synthetic embeddings: exact scan vs the ANN index (hnswlib + exact re-ranking).
//   build/bench/search_bench [n=100000] [dim=768] [queries=200] [k=10]
// The vectors are clustered like real photo embeddings (2,000 centres, each vector a centre plus
// noise, L2-normalised); queries come from the same distribution but are not in the index. Reports
// the ANN build time, p50/p95 latency of both, and the ANN's recall@k against the exact answer.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "lumen/search/ann_index.h"
#include "lumen/search/flat_index.h"

namespace {
double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}
}  // namespace

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100000;
  const int dim = argc > 2 ? std::atoi(argv[2]) : 768;
  const size_t queries = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 200;
  const size_t k = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 10;
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.f, 1.f);
  const size_t centres = 2000;
  std::vector<float> centre(centres * size_t(dim));
  for (auto& x : centre) x = g(rng);
  auto sample = [&](float* v) {
    const float* c = centre.data() + (rng() % centres) * size_t(dim);
    double norm = 0;
    for (int d = 0; d < dim; ++d) {
      v[d] = c[d] + 0.8f * g(rng);
      norm += double(v[d]) * v[d];
    }
    for (int d = 0; d < dim; ++d) v[d] = float(v[d] / std::sqrt(norm));
  };
  lumen::FlatIndex flat(dim);
  std::vector<float> v(static_cast<size_t>(dim));
  for (size_t i = 0; i < n; ++i) {
    sample(v.data());
    flat.Add(int64_t(i + 1), v.data());
  }
  std::vector<float> q(queries * size_t(dim));
  for (size_t i = 0; i < queries; ++i) sample(q.data() + i * size_t(dim));

  char dir[] = "/tmp/lumen-search-bench-XXXXXX";
  if (!::mkdtemp(dir)) return 1;
  const std::string path = std::string(dir) + "/bench.hnsw";
  auto t0 = std::chrono::steady_clock::now();
  auto ann = lumen::AnnIndex::Sync(path, flat);
  auto t1 = std::chrono::steady_clock::now();
  if (!ann.ok()) {
    std::fprintf(stderr, "%s\n", ann.status().ToString().c_str());
    return 1;
  }
  auto t2 = std::chrono::steady_clock::now();
  auto reopened = lumen::AnnIndex::Sync(path, flat);  // the next run: load, nothing to add
  auto t3 = std::chrono::steady_clock::now();

  std::vector<double> exact_ms, ann_ms;
  double recall = 0;
  for (size_t i = 0; i < queries; ++i) {
    const float* qi = q.data() + i * size_t(dim);
    auto a = std::chrono::steady_clock::now();
    auto truth = flat.Search(qi, k);
    auto b = std::chrono::steady_clock::now();
    auto got = (*reopened)->Search(flat, qi, k);
    auto c = std::chrono::steady_clock::now();
    exact_ms.push_back(Ms(a, b));
    ann_ms.push_back(Ms(b, c));
    std::unordered_set<int64_t> want;
    for (const auto& h : truth) want.insert(h.id);
    size_t hit = 0;
    for (const auto& h : got) hit += want.count(h.id);
    recall += double(hit) / double(truth.size());
  }
  recall /= double(queries);
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  std::printf("%zu vectors x %d, %zu queries, k=%d\n\n", n, dim, queries, int(k));
  std::printf("| method | p50 ms | p95 ms | recall@%d |\n|---|---|---|---|\n", int(k));
  std::printf("| exact scan | %.2f | %.2f | 1 |\n", Percentile(exact_ms, .5),
              Percentile(exact_ms, .95));
  std::printf("| ANN + exact re-rank | %.2f | %.2f | %.4f |\n", Percentile(ann_ms, .5),
              Percentile(ann_ms, .95), recall);
  std::printf(
      "\nANN build (first sync, saved): %.1f s; reopen (next run): %.2f s; peak RSS %ld MB\n",
      Ms(t0, t1) / 1000, Ms(t2, t3) / 1000, ru.ru_maxrss / 1024);
  std::remove(path.c_str());
  std::string rm = std::string("rm -rf ") + dir;
  return std::system(rm.c_str()) == 0 ? 0 : 1;
}
