#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "lumen/io/file.h"
#include "lumen/io/hash.h"
#include "lumen/io/magic.h"
#include "lumen/io/output.h"
#include "lumen/io/scan.h"
#include "lumen/util/json.h"
#include "lumen/util/temp_file.h"
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

// --- output files, temporaries, JSON text (issue 15: classes 4, 5, 8, 13) ---

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> n;
  for (auto& e : std::filesystem::directory_iterator(dir)) n.push_back(e.path().filename());
  std::sort(n.begin(), n.end());
  return n;
}

TEST(TempFile, CommitReplacesTheTargetAndAFailedWriteLeavesNothing) {
  test::TempDir dir;
  const std::string target = dir.File("out.json");
  test::WriteFile(target, std::string("{\"old\":1}"));
  {
    auto t = TempFile::Create(target);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(ParentDir(t->path()), dir.path());
    ASSERT_TRUE(t->Write(std::string("{\"new\":2}")).ok());
    // Until the commit the target keeps its old content.
    auto before = test::ReadFile(target);
    EXPECT_EQ(std::string(before.begin(), before.end()), "{\"old\":1}");
    ASSERT_TRUE(t->Commit().ok());
  }
  auto after = test::ReadFile(target);
  EXPECT_EQ(std::string(after.begin(), after.end()), "{\"new\":2}");
  {
    auto t = TempFile::Create(target);
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(t->Write(std::string("half")).ok());
    // destroyed without Commit(): as on an error or a signal
  }
  EXPECT_EQ(Names(dir.path()), std::vector<std::string>{"out.json"});
  after = test::ReadFile(target);
  EXPECT_EQ(std::string(after.begin(), after.end()), "{\"new\":2}");
}

