#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "lumen/catalog/catalog.h"
#include "lumen/catalog/journal.h"
#include "lumen/io/beneath.h"
#include "lumen/organize/execute.h"
#include "lumen/organize/plan.h"
#include "lumen/organize/posts.h"
#include "lumen/organize/template.h"
#include "test_support.h"

namespace lumen::organize {
namespace {

Fields Photo() {
  Fields f;
  f.values = {{"year", "2023"},  {"month", "07"}, {"name", "IMG_1.JPG"},
              {"stem", "IMG_1"}, {"ext", "jpg"},  {"make", "Canon"}};
  f.tags = {"beach", "dog"};
  return f;
}

std::string Expand(const std::string& t, const Fields& f = Photo()) {
  auto tmpl = Template::Parse(t);
  if (!tmpl.ok()) return "parse error: " + tmpl.status().message();
  auto r = tmpl->Expand(f);
  return r.ok() ? *r : "expand error: " + r.status().message();
}

TEST(Template, FieldsFallbacksAndFolderTemplates) {
  EXPECT_EQ(Expand("{year}/{month}/{stem}.{ext}"), "2023/07/IMG_1.jpg");
  EXPECT_EQ(Expand("{year}/{month}"), "2023/07/IMG_1.JPG");  // a folder template gets the name
  EXPECT_EQ(Expand("{year}/{month}/"), "2023/07/IMG_1.JPG");
  EXPECT_EQ(Expand("{tag}/{tags[1]}/{tags[5]|none}"), "beach/dog/none/IMG_1.JPG");
  EXPECT_EQ(Expand("{camera}/{name}"), "unknown/IMG_1.JPG");
  EXPECT_EQ(Expand("{camera|no camera}/{name}"), "no camera/IMG_1.JPG");
  EXPECT_EQ(Expand("{city?}/{make}"), "Canon/IMG_1.JPG");  // an empty level disappears
  EXPECT_EQ(Expand("{name}"), "IMG_1.JPG");
}

// A file name without an extension keeps the photo's; a missing description is not made up.
TEST(Template, ExtensionsAndDescriptions) {
  Fields f = Photo();
  f.values["ai_name"] = "dog-on-beach";
  f.values["ai_folder"] = "pets";
  f.values["hash8"] = "abcd1234";
  EXPECT_EQ(Expand("{ai_folder}/{ai_name}", f), "pets/dog-on-beach.jpg");
  EXPECT_EQ(Expand("{ai_folder}/{ai_name}.{ext}", f), "pets/dog-on-beach.jpg");
  EXPECT_EQ(Expand("{ai_folder}/{ai_name}.jpeg", f), "pets/dog-on-beach.jpeg");
  EXPECT_EQ(Expand("{year}/{stem}_{hash8}", f), "2023/IMG_1_abcd1234.jpg");
  EXPECT_EQ(Expand("{year}/{stem}.{hash8}", f), "2023/IMG_1.abcd1234.jpg");
  EXPECT_EQ(Expand("{ai_folder}/{name}", f), "pets/IMG_1.JPG");
  Fields noext = f;
  noext.values.erase("ext");
  EXPECT_EQ(Expand("{ai_folder}/{ai_name}", noext), "pets/dog-on-beach");
  // No description: NotFound with the reason, unless the template says what to use instead.
  Fields bare = Photo();
  auto t = Template::Parse("{ai_folder}/{ai_name}");
  auto r = t->Expand(bare);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_EQ(r.status().message(), kNoDescription);
  EXPECT_FALSE(Template::Parse("{ai_folder}")->Expand(bare).ok());
  EXPECT_EQ(Expand("{ai_folder|unsorted}/{ai_name|untitled}", bare), "unsorted/untitled.jpg");
  EXPECT_EQ(Expand("{ai_folder?}/{stem}", bare), "IMG_1.jpg");
}

TEST(Template, RefusesEscapesWithThePosition) {
  for (const char* bad : {"/abs/{name}", "../{name}", "a/./b", "{year}/..", "{bogus}", "{year",
                          "year}", "{tags[x]}", "{year|a/b}", "{year|..}", "a\nb", ""}) {
    auto t = Template::Parse(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), Code::kInvalid);
    if (*bad) {
      EXPECT_NE(t.status().message().find("position"), std::string::npos) << bad;
    }
  }
  EXPECT_TRUE(Template::Parse("{year|x}/{name}").ok());
}

TEST(Template, ValuesAreSanitised) {
  Fields f = Photo();
  f.values["make"] = "../../etc";
  f.values["model"] =
      "a/b\\c\x01"
      "d";
  f.values["year"] = "..";
  EXPECT_EQ(Expand("{make}/{model}/{year}", f), ".._.._etc/a_b_c_d/_/IMG_1.JPG");
  EXPECT_EQ(SanitizeLevel(std::string(300, 'x')).size(), 200u);
  // Cut on a UTF-8 boundary: 150 two-byte characters.
  std::string e;
  for (int i = 0; i < 150; ++i) e += "\xc3\xa9";
  EXPECT_EQ(SanitizeLevel(e).size(), 200u);
}

void Write(const std::string& p, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(p).parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

Source SourceFor(const std::string& path, const std::string& year) {
  Source s;
  auto h = HashFile(path, &s.id);
  s.path = path;
  s.hash = *h;
  s.fields.values["year"] = year;
  return s;
}

TEST(Plan, CollisionsCompanionsAndIdenticalFiles) {
  test::TempDir d;
  Write(d.File("src/a/IMG_1.jpg"), "one");
  Write(d.File("src/a/IMG_1.xmp"), "sidecar");
  Write(d.File("src/a/IMG_1.CR2"), "raw");
  Write(d.File("src/b/IMG_1.jpg"), "other one");  // same name, other content
  Write(d.File("src/b/same.jpg"), "same");
  Write(d.File("dest/2020/SAME.JPG"), "same");  // identical content, other case
  Write(d.File("dest/2020/img_1.JPG"), "taken");
  std::vector<Source> in = {SourceFor(d.File("src/a/IMG_1.jpg"), "2020"),
                            SourceFor(d.File("src/b/IMG_1.jpg"), "2020"),
                            SourceFor(d.File("src/b/same.jpg"), "2020")};
  auto tmpl = Template::Parse("{year}");
  PlanOptions po;
  po.dest = d.File("dest");
  auto plan = PlanOrganize(in, *tmpl, po);
  ASSERT_TRUE(plan.ok());
  std::map<std::string, std::string> moves;
  for (const auto& op : plan->ops)
    if (op.kind == OpKind::kMove && op.state == OpState::kPending)
      moves[op.src.substr(d.path().size() + 1)] = op.dst.substr(d.path().size() + 1);
  EXPECT_EQ(moves, (std::map<std::string, std::string>{
                       {"src/a/IMG_1.jpg", "dest/2020/IMG_1_1.jpg"},
                       {"src/a/IMG_1.xmp", "dest/2020/IMG_1_1.xmp"},
                       {"src/a/IMG_1.CR2", "dest/2020/IMG_1_1.CR2"},
                       {"src/b/IMG_1.jpg", "dest/2020/IMG_1_2.jpg"},
                   }));
  EXPECT_EQ(plan->identical, 1);
  EXPECT_EQ(plan->renamed, 2);
  EXPECT_EQ(plan->companions, 2);
  EXPECT_EQ(plan->dirs, 0);
}

// Overlapping sources (the same file twice, through a folder link, or a folder and a file in it):
// each file is planned once, under the name without a link.
TEST(Plan, OverlappingSourcesPlanEachFileOnce) {
  test::TempDir d;
  Write(d.File("src/sub/a.jpg"), "a");
  Write(d.File("src/b.jpg"), "b");
  std::filesystem::create_directory_symlink(d.File("src"), d.File("alias"));
  std::vector<Source> in = {
      SourceFor(d.File("src/sub/a.jpg"), "2020"), SourceFor(d.File("src/b.jpg"), "2020"),
      SourceFor(d.File("src/sub/a.jpg"), "2020"),  // `organize src src/sub`
      SourceFor(d.File("alias/sub/a.jpg"), "2020"), SourceFor(d.File("alias/b.jpg"), "2020")};
  auto plan = PlanOrganize(in, *Template::Parse("{year}"), {d.File("dest"), OpKind::kMove, true});
  ASSERT_TRUE(plan.ok());
  std::map<std::string, std::string> moves;
  for (const auto& op : plan->ops)
    if (op.kind == OpKind::kMove) moves[op.src.substr(d.path().size() + 1)] = op.dst;
  EXPECT_EQ(moves.size(), 2u);
  EXPECT_TRUE(moves.count("src/sub/a.jpg"));
  EXPECT_TRUE(moves.count("src/b.jpg"));
  EXPECT_EQ(plan->photos, 2);
  EXPECT_EQ(plan->overlap, 3);
  // Hard links are two names: both are placed.
  Write(d.File("h/x.jpg"), "x");
  std::filesystem::create_hard_link(d.File("h/x.jpg"), d.File("h/y.jpg"));
  auto hp = PlanOrganize({SourceFor(d.File("h/x.jpg"), "1"), SourceFor(d.File("h/y.jpg"), "1")},
                         *Template::Parse("{year}"), {d.File("dest"), OpKind::kMove, true});
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->photos, 2);
}

// A destination folder that is a symbolic link is not planned into.
TEST(Plan, DestinationLinksAreRefused) {
  test::TempDir d;
  Write(d.File("src/a.jpg"), "a");
  Write(d.File("src/b.jpg"), "b");
  std::filesystem::create_directories(d.File("elsewhere"));
  std::filesystem::create_directories(d.File("dest"));
  std::filesystem::create_directory_symlink(d.File("elsewhere"), d.File("dest/2005"));
  auto plan =
      PlanOrganize({SourceFor(d.File("src/a.jpg"), "2005"), SourceFor(d.File("src/b.jpg"), "2006")},
                   *Template::Parse("{year}"), {d.File("dest"), OpKind::kMove, true});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->photos, 1);
  EXPECT_EQ(plan->refused, 1);
  for (const auto& op : plan->ops)
    if (op.src == d.File("src/a.jpg")) {
      EXPECT_EQ(op.state, OpState::kSkipped);
      EXPECT_NE(op.reason.find("symbolic link"), std::string::npos) << op.reason;
    }
}

