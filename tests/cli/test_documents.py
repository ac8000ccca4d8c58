"""End-to-end tests of documents as a media kind (issue 17): lumen index/process read text,
Markdown, PDF, office files, RTF and EPUB from their content (not their names), keep their text
and own metadata in the catalog, embed them with the text tower (search finds them), describe
them through the same providers and cache as photos, and organize sorts them with photos. Hostile
documents (encrypted, bombs, broken XML, binaries named .txt) are recorded with a reason in
bounded time.

The inputs are written here: PDFs by a small writer below (real xref tables), ZIP-based office
files with zipfile.
"""
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import zipfile

from PIL import Image

from fault_server import FaultServer
from test_cli import EXIT_OK, EXIT_SOME_FAILED, ROOT, SLOW, db_rows, loads, picture, run, run_loading, states

KEY = "doc-key-1"


def pdf(pages, info=None, image_pages=()):
    """A PDF with one page per text of `pages` (Helvetica, one line per text line); pages whose
    index is in `image_pages` hold a grey image instead of text (a scanned page)."""
    objs = []

    def add(body):
        objs.append(body)
        return len(objs)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    pages_id = len(pages) * 3 + 2 + (1 if info else 0)  # placeholder, fixed below
    page_objs = []
    for i, text in enumerate(pages):
        if i in image_pages:
            w, h = 64, 48
            pixels = bytes([(x * 4 + y) % 256 for y in range(h) for x in range(w) for _ in range(3)])
            img = add(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                      b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (w, h, len(pixels)) + pixels +
                      b"\nendstream")
            content = b"q 612 0 0 792 0 0 cm /Im0 Do Q"
            res = b"<< /XObject << /Im0 %d 0 R >> >>" % img
        else:
            lines = [l.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for l in text.split("\n")]
            ops = b"BT /F1 12 Tf 72 720 Td 14 TL " + b" ".join(b"(%s) '" % l.encode("latin-1") for l in lines) + b" ET"
            content = ops
            res = b"<< /Font << /F1 %d 0 R >> >>" % font
        c = add(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        page_objs.append((c, res))
    pages_id = len(objs) + len(pages) + 1
    for c, res in page_objs:
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources %s >>"
                        % (pages_id, c, res)))
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))) \
        == pages_id
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    info_id = None
    if info:
        info_id = add(b"<< " + b" ".join(b"/%s (%s)" % (k.encode(), v.encode("latin-1")) for k, v in info.items())
                      + b" >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for o in offsets:
        out.write(b"%010d 00000 n \n" % o)
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objs) + 1, catalog)
    if info_id:
        trailer += b" /Info %d 0 R" % info_id
    out.write(b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def docx(paragraphs, title=None, creator=None, created=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                   'wordprocessingml.document.main+xml"/></Types>')
        body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
        z.writestr("word/document.xml",
                   '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/'
                   f'2006/main"><w:body>{body}</w:body></w:document>')
        meta = ""
        if title:
            meta += f"<dc:title>{title}</dc:title>"
        if creator:
            meta += f"<dc:creator>{creator}</dc:creator>"
        if created:
            meta += f'<dcterms:created xsi:type="dcterms:W3CDTF">{created}</dcterms:created>'
        z.writestr("docProps/core.xml",
                   '<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
                   'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
                   'xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
                   f"{meta}</cp:coreProperties>")
    return buf.getvalue()


def odt(paragraphs):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
        body = "".join(f"<text:p>{p}</text:p>" for p in paragraphs)
        z.writestr("content.xml",
                   '<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:'
                   'xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
                   f"<office:text>{body}</office:text></office:body></office:document-content>")
    return buf.getvalue()


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lumen-doc-")
        self.lib = os.path.join(self.tmp, "lib")
        os.makedirs(self.lib)
        self.catalog = os.path.join(self.tmp, "cat", "catalog.db")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def p(self, name):
        return os.path.join(self.lib, name)

    def library(self):
        """One document of each format and a photo."""
        write(self.p("notes.txt"), "Shopping list for the weekend\nmilk, bread, apples\n")
        write(self.p("readme.md"), "# Garden Plans\n\nTomatoes go by the south wall this year.\n")
        write(self.p("report.pdf"), pdf(["Quarterly report\nRevenue grew in the third quarter", "Second page text"],
                                        info={"Title": "Q3 Report", "Author": "Ada Lovelace",
                                              "CreationDate": "D:20240315103000Z"}))
        write(self.p("letter.docx"), docx(["Dear Bob,", "thanks for the bicycle."], title="Thank you letter",
                                          creator="Carol", created="2023-06-01T09:30:00Z"))
        write(self.p("essay.odt"), odt(["An essay about rivers", "Rivers flow to the sea."]))
        write(self.p("story.rtf"), r"{\rtf1\ansi{\info{\title Caf\'e9 Story}}{\fonttbl{\f0 Arial;}}"
                                   r"\f0 Once upon a time in a caf\'e9\par the end.}")
        picture(self.p("photo.jpg"), 320, 240)

    def records(self, *extra):
        out = os.path.join(self.tmp, "records.jsonl")
        run("process", self.lib, "-o", out, "--quiet", "--catalog", self.catalog, *extra, check=None)
        with open(out) as f:
            return {os.path.basename(r["file_path"]): r for r in map(json.loads, f.read().splitlines())}


class Index(Base):
    def test_every_format_is_read_by_content_with_its_metadata_and_reruns_read_nothing(self):
        self.library()
        # A PDF named .dat is still a PDF; a JPEG named .txt is still a photo.
        shutil.copy(self.p("report.pdf"), self.p("scan-renamed.dat"))
        shutil.copy(self.p("photo.jpg"), self.p("photo-as.txt"))
        recs = self.records()
        kinds = {n: (r["kind"], r["format"]) for n, r in recs.items()}
        self.assertEqual(kinds, {
            "notes.txt": ("document", "text"), "readme.md": ("document", "markdown"),
            "report.pdf": ("document", "pdf"), "letter.docx": ("document", "docx"),
            "essay.odt": ("document", "odt"), "story.rtf": ("document", "rtf"),
            "scan-renamed.dat": ("document", "pdf"),
            "photo.jpg": ("photo", "jpeg"), "photo-as.txt": ("photo", "jpeg")})
        d = recs["report.pdf"]["document"]
        self.assertEqual((d["title"], d["author"], d["pages"]), ("Q3 Report", "Ada Lovelace", 2))
        self.assertTrue(d["created"].startswith("2024-03-15T10:30"), d["created"])
        self.assertIn("Revenue grew in the third quarter", d["text"])
        self.assertIn("Second page text", d["text"])
        self.assertFalse(d["needs_render"])
        d = recs["letter.docx"]["document"]
        self.assertEqual((d["title"], d["author"]), ("Thank you letter", "Carol"))
        self.assertTrue(d["created"].startswith("2023-06-01T09:30"), d["created"])
        self.assertRegex(d["text"], r"Dear Bob,\s+thanks for the bicycle\.")
        self.assertEqual(recs["readme.md"]["document"]["title"], "Garden Plans")
        self.assertIn("Rivers flow to the sea.", recs["essay.odt"]["document"]["text"])
        self.assertEqual(recs["story.rtf"]["document"]["title"], "Caf\u00e9 Story")
        self.assertIn("Once upon a time in a caf\u00e9", recs["story.rtf"]["document"]["text"])
        self.assertNotIn("Arial", recs["story.rtf"]["document"]["text"])

        # The catalog keeps the kind and the text; a rerun opens no file.
        rows = dict(db_rows(self.catalog, "SELECT format, kind FROM assets"))
        self.assertEqual(rows["pdf"], "document")
        self.assertEqual(rows["jpeg"], "photo")
        (n,) = db_rows(self.catalog, "SELECT COUNT(*) FROM documents")[0]
        self.assertEqual(n, 6)  # report.pdf and scan-renamed.dat are one content
        p = run("index", self.lib, "--catalog", self.catalog, check=EXIT_OK)
        self.assertRegex(p.stderr.decode(), r"9 unchanged")
        # --no-documents skips them like any other file.
        cat2 = os.path.join(self.tmp, "cat2.db")
        run("index", self.lib, "--catalog", cat2, "--quiet", "--no-documents", check=EXIT_OK)
        self.assertEqual(db_rows(cat2, "SELECT COUNT(*) FROM documents"), [(0,)])
        self.assertEqual(db_rows(cat2, "SELECT COUNT(*) FROM assets"), [(1,)])

    def test_hostile_documents_fail_with_reasons_in_bounded_time(self):
        write(self.p("binary.txt"), bytes(range(256)) * 64)
        # Broken XML in the document part.
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("[Content_Types].xml", "<Types/>")
            z.writestr("word/document.xml", "<w:document xmlns:w='x'><w:body><w:p><w:t>open")
        write(self.p("broken.docx"), buf.getvalue())
        # A zip bomb: one entry of 300 MB of zeros (about 300 KB packed).
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            z.writestr("[Content_Types].xml", "<Types/>")
            with z.open("word/document.xml", "w") as f:
                chunk = b"\0" * (1 << 20)
                for _ in range(300):
                    f.write(chunk)
        write(self.p("bomb.docx"), buf.getvalue())
        # A page tree that claims ten million pages, and one whose kids point at themselves.
        claim = pdf(["one real page"]).replace(b"/Count 1", b"/Count 10000000")
        write(self.p("claims.pdf"), claim)
        loop = pdf(["x"])
        write(self.p("loop.pdf"), loop.replace(b"/Kids [", b"/Kids [%d 0 R " % (loop.count(b" obj") - 1), 1))
        write(self.p("truncated.pdf"), pdf(["cut short"])[:200])
        # One 40 MB line of text: bounded by the text limit, not read into the catalog whole.
        write(self.p("huge.txt"), "word " * (8 << 20))
        # Billion laughs inside an ODT.
        laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                            for i in range(1, 10))
                  + ']><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
                  'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>'
                  '<text:p>&lol9;</text:p></office:text></office:body></office:document-content>')
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
            z.writestr("content.xml", laughs)
        write(self.p("laughs.odt"), buf.getvalue())
        encrypted = shutil.which("qpdf")
        if encrypted:
            plain = write(os.path.join(self.tmp, "plain.pdf"), pdf(["secret text"]))
            subprocess.run(["qpdf", "--encrypt", "user", "owner", "256", "--", plain, self.p("locked.pdf")],
                           check=True)
        write(self.p("fine.txt"), "A fine file among hostile ones.\n")

        t0 = time.monotonic()
        p = run("index", self.lib, "--catalog", self.catalog, "--quiet", check=EXIT_SOME_FAILED)
        self.assertLess(time.monotonic() - t0, 60 * SLOW, "a hostile document held up the run")
        st = {os.path.basename(k.decode()): v for k, v in states(self.catalog).items()}
        self.assertEqual(st["fine.txt"][0], "ok")
        self.assertEqual(st["binary.txt"][0], "failed")
        self.assertIn("not a document", st["binary.txt"][1])
        self.assertEqual(st["broken.docx"][0], "failed")
        self.assertIn("word/document.xml", st["broken.docx"][1])
        self.assertEqual(st["bomb.docx"][0], "failed")
        self.assertIn("MB", st["bomb.docx"][1])
        self.assertEqual(st["truncated.pdf"][0], "failed")
        if encrypted:
            self.assertEqual(st["locked.pdf"][0], "failed")
            self.assertIn("encrypted", st["locked.pdf"][1])
        for name in ("claims.pdf", "loop.pdf", "laughs.odt"):  # bounded: a result or a reason
            self.assertIn(st[name][0], ("ok", "failed"), name)
        self.assertEqual(st["huge.txt"][0], "ok")
        (text, truncated), = db_rows(self.catalog, "SELECT length(text), truncated FROM documents d JOIN locations l "
                                                   "ON l.asset_id=d.asset_id WHERE l.path=?",
                                     self.p("huge.txt").encode())
        self.assertLessEqual(text, 20000)
        self.assertEqual(truncated, 1)
        if st["laughs.odt"][0] == "ok":  # never expanded
            (n,), = db_rows(self.catalog, "SELECT length(text) FROM documents d JOIN locations l ON "
                                          "l.asset_id=d.asset_id WHERE l.path=?", self.p("laughs.odt").encode())
            self.assertLess(n, 10000)