TEST(TempFile, ShortNameBesideALongTargetAndNeverThroughALink) {
  test::TempDir dir;
  const std::string long_name(250, 'n');  // legal (NAME_MAX 255); name + ".tmp" suffixes are not
  const std::string target = dir.File(long_name + ".jpg");
  auto t = TempFile::Create(target);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_LE(std::filesystem::path(t->path()).filename().string().size(), 24u);
  ASSERT_TRUE(t->Write(std::string("x")).ok());
  ASSERT_TRUE(t->Commit().ok());
  EXPECT_TRUE(std::filesystem::exists(target));
  // A link planted at the target is replaced by the new file; its victim is untouched.
  const std::string victim = dir.File("victim");
  test::WriteFile(victim, std::string("precious"));
  const std::string linked = dir.File("report.html");
  ASSERT_EQ(::symlink(victim.c_str(), linked.c_str()), 0);
  auto u = TempFile::Create(linked);
  ASSERT_TRUE(u.ok());
  ASSERT_TRUE(u->Write(std::string("<html>")).ok());
  ASSERT_TRUE(u->Commit().ok());
  auto v = test::ReadFile(victim);
  EXPECT_EQ(std::string(v.begin(), v.end()), "precious");
  struct stat st;
  ASSERT_EQ(::lstat(linked.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST(Output, RefusesInputsLinksAndFilesOfAnotherKind) {
  test::TempDir dir;
  const std::string photo = dir.File("a.jpg");
  test::WriteFile(photo, test::Encode(test::MakePicture(32, 24), ".jpg"));
  const auto photo_bytes = test::ReadFile(photo);
  Status st = CheckOutput(photo, OutputKind::kJson);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_NE(st.message().find("a.jpg"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("jpeg image"), std::string::npos) << st.message();
  EXPECT_FALSE(OpenOutput(photo, OutputKind::kJson).ok());
  EXPECT_FALSE(OpenAppend(photo, OutputKind::kJson).ok());
  EXPECT_FALSE(CheckOutput(photo, OutputKind::kHtml).ok());
  EXPECT_EQ(test::ReadFile(photo), photo_bytes);  // never truncated
  // An input named as the output, even as a records-looking file.
  const std::string jsonl = dir.File("in.jsonl");
  test::WriteFile(jsonl, std::string("{\"content_hash\":\"00\",\"file_path\":\"/p/a.jpg\"}\n"));
  EXPECT_TRUE(CheckOutput(jsonl, OutputKind::kJson).ok());
  st = CheckOutput(jsonl, OutputKind::kJson, {dir.path() + "/./in.jsonl"});
  EXPECT_NE(st.message().find("one of the inputs"), std::string::npos) << st.message();
  // Links, folders and devices.
  const std::string link = dir.File("link.json");
  ASSERT_EQ(::symlink(jsonl.c_str(), link.c_str()), 0);
  EXPECT_NE(CheckOutput(link, OutputKind::kJson).message().find("symbolic link"),
            std::string::npos);
  EXPECT_FALSE(CheckOutput(dir.path(), OutputKind::kJson).ok());
  EXPECT_FALSE(CheckOutput("/dev/null", OutputKind::kJson).ok());
  // Text that is not a lumen output, and what is fine: absent, empty, an older report.
  test::WriteFile(dir.File("notes.txt"), std::string("my notes\n"));
  EXPECT_FALSE(CheckOutput(dir.File("notes.txt"), OutputKind::kJson).ok());
  EXPECT_TRUE(CheckOutput(dir.File("new.json"), OutputKind::kJson).ok());
  test::WriteFile(dir.File("empty"), std::string());
  EXPECT_TRUE(CheckOutput(dir.File("empty"), OutputKind::kHtml).ok());
  test::WriteFile(dir.File("r.html"),
                  std::string("\n<!doctype html><html><head><meta name=\"generator\" "
                              "content=\"lumen dupes\">"));
  EXPECT_TRUE(CheckOutput(dir.File("r.html"), OutputKind::kHtml).ok());
  EXPECT_FALSE(CheckOutput(dir.File("r.html"), OutputKind::kJson).ok());
  // Files that only look alike: another program's JSON (a Takeout sidecar), an INI file that
  // starts with '[', someone's web page.
  test::WriteFile(dir.File("IMG_1.jpg.json"), std::string("{\"title\":\"IMG_1.jpg\"}"));
  EXPECT_NE(CheckOutput(dir.File("IMG_1.jpg.json"), OutputKind::kJson).message().find("not lumen"),
            std::string::npos);
  test::WriteFile(dir.File("gitconfig"), std::string("[user]\n\tname = me\n"));
  EXPECT_FALSE(CheckOutput(dir.File("gitconfig"), OutputKind::kJson).ok());
  test::WriteFile(dir.File("index.html"), std::string("<html><body>my page</body></html>"));
  EXPECT_FALSE(CheckOutput(dir.File("index.html"), OutputKind::kHtml).ok());
  test::WriteFile(dir.File("empty.json"), std::string("[ ]"));
  EXPECT_TRUE(CheckOutput(dir.File("empty.json"), OutputKind::kJson).ok());
}

TEST(Json, InvalidUtf8IsReplacedNeverThrown) {
  const std::string bad = "caf\xC3";  // cut inside the two-byte é
  nlohmann::json j{{"name", bad}, {"path", std::string("\xFF\xFEx")}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);  // what used to abort
  const std::string text = json::Dump(j);
  auto back = nlohmann::json::parse(text);
  EXPECT_EQ(back["name"], "caf\xEF\xBF\xBD");
  EXPECT_EQ(json::ValidUtf8("\xFF\xFEx"), "\xEF\xBF\xBD\xEF\xBF\xBDx");
  EXPECT_EQ(json::ValidUtf8("ok \xE2\x82\xAC"), "ok \xE2\x82\xAC");
  // Overlong, surrogate and above-U+10FFFF forms are invalid too.
  EXPECT_EQ(json::ValidUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(json::ValidUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(json::ValidUtf8("\xF4\x90\x80\x80").substr(0, 3), "\xEF\xBF\xBD");
}

TEST(Json, TruncateNeverCutsACharacter) {
  const std::string s = "ab\xE2\x82\xAC\xF0\x9F\x93\xB7";  // "ab€📷"
  EXPECT_EQ(json::TruncateUtf8(s, 100), s);
  EXPECT_EQ(json::TruncateUtf8(s, 2), "ab");
  EXPECT_EQ(json::TruncateUtf8(s, 3), "ab");
  EXPECT_EQ(json::TruncateUtf8(s, 4), "ab");
  EXPECT_EQ(json::TruncateUtf8(s, 5), "ab\xE2\x82\xAC");
  EXPECT_EQ(json::TruncateUtf8(s, 8), "ab\xE2\x82\xAC");
  EXPECT_EQ(json::TruncateUtf8(s, 9), s);
  for (size_t n = 0; n <= s.size(); ++n)
    EXPECT_EQ(json::ValidUtf8(json::TruncateUtf8(s, n)), json::TruncateUtf8(s, n)) << n;
}

}  // namespace
}  // namespace lumen
