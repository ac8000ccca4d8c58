"""Adversarial tests of lumen convert (issue 15): outputs that try to leave -o, planted links,
files lumen did not write, --in-place on protected and linked files, decompression and scan
bombs, special files, signals, and hostile chain arguments."""
import os
import signal
import shutil
import struct
import subprocess
import tempfile
import time
import unittest
from unittest import mock
import zlib

from PIL import Image

from test_cli import EXIT_ERROR, EXIT_OK, EXIT_SOME_FAILED, SLOW, picture, run


def temps_under(folder):
    return [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.startswith(".lumen-")]


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(path, w, h):
    """A small PNG whose header claims w x h (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) +
                png_chunk(b"IEND", b""))


def jpeg_segments(data):
    """(marker, start, end) of each segment of a JPEG; a scan's entry spans its entropy data."""
    out, i = [], 2
    while i < len(data):
        assert data[i] == 0xFF, i
        m = data[i + 1]
        if m == 0xD9:
            out.append((m, i, i + 2))
            break
        n = struct.unpack(">H", data[i + 2:i + 4])[0]
        end = i + 2 + n
        if m == 0xDA:  # entropy-coded data up to the next marker that is not RSTn or stuffing
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        out.append((m, i, end))
        i = end
    return out


def scan_bomb(path, scans, size=1024):
    """A progressive JPEG whose first (DC) scan is repeated until it has `scans` scans: small on
    disk, and each scan is a pass over every block."""
    tmp = path + ".src.jpg"
    picture(tmp, w=size, h=size, progressive=True, quality=80)
    with open(tmp, "rb") as f:
        data = f.read()
    os.remove(tmp)
    segs = jpeg_segments(data)
    first = next(s for s in segs if s[0] == 0xDA)
    dc = data[first[1]:first[2]]
    have = sum(1 for s in segs if s[0] == 0xDA)
    body = data[:first[2]] + dc * (scans - have) + data[first[2]:]
    with open(path, "wb") as f:
        f.write(body)


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-adv-convert-")
        self.enterContext(mock.patch.dict(os.environ, LUMEN_CATALOG=os.path.join(self.tmp, "catalog.db")))
        self.src = os.path.join(self.tmp, "in")
        os.makedirs(self.src)
        self.photo = picture(os.path.join(self.src, "photo.jpg"), w=400, h=300, quality=90)
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()


