#include "lumen/ml/tokenizer.h"

#include <sentencepiece_processor.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <climits>
#include <map>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace lumen::ml {
namespace {

// Decodes UTF-8 into code points; invalid bytes become U+FFFD.
std::vector<UChar32> Decode(std::string_view s) {
  std::vector<UChar32> out;
  int32_t i = 0, n = static_cast<int32_t>(s.size());
  while (i < n) {
    UChar32 c;
    U8_NEXT(reinterpret_cast<const uint8_t*>(s.data()), i, n, c);
    out.push_back(c < 0 ? 0xFFFD : c);
  }
  return out;
}

void AppendUtf8(std::string* out, UChar32 c) {
  char buf[4];
  int32_t len = 0;
  UBool err = false;
  U8_APPEND(reinterpret_cast<uint8_t*>(buf), len, 4, c, err);
  if (!err) out->append(buf, static_cast<size_t>(len));
}

bool IsSpace(UChar32 c) {
  return u_isUWhiteSpace(c) || c == '\t' || c == '\n' || c == '\r';
}

// ---- SigLIP ------------------------------------------------------------------------------------
class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp,
                         const TextConfig& t)
      : sp_(std::move(sp)), t_(t) {}

  std::vector<int32_t> Encode(std::string_view text) const override {
    // Canonical form: lower case, ASCII punctuation removed, whitespace collapsed and trimmed.
    std::string canon;
    bool space = false;
    for (UChar32 c : Decode(text)) {
      if (c < 128 && std::ispunct(static_cast<int>(c))) continue;
      if (IsSpace(c)) {
        space = !canon.empty();
        continue;
      }
      if (space) canon += ' ';
      space = false;
      AppendUtf8(&canon, u_tolower(c));
    }
    std::vector<int> pieces;
    (void)sp_->Encode(canon, &pieces);
    const size_t max = static_cast<size_t>(t_.max_positions);
    if (pieces.size() > max - 1) pieces.resize(max - 1);
    std::vector<int32_t> ids(pieces.begin(), pieces.end());
    ids.push_back(t_.eos_id);
    ids.resize(max, t_.pad_id);
    return ids;
  }
  int vocab_size() const override { return sp_->GetPieceSize(); }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  TextConfig t_;
};

