"""Resumable video conversions (issue 20): a long video is a job in the catalog, cut into segments
at key frames; kill -9 costs at most the segment under way, a full disk pauses the job until
`lumen jobs resume`, a cancelled job leaves nothing, and the output equals an uncut run's.

Sources: an interlaced 480i "tape" made from real video (opencv-doc's Megamind.avi), with PCM
audio, as in test_video_convert. Every output is checked with ffprobe and decoded in full.
"""
import contextlib
import glob
import json
import os
import signal
import subprocess
import time
import unittest

from test_cli import EXIT_OK, EXIT_SOME_FAILED, LUMEN, picture, run
from test_video_convert import SLOW, Base, decodes, events, ffmpeg, probe

CHAIN = "deinterlace,height:240,h264:23:ultrafast"
SECONDS = 4 if SLOW else 6


def frame_times(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=pts", "-of", "csv=p=0", path],
                         check=True, capture_output=True, text=True).stdout
    return [int(x.strip(",")) for x in out.split() if x.strip(",").lstrip("-").isdigit()]


def psnr(a, b):
    p = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-i", a, "-i", b, "-lavfi",
                        "[0:v][1:v]psnr", "-f", "null", "-"], capture_output=True, text=True)
    line = [x for x in p.stderr.splitlines() if "PSNR" in x][-1]
    return float(line.split("average:")[1].split()[0])