class Describe(Base):
    def server(self, **kw):
        s = FaultServer(api_key=KEY, **kw)
        self.servers.append(s)
        return s

    def describe(self, server, *extra, kind="openai", check=EXIT_OK):
        env = dict(os.environ, LUMEN_TEST_KEY=KEY)
        p = run("describe", self.lib, "--llm", kind, "--llm-model", "test-vlm", "--base-url", server.url,
                "--api-key-env", "LUMEN_TEST_KEY", "--catalog", self.catalog, *extra, check=check, env=env)
        return p, {os.path.basename(r["file_path"]): r for r in map(json.loads, p.stdout.decode().splitlines())}

    def test_documents_are_described_from_their_text_cached_and_organized_with_photos(self):
        self.library()
        write(self.p("scan.pdf"), pdf(["", ""], image_pages=(0, 1)))
        server = self.server()
        p, recs = self.describe(server, "--document-chars", "500")
        self.assertEqual(len(recs), 8)
        self.assertEqual(recs["photo.jpg"].get("kind", "photo"), "photo")
        self.assertIn("test photo", recs["photo.jpg"]["description"])
        for name in ("notes.txt", "readme.md", "report.pdf", "letter.docx", "essay.odt", "story.rtf"):
            r = recs[name]
            self.assertEqual(r["kind"], "document", name)
            self.assertRegex(r["description"], r"^A test document, text starting ", name)
            self.assertEqual(r["keywords"], ["alpha", "beta"])  # the non-string keyword dropped
            self.assertEqual(r["category"], "test")
            self.assertEqual(r["folder_name"], "test-documents")
        self.assertIn("text starting Quarterly report Revenue grew in", recs["report.pdf"]["description"])
        self.assertEqual(recs["report.pdf"]["file_name"], "q3-report")  # from the title the prompt gave
        self.assertEqual(recs["letter.docx"]["file_name"], "thank-you-letter")
        # The scanned PDF went as its first page, rendered.
        self.assertRegex(recs["scan.pdf"]["description"], r"scanned page colour \d+,\d+,\d+")
        self.assertEqual(server.counts, {200: 8})
        # A rerun asks nothing; the document prompt version keys the cache.
        p, recs2 = self.describe(server, "--document-chars", "500")
        self.assertTrue(all(r["cached"] for r in recs2.values()))
        self.assertEqual(server.counts, {200: 8})
        # More text in the prompt is another question: documents are asked again, photos not.
        p, recs3 = self.describe(server, "--document-chars", "2000")
        self.assertEqual(server.counts, {200: 15})

        dest = os.path.join(self.tmp, "sorted")
        run("organize", self.lib, "--into", dest, "--template", "{ai_folder}/{ai_name}", "--apply",
            "--catalog", self.catalog, "--quiet", check=EXIT_OK)
        got = sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)
        self.assertIn("test-documents/q3-report.pdf", got)
        self.assertIn("test-documents/thank-you-letter.docx", got)
        self.assertTrue(any(g.startswith("test-photos/") and g.endswith(".jpg") for g in got), got)
        self.assertEqual(len(got), 8)
        run("undo", "--catalog", self.catalog, "--quiet", check=EXIT_OK)
        self.assertTrue(os.path.exists(self.p("report.pdf")))
        self.assertTrue(os.path.exists(self.p("letter.docx")))


