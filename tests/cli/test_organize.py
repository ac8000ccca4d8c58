"""End-to-end tests of lumen organize / undo / redo / history and the dupes actions: the commands
that touch the user's files. Every test checks, by content hash, that no file was lost, duplicated
or altered.

Run by ctest (tests/CMakeLists.txt, label "organize") with LUMEN_BIN pointing at the binary.
LUMEN_FAULT_ITERATIONS sets the fault-injection iterations (default 50; 12 under sanitizers).
"""
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from PIL import Image

from test_cli import EXIT_ERROR, EXIT_OK, EXIT_SOME_FAILED, LUMEN, ROOT, SANITIZED, db_rows, picture, run

FAULT_ITERATIONS = int(os.environ.get("LUMEN_FAULT_ITERATIONS", "12" if SANITIZED else "50"))


def tree(root):
    """relative path -> sha256 of every file under root (empty dict if root is missing)."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def contents(*roots):
    """sorted list of the sha256 of every file under the roots (a multiset of contents)."""
    return sorted(h for r in roots for h in tree(r).values())


def read(path):
    with open(path, "rb") as f:
        return f.read()


def exif_date(path, when, make=None, model=None):
    args = ["exiftool", "-q", "-overwrite_original", f"-DateTimeOriginal={when}"]
    if make:
        args += [f"-Make={make}", f"-Model={model}"]
    subprocess.run(args + [path], check=True)


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-org-")
        self.src = os.path.join(self.tmp, "src")
        self.dest = os.path.join(self.tmp, "dest")
        os.makedirs(self.src)
        self.catalog = os.path.join(self.tmp, "cat", "catalog.db")

    def tearDown(self):
        subprocess.run(["chmod", "-R", "u+rwx", self.tmp])
        shutil.rmtree(self.tmp, ignore_errors=True)

    def lumen(self, *args, check=None, **kw):
        return run(*args, "--catalog", self.catalog, check=check, **kw)

    def organize(self, *extra, check=EXIT_OK, src=None, dest=None, **kw):
        return self.lumen("organize", src or self.src, "--into", dest or self.dest, *extra, check=check, **kw)

    def history(self):
        return json.loads(self.lumen("history", "--json", check=EXIT_OK).stdout)


class Organize(Base):
    def make_library(self):
        os.makedirs(os.path.join(self.src, "phone"))
        os.makedirs(os.path.join(self.src, "camera"))
        a = picture(os.path.join(self.src, "phone", "IMG_0001.jpg"), 320, 240, seed=1)
        exif_date(a, "2021:07:04 10:00:00", "Apple", "iPhone 12")
        # A live photo's video: an asset of its own (a video), travelling with its photo.
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=320x240:rate=30:duration=0.5", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                        "-f", "mov", os.path.join(self.src, "phone", "IMG_0001.MOV")], check=True)
        with open(os.path.join(self.src, "phone", "IMG_0001.AAE"), "wb") as f:
            f.write(b"<plist/>")
        b = picture(os.path.join(self.src, "camera", "DSC_0002.JPG"), 320, 240, seed=2)
        exif_date(b, "2020:01:31 08:00:00", "NIKON CORPORATION", "NIKON D750")
        with open(os.path.join(self.src, "camera", "DSC_0002.NEF"), "wb") as f:
            f.write(b"raw sensor data " * 200)
        with open(os.path.join(self.src, "camera", "DSC_0002.JPG.xmp"), "wb") as f:
            f.write(b"<x:xmpmeta/>")
        picture(os.path.join(self.src, "camera", "undated.png"), 200, 100, seed=3, fmt="PNG")
        # A name that exists at the destination with other content, one with the same content,
        # and one that differs only in case.
        c = picture(os.path.join(self.src, "camera", "DSC_0003.jpg"), 320, 240, seed=4)
        exif_date(c, "2020:01:31 09:00:00")
        d = picture(os.path.join(self.src, "camera", "DSC_0004.jpg"), 320, 240, seed=5)
        exif_date(d, "2020:01:31 09:30:00")
        os.makedirs(os.path.join(self.dest, "2020", "01"))
        picture(os.path.join(self.dest, "2020", "01", "dsc_0003.JPG"), 100, 100, seed=99)
        shutil.copy2(d, os.path.join(self.dest, "2020", "01", "DSC_0004.jpg"))

    def test_plan_apply_undo_redo(self):
        self.make_library()
        before_src, before_dest = tree(self.src), tree(self.dest)
        everything = contents(self.src, self.dest)
        # Dry run (the default): a plan, nothing touched.
        p = self.organize("--json")
        plan = json.loads(p.stdout)
        self.assertEqual((tree(self.src), tree(self.dest)), (before_src, before_dest))
        self.assertEqual(plan["photos"], 4)
        self.assertEqual(plan["companions"], 4)  # MOV, AAE, NEF, xmp
        self.assertEqual(plan["identical"], 1)
        self.assertEqual(plan["renamed"], 1)
        dst = {os.path.relpath(o["src"], self.src): os.path.relpath(o["dst"], self.dest)
               for o in plan["operations"] if o["op"] == "move" and o["state"] == "pending"}
        self.assertEqual(dst, {
            "phone/IMG_0001.jpg": "2021/07/IMG_0001.jpg",
            "phone/IMG_0001.MOV": "2021/07/IMG_0001.MOV",
            "phone/IMG_0001.AAE": "2021/07/IMG_0001.AAE",
            "camera/DSC_0002.JPG": "2020/01/DSC_0002.JPG",
            "camera/DSC_0002.NEF": "2020/01/DSC_0002.NEF",
            "camera/DSC_0002.JPG.xmp": "2020/01/DSC_0002.JPG.xmp",
            "camera/undated.png": "unknown/unknown/undated.png",
            # dsc_0003.JPG (other content, other case) is taken: a suffix, never an overwrite.
            "camera/DSC_0003.jpg": "2020/01/DSC_0003_1.jpg",
        })
        skipped = [o for o in plan["operations"] if o["state"] == "skipped"]
        self.assertEqual([os.path.basename(o["src"]) for o in skipped], ["DSC_0004.jpg"])
        self.assertIn("identical file already at", skipped[0]["reason"])
        self.assertEqual(self.history()[-1]["state"], "planned")

        # Apply: the files move, the catalog's locations follow (same assets, same ids).
        assets_before = dict(db_rows(self.catalog, "SELECT path, asset_id FROM locations WHERE state='ok'"))
        p = self.organize("--apply")
        after = tree(self.dest)
        for s, d in dst.items():
            self.assertEqual(after[d], before_src[s], d)
        self.assertEqual(set(tree(self.src)), {"camera/DSC_0004.jpg"})  # the identical one stays
        self.assertEqual(contents(self.src, self.dest), everything)
        assets_after = dict(db_rows(self.catalog, "SELECT path, asset_id FROM locations WHERE state='ok'"))
        for s, d in dst.items():
            sp, dp = os.path.join(self.src, s).encode(), os.path.join(self.dest, d).encode()
            if sp in assets_before:
                self.assertEqual(assets_after[dp], assets_before[sp])
                self.assertNotIn(sp, assets_after)
        # A re-index of the destination reads only the two files that were there before.
        p = run("index", self.dest, "--catalog", self.catalog, "--no-embedding", check=EXIT_OK)
        self.assertRegex(p.stderr.decode(), r" 2 succeeded")
        h = self.history()[-1]
        self.assertEqual((h["state"], h["done"], h["skipped"]), ("applied", 8, 1))
        self.assertEqual(len(self.history()), 1)  # the dry run's plan was replaced by the applied one

        # Undo restores both trees exactly (and removes the folders the run made); redo again.
        self.lumen("undo", check=EXIT_OK)
        self.assertEqual((tree(self.src), tree(self.dest)), (before_src, before_dest))
        self.assertFalse(os.path.exists(os.path.join(self.dest, "2021")))
        self.assertEqual(self.history()[-1]["state"], "undone")
        self.lumen("redo", check=EXIT_OK)
        self.assertEqual(tree(self.dest), after)
        self.lumen("undo", str(h["run"]), check=EXIT_OK)
        self.assertEqual((tree(self.src), tree(self.dest)), (before_src, before_dest))

    def test_templates_copy_and_hardlink(self):
        a = picture(os.path.join(self.src, "a.jpg"), 200, 150, seed=7)
        exif_date(a, "2019:12:25 18:00:00", "Canon", "Canon EOS 80D")
        picture(os.path.join(self.src, "b.jpg"), 200, 150, seed=8)
        before = tree(self.src)
        self.organize("--template", "{camera|no camera}/{date?}/{stem}_{hash8}.{ext}", "--copy", "--apply")
        self.assertEqual(tree(self.src), before)  # copies leave the sources
        names = sorted(tree(self.dest))
        self.assertEqual(len(names), 2)
        self.assertRegex(names[0], r"^Canon EOS 80D/2019-12-25/a_[0-9a-f]{8}\.jpg$")
        self.assertRegex(names[1], r"^no camera/b_[0-9a-f]{8}\.jpg$")
        self.lumen("undo", check=EXIT_OK)
        self.assertEqual(tree(self.dest), {})
        self.assertEqual(tree(self.src), before)
        self.organize("--hardlink", "--apply")
        linked = os.path.join(self.dest, "2019", "12", "a.jpg")
        self.assertEqual(os.stat(linked).st_ino, os.stat(os.path.join(self.src, "a.jpg")).st_ino)
        self.lumen("undo", check=EXIT_OK)
        self.assertEqual(tree(self.dest), {})
        self.assertEqual(tree(self.src), before)

    def test_templates_that_escape_are_refused(self):
        picture(os.path.join(self.src, "a.jpg"), 64, 64, seed=1)
        for t, why in [("../{name}", "'.' and '..'"), ("/etc/{name}", "absolute"), ("{year}/../../x", "'..'"),
                       ("{nope}", "unknown field 'nope'"), ("{year", "without '}'"), ("a\x01b", "control"),
                       ("{year|..}", "only dots")]:
            p = self.organize("--template", t, check=EXIT_ERROR)
            self.assertIn(why, p.stderr.decode(errors="replace"), t)
            self.assertIn("position", p.stderr.decode(errors="replace"), t)
        self.assertFalse(os.path.exists(self.dest))
        # Field values cannot escape either: a tag-like value with slashes and dots is sanitised.
        exif_date(os.path.join(self.src, "a.jpg"), "2020:01:01 00:00:00", "../../evil", "x/../../y")
        self.organize("--template", "{make}/{model}", "--apply")
        self.assertEqual(list(tree(self.dest)), [".._.._evil/x_.._.._y/a.jpg"])

    def test_cross_filesystem_move_and_undo(self):
        if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(self.tmp).st_dev:
            self.skipTest("no second filesystem")
        for i in range(5):
            picture(os.path.join(self.src, f"p{i}.jpg"), 300, 200, seed=20 + i)
        before = tree(self.src)
        dest = tempfile.mkdtemp(prefix="lumen-org-", dir="/dev/shm")
        try:
            self.organize("--template", "{name}", "--apply", dest=dest)
            self.assertEqual(tree(dest), before)
            self.assertEqual(tree(self.src), {})
            self.assertEqual([f for f in os.listdir(dest) if f.startswith(".lumen")], [])
            self.lumen("undo", check=EXIT_OK)
            self.assertEqual(tree(self.src), before)
            self.assertEqual(tree(dest), {})
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def test_changed_source_is_skipped_and_undo_never_overwrites(self):
        for i in range(3):
            picture(os.path.join(self.src, f"p{i}.jpg"), 200, 150, seed=30 + i)
        self.organize("--template", "{name}")  # plan only
        run_id = self.history()[-1]["run"]
        changed = os.path.join(self.src, "p1.jpg")
        picture(changed, 210, 150, seed=77)
        changed_bytes = read(changed)
        p = self.lumen("organize", "--resume", "--run", str(run_id), check=EXIT_SOME_FAILED)
        self.assertIn("p1.jpg changed after the plan", p.stderr.decode())
        self.assertEqual(read(changed), changed_bytes)
        self.assertEqual(sorted(tree(self.dest)), ["p0.jpg", "p2.jpg"])
        # The user edits a moved file; undo restores the rest and leaves that one, saying why.
        edited = os.path.join(self.dest, "p2.jpg")
        with open(edited, "ab") as f:
            f.write(b"edited")
        edited_bytes = read(edited)
        p = self.lumen("undo", check=EXIT_SOME_FAILED)
        self.assertIn("p2.jpg changed after the run; not moved back", p.stderr.decode())
        self.assertEqual(read(edited), edited_bytes)
        self.assertEqual(sorted(tree(self.src)), ["p0.jpg", "p1.jpg"])
        # A file now at the original path is never overwritten by undo either.
        self.lumen("redo", check=EXIT_OK)
        self.assertTrue(os.path.exists(os.path.join(self.dest, "p0.jpg")))
        with open(os.path.join(self.src, "p0.jpg"), "wb") as f:
            f.write(b"newcomer")
        p = self.lumen("undo", check=EXIT_SOME_FAILED)
        self.assertIn("is taken by another file", p.stderr.decode())
        self.assertEqual(read(os.path.join(self.src, "p0.jpg")), b"newcomer")
        self.assertTrue(os.path.exists(os.path.join(self.dest, "p0.jpg")))


@contextlib.contextmanager
def tmpfs(size, *opts):
    d = tempfile.mkdtemp(prefix="lumen-tmpfs-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *opts]), "tmpfs", d],
                      capture_output=True).returncode != 0:
        os.rmdir(d)
        yield None
        return
    try:
        yield d
    finally:
        subprocess.run(["umount", d])
        os.rmdir(d)


class Faults(Base):
    def test_destination_full_stops_and_resumes(self):
        for i in range(6):
            Image.frombytes("RGB", (400, 400), random.Random(i).randbytes(480000)).save(
                os.path.join(self.src, f"big{i}.png"))  # noise: ~480 KB each
        before = tree(self.src)
        with tmpfs("1m") as small:
            if small is None:
                self.skipTest("cannot mount a tmpfs (not root?)")
            p = self.organize("--template", "{name}", "--apply", dest=small, check=EXIT_SOME_FAILED)
            err = p.stderr.decode()
            self.assertIn("the destination is full", err)
            self.assertIn("lumen organize --resume", err)
            self.assertEqual(contents(self.src, small), sorted(before.values()))
            self.assertEqual([f for f in os.listdir(small) if f.startswith(".lumen")], [])
            moved = len(tree(small))
            self.assertGreaterEqual(moved, 1)
            self.assertLess(moved, 6)
            # Free the space (the user moves the first files elsewhere) and resume.
            kept = os.path.join(self.tmp, "kept")
            os.makedirs(kept)
            for f in os.listdir(small):
                shutil.move(os.path.join(small, f), kept)
            subprocess.run(["mount", "-o", "remount,size=8m", small], check=True)
            self.lumen("organize", "--resume", check=EXIT_OK)
            self.assertEqual(contents(self.src, small, kept), sorted(before.values()))
            self.assertEqual(tree(self.src), {})

    def test_read_only_destination(self):
        picture(os.path.join(self.src, "a.jpg"), 100, 100, seed=1)
        before = tree(self.src)
        with tmpfs("1m", "ro") as ro:
            if ro is None:
                self.skipTest("cannot mount a tmpfs")
            p = self.organize("--apply", dest=ro, check=EXIT_SOME_FAILED)
            self.assertIn("Read-only file system", p.stderr.decode())
            self.assertEqual(tree(self.src), before)

    def test_permission_denied(self):
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            self.skipTest("needs root to run lumen as another user")
        # lumen runs as nobody: a source folder it may not write (so cannot move out of) and a
        # destination folder it may not write.
        os.chmod(self.tmp, 0o777)
        locked = os.path.join(self.src, "locked")
        os.makedirs(locked)
        picture(os.path.join(locked, "a.jpg"), 100, 100, seed=1)
        picture(os.path.join(self.src, "b.jpg"), 100, 100, seed=2)
        os.makedirs(os.path.join(self.tmp, "cat"))
        os.makedirs(self.dest)
        for d in (self.src, os.path.join(self.tmp, "cat"), self.dest):
            os.chmod(d, 0o777)
        os.chmod(locked, 0o555)
        before = tree(self.src)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", LUMEN]
        p = subprocess.run(nobody + ["organize", self.src, "--into", self.dest, "--template", "{name}",
                                     "--apply", "--catalog", self.catalog], capture_output=True)
        self.assertEqual(p.returncode, EXIT_SOME_FAILED, p.stderr)
        self.assertIn("Permission denied", p.stderr.decode())
        self.assertIn("a.jpg", p.stderr.decode())
        self.assertEqual(tree(self.dest), {"b.jpg": before["b.jpg"]})
        self.assertEqual(tree(self.src), {"locked/a.jpg": before["locked/a.jpg"]})
        # Undo out of a destination lumen may not write: refused with the reason, nothing lost;
        # once allowed, it completes.
        os.chmod(self.dest, 0o555)
        p = subprocess.run(nobody + ["undo", "--catalog", self.catalog], capture_output=True)
        self.assertEqual(p.returncode, EXIT_SOME_FAILED, p.stderr)
        self.assertIn("cannot move", p.stderr.decode())
        self.assertIn("Permission denied", p.stderr.decode())
        self.assertIn("1 left as they were", p.stderr.decode())
        self.assertEqual(tree(self.dest), {"b.jpg": before["b.jpg"]})
        os.chmod(self.dest, 0o777)
        p = subprocess.run(nobody + ["undo", "--catalog", self.catalog], capture_output=True)
        self.assertEqual(p.returncode, EXIT_OK, p.stderr)
        self.assertEqual(tree(self.src), before)

    def test_kill_at_random_points_then_resume_or_undo(self):
        """SIGKILL during apply (at a random executor step, or after a random delay), then
        resume or undo: every original file exists exactly once with its bytes."""
        rnd = random.Random(1234)
        pristine = os.path.join(self.tmp, "pristine")
        os.makedirs(pristine)
        for i in range(300):
            d = os.path.join(pristine, f"d{i % 7}")
            os.makedirs(d, exist_ok=True)
            Image.new("RGB", (8, 8), (i % 256, (i * 7) % 256, (i * 13) % 256)).save(os.path.join(d, f"f{i}.png"))
            if i % 10 == 0:
                with open(os.path.join(d, f"f{i}.xmp"), "wb") as f:
                    f.write(b"sidecar %d" % i)
        originals = contents(pristine)
        cross = os.path.isdir("/dev/shm") and os.stat("/dev/shm").st_dev != os.stat(self.tmp).st_dev
        outcomes = {"resumed": 0, "undone": 0, "finished_before_kill": 0}
        for it in range(FAULT_ITERATIONS):
            shutil.rmtree(self.src, ignore_errors=True)
            shutil.rmtree(self.dest, ignore_errors=True)
            shutil.copytree(pristine, self.src)
            dest = self.dest
            if cross and it % 4 == 3:  # every 4th run crosses filesystems: copy, verify, unlink
                dest = tempfile.mkdtemp(prefix="lumen-fault-", dir="/dev/shm")
                os.rmdir(dest)
            self.organize("--template", "{name|x}", "--quiet", dest=dest)  # index + plan
            env = dict(os.environ)
            if it % 2 == 0:
                env["LUMEN_FAULT_KILL_AT"] = str(rnd.randrange(1, 800))
                p = subprocess.run([LUMEN, "organize", "--resume", "--quiet", "--catalog", self.catalog],
                                   env=env, capture_output=True)
                killed = p.returncode == -signal.SIGKILL
            else:
                proc = subprocess.Popen([LUMEN, "organize", "--resume", "--quiet", "--catalog", self.catalog],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(rnd.uniform(0.0, 0.15))
                proc.send_signal(signal.SIGKILL)
                killed = proc.wait() == -signal.SIGKILL
            if not killed:
                outcomes["finished_before_kill"] += 1
            if rnd.random() < 0.5:
                self.lumen("organize", "--resume", "--quiet", check=EXIT_OK)
                self.assertEqual(contents(dest), originals, f"iteration {it}: resume")
                self.assertEqual(tree(self.src), {}, f"iteration {it}: resume left sources")
                outcomes["resumed"] += 1
            else:
                self.lumen("undo", "--quiet", check=EXIT_OK)
                self.assertEqual(tree(self.src), tree(pristine), f"iteration {it}: undo")
                self.assertEqual(tree(dest), {}, f"iteration {it}: undo left files")
                outcomes["undone"] += 1
            leftovers = [f for d, _, fs in os.walk(dest) for f in fs if f.startswith(".lumen")]
            self.assertEqual(leftovers, [], f"iteration {it}")
            if dest != self.dest:
                shutil.rmtree(dest, ignore_errors=True)
        print(f"fault injection: {FAULT_ITERATIONS} iterations, {outcomes}")
        self.assertGreater(outcomes["resumed"], 0)
        self.assertGreater(outcomes["undone"], 0)


class DupesActions(Base):
    def make_dupes(self):
        os.makedirs(os.path.join(self.src, "backup"))
        a = picture(os.path.join(self.src, "a.jpg"), 640, 480, seed=1)
        shutil.copy2(a, os.path.join(self.src, "backup", "a copy.jpg"))
        b = picture(os.path.join(self.src, "b.jpg"), 640, 480, seed=2)
        Image.open(b).resize((320, 240)).save(os.path.join(self.src, "b-small.jpg"), quality=60)
        picture(os.path.join(self.src, "c.jpg"), 640, 480, seed=3)
        run("index", self.src, "--catalog", self.catalog, "--quiet", "--no-embedding", check=EXIT_OK)

    def test_move_to_quarantine_and_undo(self):
        self.make_dupes()
        before = tree(self.src)
        q = os.path.join(self.tmp, "quarantine")
        p = self.lumen("dupes", "--move-to", q, check=EXIT_OK)  # plan only
        self.assertEqual(tree(self.src), before)
        self.assertIn("dry run", p.stderr.decode())
        self.lumen("dupes", "--move-to", q, "--apply", check=EXIT_OK)
        moved = tree(q)
        self.assertEqual(sorted(moved), sorted([
            os.path.relpath(os.path.join(self.src, "backup", "a copy.jpg"), "/"),
            os.path.relpath(os.path.join(self.src, "b-small.jpg"), "/")]))
        self.assertEqual(sorted(tree(self.src)), ["a.jpg", "b.jpg", "c.jpg"])
        # The catalog follows: the quarantined copies are no longer duplicates under src.
        paths = [r[0].decode() for r in db_rows(self.catalog, "SELECT path FROM locations WHERE state='ok'")]
        self.assertTrue(all(p.startswith(q) or os.path.dirname(p) == self.src for p in paths), paths)
        self.lumen("undo", check=EXIT_OK)
        self.assertEqual(tree(self.src), before)
        self.assertEqual(tree(q), {})

    def test_hardlink_identical_copies_and_undo(self):
        self.make_dupes()
        before = tree(self.src)
        copy = os.path.join(self.src, "backup", "a copy.jpg")
        st0 = os.stat(copy)
        p = self.lumen("dupes", "--hardlink", "--apply", check=EXIT_OK)
        self.assertIn("only identical files are hard-linked", p.stderr.decode())
        self.assertEqual(os.stat(copy).st_ino, os.stat(os.path.join(self.src, "a.jpg")).st_ino)
        self.assertNotEqual(os.stat(os.path.join(self.src, "b-small.jpg")).st_ino,
                            os.stat(os.path.join(self.src, "b.jpg")).st_ino)
        self.assertEqual(tree(self.src), before)
        self.lumen("undo", check=EXIT_OK)
        st1 = os.stat(copy)
        self.assertNotEqual(st1.st_ino, os.stat(os.path.join(self.src, "a.jpg")).st_ino)
        self.assertEqual((st1.st_mode, st1.st_mtime_ns), (st0.st_mode, st0.st_mtime_ns))
        self.assertEqual(tree(self.src), before)


class DupesTiersAndReport(Base):
    def test_sharpness_semantic_tier_and_html_report(self):
        from PIL import ImageFilter
        import array
        lib = self.src
        picture(os.path.join(lib, "sharp.jpg"), 640, 480, seed=11)
        Image.open(os.path.join(lib, "sharp.jpg")).filter(ImageFilter.GaussianBlur(3)).save(
            os.path.join(lib, "blurred.jpg"), quality=95)
        # Two different pictures of "the same scene" (by embedding) and an unrelated one.
        for name, seed in [("scene1.jpg", 21), ("scene2.jpg", 22), ("other.jpg", 23)]:
            picture(os.path.join(lib, name), 640, 480, seed=seed)
        run("index", lib, "--catalog", self.catalog, "--quiet", "--no-embedding", check=EXIT_OK)
        ids = {os.path.basename(bytes(p).decode()): a for p, a in
               db_rows(self.catalog, "SELECT path, asset_id FROM locations WHERE state='ok'")}
        rnd = random.Random(5)
        base = [rnd.gauss(0, 1) for _ in range(64)]
        def unit(v):
            n = sum(x * x for x in v) ** 0.5
            return [x / n for x in v]
        vecs = {"scene1.jpg": unit(base), "scene2.jpg": unit([x + rnd.gauss(0, 0.1) for x in base]),
                "other.jpg": unit([rnd.gauss(0, 1) for _ in range(64)])}
        import sqlite3
        con = sqlite3.connect(self.catalog)
        for name, v in vecs.items():
            con.execute("INSERT INTO embeddings(asset_id, model, dim, vector) VALUES(?,?,?,?)",
                        (ids[name], "siglip:test", 64, array.array("f", v).tobytes()))
        con.commit()
        con.close()
        report = os.path.join(self.tmp, "report.html")
        p = self.lumen("dupes", "--json", "--report", report, check=EXIT_OK)
        groups = {frozenset(os.path.basename(f["path"]) for f in g["files"]): g for g in json.loads(p.stdout)}
        self.assertEqual(set(groups), {frozenset({"sharp.jpg", "blurred.jpg"}),
                                       frozenset({"scene1.jpg", "scene2.jpg"})})
        blur = groups[frozenset({"sharp.jpg", "blurred.jpg"})]
        self.assertEqual([os.path.basename(f["path"]) for f in blur["files"] if f["keep"]], ["sharp.jpg"])
        self.assertIn("sharpest", blur["keep_reason"])
        sharp = {os.path.basename(f["path"]): f["sharpness"] for f in blur["files"]}
        self.assertGreater(sharp["sharp.jpg"], 2 * sharp["blurred.jpg"])
        sem = groups[frozenset({"scene1.jpg", "scene2.jpg"})]
        self.assertEqual(sem["tier"], "semantic")
        self.assertRegex([f for f in sem["files"] if not f["keep"]][0]["reason"], r"embedding cosine 0\.9[5-9]\d")
        # A stricter threshold (or 2: off) removes the semantic group.
        p = self.lumen("dupes", "--json", "--similarity", "2", check=EXIT_OK)
        self.assertEqual([g["tier"] for g in json.loads(p.stdout)], ["near"])
        # The HTML report renders in a real browser: every thumbnail decodes.
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        self.assertIsNotNone(chromium, "chromium is installed by scripts/bootstrap.sh")
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                              "--dump-dom", "file://" + report], capture_output=True, timeout=120).stdout.decode()
        self.assertEqual(dom.count("<img "), 4)
        self.assertIn('data-decoded="4"', dom)
        self.assertEqual(dom.count('<section class="group"'), 2)
        self.assertIn("KEEP", dom)
        shot = os.path.join(self.tmp, "shot.png")
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,900",
                        f"--screenshot={shot}", "file://" + report], capture_output=True, timeout=120)
        colours = Image.open(shot).convert("RGB").getcolors(1 << 20)
        self.assertGreater(len(colours), 50)  # thumbnails, not a blank page


class RealPhotos(Base):
    def test_planted_duplicates_then_quarantine_organize_and_undo(self):
        photos = os.path.join(self.tmp, "photos")
        subprocess.run([os.path.join(ROOT, "scripts", "fetch-photos.sh"), "test", photos], check=True)
        found = sorted(os.path.join(d, f) for d, _, fs in os.walk(photos) for f in fs if f.lower().endswith(".jpg"))
        self.assertGreaterEqual(len(found), 12)
        cam = os.path.join(self.src, "camera")
        os.makedirs(cam)
        originals = []
        for i, f in enumerate(found[:12]):
            originals.append(shutil.copy2(f, os.path.join(cam, f"{i:02d}_{os.path.basename(f)}")))
        # Planted: a renamed exact copy, a resized copy, a recompressed copy (EXIF dropped).
        os.makedirs(os.path.join(self.src, "backup"))
        os.makedirs(os.path.join(self.src, "web"))
        shutil.copy(originals[0], os.path.join(self.src, "backup", "renamed.jpg"))  # a newer file
        im = Image.open(originals[1])
        im.resize((im.width // 2, im.height // 2), Image.LANCZOS).save(os.path.join(self.src, "web", "small.jpg"), quality=85)
        Image.open(originals[2]).save(os.path.join(self.src, "web", "recompressed.jpg"), quality=50)
        before = tree(self.src)
        run("index", self.src, "--catalog", self.catalog, "--quiet", "--no-embedding", check=EXIT_OK)
        groups = json.loads(self.lumen("dupes", "--json", check=EXIT_OK).stdout)
        by_dupe = {}
        for g in groups:
            kept = [f["path"] for f in g["files"] if f["keep"]][0]
            for f in g["files"]:
                if not f["keep"]:
                    by_dupe[os.path.relpath(f["path"], self.src)] = (os.path.relpath(kept, self.src), g["tier"])
        self.assertEqual(by_dupe.get("backup/renamed.jpg"), (os.path.relpath(originals[0], self.src), "exact"))
        self.assertEqual(by_dupe.get("web/small.jpg"), (os.path.relpath(originals[1], self.src), "near"))
        self.assertEqual(by_dupe.get("web/recompressed.jpg"), (os.path.relpath(originals[2], self.src), "near"))
        # Quarantine the extra copies, then organize what is left by capture date.
        q = os.path.join(self.tmp, "quarantine")
        self.lumen("dupes", "--move-to", q, "--apply", "--quiet", check=EXIT_OK)
        self.assertEqual(len(tree(q)), len(by_dupe))
        self.organize("--template", "{year|undated}/{month|undated}", "--apply", "--quiet")
        dates = {os.path.basename(r["SourceFile"]): r.get("DateTimeOriginal") for r in json.loads(subprocess.run(
            ["exiftool", "-json", "-DateTimeOriginal", "-r", self.dest], capture_output=True, check=True).stdout)}
        self.assertEqual(len(dates), len(before) - len(by_dupe))
        for rel in tree(self.dest):
            when = dates[os.path.basename(rel)]
            want = f"{when[:4]}/{when[5:7]}" if when else "undated/undated"
            self.assertEqual(os.path.dirname(rel), want, rel)
        self.assertEqual(contents(self.dest, q), sorted(before.values()))
        # Undo both runs, newest first: the library is exactly as it was.
        self.lumen("undo", "--quiet", check=EXIT_OK)
        self.lumen("undo", "--quiet", check=EXIT_OK)
        self.assertEqual(tree(self.src), before)
        self.assertEqual(tree(q), {})
        self.assertEqual(tree(self.dest), {})


if __name__ == "__main__":
    unittest.main()
