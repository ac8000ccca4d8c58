"""End-to-end tests of `lumen convert` on videos (issue 20): presets and chains, every stream the
source had kept, interlaced "tapes" deinterlaced by the field order the frames show, bad input
refused before any work or counted while the batch goes on, nothing left behind.

Sources are made here with the ffmpeg tool (test patterns with two audio tracks, subtitles and
chapters) and from real video (opencv-doc's Megamind.avi, scripts/fetch-photos.sh videos); every
output is checked with ffprobe.
"""
import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from test_cli import EXIT_ERROR, EXIT_OK, EXIT_SOME_FAILED, LUMEN, ROOT, picture, run

FFMPEG = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
SLOW = os.environ.get("LUMEN_SANITIZED") == "1"  # ASan builds: keep clips short


def ffmpeg(*args):
    subprocess.run(FFMPEG + [str(a) for a in args], check=True)


def probe(path, *extra):
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                          "-show_streams", "-show_chapters", *extra, path],
                         check=True, capture_output=True).stdout
    return json.loads(out)


def packets(path, stream):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries",
                          "packet=pts_time", "-of", "csv=p=0", path],
                         check=True, capture_output=True, text=True).stdout
    return sorted(float(x.strip(",")) for x in out.split() if x.strip(",") not in ("", "N/A"))


def decodes(path):
    """Decodes every stream fully; returns ffmpeg's error output (empty for a clean file)."""
    p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:v", "-map",
                        "0:a?", "-f", "null", "-"], capture_output=True, text=True)
    return p.returncode, p.stderr


def events(stderr, name):
    out = []
    for line in stderr.decode(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == name:
            out.append(rec)
    return out


_REAL = []


def real_videos():
    """The folder of the real videos (scripts/fetch-photos.sh videos), fetched once a process."""
    if not _REAL:
        real = tempfile.mkdtemp(prefix="lumen-real-videos-")
        atexit.register(shutil.rmtree, real, True)
        subprocess.run([os.path.join(ROOT, "scripts", "fetch-photos.sh"), "videos", real],
                       check=True, capture_output=True)
        _REAL.append(real)
    return _REAL[0]


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-vconv-")
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def convert(self, *args, check=EXIT_OK):
        return run("convert", *args, "-o", self.out, "--no-cache", "--json-logs", check=check)

    def leftovers(self):
        found = []
        for root, _, files in os.walk(self.out):
            found += [f for f in files if f.startswith(".lumen-") or f.endswith(".tmp")]
        return found

    def rich_source(self, name="src.mkv", seconds=4):
        """A test pattern with two audio tracks (eng, fra), SubRip subtitles, two chapters and
        a title and creation time."""
        srt = self.path("subs.srt")
        with open(srt, "w") as f:
            f.write("1\n00:00:00,500 --> 00:00:01,500\nHello, world\n\n"
                    "2\n00:00:02,000 --> 00:00:03,000\nSecond line\n")
        meta = self.path("meta.txt")
        with open(meta, "w") as f:
            f.write(";FFMETADATA1\ntitle=Test clip\ncreation_time=2020-05-06T07:08:09.000000Z\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\ntitle=One\n"
                    f"[CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\nEND={seconds * 1000}\ntitle=Two\n")
        src = self.path(name)
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={seconds}",
               "-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-f", "lavfi", "-i",
               f"sine=f=660:d={seconds}", "-i", srt, "-i", meta, "-map", "0", "-map", "1", "-map",
               "2", "-map", "3", "-map_metadata", "4", "-map_chapters", "4", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", "-c:a", "aac", "-c:s", "srt", "-metadata:s:a:0",
               "language=eng", "-metadata:s:a:1", "language=fra", src)
        return src

    def tape(self, name, order, seconds=2):
        """A 480i 'tape' from real video: Megamind.avi scaled to 720x480, noise added, fields
        woven in `order` (tff or bff) and coded as interlaced MPEG-2 flagged so, or unflagged
        MPEG-4 Part 2 in AVI (what a capture card may write)."""
        real = real_videos()
        mode = "interleave_top" if order == "tff" else "interleave_bottom"
        src = self.path(name)
        vf = (f"scale=720:480,fps=60000/1001,noise=alls=12:allf=t,tinterlace={mode},"
              f"setdar=4/3,setfield={'tff' if order == 'tff' else 'bff'}")
        if name.endswith(".avi"):
            vf = vf.rsplit(",", 1)[0] + ",setfield=prog"
            codec = ["-c:v", "mpeg4", "-q:v", "3"]
        else:
            codec = ["-c:v", "mpeg2video", "-b:v", "6M", "-flags", "+ilme+ildct",
                     "-top", "1" if order == "tff" else "0"]
        ffmpeg("-i", os.path.join(real, "Megamind.avi"), "-t", seconds, "-vf", vf, *codec,
               "-c:a", "pcm_s16le", "-ar", "48000", src)
        return src


