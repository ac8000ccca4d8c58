#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "lumen/dupes/dupes.h"
#include "lumen/dupes/video.h"
#include "lumen/util/blas.h"

namespace lumen::dupes {
namespace {

uint64_t Flip(uint64_t h, int bits, std::mt19937_64& rng) {
  std::set<int> at;
  while (int(at.size()) < bits) at.insert(int(rng() % 64));
  for (int b : at) h ^= 1ull << b;
  return h;
}

// The lazily loaded product (util/blas.h): OpenBLAS is found, and its answer is the sum of
// products written out, with leading dimensions wider than the rows.
TEST(Blas, MultiplyTransposedIsRowDotProducts) {
  EXPECT_TRUE(BlasLoaded());
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  const int m = 37, n = 53, k = 70, lda = 75, ldb = 71, ldc = 60;
  std::vector<float> a(size_t(m) * lda), b(size_t(n) * ldb), c(size_t(m) * ldc, 7.0f);
  for (float& x : a) x = u(rng);
  for (float& x : b) x = u(rng);
  MultiplyTransposed(m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double want = 0;
      for (int t = 0; t < k; ++t) want += double(a[size_t(i) * lda + t]) * b[size_t(j) * ldb + t];
      ASSERT_NEAR(c[size_t(i) * ldc + j], want, 1e-4) << i << "," << j;
    }
    for (int j = n; j < ldc; ++j) EXPECT_EQ(c[size_t(i) * ldc + j], 7.0f);  // past n: untouched
  }
}

// Multi-index hashing finds exactly the pairs an all-pairs comparison finds, each once.
TEST(NearPairs, EqualsAllPairsAtEveryDistance) {
  std::mt19937_64 rng(1);
  std::vector<uint64_t> h;
  for (int i = 0; i < 600; ++i) {
    uint64_t base = rng();
    h.push_back(base);
    for (int k = 0; k < int(rng() % 3); ++k) h.push_back(Flip(base, int(rng() % 14), rng));
  }
  // Some low-entropy hashes too (flat images give many equal blocks).
  for (int i = 0; i < 50; ++i) h.push_back(rng() & 0xff);
  for (int d : {0, 1, 3, 4, 6, 8, 11, 15}) {
    std::set<std::tuple<uint32_t, uint32_t, int>> want, got;
    for (uint32_t i = 0; i < h.size(); ++i)
      for (uint32_t j = i + 1; j < h.size(); ++j)
        if (int dist = std::popcount(h[i] ^ h[j]); dist <= d) want.insert({i, j, dist});
    auto pairs = NearPairs(h, d);
    for (const Pair& p : pairs) got.insert({p.a, p.b, p.distance});
    EXPECT_EQ(got.size(), pairs.size()) << "a pair reported twice at distance " << d;
    EXPECT_EQ(got, want) << "distance " << d;
  }
  EXPECT_TRUE(NearPairs({}, 6).empty());
  EXPECT_TRUE(NearPairs({42}, 6).empty());
}

TEST(NearGroups, SameComponentsAsThePairsAndEqualHashesCostNothing) {
  std::mt19937_64 rng(2);
  std::vector<uint64_t> h;
  for (int i = 0; i < 300; ++i) {
    const uint64_t base = rng();
    h.push_back(base);
    if (i % 3 == 0) h.push_back(base);                // an exact copy
    if (i % 4 == 0) h.push_back(Flip(base, 3, rng));  // a near one
  }
  // Reference: union-find over every pair within 4 bits.
  std::vector<uint32_t> want(h.size());
  std::iota(want.begin(), want.end(), 0u);
  auto find = [&](uint32_t x) {
    while (want[x] != x) x = want[x];
    return x;
  };
  for (uint32_t i = 0; i < h.size(); ++i)
    for (uint32_t j = i + 1; j < h.size(); ++j)
      if (std::popcount(h[i] ^ h[j]) <= 4) {
        const uint32_t a = find(i), b = find(j);
        want[std::max(a, b)] = std::min(a, b);
      }
  const auto got = NearGroups(h, 4);
  ASSERT_EQ(got.size(), h.size());
  for (uint32_t i = 0; i < h.size(); ++i) EXPECT_EQ(got[i], find(i)) << i;
  // 200,000 identical frames: one group, without 2e10 pairs.
  std::vector<uint64_t> same(200000, 0xFFFFFFFF00000000ull);
  same.push_back(0x0123456789ABCDEFull);
  const auto g = NearGroups(same, 6);
  EXPECT_EQ(g[199999], 0u);
  EXPECT_EQ(g[200000], 200000u);
}

Item Make(int64_t asset, uint64_t phash, int w, int h, uint64_t size, std::string format,
          std::vector<std::string> paths, std::optional<std::string> captured = {}, int exif = 0) {
  Item it;
  it.asset = asset, it.phash = phash, it.width = w, it.height = h, it.size = size;
  it.format = std::move(format), it.paths = std::move(paths), it.captured = std::move(captured);
  it.exif_fields = exif;
  return it;
}

TEST(FindGroups, TiersKeepBestAndStrategies) {
  const uint64_t base = 0x0123456789abcdefull;
  std::vector<Item> items = {
      Make(1, base, 4000, 3000, 5'000'000, "jpeg", {"/p/a.jpg", "/backup/a.jpg"}, "2020-01-01", 9),
      Make(2, base ^ 0b110, 1600, 1200, 400'000, "jpeg", {"/p/a-small.jpg"}, "2019-05-01", 3),
      Make(3, base ^ 0b1, 4000, 3000, 9'000'000, "png", {"/export/a.png"}),
      Make(4, ~base, 800, 600, 90'000, "jpeg", {"/p/other.jpg", "/p/copy/other.jpg"}),
      Make(5, 0x5555555555555555ull, 800, 600, 90'000, "jpeg", {"/p/alone.jpg"}),
  };
  auto groups = FindGroups(items, {});
  ASSERT_EQ(groups.size(), 3u);  // near, and the exact groups of a.jpg and other.jpg
  const Group& near = groups[0];
  EXPECT_EQ(near.tier, "near");
  ASSERT_EQ(near.members.size(),
            3u);  // a.jpg (once: its copy is in its exact group), a-small, a.png
  // Equal resolution: PNG beats JPEG.
  EXPECT_EQ(near.members[0].path, "/export/a.png");
  EXPECT_NE(near.keep_reason.find("better format (png)"), std::string::npos) << near.keep_reason;
  EXPECT_NE(near.keep_reason.find("highest resolution"), std::string::npos) << near.keep_reason;
  for (size_t m = 1; m < near.members.size(); ++m)
    EXPECT_NE(near.members[m].reason.find("pHash distance"), std::string::npos);
  const Group& exact = groups[1];
  EXPECT_EQ(exact.tier, "exact");
  ASSERT_EQ(exact.members.size(), 2u);
  EXPECT_EQ(exact.members[1].reason, "same content");
  EXPECT_EQ(groups[2].tier, "exact");
  // Every path is a duplicate in at most one group.
  std::map<std::string, int> dup_in;
  for (const Group& g : groups)
    for (size_t m = 1; m < g.members.size(); ++m) ++dup_in[g.members[m].path];
  for (const auto& [path, n] : dup_in) EXPECT_EQ(n, 1) << path;

  Options o;
  o.keep = Keep::kOldest;
  EXPECT_EQ(FindGroups(items, o)[0].members[0].path, "/p/a-small.jpg");
  o.keep = Keep::kSmallest;
  EXPECT_EQ(FindGroups(items, o)[0].members[0].path, "/p/a-small.jpg");
  o.keep = Keep::kLargest;
  EXPECT_EQ(FindGroups(items, o)[0].members[0].path, "/export/a.png");
  o.keep = Keep::kPathPrefix;
  o.prefix = "/backup/";
  EXPECT_EQ(FindGroups(items, o)[0].members[0].path, "/backup/a.jpg");
  o.prefix = "/p/copy/";
  EXPECT_EQ(FindGroups(items, o)[2].members[0].path, "/p/copy/other.jpg");
  // A tighter distance splits the near group: only the 1-bit PNG stays with a.jpg.
  Options tight;
  tight.max_distance = 1;
  auto g = FindGroups(items, tight);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].tier, "near");
  EXPECT_EQ(g[0].members.size(), 2u);
}

// Byte-identical copies of a photo that is itself a near duplicate of a better one: the near
// group has the photo once, and its copies still form an exact group (--tier exact, --hardlink).
TEST(FindGroups, IdenticalCopiesOfANearDuplicateStayAnExactGroup) {
  const uint64_t base = 0x0f0f0f0f12345678ull;
  std::vector<Item> items = {
      Make(1, base, 4000, 3000, 5'000'000, "jpeg", {"/p/big.jpg"}, "2020-01-01", 9),
      Make(2, base ^ 0b11, 800, 600, 90'000, "jpeg", {"/p/small.jpg", "/q/small copy.jpg"}),
  };
  auto groups = FindGroups(items, {});
  ASSERT_EQ(groups.size(), 2u);
  const Group* near = groups[0].tier == "near" ? &groups[0] : &groups[1];
  const Group* exact = groups[0].tier == "exact" ? &groups[0] : &groups[1];
  ASSERT_EQ(near->tier, "near");
  ASSERT_EQ(exact->tier, "exact");
  ASSERT_EQ(near->members.size(), 2u);
  EXPECT_EQ(near->members[0].path, "/p/big.jpg");
  EXPECT_EQ(near->members[1].path, "/p/small.jpg");
  EXPECT_NE(near->members[1].reason.find("1 identical copy"), std::string::npos)
      << near->members[1].reason;
  ASSERT_EQ(exact->members.size(), 2u);
  EXPECT_EQ(exact->members[0].path, "/p/small.jpg");
  EXPECT_EQ(exact->members[1].path, "/q/small copy.jpg");
  EXPECT_EQ(exact->members[0].item, exact->members[1].item);
}

TEST(FindGroups, BurstsAreCloseInTimeAndAlike) {
  EXPECT_DOUBLE_EQ(*CaptureSeconds("2021-03-01T00:00:00") - *CaptureSeconds("2021-02-28T23:59:59"),
                   1.0);
  EXPECT_DOUBLE_EQ(
      *CaptureSeconds("2024-01-01T00:00:00.5+02:00") - *CaptureSeconds("2023-12-31T23:59:59.25"),
      1.25);
  EXPECT_FALSE(CaptureSeconds("yesterday"));
  EXPECT_FALSE(CaptureSeconds("2021-13-01T00:00:00"));
  const uint64_t base = 0xf0f0f0f0f0f0f0f0ull;
  const uint64_t ten = 0x3ffull;  // 10 bits: too far for "near", close enough for a burst
  std::vector<Item> items = {
      Make(1, base, 4000, 3000, 5'000'000, "jpeg", {"/p/1.jpg"}, "2022-06-01T12:00:00"),
      Make(2, base ^ ten, 4000, 3000, 5'100'000, "jpeg", {"/p/2.jpg"}, "2022-06-01T12:00:01.5", 9),
      Make(3, base ^ (ten << 20), 4000, 3000, 5'000'000, "jpeg", {"/p/3.jpg"},
           "2022-06-01T12:00:30"),  // alike but 30 s later: not a burst
      Make(4, ~base, 4000, 3000, 5'000'000, "jpeg", {"/p/4.jpg"}, "2022-06-01T12:00:01"),
  };  // 4: same moment, another picture
  auto groups = FindGroups(items, {});
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].tier, "burst");
  ASSERT_EQ(groups[0].members.size(), 2u);
  EXPECT_EQ(groups[0].members[0].path, "/p/2.jpg");  // more EXIF
  EXPECT_NE(groups[0].members[1].reason.find("1.5 s apart"), std::string::npos)
      << groups[0].members[1].reason;
  Options off;
  off.burst_seconds = 0;
  EXPECT_TRUE(FindGroups(items, off).empty());
}

// An exact group keeps the path most likely the original: oldest, then not named like a copy.
TEST(FindGroups, ExactKeepsTheOriginalPath) {
  Item it =
      Make(1, 42, 100, 100, 1000, "jpeg", {"/a/IMG_0001 copy.jpg", "/b/IMG_0001.jpg", "/c/x.jpg"});
  it.mtimes = {5, 5, 9};
  auto g = FindGroups({it}, {});
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].members[0].path, "/b/IMG_0001.jpg");
  EXPECT_NE(g[0].keep_reason.find("look like copies"), std::string::npos) << g[0].keep_reason;
  it.mtimes = {5, 7, 3};
  g = FindGroups({it}, {});
  EXPECT_EQ(g[0].members[0].path, "/c/x.jpg");
  EXPECT_NE(g[0].keep_reason.find("oldest"), std::string::npos) << g[0].keep_reason;
  for (const char* copy : {"/p/IMG_0001 (2).jpg", "/p/IMG_0001-1.jpg", "/p/Kopie von IMG_0001.JPG",
                           "/p/IMG_0001_2.jpg"}) {
    Item c = Make(1, 42, 100, 100, 1000, "jpeg", {copy, "/p/IMG_0001.jpg"});
    EXPECT_EQ(FindGroups({c}, {})[0].members[0].path, "/p/IMG_0001.jpg") << copy;
  }
  // A short numbered name is not taken for a copy.
  Item shortname = Make(1, 42, 100, 100, 1000, "jpeg", {"/p/a_1.jpg", "/p/b.jpg"});
  EXPECT_EQ(FindGroups({shortname}, {})[0].members[0].path, "/p/a_1.jpg");
  Item seq = Make(1, 42, 100, 100, 1000, "jpeg", {"/p/IMG_0001.jpg", "/p/IMG_0002.jpg"});
  EXPECT_EQ(FindGroups({seq}, {})[0].members[0].path, "/p/IMG_0001.jpg");
}

