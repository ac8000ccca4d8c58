"""End-to-end tests of the lumen binary: bad input, incremental runs, interruption, records.

Run by ctest (tests/CMakeLists.txt) with LUMEN_BIN pointing at the binary. Images are made here
with Pillow and exiftool; real camera photos come from Debian's kphotoalbum package
(scripts/fetch-photos.sh), fetched on first use.
"""
import base64
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

from PIL import Image, ImageDraw

LUMEN = os.environ.get("LUMEN_BIN", "lumen")
SANITIZED = os.environ.get("LUMEN_SANITIZED", "OFF") in ("ON", "1", "TRUE")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SLOW = 4.0 if SANITIZED else 1.0

EXIT_OK, EXIT_SOME_FAILED, EXIT_ERROR = 0, 1, 2


def picture(path, w=640, h=480, seed=0, fmt=None, **save):
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img)
    rnd = random.Random(seed)
    for _ in range(12):
        x0, y0 = rnd.randrange(w), rnd.randrange(h)
        d.rectangle([x0, y0, x0 + rnd.randrange(w // 2 + 1), y0 + rnd.randrange(h // 2 + 1)],
                    fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    img.save(path, format=fmt, **save)
    return path


def run(*args, check=None, **kw):
    p = subprocess.run([LUMEN, *args], capture_output=True, **kw)
    if check is not None and p.returncode != check:
        raise AssertionError(f"lumen {' '.join(map(str, args))} exited {p.returncode}, wanted {check}\n"
                             f"stdout: {p.stdout[-2000:]!r}\nstderr: {p.stderr[-4000:]!r}")
    return p


def run_loading(*args, check=None):
    """run(), and the shared objects the dynamic loader mapped into the process (its own
    LD_DEBUG=files log, written to a file so that stderr stays lumen's)."""
    with tempfile.TemporaryDirectory(prefix="lumen-ld-") as d:
        env = {**os.environ, "LD_DEBUG": "files", "LD_DEBUG_OUTPUT": os.path.join(d, "ld")}
        p = run(*args, check=check, env=env)
        log = ""
        for name in os.listdir(d):
            with open(os.path.join(d, name), errors="replace") as f:
                log += f.read()
    loaded = set(re.findall(r"file=(\S+) \[\d+\];\s+generating link map", log))
    if not loaded:
        raise AssertionError(f"no loader log for lumen {' '.join(map(str, args))}")
    return p, loaded


def loads(loaded, name):
    """Whether a library whose file name starts with `name` ("libvips.so") was mapped."""
    return any(os.path.basename(f).startswith(name) for f in loaded)


def db_rows(catalog, query, *params):
    con = sqlite3.connect(catalog)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def states(catalog):
    """path (bytes) -> (state, reason)"""
    return {bytes(p) if isinstance(p, (bytes, memoryview)) else p.encode(): (s, r)
            for p, s, r in db_rows(catalog, "SELECT path, state, reason FROM locations")}


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-cli-")
        self.lib = os.path.join(self.tmp, "lib")
        os.makedirs(self.lib)
        self.catalog = os.path.join(self.tmp, "cat", "catalog.db")

    def tearDown(self):
        subprocess.run(["chmod", "-R", "u+rwx", self.tmp])
        shutil.rmtree(self.tmp, ignore_errors=True)

    def index(self, *extra, check=None, paths=None):
        return run("index", *(paths or [self.lib]), "--catalog", self.catalog, "--quiet", *extra, check=check)


class BadInput(Base):
    def make_library(self):
        L = self.lib
        picture(os.path.join(L, "good.jpg"))
        picture(os.path.join(L, "progressive.jpg"), progressive=True, quality=85)
        picture(os.path.join(L, "with space.png"), fmt="PNG")
        picture(os.path.join(L, "new\nline.webp"), fmt="WEBP")
        picture(os.fsdecode(os.path.join(os.fsencode(L), b"latin1-\xe9t\xe9.tif")), fmt="TIFF")
        picture(os.path.join(L, "anim.gif"), fmt="GIF")
        deep = os.path.join(L, *(["a-rather-long-folder-name-for-the-test-%02d" % i for i in range(6)]))
        os.makedirs(deep)
        picture(os.path.join(deep, "deep.jpg"))
        self.assertGreater(len(os.path.join(deep, "deep.jpg").encode()), 255)
        open(os.path.join(L, "empty.jpg"), "wb").close()
        good = read(os.path.join(L, "good.jpg"))
        with open(os.path.join(L, "truncated.jpg"), "wb") as f:
            f.write(good[: len(good) // 2])
        picture(os.path.join(L, "corrupt.png"), fmt="PNG")
        with open(os.path.join(L, "corrupt.png"), "r+b") as f:
            f.seek(200)
            f.write(bytes(range(256)) * 4)
        with open(os.path.join(L, "text.jpg"), "w") as f:
            f.write("this is a text file, not a photo\n")
        with open(os.path.join(L, "notes.txt"), "w") as f:
            f.write("not an image: a text document, indexed as one\n")
        write(os.path.join(L, "data.bin"), bytes(range(256)))  # neither: skipped quietly
        # 60000x60000 in the header of an otherwise tiny JPEG.
        data = bytearray(good)
        sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
        data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2
        write(os.path.join(L, "bomb.jpg"), bytes(data))
        os.symlink(os.path.join(L, "nowhere.jpg"), os.path.join(L, "broken.jpg"))
        os.symlink(os.path.join(L, "loop.jpg"), os.path.join(L, "loop.jpg"))
        os.symlink(L, os.path.join(L, "dirloop"))

    def test_every_bad_file_is_recorded_and_the_run_goes_on(self):
        self.make_library()
        p = run("index", self.lib, "--catalog", self.catalog, check=EXIT_SOME_FAILED)
        err = p.stderr.decode(errors="replace")
        self.assertIn("8 succeeded", err)
        st = states(self.catalog)
        L = os.fsencode(self.lib)

        def reason(name):
            s, r = st[os.path.join(L, name)]
            self.assertEqual(s, "failed", name)
            return r

        self.assertIn("empty file", reason(b"empty.jpg"))
        self.assertIn("truncated", reason(b"truncated.jpg"))
        self.assertIn("corrupt", reason(b"corrupt.png"))
        self.assertIn("not an image: the content is text", reason(b"text.jpg"))
        self.assertIn("60000x60000", reason(b"bomb.jpg"))
        self.assertIn("broken symbolic link", reason(b"broken.jpg"))
        self.assertIn("loop", reason(b"loop.jpg"))
        self.assertEqual(st[os.path.join(L, b"notes.txt")][0], "ok")
        self.assertEqual(st[os.path.join(L, b"data.bin")][0], "skipped")
        self.assertEqual(st[os.path.join(L, b"dirloop")][0], "skipped")
        for name in (b"good.jpg", b"progressive.jpg", b"with space.png", b"new\nline.webp",
                     b"latin1-\xe9t\xe9.tif", b"anim.gif"):
            self.assertEqual(st[os.path.join(L, name)][0], "ok", name)
        # The summary names failed files with their reasons.
        self.assertIn("bomb.jpg", err)
        self.assertIn("above the pixel limit", err)
        ok, = db_rows(self.catalog, "PRAGMA integrity_check")[0]
        self.assertEqual(ok, "ok")

    def test_unreadable_file_as_an_unprivileged_user(self):
        picture(os.path.join(self.lib, "fine.jpg"))
        picture(os.path.join(self.lib, "secret.jpg"))
        os.chmod(os.path.join(self.lib, "secret.jpg"), 0)
        cmd = [LUMEN, "index", self.lib, "--catalog", self.catalog, "--quiet"]
        if os.geteuid() == 0:
            # root reads everything: run as nobody, on a tree nobody can enter and a catalog it owns.
            os.chmod(self.tmp, 0o755)
            os.makedirs(os.path.dirname(self.catalog))
            subprocess.run(["chown", "-R", "nobody:nogroup", self.tmp], check=True)
            os.chown(os.path.join(self.lib, "secret.jpg"), 0, 0)
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + cmd
        p = subprocess.run(cmd, capture_output=True)
        self.assertEqual(p.returncode, EXIT_SOME_FAILED, p.stderr)
        st = states(self.catalog)
        s, r = st[os.fsencode(os.path.join(self.lib, "secret.jpg"))]
        self.assertEqual(s, "failed")
        self.assertIn("Permission denied", r)
        self.assertEqual(st[os.fsencode(os.path.join(self.lib, "fine.jpg"))][0], "ok")

    def test_size_and_pixel_limits_are_configurable(self):
        picture(os.path.join(self.lib, "a.jpg"), 1000, 800)
        self.index("--max-pixels", "0.5", check=EXIT_SOME_FAILED)
        (s, r), = states(self.catalog).values()
        self.assertIn("above the pixel limit of 0 MP", r.replace("0.5", "0"))
        shutil.rmtree(os.path.dirname(self.catalog))
        self.index("--max-file-size", "0.001", check=EXIT_SOME_FAILED)
        (s, r), = states(self.catalog).values()
        self.assertIn("size limit", r)


class Incremental(Base):
    def test_unchanged_files_are_not_opened_moves_keep_assets_deletes_are_missing(self):
        for i in range(5):
            picture(os.path.join(self.lib, f"p{i}.jpg"), seed=i)
        self.index(check=EXIT_OK)
        assets = dict(db_rows(self.catalog, "SELECT CAST(path AS TEXT), asset_id FROM locations"))
        hashes1 = db_rows(self.catalog, "SELECT hash FROM assets ORDER BY hash")

        # Rewrite p0 with other pixels but the same size and mtime: an identity match means the
        # file is not opened, so the catalog keeps the old hash.
        p0 = os.path.join(self.lib, "p0.jpg")
        st = os.stat(p0)
        data = bytearray(read(p0))
        data[-3] ^= 0xFF
        write(p0, bytes(data))
        os.utime(p0, ns=(st.st_atime_ns, st.st_mtime_ns))
        p = run("index", self.lib, "--catalog", self.catalog, "--json-logs", check=EXIT_OK)
        summary = [json.loads(l) for l in p.stderr.decode().splitlines() if '"summary"' in l][0]
        self.assertEqual(summary["unchanged"], "5")
        self.assertEqual(summary["succeeded"], "0")
        self.assertEqual(db_rows(self.catalog, "SELECT hash FROM assets ORDER BY hash"), hashes1)

        # Move one file, delete another.
        os.makedirs(os.path.join(self.lib, "moved"))
        os.rename(os.path.join(self.lib, "p1.jpg"), os.path.join(self.lib, "moved", "renamed.jpg"))
        os.remove(os.path.join(self.lib, "p2.jpg"))
        p = run("index", self.lib, "--catalog", self.catalog, "--json-logs", check=EXIT_OK)
        summary = [json.loads(l) for l in p.stderr.decode().splitlines() if '"summary"' in l][0]
        self.assertEqual(summary["known_content"], "1")
        self.assertEqual(summary["missing"], "2")
        rows = dict(db_rows(self.catalog, "SELECT CAST(path AS TEXT), asset_id FROM locations WHERE state='ok'"))
        self.assertEqual(rows[os.path.join(self.lib, "moved", "renamed.jpg")], assets[os.path.join(self.lib, "p1.jpg")])
        missing = dict(db_rows(self.catalog, "SELECT CAST(path AS TEXT), asset_id FROM locations WHERE state='missing'"))
        self.assertEqual(set(missing), {os.path.join(self.lib, "p1.jpg"), os.path.join(self.lib, "p2.jpg")})
        self.assertIsNotNone(missing[os.path.join(self.lib, "p2.jpg")])  # still knows its asset
        self.assertEqual(db_rows(self.catalog, "SELECT COUNT(*) FROM thumbnails")[0][0], 5)

    def test_changed_mtime_rereads(self):
        picture(os.path.join(self.lib, "a.jpg"), seed=1)
        self.index(check=EXIT_OK)
        picture(os.path.join(self.lib, "a.jpg"), seed=2)
        os.utime(os.path.join(self.lib, "a.jpg"), (1, 1))
        self.index(check=EXIT_OK)
        self.assertEqual(db_rows(self.catalog, "SELECT COUNT(*) FROM assets")[0][0], 2)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def make_corpus(folder, n, w=3000, h=2000):
    """n distinct PNGs of w x h (PNG has no shrink-on-load, so each costs a full decode): one
    encoded picture with a different trailer after IEND each, small on disk."""
    os.makedirs(folder, exist_ok=True)
    base = os.path.join(folder, "base.png")
    picture(base, w, h, fmt="PNG")
    data = read(base)
    os.remove(base)
    for i in range(n):
        write(os.path.join(folder, f"img{i:04d}.png"), data + i.to_bytes(4, "big"))


class Interruption(Base):
    def test_sigint_stops_within_a_second_with_work_committed(self):
        make_corpus(self.lib, 300)
        for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
            catalog = os.path.join(self.tmp, f"cat-{sig}.db")
            proc = subprocess.Popen([LUMEN, "index", self.lib, "--catalog", catalog, "--quiet"],
                                    stderr=subprocess.PIPE)
            # Signal as soon as the first batch is committed, well before the end.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(0.05)
                try:
                    if db_rows(catalog, "SELECT COUNT(*) FROM locations")[0][0] > 0:
                        break
                except sqlite3.Error:
                    pass
            t0 = time.monotonic()
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
            took = time.monotonic() - t0
            self.assertEqual(proc.returncode, code, err)
            self.assertLess(took, 1.0 * SLOW, f"stopping took {took:.2f}s")
            self.assertEqual(db_rows(catalog, "PRAGMA integrity_check")[0][0], "ok")
            done = db_rows(catalog, "SELECT COUNT(*) FROM locations WHERE state='ok'")[0][0]
            self.assertGreater(done, 0)
            self.assertLess(done, 300)
            status = db_rows(catalog, "SELECT status FROM runs ORDER BY id DESC LIMIT 1")[0][0]
            self.assertEqual(status, "interrupted")
        self.catalog = catalog
        self.index(check=EXIT_OK)
        self.assertEqual(db_rows(self.catalog, "SELECT COUNT(*) FROM locations WHERE state='ok'")[0][0], 300)

    def test_kill9_at_random_moments_never_corrupts_the_catalog(self):
        make_corpus(self.lib, 150, 2000, 1500)
        rnd = random.Random(7)
        iterations = int(os.environ.get("LUMEN_KILL_ITERATIONS", "8"))
        for _ in range(iterations):
            proc = subprocess.Popen([LUMEN, "index", self.lib, "--catalog", self.catalog, "--quiet"])
            time.sleep(rnd.uniform(0.0, 0.8) * SLOW)
            proc.kill()
            proc.wait()
            self.assertEqual(db_rows(self.catalog, "PRAGMA integrity_check")[0][0], "ok")
        self.index(check=EXIT_OK)
        self.assertEqual(db_rows(self.catalog, "SELECT COUNT(*) FROM locations WHERE state='ok'")[0][0], 150)
        self.assertEqual(db_rows(self.catalog, "SELECT COUNT(*) FROM thumbnails")[0][0], 150)


class Records(Base):
    def test_jsonl_fields_and_exif_against_exiftool(self):
        path = picture(os.path.join(self.lib, "cam.jpg"), 800, 600)
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-Make=Canon", "-Model=Canon EOS 20D",
                        "-DateTimeOriginal=2005:07:28 05:09:07", "-OffsetTimeOriginal=+02:00", "-ISO=400",
                        "-FNumber=2.8", "-ExposureTime=1/250", "-FocalLength=50", "-Orientation#=6",
                        "-GPSLatitude=33.8667", "-GPSLatitudeRef=S", "-GPSLongitude=151.21",
                        "-GPSLongitudeRef=E", path], check=True)
        p = run("process", self.lib, "--quiet", check=EXIT_OK)
        recs = [json.loads(l) for l in p.stdout.decode().splitlines()]
        self.assertEqual(len(recs), 1)
        r = recs[0]
        for k in ("file_path", "file_name", "content_hash", "width", "height", "format", "file_size",
                  "exif", "perceptual_hash", "thumbnail"):
            self.assertIn(k, r)
        self.assertEqual(r["file_path"], path)
        self.assertEqual((r["width"], r["height"], r["format"]), (800, 600, "jpeg"))
        self.assertEqual(r["file_size"], os.path.getsize(path))
        self.assertEqual(len(r["content_hash"]), 32)
        e = r["exif"]
        self.assertEqual((e["camera_make"], e["camera_model"]), ("Canon", "Canon EOS 20D"))
        self.assertEqual(e["captured_at"], "2005-07-28T05:09:07+02:00")
        self.assertEqual((e["iso"], e["aperture"], e["shutter_speed"], e["focal_length"]), (400, 2.8, "1/250", 50.0))
        self.assertEqual(e["orientation"], 6)
        self.assertAlmostEqual(e["gps_latitude"], -33.8667, places=3)
        self.assertAlmostEqual(e["gps_longitude"], 151.21, places=3)
        thumb = base64.b64decode(r["thumbnail"])
        self.assertEqual(thumb[8:12], b"WEBP")
        self.assertEqual((r["thumbnail_width"], r["thumbnail_height"]), (192, 256))  # orientation applied
        self.assertEqual(len(r["perceptual_hash"]), 16)

    def test_heic_and_avif_carry_their_exif(self):
        src = picture(os.path.join(self.tmp, "src.jpg"), 640, 480)
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-Make=Apple", "-Model=iPhone 12",
                        "-DateTimeOriginal=2021:06:01 12:34:56", src], check=True)
        for ext in ("heic", "avif"):
            subprocess.run(["vips", "copy", src, os.path.join(self.lib, f"photo.{ext}")], check=True)
        p = run("process", self.lib, "--quiet", check=EXIT_OK)
        recs = {r["format"]: r for r in map(json.loads, p.stdout.decode().splitlines())}
        self.assertEqual(set(recs), {"heif", "avif"})
        for r in recs.values():
            self.assertEqual((r["width"], r["height"]), (640, 480))
            self.assertEqual(r["exif"]["camera_model"], "iPhone 12")
            self.assertEqual(r["exif"]["captured_at"], "2021-06-01T12:34:56")

    def test_json_array_output_file_skip_existing_limit(self):
        for i in range(4):
            picture(os.path.join(self.lib, f"p{i}.png"), 300, 200, seed=i, fmt="PNG")
        out = os.path.join(self.tmp, "out.json")
        run("process", self.lib, "-f", "json", "-o", out, "--limit", "2", "--quiet", check=EXIT_OK)
        arr = json.loads(read(out))
        self.assertEqual(len(arr), 2)
        run("process", self.lib, "-f", "json", "-o", out, "--skip-existing", "--no-thumbnail", "--quiet",
            check=EXIT_OK)
        arr2 = json.loads(read(out))
        self.assertEqual(len(arr2), 4)
        self.assertEqual(arr2[:2], arr)
        self.assertIsNone(arr2[3]["thumbnail"])
        self.assertEqual(len({r["file_path"] for r in arr2}), 4)

        jl = os.path.join(self.tmp, "out.jsonl")
        run("process", self.lib, "-o", jl, "--limit", "3", "--quiet", check=EXIT_OK)
        with open(jl, "ab") as f:
            f.write(b'{"file_path": "half a rec')  # as if killed mid-write
        run("process", self.lib, "-o", jl, "--skip-existing", "--quiet", check=EXIT_OK)
        lines = read(jl).decode().splitlines()
        self.assertEqual(len(lines), 4)
        self.assertEqual(len({json.loads(l)["file_path"] for l in lines}), 4)

    def test_real_camera_photos_match_exiftool(self):
        photos = os.path.join(self.tmp, "photos")
        subprocess.run([os.path.join(ROOT, "scripts", "fetch-photos.sh"), "test", photos], check=True)
        p = run("process", photos, "--no-thumbnail", "--quiet", check=EXIT_OK)
        recs = {r["file_path"]: r for r in map(json.loads, p.stdout.decode().splitlines())}
        self.assertGreaterEqual(len(recs), 20)
        ref = json.loads(subprocess.run(["exiftool", "-json", "-n", "-r", "-ext", "jpg", "-Make", "-Model",
                                         "-DateTimeOriginal", "-ISO", "-FNumber", "-FocalLength",
                                         "-ImageWidth", "-ImageHeight", "-Orientation", photos],
                                        capture_output=True, check=True).stdout)
        checked = 0
        for x in ref:
            r = recs[x["SourceFile"]]
            self.assertEqual((r["width"], r["height"]), (x["ImageWidth"], x["ImageHeight"]))
            e = r["exif"]
            if "Make" in x:
                self.assertEqual(e["camera_make"], str(x["Make"]).strip())
                self.assertEqual(e["camera_model"], str(x["Model"]).strip())
                checked += 1
            if "DateTimeOriginal" in x:
                self.assertTrue(e["captured_at"].startswith(x["DateTimeOriginal"].replace(":", "-", 2).replace(" ", "T")))
            if "ISO" in x:
                self.assertEqual(e["iso"], x["ISO"])
            if "FNumber" in x:
                self.assertAlmostEqual(e["aperture"], x["FNumber"], places=2)
            if "FocalLength" in x:
                self.assertAlmostEqual(e["focal_length"], x["FocalLength"], places=2)
            self.assertEqual(e["orientation"], x.get("Orientation", 1))
        self.assertGreaterEqual(checked, 15)


def make_model(folder, family):
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "ml", "reference.py"), folder, family, "3"],
                   check=True)
    return folder