class LocalModel(Base):
    def test_documents_are_described_in_process_from_a_text_model_alone(self):
        models = os.path.join(self.tmp, "vlm")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "llm", "tiny_vlm_gguf.py"), models, "tiny"],
                       check=True)
        write(self.p("memo.txt"), "Remember to water the plants on Friday.\n")
        write(self.p("plan.md"), "# Trip\n\nTrain to Lyon at 9.\n")
        picture(self.p("photo.jpg"), 200, 150)
        # Documents and a photo refused before any pixel: libvips is never loaded (image/vips_module.h).
        p, loaded = run_loading("describe", self.lib, "--llm", "local", "--llm-model",
                                os.path.join(models, "model.gguf"), "--max-new-tokens", "2500", "--catalog",
                                self.catalog, check=EXIT_SOME_FAILED)
        self.assertTrue(loads(loaded, "libllama.so"), loaded)
        self.assertFalse(loads(loaded, "libvips"), loaded)
        recs = {os.path.basename(r["file_path"]): r for r in map(json.loads, p.stdout.decode().splitlines())}
        # Random weights, but the grammar holds: each document gets a valid answer.
        self.assertEqual(set(recs), {"memo.txt", "plan.md"})
        for r in recs.values():
            self.assertEqual(r["kind"], "document")
            self.assertIsInstance(r["keywords"], list)
            self.assertRegex(r["file_name"], r"^[a-z0-9]+(-[a-z0-9]+)*$")
        self.assertIn(b"photo.jpg: describing images in process needs --mmproj", p.stderr)