class Presets(Base):
    def test_web_keeps_every_stream_chapters_and_metadata_and_starts_fast(self):
        src = self.rich_source()
        p = self.convert(src, "--preset", "web")
        out = os.path.join(self.out, "src.mp4")
        info = probe(out)
        kinds = [(s["codec_type"], s["codec_name"]) for s in info["streams"]
                 if s["codec_type"] != "data"]  # mp4's chapter track is a data stream
        self.assertEqual(kinds, [("video", "h264"), ("audio", "aac"), ("audio", "aac"),
                                 ("subtitle", "mov_text")])
        v = info["streams"][0]
        self.assertEqual((v["width"], v["height"], v["pix_fmt"], v["codec_tag_string"]),
                         (640, 360, "yuv420p", "avc1"))
        self.assertEqual([s["tags"].get("language") for s in info["streams"][1:3]], ["eng", "fra"])
        self.assertEqual([c["tags"]["title"] for c in info["chapters"]], ["One", "Two"])
        self.assertAlmostEqual(float(info["chapters"][1]["start_time"]), 1.5, places=2)
        self.assertEqual(info["format"]["tags"]["title"], "Test clip")
        self.assertTrue(info["format"]["tags"]["creation_time"].startswith("2020-05-06T07:08:09"))
        # faststart: the index before the media data, so a browser plays while it loads.
        with open(out, "rb") as f:
            head = f.read()
        self.assertLess(head.find(b"moov"), head.find(b"mdat"))
        # The same frames, and audio where it was against them: the source's offset, give or
        # take the AAC encoder's priming (1024 samples, written as a negative start).
        self.assertEqual(len(packets(out, "v:0")), 100)
        for a in ("a:0", "a:1"):
            ts = packets(out, a)
            was = packets(src, a)[0] - packets(src, "v:0")[0]
            now = ts[0] - packets(out, "v:0")[0]
            self.assertLessEqual(abs(now - was), 1024 / 44100 + 0.002)
            self.assertAlmostEqual(ts[-1], 4.0, delta=0.1)
        self.assertEqual(decodes(out), (0, ""))
        done = events(p.stderr, "video_done")
        self.assertEqual(len(done), 1, p.stderr)
        self.assertEqual(done[0]["frames"], "100")
        self.assertEqual(self.leftovers(), [])

    def test_web_fits_1080p_with_square_pixels(self):
        src = self.path("wide.mp4")
        # 1440x1080 stored with 4:3 pixels: 1920x1080 displayed; web gives 1920x1080 square.
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1440x1080:rate=25:duration=0.4", "-vf",
               "setsar=4/3", "-c:v", "libx264", "-pix_fmt", "yuv444p", src)
        self.convert(src, "--preset", "web", "--name", "{stem}.web.{ext}")
        v = probe(os.path.join(self.out, "wide.web.mp4"))["streams"][0]
        self.assertEqual((v["width"], v["height"], v["pix_fmt"]), (1920, 1080, "yuv420p"))
        self.assertIn(v.get("sample_aspect_ratio", "1:1"), ("1:1", "0:1"))

    def test_remux_copies_every_packet(self):
        src = self.rich_source()
        self.convert(src, "--preset", "remux")
        out = os.path.join(self.out, "src.mkv")
        a, b = probe(src), probe(out)
        self.assertEqual([s["codec_name"] for s in a["streams"]],
                         [s["codec_name"] for s in b["streams"]])
        for s in ("v:0", "a:0", "a:1"):
            self.assertEqual(packets(src, s), packets(out, s))
        self.assertEqual(len(b["chapters"]), 2)

    def test_archive_hevc_is_tagged_hvc1_and_keeps_10_bits_and_the_audio(self):
        src = self.path("ten.mkv")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1", "-f", "lavfi",
               "-i", "sine=d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-c:a", "aac", src)
        self.convert(src, "--preset", "archive-hevc")
        info = probe(os.path.join(self.out, "ten.mp4"))
        v, a = info["streams"][0], info["streams"][1]
        self.assertEqual((v["codec_name"], v["codec_tag_string"], v["pix_fmt"]),
                         ("hevc", "hvc1", "yuv420p10le"))
        self.assertEqual(a["codec_name"], "aac")
        copied = packets(os.path.join(self.out, "ten.mp4"), "a:0")
        self.assertEqual(len(copied), len(packets(src, "a:0")))
        for x, y in zip(packets(src, "a:0"), copied):
            self.assertAlmostEqual(x, y, delta=0.001)  # Matroska's 1 ms ticks against MP4's

    def test_archive_av1(self):
        src = self.path("s.mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1", "-c:v",
               "libx264", "-pix_fmt", "yuv420p", src)
        p = self.convert(src, "--preset", "archive-av1", "--name", "{stem}.av1.{ext}")
        v = probe(os.path.join(self.out, "s.av1.mp4"))["streams"][0]
        self.assertEqual((v["codec_name"], v["width"]), ("av1", 320))
        self.assertNotIn(b"Svt[info]", p.stderr)  # its banner is not lumen's output

    def test_vhs_detects_the_field_order_and_deinterlaces(self):
        # The preset: a frame per frame; with deinterlace:bwdif:double, a frame per field.
        for name, order, label, chain, rate, per_frame in (
                ("tff.mkv", "tff", "top field first", [], "30000/1001", 1),
                ("bff.avi", "bff", "bottom field first", [], "30000/1001", 1),
                ("tff2.mkv", "tff", "top field first", ["--chain", "deinterlace:bwdif:double"],
                 "60000/1001", 2)):
            with self.subTest(name):
                src = self.tape(name, order, seconds=1 if SLOW else 2)
                p = self.convert(src, "--preset", "vhs", *chain)
                out = os.path.join(self.out, os.path.splitext(name)[0] + ".mp4")
                v = probe(out)["streams"][0]
                self.assertEqual((v["width"], v["height"]), (1440, 1080))
                self.assertIn(v.get("field_order", "progressive"), ("progressive", "unknown"))
                self.assertEqual(v["r_frame_rate"], rate)
                done = events(p.stderr, "video_done")[0]
                self.assertEqual(done["field_order"], label)
                self.assertIn(f"parity={order}", done["video_filters"])
                self.assertEqual(done["video_filters"].count("bwdif"), 1)
                self.assertIn("hqdn3d=8:6:12:9", done["video_filters"])
                self.assertIn("afftdn", done["audio_filters"])
                self.assertIn("dynaudnorm", done["audio_filters"])
                src_frames = len(packets(src, "v:0"))
                self.assertAlmostEqual(len(packets(out, "v:0")), per_frame * src_frames, delta=2)

    def test_vhs_of_a_progressive_source_is_not_deinterlaced(self):
        # Real progressive footage (a test pattern's sharp moving edges can look combed).
        src = self.path("prog.mp4")
        ffmpeg("-i", os.path.join(real_videos(), "Megamind.avi"), "-t", 1, "-vf",
               "scale=720:480,setdar=16/9", "-c:v", "libx264", "-pix_fmt", "yuv420p", src)
        p = self.convert(src, "--preset", "vhs")
        done = events(p.stderr, "video_done")[0]
        self.assertNotIn("bwdif", done["video_filters"])
        self.assertEqual(done["field_order"], "progressive")
        v = probe(os.path.join(self.out, "prog.mp4"))["streams"][0]
        self.assertEqual((v["width"], v["height"]), (1920, 1080))  # 16:9 at 1080 lines