class Embeddings(Base):
    def test_index_and_process_embed_every_image_with_the_given_model(self):
        siglip = make_model(os.path.join(self.tmp, "siglip-tiny"), "siglip")
        clip = make_model(os.path.join(self.tmp, "clip-tiny"), "clip")
        for i in range(11):  # more than one batch, and a partial last batch
            picture(os.path.join(self.lib, f"p{i:02d}.jpg"), 320, 240, seed=i)
        shutil.copy(os.path.join(self.lib, "p00.jpg"), os.path.join(self.lib, "same-content.jpg"))

        p = run("process", self.lib, "--model", siglip, "--batch-size", "4", "--quiet", check=EXIT_OK)
        recs = {r["file_name"]: r for r in map(json.loads, p.stdout.decode().splitlines())}
        self.assertEqual(len(recs), 12)
        for r in recs.values():
            e = r["embedding"]
            self.assertEqual(len(e), 64)
            self.assertAlmostEqual(sum(x * x for x in e), 1.0, places=4)
        self.assertEqual(recs["p00.jpg"]["embedding"], recs["same-content.jpg"]["embedding"])
        dot = sum(a * b for a, b in zip(recs["p00.jpg"]["embedding"], recs["p01.jpg"]["embedding"]))
        self.assertLess(dot, 0.999)

        self.index("--model", siglip, check=EXIT_OK)
        rows = db_rows(self.catalog, "SELECT model, dim, COUNT(*) FROM embeddings GROUP BY model")
        self.assertEqual(rows, [("siglip:siglip-tiny", 64, 11)])  # 11 distinct contents
        p = run("index", self.lib, "--catalog", self.catalog, "--model", siglip, "--json-logs", check=EXIT_OK)
        self.assertIn('"unchanged":"12"', p.stderr.decode())
        # A second model: the same files are read again and gain its embeddings.
        self.index("--model", clip, check=EXIT_OK)
        rows = dict((m, n) for m, n in db_rows(self.catalog, "SELECT model, COUNT(*) FROM embeddings GROUP BY model"))
        self.assertEqual(rows, {"siglip:siglip-tiny": 11, "clip:clip-tiny": 11})
        self.assertEqual(len(db_rows(self.catalog, "SELECT vector FROM embeddings WHERE model='clip:clip-tiny'")[0][0]),
                         48 * 4)

    def test_a_bad_model_is_an_error_before_any_work(self):
        picture(os.path.join(self.lib, "a.jpg"))
        bad = os.path.join(self.tmp, "bad-model")
        os.makedirs(bad)
        p = run("index", self.lib, "--catalog", self.catalog, "--model", bad)
        self.assertEqual(p.returncode, EXIT_ERROR)
        self.assertIn(b"config.json", p.stderr)
        self.assertFalse(os.path.exists(self.catalog) and
                         db_rows(self.catalog, "SELECT COUNT(*) FROM locations")[0][0] > 0)


