"""Adversarial tier (issue 15): outputs that must not overwrite inputs, planted links at output
and temporary names, another program's database passed as --catalog, read-only catalogs, paths on
the command line that are not files, JSON output with bytes that are not UTF-8.

Each test is a class of attack, not one example: the same code serves every command listed.
"""
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import unittest

from test_cli import EXIT_ERROR, EXIT_OK, EXIT_SOME_FAILED, LUMEN, Base, picture, run


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def as_nobody(cmd):
    """The command as an unprivileged user when the tests run as root (root ignores modes)."""
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + cmd


class Outputs(Base):
    """Class 4 and 5: an output option never destroys an input or writes through a link."""

    def setUp(self):
        super().setUp()
        self.photo = picture(os.path.join(self.lib, "a.jpg"))
        picture(os.path.join(self.lib, "b.jpg"), seed=1)
        self.before = digest(self.photo)

    def assert_refused(self, p, name="a.jpg"):
        self.assertEqual(p.returncode, EXIT_ERROR, p.stderr)
        err = p.stderr.decode(errors="replace")
        self.assertIn(name, err)
        self.assertIn("refusing", err)
        self.assertEqual(digest(self.photo), self.before, "the photo was changed")
        self.assertEqual(os.path.getsize(self.photo) > 0, True)
        self.assertEqual([n for n in os.listdir(self.lib) if n.startswith(".lumen-")], [])

    def test_process_output_that_is_a_photo_is_refused(self):
        for extra in ([], ["-f", "json"], ["--skip-existing"]):
            p = run("process", self.lib, "-o", self.photo, "--no-thumbnail", *extra)
            self.assert_refused(p)

    def test_dupes_report_that_is_a_photo_is_refused(self):
        self.index()
        p = run("dupes", "--catalog", self.catalog, "--report", self.photo)
        self.assert_refused(p)

    def test_describe_output_that_is_a_photo_is_refused_even_when_every_request_fails(self):
        from fault_server import FaultServer
        server = FaultServer(api_key="k-123", status_always=500)
        try:
            env = dict(os.environ, LUMEN_TEST_KEY="k-123")
            p = run("describe", self.lib, "-o", self.photo, "--llm", "openai", "--llm-model", "m",
                    "--base-url", server.url, "--api-key-env", "LUMEN_TEST_KEY", "--max-attempts", "1",
                    "--catalog", self.catalog, env=env)
            self.assert_refused(p)
            # A records file is written only at the end, through a temporary.
            out = os.path.join(self.tmp, "described.jsonl")
            with open(out, "w") as f:
                f.write('{"content_hash": "00", "file_path": "/earlier", "type": "enrichment"}\n')
            p = run("describe", self.lib, "-o", out, "--llm", "openai", "--llm-model", "m",
                    "--base-url", server.url, "--api-key-env", "LUMEN_TEST_KEY", "--max-attempts", "1",
                    "--catalog", self.catalog, env=env)
            self.assertEqual(p.returncode, EXIT_SOME_FAILED, p.stderr)
            with open(out) as f:  # every request failed: the earlier records are kept
                self.assertEqual(f.read(), '{"content_hash": "00", "file_path": "/earlier", "type": "enrichment"}\n')
            self.assertIn(b"left as it was", p.stderr)
            self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".lumen-")], [])
        finally:
            server.stop()

    def test_output_through_a_planted_link_is_refused(self):
        out = os.path.join(self.tmp, "records.jsonl")
        os.symlink(self.photo, out)
        p = run("process", self.lib, "-o", out, "--no-thumbnail")
        self.assert_refused(p, "records.jsonl")
        self.assertIn("symbolic link", p.stderr.decode())

    def test_report_temporaries_never_follow_planted_links(self):
        # Links planted at the fixed temporary names lumen used to write through ("R.tmp"): now
        # never touched (temporaries have random names, created O_EXCL|O_NOFOLLOW: io_test).
        self.index()
        report = os.path.join(self.tmp, "report.html")
        victim = os.path.join(self.tmp, "victim.txt")
        with open(victim, "w") as f:
            f.write("precious\n")
        for suffix in (".tmp", ".lumen-tmp", ".part"):
            os.symlink(victim, report + suffix)
        run("dupes", "--catalog", self.catalog, "--report", report, check=EXIT_OK)
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n")
        with open(report) as f:
            self.assertIn("<html", f.read(200))
        self.assertFalse(stat.S_ISLNK(os.lstat(report).st_mode))
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".lumen-")], [])
        # A second run replaces its own report.
        run("dupes", "--catalog", self.catalog, "--report", report, check=EXIT_OK)

    def test_records_replace_a_records_file_only_when_complete(self):
        out = os.path.join(self.tmp, "records.jsonl")
        run("process", self.lib, "-o", out, "--no-thumbnail", "--quiet", check=EXIT_OK)
        with open(out) as f:
            self.assertEqual(len(f.read().splitlines()), 2)
        # An existing records file is a lumen output: rewritten, not refused.
        run("process", self.lib, "-o", out, "--no-thumbnail", "--quiet", check=EXIT_OK)
        # A run that fails after the output was opened (the catalog is another program's
        # database) leaves it as it was, for both formats.
        before = digest(out)
        foreign = os.path.join(self.tmp, "other.db")
        con = sqlite3.connect(foreign)
        con.execute("CREATE TABLE t(x)")
        con.close()
        for fmt in ("jsonl", "json"):
            p = run("process", self.lib, "-o", out, "-f", fmt, "--write-catalog", "--catalog", foreign)
            self.assertEqual(p.returncode, EXIT_ERROR, p.stderr)
            self.assertIn(b"not a lumen catalog", p.stderr)
            self.assertEqual(digest(out), before)
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".lumen-")], [])

    def test_process_output_inside_the_scanned_folder(self):
        # DIR/records.jsonl inside DIR: written, and never mistaken for an input.
        out = os.path.join(self.lib, "records.jsonl")
        run("process", self.lib, "-o", out, "--no-thumbnail", "--quiet", check=EXIT_OK)
        with open(out) as f:
            recs = [json.loads(l) for l in f]
        self.assertEqual(sorted(os.path.basename(r["file_path"]) for r in recs), ["a.jpg", "b.jpg"])


