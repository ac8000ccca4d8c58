"""Golden tests of lumen convert: each operation's visible effect on real pixels and files."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest
from unittest import mock

from PIL import Image, ImageChops

from test_cli import EXIT_ERROR, EXIT_OK, EXIT_SOME_FAILED, ROOT, db_rows, loads, run, run_loading


def size_of(path):
    with Image.open(path) as im:
        return im.size


def luma_stats(im):
    """(mean, standard deviation) of the luma."""
    from PIL import ImageStat
    st = ImageStat.Stat(im.convert("L"))
    return st.mean[0], st.stddev[0]


def detail(im):
    """Mean absolute 4-neighbour Laplacian of the luma: how much fine detail (sharpness)."""
    from PIL import ImageFilter, ImageStat
    lap = im.convert("L").filter(ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], 1, 128))
    return ImageStat.Stat(lap.point(lambda v: abs(v - 128))).mean[0]


def header(path, field):
    return subprocess.run(["vipsheader", "-f", field, path], capture_output=True, check=True).stdout.decode().strip()


def psnr(a, b):
    """PSNR in dB of two same-size PIL images (RGB)."""
    import numpy as np
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    mse = ((x - y) ** 2).mean()
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


# `brightness:1` changes no pixel, but no chain with it takes convert's direct path (a JPEG
# shrunk, perhaps sharpened, into WebP, JPEG or PNG without libvips): the same chain with it is the
# libvips pipeline, the reference for the direct path.
def via_libvips(chain):
    ops = chain.split(",")
    return ",".join(ops[:-1] + ["brightness:1", ops[-1]])


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Convert(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-convert-")
        # The result cache lives in the catalog: one per test, never the user's.
        self.enterContext(mock.patch.dict(os.environ, LUMEN_CATALOG=os.path.join(self.tmp, "catalog.db")))
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
        # `autorotate` says explicitly what is always done: the same pixels.
        self.convert("autorotate,resize:0.5,png")
        self.assertEqual(ImageChops.difference(im, self.result("photo.png").convert("RGB")).getbbox(), None)
        # Kept EXIF must not make a viewer turn the upright pixels again.
        for fmt_, name in (("jpeg", "photo.jpg"), ("webp", "photo.webp")):
            self.convert(f"fit:300x300,{fmt_}")
            out = os.path.join(self.out, name)
            self.assertEqual(size_of(out), (225, 300))
            o = subprocess.run(["exiftool", "-s3", "-n", "-Orientation", out], capture_output=True).stdout.strip()
            self.assertIn(o, (b"", b"1"), fmt_)
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-Orientation=1", "-n", rotated], check=True)
        self.convert("flip:h,png")
        im = self.result("photo.png").convert("RGB")
        self.assertGreater(im.getpixel((790, 10))[1], 150)  # green moved to the right edge
        self.assertGreater(im.getpixel((100, 300))[2], 150)  # blue half now on the left

    def test_direct_path_orientations_and_exif(self):
        # Every EXIF orientation, both encoders: the direct path gives libvips' upright pixels,
        # and the kept EXIF says Orientation 1 with the new pixel size.
        for orientation in range(1, 9):
            subprocess.run(["exiftool", "-q", "-overwrite_original", f"-Orientation={orientation}", "-n",
                            self.photo], check=True)
            for chain, name in (("fit:300x300,webp:95", "photo.webp"), ("fill:200x120,sharpen,jpeg:95", "photo.jpg")):
                self.convert(chain, "--no-cache", "--overwrite")
                direct = self.result(name)
                tags = json.loads(subprocess.run(["exiftool", "-j", "-n", "-Orientation", "-ExifImageWidth",
                                                  "-ExifImageHeight", "-Make", os.path.join(self.out, name)],
                                                 capture_output=True, check=True).stdout)[0]
                self.convert(via_libvips(chain), "--no-cache", "--overwrite")
                ref = self.result(name)
                ref_orientation = subprocess.run(["exiftool", "-s3", "-n", "-Orientation", os.path.join(self.out, name)],
                                                 capture_output=True).stdout.strip()
                self.assertIn(ref_orientation, (b"", b"1"), (orientation, chain, "libvips path"))
                what = (orientation, chain)
                self.assertEqual(direct.size, ref.size, what)
                self.assertGreater(psnr(direct, ref), 30, what)
                self.assertEqual(tags.get("Orientation", 1), 1, what)
                self.assertEqual(tags.get("Make"), "Canon", what)
                if "ExifImageWidth" in tags:
                    self.assertEqual((tags["ExifImageWidth"], tags["ExifImageHeight"]), direct.size, what)
            if orientation in (1, 6):
                # Green square top-left in the stored pixels; orientation 6 turns it top-right.
                im = self.result("photo.webp").convert("RGB")
                x = 10 if orientation == 1 else im.size[0] - 10
                self.assertGreater(im.getpixel((x, 10))[1], 150, orientation)
        # A grey JPEG stays grey in JPEG and becomes RGB in WebP, as through libvips.
        Image.open(self.photo).convert("L").save(self.photo, quality=95)
        self.convert("fit:300x300,jpeg:90", "--no-cache", "--overwrite")
        self.assertEqual(self.result("photo.jpg").mode, "L")
        self.convert("fit:300x300,webp:90", "--no-cache", "--overwrite")
        self.assertEqual(self.result("photo.webp").mode, "RGB")

    def test_convert_does_not_load_openblas(self):
        # OpenBLAS' threads spin for ~0.1 s of CPU when it is loaded: only matrix products
        # (tags, dupes) load it (util/blas.h). The loader's own log says what was loaded.
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp", "--quiet",
                check=EXIT_OK, env={**os.environ, "LD_DEBUG": "files"})
        loaded = p.stderr.decode(errors="replace")
        self.assertIn("libwebp.so", loaded)  # the log is there
        self.assertNotIn("libopenblas", loaded)

    def test_libvips_is_loaded_only_by_a_file_or_chain_that_needs_it(self):
        # libvips and its ~100 libraries live in a module (liblumen_vips.so) that lumen dlopens on
        # first need (image/vips_module.h): never for a JPEG on the direct path, into any of its
        # formats, nor for lumen's start.
        _, loaded = run_loading("--version", check=EXIT_OK)
        self.assertTrue(loads(loaded, "libwebp.so"), loaded)  # the log is there
        self.assertFalse(loads(loaded, "libvips"), loaded)
        for chain in ("fit:300x300,webp", "fill:200x200,jpeg:80", "sharpen,png", "resize:0.5,sharpen,jpeg",
                      "fit:400x400,svg:colors=3"):
            _, loaded = run_loading("convert", self.src, "-o", self.out, "--chain", chain, "--quiet", "--overwrite",
                                    "--no-cache", check=EXIT_OK)
            self.assertFalse(loads(loaded, "liblumen_vips") or loads(loaded, "libvips"), chain)
        # The libvips pipeline, and any input that is not a JPEG, load it.
        _, loaded = run_loading("convert", self.src, "-o", self.out, "--chain", via_libvips("fit:300x300,webp"),
                                "--quiet", "--overwrite", "--no-cache", check=EXIT_OK)
        self.assertTrue(loads(loaded, "liblumen_vips.so") and loads(loaded, "libvips.so"), loaded)
        Image.open(self.photo).save(os.path.join(self.src, "photo.png"))
        os.remove(self.photo)
        _, loaded = run_loading("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp", "--quiet",
                                "--overwrite", "--no-cache", check=EXIT_OK)
        self.assertTrue(loads(loaded, "libvips.so"), loaded)

    def test_without_the_libvips_module_only_the_files_that_need_it_fail(self):
        Image.open(self.photo).save(os.path.join(self.src, "other.png"))
        missing = os.path.join(self.tmp, "nowhere", "liblumen_vips.so")
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp",
                env={**os.environ, "LUMEN_VIPS_MODULE": missing}, check=EXIT_SOME_FAILED)
        self.assertEqual(self.result("photo.webp").size, (300, 225))  # the direct path needs none
        self.assertFalse(os.path.exists(os.path.join(self.out, "other.webp")))
        err = p.stderr.decode()
        self.assertIn("other.png: cannot load lumen's libvips module", err)
        self.assertIn(missing, err)  # the loader's reason, with the path it tried
        # A library that is not this build's module is refused before anything in it is called.
        shutil.rmtree(self.out)
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp",
                env={**os.environ, "LUMEN_VIPS_MODULE": "/usr/lib/x86_64-linux-gnu/libz.so.1"},
                check=EXIT_SOME_FAILED)
        self.assertIn("libz.so.1: not the libvips module of this build of lumen", p.stderr.decode())
        self.assertEqual(self.result("photo.webp").size, (300, 225))

    def test_svg_on_the_direct_path_matches_the_libvips_pipeline(self):
        # A JPEG into SVG is decoded, shrunk, blurred and traced without libvips; the libvips
        # pipeline (the same chain with brightness:1) traces the same picture.
        renders = []
        for chain in ("fit:400x400,svg:colors=3", via_libvips("fit:400x400,svg:colors=3")):
            self.convert(chain, "--no-cache", "--overwrite")
            png = os.path.join(self.tmp, f"r{len(renders)}.png")
            subprocess.run(["rsvg-convert", "-o", png, os.path.join(self.out, "photo.svg")], check=True)
            renders.append(Image.open(png).convert("RGB"))
        self.assertEqual(renders[0].size, (400, 300))
        self.assertGreater(psnr(renders[0], renders[1]), 30)
        src = Image.open(self.photo).resize((400, 300), Image.LANCZOS)
        self.assertGreater(psnr(renders[0], src), 28)

    def test_direct_path_keeps_iptc_and_xmp_as_libvips_does(self):
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-IPTC:Keywords=harbour",
                        "-XMP-dc:Subject=boats", self.photo], check=True)
        for chain, name in (("fit:300x300,jpeg", "photo.jpg"), ("fit:300x300,webp", "photo.webp"),
                            ("fit:300x300,png", "photo.png")):
            for c in (chain, via_libvips(chain)):
                self.convert(c, "--no-cache", "--overwrite")
                tags = json.loads(subprocess.run(["exiftool", "-j", "-IPTC:Keywords", "-XMP:Subject",
                                                  os.path.join(self.out, name)],
                                                 capture_output=True, check=True).stdout)[0]
                self.assertEqual(tags.get("Subject"), "boats", c)
                # IPTC into JPEG; WebP and PNG have no place for it.
                self.assertEqual(tags.get("Keywords"), "harbour" if name.endswith("jpg") else None, c)
            self.convert(chain.replace(",", ",strip,", 1), "--no-cache", "--overwrite")
            tags = json.loads(subprocess.run(["exiftool", "-j", "-IPTC:all", "-XMP:all", "-EXIF:all",
                                              os.path.join(self.out, name)], capture_output=True).stdout)[0]
            self.assertEqual(sorted(k for k in tags if k != "SourceFile"), [], chain)

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
        self.convert("strip,keep,fit:400x400,jpeg:85")  # the last word wins
        self.assertEqual(self.exif_make(os.path.join(self.out, "photo.jpg")), "Canon")

    def test_svg_output_renders_close_to_the_source_and_is_valid_xml(self):
        import xml.etree.ElementTree as ET
        self.convert("fit:400x400,svg:colors=3:speckle=2")
        svg = os.path.join(self.out, "photo.svg")
        root = ET.parse(svg).getroot()  # well-formed
        self.assertEqual(root.tag, "{http://www.w3.org/2000/svg}svg")
        self.assertEqual((root.get("width"), root.get("height")), ("400", "300"))
        paths = root.findall("{http://www.w3.org/2000/svg}path")
        self.assertEqual(len(paths), 2)  # red is the background rect; blue and green traced
        png = os.path.join(self.tmp, "r.png")
        subprocess.run(["rsvg-convert", "-o", png, svg], check=True)
        src = Image.open(self.photo).resize((400, 300), Image.LANCZOS)
        self.assertGreater(psnr(Image.open(png), src), 28)
        # Presets and settings are part of the cached recipe; bad settings name themselves.
        self.convert("fit:400x400,svg:preset=logo", "--overwrite")
        p = self.convert("svg:colors=99", check=EXIT_ERROR)
        self.assertIn(b"svg colors must be 2-64", p.stderr)
        p = self.convert("svg:shape=round", check=EXIT_ERROR)
        self.assertIn(b"unknown svg setting", p.stderr)

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
        # effort:N in the chain overrides the preset's.
        self.convert("effort:0,webp:80", "--preset", "ultra")
        self.assertEqual(os.path.getsize(os.path.join(self.out, "photo.webp")), sizes["draft"])
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
        self.assertEqual(size_of(self.photo), (100, 75))
        self.assertEqual([f for f in os.listdir(self.src) if ".lumen" in f], [])
        # A bad chain is refused before any file is touched, naming the position.
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:10x10,sharpen:x", check=EXIT_ERROR)
        self.assertIn(b"position 11", p.stderr)

    def test_output_tree_mirrors_subfolders_and_clashes_fail(self):
        # Same name in two subfolders: each result in its own subfolder of -o.
        for sub in ("a", "b/c"):
            os.makedirs(os.path.join(self.src, sub))
            shutil.copy(self.photo, os.path.join(self.src, sub, "IMG_1.jpg"))
        self.convert("fit:100x100,webp")
        for rel in ("photo.webp", "a/IMG_1.webp", "b/c/IMG_1.webp"):
            self.assertEqual(size_of(os.path.join(self.out, rel)), (100, 75), rel)
        # photo.jpg and photo.png would both be photo.webp: the second fails, naming both; the
        # first result stays.
        Image.new("RGB", (50, 50), (0, 0, 0)).save(os.path.join(self.src, "photo.png"))
        shutil.rmtree(self.out)
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:100x100,webp", "--no-cache",
                check=EXIT_SOME_FAILED)
        err = p.stderr.decode()
        self.assertIn("is also", err)
        self.assertIn("photo.png", err)
        self.assertIn("photo.jpg", err)
        self.assertEqual(size_of(os.path.join(self.out, "photo.webp")), (100, 75))  # the larger file went first
        # A corrupt JPEG on the direct path (shrink into WebP) is an error naming the file too.
        os.remove(os.path.join(self.src, "photo.png"))
        with open(os.path.join(self.src, "broken.jpg"), "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 not really a jpeg")
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:100x100,webp", "--no-cache",
                "--overwrite", check=EXIT_SOME_FAILED)
        self.assertIn(b"broken.jpg", p.stderr)
        self.assertIn(b"1 failed", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.out, "broken.webp")))
        # Damage inside the entropy-coded data (cut short, bytes flipped): libjpeg warns and
        # fills in, as libvips does by default; the planar decode finishes either way.
        os.remove(os.path.join(self.src, "broken.jpg"))
        with open(self.photo, "rb") as f:
            data = bytearray(f.read())
        with open(os.path.join(self.src, "cut.jpg"), "wb") as f:
            f.write(data[:len(data) // 2])
        for i in range(len(data) // 3, len(data) // 3 + 300, 7):
            data[i] ^= 0x5A
        with open(os.path.join(self.src, "flipped.jpg"), "wb") as f:
            f.write(data)
        shutil.rmtree(self.out)
        run("convert", self.src, "-o", self.out, "--chain", "fit:100x100,webp", "--no-cache", check=EXIT_OK,
            timeout=60)
        for name in ("cut.webp", "flipped.webp", "photo.webp"):
            self.assertEqual(size_of(os.path.join(self.out, name)), (100, 75), name)

    def summary(self, p):
        return p.stderr.decode()

    def test_result_cache(self):
        out = os.path.join(self.out, "photo.webp")
        p = self.convert("fit:300x300,webp:80")
        mtime = os.stat(out).st_mtime_ns
        self.assertEqual(len(db_rows(os.environ["LUMEN_CATALOG"], "SELECT * FROM conversions")), 1)
        # The same chain over the same file: a lookup, the output untouched.
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp:80", check=EXIT_OK)
        self.assertIn("1 already done", self.summary(p))
        self.assertEqual(os.stat(out).st_mtime_ns, mtime)
        # Touched but the same content: still a lookup (by content hash).
        os.utime(self.photo, ns=(1, 10**18))
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp:80", check=EXIT_OK)
        self.assertIn("1 already done", self.summary(p))
        # Another chain, the same chain spelled otherwise, another preset.
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:301x300,webp:80", check=EXIT_OK)
        self.assertIn("converted 1 of 1", self.summary(p))
        p = run("convert", self.src, "-o", self.out, "--chain", "FIT:300x300,WEBP:80", check=EXIT_OK)
        self.assertIn("converted 1 of 1", self.summary(p))  # the file held the 301 result
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp:80", check=EXIT_OK)
        self.assertIn("1 already done", self.summary(p))  # the same recipe, spelled otherwise
        # The output changed behind lumen's back: no longer what lumen wrote, so not replaced
        # without --overwrite (someone may have edited it); made again with it.
        with open(out, "ab") as f:
            f.write(b"x")
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp:80",
                check=EXIT_SOME_FAILED)
        self.assertIn("not replaced", self.summary(p))
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp:80", "--overwrite",
                check=EXIT_OK)
        self.assertIn("converted 1 of 1", self.summary(p))
        self.assertEqual(size_of(out), (300, 225))
        # New content under the same name: converted.
        Image.new("RGB", (400, 400), (9, 9, 9)).save(self.photo, quality=90)
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp:80", check=EXIT_OK)
        self.assertIn("converted 1 of 1", self.summary(p))
        self.assertEqual(size_of(out), (300, 300))
        # The same content into another folder: copied from the earlier result, not converted.
        other = os.path.join(self.tmp, "other")
        p = run("convert", self.src, "-o", other, "--chain", "fit:300x300,webp:80", check=EXIT_OK)
        self.assertIn("1 copied", self.summary(p))
        self.assertEqual(digest(os.path.join(other, "photo.webp")), digest(out))
        # --no-cache converts; it keeps no record either, so only --overwrite lets it replace.
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp:80", "--no-cache",
                check=EXIT_SOME_FAILED)
        self.assertIn("lumen has no record of writing it", self.summary(p))
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:300x300,webp:80", "--no-cache",
                "--overwrite", check=EXIT_OK)
        self.assertIn("converted 1 of 1", self.summary(p))

    def test_result_cache_in_place_never_applies_a_chain_twice(self):
        run("convert", self.photo, "--in-place", "--chain", "resize:0.5", "--quiet", check=EXIT_OK)
        self.assertEqual(size_of(self.photo), (400, 300))
        p = run("convert", self.photo, "--in-place", "--chain", "resize:0.5", check=EXIT_OK)
        self.assertIn("1 already done", self.summary(p))
        self.assertEqual(size_of(self.photo), (400, 300))
        p = run("convert", self.photo, "--in-place", "--chain", "resize:0.5", "--no-cache", check=EXIT_OK)
        self.assertEqual(size_of(self.photo), (200, 150))

    def test_recipe_files(self):
        toml = os.path.join(self.tmp, "web.toml")
        with open(toml, "w") as f:
            f.write('# for the web\nchain = ["fit:200x200", \'watermark:"(c) me, 2026":12\', "webp:70"]\n'
                    'name = "{stem}_{w}x{h}.{ext}"\noutput = "site"\n')
        run("convert", self.src, "--recipe", toml, "--quiet", check=EXIT_OK)
        self.assertEqual(size_of(os.path.join(self.tmp, "site", "photo_200x150.webp")), (200, 150))
        js = os.path.join(self.tmp, "thumbs.json")
        with open(js, "w") as f:
            json.dump({"chain": "fill:64x64,png", "preset": "fast"}, f)
        run("convert", self.src, "-o", self.out, "--recipe", js, "--quiet", check=EXIT_OK)
        self.assertEqual(size_of(os.path.join(self.out, "photo.png")), (64, 64))
        # The command line wins over the recipe.
        run("convert", self.src, "-o", self.out, "--recipe", js, "--chain", "fill:32x32,png", "--quiet", check=EXIT_OK)
        self.assertEqual(size_of(os.path.join(self.out, "photo.png")), (32, 32))
        # Errors name the file and what is wrong.
        for body, why in (({"chain": "fit:10x10", "presett": "fast"}, "unknown key 'presett'"),
                          ({"chain": 5}, "chain must be a string or a list of strings"),
                          ({"chain": ["fit:10x10", "sharpen:x"]}, "position 11"),
                          ({"chain": "fit:10x10", "preset": "turbo"}, "unknown --preset turbo")):
            with open(js, "w") as f:
                json.dump(body, f)
            p = run("convert", self.src, "-o", self.out, "--recipe", js, check=EXIT_ERROR)
            self.assertIn(why, self.summary(p))
        with open(toml, "w") as f:
            f.write('chain = "fit:10x10\n')
        p = run("convert", self.src, "-o", self.out, "--recipe", toml, check=EXIT_ERROR)
        self.assertIn("web.toml", self.summary(p))


class RealPhotos(unittest.TestCase):
    """Every operation on real camera photos (Debian's kphotoalbum demo, with EXIF)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="lumen-convert-real-")
        os.environ["LUMEN_CATALOG"] = os.path.join(cls.tmp, "catalog.db")
        photos = os.path.join(cls.tmp, "photos")
        subprocess.run([os.path.join(ROOT, "scripts", "fetch-photos.sh"), "test", photos], check=True)
        jpgs = sorted(os.path.join(d, f) for d, _, fs in os.walk(photos) for f in fs if f.lower().endswith(".jpg"))
        # The largest landscape photo with an EXIF camera make.
        cls.src = os.path.join(cls.tmp, "in")
        os.makedirs(cls.src)
        def landscape_width(f):
            with Image.open(f) as im:
                return im.size[0] * (im.size[0] > im.size[1])
        best = max(jpgs, key=landscape_width)
        cls.photo = os.path.join(cls.src, "real.jpg")
        shutil.copy(best, cls.photo)
        with Image.open(cls.photo) as im:
            cls.size = im.size
        cls.before = digest(cls.photo)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        os.environ.pop("LUMEN_CATALOG", None)

    def out(self, chain, name="real.png", *extra):
        out = os.path.join(self.tmp, "out")
        shutil.rmtree(out, ignore_errors=True)
        run("convert", self.photo, "-o", out, "--chain", chain, "--quiet", "--no-cache", *extra, check=EXIT_OK)
        self.assertEqual(digest(self.photo), self.before)  # never the input
        return os.path.join(out, name)

    def image(self, chain, name="real.png"):
        with Image.open(self.out(chain, name)) as im:
            im.load()
            return im

    def test_geometry_on_a_real_photo(self):
        w, h = self.size
        im = self.image("fit:640x640,png")
        self.assertEqual(max(im.size), 640)
        self.assertAlmostEqual(im.size[0] / im.size[1], w / h, delta=0.01)
        self.assertEqual(self.image("fill:300x300:attention,png").size, (300, 300))
        self.assertEqual(self.image("resize:0.25,png").size, (round(w * 0.25), round(h * 0.25)))
        self.assertEqual(self.image("resize:0.25:nearest,png").size, (round(w * 0.25), round(h * 0.25)))
        self.assertEqual(self.image("crop:320x200:attention,png").size, (320, 200))
        self.assertEqual(self.image("crop:10:20:300:100,png").size, (300, 100))
        # Any angle: the canvas grows to hold the turned photo; the corners are background.
        im = self.image("fit:400x400,rotate:30,png").convert("RGB")
        self.assertGreater(im.size[1], 400 * h / w + 100)
        self.assertEqual(im.getpixel((1, 1)), (0, 0, 0))
        im = self.image("fit:400x400,border:7:#ff0000,png").convert("RGB")
        self.assertEqual(im.getpixel((3, 3)), (255, 0, 0))

    def test_tone_operations_move_the_statistics(self):
        base = self.image("fit:800x800,png")
        mean, sd = luma_stats(base)
        self.assertGreater(luma_stats(self.image("fit:800x800,contrast:1.5,png"))[1], sd * 1.1)  # clipped ends
        self.assertLess(luma_stats(self.image("fit:800x800,contrast:0.5,png"))[1], sd * 0.6)
        self.assertGreater(luma_stats(self.image("fit:800x800,gamma:2,png"))[0], mean + 15)
        self.assertLess(luma_stats(self.image("fit:800x800,gamma:0.5,png"))[0], mean - 15)
        self.assertGreater(luma_stats(self.image("fit:800x800,brightness:1.3,png"))[0], mean + 10)
        # Sharpening adds fine detail; blurring removes it; a larger amount adds more, and so
        # does no threshold (grain sharpened too).
        d = detail(base)
        sharp = detail(self.image("fit:800x800,sharpen,png"))
        self.assertGreater(sharp, d * 1.3)
        every = detail(self.image("fit:800x800,sharpen:1:1:0,png"))
        self.assertGreater(every, sharp * 1.05)
        self.assertGreater(detail(self.image("fit:800x800,sharpen:1:2:0,png")), every * 1.2)
        self.assertLess(detail(self.image("fit:800x800,blur:2,png")), d * 0.6)
        # Saturation 0 is grey; 1.5 is more colourful than the photo.
        from PIL import ImageStat
        sat = lambda im: ImageStat.Stat(im.convert("HSV")).mean[1]
        self.assertGreater(sat(self.image("fit:800x800,saturation:1.5,png")), sat(base) * 1.2)

    def test_sharpen_is_the_unsharp_mask_formula(self):
        # out = in + amount * (in - gauss(in, sigma)), edges repeated, except where
        # |in - gauss| < threshold * 255 / 2 (ImageMagick's rule; its -unsharp default 0.05):
        # computed here in floating point with numpy, on a web-size image (lumen's integer path)
        # and on one above 8 MP (libvips' streaming path).
        import numpy as np

        def blur(a, sigma):
            r = max(1, int(np.ceil(sigma * 2.45)))
            k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma * sigma))
            k /= k.sum()
            f = a.astype(np.float64)
            p = np.pad(f, ((r, r), (r, r), (0, 0)), mode="edge")
            h = sum(k[i] * p[:, i:i + f.shape[1] + 0, :] for i in range(2 * r + 1))[r:-r]
            return sum(k[i] * np.pad(h, ((r, r), (0, 0), (0, 0)), mode="edge")[i:i + f.shape[0]]
                       for i in range(2 * r + 1))

        for size, sigma, amount, threshold in ((800, 1.0, 1.0, 0), (800, 0.6, 2.0, 0), (800, 1.0, 1.0, None),
                                               (800, 0.8, 1.5, 0.1), (3600, 1.0, 0.8, 0), (3600, 1.0, 1.0, None)):
            what = (size, sigma, amount, threshold)
            base = self.image(f"resize:{size / self.size[0]:.6f},png").convert("RGB")
            src = os.path.join(self.src, "plain.png")
            base.save(src)
            op = f"sharpen:{sigma}:{amount}" + ("" if threshold is None else f":{threshold}")
            try:
                out = os.path.join(self.tmp, "sharp")
                shutil.rmtree(out, ignore_errors=True)
                run("convert", src, "-o", out, "--chain", f"{op},png", "--quiet", "--no-cache", check=EXIT_OK)
                with Image.open(os.path.join(out, "plain.png")) as im:
                    got = np.asarray(im.convert("RGB"), dtype=np.float64)
            finally:
                os.remove(src)
            f = np.asarray(base).astype(np.float64)
            d = f - blur(f, sigma)
            sharp = np.clip(np.rint(f + amount * d), 0, 255)
            limit = (0.05 if threshold is None else threshold) * 255
            # Away from the threshold (lumen's blur has 8-bit weights, off by up to ~1 at a hard
            # edge) the rule decides exactly: below it the sample is the input's, above it the
            # formula's.
            below, above = 2 * np.abs(d) < limit - 4, 2 * np.abs(d) >= limit + 4
            if limit > 0:
                self.assertGreater(below.mean(), 0.2, what)  # a photo has flat parts and grain
                self.assertTrue(np.array_equal(got[below], f[below]), what)
            self.assertGreater(above.sum(), 1000, what)  # and edges
            err = np.abs(got - sharp)[above]
            self.assertLess(err.mean(), 0.8, what)
            self.assertLess(np.percentile(err, 99.9), 4, what)

    def test_jpeg_scaled_decode_matches_a_full_decode(self):
        # fit at 5/8 and 3/8 of the photo: lumen decodes at M/8 (libjpeg's scaled IDCT); the
        # reference decodes in full and resamples with Lanczos3 (vips CLI).
        import numpy as np
        w, h = self.size
        for frac in (5 / 8, 3 / 8 + 0.01):
            tw = round(w * frac)
            got = np.asarray(self.image(f"fit:{tw}x{tw},png").convert("RGB"), dtype=np.float64)
            ref_path = os.path.join(self.tmp, "ref.png")
            subprocess.run(["vips", "resize", self.photo, ref_path, str(got.shape[1] / w),
                            "--vscale", str(got.shape[0] / h)], check=True, capture_output=True)
            with Image.open(ref_path) as im:
                ref = np.asarray(im.convert("RGB"), dtype=np.float64)
            self.assertEqual(ref.shape, got.shape)
            mse = ((got - ref) ** 2).mean()
            self.assertGreater(10 * np.log10(255 ** 2 / mse), 33, frac)  # PSNR, dB

    def test_direct_path_matches_the_libvips_pipeline(self):
        # The direct path (M/8 decode into lumen's resampler, unsharp, libwebp/libjpeg) against
        # the libvips pipeline of the same chain, on a real camera photo: the same size, the
        # same picture (PSNR), the same metadata kept.
        w, h = self.size
        for chain, name in (("fit:800x800,webp:90", "real.webp"),
                            ("fit:1200x1200,sharpen:0.8:1.2,webp:90", "real.webp"),
                            ("fill:500x300,jpeg:95", "real.jpg"),
                            (f"resize:{333 / w:.6f}:cubic,sharpen,jpeg:95", "real.jpg"),
                            ("resize:0.5:linear,strip,webp:90", "real.webp"),
                            ("fit:1000x1000,sharpen,png", "real.png"),
                            ("sharpen:0.7:1.5,png", "real.png"),
                            ("resize:0.3:cubic,strip,png", "real.png")):
            direct_path = self.out(chain, name)
            direct = Image.open(direct_path)
            direct.load()
            make = subprocess.run(["exiftool", "-s3", "-Make", direct_path], capture_output=True).stdout.strip()
            ref = self.image(via_libvips(chain), name)
            self.assertEqual(direct.size, ref.size, chain)
            self.assertGreater(psnr(direct, ref), 36, chain)
            self.assertEqual(bool(make), "strip" not in chain, chain)

    def test_webp_from_the_planes_for_every_chroma_sampling(self):
        # Into WebP the direct path takes the JPEG's own Y, Cb and Cr planes (no RGB): for every
        # chroma sampling a camera writes, and grey, odd sizes and crops at odd and even
        # offsets, it gives the libvips pipeline's picture.
        src = os.path.join(self.tmp, "sampling")
        with Image.open(self.photo) as im:
            im.load()
            photo = im.convert("RGB")
        for label, mode, subsampling in (("444", "RGB", 0), ("422", "RGB", 1), ("420", "RGB", 2), ("grey", "L", 0)):
            shutil.rmtree(src, ignore_errors=True)
            os.makedirs(src)
            path = os.path.join(src, "s.jpg")
            photo.convert(mode).save(path, quality=95, subsampling=subsampling)
            for chain in ("fit:801x801,sharpen,webp:90", "fill:301x199,webp:90", "fill:300x201,sharpen:0.5,webp:90",
                          "resize:0.37:cubic,webp:90"):
                got = {}
                for which, c in (("direct", chain), ("libvips", via_libvips(chain))):
                    out = os.path.join(self.tmp, "out-" + which)
                    shutil.rmtree(out, ignore_errors=True)
                    run("convert", src, "-o", out, "--chain", c, "--quiet", "--no-cache", check=EXIT_OK)
                    with Image.open(os.path.join(out, "s.webp")) as im:
                        got[which] = im.convert("RGB")
                what = (label, chain)
                self.assertEqual(got["direct"].size, got["libvips"].size, what)
                self.assertGreater(psnr(got["direct"], got["libvips"]), 36, what)
                if mode == "L":  # no colour appears
                    import numpy as np
                    px = np.asarray(got["direct"], dtype=int)
                    self.assertLessEqual(int(np.abs(px[..., 0] - px[..., 2]).max()), 2, what)

    def test_edges(self):
        for kind in ("sobel", "canny"):
            im = self.image(f"fit:800x800,edges:{kind},png")
            self.assertEqual(im.mode, "L")
            hist = im.histogram()
            dark = sum(hist[:32]) / sum(hist)
            self.assertGreater(dark, 0.5, kind)  # mostly flat regions
            self.assertGreater(sum(hist[64:]) / sum(hist), 0.005, kind)  # and real edges

    def test_formats_quality_lossless(self):
        self.assertEqual(header(self.out("fit:400x400,avif:60", "real.avif"), "width"), "400")
        with open(self.out("fit:400x400,avif:60", "real.avif"), "rb") as f:
            self.assertEqual(f.read(12)[4:12], b"ftypavif")
        self.assertEqual(self.image("fit:400x400,tiff", "real.tif").format, "TIFF")
        self.assertEqual(self.image("fit:400x400,webp:80", "real.webp").format, "WEBP")
        small = os.path.getsize(self.out("fit:800x800,jpeg:30", "real.jpg"))
        large = os.path.getsize(self.out("fit:800x800,jpeg:95", "real.jpg"))
        self.assertLess(small * 2, large)
        # Lossless WebP gives back exactly the pixels of a PNG of the same chain.
        png = self.image("fit:500x500,png").convert("RGB")
        webp = self.image("fit:500x500,lossless,webp", "real.webp").convert("RGB")
        self.assertIsNone(ImageChops.difference(png, webp).getbbox())
        lossy = self.image("fit:500x500,webp:50", "real.webp").convert("RGB")
        self.assertIsNotNone(ImageChops.difference(png, lossy).getbbox())

    def test_metadata_and_icc_kept_or_stripped(self):
        make = subprocess.run(["exiftool", "-s3", "-Make", self.photo], capture_output=True).stdout.strip()
        self.assertTrue(make, "the real photo has an EXIF camera make")
        kept = self.out("fit:400x400,jpeg", "real.jpg")
        self.assertEqual(subprocess.run(["exiftool", "-s3", "-Make", kept], capture_output=True).stdout.strip(), make)
        stripped = self.out("fit:400x400,strip,jpeg", "real.jpg")
        self.assertEqual(subprocess.run(["exiftool", "-s3", "-Make", stripped], capture_output=True).stdout.strip(), b"")

    def test_overlay_watermark_font(self):
        logo = os.path.join(self.src, "logo.png")
        lg = Image.new("RGBA", (60, 40), (0, 255, 0, 255))
        lg.paste((0, 0, 0, 0), (30, 0, 60, 40))  # right half transparent
        lg.save(logo)
        try:
            im = self.image("fit:600x600,overlay:logo.png:north-west:1,png").convert("RGB")
            base = self.image("fit:600x600,png").convert("RGB")
            m = max(4, min(im.size) // 50)
            self.assertEqual(im.getpixel((m + 10, m + 20)), (0, 255, 0))  # the opaque half
            self.assertEqual(im.getpixel((m + 50, m + 20)), base.getpixel((m + 50, m + 20)))  # see-through
            half = self.image("fit:600x600,overlay:logo.png:north-west:0.5,png").convert("RGB")
            g = half.getpixel((m + 10, m + 20))
            self.assertTrue(90 < g[1] < 250 and g != (0, 255, 0), g)
            a = self.image('fit:600x600,watermark:"LUMEN":60:centre:1:serif,png').convert("L")
            b = self.image('fit:600x600,watermark:"LUMEN":60:centre:1:monospace,png').convert("L")
            self.assertIsNotNone(ImageChops.difference(a, b).getbbox())  # the font is used
        finally:
            os.remove(logo)


class ColourManagement(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-convert-icc-")
        os.environ["LUMEN_CATALOG"] = os.path.join(self.tmp, "catalog.db")
        im = Image.new("RGB", (200, 100), (220, 30, 30))
        im.paste((30, 30, 220), (100, 0, 200, 100))
        self.rgb = os.path.join(self.tmp, "srgb.png")
        im.save(self.rgb)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.environ.pop("LUMEN_CATALOG", None)

    def convert(self, src, chain, name):
        out = os.path.join(self.tmp, "out")
        run("convert", src, "-o", out, "--chain", chain, "--quiet", check=EXIT_OK)
        with Image.open(os.path.join(out, name)) as im:
            im.load()
            return im

    def test_embedded_profiles_are_converted_to_srgb(self):
        # The same colours stored as Display P3 and as CMYK, each with its profile embedded
        # (libvips' built-in profiles). lumen's output must be sRGB: what littleCMS (through
        # Pillow, relative colorimetric) makes of the stored pixels and their profile.
        import io
        from PIL import ImageCms
        for profile, name, ext in (("p3", "wide", "png"), ("cmyk", "print", "jpg")):
            src = os.path.join(self.tmp, f"{name}.{ext}")
            subprocess.run(["vips", "icc_transform", self.rgb, src, profile, "--input-profile", "srgb"], check=True)
            with Image.open(src) as raw:
                raw.load()
                ref = ImageCms.profileToProfile(raw, ImageCms.ImageCmsProfile(io.BytesIO(raw.info["icc_profile"])),
                                                ImageCms.createProfile("sRGB"), renderingIntent=1, outputMode="RGB")
                stored = raw.getpixel((20, 50))
            want_left, want_right = ref.getpixel((20, 50)), ref.getpixel((180, 50))
            self.assertNotEqual(stored[:3], want_left)  # the stored numbers are not sRGB
            for chain in ("png", "fit:100x100,png", "flip:h,flip:h,strip,png"):
                im = self.convert(src, chain, f"{name}.png")
                self.assertEqual(im.mode, "RGB", (profile, chain))
                x = 10 if "fit" in chain else 20
                y = im.size[1] // 2
                for got, want in ((im.getpixel((x, y)), want_left), (im.getpixel((im.size[0] - x, y)), want_right)):
                    self.assertTrue(all(abs(g - w) <= 8 for g, w in zip(got, want)), (profile, chain, got, want))
                has_icc = bool(im.info.get("icc_profile"))
                self.assertEqual(has_icc, "strip" not in chain, (profile, chain))

if __name__ == "__main__":
    unittest.main()