class Chains(Base):
    def test_trim_and_speed_move_every_stream_and_the_chapters(self):
        src = self.rich_source()
        self.convert(src, "--chain", "trim:1:2,speed:2")
        out = os.path.join(self.out, "src.mp4")
        info = probe(out)
        self.assertEqual(len(packets(out, "v:0")), 50)  # 2 s of 25 fps frames
        v = packets(out, "v:0")
        self.assertAlmostEqual(v[-1] - v[0], 49 * 0.02, delta=0.01)  # played twice as fast
        for a in ("a:0", "a:1"):
            ts = packets(out, a)
            self.assertAlmostEqual(ts[0], v[0], delta=0.03)
            self.assertAlmostEqual(ts[-1], 1.0, delta=0.05)
        # Chapter Two began at 1.5 s: 0.5 s into the cut, 0.25 s at double speed.
        ch = [(c["tags"]["title"], float(c["start_time"])) for c in info["chapters"]]
        self.assertEqual([t for t, _ in ch], ["One", "Two"])
        self.assertAlmostEqual(ch[1][1], 0.25, places=2)

    def test_geometry_is_applied_upright_and_the_rotation_kept_otherwise(self):
        plain = self.path("plain.mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=0.4", "-c:v",
               "libx264", "-pix_fmt", "yuv420p", plain)
        src = self.path("phone.mp4")  # a phone's upright clip: stored landscape, turned 90
        ffmpeg("-i", plain, "-c", "copy", "-metadata:s:v:0", "rotate=90",
               "-metadata", "location=+48.8577+002.2950/", src)
        rot = probe(src)["streams"][0]
        self.assertTrue(any(d.get("rotation") for d in rot.get("side_data_list", [])))
        self.convert(src, "--chain", "fit:320x320", "--name", "{stem}.fit.{ext}")
        self.convert(src, "--chain", "h264:30", "--name", "{stem}.same.{ext}")
        fit = probe(os.path.join(self.out, "phone.fit.mp4"))
        v = fit["streams"][0]
        self.assertEqual((v["width"], v["height"]), (180, 320))  # upright, in the box
        self.assertFalse(any(d.get("rotation") for d in v.get("side_data_list", [])))
        same = probe(os.path.join(self.out, "phone.same.mp4"))
        v = same["streams"][0]
        self.assertEqual((v["width"], v["height"]), (640, 360))
        self.assertEqual([d.get("rotation") for d in v.get("side_data_list", [])
                          if "rotation" in d], [d.get("rotation") for d in rot["side_data_list"]
                                                if "rotation" in d])
        for info in (fit, same):  # the GPS position stays
            self.assertEqual(info["format"]["tags"].get("location"), "+48.8577+002.2950/")

    def test_photo_operations_mean_the_same_on_frames(self):
        src = self.path("grey.mp4")
        ffmpeg("-f", "lavfi", "-i", "color=c=0x808080:size=64x64:rate=5:duration=0.4",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-qp", "0", src)
        means = {}
        for chain in ("h264:0", "brightness:0.5,h264:0", "grayscale,watermark:X:40:centre:1,h264:0"):
            name = chain.split(",")[0].replace(":", "_")
            self.convert(src, "--chain", chain, "--name", f"{{stem}}.{name}.{{ext}}")
            raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i",
                                  os.path.join(self.out, f"grey.{name}.mp4"), "-frames:v", "1",
                                  "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                                 check=True, capture_output=True).stdout
            means[name] = (sum(raw) / len(raw), max(raw))
        self.assertAlmostEqual(means["h264_0"][0], 128, delta=3)
        self.assertAlmostEqual(means["brightness_0.5"][0], 64, delta=6)  # v * 0.5, as photos
        self.assertGreater(means["grayscale"][1], 200)  # the white watermark is drawn

    def test_stabilise_takes_the_shake_out(self):
        # A still frame of real video, shaken: the camera moves, nothing in the picture does.
        still = self.path("still.png")
        ffmpeg("-ss", 2, "-i", os.path.join(real_videos(), "Megamind.avi"), "-frames:v", 1, still)
        src = self.path("shaky.mp4")
        ffmpeg("-loop", 1, "-i", still, "-t", 2 if SLOW else 3, "-r", 25, "-vf",
               "scale=800:588,crop=640:480:x='80+40*sin(n*0.9)':y='54+30*sin(n*1.3+1)'",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", src)
        scratch = self.path("scratch")
        os.makedirs(scratch)
        p = run("convert", src, "-o", self.out, "--no-cache", "--json-logs", "--chain",
                "stabilise:8:30,h264:18", env={**os.environ, "TMPDIR": scratch}, check=EXIT_OK)
        done = events(p.stderr, "video_done")[0]
        self.assertIn("vidstabtransform", done["video_filters"])
        self.assertIn(b"first of two passes", p.stderr)
        out = os.path.join(self.out, "shaky.mp4")
        self.assertEqual(len(packets(out, "v:0")), len(packets(src, "v:0")))

        def shake(path):
            """Mean absolute change between consecutive frames (grey, 160x120, the centre)."""
            raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-vf",
                                  "crop=iw/2:ih/2,scale=160:120,format=gray", "-f", "rawvideo",
                                  "-"], check=True, capture_output=True).stdout
            n = 160 * 120
            frames = [raw[i:i + n] for i in range(0, len(raw) - n + 1, n)]
            diffs = [sum(abs(a - b) for a, b in zip(f, g)) / n
                     for f, g in zip(frames[5:], frames[6:])]
            return sum(diffs) / len(diffs)

        before, after = shake(src), shake(out)
        self.assertLess(after, 0.5 * before, (before, after))
        # The motion file went with the run.
        self.assertEqual(os.listdir(scratch), [])

    def test_photos_and_videos_in_one_call(self):
        folder = self.path("mixed")
        os.makedirs(folder)
        picture(os.path.join(folder, "a.jpg"), 800, 600)
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25:duration=0.4", "-c:v",
               "libx264", "-pix_fmt", "yuv420p", os.path.join(folder, "b.mp4"))
        self.convert(folder, "--chain", "fit:320x320")
        self.assertEqual(probe(os.path.join(self.out, "b.mp4"))["streams"][0]["width"], 320)
        from PIL import Image
        with Image.open(os.path.join(self.out, "a.jpg")) as im:
            self.assertEqual(im.size, (320, 240))


