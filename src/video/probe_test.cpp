#include "lumen/video/probe.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "lumen/io/hash.h"
#include "lumen/video/analyze.h"
#include "lumen/video/poster.h"
#include "test_support.h"

namespace lumen::video {
namespace {

// Clips are made by the ffmpeg command-line tool (a test generator only; lumen links the
// libraries). testsrc2 is a moving test pattern, sine a tone.
void Make(const std::string& args, const std::string& out) {
  const std::string cmd = "ffmpeg -nostdin -loglevel error -y " + args + " '" + out + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// Writes a track matrix turning the (first) track 90 degrees clockwise into an MP4/MOV's tkhd box:
// what a phone writes for a portrait clip (ffmpeg 5.1's tool cannot set one; ffprobe calls it
// "rotation -90").
void RotateClockwise(const std::string& path) {
  auto bytes = test::ReadFile(path);
  const std::string all(bytes.begin(), bytes.end());
  const size_t at = all.find("tkhd");
  ASSERT_NE(at, std::string::npos);
  size_t m = at + (bytes[at + 4] == 0 ? 44 : 56);  // the matrix, after the version's fields
  const uint32_t matrix[9] = {0, 0x10000, 0, 0xFFFF0000u, 0, 0, 0, 0, 0x40000000};
  for (uint32_t v : matrix)
    for (int shift = 24; shift >= 0; shift -= 8) bytes[m++] = uint8_t(v >> shift);
  test::WriteFile(path, bytes);
}

// A path that does not exist.
std::string MissingFile(const test::TempDir& dir) {
  return dir.File("missing.mp4");
}

Hash128 HashOf(const std::string& path) {
  const auto bytes = test::ReadFile(path);
  return HashBytes(bytes.data(), bytes.size());
}

TEST(Probe, StreamsTracksAndTheContentHashWhileReading) {
  test::TempDir dir;
  const std::string front = dir.File("front.mp4"), back = dir.File("back.mp4");
  const std::string clip =
      "-f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -f lavfi -i "
      "sine=frequency=440:duration=2 "
      "-c:v libx264 -pix_fmt yuv420p -c:a aac -ac 2 -metadata:s:a:0 language=eng ";
  Make(clip + "-movflags +faststart", front);
  Make(clip, back);  // moov at the end, as cameras write it
  for (const std::string& path : {front, back}) {
    SCOPED_TRACE(path);
    ProbeOptions o;
    o.hash = true;
    auto p = Probe(path, o);
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_NE(p->container.find("mp4"), std::string::npos) << p->container;
    EXPECT_NEAR(p->duration, 2.0, 0.1);
    ASSERT_EQ(p->video.size(), 1u);
    const VideoTrack& v = p->video[0];
    EXPECT_EQ(v.codec, "h264");
    EXPECT_EQ(v.width, 320);
    EXPECT_EQ(v.height, 240);
    EXPECT_NEAR(v.fps, 25.0, 0.01);
    EXPECT_FALSE(v.variable_rate);
    EXPECT_EQ(v.pix_fmt, "yuv420p");
    EXPECT_EQ(v.bit_depth, 8);
    EXPECT_EQ(v.rotation, 0);
    EXPECT_EQ(v.frames, 50);
    EXPECT_FALSE(v.hdr);
    ASSERT_EQ(p->audio.size(), 1u);
    EXPECT_EQ(p->audio[0].codec, "aac");
    EXPECT_EQ(p->audio[0].channels, 2);
    EXPECT_EQ(p->audio[0].language, "eng");
    // The hash of the bytes as read equals the file's; every byte read once, except what
    // libavformat read ahead of the hash (the moov at the end).
    ASSERT_TRUE(p->content_hash.has_value());
    EXPECT_EQ(*p->content_hash, HashOf(path));
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(p->file_bytes, uint64_t(st.st_size));
    EXPECT_GE(p->read_bytes, p->file_bytes + p->second_read_bytes);
    if (path == front)
      EXPECT_EQ(p->second_read_bytes, 0u);
    else
      EXPECT_GT(p->second_read_bytes, 0u);
    // Without the hash, the probe reads only the start (and the moov).
    auto light = Probe(path);
    ASSERT_TRUE(light.ok());
    EXPECT_FALSE(light->content_hash.has_value());
  }
}

TEST(Probe, RotationTagsHdrAndInterlacing) {
  test::TempDir dir;
  // A phone-style portrait clip: stored landscape, a track matrix turning it 90 degrees
  // clockwise; QuickTime's creation time, make, model and ISO 6709 location.
  const std::string mov = dir.File("phone.mov");
  Make(
      "-f lavfi -i testsrc2=size=320x180:rate=30:duration=1 -c:v libx264 -pix_fmt yuv420p "
      "-metadata creation_time=2024-05-01T10:20:30Z "
      "-metadata make=Apple -metadata model='iPhone 15' -metadata location=+48.8584+002.2945/",
      mov);
  RotateClockwise(mov);
  auto p = Probe(mov);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->video[0].rotation, 90);
  EXPECT_EQ(p->creation_time.rfind("2024-05-01T10:20:30", 0), 0u) << p->creation_time;
  EXPECT_EQ(p->make, "Apple");
  EXPECT_EQ(p->model, "iPhone 15");
  ASSERT_TRUE(p->latitude.has_value());
  EXPECT_NEAR(*p->latitude, 48.8584, 1e-6);
  EXPECT_NEAR(*p->longitude, 2.2945, 1e-6);

  // 10-bit HEVC with a PQ transfer: HDR.
  const std::string hdr = dir.File("hdr.mkv");
  Make(
      "-f lavfi -i testsrc2=size=256x144:rate=24:duration=1 -c:v libx265 -x265-params "
      "log-level=none "
      "-pix_fmt yuv420p10le -color_trc smpte2084 -color_primaries bt2020 -colorspace bt2020nc",
      hdr);
  p = Probe(hdr);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->video[0].codec, "hevc");
  EXPECT_EQ(p->video[0].bit_depth, 10);
  EXPECT_EQ(p->video[0].color_transfer, "smpte2084");
  EXPECT_EQ(p->video[0].color_primaries, "bt2020");
  EXPECT_TRUE(p->video[0].hdr);

