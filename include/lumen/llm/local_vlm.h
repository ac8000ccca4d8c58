// An in-process vision-language model: a GGUF text model + an mmproj (vision tower and
// projector) through llama.cpp's libllama and libmtmd, loaded once and kept. The image is the
// caller's RGB (the reduced decode, upright), handed to libmtmd as pixels: no file, no second
// decode. Output can be constrained by a GBNF grammar (llama.cpp's grammar sampler).
// Not thread-safe: one Generate() at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lumen/image/image.h"
#include "lumen/util/status.h"

namespace lumen::llm {

struct LocalVlmOptions {
  std::string model;   // text model .gguf
  std::string mmproj;  // vision projector .gguf; empty: text only (documents)
  int threads = 0;     // 0: all cores
  int context = 4096;
};

struct LocalReply {
  std::string text;
  int prompt_tokens = 0, generated_tokens = 0;
  int reused_tokens = 0;   // of the prompt, already in the cache from the previous prompt
  double encode_ms = 0;    // image encode + prompt evaluation
  double generate_ms = 0;  // token generation
};

class LocalVlm {
 public:
  static Result<std::unique_ptr<LocalVlm>> Load(const LocalVlmOptions& opt);
  ~LocalVlm();

  // `prompt` is the user's text; the image goes before it (an empty `rgb`: the prompt alone, as
  // for a document's text). `grammar` (GBNF, root "root") may be empty. Stops at end-of-generation
  // or after `max_tokens`. `stop_at_eog` false generates exactly `max_tokens` (benchmarks).
  // A text prompt that starts like the previous one reuses that start from the cache.
  Result<LocalReply> Generate(const Image& rgb, const std::string& prompt, int max_tokens,
                              const std::string& grammar, bool stop_at_eog = true);
  // Empties the cache: the next prompt is evaluated whole (benchmarks).
  void ClearCache();

  struct Impl;

 private:
  LocalVlm() = default;
  std::unique_ptr<Impl> impl_;
};

// The GBNF for lumen's describe answer: {"description", "ocr_text", "file_name", "folder_name"
// [, "social": {...}]}, strings of bounded length (`text_chars` for the description); with
// `folders`, folder_name is one of them.
std::string DescribeGrammar(int text_chars, const std::vector<std::string>& folders = {},
                            bool social = false);
// The same for a document: {"description" (the summary), "file_name", "folder_name",
// "category", "keywords": [up to 8 names]}.
std::string DocumentGrammar(int text_chars, const std::vector<std::string>& folders = {});

}  // namespace lumen::llm
