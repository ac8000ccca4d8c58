"""End-to-end tests of videos as a media kind (issue 18): lumen index/process find videos by their
content, hash them while they are decoded once, record the probe, shots, key frames and poster,
search and `similar` name the moment inside a video, reruns are incremental, and every bad input
is recorded with a reason while the run goes on.

The clips are made here with the ffmpeg tool from real photos (tests/cli/video_corpus.py, with
known cut times), and the real videos come from Debian packages (scripts/fetch-photos.sh videos).
"""
import base64
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from PIL import Image

import video_corpus
from test_cli import EXIT_OK, EXIT_SOME_FAILED, ROOT, db_rows, loads, run, run_loading, states

FFMPEG = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
LUMEN_BIN = os.environ.get("LUMEN_BIN", os.path.join(ROOT, "build", "src", "cli", "lumen"))


def ffmpeg(*args):
    subprocess.run(FFMPEG + list(args), check=True)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def records(p):
    return {os.path.basename(r["file_path"]): r for r in map(json.loads, p.stdout.decode().splitlines())}


def photos(tmp):
    dest = os.path.join(tmp, "photos")
    subprocess.run([os.path.join(ROOT, "scripts", "fetch-photos.sh"), "test", dest], check=True)
    return [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs if f.lower().endswith(".jpg")]


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-video-")
        self.lib = os.path.join(self.tmp, "lib")
        os.makedirs(self.lib)
        self.catalog = os.path.join(self.tmp, "cat", "catalog.db")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def index(self, *extra, check=None):
        return run("index", self.lib, "--catalog", self.catalog, *extra, check=check)


class Loading(Base):
    def test_ffmpeg_is_loaded_only_for_videos_and_a_missing_module_fails_only_them(self):
        photo = os.path.join(self.lib, "p.png")
        Image.new("RGB", (64, 48), (10, 120, 200)).save(photo)
        _, loaded = run_loading("process", photo, "--quiet", check=EXIT_OK)
        self.assertFalse(loads(loaded, "libavcodec.so"), loaded)
        self.assertFalse(loads(loaded, "liblumen_video.so"), loaded)
        clip = os.path.join(self.lib, "c.mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", clip)
        _, loaded = run_loading("process", clip, "--quiet", check=EXIT_OK)
        self.assertTrue(loads(loaded, "liblumen_video.so"), loaded)
        self.assertTrue(loads(loaded, "libavcodec.so"), loaded)
        # No module (or another build's): the videos fail with the reason, the photo is indexed.
        for module in ("/nonexistent/liblumen_video.so", os.path.join(os.path.dirname(LUMEN_BIN),
                                                                       "liblumen_vips.so")):
            env = dict(os.environ, LUMEN_VIDEO_MODULE=module)
            p = run("process", self.lib, check=EXIT_SOME_FAILED, env=env)
            recs = records(p)
            self.assertEqual(set(recs), {"p.png"})
            self.assertIn(b"cannot load lumen's video module", p.stderr)


class Shots(Base):
    def test_cut_times_fades_flashes_interlacing_and_vfr_against_the_truth(self):
        truth = video_corpus.make(photos(self.tmp), self.lib)
        p = run("process", self.lib, "--no-thumbnail", "--quiet", check=EXIT_OK)
        recs = records(p)
        frame = 1 / video_corpus.FPS
        tp = fp = fn = 0
        for name, t in truth.items():
            r = recs[os.path.basename(t["path"])]
            self.assertEqual(r["media"], "video", name)
            self.assertAlmostEqual(r["duration"], t["duration"], delta=0.1)
            starts = [s["start"] for s in r["shots"]]
            self.assertEqual(starts[0], 0, name)
            found = starts[1:]
            if t["cuts"]:
                a, b, c = video_corpus.score(found, t["cuts"], frame)
                tp, fp, fn = tp + a, fp + b, fn + c
                self.assertEqual(b, 0, f"{name}: a cut where there is none: {found} vs {t['cuts']}")
            if name == "vfr":  # pts times: exact, though frame number / rate is not
                for x in t["cuts"]:
                    self.assertTrue(any(abs(x - y) < frame / 2 for y in found), (x, found))
            if name == "interlaced":  # one cut per cut, never two a field apart
                self.assertEqual(len(found), len(t["cuts"]), found)
            if name == "fades":
                hit = [f for f in t["fades"] if any(abs(f - y) <= 0.45 for y in found)]
                self.assertGreaterEqual(len(hit) / len(t["fades"]), 0.8, found)
                self.assertTrue(any(abs(t["dissolves"][0] - y) <= 0.6 for y in found), found)
                self.assertEqual(len(found), 3, found)
            if name == "flash":
                self.assertEqual(len(found), 2, found)  # the flashes are not cuts
            # Key frames lie in their shots; the shots tile the video.
            for s, nxt in zip(r["shots"], r["shots"][1:]):
                self.assertAlmostEqual(s["end"], nxt["start"], places=6)
            for s in r["shots"]:
                for k in s["key_frames"]:
                    self.assertGreaterEqual(k["t"], s["start"])
                    self.assertLess(k["t"], s["end"])
        f1 = 2 * tp / (2 * tp + fp + fn)
        self.assertGreaterEqual(f1, 0.95, (tp, fp, fn))


