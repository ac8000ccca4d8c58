#include "lumen/tags/vocabulary.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "lumen/io/hash.h"

namespace lumen::tags {
namespace {

struct Synset {
  uint32_t offset;
  std::string lemma;  // first lemma, spaces for underscores
  uint32_t hypernym;  // first @ / @i pointer, 0 if none
};

std::string Lemma(std::string w) {
  std::replace(w.begin(), w.end(), '_', ' ');
  // Adjective markers such as "(p)" never occur on nouns, but be safe.
  if (auto p = w.find('('); p != std::string::npos && p > 0) w = w.substr(0, p);
  return w;
}

// Parses one data.noun line: offset lex_filenum ss_type w_cnt(hex) {word lex_id} p_cnt {ptr}.
Status ParseLine(const std::string& line, const std::string& path, size_t lineno, Synset* out) {
  std::istringstream in(line);
  std::string offset, lexfile, type, wcnt_hex;
  if (!(in >> offset >> lexfile >> type >> wcnt_hex))
    return Status::Corrupt(fmt::format("{}:{}: truncated synset line", path, lineno));
  char* end = nullptr;
  unsigned long off = std::strtoul(offset.c_str(), &end, 10);
  unsigned long wcnt = std::strtoul(wcnt_hex.c_str(), nullptr, 16);
  if (*end || wcnt == 0 || wcnt > 1000)
    return Status::Corrupt(fmt::format("{}:{}: bad synset offset or word count", path, lineno));
  out->offset = static_cast<uint32_t>(off);
  out->hypernym = 0;
  for (unsigned long i = 0; i < wcnt; ++i) {
    std::string word, lexid;
    if (!(in >> word >> lexid))
      return Status::Corrupt(fmt::format("{}:{}: truncated word list", path, lineno));
    if (i == 0) out->lemma = Lemma(word);
  }
  int pcnt = 0;
  if (!(in >> pcnt) || pcnt < 0)
    return Status::Corrupt(fmt::format("{}:{}: bad pointer count", path, lineno));
  for (int i = 0; i < pcnt; ++i) {
    std::string sym, target, pos, st;
    if (!(in >> sym >> target >> pos >> st))
      return Status::Corrupt(fmt::format("{}:{}: truncated pointer list", path, lineno));
    if (out->hypernym == 0 && (sym == "@" || sym == "@i") && pos == "n")
      out->hypernym = static_cast<uint32_t>(std::strtoul(target.c_str(), nullptr, 10));
  }
  return Status::Ok();
}

Status LoadWordNet(const std::string& dir, std::vector<Term>* terms) {
  const std::string path = dir + "/data.noun";
  std::ifstream in(path);
  if (!in)
    return Status::NotFound(fmt::format("{}: not found (Debian package wordnet-base)", path));
  std::vector<Synset> synsets;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == ' ') continue;  // the licence header
    Synset s;
    LUMEN_RETURN_IF_ERROR(ParseLine(line, path, lineno, &s));
    synsets.push_back(std::move(s));
  }
  if (synsets.empty()) return Status::Corrupt(fmt::format("{}: no synsets", path));
  std::unordered_map<uint32_t, size_t> by_offset;
  std::unordered_map<std::string, int> lemma_count;
  for (size_t i = 0; i < synsets.size(); ++i) {
    by_offset[synsets[i].offset] = i;
    ++lemma_count[synsets[i].lemma];
  }
  // Disambiguate shared lemmas by the hypernym's lemma, then by offset.
  std::vector<std::string> texts(synsets.size());
  std::unordered_map<std::string, int> text_count;
  for (size_t i = 0; i < synsets.size(); ++i) {
    const Synset& s = synsets[i];
    std::string t = s.lemma;
    if (lemma_count[s.lemma] > 1) {
      auto h = by_offset.find(s.hypernym);
      t += h != by_offset.end() ? " (" + synsets[h->second].lemma + ")"
                                : " (" + std::to_string(s.offset) + ")";
    }
    texts[i] = t;
    ++text_count[t];
  }
  const size_t base = terms->size();
  for (size_t i = 0; i < synsets.size(); ++i) {
    Term term;
    term.text = text_count[texts[i]] > 1 ? fmt::format("{} #{:08d}", texts[i], synsets[i].offset)
                                         : texts[i];
    term.category = "wordnet";
    term.synset = synsets[i].offset;
    terms->push_back(std::move(term));
  }
  for (size_t i = 0; i < synsets.size(); ++i) {
    auto h = by_offset.find(synsets[i].hypernym);
    if (synsets[i].hypernym != 0 && h != by_offset.end())
      (*terms)[base + i].parent = static_cast<int32_t>(base + h->second);
  }
  return Status::Ok();
}

Status LoadUserFile(const std::string& path,
                    std::vector<std::pair<std::string, std::string>>* out) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(fmt::format("{}: cannot open the vocabulary file", path));
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto tab = line.find('\t');
    std::string term = line.substr(0, tab),
                category = tab == std::string::npos ? "" : line.substr(tab + 1);
    if (term.empty() || category.empty())
      return Status::Invalid(fmt::format("{}:{}: expected \"term<TAB>category\"", path, lineno));
    out->emplace_back(term, category);
  }
  return Status::Ok();
}

}  // namespace

Result<Vocabulary> Vocabulary::Build(const VocabularyOptions& opt) {
  Vocabulary v;
  if (!opt.wordnet_dir.empty()) LUMEN_RETURN_IF_ERROR(LoadWordNet(opt.wordnet_dir, &v.terms_));
  std::unordered_set<std::string> seen;
  for (const auto& t : v.terms_) seen.insert(t.text);
  auto add = [&](const std::string& text, const std::string& category) {
    if (!seen.insert(text).second) return;
    v.terms_.push_back({text, category, 0, -1});
  };
  if (opt.supplemental)
    for (const auto& [t, c] : SupplementalTerms()) add(t, c);
  for (const auto& f : opt.user_files) {
    std::vector<std::pair<std::string, std::string>> user;
    LUMEN_RETURN_IF_ERROR(LoadUserFile(f, &user));
    for (const auto& [t, c] : user) add(t, c);
  }
  if (v.terms_.empty()) return Status::Invalid("the vocabulary is empty");
  return v;
}

std::string Vocabulary::Path(size_t index) const {
  std::vector<const std::string*> chain;
  for (int32_t i = static_cast<int32_t>(index); i >= 0 && chain.size() < 64;
       i = terms_[size_t(i)].parent)
    chain.push_back(&terms_[size_t(i)].text);
  std::string out;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) out += (out.empty() ? "" : " > ") + **it;
  return out;
}

std::string Vocabulary::Hash() const {
  std::string all;
  for (const auto& t : terms_) {
    all += t.text;
    all += '\t';
    all += t.category;
    all += '\n';
  }
  return HashBytes(all.data(), all.size()).Hex();
}

}  // namespace lumen::tags