// SimilarPairs (blocked sgemm) equals a plain all-pairs dot product, across block edges.
TEST(SimilarPairs, EqualsAllPairs) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> g;
  const int dim = 32;
  const size_t n = 2100;  // three blocks of 1024
  std::vector<float> v(n * dim);
  for (size_t i = 0; i < n; ++i) {
    float norm = 0;
    for (int d = 0; d < dim; ++d) {
      // Every 10th vector is a noisy copy of the previous one.
      v[i * dim + d] = (i % 10 == 1) ? v[(i - 1) * dim + d] + 0.05f * g(rng) : g(rng);
      norm += v[i * dim + d] * v[i * dim + d];
    }
    for (int d = 0; d < dim; ++d) v[i * dim + d] /= std::sqrt(norm);
  }
  std::set<std::pair<uint32_t, uint32_t>> want, got;
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t j = i + 1; j < n; ++j) {
      float dot = 0;
      for (int d = 0; d < dim; ++d) dot += v[i * dim + d] * v[j * dim + d];
      if (dot >= 0.9f) want.insert({i, j});
    }
  for (const auto& p : SimilarPairs(v.data(), n, dim, 0.9f)) {
    EXPECT_LT(p.a, p.b);
    EXPECT_TRUE(got.insert({p.a, p.b}).second) << "duplicate pair";
  }
  EXPECT_EQ(got, want);
  EXPECT_GE(want.size(), 200u);
}

