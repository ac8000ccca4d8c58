"""`lumen compare` (issue 20): excerpts of a real 480i "tape" encoded with several presets, each
measured against the source (SSIM, PSNR), stills side by side and split in one HTML report,
speed and size estimated for the whole file; the report opened in headless Chromium.
"""
import json
import os
import re
import shutil
import subprocess
import unittest

from test_cli import EXIT_ERROR, EXIT_OK, run
from test_video_convert import SLOW, Base


class Compare(Base):
    def test_presets_are_measured_and_shown(self):
        src = self.tape("tape.mkv", "tff", seconds=4 if SLOW else 6)
        scratch = self.path("scratch")
        os.makedirs(scratch)
        report = self.path("report.html")
        p = run("compare", src, "--presets", "vhs,web,remux", "--excerpt", "1", "--json", "-o",
                report, env={**os.environ, "TMPDIR": scratch}, check=EXIT_OK)
        out = json.loads(p.stdout)
        self.assertEqual(len(out["at"]), 3)  # three key frames spread over the file
        self.assertEqual(sorted(out["at"]), out["at"])
        by = {r["preset"]: r for r in out["presets"]}
        self.assertEqual(sorted(by), ["remux", "vhs", "web"])
        # A copy is the source: the measure says so.
        self.assertGreater(by["remux"]["ssim"], 0.999)
        self.assertGreaterEqual(by["remux"]["psnr"], 99)
        for name in ("vhs", "web"):
            r = by[name]
            self.assertTrue(0.5 < r["ssim"] < 0.999, r)
            self.assertTrue(20 < r["psnr"] < 60, r)
            self.assertGreater(r["realtime"], 0)
            self.assertGreater(r["estimated_seconds"], 0)
            # The estimate scales the excerpts' bytes to the whole file.
            self.assertAlmostEqual(r["estimated_bytes"],
                                   r["excerpt_bytes"] / (3 * 1.0) * out["duration"], delta=1)
        self.assertIn("bwdif", by["vhs"]["video_filters"])
        self.assertNotIn("trim=", by["vhs"]["video_filters"])
        self.assertEqual(os.listdir(scratch), [])  # the excerpts went with the run
        # The report: every still decodes in a browser (3 excerpts x 3 presets x 2 views x 2).
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        self.assertIsNotNone(chromium, "chromium is installed by scripts/bootstrap.sh")
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                              "--virtual-time-budget=10000", "--dump-dom", "file://" + report],
                             capture_output=True, text=True, timeout=120).stdout
        m = re.search(r'data-stills="(\d+)" data-loaded="(\d+)"', dom)
        self.assertIsNotNone(m, dom[:500])
        self.assertEqual((int(m.group(1)), int(m.group(2))), (36, 36))
        for name in ("vhs", "web", "remux"):
            self.assertIn(f"<td>{name}</td>", dom)

    def test_bad_requests_are_refused_before_any_work(self):
        src = self.tape("tape.mkv", "tff", seconds=1)
        p = run("compare", src, "--at", "50", "-o", self.path("r.html"), check=EXIT_ERROR)
        self.assertIn(b"outside the video", p.stderr)
        p = run("compare", self.path("missing.mkv"), check=EXIT_ERROR)
        self.assertIn(b"missing.mkv", p.stderr)
        self.assertFalse(os.path.exists(self.path("r.html")))


if __name__ == "__main__":
    unittest.main()
