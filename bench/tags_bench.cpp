// Zero-shot scoring cost: images against a full-size label bank (82K WordNet+supplemental terms x
// 768), one GEMM per batch, at several batch sizes.
//   build/bench/tags_bench [dim=768] [batches=1,8,64] [pool_images=0]
// The bank rows are random unit vectors (timings do not depend on the values).
// With pool_images > 0, also relevance pools against full scoring at batch 8 (what index uses):
// a stream of that many images drawn near 300 "library" terms; reports time per image of both,
// the share of the bank's rows computed, and how many of full scoring's tags pooled scoring kept.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>

#include "lumen/tags/label_bank.h"
#include "lumen/tags/pools.h"
#include "lumen/tags/scorer.h"

using namespace lumen::tags;

int main(int argc, char** argv) {
  int dim = argc > 1 ? std::atoi(argv[1]) : 768;
  std::string batches = argc > 2 ? argv[2] : "1,8,64";
  auto vocab = Vocabulary::Build({});
  if (!vocab.ok()) {
    std::fprintf(stderr, "%s\n", vocab.status().ToString().c_str());
    return 1;
  }
  std::string path = (std::filesystem::temp_directory_path() / "lumen-tags-bench.bank").string();
  BankKey key{"bench:random", vocab->Hash(), "{}", dim};
  std::mt19937 rng(1);
  std::normal_distribution<float> n;
  auto unit = [&](float* v) {
    double s = 0;
    for (int k = 0; k < dim; ++k) {
      v[k] = n(rng);
      s += double(v[k]) * v[k];
    }
    for (int k = 0; k < dim; ++k) v[k] = float(v[k] / std::sqrt(s));
  };
  EncodeFn random = [&](const std::vector<std::string>& texts, float* out) {
    for (size_t i = 0; i < texts.size(); ++i) unit(out + i * dim);
    return lumen::Status::Ok();
  };
  BuildOptions bo;
  bo.chunk = 8192;
  if (!BuildLabelBank(path, key, *vocab, PriorityOrder(*vocab), random, bo).ok()) return 1;
  auto bank = LabelBank::Open(path, key);
  std::printf("bank: %zu terms x %d\n\n| batch | ms/image | images/s |\n|---|---|---|\n",
              (*bank)->count(), dim);
  std::stringstream ss(batches);
  for (std::string b; std::getline(ss, b, ',');) {
    size_t batch = std::stoul(b);
    std::vector<float> images(batch * dim);
    for (size_t i = 0; i < batch; ++i) unit(images.data() + i * dim);
    (void)ScoreImages(images.data(), batch, **bank, {10, -10}, {});
    size_t done = 0;
    auto t0 = std::chrono::steady_clock::now();
    double el = 0;
    while (el < 3.0) {
      (void)ScoreImages(images.data(), batch, **bank, {10, -10}, {});
      done += batch;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::printf("| %zu | %.2f | %.1f |\n", batch, 1000 * el / done, done / el);
  }
  const size_t pool_images = argc > 3 ? std::stoul(argv[3]) : 0;
  if (pool_images > 0) {
    const size_t rows = (*bank)->rows_done(), batch = 8;
    std::vector<size_t> concepts;
    for (int i = 0; i < 300; ++i) concepts.push_back(rng() % rows);
    auto near = [&](float* v) {
      const float* c = (*bank)->rows() + concepts[rng() % concepts.size()] * size_t(dim);
      std::vector<float> noise(static_cast<size_t>(dim));
      unit(noise.data());
      double s = 0;
      for (int k = 0; k < dim; ++k) {
        v[k] = c[k] + 0.7f * noise[k];
        s += double(v[k]) * v[k];
      }
      for (int k = 0; k < dim; ++k) v[k] = float(v[k] / std::sqrt(s));
    };
    const Calibration cal{10, -5};  // 50% at cosine 0.5
    ScoreOptions so;
    so.min_confidence = 0.3f;
    RelevancePools pools(*vocab);
    double full_s = 0, pool_s = 0;
    size_t full_tags = 0, kept = 0;
    std::vector<float> images(batch * dim);
    for (size_t done = 0; done < pool_images; done += batch) {
      for (size_t i = 0; i < batch; ++i) near(images.data() + i * dim);
      auto t0 = std::chrono::steady_clock::now();
      auto full = ScoreImages(images.data(), batch, **bank, cal, so);
      auto t1 = std::chrono::steady_clock::now();
      auto pooled = pools.Score(images.data(), batch, **bank, cal, so);
      auto t2 = std::chrono::steady_clock::now();
      full_s += std::chrono::duration<double>(t1 - t0).count();
      pool_s += std::chrono::duration<double>(t2 - t1).count();
      for (size_t i = 0; i < batch; ++i)
        for (const Tag& t : full[i]) {
          ++full_tags;
          for (const Tag& p : pooled[i]) kept += p.term == t.term;
        }
    }
    std::printf(
        "\nrelevance pools, %zu images near 300 library terms, batch %zu:\n\n"
        "| scoring | ms/image | rows computed | full scoring's tags kept |\n"
        "|---|---|---|---|\n| full | %.2f | 100%% | 100%% |\n"
        "| pools | %.2f | %.1f%% | %.1f%% |\n\n"
        "final pools: %zu active, %zu warm, %zu cold\n",
        pool_images, batch, 1000 * full_s / double(pool_images),
        1000 * pool_s / double(pool_images),
        100.0 * double(pools.rows_scored()) / double(pools.rows_full()),
        100.0 * double(kept) / double(std::max<size_t>(1, full_tags)), pools.count(Pool::kActive),
        pools.count(Pool::kWarm), pools.count(Pool::kCold));
  }
  std::filesystem::remove(path);
}
