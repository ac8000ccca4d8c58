#include <gtest/gtest.h>

#include <map>
#include <random>

#include "lumen/tags/label_bank.h"
#include "lumen/tags/pools.h"
#include "lumen/tags/scorer.h"
#include "test_support.h"

namespace lumen::tags {
namespace {

constexpr int kDim = 32;

std::vector<float> FakeEmbed(const std::string& text) {
  return test::TextStandIn(text, kDim);
}

struct Fixture {
  test::TempDir dir;
  Vocabulary vocab = *Vocabulary::Build(VocabularyOptions{});  // WordNet + supplemental
  std::unique_ptr<LabelBank> bank;
  Fixture() {
    BankKey key{"test:fake", vocab.Hash(), "{}", kDim};
    EncodeFn encode = [](const std::vector<std::string>& texts, float* out) {
      for (size_t i = 0; i < texts.size(); ++i) {
        auto v = FakeEmbed(texts[i]);
        std::copy(v.begin(), v.end(), out + i * kDim);
      }
      return Status::Ok();
    };
    BuildOptions bo;
    bo.chunk = 8192;
    std::string path = dir.File("bank");
    EXPECT_TRUE(BuildLabelBank(path, key, vocab, PriorityOrder(vocab), encode, bo).ok());
    bank = std::move(LabelBank::Open(path, key).value());
  }
  // An image close to row r's term.
  std::vector<float> Near(size_t r, std::mt19937_64& rng, float noise) const {
    auto n = test::RandomUnitVector(rng, kDim);
    std::vector<float> v(kDim);
    double norm = 0;
    for (int k = 0; k < kDim; ++k) {
      v[k] = bank->rows()[r * kDim + k] + noise * n[k];
      norm += double(v[k]) * v[k];
    }
    for (auto& x : v) x = float(x / std::sqrt(norm));
    return v;
  }
};

// The guarantee: a term that is Active when a batch is scored gets exactly the tag full scoring
// gives it. Also: pooled scoring does much less work once the pools have learned the library.
TEST(RelevancePools, NeverDropsAnActiveTermsTagAndSavesWork) {
  Fixture f;
  ASSERT_GT(f.vocab.size(), 60000u) << "needs WordNet (Debian wordnet-base)";
  const size_t rows = f.bank->rows_done();
  PoolOptions po;
  po.warm_every = 4;
  po.sweep_every = 64;
  po.cold_after = 6;  // ~190 warm-scored images: every concept gets a chance to hit
  po.seed_active = 300;
  RelevancePools pools(f.vocab, po);
  const Calibration cal{10.0f, -5.0f};
  ScoreOptions so;
  so.min_confidence = 0.3f;
  so.max_tags = 5;
  // A library about 40 things, spread over the bank (most of them start Warm).
  std::mt19937_64 rng(3);
  std::vector<size_t> concepts;
  for (int i = 0; i < 40; ++i) concepts.push_back(rng() % rows);
  size_t checked = 0;
  for (int batch = 0; batch < 250; ++batch) {
    std::vector<float> images;
    for (int i = 0; i < 8; ++i) {
      auto v = f.Near(concepts[rng() % concepts.size()], rng, 0.4f);
      images.insert(images.end(), v.begin(), v.end());
    }
    std::vector<Pool> before(rows);
    for (size_t r = 0; r < rows; ++r) before[r] = pools.pool(r);
    auto full = ScoreImages(images.data(), 8, *f.bank, cal, so);
    auto pooled = pools.Score(images.data(), 8, *f.bank, cal, so);
    std::map<uint32_t, size_t> row_of;
    for (size_t i = 0; i < 8; ++i)
      for (const Tag& t : full[i]) {
        size_t r = 0;
        while (f.bank->term(r) != t.term) ++r;
        if (before[r] != Pool::kActive) continue;
        auto it = std::find_if(pooled[i].begin(), pooled[i].end(),
                               [&](const Tag& p) { return p.term == t.term; });
        ASSERT_NE(it, pooled[i].end())
            << "batch " << batch << ": active term " << t.term << " dropped";
        // The pooled pass scores a subset of the bank in one product: OpenBLAS may block it
        // differently from the full one, so the last bits may differ (seen on AMD EPYC).
        EXPECT_NEAR(it->confidence, t.confidence, 1e-5);
        ++checked;
      }
  }
  EXPECT_GT(checked, 1000u);
  // The pools learned: concepts are Active, most of the bank went Cold, far less was computed.
  size_t active_concepts = 0;
  for (size_t r : concepts) active_concepts += pools.pool(r) == Pool::kActive;
  EXPECT_GE(active_concepts, 36u);
  EXPECT_GT(pools.count(Pool::kCold), rows / 2);
  EXPECT_LT(double(pools.rows_scored()), 0.5 * double(pools.rows_full()));

  // The state round-trips through its persisted form.
  RelevancePools again(f.vocab, po);
  ASSERT_TRUE(again.Load(pools.Save()).ok());
  for (size_t r = 0; r < rows; r += 7) ASSERT_EQ(again.pool(r), pools.pool(r));
  EXPECT_EQ(again.Load(std::string(3, '\0')).code(), Code::kCorrupt);
  EXPECT_EQ(again.Load(std::string("\x07\x00", 2)).code(), Code::kCorrupt);
}

// A Warm term with a hit becomes Active, and its Cold WordNet siblings become Warm.
TEST(RelevancePools, PromotionWarmsSiblings) {
  Fixture f;
  const size_t rows = f.bank->rows_done();
  // A WordNet term with at least one sibling.
  std::map<int32_t, std::vector<size_t>> children;
  for (size_t r = 0; r < rows; ++r) {
    int32_t p = f.vocab.terms()[f.bank->term(r)].parent;
    if (p >= 0) children[p].push_back(r);
  }
  size_t x = rows, y = rows;
  for (const auto& [p, rs] : children)
    if (rs.size() >= 2 && rs[0] >= 500) {
      x = rs[0], y = rs[1];
      break;
    }
  ASSERT_LT(x, rows);
  PoolOptions po;
  po.warm_every = 1;
  po.sweep_every = 8;
  po.seed_active = 0;
  RelevancePools pools(f.vocab, po);
  std::string state(rows * 2, '\0');
  for (size_t r = 0; r < rows; ++r) state[2 * r] = char(Pool::kCold);
  state[2 * x] = char(Pool::kWarm);
  ASSERT_TRUE(pools.Load(state).ok());
  std::mt19937_64 rng(5);
  std::vector<float> images;
  for (int i = 0; i < 8; ++i) {
    auto v = f.Near(x, rng, 0.05f);
    images.insert(images.end(), v.begin(), v.end());
  }
  auto tags = pools.Score(images.data(), 8, *f.bank, {10.0f, -5.0f}, {0.3f, 5});
  ASSERT_FALSE(tags[0].empty());
  EXPECT_EQ(tags[0][0].term, f.bank->term(x));
  EXPECT_EQ(pools.pool(x), Pool::kActive);
  EXPECT_EQ(pools.pool(y), Pool::kWarm);
  EXPECT_EQ(pools.count(Pool::kActive), 1u);
}

}  // namespace
}  // namespace lumen::tags
