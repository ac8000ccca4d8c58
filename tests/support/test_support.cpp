#include "test_support.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "lumen/image/chain.h"
#include "lumen/image/convert.h"
#include "lumen/image/decode.h"
#include "lumen/io/hash.h"
#include "lumen/meta/exif.h"
#include "vips_loader.h"

namespace lumen::test {

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/lumen-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back(0);
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Image MakePicture(int w, int h, int seed) {
  Image img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.row(y) + x * 3;
      double fx = double(x) / w, fy = double(y) / h;
      bool block = fx < 0.3 && fy < 0.3;
      p[0] = static_cast<uint8_t>(block ? 250 : 40 + 180 * fx);
      p[1] = static_cast<uint8_t>(block ? 240 : 30 + 150 * fy);
      p[2] = static_cast<uint8_t>(100 + 80 * std::sin(6.28 * (fx * 2 + fy + seed * 0.37)));
    }
  return img;
}

Image MakeNoisyPicture(int w, int h, int bands, uint32_t seed) {
  Image img(w, h, bands);
  std::mt19937 rng(seed);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int b = 0; b < bands; ++b) {
        int v = (x * (b + 1) / 7 + y / 5) % 200 + ((x / 97 + y / 61) % 2) * 40 + int(rng() % 16);
        img.row(y)[x * bands + b] = uint8_t(std::min(v, 255));
      }
  return img;
}

Result<std::vector<uint8_t>> ConvertOnThreads(const std::string& input, const std::string& chain,
                                              int threads, const std::string& out,
                                              const DecodeLimits& limits) {
  auto parsed = ParseChain(chain);
  if (!parsed.ok()) return parsed.status();
  LUMEN_RETURN_IF_ERROR(InitImageLibraries(nullptr));
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Status::Io(out + ": cannot be created");
  SetConvertThreads(threads);
  auto r = ConvertFile(input, *parsed, fd, Preset{}, limits);
  SetConvertThreads(1);
  ::close(fd);
  if (!r.ok()) return r.status();
  return ReadFile(out);
}

std::vector<uint8_t> Encode(const Image& img, const std::string& suffix) {
  static bool init = [] {
    (void)InitImageLibraries("lumen-test");
    EnsureHeifSupport();  // the fixtures also write HEIF
    InitMetadataLibrary();
    return true;
  }();
  (void)init;
  auto bytes = EncodeWithVips(img, suffix);
  if (!bytes.ok()) throw std::runtime_error(bytes.status().ToString());
  return std::move(*bytes);
}

void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

std::vector<float> RandomUnitVector(std::mt19937_64& rng, int dim) {
  std::normal_distribution<float> n;
  std::vector<float> v(static_cast<size_t>(dim));
  double norm = 0;
  for (auto& x : v) {
    x = n(rng);
    norm += double(x) * x;
  }
  for (auto& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

std::vector<float> TextStandIn(const std::string& text, int dim) {
  std::mt19937_64 rng(HashBytes(text.data(), text.size()).lo);
  return RandomUnitVector(rng, dim);
}

double MeanAbsDiff(const Image& a, const Image& b) {
  if (a.width != b.width || a.height != b.height || a.channels != b.channels) return 1e9;
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return sum / a.pixels.size();
}

}  // namespace lumen::test
