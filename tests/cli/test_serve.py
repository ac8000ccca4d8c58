"""End-to-end tests of `lumen serve` (issue 19): the REST API on a catalog of real photos (Debian
packages, scripts/fetch-photos.sh test) and a generated video, text search with a generated
model, and the security rules: Host, token, same origin, no path from a request, bad bodies.
The browser tests (Chromium driving the app) are in test_serve_browser.py.
"""
import http.client
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from PIL import Image

from test_cli import EXIT_OK, LUMEN, ROOT, run

FFMPEG = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]


def start_server(catalog, *extra, env=None):
    """Starts lumen serve on a free port; returns (process, base URL, token)."""
    p = subprocess.Popen([LUMEN, "serve", "--catalog", catalog, "--listen", "127.0.0.1:0", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = p.stdout.readline().decode()
    if "http://" not in line:
        p.kill()
        raise AssertionError(f"lumen serve did not start: {line!r} {p.stderr.read()[-2000:]!r}")
    url = line.split(" at ", 1)[1].strip()
    base, _, query = url.partition("?")
    token = urllib.parse.parse_qs(query).get("token", [""])[0]
    return p, base.rstrip("/"), token


def stop_server(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    p.stdout.close()
    p.stderr.close()
    return p.returncode


class Client:
    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Host": f"{self.host}:{self.port}"}
        h.update(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        # skip_host: the Host header is the test's own (a wrong one is a test case)
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            if v is not None:
                c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


class Serve(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lumen-serve-")
        cls.lib = os.path.join(cls.tmp, "lib")
        photos = os.path.join(cls.tmp, "photos")
        subprocess.run([os.path.join(ROOT, "scripts", "fetch-photos.sh"), "test", photos], check=True)
        os.makedirs(os.path.join(cls.lib, "a"))
        os.makedirs(os.path.join(cls.lib, "b"))
        jpgs = sorted(os.path.join(r, f) for r, _, fs in os.walk(photos) for f in fs if f.lower().endswith(".jpg"))
        assert len(jpgs) >= 10, jpgs
        for i, src in enumerate(jpgs[:10]):
            shutil.copy(src, os.path.join(cls.lib, "a" if i < 6 else "b", os.path.basename(src)))
        # Two shots: a test pattern, then the last photo from 1.5 s: a search that matches that
        # photo finds the video at that moment.
        cls.video = os.path.join(cls.lib, "b", "clip.mp4")
        cls.in_video = os.path.join(cls.lib, "b", os.path.basename(jpgs[9]))
        subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "testsrc=duration=1.5:size=320x240:rate=25", "-loop", "1",
                                 "-t", "1.5", "-i", cls.in_video, "-filter_complex",
                                 "[1:v]scale=320:240,setsar=1,fps=25[b];[0:v][b]concat=n=2:v=1[v]", "-map", "[v]",
                                 "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", cls.video], check=True)
        # Where three photos of folder a were taken: two in Sydney, 0.01 degrees apart, one near
        # Paris (at 48.5, 2.5: exact in EXIF's rationals and in a float, for the box edges).
        cls.placed = {}
        for name, (lat, lon) in zip(sorted(os.listdir(os.path.join(cls.lib, "a")))[:3],
                                    ((-33.87, 151.21), (-33.86, 151.20), (48.5, 2.5))):
            path = os.path.join(cls.lib, "a", name)
            subprocess.run(["exiftool", "-q", "-overwrite_original", f"-GPSLatitude={abs(lat)}",
                            f"-GPSLatitudeRef={'S' if lat < 0 else 'N'}", f"-GPSLongitude={lon}",
                            "-GPSLongitudeRef=E", path], check=True)
            cls.placed[path] = (lat, lon)
        cls.model = os.path.join(cls.tmp, "siglip-tiny")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "ml", "text_reference.py"), cls.model,
                        "siglip", "4"], check=True)
        cls.catalog = os.path.join(cls.tmp, "cat", "catalog.db")
        run("index", cls.lib, "--catalog", cls.catalog, "--model", cls.model, "--quiet", check=EXIT_OK)
        cls.proc, cls.base, cls.token = start_server(cls.catalog, "--model", cls.model)
        cls.c = Client(cls.base)
        cls.auth = {"X-Lumen-Token": cls.token}

    @classmethod
    def tearDownClass(cls):
        stop_server(cls.proc)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def get(self, path, headers=None):
        return self.c.request("GET", path, headers={**self.auth, **(headers or {})})

    def get_json(self, path):
        status, _, body = self.get(path)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def files(self):
        return sorted(os.path.join(r, f) for r, _, fs in os.walk(self.lib) for f in fs)

    def timeline_ids(self, page=4):
        t = self.get_json("/api/v1/timeline")
        ids = []
        while len(ids) < t["total"]:
            s = self.get_json(f"/api/v1/timeline/assets?offset={len(ids)}&count={page}")
            self.assertEqual(s["offset"], len(ids))
            self.assertTrue(s["ids"])
            ids += s["ids"]
        return t, ids

    def test_info_and_timeline_cover_every_asset_once_newest_first(self):
        info = self.get_json("/api/v1/info")
        self.assertEqual((info["assets"], info["photos"], info["videos"]), (11, 10, 1))
        self.assertTrue(info["text_search"])
        t, ids = self.timeline_ids()
        self.assertEqual(t["total"], 11)
        self.assertEqual(len(set(ids)), 11)
        self.assertEqual(sum(t["counts"]), 11)
        # Months newest first, undated ("") last; offsets are where each month starts.
        dated = [m for m in t["months"] if m]
        self.assertEqual(dated, sorted(dated, reverse=True))
        self.assertEqual(t["offsets"], [sum(t["counts"][:i]) for i in range(len(t["counts"]))])
        dates = self.get_json("/api/v1/timeline/assets?offset=0&count=100")["dates"]
        known = [d for d in dates if d]
        self.assertEqual(known, sorted(known, reverse=True))
        # By day: one bucket per distinct date, each covering exactly that date's assets, inside
        # its month's range.
        d = self.get_json("/api/v1/timeline?group=day")
        self.assertNotIn("months", d)
        self.assertEqual(sum(d["counts"]), 11)
        self.assertEqual(len(d["days"]), len(set(dates)))
        for day, off, n in zip(d["days"], d["offsets"], d["counts"]):
            want = int(day.replace("-", "")) if day else 0
            self.assertEqual(dates[off:off + n], [want] * n, day)
            month = t["months"].index(day[:7])
            self.assertTrue(t["offsets"][month] <= off and off + n <= t["offsets"][month] + t["counts"][month])
        self.assertEqual(self.get("/api/v1/timeline?group=week")[0], 400)
        # Every asset's details name a file of the library; together they are the library.
        paths = []
        for i in ids:
            d = self.get_json(f"/api/v1/assets/{i}")
            self.assertEqual(d["id"], i)
            paths += d["paths"]
        self.assertEqual(sorted(paths), self.files())
        # Past the end: an empty slice, not an error.
        self.assertEqual(self.get_json("/api/v1/timeline/assets?offset=50&count=10")["ids"], [])

    def test_details_thumbnail_and_original(self):
        _, ids = self.timeline_ids(100)
        by_path = {}
        for i in ids:
            d = self.get_json(f"/api/v1/assets/{i}")
            by_path[d["paths"][0]] = d
        v = by_path[self.video]
        self.assertEqual(v["media"], "video")
        self.assertAlmostEqual(v["duration"], 3.0, delta=0.1)
        self.assertTrue(v["shots"])
        photo = next(d for p, d in by_path.items() if p.endswith(".jpg"))
        self.assertEqual(photo["media"], "photo")
        self.assertGreater(photo["width"], 0)
        # The thumbnail decodes; its ETag revalidates to 304 with no body; it is cacheable.
        status, h, body = self.get(f"/api/v1/assets/{photo['id']}/thumbnail")
        self.assertEqual(status, 200)
        self.assertEqual(h["content-type"], "image/webp")
        self.assertIn("immutable", h["cache-control"])
        im = Image.open(io.BytesIO(body))
        im.load()
        self.assertGreater(im.width, 0)
        status, _, body = self.get(f"/api/v1/assets/{photo['id']}/thumbnail", {"If-None-Match": h["etag"]})
        self.assertEqual((status, body), (304, b""))
        # The original: the file's bytes; a Range is a 206 with exactly those bytes.
        with open(photo["paths"][0], "rb") as f:
            data = f.read()
        status, h, body = self.get(f"/api/v1/assets/{photo['id']}/original")
        self.assertEqual((status, h["content-type"]), (200, "image/jpeg"))
        self.assertEqual(body, data)
        with open(self.video, "rb") as f:
            vdata = f.read()
        status, h, body = self.get(f"/api/v1/assets/{v['id']}/original", {"Range": "bytes=100-1099"})
        self.assertEqual(status, 206)
        self.assertEqual(h["content-range"], f"bytes 100-1099/{len(vdata)}")
        self.assertEqual(body, vdata[100:1100])
        self.assertEqual(h["content-type"], "video/mp4")
        status, h, body = self.get(f"/api/v1/assets/{v['id']}/original", {"Range": f"bytes={len(vdata) - 10}-"})
        self.assertEqual((status, body), (206, vdata[-10:]))

    def test_a_changed_or_deleted_file_is_not_served(self):
        _, ids = self.timeline_ids(100)
        victim = os.path.join(self.lib, "b", "changed.jpg")
        gone = os.path.join(self.lib, "b", "gone.jpg")
        # Copies made for this test only: the library the other tests see is unchanged.
        src = next(p for p in self.files() if p.endswith(".jpg"))
        tmp = tempfile.mkdtemp(prefix="lumen-serve-change-")
        try:
            lib = os.path.join(tmp, "lib")
            os.makedirs(lib)
            victim, gone = os.path.join(lib, "changed.jpg"), os.path.join(lib, "gone.jpg")
            shutil.copy(src, victim)
            Image.open(src).save(gone, quality=50)
            catalog = os.path.join(tmp, "c.db")
            run("index", lib, "--catalog", catalog, "--no-embedding", "--quiet", check=EXIT_OK)
            p, base, token = start_server(catalog)
            try:
                c = Client(base)
                got = {}
                s, _, body = c.request("GET", "/api/v1/timeline/assets?offset=0&count=10", headers={"X-Lumen-Token": token})
                for i in json.loads(body)["ids"]:
                    s, _, body = c.request("GET", f"/api/v1/assets/{i}", headers={"X-Lumen-Token": token})
                    got[json.loads(body)["paths"][0]] = i
                with open(victim, "ab") as f:
                    f.write(b"more bytes")
                os.remove(gone)
                for path in (victim, gone):
                    s, _, body = c.request("GET", f"/api/v1/assets/{got[path]}/original", headers={"X-Lumen-Token": token})
                    self.assertEqual(s, 404, body)
                    self.assertIn(b"no location holds the indexed file", body)
            finally:
                stop_server(p)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_search_by_text_and_filters(self):
        # The server's text search ranks as `lumen search` does with the same model.
        cli = json.loads(run("search", "a photo of a dog", "--catalog", self.catalog, "--model", self.model, "-k",
                             "5", "--json", check=EXIT_OK).stdout)
        status, _, body = self.c.request("POST", "/api/v1/search", {"q": "a photo of a dog", "limit": 5},
                                         {**self.auth, "Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        r = json.loads(body)
        self.assertEqual(len(r["ids"]), 5)
        self.assertEqual(r["scores"], sorted(r["scores"], reverse=True))
        paths = [self.get_json(f"/api/v1/assets/{i}")["paths"][0] for i in r["ids"]]
        self.assertEqual(paths, [h["path"] for h in cli])
        # Moments: the video's is the CLI's; photos have none.
        self.assertEqual(r["moments"], [h.get("t") for h in cli])
        r11 = self.get_json("/api/v1/search?q=a%20photo%20of%20a%20dog&limit=11")
        self.assertEqual(sum(t is not None for t in r11["moments"]), 1)
        # GET with the same fields gives the same answer.
        self.assertEqual(self.get_json("/api/v1/search?q=a%20photo%20of%20a%20dog&limit=5")["ids"], r["ids"])
        # Filters: media and folder, alone and with the text.
        vids = self.get_json("/api/v1/search?media=video")["ids"]
        self.assertEqual([self.get_json(f"/api/v1/assets/{i}")["paths"][0] for i in vids], [self.video])
        folder = urllib.parse.quote(os.path.join(self.lib, "a"))
        ids = self.get_json(f"/api/v1/search?folder={folder}&limit=100")["ids"]
        self.assertEqual(len(ids), 6)
        ids = self.get_json(f"/api/v1/search?folder={folder}&q=dog&limit=100")["ids"]
        self.assertEqual(len(ids), 6)
        for i in ids:
            self.assertTrue(self.get_json(f"/api/v1/assets/{i}")["paths"][0].startswith(os.path.join(self.lib, "a")))

    def test_similar_ranks_as_lumen_similar_does(self):
        _, ids = self.timeline_ids(100)
        photo = next(d for d in (self.get_json(f"/api/v1/assets/{i}") for i in ids) if d["media"] == "photo")
        cli = json.loads(run("similar", photo["hash"], "--catalog", self.catalog, "--model", self.model, "-k", "4",
                             "--json", check=EXIT_OK).stdout)
        r = self.get_json(f"/api/v1/search?similar={photo['id']}&limit=4")
        self.assertEqual(len(r["ids"]), 4)
        self.assertNotIn(photo["id"], r["ids"])
        self.assertEqual(r["scores"], sorted(r["scores"], reverse=True))
        paths = [self.get_json(f"/api/v1/assets/{i}")["paths"][0] for i in r["ids"]]
        self.assertEqual(paths, [h["path"] for h in cli if h["path"] not in photo["paths"]][:4])
        # A video hit names its moment: the photo's look-alike is the video's second shot.
        inside = next(d for d in (self.get_json(f"/api/v1/assets/{i}") for i in ids) if self.in_video in d["paths"])
        r = self.get_json(f"/api/v1/search?similar={inside['id']}&limit=10")
        self.assertEqual(len(r["moments"]), len(r["ids"]))
        media = [self.get_json(f"/api/v1/assets/{i}")["media"] for i in r["ids"]]
        self.assertIn("video", media)
        for m, t in zip(media, r["moments"]):
            if m == "video":
                self.assertGreaterEqual(t, 1.5)
                self.assertLessEqual(t, 3.0)
            else:
                self.assertIsNone(t)
        self.assertEqual(media[0], "video", "the video's frame of the same photo ranks first")
        for bad, want in (("similar=abc", 400), ("similar=0", 400), ("similar=99999999", 404),
                          (f"similar={photo['id']}&q=dog", 400)):
            self.assertEqual(self.get(f"/api/v1/search?{bad}")[0], want, bad)

    def test_map_clusters_and_the_photos_of_a_box(self):
        _, ids = self.timeline_ids(100)
        details = [self.get_json(f"/api/v1/assets/{i}") for i in ids]
        placed = {d["id"]: (d["metadata"]["latitude"], d["metadata"]["longitude"])
                  for d in details if "latitude" in d.get("metadata", {})}
        self.assertEqual(len(placed), 3, placed)
        path_of = {d["id"]: d["paths"][0] for d in details}
        for i, (lat, lon) in placed.items():
            self.assertAlmostEqual(lat, self.placed[path_of[i]][0], places=4)
            self.assertAlmostEqual(lon, self.placed[path_of[i]][1], places=4)
        sydney = sorted(i for i, (lat, _) in placed.items() if lat < 0)
        paris = [i for i, (lat, _) in placed.items() if lat > 0]
        # The world in 4 x 2 cells of 90 degrees: Paris in cell 2 (top row), Sydney in cell 7.
        m = self.get_json("/api/v1/map?cols=4&rows=2")
        self.assertEqual((m["total"], m["all"], m["cols"], m["rows"]), (3, 3, 4, 2))
        self.assertEqual((m["cell"], m["count"]), ([2, 7], [1, 2]))
        self.assertEqual(m["id"][0], paris[0])
        self.assertIn(m["id"][1], sydney)
        self.assertAlmostEqual(m["lat"][1], -33.865, places=3)
        self.assertAlmostEqual(m["lon"][1], 151.205, places=3)
        # Zoomed in on Sydney: the two photos apart, Paris out of the box.
        box = "west=151.19&south=-33.88&east=151.22&north=-33.85"
        m = self.get_json(f"/api/v1/map?{box}&cols=10&rows=10")
        self.assertEqual((m["total"], m["count"]), (2, [1, 1]))
        self.assertEqual(sorted(m["id"]), sydney)
        a = self.get_json(f"/api/v1/map/assets?{box}")
        self.assertEqual((a["total"], sorted(a["ids"])), (2, sydney))
        a = self.get_json(f"/api/v1/map/assets?{box}&limit=1")
        self.assertEqual((a["total"], len(a["ids"])), (2, 1))
        self.assertEqual(self.get_json("/api/v1/map/assets?west=0&east=10&south=40&north=50")["ids"], paris)
        # Boxes side by side hold each photo once, even cut through a photo's position.
        for cut in ("151.2", "151.21", "2.5"):
            west = self.get_json(f"/api/v1/map/assets?east={cut}")["ids"]
            east = self.get_json(f"/api/v1/map/assets?west={cut}")["ids"]
            self.assertEqual(sorted(west + east), sorted(placed), cut)
        for cut in ("-33.87", "48.5"):
            north = self.get_json(f"/api/v1/map?south={cut}")["total"]
            south = self.get_json(f"/api/v1/map?north={cut}")["total"]
            self.assertEqual(north + south, 3, cut)
        # Nothing in the middle of the Pacific.
        self.assertEqual(self.get_json("/api/v1/map?west=-170&east=-160&south=-10&north=0")["total"], 0)
        for bad in ("west=200", "west=10&east=5", "south=-91", "north=nan", "west=1e2", "west=", "cols=0",
                    "rows=257", "west=-0x10", "east=--1"):
            self.assertEqual(self.get(f"/api/v1/map?{bad}")[0], 400, bad)
            if not bad.startswith("rows"):
                self.assertEqual(self.get(f"/api/v1/map/assets?{bad.replace('cols', 'limit')}")[0], 400, bad)
        self.assertEqual(self.get("/api/v1/map/assets?limit=10001")[0], 400)

    def test_security_every_request_is_checked(self):
        good = {"X-Lumen-Token": self.token}
        # Wrong or missing Host: refused before anything else (DNS rebinding).
        for host in ("evil.example:80", f"evil.example:{self.c.port}", "", f"127.0.0.1:{self.c.port + 1}"):
            status, _, body = self.c.request("GET", "/api/v1/info", headers={**good, "Host": host or None})
            self.assertIn(status, (400, 403), (host, body))
        status, _, _ = self.c.request("GET", "/api/v1/info", headers={**good, "Host": f"localhost:{self.c.port}"})
        self.assertEqual(status, 200)
        # Missing or wrong token.
        for h in ({}, {"X-Lumen-Token": "0" * 32}, {"Authorization": "Bearer nope"}, {"Cookie": "lumen_token=x"}):
            for path in ("/api/v1/info", "/api/v1/timeline", "/api/v1/assets/1/original", "/api/v1/assets/1/thumbnail"):
                status, _, body = self.c.request("GET", path, headers=h)
                self.assertEqual(status, 401, (path, h, body))
                self.assertNotIn(b"\xff\xd8", body)
        status, _, _ = self.c.request("GET", "/api/v1/info", headers={"Authorization": f"Bearer {self.token}"})
        self.assertEqual(status, 200)
        # The page: the printed URL sets an HttpOnly cookie and redirects; the cookie then reads.
        status, h, _ = self.c.request("GET", f"/?token={self.token}")
        self.assertEqual(status, 303)
        self.assertIn("HttpOnly", h["set-cookie"])
        self.assertIn("SameSite=Strict", h["set-cookie"])
        cookie = h["set-cookie"].split(";")[0]
        self.assertEqual(self.c.request("GET", "/", headers={"Cookie": cookie})[0], 200)
        self.assertEqual(self.c.request("GET", "/")[0], 401)
        self.assertEqual(self.c.request("GET", "/?token=wrong")[0], 401)
        self.assertEqual(self.c.request("GET", "/api/v1/info", headers={"Cookie": cookie})[0], 200)
        # A state-changing request: the token in a header and the same origin, never a cookie alone.
        body = {"media": "video"}
        same = {"Origin": self.base, "Content-Type": "application/json"}
        self.assertEqual(self.c.request("POST", "/api/v1/search", body, {**good, **same})[0], 200)
        self.assertEqual(self.c.request("POST", "/api/v1/search", body, {"Cookie": cookie, **same})[0], 403)
        for bad in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
            status, _, _ = self.c.request("POST", "/api/v1/search", body, {**good, "Content-Type": "application/json", **bad})
            self.assertEqual(status, 403, bad)
        self.assertEqual(self.c.request("POST", "/api/v1/search", body, {"Origin": self.base})[0], 401)
        # Bad bodies: malformed, not an object, wrong types, huge.
        for raw, want in ((b"{bad", 400), (b"[1,2]", 400), (b'"x"', 400), (b'{"q": 5.5}', 400),
                          (b'{"media": "all"}', 400), (b'{"limit": 0}', 400), (b'{"limit": "abc"}', 400),
                          (b'{"q": "' + b"a" * 5000 + b'"}', 400), (b"{" * 100000, 400), (b" " * (2 << 20), 413)):
            status, _, resp = self.c.request("POST", "/api/v1/search", raw, {**good, "Content-Type": "application/json"})
            self.assertEqual(status, want, raw[:40])
            self.assertIn(b"error", resp)
        # No path from a request is ever opened: traversal and absolute paths are not routes,
        # ids that do not exist are 404, folders outside the library match nothing.
        for path in ("/api/v1/assets/../../etc/passwd", "/api/v1/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                     "/etc/passwd", "/api/v1/assets//etc/passwd/original", "/api/v1/assets/1/original/../../x",
                     "/api/v1/assets/-1", "/api/v1/assets/0", "/api/v1/assets/99999999/original",
                     "/api/v1/assets/99999999/thumbnail", "/api/v1/assets/1x", "/api/v1/assets/1e3",
                     "/api/v1/assets/123456789012345678901234567890", "/app.js/../../etc/passwd",
                     "/api/v1/timeline/assets?offset=-1&count=5", "/api/v1/timeline/assets?offset=0&count=0",
                     "/api/v1/timeline/assets?offset=0&count=100000", "/api/v1/timeline/assets?offset=x&count=1",
                     "/api/v1/search?folder=../../etc", "/api/v1/search?limit=-5", "/api/v1/search?media=../x"):
            status, _, resp = self.get(path)
            self.assertIn(status, (400, 404), (path, resp))
            self.assertNotIn(b"root:", resp)
        for folder in ("/etc", "/", "/tmp/../etc"):
            ids = self.get_json(f"/api/v1/search?folder={urllib.parse.quote(folder)}")["ids"]
            if folder == "/":
                self.assertEqual(len(ids), 11)  # everything in the catalog, and only that
            else:
                self.assertEqual(ids, [])
        # The server is still healthy after all of it.
        self.assertEqual(self.get_json("/api/v1/info")["assets"], 11)

    def test_non_loopback_needs_a_token_and_a_taken_port_is_a_clear_error(self):
        p = run("serve", "--catalog", self.catalog, "--listen", "0.0.0.0:0")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"needs --token", p.stderr)
        port = urllib.parse.urlparse(self.base).port
        p = run("serve", "--catalog", self.catalog, "--listen", f"127.0.0.1:{port}", timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"cannot listen", p.stderr)
        p = run("serve", "--catalog", os.path.join(self.tmp, "none.db"), "--listen", "127.0.0.1:0")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"no catalog", p.stderr)
        # A token of the user's own works, and is not printed.
        env = dict(os.environ, LUMEN_TOKEN="s3cret-token-of-mine")
        proc, base, printed = start_server(self.catalog, env=env)
        try:
            self.assertEqual(printed, "")
            c = Client(base)
            self.assertEqual(c.request("GET", "/api/v1/info", headers={"X-Lumen-Token": "s3cret-token-of-mine"})[0], 200)
            self.assertEqual(c.request("GET", "/api/v1/info", headers={"X-Lumen-Token": self.token})[0], 401)
        finally:
            self.assertEqual(stop_server(proc), 143)

    def test_the_timeline_follows_the_catalog(self):
        before = self.get_json("/api/v1/info")["assets"]
        extra = os.path.join(self.tmp, "extra")
        os.makedirs(extra, exist_ok=True)
        Image.new("RGB", (320, 200), (200, 30, 30)).save(os.path.join(extra, "new.jpg"))
        # (The last test of the class by name: the others see the library as it was.)
        run("index", extra, "--catalog", self.catalog, "--no-embedding", "--quiet", check=EXIT_OK)
        deadline = time.time() + 10
        while time.time() < deadline and self.get_json("/api/v1/info")["assets"] == before:
            time.sleep(0.3)
        self.assertEqual(self.get_json("/api/v1/info")["assets"], before + 1)
        t, ids = self.timeline_ids(100)
        self.assertEqual(len(set(ids)), before + 1)


if __name__ == "__main__":
    unittest.main()
