// Document text extraction speed: every page of each PDF (or other document) given, in process,
// with lumen's extractor (doc/document.h) without its size limits, as pdftotext does it, and the
// bounded extraction `lumen index` runs per document (first 20,000 bytes of text).
//   build/bench/doc_bench FILE... [ROUNDS]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "lumen/doc/document.h"

int main(int argc, char** argv) {
  using namespace lumen::doc;
  std::vector<std::string> files;
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i == argc - 1 && a.find_first_not_of("0123456789") == std::string::npos)
      rounds = std::stoi(a);
    else
      files.push_back(a);
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: doc_bench FILE... [ROUNDS]\n");
    return 2;
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), {});
    const DocFormat fmt = DetectDocument(b.data(), b.size(), f);
    DocLimits all;
    all.max_chars = size_t(1) << 30;
    all.max_pages = 1 << 30;
    all.max_seconds = 1e9;
    for (const char* mode : {"all pages", "index (20 KB)"}) {
      const DocLimits lim = std::string(mode) == "all pages" ? all : DocLimits{};
      double best = 1e30;
      size_t chars = 0;
      int pages = 0;
      for (int r = 0; r < rounds; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        auto d = ExtractText(b.data(), b.size(), fmt, lim);
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!d.ok()) {
          std::fprintf(stderr, "%s: %s\n", f.c_str(), d.status().message().c_str());
          return 1;
        }
        best = std::min(best, s);
        chars = d->text.size();
        pages = d->pages;
      }
      std::printf("%s\t%s\t%s\t%d pages\t%zu bytes of text\t%.3f s\t%.1f pages/s\n", f.c_str(),
                  DocFormatName(fmt), mode, pages, chars, best, pages / best);
    }
  }
  return 0;
}