class RangeServer:
    """A loopback HTTP server for `lumen models pull`: serves a folder, honours Range requests,
    and cuts the first transfer of each file named in `cut` halfway (to test resuming)."""

    def __init__(self, root, cut=()):
        import http.server
        import threading
        self.requests = []
        server = self
        cut_left = set(cut)

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = os.path.join(root, self.path.lstrip("/"))
                server.requests.append((self.path, self.headers.get("Range")))
                if not os.path.isfile(path):
                    self.send_error(404)
                    return
                data = read(path)
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                name = os.path.basename(path)
                if name in cut_left and start == 0:
                    cut_left.discard(name)
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Models(Base):
    def test_pull_resumes_verifies_and_the_model_is_usable_by_name(self):
        src = os.path.join(self.tmp, "src")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "ml", "text_reference.py"), src, "siglip", "2"],
                       check=True)
        repo = os.path.join(self.tmp, "hub", "google", "siglip-base-patch16-224", "resolve", "main")
        os.makedirs(repo)
        for f in ("config.json", "preprocessor_config.json", "model.safetensors", "spiece.model"):
            shutil.copy(os.path.join(src, f), repo)
        server = RangeServer(os.path.join(self.tmp, "hub"), cut={"model.safetensors"})
        env = dict(os.environ, LUMEN_MODELS=os.path.join(self.tmp, "models"))
        dest = os.path.join(self.tmp, "models", "siglip-base-patch16-224")
        try:
            pull = [LUMEN, "models", "pull", "siglip-base-patch16-224", "--base-url", server.url, "--quiet"]
            p = subprocess.run(pull, env=env, capture_output=True)
            self.assertEqual(p.returncode, EXIT_ERROR, p.stderr)
            self.assertIn(b"kept for resuming", p.stderr)
            part = os.path.join(dest, "model.safetensors.part")
            self.assertGreater(os.path.getsize(part), 0)
            p = subprocess.run(pull, env=env, capture_output=True)
            self.assertEqual(p.returncode, EXIT_OK, p.stderr)
            ranged = [r for path, r in server.requests if path.endswith("model.safetensors") and r]
            self.assertEqual(len(ranged), 1)  # the second transfer resumed
        finally:
            server.close()
        for f in ("config.json", "model.safetensors", "spiece.model"):
            self.assertEqual(read(os.path.join(dest, f)), read(os.path.join(src, f)), f)
        self.assertFalse(os.path.exists(os.path.join(dest, "model.safetensors.part")))
        manifest = json.loads(read(os.path.join(dest, "lumen-manifest.json")))
        self.assertEqual(set(manifest), {"config.json", "preprocessor_config.json", "model.safetensors", "spiece.model"})

        verify = [LUMEN, "models", "verify", "siglip-base-patch16-224"]
        p = subprocess.run(verify, env=env, capture_output=True)
        self.assertEqual(p.returncode, EXIT_OK, p.stderr)
        self.assertIn(b"text tower loads", p.stderr)
        # A model used by name: lumen index --model NAME finds it in the models folder.
        picture(os.path.join(self.lib, "a.jpg"))
        p = subprocess.run([LUMEN, "index", self.lib, "--catalog", self.catalog, "--model", "siglip-base-patch16-224",
                            "--quiet"], env=env, capture_output=True)
        self.assertEqual(p.returncode, EXIT_OK, p.stderr)
        self.assertEqual(db_rows(self.catalog, "SELECT model FROM embeddings"), [("siglip:siglip-base-patch16-224",)])
        # Damage: verify names the file.
        with open(os.path.join(dest, "spiece.model"), "r+b") as f:
            f.seek(10)
            f.write(b"\xff\xfe")
        p = subprocess.run(verify, env=env, capture_output=True)
        self.assertEqual(p.returncode, EXIT_SOME_FAILED)
        self.assertIn(b"spiece.model: SHA-256 mismatch", p.stderr)

    def test_convert_writes_a_gguf_that_index_uses(self):
        src = make_model(os.path.join(self.tmp, "m"), "clip")
        out = os.path.join(self.tmp, "m-q8.gguf")
        run("models", "convert", src, out, "--type", "q8_0", check=EXIT_OK)
        self.assertEqual(read(out)[:4], b"GGUF")
        picture(os.path.join(self.lib, "a.jpg"))
        p = run("process", self.lib, "--model", out, "--quiet", check=EXIT_OK)
        r = json.loads(p.stdout.decode().splitlines()[0])
        self.assertEqual(len(r["embedding"]), 48)
        p = run("process", self.lib, "--model", src, "--quiet", check=EXIT_OK)
        r2 = json.loads(p.stdout.decode().splitlines()[0])
        dot = sum(a * b for a, b in zip(r["embedding"], r2["embedding"]))
        self.assertGreater(dot, 0.99)  # q8_0 GGUF vs the f32 folder, same image
        self.assertEqual(run("models", "pull", "no-such-model").returncode, EXIT_ERROR)


