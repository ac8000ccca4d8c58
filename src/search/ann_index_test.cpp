#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <unordered_set>

#include "lumen/search/ann_index.h"
#include "lumen/search/flat_index.h"
#include "test_support.h"

namespace lumen {
namespace {

constexpr int kDim = 32;

std::vector<float> Unit(std::mt19937_64& rng) {
  return test::RandomUnitVector(rng, kDim);
}

TEST(AnnIndex, RecallIncrementalUpdatesAndPersistence) {
  test::TempDir d;
  std::mt19937_64 rng(3);
  std::vector<std::vector<float>> vecs;
  for (int i = 0; i < 2000; ++i) vecs.push_back(Unit(rng));
  auto flat_of = [&](const std::unordered_set<int64_t>& skip, int count) {
    FlatIndex f(kDim);
    for (int i = 0; i < count; ++i)
      if (!skip.count(i)) f.Add(i, vecs[i].data());
    return f;
  };
  std::string path = d.File("ann/model.hnsw");
  FlatIndex flat = flat_of({}, 1900);
  auto ann = AnnIndex::Sync(path, flat);
  ASSERT_TRUE(ann.ok()) << ann.status().ToString();
  EXPECT_EQ((*ann)->added(), 1900u);
  size_t found = 0, total = 0;
  for (int qi = 0; qi < 30; ++qi) {
    auto q = Unit(rng);
    auto exact = flat.Search(q.data(), 10);
    auto approx = (*ann)->Search(flat, q.data(), 10);
    ASSERT_EQ(approx.size(), 10u);
    std::unordered_set<int64_t> want;
    for (const Hit& h : exact) want.insert(h.id);
    for (const Hit& h : approx) {
      found += want.count(h.id);
      EXPECT_FLOAT_EQ(h.cosine, [&] {
        float dot = 0;
        for (int k = 0; k < kDim; ++k) dot += q[k] * vecs[size_t(h.id)][k];
        return dot;
      }());  // re-ranked with exact scores
    }
    total += 10;
  }
  EXPECT_GE(double(found) / total, 0.95);

  // 100 removed, 100 new: the saved index follows.
  std::unordered_set<int64_t> gone;
  for (int i = 0; i < 100; ++i) gone.insert(i * 7);
  FlatIndex flat2 = flat_of(gone, 2000);
  auto ann2 = AnnIndex::Sync(path, flat2);
  ASSERT_TRUE(ann2.ok());
  EXPECT_EQ((*ann2)->removed(), 100u);
  EXPECT_EQ((*ann2)->added(), 100u);
  for (int qi = 0; qi < 10; ++qi) {
    auto q = vecs[size_t(qi * 7)];  // query with a removed vector: it must not come back
    for (const Hit& h : (*ann2)->Search(flat2, q.data(), 20))
      EXPECT_FALSE(gone.count(h.id)) << h.id;
  }
  auto ann3 = AnnIndex::Sync(path, flat2);  // reopened from disk, nothing to do
  ASSERT_TRUE(ann3.ok());
  EXPECT_EQ((*ann3)->added(), 0u);
  EXPECT_EQ((*ann3)->removed(), 0u);
  // A selective filter still returns k results (exact fallback).
  auto q = Unit(rng);
  auto even = (*ann3)->Search(flat2, q.data(), 5, [](int64_t id) { return id % 97 == 1; });
  EXPECT_EQ(even.size(), 5u);
  for (const Hit& h : even) EXPECT_EQ(h.id % 97, 1);
}

}  // namespace
}  // namespace lumen
