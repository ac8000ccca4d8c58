"""End-to-end tests of lumen describe against the loopback fault server (fault_server.py): every
provider's request shape, no request lost or duplicated under faults, the rate limit respected
over sliding windows, the circuit breaker, fast failure on 401, the response cache, and keys
never printed.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from PIL import Image

from fault_server import FaultServer
from test_cli import EXIT_OK, EXIT_SOME_FAILED, ROOT, run

KEY = "test-key-123"


class Base(unittest.TestCase):
    key = KEY  # the API key the fault server wants (the adversarial tier uses its own)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-desc-")
        self.lib = os.path.join(self.tmp, "lib")
        os.makedirs(self.lib)
        self.catalog = os.path.join(self.tmp, "cat", "catalog.db")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def server(self, **kw):
        s = FaultServer(api_key=self.key, **kw)
        self.servers.append(s)
        return s

    def photos(self, n):
        """n photos, each one flat colour (the server reports the colour it saw)."""
        colours = {}
        for i in range(n):
            c = ((i * 37) % 256, (i * 91 + 40) % 256, (i * 53 + 90) % 256)
            p = os.path.join(self.lib, f"p{i:03d}.png")
            Image.new("RGB", (96, 64), c).save(p)
            colours[p] = c
        return colours

    def describe(self, server, *extra, kind="openai", check=EXIT_OK):
        env = dict(os.environ, LUMEN_TEST_KEY=KEY)
        p = run("describe", self.lib, "--llm", kind, "--llm-model", "test-vlm", "--base-url", server.url,
                "--api-key-env", "LUMEN_TEST_KEY", "--catalog", self.catalog, *extra, check=check, env=env)
        self.assertNotIn(KEY.encode(), p.stdout + p.stderr)  # a key is never printed
        recs = [json.loads(l) for l in p.stdout.decode().splitlines()]
        return p, recs

    def check_records(self, recs, colours):
        by_path = {}
        for r in recs:
            self.assertEqual(r["type"], "enrichment")
            self.assertNotIn(r["file_path"], by_path, "duplicated result")
            by_path[r["file_path"]] = r
        self.assertEqual(set(by_path), set(colours), "lost results")
        for path, r in by_path.items():
            m = re.search(r"colour (\d+),(\d+),(\d+)", r["description"])
            self.assertIsNotNone(m, r["description"])
            got = tuple(int(v) for v in m.groups())
            self.assertTrue(all(abs(a - b) <= 3 for a, b in zip(got, colours[path])), (path, got, colours[path]))
            self.assertRegex(r["content_hash"], r"^[0-9a-f]{32}$")
            self.assertRegex(r["file_name"], r"^[a-z0-9]+(-[a-z0-9]+){0,4}$")
            self.assertLessEqual(len(r["file_name"].split("-")), 5)
            self.assertEqual(r["folder_name"], "test-photos")
            self.assertEqual(r["llm_model"], "test-vlm")
        return by_path


class Providers(Base):
    def test_every_provider_round_trip_and_cache(self):
        colours = self.photos(3)
        server = self.server()
        for kind in ["openai", "ollama", "anthropic", "gemini"]:
            p, recs = self.describe(server, kind=kind)
            by_path = self.check_records(recs, colours)
            for r in by_path.values():
                self.assertEqual((r["provider"], r["cached"], r["llm_tokens"]), (kind, False, 57))
                self.assertGreater(r["llm_latency_ms"], 0)
        self.assertEqual(server.counts, {200: 12})
        self.assertFalse(server.seen_keys_in_urls)
        # A rerun costs no requests: every result comes from the cache.
        p, recs = self.describe(server, kind="gemini")
        self.check_records(recs, colours)
        self.assertTrue(all(r["cached"] for r in recs))
        self.assertEqual(server.counts, {200: 12})
        self.assertIn(b"3 from the cache", p.stderr)
        # --no-cache asks again; WebP instead of JPEG on request.
        p, recs = self.describe(server, "--no-cache", "--image-format", "webp", kind="gemini")
        self.check_records(recs, colours)
        self.assertEqual(server.counts, {200: 15})

    def test_several_photos_per_request_each_answer_matched_by_index(self):
        colours = self.photos(7)
        server = self.server()
        for kind in ["openai", "gemini"]:
            p, recs = self.describe(server, "--images-per-request", "3", "--no-cache", kind=kind)
            # The server answers in reverse order: each result still belongs to its own photo.
            self.check_records(recs, colours)
            self.assertIn(b"described 7 files", p.stderr)
            self.assertIn(b"3 requests", p.stderr)
        self.assertEqual(sorted(server.images_per_request), [1, 1, 3, 3, 3, 3])
        # Cached one by one: a rerun at another batch size asks nothing.
        p, recs = self.describe(server, "--images-per-request", "2")
        self.assertTrue(all(r["cached"] for r in recs))
        self.assertEqual(len(server.images_per_request), 6)

    def test_a_batch_without_a_valid_answer_is_asked_again_one_photo_at_a_time(self):
        colours = self.photos(5)
        server = self.server(mode="bad_batch")
        p, recs = self.describe(server, "--images-per-request", "3", "--max-attempts", "1")
        self.check_records(recs, colours)
        err = p.stderr.decode()
        self.assertIn("5 photos of batches without a valid answer: asked one by one", err)
        self.assertIn("described 5 files", err)
        self.assertIn("5 succeeded", err)
        self.assertEqual(sorted(server.images_per_request), [2, 3])  # then five single requests
        self.assertEqual(server.counts, {200: 7})

    def test_prefilter_skips_dark_and_blurred_and_reuses_near_duplicate_answers(self):
        from PIL import ImageFilter
        from test_cli import picture
        for i in range(3):
            picture(os.path.join(self.lib, f"sharp{i}.jpg"), 320, 240, seed=40 + i)
        Image.open(os.path.join(self.lib, "sharp0.jpg")).resize((200, 150)).save(
            os.path.join(self.lib, "sharp0-copy.jpg"), quality=70)
        Image.new("RGB", (320, 240), (3, 3, 4)).save(os.path.join(self.lib, "black.png"))
        Image.open(os.path.join(self.lib, "sharp1.jpg")).filter(ImageFilter.GaussianBlur(25)).save(
            os.path.join(self.lib, "blurred.png"))
        server = self.server()
        p, recs = self.describe(server, "--prefilter")
        err = p.stderr.decode()
        self.assertIn("prefilter: 2 not asked (nearly black 1, very blurred 1), 1 answers reused", err)
        self.assertEqual(server.counts, {200: 3})  # sharp0 (or its copy), sharp1, sharp2
        by = {os.path.basename(r["file_path"]): r for r in recs}
        self.assertEqual(set(by), {"sharp0.jpg", "sharp0-copy.jpg", "sharp1.jpg", "sharp2.jpg"})
        reused = [r for r in by.values() if "reused_from" in r]
        self.assertEqual(len(reused), 1)
        other = {"sharp0.jpg": "sharp0-copy.jpg", "sharp0-copy.jpg": "sharp0.jpg"}[
            os.path.basename(reused[0]["file_path"])]
        self.assertEqual(os.path.basename(reused[0]["reused_from"]), other)
        self.assertEqual(reused[0]["description"], by[other]["description"])
        # The reused answer is stored: without --prefilter the copy comes from the cache.
        p, recs = self.describe(server)
        self.assertEqual(server.counts, {200: 5})  # only black and blurred are asked now

    def test_prefilter_keeps_a_near_duplicates_own_answer(self):
        from test_cli import picture
        picture(os.path.join(self.lib, "a.jpg"), 320, 240, seed=50)
        Image.open(os.path.join(self.lib, "a.jpg")).resize((200, 150)).save(
            os.path.join(self.lib, "a-copy.jpg"), quality=70)
        server = self.server()
        _, first = self.describe(server)  # each asked on its own
        self.assertEqual(server.counts, {200: 2})
        own = {os.path.basename(r["file_path"]): r["description"] for r in first}
        p, recs = self.describe(server, "--prefilter")
        self.assertEqual(server.counts, {200: 2})  # nothing asked again
        self.assertIn("0 answers reused", p.stderr.decode())
        for r in recs:
            self.assertTrue(r["cached"])
            self.assertNotIn("reused_from", r)
            self.assertEqual(r["description"], own[os.path.basename(r["file_path"])])

    def test_index_and_process_describe_then_organize_by_ai_names(self):
        colours = self.photos(3)
        server = self.server()
        env = dict(os.environ, LUMEN_TEST_KEY=KEY)
        common = ["--describe", "--llm", "openai", "--llm-model", "test-vlm", "--base-url", server.url,
                  "--api-key-env", "LUMEN_TEST_KEY", "--catalog", self.catalog]
        out = os.path.join(self.tmp, "records.jsonl")
        run("process", self.lib, "-o", out, "--quiet", *common, check=EXIT_OK, env=env)
        with open(out) as f:
            recs = [json.loads(l) for l in f.read().splitlines()]
        kinds = [r.get("type", "image") for r in recs]
        self.assertEqual(kinds.count("enrichment"), 3)
        self.assertEqual(kinds[-3:], ["enrichment"] * 3)  # after the image records
        self.check_records([r for r in recs if r.get("type") == "enrichment"], colours)
        # index --describe: served from the cache now, nothing printed, no new request.
        p = run("index", self.lib, "--quiet", *common, check=EXIT_OK, env=env)
        self.assertEqual(p.stdout, b"")
        self.assertEqual(server.counts, {200: 3})
        # The AI names feed organize templates.
        dest = os.path.join(self.tmp, "sorted")
        run("organize", self.lib, "--into", dest, "--template", "{ai_folder}/{ai_name}.{ext}", "--apply", "--quiet",
            "--catalog", self.catalog, check=EXIT_OK)
        names = sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)
        self.assertEqual(len(names), 3)
        for n in names:
            self.assertRegex(n, r"^test-photos/photo-[0-9a-f]{6}-of-the-test\.png$")

    def test_config_file_layered_under_flags(self):
        colours = self.photos(2)
        server = self.server()
        cfg = os.path.join(self.tmp, "config.toml")
        with open(cfg, "w") as f:
            f.write(f"""
