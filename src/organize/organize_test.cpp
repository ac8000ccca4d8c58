#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "lumen/catalog/catalog.h"
#include "lumen/catalog/journal.h"
#include "lumen/organize/execute.h"
#include "lumen/organize/plan.h"
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

}  // namespace
}  // namespace lumen::organize
