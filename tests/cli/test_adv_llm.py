"""Adversarial tests of lumen's remote model providers against hostile loopback servers
(fault_server.py modes): secrets echoed back, endless and huge bodies, absurd Retry-After values,
hostile JSON shapes, configuration errors that must end a run at once, and base URLs written the
way SDKs document them. Every test bounds its wall time.
"""
import glob
import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest

from PIL import Image

from fault_server import HOSTILE_BODIES, FaultServer
from test_cli import EXIT_ERROR, EXIT_OK, EXIT_SOME_FAILED, SLOW, run
import test_describe

KEY = "sk-adv-Secret-9f3b2c7d1e"


class Base(test_describe.Base):
    key = KEY

    def photos(self, n):
        colours = []
        for i in range(n):
            c = ((i * 37) % 256, (i * 91 + 40) % 256, (i * 53 + 90) % 256)
            Image.new("RGB", (64, 48), c).save(os.path.join(self.lib, f"p{i:03d}.png"))
            colours.append(c)
        return colours

    def config(self, **profile):
        cfg = os.path.join(self.tmp, "config.toml")
        with open(cfg, "w") as f:
            f.write('[describe]\nprofile = "adv"\n[profiles.adv]\n' + "".join(f"{k} = {v}\n" for k, v in profile.items()))
        return cfg

    def describe(self, server, *extra, kind="openai", base=None, model="test-vlm", limit=30, env=None, cfg=None):
        """Runs describe; checks it ended within `limit` s (x4 sanitized), never crashed and never
        printed the key. Returns (process, records, seconds)."""
        env = dict(os.environ, LUMEN_TEST_KEY=KEY, **(env or {}))
        env["LUMEN_CONFIG"] = cfg or os.path.join(self.tmp, "none.toml")
        t0 = time.monotonic()
        p = run("describe", self.lib, "--llm", kind, "--llm-model", model, "--base-url", base or server.url,
                "--api-key-env", "LUMEN_TEST_KEY", "--catalog", self.catalog, *extra, env=env,
                timeout=limit * SLOW + 30)
        secs = time.monotonic() - t0
        self.assertGreaterEqual(p.returncode, 0, f"killed by signal {-p.returncode}: {p.stderr[-3000:]!r}")
        self.assertIn(p.returncode, (EXIT_OK, EXIT_SOME_FAILED, EXIT_ERROR), p.stderr[-3000:])
        self.assertNotIn(b"terminate called", p.stderr)
        self.assertLess(secs, limit * SLOW, p.stderr[-3000:])
        self.assertNotIn(KEY.encode(), p.stdout + p.stderr)
        recs = [json.loads(l) for l in p.stdout.decode().splitlines()]  # strict UTF-8 and JSON
        return p, recs, secs

    def catalog_bytes(self):
        data = b""
        for f in glob.glob(self.catalog + "*"):
            with open(f, "rb") as fh:
                data += fh.read()
        return data


class Secrets(Base):
    def test_key_echoed_in_an_error_body_is_redacted(self):
        self.photos(3)
        server = self.server(mode="echo_key")
        for logs in ([], ["-v"]):
            p, recs, _ = self.describe(server, *logs)
            self.assertEqual(p.returncode, EXIT_ERROR)
            self.assertIn(b"[redacted]", p.stderr)
            self.assertIn(b"Incorrect API key provided", p.stderr)  # the provider's own text stays
        # JSON log lines, through index --describe.
        env = dict(os.environ, LUMEN_TEST_KEY=KEY, LUMEN_CONFIG=os.path.join(self.tmp, "none.toml"))
        p = run("index", self.lib, "--describe", "--json-logs", "--llm", "openai", "--llm-model", "m",
                "--base-url", server.url, "--api-key-env", "LUMEN_TEST_KEY", "--catalog", self.catalog,
                env=env, timeout=60)
        self.assertEqual(p.returncode, EXIT_ERROR, p.stderr)
        self.assertNotIn(KEY.encode(), p.stdout + p.stderr)
        lines = [json.loads(l) for l in p.stderr.decode().splitlines()]
        self.assertTrue(any("[redacted]" in l["msg"] and l["level"] == "error" for l in lines), lines)
        self.assertNotIn(KEY.encode(), self.catalog_bytes())

    def test_key_straddling_the_cut_of_an_error_text_is_redacted(self):
        # Error texts are cut at 200 or 300 bytes: a key across the cut must not leak in part.
        self.photos(1)
        for pad in (150, 160, 170, 250, 260):
            server = self.server(mode="echo_key", echo_pad=pad)
            p, _, _ = self.describe(server)
            self.assertEqual(p.returncode, EXIT_ERROR)
            self.assertNotIn(KEY[:8].encode(), p.stdout + p.stderr, pad)
            self.assertNotIn(KEY[:8].encode(), self.catalog_bytes(), pad)

    def test_key_in_an_answer_is_neither_printed_nor_stored(self):
        self.photos(2)
        server = self.server(mode="key_answer")
        out = os.path.join(self.tmp, "out.jsonl")
        p, _, _ = self.describe(server, "-o", out)
        self.assertEqual(p.returncode, EXIT_OK, p.stderr)
        with open(out, "rb") as f:
            data = f.read()
        self.assertNotIn(KEY.encode(), data)
        self.assertEqual(data.count(b"[redacted]"), 4)  # description and ocr_text of 2 photos
        self.assertNotIn(KEY.encode(), self.catalog_bytes())
        # ... and the cached copy is redacted too.
        p, recs, _ = self.describe(server)
        self.assertTrue(all(r["cached"] and "[redacted]" in r["description"] for r in recs))