class OutputConfinement(Base):
    def test_name_cannot_leave_the_output_folder(self):
        victim_dir = os.path.join(self.tmp, "victim")
        os.makedirs(victim_dir)
        for name in ("../../{stem}.{ext}", "../{stem}.{ext}", "sub/../../{stem}.{ext}",
                     os.path.join(victim_dir, "{stem}.{ext}")):
            p = run("convert", self.photo, "-o", self.out, "--chain", "fit:100x100,webp", "--name", name,
                    check=EXIT_SOME_FAILED)
            self.assertIn(b"leaves the output folder", p.stderr, name)
        self.assertEqual(os.listdir(victim_dir), [])
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "photo.webp")))
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.tmp), "photo.webp")))
        # A sized name is checked once its size is known, too.
        p = run("convert", self.photo, "-o", self.out, "--chain", "fit:100x100,webp", "--name",
                "../{stem}_{w}x{h}.{ext}", check=EXIT_SOME_FAILED)
        self.assertIn(b"leaves the output folder", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "photo_100x75.webp")))
        self.assertEqual(temps_under(self.tmp), [])
        # Names inside -o, subfolders included, are fine.
        run("convert", self.photo, "-o", self.out, "--chain", "fit:100x100,webp", "--name", "web/{stem}.{ext}",
            check=EXIT_OK)
        self.assertTrue(os.path.isfile(os.path.join(self.out, "web", "photo.webp")))

    def test_planted_symlinks_inside_the_output_are_not_followed(self):
        elsewhere = os.path.join(self.tmp, "elsewhere")
        os.makedirs(elsewhere)
        os.makedirs(os.path.join(self.src, "sub"))
        picture(os.path.join(self.src, "sub", "inner.jpg"), w=300, h=200)
        os.makedirs(self.out)
        os.symlink(elsewhere, os.path.join(self.out, "sub"))  # a folder link
        victim = os.path.join(self.tmp, "victim.txt")
        with open(victim, "w") as f:
            f.write("precious")
        os.symlink(victim, os.path.join(self.out, "photo.webp"))  # a file link at the output name
        p = run("convert", self.src, "-o", self.out, "--chain", "fit:100x100,webp", check=EXIT_SOME_FAILED)
        err = p.stderr.decode()
        self.assertIn("symbolic link", err)
        self.assertIn("2 failed", err)
        self.assertEqual(os.listdir(elsewhere), [])
        self.assertEqual(self.read(victim), b"precious")
        self.assertTrue(os.path.islink(os.path.join(self.out, "photo.webp")))
        # --overwrite never replaces a link either.
        run("convert", self.photo, "-o", self.out, "--chain", "fit:100x100,webp", "--overwrite",
            check=EXIT_SOME_FAILED)
        self.assertEqual(self.read(victim), b"precious")
        self.assertEqual(temps_under(self.tmp), [])

    def test_an_unrelated_file_at_the_output_path_is_not_replaced(self):
        os.makedirs(self.out)
        mine = os.path.join(self.out, "photo.webp")
        with open(mine, "wb") as f:
            f.write(b"not lumen's")
        for extra in ((), ("--no-cache",)):
            p = run("convert", self.photo, "-o", self.out, "--chain", "fit:100x100,webp", *extra,
                    check=EXIT_SOME_FAILED)
            self.assertIn(b"no record of writing it", p.stderr)
            self.assertIn(mine.encode(), p.stderr)
            self.assertEqual(self.read(mine), b"not lumen's")
        # Another input's output is not this input's either.
        other = picture(os.path.join(self.tmp, "photo.jpg"), w=200, h=200, seed=3)
        os.remove(mine)
        run("convert", self.photo, "-o", self.out, "--chain", "fit:100x100,webp", check=EXIT_OK)
        before = self.read(mine)
        p = run("convert", other, "-o", self.out, "--chain", "fit:100x100,webp", check=EXIT_SOME_FAILED)
        self.assertIn(b"no record of writing it", p.stderr)
        self.assertEqual(self.read(mine), before)
        # Its own earlier output (another chain) is replaced; --overwrite replaces anything.
        run("convert", self.photo, "-o", self.out, "--chain", "fit:50x50,webp", check=EXIT_OK)
        with Image.open(mine) as im:
            self.assertEqual(im.size, (50, 38))
        run("convert", other, "-o", self.out, "--chain", "fit:100x100,webp", "--overwrite", check=EXIT_OK)
        with Image.open(mine) as im:
            self.assertEqual(im.size, (100, 100))

    def test_recipe_output_and_name_cannot_escape(self):
        recipes = os.path.join(self.tmp, "recipes")
        os.makedirs(recipes)
        recipe = os.path.join(recipes, "shared.toml")
        for output in ("../escape", "/tmp/lumen-adv-escape", "a/../../escape"):
            with open(recipe, "w") as f:
                f.write(f'chain = "fit:100x100,webp"\noutput = "{output}"\n')
            p = run("convert", self.photo, "--recipe", recipe, check=EXIT_ERROR)
            self.assertIn(b"must be a folder inside the recipe's own folder", p.stderr, output)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "escape")))
        self.assertFalse(os.path.exists("/tmp/lumen-adv-escape"))
        # A link planted where the recipe's output folder goes is not followed either.
        elsewhere = os.path.join(self.tmp, "elsewhere")
        os.makedirs(elsewhere)
        os.symlink(elsewhere, os.path.join(recipes, "site"))
        with open(recipe, "w") as f:
            f.write('chain = "fit:100x100,webp"\noutput = "site"\n')
        p = run("convert", self.photo, "--recipe", recipe, check=EXIT_ERROR)
        self.assertIn(b"symbolic link", p.stderr)
        self.assertEqual(os.listdir(elsewhere), [])
        os.remove(os.path.join(recipes, "site"))
        run("convert", self.photo, "--recipe", recipe, check=EXIT_OK)
        self.assertTrue(os.path.isfile(os.path.join(recipes, "site", "photo.webp")))
        with open(recipe, "w") as f:
            f.write('chain = "fit:100x100,webp"\noutput = "site"\nname = "../../{stem}.{ext}"\n')
        p = run("convert", self.photo, "--recipe", recipe, check=EXIT_SOME_FAILED)
        self.assertIn(b"leaves the output folder", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "photo.webp")))

    def test_long_names_convert(self):
        # 250 bytes: legal (NAME_MAX 255), and the temporary name must not push past it.
        name = "n" * 246 + ".jpg"
        shutil.copy(self.photo, os.path.join(self.src, name))
        run("convert", os.path.join(self.src, name), "-o", self.out, "--chain", "fit:100x100,webp", check=EXIT_OK)
        self.assertTrue(os.path.isfile(os.path.join(self.out, "n" * 246 + ".webp")))
        run("convert", os.path.join(self.src, name), "-o", self.out, "--chain", "fit:90x90,webp",
            "--name", "{stem}_{w}.{ext}", check=EXIT_OK)  # 254 bytes
        self.assertEqual(temps_under(self.tmp), [])
        # In place, too.
        run("convert", os.path.join(self.src, name), "--in-place", "--chain", "resize:0.5", check=EXIT_OK)
        with Image.open(os.path.join(self.src, name)) as im:
            self.assertEqual(im.size, (200, 150))