class Library(Base):
    def test_real_videos_index_incrementally_with_probe_poster_and_shots(self):
        real = os.path.join(self.tmp, "real")
        subprocess.run([os.path.join(ROOT, "scripts", "fetch-photos.sh"), "videos", real], check=True)
        for f in os.listdir(real):
            if not f.startswith("."):
                shutil.copy(os.path.join(real, f), self.lib)
        # A phone clip: HEVC in QuickTime with Apple's keys, portrait (rotated), AAC audio.
        phone = os.path.join(self.lib, "IMG_0420.MOV")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=1.5", "-f", "lavfi", "-i",
               "sine=duration=1.5", "-c:v", "libx265", "-x265-params", "log-level=none", "-tag:v", "hvc1",
               "-c:a", "aac", "-metadata", "com.apple.quicktime.make=Apple",
               "-metadata", "com.apple.quicktime.model=iPhone 15",
               "-metadata", "com.apple.quicktime.creationdate=2024-05-01T12:20:30+0200",
               "-metadata", "com.apple.quicktime.location.ISO6709=+48.8584+002.2945+035.000/",
               "-movflags", "use_metadata_tags", "-f", "mov", phone)
        p = self.index("--no-embedding", check=EXIT_OK)
        self.assertIn(b"8 succeeded", p.stderr)
        kinds = dict(db_rows(self.catalog, "SELECT kind, COUNT(*) FROM assets GROUP BY kind"))
        self.assertEqual(kinds, {"video": 8})
        rows = {os.path.basename(r[0].decode() if isinstance(r[0], bytes) else r[0]): r[1:] for r in db_rows(
            self.catalog, "SELECT l.path, v.codec, v.duration, v.creation_time, "
            "(SELECT COUNT(*) FROM video_shots s WHERE s.asset_id=v.asset_id), "
            "(SELECT COUNT(*) FROM thumbnails t WHERE t.asset_id=v.asset_id) "
            "FROM videos v JOIN locations l ON l.asset_id=v.asset_id")}
        self.assertEqual(rows["Megamind.avi"][0], "mpeg4")
        self.assertEqual(rows["Megamind.avi"][3], 4)  # four shots, as ffmpeg's scene score says
        self.assertEqual(rows["vtest.avi"][3], 1)  # one fixed camera
        self.assertEqual(rows["IMG_0420.MOV"][0], "hevc")
        self.assertEqual(rows["IMG_0420.MOV"][2], "2024-05-01T12:20:30+0200")
        for name, r in rows.items():
            self.assertEqual(r[4], 1, name)  # a poster thumbnail for every video
        meta = db_rows(self.catalog, "SELECT m.captured_at, m.utc_offset, m.camera_make, m.camera_model, "
                       "m.gps_latitude FROM metadata m JOIN locations l ON l.asset_id=m.asset_id "
                       "WHERE CAST(l.path AS TEXT) LIKE '%IMG_0420.MOV'")
        self.assertEqual(meta, [("2024-05-01T12:20:30", "+02:00", "Apple", "iPhone 15", 48.8584)])
        # Unchanged: nothing is read again.
        p = self.index("--no-embedding", check=EXIT_OK)
        self.assertIn(b"8 unchanged", p.stderr)
        # process: the record of a video.
        p = run("process", phone, "--quiet", check=EXIT_OK)
        r = json.loads(p.stdout)
        self.assertEqual((r["media"], r["kind"], r["format"]), ("video", "video", "mp4"))
        self.assertAlmostEqual(r["duration"], 1.5, delta=0.05)
        v = r["video"]
        self.assertEqual((v["codec"], v["width"], v["height"], v["rotation"]), ("hevc", 640, 360, 0))
        self.assertEqual(v["audio"][0]["codec"], "aac")
        self.assertFalse(v["vfr"])
        self.assertEqual(r["exif"]["captured_at"], "2024-05-01T12:20:30+02:00")
        self.assertAlmostEqual(r["exif"]["gps_longitude"], 2.2945)
        self.assertTrue(r["thumbnail"])
        self.assertEqual(len(r["shots"]), 1)

    def test_bad_videos_are_recorded_with_reasons_and_the_run_goes_on(self):
        good = os.path.join(self.lib, "good.mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4", "-c:v", "libx264", "-g", "25",
               "-pix_fmt", "yuv420p", good)
        data = read(good)
        write(os.path.join(self.lib, "zero.mp4"), b"")
        # Truncated: the first half, before the moov box cameras write at the end.
        write(os.path.join(self.lib, "truncated.mp4"), data[: len(data) // 2])
        write(os.path.join(self.lib, "random.mkv"), os.urandom(200_000))
        write(os.path.join(self.lib, "notes.mov"), "a text file, not a movie\n" * 50)
        # Corrupt frames in the middle: garbage over a stretch of the media data.
        broken = bytearray(data)
        mid = len(broken) // 2
        broken[mid:mid + 4000] = os.urandom(4000)
        write(os.path.join(self.lib, "damaged.mp4"), bytes(broken))
        # Absurd dimensions: an MJPEG AVI whose headers and JPEG frames claim 12000x12000.
        huge = os.path.join(self.tmp, "huge.avi")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5:duration=1", "-c:v", "mjpeg", huge)
        b = bytearray(read(huge))
        at = b.find(b"\xff\xc0")
        while at >= 0:
            b[at + 5:at + 9] = (12000).to_bytes(2, "big") * 2
            at = b.find(b"\xff\xc0", at + 2)
        for box, off in ((b"avih", 40), (b"strf", 12)):  # dwWidth/dwHeight, biWidth/biHeight
            at = b.find(box)
            b[at + off:at + off + 8] = (12000).to_bytes(4, "little") * 2
        write(os.path.join(self.lib, "huge.avi"), bytes(b))
        # A FIFO and /dev/zero behind a link named like videos.
        os.mkfifo(os.path.join(self.lib, "pipe.mp4"))
        os.symlink("/dev/zero", os.path.join(self.lib, "zero-link.mkv"))
        # A very long file: two hours, tiny frames.
        ffmpeg("-f", "lavfi", "-i", "color=gray:size=32x32:rate=1:duration=7200", "-c:v", "libx264",
               "-preset", "ultrafast", "-g", "600", os.path.join(self.lib, "long.mkv"))
        # An audio file in MP4 (m4a): not lumen's.
        ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", os.path.join(self.lib, "voice.m4a"))
        # A file that grows while it is read (a recording in progress).
        growing = os.path.join(self.lib, "growing.mp4")
        write(growing, data)
        stop = threading.Event()

        def grow():
            with open(growing, "ab") as f:
                while not stop.is_set():
                    f.write(b"\0" * 65536)
                    f.flush()
                    time.sleep(0.002)

        writer = threading.Thread(target=grow)
        writer.start()
        try:
            t0 = time.monotonic()
            p = self.index("--no-embedding", check=EXIT_SOME_FAILED)
            elapsed = time.monotonic() - t0
        finally:
            stop.set()
            writer.join()
        self.assertLess(elapsed, 120)
        st = {os.path.basename(k.decode()): v[0] for k, v in states(self.catalog).items()}
        reason = dict((os.path.basename(r[0].decode() if isinstance(r[0], bytes) else r[0]), r[1] or "")
                      for r in db_rows(self.catalog, "SELECT path, reason FROM locations"))
        for name in ("good.mp4", "damaged.mp4", "long.mkv"):
            self.assertEqual(st[name], "ok", (name, reason.get(name)))
        for name in ("zero.mp4", "truncated.mp4", "random.mkv", "notes.mov", "huge.avi", "growing.mp4"):
            self.assertEqual(st[name], "failed", (name, reason.get(name)))
            self.assertTrue(reason[name], name)
        self.assertIn("empty", reason["zero.mp4"])
        self.assertIn("not a video", reason["notes.mov"])
        self.assertIn("text", reason["notes.mov"])
        self.assertIn("changed while it was read", reason["growing.mp4"])
        self.assertIn("12000x12000 frames, above the limit", reason["huge.avi"])
        self.assertEqual(st["voice.m4a"], "skipped")
        # The FIFO and the link are never opened as videos.
        self.assertNotEqual(st.get("pipe.mp4"), "ok")
        self.assertNotEqual(st.get("zero-link.mkv"), "ok")
        damaged, = db_rows(self.catalog, "SELECT v.damaged FROM videos v JOIN locations l ON "
                           "l.asset_id=v.asset_id WHERE CAST(l.path AS TEXT) LIKE '%damaged.mp4'")
        self.assertGreater(damaged[0], 0)
        long, = db_rows(self.catalog, "SELECT v.duration, (SELECT COUNT(*) FROM video_frames f WHERE "
                        "f.asset_id=v.asset_id) FROM videos v JOIN locations l ON l.asset_id=v.asset_id "
                        "WHERE CAST(l.path AS TEXT) LIKE '%long.mkv'")
        self.assertAlmostEqual(long[0], 7200, delta=1)
        self.assertLessEqual(long[1], 32)


class Search(Base):
    def test_a_still_from_a_shot_is_found_at_that_video_and_that_shot(self):
        model = os.path.join(self.tmp, "siglip-tiny")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "ml", "text_reference.py"), model, "siglip",
                        "4"], check=True)
        pics = sorted(photos(self.tmp))
        frames = [50, 40, 60, 45]
        clip = os.path.join(self.lib, "trip.mp4")
        video_corpus._concat(pics[:4], frames, clip, video_corpus.X264)
        for i, pic in enumerate(pics[6:10]):  # photos too: they rank with the moments
            shutil.copy(pic, os.path.join(self.lib, f"photo{i}.jpg"))
        self.index("--model", model, check=EXIT_OK)
        n, = db_rows(self.catalog, "SELECT COUNT(*) FROM frame_embeddings")
        self.assertGreaterEqual(n[0], 4)
        cuts = [0] + [sum(frames[:i + 1]) / video_corpus.FPS for i in range(len(frames))]
        for shot in (1, 3):
            # A still exported at the moment lumen keeps for that shot (its key frame): found at
            # that video, within that shot.
            (t,), = db_rows(self.catalog, "SELECT t FROM video_frames WHERE shot=? ORDER BY idx LIMIT 1", shot)
            self.assertGreaterEqual(t, cuts[shot])
            self.assertLess(t, cuts[shot + 1])
            still = os.path.join(self.tmp, f"still{shot}.jpg")
            ffmpeg("-ss", f"{t:.3f}", "-i", clip, "-frames:v", "1", "-q:v", "3", still)
            p = run("similar", still, "--catalog", self.catalog, "--model", model, "--json", check=EXIT_OK)
            hits = json.loads(p.stdout)
            self.assertEqual(os.path.basename(hits[0]["path"]), "trip.mp4", hits[:3])
            self.assertEqual(hits[0]["media"], "video")
            self.assertGreaterEqual(hits[0]["t"], cuts[shot], (shot, hits[0]))
            self.assertLess(hits[0]["t"], cuts[shot + 1], (shot, hits[0]))
            self.assertEqual(len({h["path"] for h in hits}), len(hits))  # one hit per video
            p = run("similar", still, "--catalog", self.catalog, "--model", model, check=EXIT_OK)
            self.assertRegex(p.stdout.decode().splitlines()[0], r"trip\.mp4 @ 00:00:\d\d\.\d$")
        p = run("search", "a photo", "--catalog", self.catalog, "--model", model, "--media", "photo", "--json",
                check=EXIT_OK)
        self.assertEqual({h["media"] for h in json.loads(p.stdout)}, {"photo"})
        p = run("search", "a photo", "--catalog", self.catalog, "--model", model, "--media", "video", "--json",
                check=EXIT_OK)
        hits = json.loads(p.stdout)
        self.assertEqual([os.path.basename(h["path"]) for h in hits], ["trip.mp4"])
        self.assertIn("t", hits[0])
        # The video as the query: its own pooled embedding; it is not its own hit.
        p = run("similar", clip, "--catalog", self.catalog, "--model", model, "--json", check=EXIT_OK)
        self.assertNotIn(clip, [h["path"] for h in json.loads(p.stdout)])


