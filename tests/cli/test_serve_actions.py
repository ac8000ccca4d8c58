"""End-to-end tests of what `lumen serve` changes (issue 19): jobs started through the API (index,
organize) with their progress on the event stream and cancel; folders; duplicate groups applied
as a journaled run (quarantine, hard links) and undone, with the files on disk checked each time;
and the checks on every new parameter (paths, ids, bodies, the token, a read-only server).
"""
import http.client
import json
import os
import shutil
import tempfile
import time
import unittest
import urllib.parse

from PIL import Image

from test_cli import EXIT_OK, ROOT, run
from test_organize import tree  # relative path -> content digest of every file under a folder
from test_serve import Client, start_server, stop_server


def make_photo(path, seed, size=(480, 360), quality=92):
    """A photo with structure (so its pHash is its own), different per seed."""
    import random
    rnd = random.Random(seed)
    im = Image.new("RGB", size, (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    for _ in range(40):
        x, y = rnd.randrange(size[0] - 40), rnd.randrange(size[1] - 40)
        im.paste((rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)), (x, y, x + 40, y + 40))
    im.save(path, quality=quality)


class ServeActions(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-serve-act-")
        self.lib = os.path.join(self.tmp, "lib")
        for d in ("a", "b", "new"):
            os.makedirs(os.path.join(self.lib, d))
        for i in range(5):
            make_photo(os.path.join(self.lib, "a", f"p{i}.jpg"), i)
        # Two byte-identical copies (exact tier) and a re-encoded one (near tier).
        shutil.copy(os.path.join(self.lib, "a", "p0.jpg"), os.path.join(self.lib, "b", "p0-copy.jpg"))
        shutil.copy(os.path.join(self.lib, "a", "p1.jpg"), os.path.join(self.lib, "b", "p1-copy.jpg"))
        Image.open(os.path.join(self.lib, "a", "p2.jpg")).save(os.path.join(self.lib, "b", "p2-small.jpg"),
                                                              quality=55)
        self.catalog = os.path.join(self.tmp, "cat", "catalog.db")
        run("index", os.path.join(self.lib, "a"), os.path.join(self.lib, "b"), "--catalog", self.catalog,
            "--no-embedding", "--quiet", check=EXIT_OK)
        self.before = tree(self.lib)
        self.proc, self.base, self.token = start_server(self.catalog)
        self.c = Client(self.base)
        self.auth = {"X-Lumen-Token": self.token}
        self.change = {**self.auth, "Origin": self.base, "Content-Type": "application/json"}

    def tearDown(self):
        stop_server(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def get(self, path):
        status, _, body = self.c.request("GET", path, headers=self.auth)
        self.assertEqual(status, 200, (path, body))
        return json.loads(body)

    def post(self, path, body, want=202):
        status, _, resp = self.c.request("POST", path, body, self.change)
        self.assertEqual(status, want, (path, body, resp))
        return json.loads(resp)

    def wait_job(self, job, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            j = self.get(f"/api/v1/jobs/{job}")
            if j["state"] not in ("queued", "running"):
                return j
            time.sleep(0.2)
        self.fail(f"job {job} did not end: {j}")

    def test_folders_list_subfolders_and_files(self):
        f = self.get("/api/v1/folders")
        self.assertEqual(f["folder"], self.lib)
        self.assertEqual(f["root"], self.lib)
        self.assertEqual(f["total"], 8)
        self.assertEqual(f["folders"], [{"name": "a", "count": 5}, {"name": "b", "count": 3}])
        self.assertEqual(f["files"], 0)
        b = self.get("/api/v1/folders?path=" + urllib.parse.quote(os.path.join(self.lib, "b")))
        self.assertEqual(b["names"], ["p0-copy.jpg", "p1-copy.jpg", "p2-small.jpg"])
        for name, i in zip(b["names"], b["ids"]):
            self.assertIn(os.path.join(self.lib, "b", name), self.get(f"/api/v1/assets/{i}")["paths"])
        page = self.get("/api/v1/folders?limit=2&offset=1&path=" + urllib.parse.quote(os.path.join(self.lib, "a")))
        self.assertEqual((page["files"], page["names"]), (5, ["p1.jpg", "p2.jpg"]))
        # A folder the catalog has no file under, and paths that are not absolute and plain.
        for path, want in (("/etc", 404), (self.lib + "/c", 404), ("relative/dir", 400), (self.lib + "/../..", 400),
                           ("/tmp/./x", 400), ("", 400)):
            status, _, body = self.c.request("GET", "/api/v1/folders?path=" + urllib.parse.quote(path),
                                             headers=self.auth)
            self.assertEqual(status, want, (path, body))

    def test_duplicates_quarantine_the_suggestion_then_undo(self):
        d = self.get("/api/v1/duplicates")
        self.assertEqual(d["tiers"], {"exact": 2, "near": 1})
        exact = self.get("/api/v1/duplicates?tier=exact")["groups"]
        self.assertEqual(len(exact), 2)
        for g in exact:
            self.assertEqual([m["keep"] for m in g["members"]], [True, False])
            self.assertEqual(g["members"][0]["asset"], g["members"][1]["asset"])
            self.assertEqual(g["members"][1]["reason"], "same content")
            self.assertTrue(g["members"][0]["path"].startswith(os.path.join(self.lib, "a")))
        r = self.post("/api/v1/duplicates/apply", {"action": "quarantine", "tier": "exact"})
        self.assertEqual(r["files"], 2)
        j = self.wait_job(r["job"])
        self.assertEqual(j["state"], "done", j)
        quarantine = os.path.join(self.tmp, "cat", "quarantine")
        moved = sorted(tree(quarantine))
        self.assertEqual(moved, sorted(os.path.relpath(os.path.join(self.lib, "b", n), "/")
                                       for n in ("p0-copy.jpg", "p1-copy.jpg")))
        for rel, data in tree(quarantine).items():
            self.assertEqual(data, self.before[os.path.relpath("/" + rel, self.lib)])
        self.assertFalse(os.path.exists(os.path.join(self.lib, "b", "p0-copy.jpg")))
        # The page follows: no exact group left; the run is listed as applied.
        deadline = time.time() + 10
        while time.time() < deadline and self.get("/api/v1/duplicates")["tiers"].get("exact"):
            time.sleep(0.3)
        self.assertEqual(self.get("/api/v1/duplicates")["tiers"], {"near": 1})
        runs = self.get("/api/v1/runs")["runs"]
        self.assertEqual((runs[0]["id"], runs[0]["command"], runs[0]["state"], runs[0]["done"]),
                         (r["run"], "dupes", "applied", 2))
        # Undo from the API: every file is back as it was, the quarantine is empty.
        u = self.post(f"/api/v1/runs/{r['run']}/undo", {})
        self.assertEqual(self.wait_job(u["job"])["state"], "done")
        self.assertEqual(tree(self.lib), self.before)
        self.assertEqual(tree(quarantine), {})
        self.assertEqual(self.get("/api/v1/runs")["runs"][0]["state"], "undone")
        # Undoing twice is refused; redo carries it out again.
        self.post(f"/api/v1/runs/{r['run']}/undo", {}, want=409)
        self.assertEqual(self.wait_job(self.post(f"/api/v1/runs/{r['run']}/redo", {})["job"])["state"], "done")
        self.assertEqual(len(tree(quarantine)), 2)

    def test_duplicates_the_pages_choice_and_hard_links(self):
        near = self.get("/api/v1/duplicates?tier=near")["groups"][0]
        kept, other = near["members"][0]["path"], near["members"][1]["path"]
        # The page keeps the other one: the suggested keeper is the one moved.
        r = self.post("/api/v1/duplicates/apply", {"action": "quarantine", "remove": [{"path": kept, "keep": other}]})
        self.assertEqual(self.wait_job(r["job"])["state"], "done")
        self.assertFalse(os.path.exists(kept))
        self.assertTrue(os.path.exists(other))
        self.assertEqual(self.wait_job(self.post(f"/api/v1/runs/{r['run']}/undo", {})["job"])["state"], "done")
        self.assertEqual(tree(self.lib), self.before)
        # A hard link needs identical content: refused for the near pair, done for the exact ones.
        self.post("/api/v1/duplicates/apply", {"action": "hardlink", "remove": [{"path": other, "keep": kept}]}, want=400)
        r = self.post("/api/v1/duplicates/apply", {"action": "hardlink", "tier": "exact"})
        self.assertEqual(self.wait_job(r["job"])["state"], "done")
        a0, b0 = os.path.join(self.lib, "a", "p0.jpg"), os.path.join(self.lib, "b", "p0-copy.jpg")
        self.assertEqual(os.stat(a0).st_ino, os.stat(b0).st_ino)
        self.assertEqual(tree(self.lib), self.before)  # same bytes everywhere
        self.assertEqual(self.wait_job(self.post(f"/api/v1/runs/{r['run']}/undo", {})["job"])["state"], "done")
        self.assertNotEqual(os.stat(a0).st_ino, os.stat(b0).st_ino)
        self.assertEqual(tree(self.lib), self.before)

    def test_duplicate_choices_that_are_refused(self):
        exact = self.get("/api/v1/duplicates?tier=exact")["groups"]
        g0, g1 = exact[0]["members"], exact[1]["members"]
        lone = os.path.join(self.lib, "a", "p3.jpg")  # in no group
        bad = [
            {"action": "delete", "tier": "exact"},
            {"action": "quarantine"},
            {"action": "quarantine", "tier": "exact", "remove": []},
            {"action": "quarantine", "tier": "everything"},
            {"action": "quarantine", "remove": []},
            {"action": "quarantine", "remove": "all"},
            {"action": "quarantine", "remove": [{"path": g0[1]["path"]}]},
            {"action": "quarantine", "remove": [{"path": g0[1]["path"], "keep": g0[1]["path"]}]},
            {"action": "quarantine", "remove": [{"path": g0[1]["path"], "keep": g1[0]["path"]}]},  # two groups
            {"action": "quarantine", "remove": [{"path": lone, "keep": g0[0]["path"]}]},
            {"action": "quarantine", "remove": [{"path": "/etc/passwd", "keep": g0[0]["path"]}]},
            {"action": "quarantine", "remove": [{"path": g0[1]["path"] + "/../p0-copy.jpg", "keep": g0[0]["path"]}]},
            {"action": "quarantine", "remove": [{"path": "b/p0-copy.jpg", "keep": g0[0]["path"]}]},
            {"action": "quarantine", "remove": [{"path": 5, "keep": g0[0]["path"]}]},
            # a kept file cannot also be removed
            {"action": "quarantine", "remove": [{"path": g0[1]["path"], "keep": g0[0]["path"]},
                                                {"path": g0[0]["path"], "keep": g0[1]["path"]}]},
        ]
        for body in bad:
            status, _, resp = self.c.request("POST", "/api/v1/duplicates/apply", body, self.change)
            self.assertEqual(status, 400, (body, resp))
            self.assertIn(b"error", resp)
        for raw in (b"{bad", b"[]", b"null", b"{" * 50000):
            self.assertEqual(self.c.request("POST", "/api/v1/duplicates/apply", raw, self.change)[0], 400, raw[:20])
        self.assertEqual(self.c.request("POST", "/api/v1/duplicates/apply", b" " * (2 << 20), self.change)[0], 413)
        # Cookie only, another origin, no token: refused before anything is planned.
        body = {"action": "quarantine", "tier": "exact"}
        s, h, _ = self.c.request("GET", f"/?token={self.token}")
        cookie = h["set-cookie"].split(";")[0]
        for headers, want in (({"Cookie": cookie, "Origin": self.base}, 403),
                              ({**self.auth, "Origin": "http://evil.example"}, 403),
                              ({**self.auth, "Sec-Fetch-Site": "cross-site"}, 403), ({}, 401)):
            self.assertEqual(self.c.request("POST", "/api/v1/duplicates/apply", body, headers)[0], want, headers)
        self.assertEqual(self.get("/api/v1/runs")["runs"], [])
        self.assertEqual(self.get("/api/v1/jobs")["jobs"], [])
        self.assertEqual(tree(self.lib), self.before)

    def test_index_job_with_live_progress_and_the_catalog_follows(self):
        n = 12
        for i in range(n):
            make_photo(os.path.join(self.lib, "new", f"n{i}.jpg"), 100 + i)
        # Listen to the event stream first, then start the job.
        u = urllib.parse.urlparse(self.base)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("GET", "/api/v1/events", headers={**self.auth, "Host": f"{u.hostname}:{u.port}"})
        stream = conn.getresponse()
        self.assertEqual(stream.status, 200)
        self.assertTrue(stream.getheader("Content-Type").startswith("text/event-stream"))
        job = self.post("/api/v1/jobs", {"kind": "index", "paths": [os.path.join(self.lib, "new")]})
        self.assertEqual((job["kind"], job["state"] in ("queued", "running")), ("index", True))
        states, progress, deadline = [], [], time.time() + 120
        while time.time() < deadline:
            line = stream.readline().decode()
            if not line.startswith("data: "):
                continue
            for j in json.loads(line[6:])["jobs"]:
                if j["id"] != job["id"]:
                    continue
                states.append(j["state"])
                if "progress" in j:
                    progress.append(j["progress"])
            if states and states[-1] not in ("queued", "running"):
                break
        conn.close()
        self.assertEqual(states[-1], "done", states)
        self.assertTrue(progress, states)
        self.assertEqual((progress[-1]["done"], progress[-1]["total"], progress[-1]["unit"]), (n, n, "files"))
        j = self.get(f"/api/v1/jobs/{job['id']}")
        self.assertEqual(j["summary"]["succeeded"], str(n))
        deadline = time.time() + 10
        while time.time() < deadline and self.get("/api/v1/info")["assets"] < 6 + n:
            time.sleep(0.3)
        self.assertEqual(self.get("/api/v1/info")["assets"], 6 + n)  # 8 files, 6 contents before
        self.assertEqual(self.get("/api/v1/folders")["folders"][-1], {"name": "new", "count": n})

    def test_convert_job_progress_is_seen_while_it_runs(self):
        # A job of a few seconds (WebP at the slowest effort): its progress arrives as it goes.
        src = os.path.join(self.tmp, "big")
        os.makedirs(src)
        n = 12
        for i in range(n):
            make_photo(os.path.join(src, f"c{i}.jpg"), 200 + i, size=(2400, 1800))
        out = os.path.join(self.tmp, "converted")
        u = urllib.parse.urlparse(self.base)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.request("GET", "/api/v1/events", headers={**self.auth, "Host": f"{u.hostname}:{u.port}"})
        stream = conn.getresponse()
        job = self.post("/api/v1/jobs", {"kind": "convert", "paths": [src], "output": out,
                                         "chain": "sharpen:0.5,webp:90", "preset": "ultra"})
        seen, deadline = [], time.time() + 300
        while time.time() < deadline:
            line = stream.readline().decode()
            if not line.startswith("data: "):
                continue
            j = next((j for j in json.loads(line[6:])["jobs"] if j["id"] == job["id"]), None)
            if j:
                seen.append((j["state"], j.get("progress", {}).get("done")))
                if j["state"] not in ("queued", "running"):
                    break
        conn.close()
        self.assertEqual(seen[-1], ("done", n), seen)
        during = [d for s, d in seen if s == "running" and d is not None]
        self.assertTrue(during and min(during) < n, seen)  # counts seen before the end
        self.assertEqual(sorted(os.listdir(out)), sorted(f"c{i}.webp" for i in range(n)))

    def test_organize_preview_apply_undo_and_cancel(self):
        into = os.path.join(self.tmp, "library")
        job = self.post("/api/v1/jobs", {"kind": "organize", "paths": [os.path.join(self.lib, "a")], "into": into,
                                         "template": "{year|undated}/{stem}", "mode": "copy"})
        j = self.wait_job(job["id"])
        self.assertEqual(j["state"], "done", j)
        plan = j["result"]
        files = [o for o in plan["operations"] if o["op"] != "mkdir"]
        self.assertEqual(sorted(o["dst"] for o in files), [os.path.join(into, "undated", f"p{i}.jpg") for i in range(5)])
        self.assertFalse(os.path.exists(into))  # a preview changes nothing
        a = self.post(f"/api/v1/runs/{plan['run']}/apply", {})
        self.assertEqual(self.wait_job(a["job"])["state"], "done")
        self.assertEqual(sorted(tree(into)), [os.path.join("undated", f"p{i}.jpg") for i in range(5)])
        self.assertEqual(tree(self.lib), self.before)  # copies
        self.post(f"/api/v1/runs/{plan['run']}/apply", {}, want=409)
        u = self.post(f"/api/v1/runs/{plan['run']}/undo", {})
        self.assertEqual(self.wait_job(u["job"])["state"], "done")
        self.assertEqual(tree(into) if os.path.exists(into) else {}, {})
        # Cancel: a queued job never runs; an ended job cannot be cancelled; unknown ids are 404.
        first = self.post("/api/v1/jobs", {"kind": "index", "paths": [self.lib], "full": True})
        second = self.post("/api/v1/jobs", {"kind": "index", "paths": [self.lib]})
        self.assertEqual(self.post(f"/api/v1/jobs/{second['id']}/cancel", {})["id"], second["id"])
        self.assertEqual(self.wait_job(second["id"])["state"], "cancelled")
        # The queue is bounded: past 64 waiting jobs a new one is refused (429, Retry-After) and
        # nothing is queued; cancelling one makes room.
        queued, refused = [], None
        for _ in range(100):
            status, headers, resp = self.c.request("POST", "/api/v1/jobs", {"kind": "index", "paths": [self.lib]},
                                                   self.change)
            if status != 202:
                refused = (status, headers, resp)
                break
            queued.append(json.loads(resp)["id"])
        self.assertIsNotNone(refused, "a queue without a bound")
        self.assertEqual(refused[0], 429, refused)
        self.assertIn("retry-after", {k.lower() for k in refused[1]})
        waiting = [j for j in self.get("/api/v1/jobs")["jobs"] if j["state"] == "queued"]
        self.assertLessEqual(len(waiting), 64)
        self.assertGreaterEqual(len(queued), 63)
        self.post(f"/api/v1/jobs/{queued[-1]}/cancel", {})
        queued[-1] = self.post("/api/v1/jobs", {"kind": "index", "paths": [self.lib]})["id"]
        for q in queued:
            self.c.request("POST", f"/api/v1/jobs/{q}/cancel", {}, self.change)
        for q in queued:
            self.assertEqual(self.wait_job(q)["state"], "cancelled")
        # Results are kept for the last 20 ended jobs: the preview's plan is let go, its
        # messages stay.
        old = self.get(f"/api/v1/jobs/{job['id']}")
        self.assertEqual((old["state"], old.get("result_dropped"), old["result"]), ("done", True, None), old)
        self.assertTrue(any("plan (run" in m["message"] for m in old["messages"]), old)
        self.assertEqual(self.wait_job(first["id"])["state"], "done")
        self.assertNotIn("started", self.get(f"/api/v1/jobs/{second['id']}"))
        self.post(f"/api/v1/jobs/{first['id']}/cancel", {}, want=409)
        for path in ("/api/v1/jobs/999/cancel", "/api/v1/runs/999/undo", "/api/v1/runs/999/apply"):
            self.post(path, {}, want=404)
        self.assertEqual(self.c.request("GET", "/api/v1/jobs/999", headers=self.auth)[0], 404)

    def test_job_parameters_are_checked(self):
        a = os.path.join(self.lib, "a")
        bad = [
            ({"kind": "shell", "paths": [a]}, 400),
            ({"paths": [a]}, 400),
            ({"kind": "index"}, 400),
            ({"kind": "index", "paths": []}, 400),
            ({"kind": "index", "paths": a}, 400),
            ({"kind": "index", "paths": ["relative"]}, 400),
            ({"kind": "index", "paths": [a + "/../b"]}, 400),
            ({"kind": "index", "paths": ["/nonexistent/dir"]}, 404),
            ({"kind": "index", "paths": ["--catalog=/tmp/x.db"]}, 400),
            ({"kind": "index", "paths": [7]}, 400),
            ({"kind": "organize", "paths": [a]}, 400),
            ({"kind": "organize", "paths": [a], "into": "out"}, 400),
            ({"kind": "organize", "paths": [a], "into": "/tmp/../etc"}, 400),
            ({"kind": "organize", "paths": [a], "into": self.tmp + "/o", "mode": "delete"}, 400),
            ({"kind": "organize", "paths": [a], "into": self.tmp + "/o", "template": "{year}\n--apply"}, 400),
            ({"kind": "organize", "paths": [a], "into": self.tmp + "/o", "template": 5}, 400),
            ({"kind": "convert", "paths": [a], "chain": "webp:80"}, 400),
            ({"kind": "convert", "paths": [a], "output": self.tmp + "/c"}, 400),
            ({"kind": "convert", "paths": [a], "output": "../c", "chain": "webp:80"}, 400),
            ({"kind": "describe", "paths": [a], "base_url": "x" * 2000}, 400),
        ]
        for body, want in bad:
            status, _, resp = self.c.request("POST", "/api/v1/jobs", body, self.change)
            self.assertEqual(status, want, (body, resp))
        self.assertEqual(self.get("/api/v1/jobs")["jobs"], [])
        # An option is one argument: a template that looks like a flag stays a template.
        j = self.post("/api/v1/jobs", {"kind": "organize", "paths": [a], "into": self.tmp + "/o",
                                       "template": "--apply"})
        self.assertIn("--template=--apply", j["args"])
        self.assertNotIn("--apply", j["args"])
        self.wait_job(j["id"])
        self.assertEqual(tree(self.lib), self.before)

    def test_a_read_only_server_changes_nothing(self):
        p, base, token = start_server(self.catalog, "--read-only")
        try:
            c = Client(base)
            h = {"X-Lumen-Token": token, "Origin": base, "Content-Type": "application/json"}
            for path, body in (("/api/v1/jobs", {"kind": "index", "paths": [self.lib]}),
                               ("/api/v1/duplicates/apply", {"action": "quarantine", "tier": "exact"}),
                               ("/api/v1/runs/1/undo", {})):
                self.assertEqual(c.request("POST", path, body, h)[0], 403, path)
            s, _, body = c.request("GET", "/api/v1/info", headers=h)
            self.assertFalse(json.loads(body)["jobs"])
            self.assertEqual(c.request("GET", "/api/v1/duplicates", headers=h)[0], 200)
        finally:
            stop_server(p)
        self.assertEqual(tree(self.lib), self.before)


if __name__ == "__main__":
    unittest.main()
