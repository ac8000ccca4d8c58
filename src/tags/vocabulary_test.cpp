#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <unordered_set>

#include "lumen/tags/vocabulary.h"
#include "test_support.h"

namespace lumen::tags {
namespace {

// A tiny data.noun in WordNet's real line format (header lines start with two spaces).
const char* kDataNoun =
    "  1 This software and database is being provided to you, the LICENSEE, by  \n"
    "  2 Princeton University under the following license.  \n"
    "00001740 03 n 01 entity 0 001 ~ 00002000 n 0000 | that which is perceived  \n"
    "00002000 03 n 02 animal 0 animate_being 0 002 @ 00001740 n 0000 ~ 00003000 n 0000 | a living "
    "organism  \n"
    "00003000 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 001 @ 00002000 n 0000 | a member of "
    "the genus Canis  \n"
    "00005000 14 n 01 financial_institution 0 001 @ 00001740 n 0000 | an institution  \n"
    "00007000 17 n 01 slope 0 001 @ 00001740 n 0000 | an elevated geological formation  \n"
    "00004000 14 n 01 bank 0 001 @ 00005000 n 0000 | a financial institution  \n"
    "00006000 17 n 01 bank 0 001 @ 00007000 n 0000 | sloping land  \n"
    "00008000 04 n 01 beach_at_sunset 0 001 @i 00001740 n 0000 | an instance  \n";

TEST(Vocabulary, WordNetTermsPathsAndDisambiguation) {
  test::TempDir d;
  test::WriteFile(d.File("data.noun"), std::string(kDataNoun));
  VocabularyOptions opt;
  opt.wordnet_dir = d.path();
  auto v = Vocabulary::Build(opt);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  std::map<std::string, size_t> at;
  for (size_t i = 0; i < v->size(); ++i) at[v->terms()[i].text] = i;
  ASSERT_TRUE(at.count("dog"));
  EXPECT_EQ(v->Path(at["dog"]), "entity > animal > dog");
  EXPECT_EQ(v->terms()[at["dog"]].synset, 3000u);
  EXPECT_TRUE(at.count("bank (financial institution)"));
  EXPECT_TRUE(at.count("bank (slope)"));
  EXPECT_FALSE(at.count("bank"));
  // An instance hypernym (@i) counts as the parent too.
  EXPECT_EQ(v->Path(at["beach at sunset"]), "entity > beach at sunset");
  // The supplemental term of the same text is not added twice; the others are, with categories.
  EXPECT_EQ(std::count_if(v->terms().begin(), v->terms().end(),
                          [](const Term& t) { return t.text == "beach at sunset"; }),
            1);
  ASSERT_TRUE(at.count("golden hour"));
  EXPECT_EQ(v->terms()[at["golden hour"]].category, "time of day");
  EXPECT_EQ(v->terms()[at["golden hour"]].parent, -1);
  EXPECT_GE(SupplementalTerms().size(), 200u);
}

TEST(Vocabulary, UserFilesAndErrors) {
  test::TempDir d;
  test::WriteFile(d.File("mine.tsv"),
                  std::string("# my terms\nsourdough bread\tfood\nred\tcolour\n"));
  VocabularyOptions opt;
  opt.wordnet_dir = "";
  opt.user_files = {d.File("mine.tsv")};
  auto v = Vocabulary::Build(opt);
  ASSERT_TRUE(v.ok());
  size_t supplemental = SupplementalTerms().size();
  EXPECT_EQ(v->size(), supplemental + 1);  // "red" was already a supplemental term
  EXPECT_EQ(v->terms().back().text, "sourdough bread");
  std::string h1 = v->Hash();
  test::WriteFile(d.File("mine.tsv"), std::string("sourdough loaf\tfood\n"));
  EXPECT_NE(Vocabulary::Build(opt)->Hash(), h1);

  test::WriteFile(d.File("bad.tsv"), std::string("ok\tcat\n\nno category here\n"));
  opt.user_files = {d.File("bad.tsv")};
  auto bad = Vocabulary::Build(opt);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.tsv:3"), std::string::npos) << bad.status().message();

  opt.user_files = {};
  opt.wordnet_dir = d.File("nowhere");
  auto missing = Vocabulary::Build(opt);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("wordnet-base"), std::string::npos);
}

TEST(Vocabulary, DebianWordNet) {
  ASSERT_TRUE(std::filesystem::exists("/usr/share/wordnet/data.noun"))
      << "scripts/bootstrap.sh installs wordnet-base";
  auto v = Vocabulary::Build({});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  RecordProperty("terms", std::to_string(v->size()));
  EXPECT_GE(v->size(), 68000u);
  EXPECT_LE(v->size(), 83000u);
  std::unordered_set<std::string> texts;
  bool dog_is_an_animal = false;
  for (size_t i = 0; i < v->size(); ++i) {
    const Term& t = v->terms()[i];
    EXPECT_TRUE(texts.insert(t.text).second) << "duplicate term " << t.text;
    if (t.synset == 2084071) dog_is_an_animal = v->Path(i).find("animal") != std::string::npos;
  }
  EXPECT_TRUE(dog_is_an_animal);
}

}  // namespace
}  // namespace lumen::tags