class ForeignCatalog(Base):
    """Class 6: --catalog naming another program's database never migrates it."""

    def make_foreign(self, path):
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE moz_places(id INTEGER PRIMARY KEY, url TEXT)")
        con.execute("INSERT INTO moz_places(url) VALUES ('https://example.org')")
        con.commit()
        con.close()

    def test_every_command_refuses_it_and_leaves_it_byte_identical(self):
        picture(os.path.join(self.lib, "a.jpg"))
        db = os.path.join(self.tmp, "places.sqlite")
        self.make_foreign(db)
        before = digest(db)
        for args in (["stats"], ["stats", "--json"], ["index", self.lib], ["dupes"], ["history"],
                     ["search", "dog"], ["undo"], ["organize", self.lib, "--into",
                                                   os.path.join(self.tmp, "out")]):
            p = run(*args, "--catalog", db)
            self.assertEqual(p.returncode, EXIT_ERROR, (args, p.stderr))
            self.assertIn(b"not a lumen catalog", p.stderr, args)
            self.assertEqual(digest(db), before, args)
            self.assertFalse(os.path.exists(db + "-wal"), args)
        con = sqlite3.connect(db)
        self.assertEqual(con.execute("PRAGMA journal_mode").fetchone()[0], "delete")
        self.assertEqual([r[0] for r in con.execute("SELECT name FROM sqlite_master")], ["moz_places"])
        con.close()

    def test_a_file_that_is_not_a_database(self):
        photo = picture(os.path.join(self.lib, "a.jpg"))
        before = digest(photo)
        p = run("stats", "--catalog", photo)
        self.assertEqual(p.returncode, EXIT_ERROR)
        p = run("index", self.lib, "--catalog", photo)
        self.assertEqual(p.returncode, EXIT_ERROR)
        self.assertIn(b"not a lumen catalog", p.stderr)
        self.assertEqual(digest(photo), before)

    def test_read_only_commands_on_a_read_only_catalog(self):
        picture(os.path.join(self.lib, "a.jpg"))
        picture(os.path.join(self.lib, "b.jpg"), seed=3)
        self.index(check=EXIT_OK)
        cat_dir = os.path.dirname(self.catalog)
        # Checkpointed and closed: the catalog is one file in a folder nobody may write.
        for name in os.listdir(cat_dir):
            if name != "catalog.db":
                os.remove(os.path.join(cat_dir, name))
        before = digest(self.catalog)
        os.chmod(self.catalog, 0o444)
        os.chmod(cat_dir, 0o555)
        os.chmod(self.tmp, 0o755)
        try:
            for args in (["stats", "--json"], ["history"], ["dupes"], ["dupes", "--json"]):
                p = subprocess.run(as_nobody([LUMEN, *args, "--catalog", self.catalog]),
                                   capture_output=True)
                self.assertEqual(p.returncode, EXIT_OK, (args, p.stderr))
                if args[0] == "stats":
                    self.assertEqual(json.loads(p.stdout)["locations"]["ok"], 2)
            self.assertEqual(sorted(os.listdir(cat_dir)), ["catalog.db"])
            self.assertEqual(digest(self.catalog), before)
        finally:
            os.chmod(cat_dir, 0o755)
            os.chmod(self.catalog, 0o644)

    def test_stats_without_a_catalog_creates_nothing(self):
        missing = os.path.join(self.tmp, "nowhere", "catalog.db")
        p = run("stats", "--catalog", missing)
        self.assertEqual(p.returncode, EXIT_ERROR)
        self.assertIn(b"no catalog", p.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(missing)))


