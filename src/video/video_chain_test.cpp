// The video chain language and the filter graphs it becomes (video/transcode.h): no FFmpeg call,
// the text the module gives libavfilter.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lumen/video/transcode.h"

namespace lumen::video {
namespace {

VideoGraph Graph(const std::string& chain, const SourceFacts& facts,
                 std::vector<std::string>* notes = nullptr) {
  auto spec = ParseVideoChain(chain);
  EXPECT_TRUE(spec.ok()) << spec.status().message();
  std::vector<std::string> sink;
  auto g = BuildVideoGraph(*spec, facts, notes ? notes : &sink);
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? *g : VideoGraph{};
}

SourceFacts Tape() {  // 480i NTSC: 720x480 with 8:9 pixels (4:3 displayed)
  SourceFacts f;
  f.width = 720, f.height = 480, f.sar_num = 8, f.sar_den = 9, f.fps = 29.97;
  f.field = FieldOrder::kBottomFirst;
  return f;
}

TEST(VideoChain, SizesAreForTheDisplayedPictureWithSquarePixels) {
  VideoGraph g = Graph("fit:1920x1080", Tape());  // never enlarged: 640x480 displayed
  EXPECT_EQ(g.filters, "scale=640:480,setsar=1");
  g = Graph("height:1080", Tape());
  EXPECT_EQ(g.filters, "scale=1440:1080,setsar=1");
  EXPECT_EQ(g.width, 1440);
  SourceFacts wide = Tape();
  wide.sar_num = 32, wide.sar_den = 27;  // 16:9 displayed
  EXPECT_EQ(Graph("height:1080", wide).width, 1920);
  g = Graph("fill:200x200", Tape());
  EXPECT_EQ(g.filters, "scale=266:200,setsar=1,crop=200:200");
  SourceFacts odd;
  odd.width = 641, odd.height = 361;
  EXPECT_EQ(Graph("h264", odd).filters, "crop=640:360:0:0");  // 4:2:0 needs even sizes
}

TEST(VideoChain, ARotatedSourceIsTurnedUprightOnlyForGeometry) {
  SourceFacts phone;
  phone.width = 640, phone.height = 360, phone.rotation = 90;
  VideoGraph g = Graph("fit:320x320", phone);
  EXPECT_TRUE(g.rotated);
  EXPECT_EQ(g.filters, "transpose=clock,scale=180:320,setsar=1");
  g = Graph("grayscale", phone);
  EXPECT_FALSE(g.rotated);  // the display matrix is kept instead
  EXPECT_EQ(g.filters, "hue=s=0");
}

TEST(VideoChain, StabiliseIsTwoPassesOverTheSameFrames) {
  const SourceFacts hd{1280, 720};
  VideoGraph g = Graph("grayscale,stabilise:8:30,fit:640x640", hd);
  // The first pass sees the frames as the second does: after what comes before it.
  EXPECT_EQ(g.detect, "hue=s=0,vidstabdetect=result=@transforms@:shakiness=8");
  EXPECT_EQ(g.filters,
            "hue=s=0,vidstabtransform=input=@transforms@:smoothing=30:crop=keep:optzoom=1,"
            "scale=640:360,setsar=1");
  EXPECT_EQ(Graph("stabilize", hd).detect, "vidstabdetect=result=@transforms@:shakiness=5");
  EXPECT_TRUE(Graph("fit:640x640", hd).detect.empty());
}

TEST(VideoChain, DeinterlacingFollowsTheFieldOrder) {
  EXPECT_EQ(Graph("deinterlace", Tape()).filters, "bwdif=mode=send_field:parity=bff:deint=all");
  EXPECT_EQ(Graph("deinterlace:yadif:single", Tape()).filters,
            "yadif=mode=send_frame:parity=bff:deint=all");
  SourceFacts unknown = Tape();
  unknown.field = FieldOrder::kUnknown;  // only the frames flagged interlaced
  EXPECT_EQ(Graph("deinterlace", unknown).filters,
            "bwdif=mode=send_field:parity=auto:deint=interlaced");
  SourceFacts progressive = Tape();
  progressive.field = FieldOrder::kProgressive;
  std::vector<std::string> notes;
  EXPECT_EQ(Graph("deinterlace,denoise", progressive, &notes).filters, "hqdn3d=4:3:6:4.5");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("progressive"), std::string::npos);
}

TEST(VideoChain, TimeOperationsReachBothGraphs) {
  auto spec = ParseVideoChain("trim:\"01:30\":2.5,speed:0.25,loudnorm:-23");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_DOUBLE_EQ(spec->trim_start, 90);
  EXPECT_DOUBLE_EQ(spec->trim_duration, 2.5);
  std::vector<std::string> notes;
  EXPECT_EQ(BuildVideoGraph(*spec, SourceFacts{64, 64}, &notes)->filters,
            "trim=start=90.000000:duration=2.500000,setpts=PTS-STARTPTS,setpts=PTS/0.25");
  // atempo takes at most a halving per instance.
  EXPECT_EQ(BuildAudioGraph(*spec, 0),
            "atrim=start=90.000000:duration=2.500000,asetpts=PTS-STARTPTS,loudnorm=I=-23:TP=-1.5:"
            "LRA=11,atempo=0.5,atempo=0.5");
  EXPECT_EQ(BuildAudioGraph(*ParseVideoChain("audio-denoise:-30,dynaudnorm:5"), 0),
            "afftdn=nf=-30,dynaudnorm=m=5");
  EXPECT_EQ(BuildAudioGraph(*VideoPreset("vhs"), 0), "afftdn=nf=-25,dynaudnorm=m=10");
  EXPECT_FALSE(ParseVideoChain("dynaudnorm:0").ok());
}

TEST(VideoChain, CodecsAndPresets) {
  auto spec = ParseVideoChain("hevc:20:slow,opus:128,10bit,faststart");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->video_codec, "libx265");
  EXPECT_EQ(spec->crf, 20);
  EXPECT_EQ(spec->speed, "slow");
  EXPECT_EQ(spec->audio_codec, "libopus");
  EXPECT_EQ(spec->audio_kbps, 128);
  EXPECT_EQ(spec->pix_fmt, "yuv420p10le");
  EXPECT_TRUE(spec->faststart);
  EXPECT_EQ(ParseVideoChain("vp9")->extension, "webm");
  auto vhs = VideoPreset("vhs");
  ASSERT_TRUE(vhs.ok());
  ASSERT_EQ(vhs->video.size(), 3u);
  EXPECT_EQ(vhs->video[0].name, "deinterlace");
  EXPECT_EQ(vhs->audio.size(), 2u);
  EXPECT_EQ(VideoPreset("remux")->video_codec, "copy");
  EXPECT_TRUE(VideoPreset("remux")->extension.empty());  // the input's container
  EXPECT_EQ(VideoPreset("tape").status().code(), Code::kNotFound);
  // A preset and a chain: the chain adds to the preset.
  auto more = ParseVideoChain("trim:0:10", *VideoPreset("web"));
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(more->video_codec, "libx264");
  EXPECT_DOUBLE_EQ(more->trim_duration, 10);
  // ... but a deinterlacer (or the same denoiser) replaces the preset's instead of running twice.
  auto tape = ParseVideoChain("deinterlace:bwdif:double,denoise:hqdn3d:1,denoise:nlmeans", *vhs);
  ASSERT_TRUE(tape.ok());
  ASSERT_EQ(tape->video.size(), 4u);
  EXPECT_EQ(tape->video[0].args, (std::vector<std::string>{"bwdif", "double"}));
  EXPECT_EQ(tape->video[1].args, (std::vector<std::string>{"hqdn3d", "1"}));
  EXPECT_EQ(tape->video[3].args, (std::vector<std::string>{"nlmeans"}));
}