class Jobs(Base):
    def setUp(self):
        super().setUp()
        self.catalog = self.path("catalog.db")

    def jconvert(self, *args, check=EXIT_OK, out=None):
        return run("convert", *args, "-o", out or self.out, "--catalog", self.catalog,
                   "--json-logs", check=check)

    def jobs(self, *args, check=EXIT_OK):
        return run("jobs", *args, "--catalog", self.catalog, "--json-logs", check=check)

    def listed(self):
        p = run("jobs", "list", "--json", "--catalog", self.catalog, check=EXIT_OK)
        return json.loads(p.stdout)

    def segments(self):
        return sorted(glob.glob(os.path.join(self.out, ".lumen-job-*", "seg-*.pkt")))

    def everything_left(self, folder):
        """Every file and folder under `folder` but the outputs (.mp4)."""
        found = []
        for root, dirs, files in os.walk(folder):
            found += [os.path.join(root, d) for d in dirs]
            found += [os.path.join(root, f) for f in files if not f.endswith(".mp4")]
        return found

    def reference(self, src):
        """The same conversion uncut (no job): what every job's output is compared with."""
        ref = self.path("ref")
        run("convert", src, "-o", ref, "--no-cache", "--chain", CHAIN, check=EXIT_OK)
        return os.path.join(ref, os.path.splitext(os.path.basename(src))[0] + ".mp4")

    def same_as(self, out, ref):
        self.assertEqual(decodes(out), (0, ""))
        a, b = probe(out), probe(ref)
        self.assertEqual([(s["codec_type"], s["codec_name"]) for s in a["streams"]],
                         [(s["codec_type"], s["codec_name"]) for s in b["streams"]])
        # Every frame at the same time as in the uncut run, none lost or doubled at the cuts.
        self.assertEqual(frame_times(out), frame_times(ref))
        for sa, sb in zip(a["streams"], b["streams"]):
            self.assertAlmostEqual(float(sa["duration"]), float(sb["duration"]), delta=0.02)
        self.assertGreater(psnr(out, ref), 38)

    def start(self, src, *extra, chain=CHAIN):
        return subprocess.Popen([LUMEN, "convert", src, "-o", self.out, "--catalog",
                                 self.catalog, "--chain", chain, "--json-logs", *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_for_segments(self, proc, n):
        deadline = time.time() + 120
        while time.time() < deadline and len(self.segments()) < n and proc.poll() is None:
            time.sleep(0.02)
        self.assertGreaterEqual(len(self.segments()), n, "the job never got that far")

    @contextlib.contextmanager
    def small_disk(self, kb):
        """A tmpfs of `kb` KiB (grown with `mount -o remount,size=...`), unmounted after."""
        disk = self.path("disk")
        os.makedirs(disk)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kb}k", "tmpfs", disk], check=True)
        try:
            yield disk
        finally:
            subprocess.run(["umount", disk], check=False)

    def kill_9_after_two_segments(self, src):
        proc = self.start(src, "--segment", "1")
        self.wait_for_segments(proc, 2)
        proc.kill()
        proc.communicate(timeout=60)

    def test_a_long_video_is_cut_and_its_output_equals_an_uncut_run(self):
        src = self.tape("tape.mkv", "tff", seconds=SECONDS)
        p = self.jconvert(src, "--chain", CHAIN, "--segment", "1")
        out = os.path.join(self.out, "tape.mp4")
        done = events(p.stderr, "video_done")[0]
        self.assertNotEqual(done["job"], "0")
        self.assertEqual(done["field_order"], "top field first")
        self.same_as(out, self.reference(src))
        [job] = self.listed()
        self.assertEqual((job["state"], job["done"]), ("done", job["segments"]))
        self.assertGreaterEqual(job["segments"], SECONDS - 1)
        self.assertEqual(self.everything_left(self.out), [])  # its folder went with it
        # A short video is converted whole, without a job.
        p = self.jconvert(src, "--chain", "height:200", "--segment", "60")
        self.assertEqual(events(p.stderr, "video_done")[0]["job"], "0")

    def test_kill_9_then_resume_redoes_at_most_one_segment(self):
        src = self.tape("tape.mkv", "tff", seconds=SECONDS)
        self.kill_9_after_two_segments(src)
        kept = len(self.segments())
        [job] = self.listed()
        self.assertEqual(job["state"], "interrupted")
        self.assertFalse(os.path.exists(os.path.join(self.out, "tape.mp4")))
        p = self.jobs("resume")
        resumed = events(p.stderr, "job_resume")
        self.assertEqual(len(resumed), 1)
        self.assertEqual(int(resumed[0]["done"]), kept)
        # Only the segments not finished at the kill were encoded again: the one under way and
        # those after it.
        self.assertEqual(len(events(p.stderr, "job_segment")), job["segments"] - kept)
        self.same_as(os.path.join(self.out, "tape.mp4"), self.reference(src))
        self.assertEqual(self.everything_left(self.out), [])  # no temporary, no job folder
        self.assertEqual(self.listed()[0]["state"], "done")
        # Nothing left to resume.
        self.assertEqual(events(self.jobs("resume").stderr, "job_resume"), [])

    def test_the_same_command_again_goes_on_with_the_job(self):
        src = self.tape("tape.mkv", "tff", seconds=SECONDS)
        self.kill_9_after_two_segments(src)
        p = self.jconvert(src, "--chain", CHAIN, "--segment", "1")
        self.assertEqual(len(events(p.stderr, "job_resume")), 1)
        self.assertEqual([j["state"] for j in self.listed()], ["done"])
        self.assertEqual(self.everything_left(self.out), [])

    def test_a_changed_input_starts_the_job_again(self):
        src = self.tape("tape.mkv", "tff", seconds=SECONDS)
        self.kill_9_after_two_segments(src)
        os.remove(src)
        src = self.tape("tape.mkv", "bff", seconds=SECONDS - 1)
        p = self.jconvert(src, "--chain", CHAIN, "--segment", "1")
        self.assertIn(b"another version of the file", p.stderr)
        self.assertEqual(events(p.stderr, "job_resume"), [])
        self.same_as(os.path.join(self.out, "tape.mp4"), self.reference(src))
        self.assertEqual(sorted(j["state"] for j in self.listed()), ["cancelled", "done"])

    def test_cancel_stops_a_running_job_and_leaves_nothing(self):
        src = self.tape("tape.mkv", "tff", seconds=SECONDS)
        proc = self.start(src, "--segment", "1", chain=CHAIN.replace("ultrafast", "slow"))
        self.wait_for_segments(proc, 1)
        [job] = self.listed()
        self.assertEqual(job["state"], "running")
        self.jobs("cancel", str(job["id"]))
        proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 128 + signal.SIGTERM)
        self.assertEqual(os.listdir(self.out), [])
        self.assertEqual(self.listed()[0]["state"], "cancelled")
        # A cancelled job is not resumed.
        self.assertEqual(events(self.jobs("resume").stderr, "job_resume"), [])
        self.assertEqual(os.listdir(self.out), [])

    @unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root")
    def test_a_full_disk_pauses_the_job_and_resume_finishes_it(self):
        src = self.tape("tape.mkv", "tff", seconds=SECONDS)
        ref = self.reference(src)
        # Room for about half of the segments.
        with self.small_disk(max(64, os.path.getsize(ref) // 2 // 1024)) as disk:
            self.out = os.path.join(disk, "out")
            p = self.jconvert(src, "--chain", CHAIN, "--segment", "1", check=EXIT_SOME_FAILED)
            self.assertIn(b"the disk is full", p.stderr)
            self.assertIn(b"lumen jobs resume", p.stderr)
            [job] = self.listed()
            self.assertEqual(job["state"], "paused")
            self.assertGreater(job["done"], 0)
            self.assertFalse(glob.glob(os.path.join(self.out, ".lumen-job-*", "*.part")))
            self.assertFalse(glob.glob(os.path.join(self.out, ".lumen-*.tmp")))
            kept = len(self.segments())
            subprocess.run(["mount", "-o", "remount,size=64m", disk], check=True)
            p = self.jobs("resume")
            self.assertEqual(int(events(p.stderr, "job_resume")[0]["done"]), kept)
            self.same_as(os.path.join(self.out, "tape.mp4"), ref)
            self.assertEqual(self.everything_left(self.out), [])

    @unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root")
    def test_a_job_stopped_while_assembling_resumes_with_its_sized_name(self):
        # Room for every segment but not for the output as well: the job pauses after its last
        # segment; the resume only assembles, and the output's size is still known for its name.
        src = self.tape("tape.mkv", "tff", seconds=SECONDS)
        ref = self.reference(src)
        with self.small_disk(int(os.path.getsize(ref) * 1.35) // 1024 + 64) as disk:
            self.out = os.path.join(disk, "out")
            name = ["--name", "{stem}_{w}x{h}.{ext}"]
            p = self.jconvert(src, "--chain", CHAIN, "--segment", "1", *name,
                              check=EXIT_SOME_FAILED)
            self.assertIn(b"the disk is full", p.stderr)
            [job] = self.listed()
            self.assertEqual((job["state"], job["done"]), ("paused", job["segments"]))
            subprocess.run(["mount", "-o", "remount,size=64m", disk], check=True)
            p = self.jobs("resume")
            self.assertEqual(events(p.stderr, "job_segment"), [])  # nothing encoded again
            self.same_as(os.path.join(self.out, "tape_320x240.mp4"), ref)
            self.assertEqual(self.everything_left(self.out), [])

    def test_jobs_side_by_side_with_an_index_on_one_catalog(self):
        a = self.tape("a.mkv", "tff", seconds=SECONDS)
        b = self.tape("b.mkv", "bff", seconds=SECONDS)
        photos = self.path("photos")
        os.makedirs(photos)
        for i in range(6):
            picture(os.path.join(photos, f"p{i}.jpg"), seed=i)
        procs = [subprocess.Popen([LUMEN, "convert", src, "-o", self.out, "--catalog",
                                   self.catalog, "--chain", CHAIN, "--segment", "1", "-q"],
                                  stderr=subprocess.PIPE) for src in (a, b)]
        procs.append(subprocess.Popen([LUMEN, "index", photos, "--catalog", self.catalog,
                                       "--no-embedding", "-q"], stderr=subprocess.PIPE))
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            self.assertEqual(proc.returncode, EXIT_OK, err[-2000:])
        self.assertEqual(sorted(j["state"] for j in self.listed()), ["done", "done"])
        for name in ("a.mp4", "b.mp4"):
            self.assertEqual(decodes(os.path.join(self.out, name)), (0, ""))
        self.assertEqual(self.everything_left(self.out), [])


if __name__ == "__main__":
    unittest.main()
