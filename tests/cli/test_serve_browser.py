"""The web app of `lumen serve` in a real browser (issue 19): Debian's Chromium driven by
playwright-core from npm (serve_browser.js), on a catalog of real photos (Debian packages), a
video and duplicates: the grid shows every asset, thumbnails decode, search finds the photo the
CLI finds, the folders view, the duplicates page applies and undoes an action (the files on disk
say so), and jobs started from the page show their progress and finish.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from test_cli import EXIT_OK, ROOT, run
from test_serve import FFMPEG, Client, start_server, stop_server
from test_serve_actions import make_photo

PLAYWRIGHT = "playwright-core@1.65.2"


def playwright_core():
    """The playwright-core package, fetched from npm once into the build cache (never committed);
    its browsers are never downloaded: the test runs Debian's Chromium."""
    cache = os.environ.get("LUMEN_CACHE", os.path.expanduser("~/.cache/lumen-build"))
    dest = os.path.join(cache, "npm", "playwright-core-1.65.2")
    if not os.path.exists(os.path.join(dest, "package", "index.js")):
        os.makedirs(os.path.join(cache, "npm"), exist_ok=True)
        tgz = os.path.join(cache, "npm", "playwright-core-1.65.2.tgz")
        if not os.path.exists(tgz):
            subprocess.run(["npm", "pack", "--silent", PLAYWRIGHT], cwd=os.path.dirname(tgz), check=True,
                           stdout=subprocess.DEVNULL)
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        subprocess.run(["tar", "-xzf", tgz, "-C", tmp], check=True)
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(tmp, dest)
    return os.path.join(dest, "package")


