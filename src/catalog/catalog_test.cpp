#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

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

TEST(Catalog, NewCatalogOpenedByManyAtOnceMigratesOnce) {
  // Two jobs and an index started together on a catalog that does not exist yet.
  test::TempDir dir;
  const std::string path = dir.File("c.db");
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  std::mutex mu;
  std::vector<std::string> errors;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      auto c = Catalog::Open(path);
      if (c.ok()) {
        ++ok;
      } else {
        std::lock_guard<std::mutex> lock(mu);
        errors.push_back(c.status().ToString());
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4) << (errors.empty() ? "" : errors[0]);
  auto c = Catalog::Open(path);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->SchemaVersion(), kCatalogSchemaVersion);
}

TEST(Catalog, JobsAreKeptFoundAndUpdated) {
  test::TempDir dir;
  auto c = Catalog::Open(dir.File("c.db"));
  ASSERT_TRUE(c.ok());
  Catalog& cat = **c;
  Catalog::Job j;
  j.input = std::string("/in/tape\xff.mkv");  // paths are bytes
  j.input_size = 123;
  j.input_mtime_ns = 456;
  j.recipe = "video|preset=vhs";
  j.output = "/out/tape.mp4";
  j.args = "{}";
  j.folder = "/out/.lumen-job-abc";
  j.state = "running";
  j.segments = 5;
  j.plan = "{\"begins\":[1,2,3,4]}";
  auto id = cat.AddJob(j);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto found = cat.FindJob(j.input, j.recipe, j.output);
  ASSERT_TRUE(found.ok() && *found);
  EXPECT_EQ((*found)->id, *id);
  EXPECT_EQ((*found)->input, j.input);
  EXPECT_EQ((*found)->segments, 5);
  EXPECT_EQ((*found)->plan, j.plan);
  // Another recipe or output is another job.
  EXPECT_FALSE(*cat.FindJob(j.input, "video|preset=web", j.output));
  EXPECT_FALSE(*cat.FindJob(j.input, j.recipe, "/out/other.mp4"));
  Catalog::Job u = **found;
  u.done = 3;
  u.state = "paused";
  u.error = "the disk is full";
  ASSERT_TRUE(cat.UpdateJob(u).ok());
  auto back = cat.JobById(*id);
  ASSERT_TRUE(back.ok() && *back);
  EXPECT_EQ((*back)->error, "the disk is full");
  EXPECT_EQ((*back)->done, 3);
  EXPECT_EQ((*back)->state, "paused");
  // A finished job is not found again (a new run starts a new one).
  u.state = "done";
  ASSERT_TRUE(cat.UpdateJob(u).ok());
  EXPECT_FALSE(*cat.FindJob(j.input, j.recipe, j.output));
  auto all = cat.ListJobs();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].state, "done");
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

// Issue 15, class 6: only a lumen catalog (or a new, empty file) is ever migrated.
std::string Bytes(const std::string& path) {
  auto b = test::ReadFile(path);
  return std::string(b.begin(), b.end());
}

TEST(Catalog, AnotherProgramsDatabaseIsRefusedAndLeftUntouched) {
  test::TempDir dir;
  const std::string path = dir.File("other.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_TRUE(sql::Exec(db,
                          "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
                          "INSERT INTO notes(body) VALUES ('keep me');")
                    .ok());
    sqlite3_close(db);
  }
  const std::string before = Bytes(path);
  for (auto mode : {Catalog::Mode::kReadWrite, Catalog::Mode::kReadOnly}) {
    auto c = Catalog::Open(path, mode);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), Code::kInvalid);
    EXPECT_NE(c.status().message().find("not a lumen catalog"), std::string::npos)
        << c.status().message();
    EXPECT_NE(c.status().message().find("notes"), std::string::npos) << c.status().message();
  }
  EXPECT_EQ(Bytes(path), before);  // no tables added, journal mode unchanged
  EXPECT_FALSE(std::filesystem::exists(path + "-wal"));
  // Some other program's id, even with lumen's table names, is not lumen's either.
  const std::string tagged = dir.File("tagged.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(tagged.c_str(), &db), SQLITE_OK);
    ASSERT_TRUE(sql::Exec(db,
                          "PRAGMA application_id=1234; CREATE TABLE assets(x); "
                          "CREATE TABLE locations(x); CREATE TABLE thumbnails(x); "
                          "CREATE TABLE runs(x); PRAGMA user_version=3;")
                    .ok());
    sqlite3_close(db);
  }
  EXPECT_FALSE(Catalog::Open(tagged).ok());
  // Not a database at all.
  test::WriteFile(dir.File("photo.jpg"), test::Encode(test::MakePicture(8, 8), ".jpg"));
  const std::string jpeg = Bytes(dir.File("photo.jpg"));
  auto c = Catalog::Open(dir.File("photo.jpg"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("not a lumen catalog"), std::string::npos)
      << c.status().message();
  EXPECT_EQ(Bytes(dir.File("photo.jpg")), jpeg);
}

TEST(Catalog, NewEmptyAndOlderLumenCatalogsOpen) {
  test::TempDir dir;
  // An empty file (touch) is a new catalog.
  test::WriteFile(dir.File("empty.db"), std::string());
  auto e = Catalog::Open(dir.File("empty.db"));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  Status st;
  auto app = sql::Prepare((*e)->db(), "PRAGMA application_id");
  ASSERT_TRUE(app.ok() && app->Step(&st));
  EXPECT_EQ(app->Int(0), Catalog::kApplicationId);
  // A catalog written before the application id existed is recognised by its tables.
  ASSERT_TRUE(sql::Exec((*e)->db(), "PRAGMA application_id=0").ok());
  e->reset();
  auto again = Catalog::Open(dir.File("empty.db"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  again->reset();
  auto ro = Catalog::Open(dir.File("empty.db"), Catalog::Mode::kReadOnly);
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_EQ((*ro)->SchemaVersion(), kCatalogSchemaVersion);
  EXPECT_FALSE((*ro)->BeginRun("index", {"/x"}).ok());  // read-only means read-only
}

TEST(Catalog, ReadOnlyNeverCreates) {
  test::TempDir dir;
  auto c = Catalog::Open(dir.File("missing/catalog.db"), Catalog::Mode::kReadOnly);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir.File("missing")));
}

}  // namespace
}  // namespace lumen