TEST(FindGroups, SemanticTierAndSharpness) {
  std::vector<Item> items = {
      Make(1, 0x1111111111111111ull, 4000, 3000, 5'000'000, "jpeg", {"/p/1.jpg"}),
      Make(2, 0xeeeeeeeeeeeeeeeeull, 4000, 3000, 5'000'000, "jpeg", {"/p/2.jpg"}),
      Make(3, 0x0f0f0f0f0f0f0f0full, 4000, 3000, 5'000'000, "jpeg", {"/p/3.jpg"}),
      Make(4, 0x0f0f0f0f0f0f0f0eull, 4000, 3000, 5'000'000, "jpeg", {"/p/4.jpg"}),
  };
  items[0].sharpness = 100;
  items[1].sharpness = 300;
  items[2].sharpness = 100;
  items[3].sharpness = 110;  // within 15%: not "sharper"
  Options opt;
  opt.semantic = {{0, 1, 0.97f}, {2, 3, 0.99f}};
  auto groups = FindGroups(items, opt);
  ASSERT_EQ(groups.size(), 2u);
  // 3 and 4 are near duplicates by pHash (the near tier comes first); 1 and 2 only semantic.
  const Group& near = groups[0].tier == "near" ? groups[0] : groups[1];
  const Group& sem = groups[0].tier == "semantic" ? groups[0] : groups[1];
  EXPECT_EQ(near.tier, "near");
  EXPECT_EQ(sem.tier, "semantic");
  EXPECT_EQ(sem.members[0].path, "/p/2.jpg");
  EXPECT_NE(sem.keep_reason.find("sharpest"), std::string::npos) << sem.keep_reason;
  EXPECT_NE(sem.members[1].reason.find("cosine 0.970"), std::string::npos);
  EXPECT_EQ(near.keep_reason.find("sharpest"), std::string::npos) << near.keep_reason;
  opt.min_cosine = 0.98f;
  EXPECT_EQ(FindGroups(items, opt).size(), 1u);
}