// ---- CLIP
// ----------------------------------------------------------------------------------------
class ClipBpeTokenizer : public Tokenizer {
 public:
  ClipBpeTokenizer(std::unordered_map<std::string, int32_t> vocab,
                   std::map<std::pair<std::string, std::string>, int> ranks, const TextConfig& t)
      : vocab_(std::move(vocab)), ranks_(std::move(ranks)), t_(t) {
    // GPT-2's reversible byte -> code point map: printable Latin-1 bytes map to themselves, the
    // others to 256 + n in order.
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_map_[b].clear();
      AppendUtf8(&byte_map_[b], printable ? b : 256 + n++);
    }
    bos_ = Id("<|startoftext|>", t.bos_id);
    eos_ = Id("<|endoftext|>", t.eos_id);
  }

  int vocab_size() const override { return static_cast<int>(vocab_.size()); }

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int32_t> ids{bos_};
    for (const std::string& word : Words(text)) {
      for (int32_t id : Bpe(word)) ids.push_back(id);
    }
    const size_t max = static_cast<size_t>(t_.max_positions);
    if (ids.size() > max - 1) ids.resize(max - 1);
    ids.push_back(eos_);
    return ids;
  }

 private:
  int32_t Id(const std::string& tok, int fallback) const {
    auto it = vocab_.find(tok);
    return it == vocab_.end() ? fallback : it->second;
  }

  // Cleaned, lower-cased text split into CLIP's pre-tokens.
  std::vector<std::string> Words(std::string_view text) const {
    std::vector<UChar32> cps;
    for (UChar32 c : Decode(text)) cps.push_back(u_tolower(c));
    std::vector<std::string> words;
    size_t i = 0;
    auto is_letter = [](UChar32 c) { return u_isalpha(c) != 0; };
    auto is_number = [](UChar32 c) {
      int8_t t = u_charType(c);
      return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
    };
    // Special tokens, then contractions, tried before the character classes (as CLIP's regex).
    static const std::u32string kFixed[] = {
        U"<|startoftext|>", U"<|endoftext|>", U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
    auto starts_with = [&](const std::u32string& p) {
      if (i + p.size() > cps.size()) return false;
      for (size_t k = 0; k < p.size(); ++k)
        if (cps[i + k] != static_cast<UChar32>(p[k])) return false;
      return true;
    };
    auto emit = [&](size_t from, size_t to) {
      std::string w;
      for (size_t k = from; k < to; ++k) AppendUtf8(&w, cps[k]);
      words.push_back(std::move(w));
    };
    while (i < cps.size()) {
      UChar32 c = cps[i];
      if (IsSpace(c)) {
        ++i;
        continue;
      }
      bool matched = false;
      for (const auto& p : kFixed) {
        if (starts_with(p)) {
          emit(i, i + p.size());
          i += p.size();
          matched = true;
          break;
        }
      }
      if (matched) continue;
      size_t j = i + 1;
      if (is_letter(c)) {
        while (j < cps.size() && is_letter(cps[j])) ++j;
      } else if (!is_number(c)) {
        while (j < cps.size() && !IsSpace(cps[j]) && !is_letter(cps[j]) && !is_number(cps[j])) ++j;
      }
      emit(i, j);
      i = j;
    }
    return words;
  }

  std::vector<int32_t> Bpe(const std::string& word) const {
    std::vector<std::string> sym;
    for (unsigned char b : word) sym.push_back(byte_map_[b]);
    if (sym.empty()) return {};
    sym.back() += "</w>";
    while (sym.size() > 1) {
      int best = INT_MAX;
      size_t at = 0;
      for (size_t k = 0; k + 1 < sym.size(); ++k) {
        auto it = ranks_.find({sym[k], sym[k + 1]});
        if (it != ranks_.end() && it->second < best) {
          best = it->second;
          at = k;
        }
      }
      if (best == INT_MAX) break;
      const std::string a = sym[at], b = sym[at + 1];
      std::vector<std::string> merged;
      for (size_t k = 0; k < sym.size(); ++k) {
        if (k + 1 < sym.size() && sym[k] == a && sym[k + 1] == b) {
          merged.push_back(a + b);
          ++k;
        } else {
          merged.push_back(sym[k]);
        }
      }
      sym = std::move(merged);
    }
    std::vector<int32_t> ids;
    for (const auto& s : sym) {
      auto it = vocab_.find(s);
      if (it != vocab_.end()) ids.push_back(it->second);
    }
    return ids;
  }

  std::unordered_map<std::string, int32_t> vocab_;
  std::map<std::pair<std::string, std::string>, int> ranks_;
  TextConfig t_;
  std::string byte_map_[256];
  int32_t bos_ = 0, eos_ = 0;
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::Create(const ModelSource& model) {
  const ModelConfig& cfg = model.config;
  const TextConfig& t = cfg.text;
  const std::string& dir = model.path;
  std::unique_ptr<Tokenizer> tok;
  if (cfg.family == Family::kSiglip) {
    std::string path = dir + "/spiece.model";
    if (model.spiece_model.empty())
      return Status::NotFound(fmt::format("{}: not found (SigLIP's tokenizer)", path));
    auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
    auto st = sp->LoadFromSerializedProto(model.spiece_model);
    if (!st.ok())
      return Status::Invalid(
          fmt::format("{}: cannot load the SentencePiece model: {}", path, st.ToString()));
    tok = std::make_unique<SentencePieceTokenizer>(std::move(sp), t);
  } else {
    std::string vpath = dir + "/vocab.json", mpath = dir + "/merges.txt";
    if (model.vocab_json.empty())
      return Status::NotFound(fmt::format("{}: not found (CLIP's BPE vocabulary)", vpath));
    if (model.merges_txt.empty())
      return Status::NotFound(fmt::format("{}: not found (CLIP's BPE merges)", mpath));
    auto vj = nlohmann::json::parse(model.vocab_json, nullptr, false);
    if (vj.is_discarded() || !vj.is_object())
      return Status::Corrupt(fmt::format("{}: not a JSON object", vpath));
    std::unordered_map<std::string, int32_t> vocab;
    for (auto& [k, v] : vj.items()) {
      if (!v.is_number_integer())
        return Status::Corrupt(fmt::format("{}: token {} has no integer id", vpath, k));
      vocab[k] = v.get<int32_t>();
    }
    std::istringstream min(model.merges_txt);
    std::map<std::pair<std::string, std::string>, int> ranks;
    std::string line;
    int rank = 0, lineno = 0;
    while (std::getline(min, line)) {
      ++lineno;
      if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
      auto sp = line.find(' ');
      if (sp == std::string::npos)
        return Status::Corrupt(fmt::format("{}:{}: expected two symbols", mpath, lineno));
      ranks.emplace(std::pair{line.substr(0, sp), line.substr(sp + 1)}, rank++);
    }
    if (!vocab.count("<|startoftext|>") || !vocab.count("<|endoftext|>"))
      return Status::Corrupt(fmt::format("{}: <|startoftext|> or <|endoftext|> missing", vpath));
    tok = std::make_unique<ClipBpeTokenizer>(std::move(vocab), std::move(ranks), t);
  }
  if (tok->vocab_size() > t.vocab)
    return Status::Invalid(
        fmt::format("tokenizer in {} has {} tokens but the text model's vocab_size is {}", dir,
                    tok->vocab_size(), t.vocab));
  return tok;
}

}  // namespace lumen::ml