// The safe-path module: nothing below a root is followed or left.
class Beneath : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { UseOpenat2ForTest(GetParam()); }
  void TearDown() override { UseOpenat2ForTest(true); }
};
INSTANTIATE_TEST_SUITE_P(Openat2OrWalk, Beneath, ::testing::Bool());

TEST_P(Beneath, WalksWithoutFollowingLinks) {
  if (GetParam() && !HaveOpenat2()) GTEST_SKIP() << "openat2 is not available here";
  test::TempDir d;
  std::filesystem::create_directories(d.File("root/a/b"));
  std::filesystem::create_directories(d.File("outside"));
  std::filesystem::create_directory_symlink(d.File("outside"), d.File("root/a/link"));
  Write(d.File("root/a/file"), "f");
  UniqueFd root(::open(d.File("root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(OpenDirBeneath(root.get(), "a/b", false).ok());
  EXPECT_TRUE(OpenDirBeneath(root.get(), "", false).ok());
  // Created level by level.
  auto made = OpenDirBeneath(root.get(), "a/new/deeper", true);
  ASSERT_TRUE(made.ok()) << made.status().message();
  EXPECT_TRUE(std::filesystem::is_directory(d.File("root/a/new/deeper")));
  // A link anywhere is refused with its name, never followed, never created through.
  for (const char* rel : {"a/link", "a/link/x", "a/link/x/y"}) {
    auto r = OpenDirBeneath(root.get(), rel, true, "ROOT");
    ASSERT_FALSE(r.ok()) << rel;
    EXPECT_EQ(r.status().code(), Code::kIo) << rel;
    EXPECT_NE(r.status().message().find("ROOT/a/link is a symbolic link"), std::string::npos)
        << r.status().message();
  }
  EXPECT_TRUE(std::filesystem::is_empty(d.File("outside")));
  auto notdir = OpenDirBeneath(root.get(), "a/file/x", true, "ROOT");
  ASSERT_FALSE(notdir.ok());
  EXPECT_NE(notdir.status().message().find("ROOT/a/file is not a folder"), std::string::npos)
      << notdir.status().message();
  auto missing = OpenDirBeneath(root.get(), "a/none", false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  // Escapes are refused before anything is opened.
  for (const char* rel : {"..", "a/../..", "/etc", "a//b", "./a", "a/."}) {
    auto r = OpenDirBeneath(root.get(), rel, true);
    ASSERT_FALSE(r.ok()) << rel;
    EXPECT_EQ(r.status().code(), Code::kInvalid) << rel;
  }
  // Absolute paths: no level may be a link.
  EXPECT_TRUE(OpenDirNoSymlinks(d.File("root/a/b"), false).ok());
  EXPECT_FALSE(OpenDirNoSymlinks(d.File("root/a/link"), false).ok());
  auto parent = OpenParentNoSymlinks(d.File("root/a/link/file.jpg"), true);
  ASSERT_FALSE(parent.ok());
  auto ok = OpenParentNoSymlinks(d.File("root/a/b/file.jpg"), false);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->name, "file.jpg");
  EXPECT_FALSE(OpenParentNoSymlinks("/", false).ok());
  // CanonicalPath resolves links in what exists and keeps the rest.
  EXPECT_EQ(CanonicalPath(d.File("root/a/link/not/yet")),
            CanonicalPath(d.File("outside")) + "/not/yet");
  EXPECT_EQ(CanonicalPath("/"), "/");
}

// Links planted after the plan, inside the destination and where a source folder was, are not
// followed by apply or undo: nothing lands outside, every file exists once.
TEST(Execute, PlantedLinksAreNotFollowed) {
  test::TempDir d;
  Write(d.File("src/x.jpg"), "x bytes");
  Write(d.File("src/y.jpg"), "y bytes");
  std::filesystem::create_directories(d.File("elsewhere"));
  auto cat = Catalog::Open(d.File("cat.db"));
  ASSERT_TRUE(cat.ok());
  auto plan =
      PlanOrganize({SourceFor(d.File("src/x.jpg"), "2005"), SourceFor(d.File("src/y.jpg"), "2006")},
                   *Template::Parse("{year}"), {d.File("dest"), OpKind::kMove, true});
  ASSERT_TRUE(plan.ok());
  Journal j(cat->get());
  auto run = j.CreateRun("organize", "{\"real\":{}}", plan->ops);
  ASSERT_TRUE(run.ok());
  std::filesystem::create_directories(d.File("dest"));
  std::filesystem::create_directory_symlink(d.File("elsewhere"), d.File("dest/2005"));
  auto r = ApplyRun(j, *run, false, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->done, 1);
  EXPECT_GE(r->failed, 1);
  EXPECT_TRUE(std::filesystem::is_empty(d.File("elsewhere")));
  EXPECT_TRUE(std::filesystem::exists(d.File("src/x.jpg")));
  EXPECT_TRUE(std::filesystem::exists(d.File("dest/2006/y.jpg")));
  // The source folder replaced by a link: undo does not write through it.
  std::filesystem::rename(d.File("src"), d.File("src.old"));
  std::filesystem::create_directory_symlink(d.File("elsewhere"), d.File("src"));
  auto u = UndoRun(j, *run, nullptr);
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(std::filesystem::is_empty(d.File("elsewhere")));
  EXPECT_TRUE(std::filesystem::exists(d.File("dest/2006/y.jpg")));
  EXPECT_TRUE(std::filesystem::exists(d.File("src.old/x.jpg")));
  // Put back, undo finishes.
  std::filesystem::remove(d.File("src"));
  std::filesystem::rename(d.File("src.old"), d.File("src"));
  u = UndoRun(j, *run, nullptr);
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(std::filesystem::exists(d.File("src/y.jpg")));
  EXPECT_TRUE(std::filesystem::exists(d.File("src/x.jpg")));
}

// A destination reached through a link the user named (--into LINK) works, recorded by its real
// path; runs planned before that record existed map their dest as it resolves when applied.
TEST(Execute, DestinationNamedThroughALink) {
  for (const bool legacy : {false, true}) {
    test::TempDir d;
    Write(d.File("src/x.jpg"), "x bytes");
    std::filesystem::create_directories(d.File("real-dest"));
    std::filesystem::create_directory_symlink(d.File("real-dest"), d.File("dest"));
    auto cat = Catalog::Open(d.File("cat.db"));
    ASSERT_TRUE(cat.ok());
    auto plan = PlanOrganize({SourceFor(d.File("src/x.jpg"), "2001")}, *Template::Parse("{year}"),
                             {d.File("dest"), OpKind::kMove, true});
    ASSERT_TRUE(plan.ok());
    ASSERT_EQ(plan->real.count(d.File("dest")), 1u);
    std::string args = "{\"dest\":\"" + d.File("dest") + "\"";
    if (!legacy)
      args += ",\"real\":{\"" + d.File("dest") + "\":\"" + plan->real[d.File("dest")] + "\"}";
    args += "}";
    Journal j(cat->get());
    auto run = j.CreateRun("organize", args, plan->ops);
    ASSERT_TRUE(run.ok());
    auto r = ApplyRun(j, *run, false, nullptr);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->done, 1) << (r->problems.empty() ? "" : r->problems[0].second);
    EXPECT_TRUE(std::filesystem::exists(d.File("real-dest/2001/x.jpg"))) << legacy;
    auto u = UndoRun(j, *run, nullptr);
    ASSERT_TRUE(u.ok());
    EXPECT_TRUE(std::filesystem::exists(d.File("src/x.jpg"))) << legacy;
  }
}

TEST(Execute, ApplyThenUndoRestoresEverything) {
  test::TempDir d;
  Write(d.File("src/x.jpg"), "x bytes");
  Write(d.File("src/y.jpg"), "y bytes");
  auto cat = Catalog::Open(d.File("cat.db"));
  ASSERT_TRUE(cat.ok());
  std::vector<Source> in = {SourceFor(d.File("src/x.jpg"), "2001"),
                            SourceFor(d.File("src/y.jpg"), "2002")};
  auto plan = PlanOrganize(in, *Template::Parse("{year}"), {d.File("dest"), OpKind::kMove, true});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->dirs, 3);  // dest, dest/2001, dest/2002
  Journal j(cat->get());
  auto run = j.CreateRun("organize", "{}", plan->ops);
  ASSERT_TRUE(run.ok());
  auto r = ApplyRun(j, *run, false, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->done, 2);
  EXPECT_TRUE(std::filesystem::exists(d.File("dest/2001/x.jpg")));
  EXPECT_FALSE(std::filesystem::exists(d.File("src/x.jpg")));
  auto runs = j.Runs();
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].state, "applied");
  EXPECT_EQ((*runs)[0].done, 2);
  auto u = UndoRun(j, *run, nullptr);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->done, 2);
  EXPECT_TRUE(std::filesystem::exists(d.File("src/x.jpg")));
  EXPECT_FALSE(std::filesystem::exists(d.File("dest")));
  EXPECT_EQ((*j.Runs())[0].state, "undone");
}