class InPlace(Base):
    def test_write_protected_files_are_not_replaced(self):
        os.chmod(self.photo, 0o444)
        before = self.read(self.photo)
        p = run("convert", self.photo, "--in-place", "--chain", "resize:0.5", check=EXIT_SOME_FAILED)
        self.assertIn(b"write-protected", p.stderr)
        self.assertEqual(self.read(self.photo), before)
        self.assertEqual(os.stat(self.photo).st_mode & 0o7777, 0o444)

    def test_mode_owner_group_and_xattrs_are_kept(self):
        os.chmod(self.photo, 0o600)
        run("convert", self.photo, "--in-place", "--chain", "resize:0.5", check=EXIT_OK)
        self.assertEqual(os.stat(self.photo).st_mode & 0o7777, 0o600)
        with Image.open(self.photo) as im:
            self.assertEqual(im.size, (200, 150))
        other = picture(os.path.join(self.src, "other.jpg"), w=400, h=300)
        os.chmod(other, 0o640)
        xattr = True
        try:
            os.setxattr(other, "user.lumen-test", b"kept")
        except OSError:
            xattr = False  # the file system has no user attributes
        if os.geteuid() == 0:
            os.chown(other, 65534, 65534)  # nobody:nogroup
        run("convert", other, "--in-place", "--chain", "resize:0.5", check=EXIT_OK)
        st = os.stat(other)
        self.assertEqual(st.st_mode & 0o7777, 0o640)
        if os.geteuid() == 0:
            self.assertEqual((st.st_uid, st.st_gid), (65534, 65534))
        if xattr:
            self.assertEqual(os.getxattr(other, "user.lumen-test"), b"kept")
        self.assertEqual(temps_under(self.src), [])

    def test_hard_links_are_refused_not_split(self):
        link = os.path.join(self.src, "link.jpg")
        os.link(self.photo, link)
        before = self.read(self.photo)
        p = run("convert", self.photo, "--in-place", "--chain", "resize:0.5", check=EXIT_SOME_FAILED)
        self.assertIn(b"hard links", p.stderr)
        self.assertEqual(os.stat(self.photo).st_ino, os.stat(link).st_ino)
        self.assertEqual(self.read(link), before)

    def test_a_symlink_is_not_replaced_by_a_file(self):
        link = os.path.join(self.tmp, "link.jpg")
        os.symlink(self.photo, link)
        p = run("convert", link, "--in-place", "--chain", "resize:0.5", check=EXIT_SOME_FAILED)
        self.assertIn(b"symbolic link", p.stderr)
        self.assertTrue(os.path.islink(link))