if __name__ == "__main__":
    unittest.main()


class Dupes(Base):
    def test_reencodes_trims_and_remuxes_group_a_shared_intro_or_fade_never_does(self):
        paths, src_of = video_corpus.make_dupes(photos(self.tmp), self.lib, sources=3, seconds=8, size=(320, 180),
                                                codecs=("h264", "hevc", "av1"))
        self.index("--no-embedding", check=EXIT_OK)
        p = run("dupes", "--catalog", self.catalog, "--json", check=EXIT_OK)
        groups = json.loads(p.stdout)
        recall, precision, wrong = video_corpus.pair_scores(groups, paths, src_of)
        self.assertGreaterEqual(recall, 0.95)
        self.assertEqual(precision, 1.0, wrong)
        for g in groups:
            self.assertIn(g["tier"], ("remux", "reencode", "trim"))
            kept = g["files"][0]
            # Keep the best: the highest resolution, then the most bits per pixel.
            self.assertEqual(max(f["width"] * f["height"] for f in g["files"]), kept["width"] * kept["height"])
            reasons = {os.path.basename(f["path"]): f["reason"] for f in g["files"][1:]}
            for name, why in reasons.items():
                if "trim" in name:
                    self.assertIn("trimmed", why)
                elif "-h264-" in name or "-hevc-" in name or "-av1-" in name:
                    self.assertIn("re-encoded", why)
        # The tiers filter, and the HTML report shows the poster frames.
        p = run("dupes", "--catalog", self.catalog, "--tier", "trim", "--json", check=EXIT_OK)
        self.assertEqual({g["tier"] for g in json.loads(p.stdout)}, {"trim"})
        report = os.path.join(self.tmp, "dupes.html")
        run("dupes", "--catalog", self.catalog, "--report", report, check=EXIT_OK)
        self.assertGreaterEqual(read(report).count(b"data:image/webp;base64,"), len(paths) - 3)
        # Byte-identical copies of a video: the exact tier, as for photos.
        shutil.copy(paths[0], os.path.join(self.lib, "copy-of-src0.mp4"))
        self.index("--no-embedding", check=EXIT_OK)
        p = run("dupes", "--catalog", self.catalog, "--tier", "exact", "--json", check=EXIT_OK)
        exact = json.loads(p.stdout)
        self.assertEqual(len(exact), 1)
        self.assertEqual({os.path.basename(f["path"]) for f in exact[0]["files"]}, {"src0.mp4", "copy-of-src0.mp4"})