// A day out and a dinner: time gaps split posts, a burst keeps its sharpest frame, a blurred and
// a black frame are dropped, social scores order the post and the cap leaves the rest over.
TEST(Posts, GapsPlacesDuplicatesBlurAndScores) {
  std::vector<PostPhoto> ph;
  auto add = [&](double t, uint64_t phash, double sharp, std::optional<double> social = {}) {
    PostPhoto p;
    p.asset = int64_t(ph.size()) + 1;
    p.path = "/p/" + std::to_string(ph.size()) + ".jpg";
    p.seconds = t;
    p.captured = "2024-05-01T10:00:00";
    p.phash = phash;
    p.has_phash = true;
    p.sharpness = sharp;
    p.luma = 120;
    p.social = social;
    ph.push_back(std::move(p));
  };
  add(0, 0x0000000000000000ull, 300);       // 0: burst, less sharp
  add(2, 0x0000000000000003ull, 400);       // 1: burst, sharpest: kept
  add(60, 0xFFFF0000FFFF0000ull, 280, 25);  // 2: best social score
  add(120, 0x00FF00FF00FF00FFull, 30);      // 3: blurred against a median of ~300
  add(180, 0x0F0F0F0F0F0F0F0Full, 310);     // 4
  add(240, 0x3333333333333333ull, 300);     // 5: black
  ph[5].luma = 3;
  add(9 * 3600, 0x5555555555555555ull, 300);       // 6: dinner, 9 h later
  add(9 * 3600 + 60, 0xAAAAAAAAAAAAAAAAull, 500);  // 7
  PostOptions opt;
  opt.max_per_post = 2;
  auto posts = GroupPosts(ph, opt);
  ASSERT_EQ(posts.size(), 2u);
  const Post& day = posts[0];
  ASSERT_EQ(day.chosen.size(), 2u);
  EXPECT_EQ(day.chosen[0].photo, 2u);  // social score first
  EXPECT_EQ(day.chosen[1].photo, 1u);  // then sharpness
  ASSERT_EQ(day.leftover.size(), 1u);
  EXPECT_EQ(day.leftover[0].photo, 4u);
  std::map<size_t, std::string> dropped;
  for (const auto& m : day.dropped) dropped[m.photo] = m.reason;
  ASSERT_EQ(dropped.size(), 3u);
  EXPECT_NE(dropped[0].find("near-duplicate of /p/1.jpg"), std::string::npos) << dropped[0];
  EXPECT_NE(dropped[3].find("blurred"), std::string::npos) << dropped[3];
  EXPECT_NE(dropped[5].find("nearly black"), std::string::npos) << dropped[5];
  ASSERT_EQ(posts[1].chosen.size(), 2u);
  EXPECT_EQ(posts[1].chosen[0].photo, 7u);
}

