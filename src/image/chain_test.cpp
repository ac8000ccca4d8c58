#include <gtest/gtest.h>

#include "lumen/image/chain.h"
#include "lumen/image/convert.h"

namespace lumen {
namespace {

TEST(Chain, ParsesOperationsArgumentsQuotesAndTheFormat) {
  auto c = ParseChain(
      R"(fit:1600x1200,sharpen:0.5:1.2,watermark:"(c) me, 2024":24:south-east:0.4,webp:82)");
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->ops.size(), 3u);
  EXPECT_EQ(c->ops[0].name, "fit");
  EXPECT_EQ(c->ops[0].args, std::vector<std::string>{"1600x1200"});
  EXPECT_EQ(c->ops[1].args, (std::vector<std::string>{"0.5", "1.2"}));
  EXPECT_EQ(c->ops[2].args, (std::vector<std::string>{"(c) me, 2024", "24", "south-east", "0.4"}));
  EXPECT_EQ(c->ops[2].pos, 31u);
  EXPECT_EQ(c->format, "webp");
  EXPECT_EQ(c->quality, 82);
  auto q = ParseChain(R"(watermark:"say ""hi""",GRAYSCALE,jpg)");
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->ops[0].args[0], "say \"hi\"");
  EXPECT_EQ(q->ops[1].name, "grayscale");
  EXPECT_EQ(q->format, "jpeg");
  EXPECT_EQ(q->quality, 0);
  auto none = ParseChain("resize:0.5");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->format, "");
}

TEST(Chain, CanonicalFormRoundTripsAndIgnoresSpelling) {
  const char* text = R"(FIT:800x600,watermark:"a, ""b"": c":24,strip,jpg:80)";
  auto c = ParseChain(text);
  ASSERT_TRUE(c.ok()) << c.status().message();
  const std::string canon = CanonicalChain(*c);
  EXPECT_EQ(canon, R"(fit:800x600,watermark:"a, ""b"": c":24,strip,jpeg:80)");
  auto back = ParseChain(canon);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(CanonicalChain(*back), canon);
  EXPECT_EQ(back->ops[1].args[0], "a, \"b\": c");
  // Different chains never share a key.
  auto other = ParseChain("fit:800x600,watermark:a:24,strip,jpeg:81");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(CanonicalChain(*other), canon);
}

TEST(Chain, ColoursAreCheckedWhenParsedNeverThrown) {
  // issue 15: border:10:#gg0000 reached std::stoi at run time and aborted.
  for (const char* bad : {"border:10:#gg0000", "border:10:#12345", "border:10:#-10000",
                          "border:10:#+1ff00", "border:10:red", "border:10:#1234567"}) {
    auto c = ParseChain(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("border colour"), std::string::npos) << bad;
    EXPECT_NE(c.status().message().find("position 11"), std::string::npos) << c.status().message();
  }
  std::vector<double> rgb;
  ASSERT_TRUE(ParseColour("#Ff8001", &rgb));
  EXPECT_EQ(rgb, (std::vector<double>{255, 128, 1}));
  ASSERT_TRUE(ParseColour("white", &rgb));
  EXPECT_EQ(rgb, (std::vector<double>{255, 255, 255}));
  EXPECT_TRUE(ParseChain("border:10:#00ff00,border:2:black").ok());
}

TEST(Chain, RejectsBadInputWithThePosition) {
  struct Case {
    const char* chain;
    const char* why;
    size_t pos;
  };
  for (const Case& k : std::vector<Case>{
           {"fit:1600x1200,blurr:2", "unknown operation 'blurr'", 15},
           {"fit:1600", "fit needs WxH", 5},
           {"fit", "fit takes 1 argument", 1},
           {"resize:0.5,,webp", "empty operation", 12},
           {"webp:82,fit:10x10", "must be the last operation", 1},
           {"jpeg:101", "quality must be 1-100", 6},
           {"blur:-1", "sigma must be a number", 1},
           {"fit:10x10,sharpen:1:1:5", "the threshold must be a number in 0..1", 11},
           {"flip:x", "flip takes h or v", 6},
           {"watermark:\"open", "unterminated quote", 11},
           {"watermark:\"a\"b", "text after a closing quote", 14},
           {"watermark:hi:24:middle", "position must be one of", 1},
           {"fi$t:10x10", "unexpected '$'", 3},
           {"crop:1:2:3", "crop needs X:Y:W:H", 6},
       }) {
    auto c = ParseChain(k.chain);
    ASSERT_FALSE(c.ok()) << k.chain;
    EXPECT_EQ(c.status().code(), Code::kInvalid);
    EXPECT_NE(c.status().message().find(k.why), std::string::npos)
        << k.chain << ": " << c.status().message();
    EXPECT_NE(c.status().message().find("position " + std::to_string(k.pos)), std::string::npos)
        << k.chain << ": " << c.status().message();
  }
}

TEST(Chain, SvgOutputSettingsAreCheckedAndCanonical) {
  auto c = ParseChain("fit:512x512,SVG:smooth=0.5:colours=12:preset=photo:colors=16");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->format, "svg");
  // The last of a repeated setting wins; settings in one order whatever the spelling.
  EXPECT_EQ(CanonicalChain(*c), "fit:512x512,svg:preset=photo:colors=16:smooth=0.5");
  auto again = ParseChain(CanonicalChain(*c));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(CanonicalChain(*again), CanonicalChain(*c));
  // Numbers in their canonical spelling: what the converter reads is what was checked.
  auto num = ParseChain("svg:denoise=2.50:colors=1e1:speckle=.4e1:smooth=0.50");
  ASSERT_TRUE(num.ok()) << num.status().message();
  EXPECT_EQ(CanonicalChain(*num), "svg:colors=10:speckle=4:smooth=0.5:denoise=2.5");
  // The blur before tracing: by preset, or as given.
  EXPECT_EQ(SvgDenoise(num->svg), 2.5);
  EXPECT_EQ(SvgDenoise(ParseChain("svg")->svg), 1.0);
  EXPECT_EQ(SvgDenoise(ParseChain("svg:preset=logo")->svg), 0.0);
  EXPECT_EQ(SvgDenoise(ParseChain("svg:preset=photo")->svg), 0.5);
  EXPECT_EQ(SvgDenoise(ParseChain("svg:preset=logo:denoise=1")->svg), 1.0);
  EXPECT_FALSE(ParseChain("svg:denoise=9").ok());
  for (const char* bad : {"svg:colors=1", "svg:colors=x", "svg:preset=poster", "svg:round=1",
                          "svg:smooth=2", "svg,fit:10x10"}) {
    auto b = ParseChain(bad);
    EXPECT_FALSE(b.ok()) << bad;
  }
}

}  // namespace
}  // namespace lumen
