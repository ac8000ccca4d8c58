"""End-to-end tests of lumen posts (issue 17): photos grouped into posts by capture time, near
duplicates and blurred frames dropped with reasons, one caption request per post with all its
photos, an HTML preview, and post folders made through the journal (undoable).
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from PIL import Image, ImageFilter

from fault_server import FaultServer
from test_cli import EXIT_OK, picture, run

KEY = "posts-key-1"


class Posts(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-posts-")
        self.lib = os.path.join(self.tmp, "lib")
        os.makedirs(self.lib)
        self.catalog = os.path.join(self.tmp, "cat", "catalog.db")
        self.server = FaultServer(api_key=KEY)

    def tearDown(self):
        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def photo(self, name, when, seed, blur=False, copy_of=None):
        p = os.path.join(self.lib, name)
        if copy_of:
            Image.open(os.path.join(self.lib, copy_of)).resize((400, 300)).save(p, quality=70)
        else:
            picture(p, 640, 480, seed=seed)
            if blur:
                Image.open(p).filter(ImageFilter.GaussianBlur(12)).save(p, quality=90)
        subprocess.run(["exiftool", "-q", "-overwrite_original", f"-DateTimeOriginal={when}", p], check=True)
        return p

    def test_posts_are_grouped_curated_captioned_and_made_into_folders(self):
        self.photo("a1.jpg", "2024:05:01 10:00:00", 1)
        self.photo("a2.jpg", "2024:05:01 10:01:00", 2)
        self.photo("a2-copy.jpg", "2024:05:01 10:01:02", 0, copy_of="a2.jpg")
        self.photo("a3-blur.jpg", "2024:05:01 10:02:00", 3, blur=True)
        self.photo("a4.jpg", "2024:05:01 10:03:00", 4)
        self.photo("b1.jpg", "2024:05:02 19:00:00", 5)
        self.photo("b2.jpg", "2024:05:02 19:05:00", 6)
        env = dict(os.environ, LUMEN_TEST_KEY=KEY)
        common = ["--catalog", self.catalog, "--llm", "openai", "--llm-model", "test-vlm", "--base-url",
                  self.server.url, "--api-key-env", "LUMEN_TEST_KEY"]
        html = os.path.join(self.tmp, "posts.html")
        p = run("posts", self.lib, "--caption", "--html", html, *common, check=EXIT_OK, env=env)
        posts = json.loads(p.stdout)["posts"]
        self.assertEqual(len(posts), 2)
        day1, day2 = posts
        names = lambda ms: sorted(os.path.basename(m["path"]) for m in ms)
        self.assertEqual(names(day1["photos"]), ["a1.jpg", "a2.jpg", "a4.jpg"])
        dropped = {os.path.basename(m["path"]): m["reason"] for m in day1["dropped"]}
        self.assertEqual(set(dropped), {"a2-copy.jpg", "a3-blur.jpg"})
        self.assertIn("near-duplicate of", dropped["a2-copy.jpg"])
        self.assertIn("blurred", dropped["a3-blur.jpg"])
        self.assertEqual(names(day2["photos"]), ["b1.jpg", "b2.jpg"])
        # One request per post, with every chosen photo in it.
        self.assertEqual(sorted(self.server.images_per_request), [2, 3])
        self.assertEqual(day1["caption"], "Test post of 3 photos")
        self.assertEqual(day1["hashtags"], ["#SummerFun", "#lumen", "#already"])
        self.assertEqual(day1["folder"], "2024-05-01 test-post-of-3")
        with open(html) as f:
            self.assertEqual(f.read().count("<img"), 7)
        # Cached: a rerun asks nothing. --max-per-post caps a post, the rest left over.
        p = run("posts", self.lib, "--caption", "--max-per-post", "2", *common, check=EXIT_OK, env=env)
        capped = json.loads(p.stdout)["posts"][0]
        self.assertEqual(len(capped["photos"]), 2)
        self.assertEqual(len(capped["leftover"]), 1)
        p = run("posts", self.lib, "--caption", *common, check=EXIT_OK, env=env)
        self.assertEqual(len(self.server.images_per_request), 3)  # only the capped post was new

        dest = os.path.join(self.tmp, "posts")
        run("posts", self.lib, "--caption", "--into", dest, "--apply", "--quiet", *common, check=EXIT_OK, env=env)
        got = sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)
        self.assertEqual(got, ["2024-05-01 test-post-of-3/a1.jpg", "2024-05-01 test-post-of-3/a2.jpg",
                               "2024-05-01 test-post-of-3/a4.jpg", "2024-05-02 test-post-of-2/b1.jpg",
                               "2024-05-02 test-post-of-2/b2.jpg"])
        self.assertTrue(os.path.exists(os.path.join(self.lib, "a1.jpg")))  # copies: the library is kept
        run("undo", "--catalog", self.catalog, "--quiet", check=EXIT_OK)
        left = [f for d, _, fs in os.walk(dest) for f in fs]
        self.assertEqual(left, [])
        self.assertEqual(len(os.listdir(self.lib)), 7)

    def test_captions_leave_describe_answers_alone_and_the_plan_is_one_document(self):
        self.photo("c1.jpg", "2024:06:01 09:00:00", 11)
        self.photo("c2.jpg", "2024:06:01 09:02:00", 12)
        env = dict(os.environ, LUMEN_TEST_KEY=KEY)
        common = ["--catalog", self.catalog, "--llm", "openai", "--llm-model", "test-vlm", "--base-url",
                  self.server.url, "--api-key-env", "LUMEN_TEST_KEY"]
        run("describe", self.lib, "--quiet", *common, check=EXIT_OK, env=env)
        run("posts", self.lib, "--caption", "--quiet", *common, check=EXIT_OK, env=env)
        # The caption is stored for the post; each photo's own answer still names it.
        dest = os.path.join(self.tmp, "sorted")
        run("organize", self.lib, "--into", dest, "--template", "{ai_folder}/{ai_name}.{ext}", "--apply",
            "--quiet", "--catalog", self.catalog, check=EXIT_OK)
        names = sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)
        self.assertEqual(len(names), 2)
        for n in names:
            self.assertRegex(n, r"^test-photos/photo-[0-9a-f]{6}-of-the-test\.jpg$")
        run("undo", "--catalog", self.catalog, "--quiet", check=EXIT_OK)
        # --into without --apply: stdout is the plan alone, one JSON document.
        p = run("posts", self.lib, "--into", os.path.join(self.tmp, "p"), "--json", *common, check=EXIT_OK,
                env=env)
        json.loads(p.stdout)


if __name__ == "__main__":
    unittest.main()