class Search(Base):
    def test_search_and_similar_rank_by_cosine_with_filters_and_clear_errors(self):
        model = os.path.join(self.tmp, "siglip-tiny")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "ml", "text_reference.py"), model, "siglip", "4"],
                       check=True)
        os.makedirs(os.path.join(self.lib, "a"))
        os.makedirs(os.path.join(self.lib, "b"))
        for i in range(6):
            picture(os.path.join(self.lib, "a" if i < 3 else "b", f"p{i}.jpg"), 400, 300, seed=10 + i)
        # A re-encoded, smaller copy of p0: the nearest neighbour of p0.
        Image.open(os.path.join(self.lib, "a", "p0.jpg")).resize((200, 150)).save(
            os.path.join(self.lib, "b", "p0-small.jpg"), quality=60)

        # search only reads: no catalog yet is said, and none is created.
        p = run("search", "a dog", "--catalog", self.catalog, "--model", model)
        self.assertEqual(p.returncode, EXIT_ERROR)
        self.assertIn(b"no catalog at", p.stderr)
        self.assertFalse(os.path.exists(self.catalog))
        self.index("--no-embedding", check=EXIT_OK)
        p = run("search", "a dog", "--catalog", self.catalog, "--model", model)
        self.assertEqual(p.returncode, EXIT_ERROR)
        self.assertIn(b"no image embeddings in the catalog yet", p.stderr)

        self.index("--model", model, check=EXIT_OK)
        p = run("search", "a photo of a dog", "--catalog", self.catalog, "--model", model, "-k", "4", "--json",
                check=EXIT_OK)
        hits = json.loads(p.stdout)
        self.assertEqual(len(hits), 4)
        cos = [h["cosine"] for h in hits]
        self.assertEqual(cos, sorted(cos, reverse=True))
        for h in hits:  # SigLIP's calibrated probability with the model's own scale and bias
            self.assertAlmostEqual(h["score"], 1 / (1 + math.exp(-(10 * h["cosine"] - 10))), places=5)
            self.assertTrue(os.path.exists(h["path"]))
        # The ANN path (forced on with LUMEN_ANN_MIN=0) gives the same ranking on a small library.
        ann = subprocess.run([LUMEN, "search", "a photo of a dog", "--catalog", self.catalog, "--model", model, "-k",
                              "4", "--json"], env=dict(os.environ, LUMEN_ANN_MIN="0"), capture_output=True, check=True)
        self.assertEqual([h["path"] for h in json.loads(ann.stdout)], [h["path"] for h in hits])
        self.assertTrue(os.path.exists(os.path.join(os.path.dirname(self.catalog), "ann", "siglip-siglip-tiny.hnsw")))
        p = run("search", "a photo of a dog", "--catalog", self.catalog, "--model", model, "--folder",
                os.path.join(self.lib, "a"), "--json", check=EXIT_OK)
        self.assertEqual({os.path.dirname(h["path"]) for h in json.loads(p.stdout)}, {os.path.join(self.lib, "a")})
        self.assertEqual(len(json.loads(p.stdout)), 3)

        p = run("similar", os.path.join(self.lib, "a", "p0.jpg"), "--catalog", self.catalog, "--model", model,
                "--json", check=EXIT_OK)
        hits = json.loads(p.stdout)
        self.assertEqual(hits[0]["path"], os.path.join(self.lib, "b", "p0-small.jpg"))
        self.assertNotIn(os.path.join(self.lib, "a", "p0.jpg"), [h["path"] for h in hits])  # not itself
        # By content hash, and for a file that is not in the catalog.
        p = run("similar", hits[0]["content_hash"], "--catalog", self.catalog, "--model", model, "--json",
                check=EXIT_OK)
        self.assertEqual(json.loads(p.stdout)[0]["path"], os.path.join(self.lib, "a", "p0.jpg"))
        outside = os.path.join(self.tmp, "outside.jpg")
        shutil.copy(os.path.join(self.lib, "a", "p0.jpg"), outside)
        with open(outside, "ab") as f:
            f.write(b"x")  # other bytes, same picture
        p = run("similar", outside, "--catalog", self.catalog, "--model", model, "--json", check=EXIT_OK)
        self.assertIn(json.loads(p.stdout)[0]["path"],
                      (os.path.join(self.lib, "a", "p0.jpg"), os.path.join(self.lib, "b", "p0-small.jpg")))

        p = run("search", "   ", "--catalog", self.catalog, "--model", model)
        self.assertEqual(p.returncode, EXIT_ERROR)
        self.assertIn(b"the query is empty", p.stderr)
        other = make_model(os.path.join(self.tmp, "clip-tiny"), "clip")
        p = run("search", "dog", "--catalog", self.catalog, "--model", other)
        self.assertEqual(p.returncode, EXIT_ERROR)
        self.assertIn(b"no image embeddings from clip:clip-tiny", p.stderr)
        self.assertIn(b"siglip:siglip-tiny", p.stderr)


