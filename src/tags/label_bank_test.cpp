#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "lumen/tags/label_bank.h"
#include "lumen/tags/scorer.h"
#include "test_support.h"

namespace lumen::tags {
namespace {

constexpr int kDim = 32;

std::vector<float> FakeEmbed(const std::string& text) {
  return test::TextStandIn(text, kDim);
}

EncodeFn Fake(int* calls) {
  return [calls](const std::vector<std::string>& texts, float* out) {
    for (size_t i = 0; i < texts.size(); ++i) {
      auto v = FakeEmbed(texts[i]);
      std::copy(v.begin(), v.end(), out + i * kDim);
    }
    if (calls) ++*calls;
    return Status::Ok();
  };
}

Vocabulary SmallVocab() {
  VocabularyOptions opt;
  opt.wordnet_dir = "";  // supplemental terms only: ~200 terms
  return *Vocabulary::Build(opt);
}

TEST(LabelBank, BuildsInChunksResumesAfterAStopAndRejectsAnotherKey) {
  test::TempDir d;
  Vocabulary vocab = SmallVocab();
  auto order = PriorityOrder(vocab);
  BankKey key{"test:fake", vocab.Hash(), "a photo of a {}.", kDim};
  std::string path = d.File("bank.bin");
  int calls = 0;
  BuildOptions stop_early;
  stop_early.chunk = 50;
  stop_early.on_chunk = [](size_t done, size_t) { return done < 100; };  // "killed" after 2 chunks
  ASSERT_TRUE(BuildLabelBank(path, key, vocab, order, Fake(&calls), stop_early).ok());
  auto partial = LabelBank::Open(path, key);
  ASSERT_TRUE(partial.ok()) << partial.status().ToString();
  EXPECT_EQ((*partial)->rows_done(), 100u);
  EXPECT_FALSE((*partial)->complete());
  EXPECT_EQ(calls, 2);

  BuildOptions rest;
  rest.chunk = 50;
  ASSERT_TRUE(BuildLabelBank(path, key, vocab, order, Fake(&calls), rest).ok());
  auto full = LabelBank::Open(path, key);
  ASSERT_TRUE(full.ok());
  EXPECT_TRUE((*full)->complete());
  EXPECT_EQ((*full)->count(), vocab.size());
  EXPECT_EQ(calls, 2 + static_cast<int>((vocab.size() - 100 + 49) / 50));  // resumed, not restarted
  for (size_t r = 0; r < (*full)->count(); r += 17) {
    auto want = FakeEmbed(FormatPrompt(key.prompt, vocab.terms()[(*full)->term(r)].text));
    for (int k = 0; k < kDim; ++k) ASSERT_EQ((*full)->rows()[r * kDim + k], want[k]);
  }
  BankKey other = key;
  other.prompt = "a picture of {}";
  auto mismatch = LabelBank::Open(path, other);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.status().code(), Code::kInvalid);
  // A truncated file is corrupt, not a crash.
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);
  EXPECT_EQ(LabelBank::Open(path, key).status().code(), Code::kCorrupt);
}

