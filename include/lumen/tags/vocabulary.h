// The tag vocabulary: WordNet 3.0 nouns (one term per synset), lumen's supplemental photo terms
// in categories, and user vocabularies.
//
// WordNet (Debian wordnet-base, /usr/share/wordnet/data.noun): each synset's first lemma, with
// underscores as spaces, is its term. A lemma that heads several synsets is disambiguated with its
// hypernym's lemma ("bank (financial institution)"), and with the synset offset if that is still
// not unique. Each WordNet term keeps its synset offset and its first hypernym, so tags can be
// shown as paths ("entity > ... > dog > toy dog") and ancestors can be removed.
// Supplemental terms (scene, activity, subject, style, colour, mood, composition, weather, time
// of day) and user terms (a file of "term<TAB>category" lines; '#' comments) have no hypernym and
// are added unless their text is already a term.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lumen/util/status.h"

namespace lumen::tags {

struct Term {
  std::string text;      // what is shown and put into the prompt
  std::string category;  // "wordnet", or a supplemental/user category
  uint32_t synset = 0;   // WordNet data.noun offset; 0 when not from WordNet
  int32_t parent = -1;   // index of the hypernym's term, -1 for roots and non-WordNet terms
};

struct VocabularyOptions {
  std::string wordnet_dir = "/usr/share/wordnet";  // empty: no WordNet
  bool supplemental = true;
  std::vector<std::string> user_files;
};

class Vocabulary {
 public:
  static Result<Vocabulary> Build(const VocabularyOptions& opt);

  const std::vector<Term>& terms() const { return terms_; }
  size_t size() const { return terms_.size(); }
  // "entity > physical entity > ... > dog", root first.
  std::string Path(size_t index) const;
  // Stable content hash of the term list (texts, categories, order): the label bank's key.
  std::string Hash() const;

 private:
  std::vector<Term> terms_;
};

// lumen's supplemental terms: (term, category) pairs.
const std::vector<std::pair<const char*, const char*>>& SupplementalTerms();

}  // namespace lumen::tags