[describe]
llm = "anthropic"
llm_model = "from-config"
base_url = "{server.url}"
api_key = "${{MY_SECRET}}"
profile = "mine"

[profiles.mine]
rpm = 600
concurrency = 3
""")
        env = dict(os.environ, LUMEN_CONFIG=cfg, MY_SECRET=KEY)
        p = run("describe", self.lib, "--catalog", self.catalog, check=EXIT_OK, env=env)
        recs = [json.loads(l) for l in p.stdout.decode().splitlines()]
        self.check_records([dict(r, llm_model="test-vlm") for r in recs], colours)
        self.assertEqual({(r["provider"], r["llm_model"]) for r in recs}, {("anthropic", "from-config")})
        self.assertNotIn(KEY.encode(), p.stdout + p.stderr)
        # A flag wins over the file.
        p = run("describe", self.lib, "--catalog", self.catalog, "--llm-model", "from-flag", check=EXIT_OK, env=env)
        self.assertEqual({json.loads(l)["llm_model"] for l in p.stdout.decode().splitlines()}, {"from-flag"})
        # A bad file is refused with its name and the key.
        with open(cfg, "a") as f:
            f.write("[profiles.bad]\nrpm = \"fast\"\n")
        p = run("describe", self.lib, "--catalog", self.catalog, env=env)
        self.assertEqual(p.returncode, 2)
        self.assertIn(cfg.encode(), p.stderr)
        self.assertIn(b"profiles.bad.rpm must be a number", p.stderr)

    def test_taxonomy_and_social_scoring(self):
        colours = self.photos(2)
        server = self.server()
        tax = os.path.join(self.tmp, "folders.txt")
        with open(tax, "w") as f:
            f.write("# my folders\nFamily\nTravel Photos\n")
        p, recs = self.describe(server, "--taxonomy", tax, "--social")
        self.assertEqual(len(recs), 2)
        for r in recs:
            self.assertEqual(r["folder_name"], "Travel Photos")  # one of the taxonomy, verbatim
            self.assertEqual(r["social"], {"technical": 7, "appeal": 10, "engagement": 3, "category": "Test",
                                           "mood": "calm", "caption": "A test.",
                                           "hashtags": ["#testphoto", "#lumen"]})
            self.assertRegex(r["prompt_version"], r"^describe@1\+tax:[0-9a-f]{8}\+social$")
        # Another taxonomy is another prompt: asked again, not served from the cache.
        before = server.counts[200]
        with open(tax, "w") as f:
            f.write("Family\n")
        p, recs = self.describe(server, "--taxonomy", tax)
        self.assertEqual({r["folder_name"] for r in recs}, {"Family"})
        self.assertFalse(any(r["cached"] for r in recs))
        self.assertEqual(server.counts[200], before + 2)


class Faults(Base):
    def test_no_request_lost_or_duplicated_and_rate_respected(self):
        colours = self.photos(60)
        server = self.server(p429=0.08, retry_after=0.3, p500=0.05, p503=0.05, p_slow=0.04, slow_s=2.5,
                             p_reset=0.05, p_truncate=0.05, p_invalid=0.05, p_badanswer=0.05)
        t0 = time.monotonic()
        p, recs = self.describe(server, "--rpm", "30", "--rate-window", "1", "--concurrency", "8", "--timeout", "1",
                                "--max-attempts", "12")
        self.check_records(recs, colours)
        # The limit held over every sliding 1 s window, measured where the requests arrive.
        arr = sorted(server.arrivals)
        worst = max(sum(1 for b in arr[i:] if b - a < 1.0) for i, a in enumerate(arr))
        self.assertLessEqual(worst, 30, "rate limit exceeded")
        faults = sum(v for k, v in server.counts.items() if k != 200)
        self.assertGreater(faults, 10)
        err = p.stderr.decode()
        self.assertIn("60 succeeded", err)
        self.assertRegex(err, r"\d+ retries")
        print(f"faults: {server.counts}, {len(arr)} requests in {time.monotonic() - t0:.1f} s, worst 1 s window {worst}")

    def test_breaker_opens_and_recovers(self):
        colours = self.photos(12)
        server = self.server(fail_until=3.0)
        p, recs = self.describe(server, "--concurrency", "4", "--max-attempts", "30", "--rate-window", "1",
                                "--rpm", "100")
        self.check_records(recs, colours)
        during = sum(1 for a in server.arrivals if a - server.started < 3.0)
        # Without a breaker, 4 workers retrying with short backoffs send dozens of requests into a
        # 3 s outage; with it, 8 consecutive failures open it and then single probes go out.
        self.assertLessEqual(during, 20, server.counts)
        self.assertGreaterEqual(server.counts.get(503, 0), 8)

    def test_unauthorised_fails_fast_with_a_clear_message(self):
        self.photos(5)
        server = self.server(status_always=401)
        t0 = time.monotonic()
        p, recs = self.describe(server, check=2)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(recs, [])
        self.assertEqual(server.counts, {401: 1})  # the first 401 ends the run (same for every photo)
        err = p.stderr.decode()
        self.assertIn("HTTP 401", err)
        self.assertIn("check the API key", err)
        self.assertIn("stopped: the provider refused the API key", err)

    def test_missing_key_is_refused_before_any_request(self):
        self.photos(1)
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
        p = run("describe", self.lib, "--llm", "openai", "--llm-model", "gpt-4o-mini", "--catalog", self.catalog,
                env=env)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"OPENAI_API_KEY", p.stderr)


class RealModels(Base):
    """A generated tiny VLM (tests/llm/tiny_vlm_gguf.py) in process. (llama-server itself is tested
    with text, streaming and JSON-schema prompts in src/llm/llm_test.cpp: its output parser rejects
    the fenced JSON a random-weight model picks through the grammar's ```json alternative.)"""

    def setUp(self):
        super().setUp()
        self.vlm = os.path.join(self.tmp, "vlm")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "llm", "tiny_vlm_gguf.py"), self.vlm, "tiny"],
                       check=True)

    def check_shape(self, recs, n):
        self.assertEqual(len(recs), n)
        self.assertEqual(len({r["file_path"] for r in recs}), n)
        for r in recs:
            self.assertEqual(r["type"], "enrichment")
            self.assertTrue(r["description"])
            self.assertRegex(r["file_name"], r"^[a-z0-9]+(-[a-z0-9]+){0,4}$|^$")
            self.assertGreater(r["llm_tokens"], 0)

    def test_in_process(self):
        self.photos(3)
        args = ["describe", self.lib, "--llm", "local", "--llm-model", os.path.join(self.vlm, "model.gguf"),
                "--mmproj", os.path.join(self.vlm, "mmproj.gguf"), "--max-new-tokens", "1500",
                "--catalog", self.catalog]
        p = run(*args, check=EXIT_OK)
        recs = [json.loads(l) for l in p.stdout.decode().splitlines()]
        self.check_shape(recs, 3)
        self.assertTrue(all(r["provider"] == "local" and not r["cached"] for r in recs))
        p = run(*args, check=EXIT_OK)  # cached now
        self.assertTrue(all(json.loads(l)["cached"] for l in p.stdout.decode().splitlines()))
        p = run("describe", self.lib, "--llm", "local", "--llm-model", os.path.join(self.vlm, "model.gguf"),
                "--catalog", self.catalog)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--mmproj", p.stderr)


if __name__ == "__main__":
    unittest.main()
