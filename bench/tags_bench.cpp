// Zero-shot scoring cost: images against a full-size label bank (82K WordNet+supplemental terms x
// 768), one GEMM per batch, at several batch sizes.
//   build/bench/tags_bench [dim=768] [batches=1,8,64]
// The bank rows are random unit vectors (timings do not depend on the values).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>

#include "lumen/tags/label_bank.h"
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
  std::filesystem::remove(path);
}