TEST(Posts, PlaceAndSceneChangesSplitAndUndatedPhotosGoLast) {
  std::vector<PostPhoto> ph(5);
  for (size_t i = 0; i < ph.size(); ++i) {
    ph[i].asset = int64_t(i) + 1;
    ph[i].path = "/p/" + std::to_string(i) + ".jpg";
    ph[i].phash = 0x1111111111111111ull * (i + 1);
    ph[i].has_phash = true;
  }
  ph[0].seconds = 0, ph[0].lat = 48.85, ph[0].lon = 2.35;      // Paris
  ph[1].seconds = 600, ph[1].lat = 48.86, ph[1].lon = 2.34;    // Paris, 10 minutes later
  ph[2].seconds = 1200, ph[2].lat = 51.50, ph[2].lon = -0.12;  // London: a new post
  ph[3].seconds = 1300;                                        // no GPS: stays with London
  // 4: no capture time
  auto posts = GroupPosts(ph, PostOptions{});
  ASSERT_EQ(posts.size(), 3u);
  EXPECT_EQ(posts[0].chosen.size(), 2u);
  EXPECT_EQ(posts[1].chosen.size(), 2u);
  ASSERT_EQ(posts[2].chosen.size(), 1u);
  EXPECT_EQ(posts[2].chosen[0].photo, 4u);
  EXPECT_NEAR(HaversineKm(48.85, 2.35, 51.50, -0.12), 343, 3);
  // Embeddings: a different scene after a pause starts a post; a near one does not.
  std::vector<PostPhoto> e(3);
  for (size_t i = 0; i < e.size(); ++i) {
    e[i].asset = int64_t(i) + 1;
    e[i].path = "/e/" + std::to_string(i);
    e[i].seconds = double(i) * 3600;  // an hour apart: within the 4 h gap
  }
  e[0].embedding = {1, 0, 0};
  e[1].embedding = {0.96f, 0.28f, 0};
  e[2].embedding = {0, 0, 1};
  posts = GroupPosts(e, PostOptions{});
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[0].chosen.size(), 2u);
  // A post whose first photo has no embedding still splits on the scene of the later ones.
  std::vector<PostPhoto> late = e;
  late.insert(late.begin(), PostPhoto{});
  late[0].asset = 9, late[0].path = "/e/none", late[0].seconds = -60;
  posts = GroupPosts(late, PostOptions{});
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[0].chosen.size(), 3u);
}