class FatalAnswers(Base):
    def check_fatal(self, p, server, status, max_requests=2, mentions=1):
        sent = sum(v for k, v in server.counts.items() if isinstance(k, int))
        self.assertLessEqual(sent, max_requests, server.counts)
        self.assertEqual(p.returncode, EXIT_ERROR)
        err = p.stderr.decode()
        self.assertEqual(err.count("error: stopped:"), 1, err)
        self.assertIn(f"HTTP {status}", err)
        self.assertEqual(err.count(f"HTTP {status}"), mentions, err)  # one message, not one per photo
        return err

    def test_401_over_50_photos_ends_the_run_at_once(self):
        self.photos(50)
        server = self.server(status_always=401)
        p, recs, secs = self.describe(server, "--rpm", "30", limit=8)
        err = self.check_fatal(p, server, 401, max_requests=1)
        self.assertEqual(recs, [])
        self.assertIn("refused the API key", err)
        self.assertIn("refused by the fault server (401)", err)  # the provider's own error text
        self.assertIn("$LUMEN_TEST_KEY", err)
        self.assertIn("(stopped: 50 not asked)", err)
        print(f"401 x 50 photos: {secs:.2f} s, {server.counts}")

    def test_403_404_and_402_end_the_run(self):
        self.photos(10)
        for status, words in ((403, "refused the API key"), (404, "unknown model"), (402, "payment")):
            server = self.server(status_always=status)
            p, _, _ = self.describe(server, "--rpm", "30", "--no-cache", limit=8)
            self.assertIn(words, self.check_fatal(p, server, status, max_requests=1))

    def test_repeated_400_or_422_ends_the_run(self):
        self.photos(20)
        for status in (400, 422):
            server = self.server(status_always=status)
            p, _, _ = self.describe(server, "--rpm", "600", "--concurrency", "1", "--no-cache", limit=8)
            err = self.check_fatal(p, server, status, max_requests=2, mentions=2)  # the 1st failed its photo
            self.assertIn("rejected the request 2 times in a row", err)

    def test_a_400_for_one_image_does_not_end_the_run(self):
        colours = self.photos(8)
        server = self.server(mode="reject_colour", reject_colour=colours[3])
        p, recs, _ = self.describe(server, "--concurrency", "2", "--rpm", "600")
        self.assertEqual(p.returncode, EXIT_SOME_FAILED, p.stderr)
        self.assertEqual(len(recs), 7)
        self.assertIn(b"image too large", p.stderr)
        self.assertIn(b"7 succeeded", p.stderr)

    def test_what_finished_is_kept(self):
        self.photos(4)
        server = self.server()
        p, recs, _ = self.describe(server)
        self.assertEqual(len(recs), 4)
        for f in sorted(os.listdir(self.lib))[:2]:  # new content: asked again, and now the key is refused
            Image.new("RGB", (64, 48), (1, 2, 3) if f < "p002" else (3, 2, 1)).save(os.path.join(self.lib, f))
        server.cfg["status_always"] = 401
        p, recs, _ = self.describe(server)
        self.assertEqual(p.returncode, EXIT_ERROR)
        self.assertEqual(len(recs), 2)  # the two unchanged photos, from the cache
        self.assertTrue(all(r["cached"] for r in recs))