TEST(Scorer, OneGemmMatchesDotProductsAndCalibrates) {
  test::TempDir d;
  Vocabulary vocab = SmallVocab();
  auto order = PriorityOrder(vocab);
  BankKey key{"test:fake", vocab.Hash(), "{}", kDim};
  ASSERT_TRUE(BuildLabelBank(d.File("b"), key, vocab, order, Fake(nullptr), {}).ok());
  auto bank = LabelBank::Open(d.File("b"), key);
  ASSERT_TRUE(bank.ok());
  // Images: exactly the embeddings of two terms, so those terms must come first with cos 1.
  size_t t1 = 0, t2 = 0;
  for (size_t i = 0; i < vocab.size(); ++i) {
    if (vocab.terms()[i].text == "golden hour") t1 = i;
    if (vocab.terms()[i].text == "portrait") t2 = i;
  }
  std::vector<float> images;
  for (size_t t : {t1, t2}) {
    auto v = FakeEmbed(vocab.terms()[t].text);
    images.insert(images.end(), v.begin(), v.end());
  }
  Calibration cal{10.0f, -5.0f};
  ScoreOptions opt;
  opt.min_confidence = 0.0f;
  opt.max_tags = 5;
  auto tags = ScoreImages(images.data(), 2, **bank, cal, opt);
  ASSERT_EQ(tags.size(), 2u);
  EXPECT_EQ(tags[0][0].term, t1);
  EXPECT_EQ(tags[1][0].term, t2);
  EXPECT_NEAR(tags[0][0].cosine, 1.0f, 1e-5);
  EXPECT_NEAR(tags[0][0].confidence, 1 / (1 + std::exp(-5.0)), 1e-5);
  EXPECT_EQ(tags[0].size(), 5u);
  for (const auto& per_image : tags)
    for (const Tag& t : per_image) {
      auto v = FakeEmbed(vocab.terms()[t.term].text);
      float dot = 0;
      for (int k = 0; k < kDim; ++k) dot += v[k] * images[size_t(&per_image - &tags[0]) * kDim + k];
      EXPECT_NEAR(t.cosine, dot, 1e-5);
    }
  // The confidence floor drops everything below it.
  opt.min_confidence = 0.9f;
  auto strict = ScoreImages(images.data(), 2, **bank, cal, opt);
  for (const auto& per_image : strict) {
    ASSERT_EQ(per_image.size(), 1u);  // only the exact match reaches 0.99
    EXPECT_GE(per_image[0].confidence, 0.9f);
  }
}

TEST(LabelBank, PriorityOrderPutsSeedTermsFirst) {
  test::TempDir d;
  test::WriteFile(d.File("data.noun"),
                  std::string("00001740 03 n 01 entity 0 000 | x  \n"
                              "00002000 03 n 01 animal 0 001 @ 00001740 n 0000 | x  \n"
                              "00003000 05 n 01 dog 0 001 @ 00002000 n 0000 | x  \n"));
  VocabularyOptions opt;
  opt.wordnet_dir = d.path();
  auto v = Vocabulary::Build(opt);
  auto order = PriorityOrder(*v);
  ASSERT_EQ(order.size(), v->size());
  EXPECT_EQ(v->terms()[order[0]].synset, 0u);  // supplemental first
  std::vector<std::string> wn;
  for (uint32_t i : order)
    if (v->terms()[i].synset) wn.push_back(v->terms()[i].text);
  EXPECT_EQ(wn, (std::vector<std::string>{"entity", "animal", "dog"}));  // shallow before deep
}

}  // namespace
}  // namespace lumen::tags

namespace lumen::tags {
namespace {

TEST(Scorer, DropAncestorsKeepsTheMostSpecificTags) {
  test::TempDir d;
  test::WriteFile(d.File("data.noun"),
                  std::string("00001740 03 n 01 entity 0 000 | x  \n"
                              "00002000 03 n 01 animal 0 001 @ 00001740 n 0000 | x  \n"
                              "00003000 05 n 01 dog 0 001 @ 00002000 n 0000 | x  \n"
                              "00004000 05 n 01 retriever 0 001 @ 00003000 n 0000 | x  \n"
                              "00005000 05 n 01 cat 0 001 @ 00002000 n 0000 | x  \n"));
  VocabularyOptions opt;
  opt.wordnet_dir = d.path();
  opt.supplemental = false;
  auto v = Vocabulary::Build(opt);
  ASSERT_TRUE(v.ok());
  auto idx = [&](const char* text) {
    for (size_t i = 0; i < v->size(); ++i)
      if (v->terms()[i].text == text) return static_cast<uint32_t>(i);
    return ~0u;
  };
  std::vector<Tag> tags{{idx("dog"), 0.9f, 0.9f},
                        {idx("retriever"), 0.8f, 0.8f},
                        {idx("animal"), 0.7f, 0.7f},
                        {idx("cat"), 0.6f, 0.6f}};
  DropAncestors(*v, &tags);
  std::vector<std::string> left;
  for (const Tag& t : tags) left.push_back(v->terms()[t.term].text);
  EXPECT_EQ(left, (std::vector<std::string>{"retriever", "cat"}));
  EXPECT_EQ(v->Path(idx("retriever")), "entity > animal > dog > retriever");
}

}  // namespace
}  // namespace lumen::tags
