// Micro benchmarks of each pipeline stage on one real photo (Google Benchmark).
//   build/bench/micro_bench [--benchmark_filter=...]        photo: $LUMEN_BENCH_PHOTO
// Without LUMEN_BENCH_PHOTO a 4000x3000 synthetic JPEG is used.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <utility>

#include "lumen/image/decode.h"
#include "lumen/image/derive.h"
#include "lumen/io/hash.h"
#include "lumen/meta/exif.h"
#include "vips_loader.h"

namespace lumen {
namespace {

const std::vector<uint8_t>& Photo() {
  static std::vector<uint8_t> bytes = [] {
    (void)InitImageLibraries("micro_bench");
    InitMetadataLibrary();
    const char* p = std::getenv("LUMEN_BENCH_PHOTO");
    if (p && *p) {
      std::ifstream f(p, std::ios::binary);
      return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                                  std::istreambuf_iterator<char>());
    }
    Image img(4000, 3000, 3);
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x) {
        uint8_t* px = img.row(y) + x * 3;
        px[0] = static_cast<uint8_t>(x * 7 ^ y * 3);
        px[1] = static_cast<uint8_t>((x + y) / 16);
        px[2] = static_cast<uint8_t>(x * y / 1000);
      }
    auto jpeg = EncodeWithVips(img, ".jpg[Q=90]");
    if (!jpeg.ok()) throw std::runtime_error(jpeg.status().ToString());
    return std::move(*jpeg);
  }();
  return bytes;
}

DecodedImage Reduced() {
  const auto& b = Photo();
  return DecodeReduced(b.data(), b.size(), Format::kJpeg, {256, 224}, {}).value();
}

void BM_HashXXH3(benchmark::State& s) {
  const auto& b = Photo();
  for (auto _ : s) benchmark::DoNotOptimize(HashBytes(b.data(), b.size()));
  s.SetBytesProcessed(static_cast<int64_t>(s.iterations() * b.size()));
}
BENCHMARK(BM_HashXXH3);

// Decode with the long edge >= N: 0 = full size, 256 = the thumbnail case (1/8 on big photos).
void BM_DecodeJpeg(benchmark::State& s) {
  const auto& b = Photo();
  int edge = static_cast<int>(s.range(0));
  int w = 0, h = 0;
  (void)ReadImageSize(b.data(), b.size(), Format::kJpeg, &w, &h);
  DecodeTarget t{edge ? edge : 1 << 30, edge ? 1 : 1 << 30};
  for (auto _ : s)
    benchmark::DoNotOptimize(DecodeReduced(b.data(), b.size(), Format::kJpeg, t, {}));
  s.counters["MP/s"] =
      benchmark::Counter(double(w) * h / 1e6 * s.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DecodeJpeg)->Arg(0)->Arg(2048)->Arg(1024)->Arg(256)->Unit(benchmark::kMillisecond);

void BM_Thumbnail256Webp(benchmark::State& s) {
  DecodedImage d = Reduced();
  for (auto _ : s) benchmark::DoNotOptimize(MakeThumbnail(d.rgb, 1, {256, 80, 2}));
}
BENCHMARK(BM_Thumbnail256Webp)->Unit(benchmark::kMillisecond);

void BM_PerceptualHashes(benchmark::State& s) {
  DecodedImage d = Reduced();
  for (auto _ : s) benchmark::DoNotOptimize(ComputePerceptualHashes(d.rgb, 1));
}
BENCHMARK(BM_PerceptualHashes)->Unit(benchmark::kMicrosecond);

void BM_ModelInput(benchmark::State& s) {
  const auto& b = Photo();
  int size = static_cast<int>(s.range(0));
  DecodedImage d = DecodeReduced(b.data(), b.size(), Format::kJpeg, {256, size}, {}).value();
  for (auto _ : s) benchmark::DoNotOptimize(MakeModelInput(d.rgb, 1, {size, ModelResize::kSquash}));
}
BENCHMARK(BM_ModelInput)->Arg(224)->Arg(384)->Unit(benchmark::kMicrosecond);

void BM_ExifRead(benchmark::State& s) {
  const auto& b = Photo();
  for (auto _ : s) benchmark::DoNotOptimize(ReadMetadata(b.data(), b.size()));
}
BENCHMARK(BM_ExifRead)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace lumen

BENCHMARK_MAIN();