class ServeBrowser(unittest.TestCase):
    def test_the_app_in_chromium(self):
        tmp = tempfile.mkdtemp(prefix="lumen-serve-browser-")
        try:
            self.run_app(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def run_app(self, tmp):
        lib = os.path.join(tmp, "lib")
        photos = os.path.join(tmp, "photos")
        subprocess.run([os.path.join(ROOT, "scripts", "fetch-photos.sh"), "test", photos], check=True)
        jpgs = sorted(os.path.join(r, f) for r, _, fs in os.walk(photos) for f in fs if f.lower().endswith(".jpg"))
        assert len(jpgs) >= 10, jpgs
        os.makedirs(os.path.join(lib, "real"))
        for src in jpgs[:10]:
            shutil.copy(src, os.path.join(lib, "real", os.path.basename(src)))
        # Two photos with a position, for the map: Paris and Tokyo.
        placed = [os.path.join(lib, "real", os.path.basename(jpgs[k])) for k in (3, 4)]
        for path, (lat, lon) in zip(placed, ((48.85, 2.35), (35.68, 139.69))):
            subprocess.run(["exiftool", "-q", "-overwrite_original", f"-GPSLatitude={lat}", "-GPSLatitudeRef=N",
                            f"-GPSLongitude={lon}", "-GPSLongitudeRef=E", path], check=True)
        # A video whose second shot (from 1.5 s) is one of the photos: Similar from that photo
        # finds the video, which opens at that moment.
        in_video = os.path.join(lib, "real", os.path.basename(jpgs[9]))
        subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "testsrc=duration=1.5:size=320x240:rate=25", "-loop", "1",
                                 "-t", "1.5", "-i", in_video, "-filter_complex",
                                 "[1:v]scale=320:240,setsar=1,fps=25[b];[0:v][b]concat=n=2:v=1[v]", "-map", "[v]",
                                 "-c:v", "libx264", "-pix_fmt", "yuv420p", "-metadata",
                                 "creation_time=2005-07-03T10:00:00Z", os.path.join(lib, "real", "clip.mp4")],
                       check=True)
        # Duplicates: two byte-identical copies of real photos.
        dupes = os.path.join(lib, "dupes")
        os.makedirs(dupes)
        victims = []
        for src in jpgs[:2]:
            victims.append(os.path.join(dupes, "copy-" + os.path.basename(src)))
            shutil.copy(src, victims[-1])
        model = os.path.join(tmp, "siglip-tiny")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "ml", "text_reference.py"), model, "siglip", "4"],
                       check=True)
        catalog = os.path.join(tmp, "cat", "catalog.db")
        run("index", lib, "--catalog", catalog, "--model", model, "--quiet", check=EXIT_OK)
        # Made after indexing: for the jobs started from the page.
        convert_src, index_dir = os.path.join(tmp, "to-convert"), os.path.join(lib, "later")
        os.makedirs(convert_src)
        os.makedirs(index_dir)
        for i in range(12):
            make_photo(os.path.join(convert_src, f"c{i}.jpg"), 300 + i, size=(2400, 1800))
        for i in range(3):
            make_photo(os.path.join(index_dir, f"l{i}.jpg"), 400 + i)
        query = "a photo of a mountain lake"
        cli = json.loads(run("search", query, "--catalog", catalog, "--model", model, "-k", "1", "--json",
                             check=EXIT_OK).stdout)
        look_alike = json.loads(run("similar", in_video, "--catalog", catalog, "--model", model, "-k", "1",
                                    "--json", check=EXIT_OK).stdout)[0]
        self.assertEqual(look_alike["media"], "video")
        proc, base, token = start_server(catalog, "--model", model)
        try:
            c = Client(base)
            h = {"X-Lumen-Token": token}
            info = json.loads(c.request("GET", "/api/v1/info", headers=h)[2])
            folder = json.loads(c.request("GET", "/api/v1/folders?path=" + os.path.dirname(cli[0]["path"]),
                                          headers=h)[2])
            expected = folder["ids"][folder["names"].index(os.path.basename(cli[0]["path"]))]
            real = json.loads(c.request("GET", "/api/v1/folders?path=" + os.path.join(lib, "real"), headers=h)[2])
            in_video_id = real["ids"][real["names"].index(os.path.basename(in_video))]
            video_id = real["ids"][real["names"].index("clip.mp4")]
            tokyo_id = real["ids"][real["names"].index(os.path.basename(placed[1]))]
            exact = json.loads(c.request("GET", "/api/v1/duplicates?tier=exact", headers=h)[2])["total"]
            days = json.loads(c.request("GET", "/api/v1/timeline?group=day", headers=h)[2])["days"]
            months = json.loads(c.request("GET", "/api/v1/timeline", headers=h)[2])["months"]
            self.assertGreater(len(days), len(months), "the photos span more days than months")
            cfg = {
                "playwright": playwright_core(),
                "url": f"{base}/?token={token}",
                "total": info["assets"],
                "query": query,
                "expected_id": expected,
                "in_video_id": in_video_id,
                "days": len(days),
                "months": len(months),
                "video_id": video_id,
                "tokyo_id": tokyo_id,
                "video_moment": look_alike["t"],
                "dupes_folder_files": 2,
                "exact_groups": exact,
                "victims": victims,
                "quarantine": os.path.join(tmp, "cat", "quarantine"),
                "convert_src": convert_src,
                "convert_out": os.path.join(tmp, "converted"),
                "convert_files": 12,
                "index_dir": index_dir,
                "index_files": 3,
            }
            self.assertEqual(exact, 2)
            p = subprocess.run(["node", os.path.join(ROOT, "tests", "cli", "serve_browser.js")],
                               env=dict(os.environ, LUMEN_BROWSER_TEST=json.dumps(cfg)), capture_output=True,
                               timeout=600)
            self.assertEqual(p.returncode, 0, p.stderr.decode()[-3000:] + p.stdout.decode()[-2000:])
            found = json.loads(p.stdout.decode().strip().splitlines()[-1])
            self.assertEqual(found["grid_assets"], info["assets"])
            self.assertEqual(found["search_first"], expected)
            self.assertGreater(found["thumbnails_decoded"], 0)
            self.assertEqual(found["map_cluster_photos"], [tokyo_id])
            self.assertAlmostEqual(found["video_opened_at"], look_alike["t"], delta=0.05)
        finally:
            stop_server(proc)


if __name__ == "__main__":
    unittest.main()