// A video's signature: `scene(t)` gives the content hash at time t (a new random hash per second
// of a scene, so that frames differ as they do in a moving shot), sampled every half second.
VideoItem Clip(double duration, const std::function<uint64_t(double)>& scene, double start = 0,
               double masked_until = 0) {
  VideoItem v;
  v.duration = duration;
  for (double t = 0; t < duration; t += 0.5) {
    video::SignatureSample s;
    s.time = float(t);
    s.dhash = scene(start + t);
    s.masked = t < masked_until;
    s.rgb[0] = uint8_t(s.dhash), s.rgb[1] = uint8_t(s.dhash >> 8),
    s.rgb[2] = uint8_t(s.dhash >> 16);
    v.signature.push_back(s);
  }
  return v;
}

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

TEST(VideoDupes, TrimsMatchAtTheirOffsetASharedIntroAndAFadeDoNot) {
  auto a = [](double t) { return Mix(uint64_t(t * 2) + 1000); };
  auto b = [](double t) { return Mix(uint64_t(t * 2) + 5000); };
  // A re-encode: a few bits flipped in every sample.
  auto noisy = [&](double t) { return a(t) ^ (Mix(uint64_t(t * 7)) & 0x0101010101ull); };
  const VideoOptions opt;
  VideoMatch m = MatchVideos(Clip(30, a), Clip(30, noisy), opt);
  EXPECT_TRUE(m.duplicate);
  EXPECT_NEAR(m.match, 1.0, 1e-9);
  EXPECT_EQ(m.offset, 0);
  // Trimmed by 4 s at the start: found at +4 s.
  m = MatchVideos(Clip(26, a, 4), Clip(30, a), opt);
  EXPECT_TRUE(m.duplicate);
  EXPECT_NEAR(m.offset, 4.0, 1e-9);
  // A 5 s intro shared, then other content.
  auto intro_then_b = [&](double t) { return t < 5 ? a(t) : b(t); };
  m = MatchVideos(Clip(30, a), Clip(30, intro_then_b), opt);
  EXPECT_FALSE(m.duplicate);
  EXPECT_GE(m.mismatch_run, 2);
  // Both fade in from black (masked) into different content: nothing comparable matches.
  m = MatchVideos(Clip(20, a, 0, 2), Clip(20, b, 0, 2), opt);
  EXPECT_FALSE(m.duplicate);
  // The colours disagree (same hashes, other colours): not verified, not a duplicate.
  VideoItem recoloured = Clip(30, a);
  for (auto& s : recoloured.signature) s.rgb[0] = uint8_t(s.rgb[0] + 60);
  EXPECT_FALSE(MatchVideos(Clip(30, a), recoloured, opt).duplicate);
}