class Tags(Base):
    def test_bank_build_then_tags_in_records_and_catalog(self):
        model = os.path.join(self.tmp, "siglip-tiny")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "ml", "text_reference.py"), model, "siglip", "6"],
                       check=True)
        vocab = os.path.join(self.tmp, "mine.tsv")
        with open(vocab, "w") as f:
            f.write("sourdough bread\tfood\nmy cat\tpets\n")
        for i in range(3):
            picture(os.path.join(self.lib, f"p{i}.jpg"), seed=i)
        common = ["--catalog", self.catalog, "--model", model, "--no-wordnet", "--vocab", vocab]
        p = run("tags", "build", *common, check=EXIT_OK)
        self.assertIn(b"terms", p.stderr)
        banks = os.listdir(os.path.join(os.path.dirname(self.catalog), "banks"))
        self.assertEqual(len(banks), 1)

        run("index", self.lib, "--tags", "--min-confidence", "0", *common, "--quiet", check=EXIT_OK)
        rows = db_rows(self.catalog, "SELECT COUNT(DISTINCT asset_id), COUNT(*) FROM tags")
        self.assertEqual(rows, [(3, 45)])  # 15 tags (the default) for each image
        # A new vocabulary (another bank) re-tags unchanged photos from their stored embeddings.
        vocab2 = os.path.join(self.tmp, "more.tsv")
        with open(vocab2, "w") as f:
            f.write("sourdough bread\tfood\nmy cat\tpets\nred kite\tbirds\n")
        p = run("index", self.lib, "--tags", *common[:-1], vocab2, check=EXIT_OK)
        self.assertIn(b"tagged 3 images from their stored embeddings", p.stderr)
        self.assertEqual(db_rows(self.catalog, "SELECT COUNT(DISTINCT bank) FROM tagged"), [(2,)])
        p = run("index", self.lib, "--tags", *common[:-1], vocab2, check=EXIT_OK)
        self.assertNotIn(b"tagged", p.stderr)  # nothing left to tag
        p = run("process", self.lib, "--tags", "--min-confidence", "0", "--max-tags", "4", *common, "--quiet",
                check=EXIT_OK)
        for r in map(json.loads, p.stdout.decode().splitlines()):
            tags = r["tags"]
            self.assertEqual(len(tags), 4)
            confs = [t["confidence"] for t in tags]
            self.assertEqual(confs, sorted(confs, reverse=True))
            for t in tags:
                self.assertTrue(0 < t["confidence"] < 1)
                self.assertTrue(t["name"] and t["category"] and t["path"])
        # A high floor keeps only what reaches it.
        p = run("process", self.lib, "--tags", "--min-confidence", "0.999", *common, "--quiet", check=EXIT_OK)
        for r in map(json.loads, p.stdout.decode().splitlines()):
            self.assertTrue(all(t["confidence"] >= 0.999 for t in r.get("tags", [])))

        # XMP sidecars: a new one for p1 (digiKam's name), and p0's existing Lightroom-style sidecar
        # merged: its own keyword and rating stay.
        existing = os.path.join(self.lib, "p0.xmp")
        subprocess.run(["exiftool", "-q", "-o", existing, "-XMP-dc:Subject=Family", "-XMP-xmp:Rating=5"],
                       check=True)
        p = run("index", self.lib, "--full", "--tags", "--write-xmp", "--max-tags", "3", "--min-confidence", "0",
                *common, "--quiet", check=EXIT_OK)
        ref = json.loads(subprocess.run(["exiftool", "-json", "-XMP-dc:Subject", "-XMP-lr:HierarchicalSubject",
                                         "-XMP-xmp:Rating", existing, os.path.join(self.lib, "p1.jpg.xmp")],
                                        capture_output=True, check=True).stdout)
        p0, p1 = ref
        subjects0 = p0["Subject"] if isinstance(p0["Subject"], list) else [p0["Subject"]]
        self.assertIn("Family", subjects0)
        self.assertEqual(len(subjects0), 4)  # Family + 3 tags
        self.assertEqual(p0["Rating"], 5)
        self.assertEqual(len(p1["Subject"]), 3)
        self.assertEqual(len(p1["HierarchicalSubject"]), 3)
        self.assertFalse(os.path.exists(os.path.join(self.lib, "p0.jpg.xmp")))
        # Running again does not repeat keywords.
        run("index", self.lib, "--full", "--tags", "--write-xmp", "--max-tags", "3", "--min-confidence", "0",
            *common, "--quiet", check=EXIT_OK)
        again = json.loads(subprocess.run(["exiftool", "-json", "-XMP-dc:Subject", existing], capture_output=True,
                                          check=True).stdout)[0]
        self.assertEqual(sorted(again["Subject"]), sorted(subjects0))
        self.assertEqual(run("index", self.lib, "--write-xmp", *common).returncode, EXIT_ERROR)  # needs --tags

        # Search restricted to a tag: only images that carry it.
        term, n = db_rows(self.catalog, "SELECT term, COUNT(*) FROM tags GROUP BY term ORDER BY COUNT(*), term LIMIT 1")[0]
        p = run("search", "a photo", *common[:4], "--tag", term, "--json", check=EXIT_OK)
        hits = json.loads(p.stdout)
        self.assertEqual(len(hits), n)
        tagged = {r[0] for r in db_rows(self.catalog, "SELECT lower(hex(a.hash)) FROM tags t JOIN assets a "
                                                      "ON a.id=t.asset_id WHERE t.term=?", term)}
        self.assertEqual({h["content_hash"] for h in hits}, tagged)

        # Relevance pools: opt-in, state kept in the catalog per bank (one pool byte + one counter per term).
        p = run("index", self.lib, "--full", "--tags", "--tag-pools", *common, check=EXIT_OK)
        self.assertIn(b"relevance pools:", p.stderr)
        state = db_rows(self.catalog, "SELECT DISTINCT length(p.state), t.terms FROM tag_pools p "
                                      "JOIN tagged t ON t.bank=p.bank")
        self.assertEqual(len(state), 1)
        self.assertEqual(state[0][0], 2 * state[0][1])

        # Rescore works from the stored embeddings alone: the photos can be gone.
        shutil.rmtree(self.lib)
        p = run("tags", "rescore", *common, "--min-confidence", "0", "--max-tags", "5", check=EXIT_OK)
        self.assertIn(b"re-scored 3 images", p.stderr)
        self.assertEqual(db_rows(self.catalog, "SELECT COUNT(DISTINCT asset_id), COUNT(*) FROM tags"), [(3, 15)])


