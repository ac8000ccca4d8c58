// In-process VLM cost per image: image encode (vision tower + projector + prompt evaluation)
// and N generated tokens, with llama.cpp's libmtmd/libllama as lumen uses them.
//   build/bench/vlm_bench MODEL.gguf MMPROJ.gguf [images=5] [tokens=40] [edge=512]
//   build/bench/vlm_bench MODEL.gguf - [documents=5] [tokens=96] TEXTFILE [chars=2000]
// The second form is describe's document path: no projector, a prompt of describe's
// instructions and the first CHARS bytes of TEXTFILE (different bytes each run), every other run
// with its start in the cache from the run before, as describe runs documents.
// Models: tests/llm/tiny_vlm_gguf.py DIR smolvlm-256m f16 (SmolVLM-256M's real shape, random
// weights), then .deps/bin/llama-quantize for q8_0.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include "lumen/image/image.h"
#include "lumen/llm/local_vlm.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: vlm_bench MODEL.gguf MMPROJ.gguf [images] [tokens] [edge]\n");
    return 2;
  }
  const int images = argc > 3 ? std::atoi(argv[3]) : 5;
  const int tokens = argc > 4 ? std::atoi(argv[4]) : 40;
  const int edge = argc > 5 ? std::atoi(argv[5]) : 512;
  auto t0 = std::chrono::steady_clock::now();
  const bool text = std::string(argv[2]) == "-";
  std::string corpus;
  const size_t chars = argc > 6 ? size_t(std::atoi(argv[6])) : 2000;
  if (text) {
    if (argc < 6) {
      std::fprintf(stderr, "usage: vlm_bench MODEL.gguf - documents tokens TEXTFILE [chars]\n");
      return 2;
    }
    std::ifstream in(argv[5], std::ios::binary);
    corpus.assign(std::istreambuf_iterator<char>(in), {});
    if (corpus.size() < chars * size_t(images)) {
      std::fprintf(stderr, "%s: too short for %d documents of %zu bytes\n", argv[5], images, chars);
      return 2;
    }
  }
  auto vlm = lumen::llm::LocalVlm::Load({argv[1], text ? "" : argv[2], 0, 4096});
  if (!vlm.ok()) {
    std::fprintf(stderr, "%s\n", vlm.status().message().c_str());
    return 1;
  }
  const double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::mt19937 rng(1);
  // Each document twice: first with describe's instructions in the cache from the document
  // before (warm, as every document but the first in a describe run), then with an empty cache
  // (cold), which leaves it in the cache for the next one. Same prompts, interleaved.
  double enc[2] = {0, 0}, gen[2] = {0, 0};
  int runs[2] = {0, 0}, prompt_tokens[2] = {0, 0}, reused = 0;
  for (int i = 0; i < images; ++i) {
    lumen::Image img;
    std::string prompt = "Describe this photo.";
    if (text) {
      // About the length of describe's document instructions, then the text.
      prompt =
          "Here is the start of a document from a personal library. Answer with a JSON object: "
          "\"description\": a summary of the document in 1 to 3 sentences; \"file_name\": a "
          "short descriptive file name of at most 5 words; \"folder_name\": a folder for it of "
          "at most 2 words; \"category\": the kind of document (invoice, letter, report, "
          "manual, ...); \"keywords\": up to 8 keywords.\nText:\n" +
          corpus.substr(size_t(i) * chars, chars);
    } else {
      img = lumen::Image(edge, edge * 3 / 4, 3);
      for (auto& p : img.pixels) p = uint8_t(rng());
    }
    for (int cold = text && i == 0; cold < 2; ++cold) {
      if (cold) (*vlm)->ClearCache();
      auto r = (*vlm)->Generate(img, prompt, tokens, "", false);
      if (!r.ok()) {
        std::fprintf(stderr, "%s\n", r.status().message().c_str());
        return 1;
      }
      if (!text) cold = 1;   // images: one run each, counted as warm
      if (i == 0) continue;  // warm-up
      const int k = text ? cold : 0;
      enc[k] += r->encode_ms;
      gen[k] += r->generate_ms;
      ++runs[k];
      prompt_tokens[k] += r->prompt_tokens;
      if (k == 0) reused += r->reused_tokens;
    }
  }
  const int n = std::max(1, runs[0]);
  std::printf(
      "load %.2f s; per %s (%d runs after one warm-up): encode+prompt %.0f ms (%d prompt "
      "tokens, %d from the cache), %d tokens %.0f ms (%.1f tok/s), total %.2f s\n",
      load, text ? "document" : "image", n, enc[0] / n, prompt_tokens[0] / n, reused / n, tokens,
      gen[0] / n, tokens / (gen[0] / n / 1000), (enc[0] + gen[0]) / n / 1000);
  if (runs[1] > 0)
    std::printf(
        "  documents with nothing in the cache (%d runs): prompt %.0f ms (%d tokens), "
        "total %.2f s; the cache saves %.0f%% of the prompt time\n",
        runs[1], enc[1] / runs[1], prompt_tokens[1] / runs[1], (enc[1] + gen[1]) / runs[1] / 1000,
        100 * (1 - (enc[0] / n) / (enc[1] / runs[1])));
}