  // Interlaced MPEG-2, top field first, 4:3 on 720x576 (non-square samples).
  const std::string tape = dir.File("tape.mpg");
  Make(
      "-f lavfi -i testsrc2=size=720x576:rate=25:duration=1 -vf setfield=tff -c:v mpeg2video "
      "-flags +ilme+ildct -top 1 -aspect 4:3",
      tape);
  p = Probe(tape);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->video[0].field_order, "tt");
  EXPECT_EQ((p->video[0].dar_num * 3), (p->video[0].dar_den * 4));
  EXPECT_NE(p->video[0].sar_num, p->video[0].sar_den);
}

TEST(Probe, VariableFrameRateIsNoticed) {
  test::TempDir dir;
  // 25 frames a second for one second, then every third frame: a phone's variable rate.
  const std::string vfr = dir.File("vfr.mp4");
  Make(
      "-f lavfi -i testsrc2=size=160x120:rate=25:duration=3 "
      "-vf \"select='lt(n\\,25)+not(mod(n\\,3))'\" -fps_mode vfr -c:v libx264",
      vfr);
  auto p = Probe(vfr);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_TRUE(p->video[0].variable_rate) << p->video[0].fps << " vs " << p->video[0].nominal_fps;
}

TEST(Probe, BadInputFailsWithReasons) {
  test::TempDir dir;
  const std::string empty = dir.File("empty.mp4");
  test::WriteFile(empty, std::string());
  auto p = Probe(empty);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kCorrupt);
  EXPECT_NE(p.status().message().find("empty.mp4"), std::string::npos);

  const std::string noise = dir.File("noise.mkv");
  std::string bytes(100000, '\0');
  uint32_t x = 12345;
  for (char& c : bytes) c = char((x = x * 1103515245u + 12345u) >> 24);
  test::WriteFile(noise, bytes);
  p = Probe(noise);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("noise.mkv"), std::string::npos) << p.status().message();

  const std::string text = dir.File("notes.mov");
  test::WriteFile(text, std::string("just some words, not a movie\n"));
  p = Probe(text);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("notes.mov"), std::string::npos);

  // An MP4 cut before its moov: nothing to index.
  const std::string whole = dir.File("whole.mp4"), cut = dir.File("cut.mp4");
  Make("-f lavfi -i testsrc2=size=160x120:rate=25:duration=2 -c:v libx264", whole);
  auto all = test::ReadFile(whole);
  all.resize(all.size() / 2);
  test::WriteFile(cut, all);
  p = Probe(cut);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("cut.mp4"), std::string::npos);
  // The poster reads through the same checks: each refused with the file's name.
  for (const std::string& bad : {empty, noise, text, cut, MissingFile(dir)}) {
    auto poster = PosterFrame(bad);
    ASSERT_FALSE(poster.ok()) << bad;
    EXPECT_NE(poster.status().message().find(bad.substr(bad.rfind('/') + 1)), std::string::npos)
        << poster.status().message();
  }

  // Audio only is not a video; a FIFO is never opened for reading.
  const std::string audio = dir.File("tone.m4a");
  Make("-f lavfi -i sine=duration=1 -c:a aac", audio);
  p = Probe(audio);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kUnsupported);
  const std::string fifo = dir.File("pipe.mp4");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  p = Probe(fifo);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kUnsupported);

  // The file size limit, before any read.
  ProbeOptions small;
  small.max_file_bytes = 1000;
  p = Probe(whole, small);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kTooLarge);
}