class ProgressiveBank(Base):
    """`index --tags` with no label bank: the seed terms first, the rest in the background while photos
    are indexed, then a finished bank and every photo re-tagged against all of it."""

    def test_seed_then_background_then_retag(self):
        model = os.path.join(self.tmp, "siglip-tiny")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "ml", "text_reference.py"), model, "siglip", "6"],
                       check=True)
        for i in range(4):
            picture(os.path.join(self.lib, f"p{i}.jpg"), seed=20 + i)
        # Full WordNet vocabulary (~82K terms): far more than a tiny model encodes while 4 photos are indexed.
        common = ["--catalog", self.catalog, "--model", model, "--min-confidence", "0"]
        p = run("index", self.lib, "--tags", "--bank-seed", "300", "--no-bank-wait", *common, check=EXIT_OK)
        self.assertIn(b"label bank", p.stderr)
        (count,), = db_rows(self.catalog, "SELECT COUNT(*) FROM tagged")
        self.assertEqual(count, 4)
        terms = [r[0] for r in db_rows(self.catalog, "SELECT DISTINCT terms FROM tagged")]
        self.assertTrue(all(t >= 300 for t in terms), terms)
        self.assertEqual(db_rows(self.catalog, "SELECT COUNT(DISTINCT asset_id) FROM tags"), [(4,)])
        # Not finished: said so; the bank file holds the rows done so far.
        self.assertIn(b"resumes it", p.stderr)
        total = 82276 + 200  # WordNet nouns + supplemental terms, roughly: checked against the bank below
        self.assertLess(max(terms), total)

        # The next run resumes the bank, finishes it, and re-tags every photo against all of it from the
        # stored embeddings (the photos are unchanged: none is decoded again).
        p = run("index", self.lib, "--tags", "--write-xmp", *common, check=EXIT_OK)
        self.assertIn(b"tagged 4 images from their stored embeddings", p.stderr)
        # The re-tagging reached the XMP sidecars too: they hold the final tags.
        final_tags = {r[0] for r in db_rows(
            self.catalog, "SELECT t.term FROM tags t JOIN locations l ON l.asset_id=t.asset_id "
                          "WHERE CAST(l.path AS TEXT) LIKE '%p0.jpg'")}
        sidecar = json.loads(subprocess.run(["exiftool", "-json", "-XMP-dc:Subject",
                                             os.path.join(self.lib, "p0.jpg.xmp")],
                                            capture_output=True, check=True).stdout)[0]
        self.assertEqual(len(final_tags), 15)
        self.assertTrue(final_tags <= set(sidecar["Subject"]), (final_tags, sidecar["Subject"]))
        final = db_rows(self.catalog, "SELECT DISTINCT terms FROM tagged")
        self.assertEqual(len(final), 1)
        self.assertGreater(final[0][0], max(terms))
        self.assertGreater(final[0][0], 70000)
        progressive = db_rows(self.catalog, "SELECT asset_id, term, round(confidence, 6) FROM tags ORDER BY 1, 2")

        # The same tags as scoring everything against the finished bank in one go.
        run("tags", "rescore", *common[:4], "--min-confidence", "0", check=EXIT_OK)
        self.assertEqual(db_rows(self.catalog, "SELECT asset_id, term, round(confidence, 6) FROM tags ORDER BY 1, 2"),
                         progressive)
        p = run("index", self.lib, "--tags", *common, check=EXIT_OK)
        self.assertNotIn(b"tagged", p.stderr)


