"""Golden tests of lumen convert: each operation's visible effect on real pixels and files."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from PIL import Image, ImageChops

from test_cli import EXIT_ERROR, EXIT_OK, EXIT_SOME_FAILED, run


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Convert(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-convert-")
        self.src = os.path.join(self.tmp, "in")
        os.makedirs(self.src)
        # 800x600: left half red, right half blue, a green square top-left.
        im = Image.new("RGB", (800, 600), (200, 20, 20))
        im.paste((20, 20, 200), (400, 0, 800, 600))
        im.paste((20, 200, 20), (0, 0, 100, 100))
        self.photo = os.path.join(self.src, "photo.jpg")
        im.save(self.photo, quality=95)
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-Make=Canon", "-Model=EOS", self.photo],
                       check=True)
        self.before = digest(self.photo)
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def convert(self, chain, *extra, check=EXIT_OK):
        return run("convert", self.src, "-o", self.out, "--chain", chain, "--quiet", *extra, check=check)

    def result(self, name):
        with Image.open(os.path.join(self.out, name)) as im:
            im.load()
            return im

    def exif_make(self, path):
        p = subprocess.run(["exiftool", "-j", "-Make", path], capture_output=True, check=True)
        return json.loads(p.stdout)[0].get("Make")

    def test_geometry(self):
        self.convert("fit:400x400,webp:80")
        im = self.result("photo.webp")
        self.assertEqual((im.format, im.size), ("WEBP", (400, 300)))
        self.convert("fill:200x200,png")
        self.assertEqual(self.result("photo.png").size, (200, 200))
        self.convert("fit:4000x4000,jpeg")  # fit never enlarges
        self.assertEqual(self.result("photo.jpg").size, (800, 600))
        self.convert("resize:0.25,rotate:90,png")
        self.assertEqual(self.result("photo.png").size, (150, 200))
        self.convert("crop:100:50:300:200,border:10:#ffffff,png")
        im = self.result("photo.png").convert("RGB")
        self.assertEqual(im.size, (320, 220))
        self.assertEqual(im.getpixel((2, 2)), (255, 255, 255))
        self.convert("crop:200x100:centre,png", "--name", "{stem}_{w}x{h}.{ext}")
        self.assertTrue(os.path.exists(os.path.join(self.out, "photo_200x100.png")))
        self.assertEqual(digest(self.photo), self.before)  # the input is never modified

    def test_orientation_and_flip(self):
        rotated = os.path.join(self.src, "photo.jpg")
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-Orientation=6", "-n", rotated], check=True)
        self.convert("resize:0.5,png")
        im = self.result("photo.png").convert("RGB")
        self.assertEqual(im.size, (300, 400))  # upright: EXIF orientation 6 applied
        # Rotated 90 clockwise: the green top-left square is now top-right.
        g = im.getpixel((290, 10))
        self.assertGreater(g[1], 150)
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-Orientation=1", "-n", rotated], check=True)
        self.convert("flip:h,png")
        im = self.result("photo.png").convert("RGB")
        self.assertGreater(im.getpixel((790, 10))[1], 150)  # green moved to the right edge
        self.assertGreater(im.getpixel((100, 300))[2], 150)  # blue half now on the left

    def test_colour_operations(self):
        self.convert("grayscale,png")
        im = self.result("photo.png")
        self.assertIn(im.mode, ("L", "LA"))
        self.convert("brightness:0.5,png")
        r = self.result("photo.png").convert("RGB").getpixel((200, 300))
        self.assertTrue(90 <= r[0] <= 110, r)
        self.convert("saturation:0,png")
        r = self.result("photo.png").convert("RGB").getpixel((200, 300))
        self.assertLessEqual(max(r) - min(r), 6, r)
        self.convert("blur:8,png")
        edge = self.result("photo.png").convert("RGB").getpixel((400, 300))
        self.assertTrue(60 < edge[0] < 170 and 60 < edge[2] < 170, edge)  # red and blue mixed
        self.convert("edges,png")
        e = self.result("photo.png").convert("L")
        self.assertGreater(e.getpixel((400, 300)), e.getpixel((600, 300)) + 40)

    def test_watermark_lands_where_asked(self):
        self.convert("webp:90")
        plain = self.result("photo.webp").convert("RGB")
        self.convert('watermark:"(c) lumen 2026":48:south-east:1,webp:90')
        marked = self.result("photo.webp").convert("RGB")
        diff = ImageChops.difference(plain, marked).convert("L").point(lambda v: 255 if v > 40 else 0)
        box = diff.getbbox()
        self.assertIsNotNone(box, "no watermark pixels")
        self.assertGreater(box[0], 400)  # right half
        self.assertGreater(box[1], 450)  # bottom quarter

    def test_metadata_strip_and_keep(self):
        self.convert("fit:400x400,jpeg:85")
        self.assertEqual(self.exif_make(os.path.join(self.out, "photo.jpg")), "Canon")
        self.convert("fit:400x400,strip,jpeg:85")
        self.assertIsNone(self.exif_make(os.path.join(self.out, "photo.jpg")))

    def test_presets_trade_size_for_speed(self):
        # A photo-like texture (blurred noise): more encoder effort finds a smaller file.
        from PIL import ImageFilter
        rnd = __import__("random").Random(3)
        Image.frombytes("RGB", (640, 480), bytes(rnd.randrange(256) for _ in range(640 * 480 * 3))).filter(
            ImageFilter.GaussianBlur(3)).save(self.photo, quality=95)
        sizes = {}
        for preset in ("draft", "ultra"):
            self.convert("webp:80", "--preset", preset)
            sizes[preset] = os.path.getsize(os.path.join(self.out, "photo.webp"))
        self.assertLess(sizes["ultra"], sizes["draft"])
        p = run("convert", self.src, "-o", self.out, "--chain", "webp", "--preset", "turbo")
        self.assertEqual(p.returncode, EXIT_ERROR)

    def test_naming_skip_in_place_and_errors(self):
        with open(os.path.join(self.src, "broken.jpg"), "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 not really a jpeg")
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:100x100,png", check=EXIT_SOME_FAILED)
        self.assertTrue(os.path.exists(os.path.join(self.out, "photo.png")))
        self.assertIn(b"broken.jpg", p.stderr)
        self.assertIn(b"1 failed", p.stderr)
        mtime = os.stat(os.path.join(self.out, "photo.png")).st_mtime_ns
        self.convert("fit:100x100,png", "--skip-existing", check=EXIT_SOME_FAILED)
        self.assertEqual(os.stat(os.path.join(self.out, "photo.png")).st_mtime_ns, mtime)
        os.remove(os.path.join(self.src, "broken.jpg"))
        # Writing over an input needs --in-place; then it is replaced atomically.
        p = run("convert", self.src, "-o", self.src, "--chain", "fit:100x100", check=EXIT_SOME_FAILED)
        self.assertIn(b"use --in-place", p.stderr)
        self.assertEqual(digest(self.photo), self.before)
        run("convert", self.photo, "--in-place", "--chain", "fit:100x100", "--quiet", check=EXIT_OK)
        self.assertEqual(Image.open(self.photo).size, (100, 75))
        self.assertEqual([f for f in os.listdir(self.src) if ".lumen" in f], [])
        # A bad chain is refused before any file is touched, naming the position.
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:10x10,sharpen:x", check=EXIT_ERROR)
        self.assertIn(b"position 11", p.stderr)


if __name__ == "__main__":
    unittest.main()