double MeanLuma(const Image& rgb) {
  double sum = 0;
  for (size_t i = 0; i + 2 < rgb.pixels.size(); i += 3)
    sum += 0.299 * rgb.pixels[i] + 0.587 * rgb.pixels[i + 1] + 0.114 * rgb.pixels[i + 2];
  return sum / (double(rgb.pixels.size()) / 3);
}

TEST(Poster, SkipsAFadeFromBlackAndTakesAKeyFrameWithContent) {
  test::TempDir dir;
  // One second of black (a fade-in's start, the classic black thumbnail), then the pattern; a key
  // frame every 10 frames.
  const std::string clip = dir.File("intro.mp4");
  Make(
      "-f lavfi -i color=black:size=640x360:rate=25:duration=1 "
      "-f lavfi -i testsrc2=size=640x360:rate=25:duration=2 "
      "-filter_complex '[0][1]concat=n=2:v=1' -g 10 -c:v libx264 -pix_fmt yuv420p",
      clip);
  auto p = PosterFrame(clip);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_TRUE(p->content);
  EXPECT_GE(p->time, 1.0);  // not one of the black key frames
  EXPECT_GT(p->candidates, 3);
  EXPECT_EQ(p->rgb.width, 512);  // the long edge at most max_side
  EXPECT_EQ(p->rgb.height, 288);
  EXPECT_GT(MeanLuma(p->rgb), 40);
}

TEST(Poster, ShortClipsRotationAndAllBlack) {
  test::TempDir dir;
  // Under a second, one key frame; rotated like a portrait phone clip: the poster is upright.
  const std::string clip = dir.File("live.mov");
  Make("-f lavfi -i testsrc2=size=320x180:rate=30:duration=0.4 -c:v libx264 -pix_fmt yuv420p",
       clip);
  RotateClockwise(clip);
  auto p = PosterFrame(clip);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->candidates, 1);
  EXPECT_EQ(p->rgb.width, 180);
  EXPECT_EQ(p->rgb.height, 320);
  // HEVC too (phones' live photos).
  const std::string hevc = dir.File("live-hevc.mp4");
  Make(
      "-f lavfi -i testsrc2=size=320x240:rate=30:duration=0.5 -c:v libx265 "
      "-x265-params log-level=none -tag:v hvc1",
      hevc);
  p = PosterFrame(hevc);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_TRUE(p->content);
  // Nothing but black: the best there is, said to be without content.
  const std::string black = dir.File("black.mkv");
  Make("-f lavfi -i color=black:size=160x120:rate=25:duration=2 -g 10 -c:v libx264", black);
  p = PosterFrame(black);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_FALSE(p->content);
  EXPECT_LT(MeanLuma(p->rgb), 20);
}

}  // namespace
}  // namespace lumen::video