class Dupes(Base):
    def test_planted_duplicates_are_grouped_with_reasons(self):
        os.makedirs(os.path.join(self.lib, "backup"))
        for i in range(4):
            picture(os.path.join(self.lib, f"p{i}.jpg"), 800, 600, seed=40 + i)
        # p0: an exact copy under another name; p1: resized + recompressed; p2: a PNG re-save.
        shutil.copy(os.path.join(self.lib, "p0.jpg"), os.path.join(self.lib, "backup", "renamed.jpg"))
        Image.open(os.path.join(self.lib, "p1.jpg")).resize((400, 300)).save(
            os.path.join(self.lib, "p1-small.jpg"), quality=55)
        Image.open(os.path.join(self.lib, "p2.jpg")).save(os.path.join(self.lib, "p2.png"))
        self.index(check=EXIT_OK)
        p = run("dupes", "--catalog", self.catalog, "--json", check=EXIT_OK)
        groups = json.loads(p.stdout)
        by_files = {frozenset(os.path.basename(f["path"]) for f in g["files"]): g for g in groups}
        self.assertEqual(set(by_files), {frozenset({"p0.jpg", "renamed.jpg"}), frozenset({"p1.jpg", "p1-small.jpg"}),
                                         frozenset({"p2.jpg", "p2.png"})})
        exact = by_files[frozenset({"p0.jpg", "renamed.jpg"})]
        self.assertEqual(exact["tier"], "exact")
        small = by_files[frozenset({"p1.jpg", "p1-small.jpg"})]
        self.assertEqual(small["tier"], "near")
        kept = [f for f in small["files"] if f["keep"]]
        self.assertEqual([os.path.basename(f["path"]) for f in kept], ["p1.jpg"])
        self.assertIn("highest resolution", small["keep_reason"])
        other = [f for f in small["files"] if not f["keep"]][0]
        self.assertIn("pHash distance", other["reason"])
        png = by_files[frozenset({"p2.jpg", "p2.png"})]
        self.assertEqual([os.path.basename(f["path"]) for f in png["files"] if f["keep"]], ["p2.png"])
        # Strategies and the table.
        p = run("dupes", "--catalog", self.catalog, "--keep-under", os.path.join(self.lib, "backup"), "--json",
                check=EXIT_OK)
        exact = [g for g in json.loads(p.stdout) if g["tier"] == "exact"][0]
        self.assertEqual([os.path.basename(f["path"]) for f in exact["files"] if f["keep"]], ["renamed.jpg"])
        p = run("dupes", "--catalog", self.catalog, "--keep", "smallest", check=EXIT_OK)
        self.assertIn(b"keep " + os.path.join(self.lib, "p1-small.jpg").encode(), p.stdout)
        self.assertIn(b"3 duplicate groups", p.stderr)
        # Nothing was touched.
        self.assertEqual(sorted(os.listdir(self.lib)), ["backup", "p0.jpg", "p1-small.jpg", "p1.jpg", "p2.jpg", "p2.png", "p3.jpg"])