class Search(Base):
    def test_text_search_finds_documents_by_their_text_embedding(self):
        model = os.path.join(self.tmp, "siglip-tiny")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "ml", "text_reference.py"), model, "siglip",
                        "4"], check=True)
        write(self.p("a.txt"), "lighthouse keeper logbook")
        write(self.p("b.txt"), "recipe for plum jam")
        write(self.p("c.md"), "# Tax return\n\nforms and receipts")
        for i in range(3):
            picture(self.p(f"p{i}.jpg"), 200, 150, seed=i)
        run("index", self.lib, "--catalog", self.catalog, "--model", model, "--quiet", check=EXIT_OK)
        (n,), = db_rows(self.catalog, "SELECT COUNT(*) FROM embeddings e JOIN assets a ON a.id=e.asset_id "
                                      "WHERE a.kind='document'")
        self.assertEqual(n, 3)
        # A document embedded from one short chunk is its own best match for that text.
        for query, name in (("lighthouse keeper logbook", "a.txt"), ("recipe for plum jam", "b.txt")):
            p, loaded = run_loading("search", query, "--catalog", self.catalog, "--model", model, "-k", "6",
                                    "--json", check=EXIT_OK)
            self.assertFalse(loads(loaded, "libvips"), loaded)  # a text query reads no image
            hits = json.loads(p.stdout)
            self.assertEqual(os.path.basename(hits[0]["path"]), name, hits)
            self.assertGreater(hits[0]["cosine"], 0.99)
        # A rerun is complete for documents too (embedding included): nothing is read.
        p = run("index", self.lib, "--catalog", self.catalog, "--model", model, check=EXIT_OK)
        self.assertRegex(p.stderr.decode(), r"6 unchanged")


if __name__ == "__main__":
    unittest.main()
