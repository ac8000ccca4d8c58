"""Adversarial end-to-end tests of organize / undo / dupes actions (issue 15, classes 3, 14, 15, 16):
symbolic links planted inside the destination or where a source folder was, at every stage (before
the plan, between plan and --resume, before undo); overlapping sources; byte-identical copies of a
near duplicate; AI-name templates without descriptions. Each test checks that nothing lands
outside the folders the user named and that every original exists exactly once, by content.

Run by ctest (tests/CMakeLists.txt, labels "cli;adversarial") with LUMEN_BIN pointing at the binary.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

from PIL import Image

from test_cli import EXIT_OK, EXIT_SOME_FAILED, db_rows, picture, run
import test_organize
from test_organize import contents, tree


def inode(path):
    st = os.lstat(path)
    return st.st_dev, st.st_ino


class Base(test_organize.Base):
    def setUp(self):
        super().setUp()
        self.elsewhere = os.path.join(self.tmp, "elsewhere")  # where planted links point
        os.makedirs(self.elsewhere)

    def photos(self, n, folder=None, prefix="p"):
        folder = folder or self.src
        os.makedirs(folder, exist_ok=True)
        return [picture(os.path.join(folder, f"{prefix}{i}.jpg"), 320, 240, seed=700 + i + 50 * len(prefix))
                for i in range(n)]

    def assert_nothing_outside(self):
        self.assertEqual(os.listdir(self.elsewhere), [], "something landed outside the destination")


class PlantedLinks(Base):
    """DEST/2005 -> elsewhere, planted before the plan, between plan and --resume, before undo."""

    def test_link_in_dest_before_the_plan_is_not_followed(self):
        self.photos(3)
        originals = contents(self.src)
        os.makedirs(self.dest)
        os.symlink(self.elsewhere, os.path.join(self.dest, "2005"))
        p = self.lumen("organize", self.src, "--into", self.dest, "--template", "2005/{name}", "--apply",
                       check=EXIT_OK)
        self.assertIn(b"symbolic link", p.stderr)
        self.assert_nothing_outside()
        self.assertEqual(contents(self.src, self.dest), originals)
        self.assertEqual(contents(self.src), originals)  # nothing moved

    def test_link_in_dest_between_plan_and_resume_is_not_followed(self):
        for depth in ("2005", "2005/07"):
            with self.subTest(depth=depth):
                shutil.rmtree(self.dest, ignore_errors=True)
                for f in os.listdir(self.elsewhere):
                    os.remove(os.path.join(self.elsewhere, f))
                shutil.rmtree(self.src)
                self.photos(3)
                originals = contents(self.src)
                self.lumen("organize", self.src, "--into", self.dest, "--template", depth + "/{name}", "--quiet",
                           check=EXIT_OK)  # plan only
                # Planted after the plan: the parent exists, the last level is a link.
                parent = os.path.dirname(os.path.join(self.dest, depth))
                os.makedirs(parent, exist_ok=True)
                os.symlink(self.elsewhere, os.path.join(self.dest, depth))
                p = self.lumen("organize", "--resume", check=EXIT_SOME_FAILED)
                self.assertIn(b"symbolic link", p.stderr)
                self.assert_nothing_outside()
                self.assertEqual(contents(self.src), originals)
                # Undo of the failed run touches nothing either.
                self.lumen("undo", "--quiet")
                self.assert_nothing_outside()
                self.assertEqual(contents(self.src), originals)

    def test_link_replacing_a_dest_folder_after_apply_is_not_followed_by_undo(self):
        self.photos(3)
        originals = contents(self.src)
        self.lumen("organize", self.src, "--into", self.dest, "--template", "2005/{name}", "--apply", "--quiet",
                   check=EXIT_OK)
        self.assertEqual(contents(self.dest), originals)
        # DEST/2005 moved away and replaced by a link to a folder holding decoys with the same names
        # and bytes: undo must not move the decoys into the source folder.
        real = os.path.join(self.tmp, "dest-2005-moved")
        os.rename(os.path.join(self.dest, "2005"), real)
        for f in os.listdir(real):
            shutil.copy(os.path.join(real, f), os.path.join(self.elsewhere, f))
        os.symlink(self.elsewhere, os.path.join(self.dest, "2005"))
        p = self.lumen("undo")
        self.assertIn(b"symbolic link", p.stderr)
        self.assertEqual(contents(self.elsewhere), originals)  # the decoys stayed where they were
        self.assertEqual(tree(self.src), {})
        self.assertEqual(contents(real), originals)
        # Put back: undo finishes, every original exactly once.
        os.remove(os.path.join(self.dest, "2005"))
        os.rename(real, os.path.join(self.dest, "2005"))
        self.lumen("undo", "--quiet", check=EXIT_OK)
        self.assertEqual(contents(self.src), originals)

    def test_source_folder_replaced_by_a_link_before_undo(self):
        sub = os.path.join(self.src, "camera")
        self.photos(3, folder=sub)
        originals = contents(self.src)
        self.lumen("organize", self.src, "--into", self.dest, "--template", "{name}", "--apply", "--quiet",
                   check=EXIT_OK)
        self.assertEqual(contents(self.dest), originals)
        # Where the original folder was, a link to elsewhere (or, deeper: the source root itself).
        for victim in (sub, self.src):
            with self.subTest(victim=victim):
                moved = victim + ".moved"
                os.rename(victim, moved)
                os.symlink(self.elsewhere, victim)
                p = self.lumen("undo")
                self.assertIn(b"symbolic link", p.stderr)
                self.assertEqual(tree(self.elsewhere), {}, "undo wrote through the planted link")
                self.assertEqual(contents(self.dest), originals)
                os.remove(victim)
                os.rename(moved, victim)
        self.lumen("undo", "--quiet", check=EXIT_OK)
        self.assertEqual(contents(self.src), originals)
        self.assertEqual(tree(self.dest), {})

    def test_a_source_file_replaced_by_a_link_is_not_moved(self):
        files = self.photos(2)
        originals = contents(self.src)
        self.lumen("organize", self.src, "--into", self.dest, "--template", "{name}", "--quiet", check=EXIT_OK)
        # The planned file swapped for a link to a secret with the same bytes.
        secret = os.path.join(self.elsewhere, "secret.jpg")
        os.rename(files[0], secret)
        os.symlink(secret, files[0])
        self.lumen("organize", "--resume")
        self.assertTrue(os.path.isfile(secret) and not os.path.islink(secret))
        self.assertTrue(os.path.islink(files[0]))
        for d, _, fs in os.walk(self.dest):
            for f in fs:
                self.assertFalse(os.path.islink(os.path.join(d, f)), "a link was moved into the destination")
        self.assertEqual(sorted(contents(self.dest) + contents(self.elsewhere)), originals)

    def test_dupes_move_to_does_not_follow_a_link_in_the_quarantine(self):
        files = self.photos(2)
        for f in files:
            shutil.copy(f, f[:-4] + " copy.jpg")
        originals = contents(self.src)
        self.lumen("index", self.src, "--quiet", "--no-embedding", check=EXIT_OK)
        q = os.path.join(self.tmp, "quarantine")
        # Between plan and --resume: the quarantine's first level (mirroring the absolute path) is a link.
        self.lumen("dupes", "--move-to", q, "--quiet", check=EXIT_OK)
        first = self.src.strip("/").split("/")[0]
        os.makedirs(q)
        os.symlink(self.elsewhere, os.path.join(q, first))
        p = self.lumen("organize", "--resume", check=EXIT_SOME_FAILED)
        self.assertIn(b"symbolic link", p.stderr)
        self.assertEqual(tree(self.elsewhere), {})
        self.assertEqual(contents(self.src), originals)
        self.lumen("undo", "--quiet")
        # Before the plan: the plan itself refuses the folder.
        p = self.lumen("dupes", "--move-to", q, "--apply", check=EXIT_OK)
        self.assertIn(b"symbolic link", p.stderr)
        self.assertEqual(tree(self.elsewhere), {})
        self.assertEqual(contents(self.src), originals)
        # Without the link the copies go to the quarantine; before undo the source folder is replaced
        # by a link: undo does not write through it.
        os.remove(os.path.join(q, first))
        self.lumen("dupes", "--move-to", q, "--apply", "--quiet", check=EXIT_OK)
        self.assertEqual(len(tree(q)), 2)
        moved = self.src + ".moved"
        os.rename(self.src, moved)
        os.symlink(self.elsewhere, self.src)
        self.lumen("undo")
        self.assertEqual(tree(self.elsewhere), {})
        self.assertEqual(sorted(contents(moved) + contents(q)), originals)
        os.remove(self.src)
        os.rename(moved, self.src)
        self.lumen("undo", "--quiet", check=EXIT_OK)
        self.assertEqual(contents(self.src), originals)
        self.assertEqual(tree(q), {})


class OverlappingSources(Base):
    def test_each_file_is_planned_once(self):
        sub = os.path.join(self.src, "sub")
        self.photos(2)
        files = self.photos(2, folder=sub, prefix="s")
        originals = contents(self.src)
        alias = os.path.join(self.tmp, "alias")
        os.symlink(self.src, alias)
        # The catalog knows the files under both spellings.
        self.lumen("index", alias, "--quiet", "--no-embedding", check=EXIT_OK)
        self.lumen("index", self.src, "--quiet", "--no-embedding", check=EXIT_OK)
        for mode in ("--copy", "--move"):
            with self.subTest(mode=mode):
                p = self.lumen("organize", self.src, sub, self.src, files[0], alias, "--into", self.dest,
                               "--template", "{name}", mode, "--apply", "--json", check=EXIT_OK)
                plan = json.loads(p.stdout[: p.stdout.rindex(b"}") + 1])
                self.assertEqual(plan["photos"], 4, plan)
                self.assertGreater(plan["overlap"], 0)
                self.assertEqual(sorted(os.listdir(self.dest)), ["p0.jpg", "p1.jpg", "s0.jpg", "s1.jpg"])
                self.assertEqual(contents(self.dest), originals)
                if mode == "--move":
                    self.assertEqual(tree(self.src), {})
                self.lumen("undo", "--quiet", check=EXIT_OK)
                self.assertEqual(contents(self.src), originals)
                self.assertEqual(tree(self.dest), {})


class IdenticalCopiesOfANearDuplicate(Base):
    def make(self):
        big = picture(os.path.join(self.src, "big.jpg"), 2000, 1500, seed=99, quality=95)
        small = os.path.join(self.src, "small.jpg")
        Image.open(big).resize((800, 600), Image.LANCZOS).save(small, quality=80)
        os.makedirs(os.path.join(self.src, "backup"))
        copy = os.path.join(self.src, "backup", "small.jpg")
        shutil.copy(small, copy)
        self.lumen("index", self.src, "--quiet", "--no-embedding", check=EXIT_OK)
        return big, small, copy

    def test_tier_exact_lists_them_and_hardlink_links_them(self):
        big, small, copy = self.make()
        originals = contents(self.src)
        groups = json.loads(self.lumen("dupes", "--json", check=EXIT_OK).stdout)
        near = [g for g in groups if g["tier"] == "near"]
        self.assertEqual(len(near), 1, groups)
        self.assertEqual([f["path"] for f in near[0]["files"] if f["keep"]], [big])
        exact = json.loads(self.lumen("dupes", "--tier", "exact", "--json", check=EXIT_OK).stdout)
        self.assertEqual(len(exact), 1, exact)
        self.assertEqual(sorted(f["path"] for f in exact[0]["files"]), sorted([small, copy]))
        # Every file is a duplicate in at most one group.
        dups = [f["path"] for g in groups for f in g["files"] if not f["keep"]]
        self.assertEqual(sorted(dups), sorted(set(dups)))
        self.assertEqual(len(dups), 2)
        self.lumen("dupes", "--hardlink", "--apply", "--quiet", check=EXIT_OK)
        self.assertEqual(inode(small), inode(copy))
        self.assertNotEqual(inode(big), inode(small))
        self.assertEqual(contents(self.src), originals)
        self.lumen("undo", "--quiet", check=EXIT_OK)
        self.assertNotEqual(inode(small), inode(copy))
        self.assertEqual(contents(self.src), originals)

    def test_move_to_takes_every_copy_once(self):
        big, small, copy = self.make()
        originals = contents(self.src)
        q = os.path.join(self.tmp, "q")
        for tiers in ([], ["--tier", "near"]):
            with self.subTest(tiers=tiers):
                self.lumen("dupes", "--move-to", q, *tiers, "--apply", "--quiet", check=EXIT_OK)
                self.assertEqual(sorted(os.path.relpath(os.path.join(d, f), self.src)
                                        for d, _, fs in os.walk(self.src) for f in fs), ["big.jpg"])
                self.assertEqual(len(tree(q)), 2)
                self.assertEqual(sorted(contents(self.src) + contents(q)), originals)
                self.lumen("undo", "--quiet", check=EXIT_OK)
                self.assertEqual(contents(self.src), originals)


class AiTemplates(Base):
    def describe(self, path, file_name, folder_name):
        (asset,), = db_rows(self.catalog, "SELECT asset_id FROM locations WHERE path=?", path.encode())
        con = sqlite3.connect(self.catalog)
        with con:
            con.execute("INSERT INTO enrichments(asset_id,provider,model,prompt_version,result,latency_ms,tokens,"
                        "created_at) VALUES(?,?,?,?,?,?,?,?)",
                        (asset, "openai", "test-vlm", "describe@1",
                         json.dumps({"description": "a dog on a beach", "ocr_text": "",
                                     "file_name": file_name, "folder_name": folder_name}), 1.0, 10, int(time.time())))
        con.close()

    def test_extension_kept_and_undescribed_photos_are_not_renamed(self):
        files = self.photos(3)
        png = picture(os.path.join(self.src, "shot.png"), 320, 240, seed=5, fmt="PNG")
        originals = contents(self.src)
        self.lumen("index", self.src, "--quiet", "--no-embedding", check=EXIT_OK)
        self.describe(files[0], "dog-on-beach", "pets")
        self.describe(files[1], "dog-on-beach", "pets")
        self.describe(png, "screen-shot", "screens")
        p = self.lumen("organize", self.src, "--into", self.dest, "--template", "{ai_folder}/{ai_name}", "--apply",
                       "--json", check=EXIT_OK)
        plan = json.loads(p.stdout[: p.stdout.rindex(b"}") + 1])
        self.assertEqual(plan["undescribed"], 1, plan)
        self.assertIn(b"1 without an AI description (skipped; run lumen describe)", p.stderr)
        skipped = [op for op in plan["operations"] if op.get("reason") == "no AI description yet; run lumen describe"]
        self.assertEqual([os.path.basename(op["src"]) for op in skipped], ["p2.jpg"])
        placed = sorted(os.path.relpath(os.path.join(d, f), self.dest) for d, _, fs in os.walk(self.dest) for f in fs)
        self.assertEqual(placed, ["pets/dog-on-beach.jpg", "pets/dog-on-beach_1.jpg", "screens/screen-shot.png"])
        self.assertFalse(os.path.exists(os.path.join(self.dest, "unknown")))
        # The undescribed photos stayed, under their own names.
        self.assertEqual(sorted(os.listdir(self.src)), ["p2.jpg"])
        self.assertEqual(sorted(contents(self.src) + contents(self.dest)), originals)
        # A fallback in the template places them anyway, by choice.
        self.lumen("organize", self.src, "--into", self.dest, "--template", "{ai_folder|unsorted}/{stem}", "--apply",
                   "--quiet", check=EXIT_OK)
        self.assertTrue(os.path.isfile(os.path.join(self.dest, "unsorted", "p2.jpg")))

    def test_no_descriptions_at_all_is_nothing_to_do_with_the_reason(self):
        self.photos(2)
        originals = contents(self.src)
        p = self.lumen("organize", self.src, "--into", self.dest, "--template", "{ai_folder}/{ai_name}", "--apply",
                       check=EXIT_OK)
        self.assertIn(b"no AI description yet", p.stderr)
        self.assertEqual(contents(self.src), originals)
        self.assertEqual(tree(self.dest), {})


if __name__ == "__main__":
    unittest.main()