namespace lumen::video {
namespace {

// Two sources joined by hard cuts at known frames: the cuts are found on those frames, the key
// frames lie inside their shots, the hash is the file's, and every decoded frame is counted.
TEST(Analyze, CutsKeyFramesPosterAndHash) {
  test::TempDir dir;
  const std::string clip = dir.File("cuts.mp4");
  Make(
      "-f lavfi -i testsrc2=size=320x240:rate=25:duration=2 "
      "-f lavfi -i mandelbrot=size=320x240:rate=25 "
      "-f lavfi -i smptebars=size=320x240:rate=25:duration=1.2 "
      "-filter_complex '[1]trim=duration=1.6,setpts=PTS-STARTPTS[m];"
      "[0][m][2]concat=n=3:v=1' -g 250 -c:v libx264 -pix_fmt yuv420p",
      clip);
  auto a = Analyze(clip);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_EQ(a->shots.size(), 3u);
  EXPECT_DOUBLE_EQ(a->shots[0].start, 0);
  EXPECT_NEAR(a->shots[1].start, 2.0, 1e-6);
  EXPECT_NEAR(a->shots[2].start, 3.6, 1e-6);
  EXPECT_NEAR(a->shots[2].end, 4.8, 1e-6);
  EXPECT_EQ(a->frames, 120);
  EXPECT_EQ(a->damaged, 0);
  ASSERT_TRUE(a->probe.content_hash.has_value());
  EXPECT_EQ(*a->probe.content_hash, HashOf(clip));
  ASSERT_EQ(a->key_frames.size(), 3u);
  for (const KeyFrame& k : a->key_frames) {
    EXPECT_GE(k.time, a->shots[size_t(k.shot)].start);
    EXPECT_LT(k.time, a->shots[size_t(k.shot)].end);
    EXPECT_EQ(k.rgb.width, 320);
  }
  EXPECT_TRUE(a->poster_content);
  EXPECT_EQ(a->poster_time, 0);         // the only key frame (-g 250) in the clip
  EXPECT_EQ(a->signature.size(), 10u);  // one every 0.5 s
}

// A long shot gives a key frame per part; the count is capped, spread over the clip.
TEST(Analyze, LongShotsAreSampledAndTheKeyFramesCapped) {
  test::TempDir dir;
  const std::string clip = dir.File("long.mkv");
  Make("-f lavfi -i testsrc2=size=160x120:rate=10:duration=40 -c:v libx264 -pix_fmt yuv420p", clip);
  AnalyzeOptions o;
  o.sample_seconds = 4;
  auto a = Analyze(clip, o);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->shots.size(), 1u);
  EXPECT_EQ(a->key_frames.size(), 10u);
  o.max_key_frames = 4;
  a = Analyze(clip, o);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_EQ(a->key_frames.size(), 4u);
  EXPECT_LT(a->key_frames.front().time, 12);
  EXPECT_GT(a->key_frames.back().time, 28);
}

// A portrait phone clip (a 90 degree display matrix): the poster and key frames come out upright,
// and a sub-second clip with one key frame still has its shot, key frame and poster.
TEST(Analyze, RotatedShortClipIsUpright) {
  test::TempDir dir;
  const std::string clip = dir.File("portrait.mov");
  Make("-f lavfi -i testsrc2=size=320x180:rate=30:duration=0.5 -c:v libx264 -pix_fmt yuv420p",
       clip);
  RotateClockwise(clip);
  auto a = Analyze(clip);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(MainTrack(a->probe).rotation, 90);
  EXPECT_EQ(a->poster.width, 180);
  EXPECT_EQ(a->poster.height, 320);
  ASSERT_EQ(a->shots.size(), 1u);
  ASSERT_EQ(a->key_frames.size(), 1u);
  EXPECT_EQ(a->key_frames[0].rgb.width, 180);
  EXPECT_EQ(a->key_frames[0].rgb.height, 320);
}

// Limits: frames above the pixel limit are refused before decoding; the watchdog's limit grows
// with the duration; a file that changes while it is read is reported, not hashed as it was.
TEST(Analyze, LimitsAndWatchdog) {
  test::TempDir dir;
  const std::string clip = dir.File("clip.mp4");
  Make("-f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -c:v libx264 -pix_fmt yuv420p", clip);
  AnalyzeOptions o;
  o.max_pixels = 320 * 200;
  auto a = Analyze(clip, o);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), Code::kTooLarge);
  EXPECT_NE(a.status().message().find("320x240"), std::string::npos) << a.status().message();
  o = AnalyzeOptions{};
  o.base_seconds = 10;
  o.seconds_per_second = 2;
  a = Analyze(clip, o);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_NEAR(a->time_limit, 14, 0.2);
  o.base_seconds = 1e-9;  // no time at all: stopped by the watchdog with the reason
  o.seconds_per_second = 0;
  a = Analyze(clip, o);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), Code::kTooLarge);
  EXPECT_NE(a.status().message().find("time limit"), std::string::npos) << a.status().message();
  // Not a video; empty; a FIFO.
  test::WriteFile(dir.File("text.mov"), std::string("just some words, not a movie\n"));
  EXPECT_EQ(Analyze(dir.File("text.mov")).status().code(), Code::kUnsupported);
  test::WriteFile(dir.File("empty.mp4"), std::string());
  EXPECT_EQ(Analyze(dir.File("empty.mp4")).status().code(), Code::kCorrupt);
  ASSERT_EQ(::mkfifo(dir.File("fifo.mp4").c_str(), 0600), 0);
  EXPECT_EQ(Analyze(dir.File("fifo.mp4")).status().code(), Code::kUnsupported);
}

}  // namespace
}  // namespace lumen::video

