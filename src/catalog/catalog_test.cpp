#include <gtest/gtest.h>

#include "lumen/catalog/catalog.h"
#include "test_support.h"

namespace lumen {
namespace {

TEST(Catalog, CreatesMigratesAndReopens) {
  test::TempDir dir;
  std::string path = dir.File("sub/dir/catalog.db");
  {
    auto c = Catalog::Open(path);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ((*c)->SchemaVersion(), kCatalogSchemaVersion);
  }
  auto again = Catalog::Open(path);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(sql::Exec((*again)->db(), "PRAGMA user_version=99").ok());
  again->reset();
  auto newer = Catalog::Open(path);
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("newer"), std::string::npos);
}

TEST(Catalog, ContentAddressedAssetsAndLocations) {
  test::TempDir dir;
  auto c = Catalog::Open(dir.File("c.db"));
  ASSERT_TRUE(c.ok());
  Catalog& cat = **c;
  AssetRecord a{HashBytes("x", 1), 1, "jpeg", 10, 20, "srgb"};
  ASSERT_TRUE(cat.Begin().ok());
  auto id1 = cat.UpsertAsset(a);
  auto id2 = cat.UpsertAsset(a);
  ASSERT_TRUE(id1.ok() && id2.ok());
  EXPECT_EQ(*id1, *id2);
  Thumbnail t{{1, 2, 3}, 4, 5};
  ASSERT_TRUE(cat.PutThumbnail(*id1, "webp256q80@1", t).ok());
  ASSERT_TRUE(cat.PutHashes(*id1, "dhash64+phash64@1", {0xFFFFFFFFFFFFFFFFull, 7}).ok());
  ASSERT_TRUE(cat.PutMetadata(*id1, "exiv2@1", PhotoMetadata{}).ok());
  FileIdentity fid{1, 123, 456, 789};
  std::string odd_name = "/photos/a\nb\xff.jpg";  // newline and invalid UTF-8 survive
  ASSERT_TRUE(cat.UpsertLocation(odd_name, fid, *id1, LocationState::kOk, "", 1).ok());
  ASSERT_TRUE(
      cat.UpsertLocation("/photos2/x.jpg", fid, std::nullopt, LocationState::kFailed, "bad", 1)
          .ok());
  ASSERT_TRUE(cat.Commit().ok());

  std::unordered_map<std::string, KnownLocation> known;
  ASSERT_TRUE(cat.LoadLocations({"/photos"}, &known).ok());
  ASSERT_EQ(known.size(), 1u);  // "/photos2" is not under "/photos"
  EXPECT_EQ(known.begin()->first, odd_name);
  EXPECT_EQ(known.begin()->second.identity, fid);
  EXPECT_EQ(known.begin()->second.asset_id, *id1);

  std::unordered_set<Hash128, Hash128Hasher> complete;
  ASSERT_TRUE(
      cat.LoadCompleteAssets({"webp256q80@1", "dhash64+phash64@1", "exiv2@1"}, &complete).ok());
  EXPECT_EQ(complete.count(a.hash), 1u);
  complete.clear();
  ASSERT_TRUE(
      cat.LoadCompleteAssets({"webp512q80@1", "dhash64+phash64@1", "exiv2@1"}, &complete).ok());
  EXPECT_TRUE(complete.empty());  // a new thumbnail producer makes the asset incomplete

  ASSERT_TRUE(cat.MarkMissing(known.begin()->second.id, 2).ok());
  known.clear();
  ASSERT_TRUE(cat.LoadLocations({"/photos"}, &known).ok());
  EXPECT_EQ(known.begin()->second.state, LocationState::kMissing);
  EXPECT_EQ(known.begin()->second.asset_id, *id1);  // missing, not forgotten
}

}  // namespace
}  // namespace lumen
