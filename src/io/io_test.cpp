#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "lumen/io/file.h"
#include "lumen/io/hash.h"
#include "lumen/io/magic.h"
#include "lumen/io/scan.h"
#include "test_support.h"

namespace lumen {
namespace {

TEST(Hash, KnownVectorAndHexRoundTrip) {
  // XXH3-128 of the empty input, from the xxHash reference.
  Hash128 h = HashBytes("", 0);
  EXPECT_EQ(h.Hex(), "99aa06d3014798d86001c324468d497f");
  auto back = Hash128::FromHex(h.Hex());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, h);
  unsigned char b[16];
  h.ToBytes(b);
  EXPECT_EQ(Hash128::FromBytes(b), h);
  EXPECT_FALSE(Hash128::FromHex("xyz").has_value());
  EXPECT_NE(HashBytes("a", 1), HashBytes("b", 1));
}

TEST(Magic, DetectsByContentNotName) {
  auto pic = test::MakePicture(16, 16);
  struct Case {
    const char* suffix;
    Format format;
  } cases[] = {{".jpg", Format::kJpeg}, {".png", Format::kPng}, {".webp", Format::kWebp},
               {".tif", Format::kTiff}, {".gif", Format::kGif}, {".heic", Format::kHeif},
               {".avif", Format::kAvif}};
  for (const auto& c : cases) {
    auto bytes = test::Encode(pic, c.suffix);
    EXPECT_EQ(DetectFormat(bytes.data(), bytes.size()), c.format) << c.suffix;
  }
  std::string text = "hello, this is not a picture\n";
  EXPECT_EQ(DetectFormat(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
            Format::kUnknown);
  EXPECT_STREQ(DescribeNonImage(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
               "text");
  EXPECT_STREQ(DescribeNonImage(nullptr, 0), "empty file");
  EXPECT_TRUE(HasImageExtension("IMG_0001.JPG"));
  EXPECT_TRUE(HasImageExtension("a.b.heic"));
  EXPECT_FALSE(HasImageExtension("notes.txt"));
  EXPECT_FALSE(HasImageExtension("jpg"));
}

TEST(File, ReadsOnceAndDetectsChangeDuringRead) {
  test::TempDir dir;
  std::string p = dir.File("a.bin");
  test::WriteFile(p, std::string(100000, 'x'));
  auto f = OpenFile(p);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->identity().size, 100000u);
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(ReadAll(*f, &bytes).ok());
  EXPECT_EQ(bytes.size(), 100000u);

  auto g = OpenFile(p);
  ASSERT_TRUE(g.ok());
  Status st = ReadAll(*g, &bytes, [&] { test::WriteFile(p, std::string(100001, 'y')); });
  EXPECT_EQ(st.code(), Code::kChanged) << st.ToString();
  EXPECT_NE(st.message().find("changed while it was being read"), std::string::npos);

  auto missing = OpenFile(dir.File("nope"));
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

std::vector<std::string> ScanAll(const std::vector<std::string>& roots, ScanOptions opt,
                                 std::vector<ScanEntry>* others = nullptr) {
  Scanner s(roots, opt);
  ScanEntry e;
  std::vector<std::string> files;
  while (s.Next(&e)) {
    if (e.kind == ScanEntry::Kind::kFile)
      files.push_back(e.path);
    else if (others)
      others->push_back(e);
  }
  return files;
}

TEST(Scanner, SortedRecursiveSkipsHiddenAndSystem) {
  test::TempDir dir;
  namespace fs = std::filesystem;
  fs::create_directories(dir.File("b/sub"));
  fs::create_directories(dir.File(".hidden"));
  fs::create_directories(dir.File("@eaDir"));
  test::WriteFile(dir.File("b/sub/z.jpg"), "z");
  test::WriteFile(dir.File("b/a.jpg"), "a");
  test::WriteFile(dir.File("c.jpg"), "c");
  test::WriteFile(dir.File(".hidden/h.jpg"), "h");
  test::WriteFile(dir.File("@eaDir/t.jpg"), "t");
  test::WriteFile(dir.File(".dotfile.jpg"), "d");
  ASSERT_EQ(mkfifo(dir.File("fifo").c_str(), 0600), 0);

  auto files = ScanAll({dir.path()}, {});
  std::vector<std::string> want = {dir.File("c.jpg"), dir.File("b/a.jpg"), dir.File("b/sub/z.jpg")};
  EXPECT_EQ(files, want);

  ScanOptions all;
  all.include_hidden = true;
  EXPECT_EQ(ScanAll({dir.path()}, all).size(), 6u);

  ScanOptions ex;
  ex.exclude = {"sub"};
  EXPECT_EQ(ScanAll({dir.path()}, ex).size(), 2u);
}

TEST(Scanner, SymlinkLoopsAndBrokenLinks) {
  test::TempDir dir;
  namespace fs = std::filesystem;
  fs::create_directories(dir.File("photos/deeper"));
  test::WriteFile(dir.File("photos/deeper/p.jpg"), "p");
  fs::create_directory_symlink(dir.File("photos"), dir.File("photos/deeper/back"));  // loop
  fs::create_symlink(dir.File("gone.jpg"), dir.File("photos/broken.jpg"));
  fs::create_symlink(dir.File("photos/self.jpg"), dir.File("photos/self.jpg"));  // self-loop
  fs::create_symlink(dir.File("photos/deeper/p.jpg"), dir.File("photos/link.jpg"));

  std::vector<ScanEntry> others;
  auto files = ScanAll({dir.File("photos")}, {}, &others);
  std::set<std::string> got(files.begin(), files.end());
  EXPECT_TRUE(got.count(dir.File("photos/deeper/p.jpg")));
  EXPECT_TRUE(got.count(dir.File("photos/link.jpg")));
  EXPECT_EQ(files.size(), 2u);
  bool broken = false, loop = false, dir_loop = false;
  for (const auto& e : others) {
    if (e.path == dir.File("photos/broken.jpg"))
      broken = e.status.message().find("broken symbolic link") != std::string::npos;
    if (e.path == dir.File("photos/self.jpg"))
      loop = e.status.message().find("loop") != std::string::npos;
    if (e.path == dir.File("photos/deeper/back")) dir_loop = e.kind == ScanEntry::Kind::kSkipped;
  }
  EXPECT_TRUE(broken);
  EXPECT_TRUE(loop);
  EXPECT_TRUE(dir_loop);
}

TEST(Scanner, MissingRootIsAnErrorEntryAndFileRootsWork) {
  test::TempDir dir;
  test::WriteFile(dir.File("one.jpg"), "1");
  std::vector<ScanEntry> others;
  auto files = ScanAll({dir.File("one.jpg"), dir.File("absent")}, {}, &others);
  ASSERT_EQ(files.size(), 1u);
  ASSERT_EQ(others.size(), 1u);
  EXPECT_EQ(others[0].status.code(), Code::kNotFound);
}

TEST(Scanner, AbsolutePathNormalises) {
  EXPECT_EQ(AbsolutePath("/a/b/../c/"), "/a/c");
  EXPECT_EQ(AbsolutePath("/"), "/");
}

}  // namespace
}  // namespace lumen