TEST(VideoDupes, GroupsKeepTheHighestResolutionAndNameTheTier) {
  auto a = [](double t) { return Mix(uint64_t(t * 2) + 1000); };
  auto b = [](double t) { return Mix(uint64_t(t * 2) + 9000); };
  std::vector<Item> items(5);
  std::vector<VideoItem> videos;
  const char* names[] = {"/v/a-720.mp4", "/v/a-1080.mp4", "/v/a-trim.mp4", "/v/b.mp4", "/v/a.mkv"};
  for (int i = 0; i < 5; ++i) {
    items[size_t(i)].paths = {names[i]};
    items[size_t(i)].video = true;
  }
  auto add = [&](VideoItem v, int w, int h, const char* codec, int64_t rate) {
    v.item = videos.size();
    v.width = w, v.height = h, v.codec = codec, v.bit_rate = rate, v.fps = 30;
    items[v.item].width = w, items[v.item].height = h;
    videos.push_back(std::move(v));
  };
  add(Clip(20, a), 1280, 720, "h264", 4'000'000);
  add(Clip(20, a), 1920, 1080, "hevc", 6'000'000);
  add(Clip(15, a, 3), 1920, 1080, "hevc", 6'000'000);
  add(Clip(20, b), 1920, 1080, "hevc", 6'000'000);
  add(Clip(20, a), 1920, 1080, "hevc", 6'050'000);
  auto groups = FindVideoGroups(videos, items, VideoOptions{});
  ASSERT_EQ(groups.size(), 1u);
  const Group& g = groups[0];
  EXPECT_EQ(g.tier, "trim");
  ASSERT_EQ(g.members.size(), 4u);                // b is not in it
  EXPECT_EQ(g.members[0].path, "/v/a-1080.mp4");  // 1080p; equal to a.mkv on all else, first path
  std::map<std::string, std::string> why;
  for (const auto& m : g.members) why[m.path] = m.reason;
  EXPECT_NE(why["/v/a-720.mp4"].find("re-encoded"), std::string::npos) << why["/v/a-720.mp4"];
  EXPECT_NE(why["/v/a-trim.mp4"].find("trimmed"), std::string::npos) << why["/v/a-trim.mp4"];
  EXPECT_NE(why["/v/a.mkv"].find("same hevc 1920x1080 streams"), std::string::npos)
      << why["/v/a.mkv"];
}

}  // namespace
}  // namespace lumen::dupes