TEST(Posts, UndatedPhotosArePostedByFolderAndIdenticalBurstsCollapse) {
  std::vector<PostPhoto> ph;
  for (const char* path : {"/t/b/2.jpg", "/t/a/1.jpg", "/t/b/sub/3.jpg", "/t/b/1.jpg"}) {
    PostPhoto p;
    p.asset = int64_t(ph.size()) + 1;
    p.path = path;
    ph.push_back(p);
  }
  auto posts = GroupPosts(ph, PostOptions{});
  ASSERT_EQ(posts.size(), 3u);  // /t/a, /t/b (both of its photos), /t/b/sub
  EXPECT_EQ(posts[0].chosen.size(), 1u);
  EXPECT_EQ(posts[1].chosen.size(), 2u);
  EXPECT_EQ(posts[2].chosen.size(), 1u);
  EXPECT_EQ(ph[posts[2].chosen[0].photo].path, "/t/b/sub/3.jpg");
  // 20,000 identical frames in one minute: one kept, the rest near-duplicates of it.
  std::vector<PostPhoto> burst(20000);
  for (size_t i = 0; i < burst.size(); ++i) {
    burst[i].asset = int64_t(i) + 1;
    burst[i].path = "/b/" + std::to_string(i);
    burst[i].seconds = double(i) / 1000;
    burst[i].phash = 0xF0F0F0F0F0F0F0F0ull;
    burst[i].has_phash = true;
    burst[i].sharpness = 100 + double(i % 7);
  }
  posts = GroupPosts(burst, PostOptions{});
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].chosen.size(), 1u);
  EXPECT_EQ(posts[0].dropped.size(), 19999u);
}

}  // namespace
}  // namespace lumen::organize