class BadInput(Base):
    def test_what_a_container_cannot_take_is_refused_before_any_work(self):
        src = self.rich_source(seconds=2)
        p = self.convert(src, "--chain", "vp9,aac", "--name", "{stem}.webm", check=EXIT_SOME_FAILED)
        self.assertIn(b"src.mkv", p.stderr)
        self.assertIn(b"aac audio cannot go into a .webm file", p.stderr)
        self.assertEqual(os.listdir(self.out) if os.path.exists(self.out) else [], [])
        for chain, why in (("deinterlace:fast", b"deinterlace takes bwdif or yadif"),
                           ("copy,fit:100x100", b"cannot be filtered"),
                           ("h264:99", b"h264 needs a number in [0, 51]"),
                           ("wobble", b"unknown video operation 'wobble'"),
                           ('trim:1:"1:75"', b"trim's duration")):
            with self.subTest(chain):
                p = run("convert", src, "-o", self.out, "--chain", chain, check=EXIT_ERROR)
                self.assertIn(why, p.stderr)

    def test_a_broken_file_fails_alone_and_damaged_packets_are_counted(self):
        good = self.rich_source("good.mkv", seconds=2)
        broken = self.path("broken.mp4")
        with open(broken, "wb") as f:
            f.write(b"\x00\x00\x00\x18ftypisom" + os.urandom(4000))
        damaged = self.path("damaged.ts")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4", "-c:v",
               "libx264", "-pix_fmt", "yuv420p", "-g", "25", damaged)
        with open(damaged, "rb") as f:
            data = bytearray(f.read())
        for at in range(len(data) // 3, len(data) // 3 + 20000, 188 * 7):
            data[at + 4:at + 150] = os.urandom(146)  # payloads of some packets, headers kept
        with open(damaged, "wb") as f:
            f.write(bytes(data))
        p = self.convert(good, broken, damaged, "--preset", "web", check=EXIT_SOME_FAILED)
        err = p.stderr.decode(errors="replace")
        self.assertIn("broken.mp4", err)
        self.assertTrue(os.path.exists(os.path.join(self.out, "good.mp4")))
        self.assertTrue(os.path.exists(os.path.join(self.out, "damaged.mp4")))
        self.assertFalse(os.path.exists(os.path.join(self.out, "broken.mp4")))
        done = {os.path.basename(e["file"]): e for e in events(p.stderr, "video_done")}
        self.assertGreater(int(done["damaged.ts"]["corrupt_packets"]), 0, err)
        self.assertGreater(int(done["damaged.ts"]["frames"]), 50)
        self.assertEqual(self.leftovers(), [])

    def test_a_stopped_conversion_leaves_nothing(self):
        src = self.path("long.mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=30", "-c:v",
               "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", src)
        proc = subprocess.Popen([LUMEN, "convert", src, "-o", self.out, "--no-cache", "--chain",
                                 "hevc:28:slow", "--json-logs"], stderr=subprocess.PIPE)
        deadline = time.time() + 60
        # Stop it once it is encoding (its temporary exists).
        while time.time() < deadline and not self.leftovers():
            time.sleep(0.05)
        self.assertTrue(self.leftovers(), "the conversion never started writing")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 128 + signal.SIGINT, err[-2000:])
        self.assertEqual(self.leftovers(), [])
        self.assertFalse(os.path.exists(os.path.join(self.out, "long.mp4")))


if __name__ == "__main__":
    unittest.main()