class BaseUrls(Base):
    def test_every_spelling_reaches_the_api_and_shares_the_cache(self):
        self.photos(2)
        server = self.server()
        spellings = {
            "openai": ["", "/", "/v1", "/v1/", "/v1/chat/completions"],
            "ollama": ["", "/api", "/api/", "/v1/"],
            "anthropic": ["", "/v1", "/v1/"],
            "gemini": ["", "/v1beta", "/v1beta/"],
        }
        for kind, suffixes in spellings.items():
            for i, suffix in enumerate(suffixes):
                before = dict(server.counts)
                p, recs, _ = self.describe(server, kind=kind, base=server.url + suffix)
                self.assertEqual(p.returncode, EXIT_OK, (kind, suffix, p.stderr, server.paths[-3:]))
                self.assertEqual(len(recs), 2)
                # The first spelling asks; every other one is served from the same cache entries.
                self.assertEqual(all(r["cached"] for r in recs), i > 0, (kind, suffix))
                if i > 0:
                    self.assertEqual(server.counts, before)
        self.assertFalse([p for p in server.paths if "/v1/v1" in p or "/api/api" in p or "v1beta/v1beta" in p])

    def test_a_wrong_path_ends_the_run_with_the_url(self):
        self.photos(5)
        server = self.server()
        p, _, _ = self.describe(server, base=server.url + "/v2/openai", limit=8)
        self.assertEqual(p.returncode, EXIT_ERROR)
        err = p.stderr.decode()
        self.assertIn("HTTP 404", err)
        self.assertIn("/v2/openai/v1/chat/completions", err)
        self.assertIn("check --llm-model and --base-url", err)
        self.assertEqual(server.counts, {404: 1})


class Limits(Base):
    def test_endless_stream_is_cut_at_the_reply_limit(self):
        self.photos(3)
        server = self.server(mode="endless")
        p, recs, secs = self.describe(server, "--concurrency", "3", limit=15)
        self.assertEqual(p.returncode, EXIT_SOME_FAILED, p.stderr)
        self.assertIn(b"MiB (the limit)", p.stderr)
        self.assertEqual(server.counts, {"endless": 3})  # not retried
        self.assertLess(server.sent_bytes, 3 * 64 << 20)  # stopped near 8 MiB each (socket buffers)

    def test_huge_bodies_are_refused_with_or_without_a_length(self):
        self.photos(2)
        for chunked in (False, True):
            server = self.server(mode="huge", huge_bytes=50 << 20, chunked=chunked)
            p, recs, _ = self.describe(server, "--no-cache", limit=30)
            self.assertEqual(p.returncode, EXIT_SOME_FAILED, p.stderr)
            self.assertEqual(recs, [])
            self.assertIn(b"MiB (the limit)", p.stderr)
        self.assertLess(os.path.getsize(self.catalog), 8 << 20)

    def test_reply_limit_is_configurable(self):
        self.photos(1)
        server = self.server(mode="huge", huge_bytes=300 << 10)  # 300 KiB: under 8 MiB, over 0.1
        cfg = self.config(max_reply_mb=0.1)
        p, _, _ = self.describe(server, cfg=cfg)
        self.assertIn(b"0.1 MiB (the limit)", p.stderr)
        p, _, _ = self.describe(server)  # default limit: read, but the answer is too long to keep
        self.assertIn(b"the limit is 64 KiB", p.stderr)

    def test_long_non_ascii_fields_are_cut_on_character_boundaries(self):
        self.photos(3)
        server = self.server(mode="long_fields")
        out = os.path.join(self.tmp, "o.jsonl")
        p, _, _ = self.describe(server, "-o", out)
        self.assertEqual(p.returncode, EXIT_OK, p.stderr)
        with open(out, "rb") as f:
            recs = [json.loads(l.decode("utf-8")) for l in f.read().splitlines()]  # strict UTF-8
        self.assertEqual(len(recs), 3)
        for r in recs:
            self.assertLessEqual(len(r["file_name"].encode()), 80)
            self.assertTrue(r["file_name"].startswith("a\u00e9\u00e9"), r["file_name"])
            self.assertLessEqual(len(r["description"].encode()), 2000)
            self.assertLessEqual(len(r["ocr_text"].encode()), 2000)
            self.assertLessEqual(len(r["folder_name"].encode()), 80)
        rows = sqlite3.connect(self.catalog).execute("SELECT result FROM enrichments").fetchall()
        self.assertEqual(len(rows), 3)
        self.assertTrue(all(len(r[0]) < 8000 for r in rows))


