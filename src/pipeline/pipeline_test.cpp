#include <gtest/gtest.h>

#include <filesystem>

#include "lumen/pipeline/pipeline.h"
#include "lumen/pipeline/sinks.h"
#include "test_support.h"

namespace lumen {
namespace {

TEST(ProcessFile, GoodImageProducesEverything) {
  test::TempDir dir;
  test::WriteFile(dir.File("a.jpg"), test::Encode(test::MakePicture(1200, 800), ".jpg"));
  PipelineOptions opt;
  opt.model_input = true;
  auto r = ProcessFile(dir.File("a.jpg"), opt, nullptr, nullptr);
  ASSERT_EQ(r.outcome, ItemResult::Outcome::kNew) << r.status.ToString();
  EXPECT_EQ(r.width, 1200);
  EXPECT_EQ(r.height, 800);
  EXPECT_EQ(r.thumbnail->width, 256);
  EXPECT_EQ(r.thumbnail->height, 171);
  EXPECT_EQ(r.model_input->width, 224);
  EXPECT_EQ(r.hash, HashBytes(test::ReadFile(dir.File("a.jpg")).data(), r.identity.size));
  auto j = ToRecord(r);
  EXPECT_EQ(j["content_hash"], r.hash.Hex());
  EXPECT_EQ(j["file_name"], "a.jpg");
  EXPECT_EQ(j["format"], "jpeg");
  EXPECT_TRUE(j["thumbnail"].is_string());
}

TEST(ProcessFile, BadInputsAreRecordedWithReasons) {
  test::TempDir dir;
  test::WriteFile(dir.File("empty.jpg"), std::string());
  test::WriteFile(dir.File("text.jpg"), std::string("just some words\n"));
  test::WriteFile(dir.File("notes.txt"), std::string("just some words\n"));
  PipelineOptions opt;
  auto e = ProcessFile(dir.File("empty.jpg"), opt, nullptr, nullptr);
  EXPECT_EQ(e.outcome, ItemResult::Outcome::kFailed);
  EXPECT_NE(e.status.message().find("empty file"), std::string::npos) << e.status.message();
  auto t = ProcessFile(dir.File("text.jpg"), opt, nullptr, nullptr);
  EXPECT_EQ(t.outcome, ItemResult::Outcome::kFailed);
  EXPECT_NE(t.status.message().find("not an image: the content is text"), std::string::npos);
  // A text file is a document now; with documents off it is skipped, as any file that is
  // neither a photo nor a document is.
  auto n = ProcessFile(dir.File("notes.txt"), opt, nullptr, nullptr);
  EXPECT_EQ(n.outcome, ItemResult::Outcome::kNew) << n.status.message();
  EXPECT_EQ(n.kind, MediaKind::kDocument);
  PipelineOptions photos_only = opt;
  photos_only.documents = false;
  EXPECT_EQ(ProcessFile(dir.File("notes.txt"), photos_only, nullptr, nullptr).outcome,
            ItemResult::Outcome::kSkipped);
  test::WriteFile(dir.File("data.bin"), std::string("\x01\x02\x03\x00\xff binary", 11));
  EXPECT_EQ(ProcessFile(dir.File("data.bin"), opt, nullptr, nullptr).outcome,
            ItemResult::Outcome::kSkipped);
  auto gone = ProcessFile(dir.File("deleted-after-scan.jpg"), opt, nullptr, nullptr);
  EXPECT_EQ(gone.outcome, ItemResult::Outcome::kFailed);
  EXPECT_NE(gone.status.message().find("disappeared"), std::string::npos);

  test::WriteFile(dir.File("big.jpg"), test::Encode(test::MakePicture(300, 200), ".jpg"));
  PipelineOptions small = opt;
  small.max_file_bytes = 100;
  auto b = ProcessFile(dir.File("big.jpg"), small, nullptr, nullptr);
  EXPECT_EQ(b.status.code(), Code::kTooLarge);
  EXPECT_NE(b.status.message().find("size limit"), std::string::npos);
}

TEST(ProcessFile, FileRewrittenWhileReadIsAFailureNotAWrongHash) {
  test::TempDir dir;
  std::string p = dir.File("busy.jpg");
  test::WriteFile(p, test::Encode(test::MakePicture(300, 200), ".jpg"));
  PipelineOptions opt;
  opt.after_read_for_test = [&] {
    test::WriteFile(p, test::Encode(test::MakePicture(310, 200), ".jpg"));
  };
  auto r = ProcessFile(p, opt, nullptr, nullptr);
  EXPECT_EQ(r.outcome, ItemResult::Outcome::kFailed);
  EXPECT_EQ(r.status.code(), Code::kChanged);
}

TEST(ProcessFile, KnownContentSkipsDerivedWork) {
  test::TempDir dir;
  test::WriteFile(dir.File("a.jpg"), test::Encode(test::MakePicture(300, 200), ".jpg"));
  std::unordered_set<Hash128, Hash128Hasher> complete{HashBytes(
      test::ReadFile(dir.File("a.jpg")).data(), test::ReadFile(dir.File("a.jpg")).size())};
  auto r = ProcessFile(dir.File("a.jpg"), {}, &complete, nullptr);
  EXPECT_EQ(r.outcome, ItemResult::Outcome::kKnown);
  EXPECT_FALSE(r.thumbnail.has_value());
}

TEST(Pipeline, IndexesIncrementallyAndTracksMovesAndDeletes) {
  test::TempDir dir;
  namespace fs = std::filesystem;
  fs::create_directories(dir.File("lib/sub"));
  for (int i = 0; i < 6; ++i)
    test::WriteFile(dir.File("lib/sub/p" + std::to_string(i) + ".jpg"),
                    test::Encode(test::MakePicture(200 + i, 150, i), ".jpg"));
  auto c = Catalog::Open(dir.File("cat.db"));
  ASSERT_TRUE(c.ok());
  PipelineOptions opt;
  opt.roots = {dir.File("lib")};
  opt.jobs = 2;
  auto run = [&] {
    CatalogSink sink(c->get(), ProducersFor(opt), 1);
    auto s = RunPipeline(opt, c->get(), {&sink}, nullptr, nullptr);
    EXPECT_TRUE(s.ok());
    return *s;
  };
  auto first = run();
  EXPECT_EQ(first.succeeded, 6u);
  EXPECT_EQ(first.known, 0u);
  auto second = run();
  EXPECT_EQ(second.unchanged, 6u);
  EXPECT_EQ(second.succeeded, 0u);
  fs::rename(dir.File("lib/sub/p0.jpg"), dir.File("lib/moved.jpg"));
  fs::remove(dir.File("lib/sub/p1.jpg"));
  auto third = run();
  EXPECT_EQ(third.succeeded, 1u);
  EXPECT_EQ(third.known, 1u);    // the moved file kept its asset: no decode
  EXPECT_EQ(third.missing, 2u);  // old path of the moved file + the deleted file
  EXPECT_EQ(third.unchanged, 4u);
}

}  // namespace
}  // namespace lumen