class Limits(Base):
    def test_scan_bomb_is_refused_quickly(self):
        bomb = os.path.join(self.src, "scans.jpg")
        scan_bomb(bomb, 3000)
        for chain in ("fit:200x200,webp", "rotate:90,png", "fit:200x200,rotate:90,png"):  # direct and libvips
            t0 = time.monotonic()
            p = run("convert", bomb, "-o", self.out, "--chain", chain, timeout=120 * SLOW,
                    check=EXIT_SOME_FAILED)
            self.assertLess(time.monotonic() - t0, 10 * SLOW, chain)
            self.assertIn(b"scan limit", p.stderr, chain)
        # A stray byte between two segments (libjpeg skips it with a warning) must not end the
        # count before libvips' loader reads every scan.
        with open(bomb, "rb") as f:
            data = f.read()
        app_end = 4 + int.from_bytes(data[4:6], "big")  # after SOI + the first segment
        junk = os.path.join(self.src, "junk.jpg")
        with open(junk, "wb") as f:
            f.write(data[:app_end] + b"\x00" + data[app_end:])
        t0 = time.monotonic()
        p = run("convert", junk, "-o", self.out, "--chain", "rotate:90,png", timeout=120 * SLOW,
                check=EXIT_SOME_FAILED)
        self.assertLess(time.monotonic() - t0, 10 * SLOW)
        self.assertIn(b"scan limit", p.stderr)
        # The same limits hold for an overlay (a recipe may name any file): a FIFO is refused
        # by its type, never opened for reading, and a scan bomb by its scans.
        fifo = os.path.join(self.tmp, "over.png")
        os.mkfifo(fifo)
        for over, why in ((fifo, b"FIFO"), (bomb, b"scans")):
            p = run("convert", self.photo, "-o", self.out, "--no-cache", "--overwrite", "--chain",
                    f"overlay:{over},png", timeout=60 * SLOW, check=EXIT_SOME_FAILED)
            self.assertIn(why, p.stderr)
        # index's decoder has the same limit.
        lib = os.path.join(self.tmp, "lib")
        os.makedirs(lib)
        shutil.copy(bomb, lib)
        cat = os.path.join(self.tmp, "index.db")
        t0 = time.monotonic()
        run("index", lib, "--catalog", cat, "--quiet", "--no-embedding", timeout=120 * SLOW)
        self.assertLess(time.monotonic() - t0, 20 * SLOW)
        import sqlite3
        con = sqlite3.connect(cat)
        reasons = [r for (r,) in con.execute("SELECT reason FROM locations")]
        con.close()
        self.assertTrue(any(r and "scans" in r for r in reasons), reasons)

    def test_a_dangling_link_in_a_folder_does_not_end_the_walk(self):
        os.symlink(os.path.join(self.tmp, "nowhere.jpg"), os.path.join(self.src, "a-dangling.jpg"))
        os.symlink("loop.jpg", os.path.join(self.src, "loop.jpg"))
        picture(os.path.join(self.src, "z-after.jpg"), w=200, h=150)
        run("convert", self.src, "-o", self.out, "--chain", "fit:100x100,webp", timeout=60 * SLOW)
        self.assertTrue(os.path.exists(os.path.join(self.out, "z-after.webp")))
        self.assertTrue(os.path.exists(os.path.join(self.out, "photo.webp")))

    def test_pixel_bomb_and_file_size(self):
        bomb = os.path.join(self.src, "bomb.png")
        png_claiming(bomb, 100000, 100000)
        self.assertLess(os.path.getsize(bomb), 1000)
        t0 = time.monotonic()
        p = run("convert", bomb, "-o", self.out, "--chain", "fit:100x100,webp", timeout=60 * SLOW,
                check=EXIT_SOME_FAILED)
        self.assertLess(time.monotonic() - t0, 10 * SLOW)
        self.assertIn(b"pixel limit", p.stderr)
        self.assertEqual(temps_under(self.tmp), [])
        # --max-pixels and --max-file-size as index has them.
        p = run("convert", self.photo, "-o", self.out, "--chain", "fit:100x100,webp", "--max-pixels", "0.1",
                check=EXIT_SOME_FAILED)
        self.assertIn(b"pixel limit", p.stderr)
        p = run("convert", self.photo, "-o", self.out, "--chain", "rotate:90,png", "--max-pixels", "0.1",
                check=EXIT_SOME_FAILED)
        self.assertIn(b"pixel limit", p.stderr)
        p = run("convert", self.photo, "-o", self.out, "--chain", "fit:100x100,webp", "--max-file-size", "0.001",
                check=EXIT_SOME_FAILED)
        self.assertIn(b"file size limit", p.stderr)

    def test_special_files_and_missing_inputs(self):
        fifo = os.path.join(self.tmp, "pipe.jpg")
        os.mkfifo(fifo)
        for path, why in ((fifo, b"FIFO"), ("/dev/zero", b"character device"),
                          (os.path.join(self.tmp, "nonexistent.jpg"), b"no such file")):
            t0 = time.monotonic()
            p = run("convert", path, "-o", self.out, "--chain", "fit:100x100,webp", timeout=30 * SLOW)
            self.assertLess(time.monotonic() - t0, 10 * SLOW, path)
            self.assertNotEqual(p.returncode, EXIT_OK, path)
            self.assertIn(why, p.stderr, path)
        # A link to a photo is followed, as index follows links to files.
        link = os.path.join(self.tmp, "link.jpg")
        os.symlink(self.photo, link)
        p = run("convert", link, "-o", self.out, "--chain", "fit:100x100,webp", check=EXIT_OK)
        self.assertTrue(os.path.isfile(os.path.join(self.out, "link.webp")))

    def test_time_limit(self):
        big = os.path.join(self.src, "big.png")
        Image.linear_gradient("L").resize((3000, 3000)).save(big, compress_level=1)
        t0 = time.monotonic()
        p = run("convert", big, "-o", self.out, "--chain", "blur:400,png", "--time-limit", "1",
                timeout=60 * SLOW, check=EXIT_SOME_FAILED)
        self.assertLess(time.monotonic() - t0, 15 * SLOW)
        self.assertIn(b"time limit", p.stderr)
        self.assertEqual(temps_under(self.tmp), [])

    def test_sigterm_stops_within_a_second_and_leaves_no_temp_files(self):
        big = os.path.join(self.src, "big.png")
        Image.linear_gradient("L").resize((3000, 3000)).save(big, compress_level=1)
        for signals in (1, 2):  # the first asks to stop; a second ends the process at once
            self.stop_with(big, signals)

    def stop_with(self, big, signals):
        shutil.rmtree(self.out, ignore_errors=True)
        proc = subprocess.Popen([os.environ.get("LUMEN_BIN", "lumen"), "convert", big, "-o", self.out,
                                 "--chain", "blur:400,png", "--no-cache"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30 * SLOW
            while not temps_under(self.out) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(temps_under(self.out), "the conversion never started")
            time.sleep(0.5)
            t0 = time.monotonic()
            for _ in range(signals):
                proc.send_signal(signal.SIGTERM)
                time.sleep(0.01)
            proc.wait(timeout=10 * SLOW)
            self.assertLess(time.monotonic() - t0, 1.5 * SLOW)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 128 + signal.SIGTERM)
        self.assertEqual(temps_under(self.tmp), [])


class Operations(Base):
    def test_sharpen_with_alpha(self):
        rgba = os.path.join(self.src, "alpha.png")
        im = Image.new("RGBA", (200, 150), (200, 30, 30, 128))
        im.paste((30, 30, 200, 255), (100, 0, 200, 150))
        im.save(rgba)
        for chain in ("sharpen,png", "sharpen:1:2,webp", "fit:100x100,sharpen,png"):
            run("convert", rgba, "-o", self.out, "--chain", chain, "--overwrite", check=EXIT_OK)
        with Image.open(os.path.join(self.out, "alpha.png")) as out:
            self.assertEqual(out.mode, "RGBA")
            self.assertEqual(out.getpixel((10, 10))[3], 128)

    def test_watermark_text_is_literal(self):
        base = os.path.join(self.tmp, "base")
        run("convert", self.photo, "-o", base, "--chain", "png", check=EXIT_OK)
        run("convert", self.photo, "-o", self.out, "--chain", 'watermark:"Tom & Jerry <b>":40:centre:1,png',
            check=EXIT_OK)
        with Image.open(os.path.join(base, "photo.png")) as a, Image.open(os.path.join(self.out, "photo.png")) as b:
            diff = sum(1 for x, y in zip(a.convert("L").getdata(), b.convert("L").getdata()) if abs(x - y) > 40)
        self.assertGreater(diff, 200)  # the text is there

    def test_bad_arguments_are_errors_not_aborts(self):
        for chain, what in (("border:10:#gg0000", b"border colour"), ("border:10:#12345", b"border colour"),
                            ("border:10:#-10000", b"border colour"), ("border:x", b"border width"),
                            ("fit:10x", b"fit needs WxH"), ("sharpen:1:2:3:4", b"sharpen takes")):
            p = run("convert", self.photo, "-o", self.out, "--chain", chain, check=EXIT_ERROR)
            self.assertIn(what, p.stderr, chain)
            self.assertIn(b"position", p.stderr, chain)
        run("convert", self.photo, "-o", self.out, "--chain", "border:10:#ff0000,png", check=EXIT_OK)
        with Image.open(os.path.join(self.out, "photo.png")) as im:
            self.assertEqual(im.convert("RGB").getpixel((2, 2)), (255, 0, 0))

    def test_corrupt_pngs_have_reasons(self):
        good = os.path.join(self.tmp, "good.png")
        picture(good, w=64, h=64, fmt="PNG")
        data = self.read(good)
        bad = {"cut.png": data[:len(data) // 2], "header-only.png": data[:33],
               "crc.png": data[:29] + bytes([data[29] ^ 0xFF]) + data[30:],
               "idat.png": data[:41] + bytes(b ^ 0x55 for b in data[41:-12]) + data[-12:]}
        for name, body in bad.items():
            with open(os.path.join(self.src, name), "wb") as f:
                f.write(body)
        os.remove(self.photo)
        p = run("convert", self.src, "-o", self.out, "--chain", "rotate:90,png", "-v")
        err = p.stderr.decode(errors="replace")
        for line in err.splitlines():
            for name in bad:
                if name in line and ": " in line:
                    reason = line.split(name, 1)[1].lstrip(": ").strip()
                    self.assertTrue(reason, line)
        self.assertNotIn("gave no reason", err)  # libvips' own words, where it only logged them
        for name in bad:
            ok = os.path.exists(os.path.join(self.out, name))
            self.assertTrue(ok or name in err, name)  # converted (libpng may accept it) or named
        # libvips' own chatter is marked as libvips', never printed as lumen's own words.
        for line in err.splitlines():
            if "VipsForeign" in line or "vips__" in line:
                self.assertIn("libvips", line)


if __name__ == "__main__":
    unittest.main()