TEST(VideoChain, ErrorsNameWhatAndWhere) {
  struct Case {
    const char* chain;
    const char* says;
    bool where = true;  // the message gives the position (not for what is about the whole)
  } cases[] = {
      {"fit:100", "fit needs WxH"},
      {"h264,wobble", "unknown video operation 'wobble'"},
      {"h264:60", "h264 needs a number in [0, 51]"},
      {"av1:30:fast", "av1's preset 'fast'"},
      {"speed:10", "speed needs a number in [0.25, 4]"},
      {"copy,fit:10x10", "cannot be filtered", false},
      {"audio-copy,loudnorm", "the audio is copied", false},
      {"trim:x", "trim's start"},
      {"stabilise:11", "stabilise needs a number in [1, 10]"},
      {"stabilise,stabilize", "stabilise once per chain"},
      {"deinterlace:bob", "deinterlace takes bwdif or yadif"},
  };
  for (const Case& c : cases) {
    auto spec = ParseVideoChain(c.chain);
    ASSERT_FALSE(spec.ok()) << c.chain;
    EXPECT_NE(spec.status().message().find(c.says), std::string::npos)
        << c.chain << ": " << spec.status().message();
    if (c.where) {
      EXPECT_NE(spec.status().message().find("position"), std::string::npos) << c.chain;
    }
  }
}

}  // namespace
}  // namespace lumen::video