class Describe(Base):
    def test_a_video_is_described_from_its_key_frames(self):
        from fault_server import FaultServer
        key = "video-key-1"
        # Two shots of flat colours (their mean is what the test server reports seeing).
        clip = os.path.join(self.lib, "two.mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2", "-f", "lavfi", "-i",
               "smptebars=size=320x180:rate=25:duration=2", "-filter_complex", "[0][1]concat=n=2:v=1",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", clip)
        self.index("--no-embedding", check=EXIT_OK)
        class Recording(FaultServer):
            bodies = []

            def parse(self, h, body):
                self.bodies.append(body)
                return super().parse(h, body)

        server = Recording(api_key=key)
        try:
            env = dict(os.environ, LUMEN_TEST_KEY=key)
            p = run("describe", self.lib, "--llm", "openai", "--llm-model", "test-vlm", "--base-url", server.url,
                    "--api-key-env", "LUMEN_TEST_KEY", "--catalog", self.catalog, check=EXIT_OK, env=env)
        finally:
            server.stop()
        recs = [json.loads(l) for l in p.stdout.decode().splitlines()]
        self.assertEqual(len(recs), 1)
        self.assertEqual(os.path.basename(recs[0]["file_path"]), "two.mp4")
        self.assertIn("colour", recs[0]["description"])
        self.assertEqual(server.counts, {200: 1})
        # One image: a sheet of the two shots' key frames side by side, and a prompt that says so.
        body = json.loads(server.bodies[0])
        text = json.dumps(body)
        self.assertIn("This is a video, shown as 2 of its frames", text)
        m = re.search(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", text)
        sheet = Image.open(io.BytesIO(base64.b64decode(m.group(1))))
        self.assertAlmostEqual(sheet.width / sheet.height, 2 * 320 / 180, delta=0.1)


class Organize(Base):
    def test_videos_move_by_creation_time_with_companions_and_undo(self):
        src = os.path.join(self.lib, "camera")
        os.makedirs(src)
        clip = os.path.join(src, "GOPR0001.MP4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", "-metadata", "creation_time=2019-08-17T09:30:00.000000Z", clip)
        write(os.path.join(src, "GOPR0001.THM"), b"\xff\xd8 thumbnail")
        write(os.path.join(src, "GOPR0001.SRT"), "1\n00:00:00,000 --> 00:00:01,000\nhello\n")
        write(os.path.join(src, "GOPR0001.LRV"), b"low-res proxy")
        before = {f: read(os.path.join(src, f)) for f in os.listdir(src)}
        self.index("--no-embedding", check=EXIT_OK)
        dest = os.path.join(self.tmp, "sorted")
        run("organize", self.lib, "--into", dest, "--apply", "--catalog", self.catalog, check=EXIT_OK)
        moved = os.path.join(dest, "2019", "08")
        self.assertEqual(sorted(os.listdir(moved)), sorted(before))
        for f, data in before.items():
            self.assertEqual(read(os.path.join(moved, f)), data)
        self.assertEqual(os.listdir(src), [])
        run("undo", "--catalog", self.catalog, check=EXIT_OK)
        self.assertEqual({f: read(os.path.join(src, f)) for f in os.listdir(src)}, before)


class Tags(Base):
    def test_a_video_is_tagged_by_its_key_frames_at_index_and_from_stored_embeddings(self):
        model = os.path.join(self.tmp, "siglip-tiny")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "ml", "text_reference.py"), model, "siglip",
                        "6"], check=True)
        vocab = os.path.join(self.tmp, "mine.tsv")
        write(vocab, "sourdough bread\tfood\nmy cat\tpets\n")
        clip = os.path.join(self.lib, "two.mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2", "-f", "lavfi", "-i",
               "smptebars=size=320x180:rate=25:duration=2", "-filter_complex", "[0][1]concat=n=2:v=1",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", clip)
        common = ["--catalog", self.catalog, "--model", model, "--no-wordnet", "--vocab", vocab]
        run("tags", "build", *common, check=EXIT_OK)

        def check(bank_count):
            for (bank,) in db_rows(self.catalog, "SELECT DISTINCT bank FROM tags"):
                frames = db_rows(self.catalog, "SELECT idx, term, confidence FROM frame_tags WHERE bank=?", bank)
                self.assertEqual({f[0] for f in frames}, {0, 1}, bank)  # both key frames scored
                best = {}
                for _, term, conf in frames:
                    best[term] = max(best.get(term, 0), conf)
                tags = dict(db_rows(self.catalog, "SELECT term, confidence FROM tags WHERE bank=?", bank))
                # The video's tags: each term's best over its frames, the 15 (--max-tags) best of them.
                self.assertEqual(len(tags), min(15, len(best)))
                for term, conf in tags.items():
                    self.assertAlmostEqual(conf, best[term], places=6)
                left = [c for t, c in best.items() if t not in tags]
                self.assertLessEqual(max(left, default=0), min(tags.values()) + 1e-6)
            self.assertEqual(db_rows(self.catalog, "SELECT COUNT(DISTINCT bank) FROM tags"), [(bank_count,)])

        run("index", self.lib, "--tags", "--min-confidence", "0", *common, "--quiet", check=EXIT_OK)
        check(1)
        # A new vocabulary (another bank): the video is re-tagged from its stored frame embeddings.
        vocab2 = os.path.join(self.tmp, "more.tsv")
        write(vocab2, "sourdough bread\tfood\nmy cat\tpets\nred kite\tbirds\n")
        p = run("index", self.lib, "--tags", "--min-confidence", "0", *common[:-1], vocab2, check=EXIT_OK)
        self.assertIn(b"tagged 1 images from their stored embeddings", p.stderr)
        check(2)
