// Tokenizers for the text towers, loaded from the files a Hugging Face model folder ships.
//
// SigLIP: SentencePiece (spiece.model, through libsentencepiece). The text is canonicalised as
//   SigLIP's tokenizer does: lower-cased, ASCII punctuation removed, whitespace collapsed. Then
//   pieces, then </s> (eos), truncated to max_positions and padded with pad_id to exactly that.
// CLIP: byte-level BPE (vocab.json + merges.txt), written here: whitespace collapsed, lower-cased
//   (Unicode), split like CLIP (contractions, letter runs, single digits, runs of other
//   non-space characters), bytes mapped to printable code points, the last symbol of each word
//   marked "</w>", merges applied by rank. <|startoftext|> ... <|endoftext|>, truncated to
//   max_positions (the end token kept), not padded: CLIP's causal mask makes padding irrelevant.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lumen/ml/model_config.h"
#include "lumen/ml/model_files.h"
#include "lumen/util/status.h"

namespace lumen::ml {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  virtual int vocab_size() const = 0;

  // From a model's tokenizer files. Errors name the missing or malformed file (and, for a
  // mismatch, both vocabulary sizes).
  static Result<std::unique_ptr<Tokenizer>> Create(const ModelSource& model);
};

}  // namespace lumen::ml