class CommandLinePaths(Base):
    """Classes 18 and 21: paths on the command line that are not files or folders."""

    def test_a_missing_path_is_an_error_not_a_failed_file(self):
        for cmd in ("index", "process"):
            p = run(cmd, os.path.join(self.tmp, "no-such-folder"), "--catalog", self.catalog)
            self.assertEqual(p.returncode, EXIT_ERROR, (cmd, p.stderr))
            err = p.stderr.decode()
            self.assertIn("no-such-folder: no such file or folder", err)
            self.assertNotIn("files/s", err)
        self.assertFalse(os.path.exists(self.catalog))

    def test_fifos_and_devices_are_named_and_refused_without_blocking(self):
        fifo = os.path.join(self.tmp, "pipe.jpg")
        os.mkfifo(fifo)
        for path, what in ((fifo, "FIFO"), ("/dev/zero", "character device")):
            for cmd in ("index", "process"):
                p = run(cmd, path, "--catalog", self.catalog, timeout=60)
                self.assertEqual(p.returncode, EXIT_ERROR, (cmd, path, p.stderr))
                self.assertIn(what, p.stderr.decode())

    def test_unreadable_folder_is_reported(self):
        picture(os.path.join(self.lib, "fine.jpg"))
        locked = os.path.join(self.lib, "locked")
        os.makedirs(locked)
        picture(os.path.join(locked, "inside.jpg"))
        os.chmod(locked, 0)
        os.chmod(self.tmp, 0o755)
        os.makedirs(os.path.dirname(self.catalog))
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "nobody:nogroup", self.tmp], check=True)
            os.chown(locked, 0, 0)
        p = subprocess.run(as_nobody([LUMEN, "index", self.lib, "--catalog", self.catalog]),
                           capture_output=True)
        self.assertEqual(p.returncode, EXIT_SOME_FAILED, p.stderr)
        err = p.stderr.decode()
        self.assertIn("locked", err)
        self.assertIn("Permission denied", err)


class InvalidUtf8(Base):
    """Class 8: every JSON writer replaces bytes that are not UTF-8 instead of aborting."""

    def test_json_outputs_with_latin1_names(self):
        L = os.fsencode(self.lib)
        for name in (b"caf\xe9.jpg", b"copy-caf\xe9.jpg"):
            picture(os.fsdecode(os.path.join(L, name)), seed=7)
        self.index(check=EXIT_OK)
        dest = os.path.join(self.tmp, "sorted")
        for args in (["dupes", "--json"], ["stats", "--json", "--failures"],
                     ["organize", self.lib, "--into", dest, "--json", "--no-index",
                      "--template", "{stem}"], ["history", "--json"]):
            p = run(*args, "--catalog", self.catalog)
            self.assertNotEqual(p.returncode, -6, (args, p.stderr))  # SIGABRT
            self.assertIn(p.returncode, (EXIT_OK, EXIT_SOME_FAILED), (args, p.stderr))
            json.loads(p.stdout)  # valid UTF-8 JSON
        p = run("process", self.lib, "--no-thumbnail", check=EXIT_OK)
        names = sorted(json.loads(l)["file_name"] for l in p.stdout.decode().splitlines())
        self.assertEqual(names, ["caf\ufffd.jpg", "copy-caf\ufffd.jpg"])

    def test_models_list_json_with_a_latin1_models_folder(self):
        models = os.fsdecode(os.path.join(os.fsencode(self.tmp), b"mod\xe8les"))
        os.makedirs(models)
        p = run("models", "list", "--json", env=dict(os.environ, LUMEN_MODELS=models))
        self.assertEqual(p.returncode, EXIT_OK, p.stderr)
        json.loads(p.stdout)


if __name__ == "__main__":
    unittest.main()