class RetryAfter(Base):
    def test_absurd_retry_after_is_clamped_and_the_wait_bounded(self):
        self.photos(2)
        cfg = self.config(retry_after_max=1.5, max_wait=4, max_attempts=50)
        for value in ("99999", "inf", "Fri, 31 Dec 9999 23:59:59 GMT"):
            server = self.server(p429=1.0, retry_after=value)
            p, recs, secs = self.describe(server, "--no-cache", cfg=cfg, limit=15)
            err = p.stderr.decode()
            self.assertEqual(p.returncode, EXIT_ERROR, err)
            self.assertEqual(err.count(f"Retry-After: {value}"), 1, err)  # said once
            self.assertIn("waits at most 2 s", err)  # 1.5 printed as "2": {:.0f}
            self.assertIn("waiting", err)  # progress while waiting
            self.assertIn("kept rate-limiting", err)
            self.assertLess(server.counts[429], 2 * 6, server.counts)
            print(f"Retry-After {value}: {secs:.1f} s, {server.counts}")

    def test_a_server_down_for_the_whole_wait_ends_the_run(self):
        # 503 with Retry-After 99999 for every photo: the run's wait is bounded, not each
        # photo's in turn (8 photos x the wait budget).
        self.photos(8)
        cfg = self.config(retry_after_max=1, max_wait=3, max_attempts=50)
        server = self.server(p503=1.0, retry_after="99999")
        p, recs, secs = self.describe(server, "--no-cache", "--concurrency", "1", cfg=cfg, limit=30)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, EXIT_ERROR, err)
        self.assertIn("kept failing (HTTP 503", err)
        self.assertLess(secs, 12 * SLOW, err)

    def test_retry_after_within_bounds_is_honoured(self):
        self.photos(2)
        server = self.server(p429=0.5, retry_after="0.4", seed=3)
        p, recs, _ = self.describe(server, "--max-attempts", "20", "--concurrency", "1")
        self.assertEqual(p.returncode, EXIT_OK, p.stderr)
        self.assertEqual(len(recs), 2)
        arr = server.arrivals
        gaps = [b - a for a, b in zip(arr, arr[1:])]
        self.assertTrue(any(g >= 0.35 for g in gaps), gaps)


class Hostile(Base):
    def test_hostile_reply_shapes_never_crash(self):
        self.photos(len(HOSTILE_BODIES))
        server = self.server(mode="shapes")
        p, recs, _ = self.describe(server, "--max-attempts", "1", "--concurrency", "1", "-v")
        self.assertEqual(p.returncode, EXIT_SOME_FAILED, p.stderr)
        self.assertEqual(server.counts, {"shape": len(HOSTILE_BODIES)})
        self.assertIn(f"{len(HOSTILE_BODIES)} failed".encode(), p.stderr)

    def test_streamed_answers_with_string_usage(self):
        self.photos(2)
        server = self.server(sse=True, usage_str=True)
        p, recs, _ = self.describe(server)
        self.assertEqual(p.returncode, EXIT_OK, p.stderr)
        self.assertEqual([r["llm_tokens"] for r in recs], [0, 0])

    def test_invalid_utf8_model_name(self):
        self.photos(1)
        server = self.server()
        env = dict(os.environ, LUMEN_TEST_KEY=KEY, LUMEN_CONFIG=os.path.join(self.tmp, "none"))
        p = run("describe", self.lib, "--llm", "openai", "--llm-model", b"vlm-\xff\xfe", "--base-url", server.url,
                "--api-key-env", "LUMEN_TEST_KEY", "--catalog", self.catalog, env=env, timeout=60)
        self.assertEqual(p.returncode, EXIT_OK, p.stderr)
        recs = [json.loads(l.decode("utf-8")) for l in p.stdout.splitlines()]
        self.assertEqual(recs[0]["llm_model"], "vlm-\ufffd\ufffd")


if __name__ == "__main__":
    unittest.main()