class Cli(Base):
    def test_exit_codes_and_profile(self):
        self.assertEqual(run("index").returncode, EXIT_ERROR)
        self.assertEqual(run("frobnicate").returncode, EXIT_ERROR)
        picture(os.path.join(self.lib, "a.jpg"))
        open(os.path.join(self.tmp, "file"), "w").close()
        p = run("index", self.lib, "--catalog", os.path.join(self.tmp, "file", "x.db"))
        self.assertEqual(p.returncode, EXIT_ERROR)
        self.assertIn(b"catalog", p.stderr)
        p = run("index", self.lib, "--catalog", self.catalog, "--profile", "--model-input", "224", check=EXIT_OK)
        for stage in (b"decode", b"thumbnail", b"perceptual hash", b"model input", b"exif/xmp", b"hash"):
            self.assertIn(stage, p.stderr)

    def test_stats(self):
        picture(os.path.join(self.lib, "a.jpg"))
        open(os.path.join(self.lib, "b.jpg"), "wb").close()
        self.index(check=EXIT_SOME_FAILED)
        p = run("stats", "--catalog", self.catalog, "--json", "--failures", check=EXIT_OK)
        j = json.loads(p.stdout)
        self.assertEqual(j["assets"], 1)
        self.assertEqual(j["locations"]["failed"], 1)
        self.assertIn("empty", j["failures"][0]["reason"])


if __name__ == "__main__":
    unittest.main()