namespace lumen::video {
namespace {

// HDR: a PQ (SMPTE ST 2084) clip's frames are tone-mapped to SDR sRGB, not shown as their code
// values: mid-grey code values are ~92 cd/m2 in PQ, brighter than SDR mid-grey once mapped.
TEST(Analyze, HdrFramesAreToneMapped) {
  test::TempDir dir;
  const std::string sdr = dir.File("sdr.mkv"), pq = dir.File("pq.mkv");
  const std::string src =
      "-f lavfi -i color=0x808080:size=320x180:rate=25:duration=1 -c:v libx265 "
      "-x265-params log-level=none -pix_fmt yuv420p10le ";
  Make(src + "-color_primaries bt709 -color_trc bt709 -colorspace bt709", sdr);
  Make(src + "-color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc", pq);
  auto probe = Probe(pq);
  ASSERT_TRUE(probe.ok()) << probe.status().message();
  EXPECT_TRUE(probe->video[0].hdr);
  auto a = Analyze(sdr), b = Analyze(pq);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  const double plain = MeanLuma(a->poster), mapped = MeanLuma(b->poster);
  EXPECT_NEAR(plain, 128, 6);
  EXPECT_GT(mapped, plain + 15) << plain << " " << mapped;
  EXPECT_LT(mapped, 200);
}

}  // namespace
}  // namespace lumen::video

namespace lumen::video {
namespace {

// Audio tracks and subtitles with their languages, as a camcorder's or a rip's MKV has them.
TEST(Probe, AudioTracksAndSubtitlesWithLanguages) {
  test::TempDir dir;
  test::WriteFile(dir.File("subs.srt"),
                  std::string("1\n00:00:00,000 --> 00:00:01,000\nBonjour\n\n"));
  const std::string clip = dir.File("rip.mkv");
  Make(
      "-f lavfi -i testsrc2=size=160x120:rate=25:duration=1 -f lavfi -i sine=duration=1 "
      "-f lavfi -i sine=frequency=880:duration=1 -i '" +
          dir.File("subs.srt") +
          "' -map 0 -map 1 -map 2 -map 3 -c:v libx264 -c:a aac -ac:a:1 1 -c:s srt "
          "-metadata:s:a:0 language=eng -metadata:s:a:1 language=deu "
          "-metadata:s:s:0 language=fra",
      clip);
  auto p = Probe(clip);
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_EQ(p->audio.size(), 2u);
  EXPECT_EQ(p->audio[0].language, "eng");
  EXPECT_EQ(p->audio[1].language, "deu");
  EXPECT_EQ(p->audio[1].channels, 1);
  ASSERT_EQ(p->subtitles.size(), 1u);
  EXPECT_EQ(p->subtitles[0].codec, "subrip");
  EXPECT_EQ(p->subtitles[0].language, "fra");
  const auto j = ProbeJson(*p);
  EXPECT_EQ(j["subtitles"][0]["language"], "fra");
  EXPECT_EQ(j["audio"].size(), 2u);
}

}  // namespace
}  // namespace lumen::video

namespace lumen::video {
namespace {

// Timestamps that start again mid-file (two transport streams joined byte for byte, as cameras
// split and tools concatenate them): the second part follows the first, with its own shots and
// samples, instead of collapsing onto one instant.
TEST(Analyze, TimestampsThatJumpBackContinue) {
  test::TempDir dir;
  Make("-f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -c:v libx264 -pix_fmt yuv420p",
       dir.File("a.ts"));
  Make("-f lavfi -i smptebars=size=320x240:rate=25:duration=2 -c:v libx264 -pix_fmt yuv420p",
       dir.File("b.ts"));
  auto a = test::ReadFile(dir.File("a.ts")), b = test::ReadFile(dir.File("b.ts"));
  a.insert(a.end(), b.begin(), b.end());
  test::WriteFile(dir.File("joined.ts"), a);
  auto r = Analyze(dir.File("joined.ts"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->frames, 100);
  ASSERT_EQ(r->shots.size(), 2u);
  EXPECT_NEAR(r->shots[1].start, 2.0, 0.05);
  EXPECT_NEAR(r->shots[1].end, 4.0, 0.1);
  EXPECT_GE(r->signature.size(), 7u);
  EXPECT_EQ(r->key_frames.size(), 2u);
}

}  // namespace
}  // namespace lumen::video
