"""A loopback model API server for lumen's enrichment tests and benchmarks, with injected faults.

It speaks the four request shapes lumen sends (OpenAI-compatible chat completions, Ollama's
/api/chat, Anthropic Messages, Gemini generateContent), checks each request's shape and headers
(400 when wrong), and answers with a JSON description that names a digest of the image it was
sent, so a test can tell that every result belongs to its own image.

    server = FaultServer(latency=0.2, p429=0.05, retry_after=0.5, ...)   # starts on 127.0.0.1
    server.url, server.arrivals (monotonic seconds), server.counts, server.stop()

Faults (probabilities per request): p429 (with Retry-After), p500, p503, p_slow (sleeps
`slow_s`, past the client's timeout), p_reset (closes the connection without an answer),
p_truncate (promises more body than it sends), p_invalid (200 with a body that is not JSON),
p_badanswer (200, the model's text is not JSON). `status_always` answers every request with that
status; `fail_until` answers 503 to everything until that many seconds after start. Paths must be
exact (an unknown one, e.g. /v1/v1/chat/completions, is answered 404 like a real server).

Hostile modes (`mode=`), for the adversarial tests (test_adv_llm.py):
- bad_batch: a request with several photos is answered for its first photo only.
  echo_key      401 whose error body echoes the key it was sent ("Incorrect API key: ...")
  key_answer    200, and the model's description contains the key
  endless       200 with an event stream that never ends
  huge          200 with a `huge_bytes` JSON body (Content-Length given) or, with chunked=True,
                sent without a length
  long_fields   200, the answer's fields are long non-ASCII text (names of 200 'é' words)
  shapes        200 with the hostile reply bodies of HOSTILE_BODIES, one per request in turn
  reject_colour 400 "image too large" for the image whose mean colour is `reject_colour` (r, g, b)
Answers may be given as an event stream (`sse=True`) with `usage_str` (usage as a string).
`retry_after` may be any string ("99999", "inf").
"""
import base64
import hashlib
import io
import json
import re
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def digest_of(b64):
    return hashlib.sha256(base64.b64decode(b64)).hexdigest()[:16]


def colour_of(b64):
    """The mean colour of the image sent, as "r,g,b" (tests give each photo its own colour)."""
    from PIL import Image, ImageStat
    im = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
    return ",".join(str(round(v)) for v in ImageStat.Stat(im).mean)


# Reply bodies of hostile shapes (all HTTP 200): each must become a failed (or skipped) chunk, never
# a crash.
HOSTILE_BODIES = [
    '{"choices":[1]}',
    '{"choices":"x","usage":{"total_tokens":"many"}}',
    '{"choices":[{"message":1}]}',
    '{"choices":[{"message":{"content":{"a":1}}}],"usage":"lots"}',
    '[1,2,3]',
    'data: {"choices":[1]}\n\ndata: {"choices":[{"delta":1}]}\n\ndata: {"usage":"lots"}\n\n'
    'data: {"choices":[{"delta":{"content":[1]}}],"usage":{"total_tokens":"x"}}\n\ndata: [DONE]\n\n',
    'data: {"choices":[{"delta":{"content":"{\\"a\\":"}}]}\n\n',  # cut: no [DONE]
    '{"choices":[{"message":{"content":"{\\"description\\": 5, \\"file_name\\": [1], '
    '\\"folder_name\\": {\\"x\\": 1}}"}}],"usage":{"total_tokens":1e300}}',
]


class FaultServer:
    def __init__(self, latency=0.0, p429=0.0, retry_after=0.2, p500=0.0, p503=0.0, p_slow=0.0, slow_s=3.0,
                 p_reset=0.0, p_truncate=0.0, p_invalid=0.0, p_badanswer=0.0, status_always=None,
                 fail_until=0.0, api_key="test-key-123", seed=7, mode=None, huge_bytes=50 << 20, chunked=False,
                 sse=False, usage_str=False, reject_colour=None, echo_pad=0):
        self.mode, self.huge_bytes, self.chunked = mode, huge_bytes, chunked
        self.echo_pad = echo_pad  # echo_key: filler before the key, to place it at a cut
        self.sse, self.usage_str, self.reject_colour = sse, usage_str, reject_colour
        self.paths = []
        self.images_per_request = []  # images in each multi-photo request
        self.sent_bytes = 0
        self.cfg = dict(latency=latency, p429=p429, retry_after=retry_after, p500=p500, p503=p503, p_slow=p_slow,
                        slow_s=slow_s, p_reset=p_reset, p_truncate=p_truncate, p_invalid=p_invalid,
                        p_badanswer=p_badanswer, status_always=status_always, fail_until=fail_until)
        self.api_key = api_key
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()
        self.arrivals = []
        self.counts = {}
        self.seen_keys_in_urls = False
        self.started = time.monotonic()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                server.handle(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # clients that gave up (timeouts) are part of the test

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def reply(self, h, status, body, headers=()):
        data = body.encode() if isinstance(body, str) else body
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def parse(self, h, body):
        """(kind, image base64) from a request, or raises ValueError naming what is wrong."""
        path = h.path
        with self.lock:
            self.paths.append(path)
        if self.api_key in path:
            self.seen_keys_in_urls = True
        j = json.loads(body)
        if path == "/v1/chat/completions":
            if h.headers.get("Authorization") != f"Bearer {self.api_key}":
                raise PermissionError("bad key")
            content = j["messages"][0]["content"]
            h.prompt_text = "".join(c.get("text", "") for c in content if c["type"] == "text")
            urls = [c["image_url"]["url"] for c in content if c["type"] == "image_url"]
            assert j["response_format"]["type"] == "json_schema"
            h.schema = j["response_format"]["json_schema"]["schema"]
            if not urls and "keywords" in h.schema.get("properties", {}):
                return "openai", None  # a document's text, no image
            h.images = [u.split(",", 1)[1] for u in urls]
            return "openai", h.images[0]
        if path == "/api/chat":
            assert j["stream"] is False and "format" in j
            h.prompt_text = j["messages"][0]["content"]
            h.schema = j["format"]
            if "images" not in j["messages"][0] and "keywords" in h.schema.get("properties", {}):
                return "ollama", None
            h.images = j["messages"][0]["images"]
            return "ollama", h.images[0]
        if path == "/v1/messages":
            if h.headers.get("x-api-key") != self.api_key:
                raise PermissionError("bad key")
            if h.headers.get("anthropic-version") != "2023-06-01":
                raise ValueError("anthropic-version header missing")
            h.images = [c["source"]["data"] for c in j["messages"][0]["content"] if c["type"] == "image"]
            text = "".join(c.get("text", "") for c in j["messages"][0]["content"] if c["type"] == "text")
            h.prompt_text = text
            marker = "matching this JSON schema: "
            h.schema = json.loads(text.split(marker, 1)[1]) if marker in text else {}
            return "anthropic", (h.images[0] if h.images else None)
        if path.startswith("/v1beta/models/") and path.endswith(":generateContent"):
            if h.headers.get("x-goog-api-key") != self.api_key:
                raise PermissionError("bad key")
            parts = j["contents"][0]["parts"]
            assert j["generationConfig"]["responseMimeType"] == "application/json"
            h.images = [p["inline_data"]["data"] for p in parts if "inline_data" in p]
            h.prompt_text = "".join(p.get("text", "") for p in parts)
            h.schema = j["generationConfig"].get("responseSchema", {})
            return "gemini", (h.images[0] if h.images else None)
        raise LookupError(f"unknown path {path}")

    def answer(self, kind, text, tokens=57):
        if kind == "ollama":
            return json.dumps({"message": {"role": "assistant", "content": text}, "done": True,
                               "prompt_eval_count": tokens - 7, "eval_count": 7})
        if kind == "anthropic":
            return json.dumps({"content": [{"type": "text", "text": text}],
                               "usage": {"input_tokens": tokens - 7, "output_tokens": 7}})
        if kind == "gemini":
            return json.dumps({"candidates": [{"content": {"parts": [{"text": text}]}}],
                               "usageMetadata": {"totalTokenCount": tokens}})
        usage = "lots" if self.usage_str else {"total_tokens": tokens}
        if self.sse:
            half = len(text) // 2
            chunks = [{"choices": [{"delta": {"content": part}}]} for part in (text[:half], text[half:])]
            chunks.append({"choices": [], "usage": usage})
            return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}], "usage": usage})

    def send_chunks(self, h, chunks):
        """A chunked 200 body from an iterator of bytes; stops when the client goes away."""
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.close_connection = True
        try:
            for c in chunks:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                with self.lock:
                    self.sent_bytes += len(c)
            h.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    def handle(self, h):
        now = time.monotonic()
        with self.lock:
            self.arrivals.append(now)
            r = self.rnd.random()
        n = int(h.headers.get("Content-Length", "0"))
        body = h.rfile.read(n)
        c = self.cfg
        if self.mode == "echo_key":
            self.count(401)
            sent = h.headers.get("Authorization") or h.headers.get("x-api-key") or h.headers.get("x-goog-api-key")
            return self.reply(h, 401, json.dumps({"error": {"message": "x" * self.echo_pad +
                                                                       f"Incorrect API key provided: {sent}. "
                                                                       f"Header was: Authorization: {sent}"}}))
        if c["status_always"]:
            self.count(c["status_always"])
            return self.reply(h, c["status_always"],
                              json.dumps({"error": {"message": f"refused by the fault server ({c['status_always']})"}}))
        if now - self.started < c["fail_until"]:
            self.count(503)
            return self.reply(h, 503, '{"error":"down"}')
        try:
            kind, image = self.parse(h, body)
        except PermissionError:
            self.count(401)
            return self.reply(h, 401, '{"error":{"message":"invalid api key"}}')
        except LookupError as e:
            self.count(404)
            return self.reply(h, 404, json.dumps({"error": {"message": str(e)}}))
        except (ValueError, KeyError, IndexError, AssertionError, json.JSONDecodeError) as e:
            self.count(400)
            return self.reply(h, 400, json.dumps({"error": str(e)}))
        if c["latency"]:
            time.sleep(c["latency"])
        if self.mode == "reject_colour" and all(
                abs(int(a) - b) <= 3 for a, b in zip(colour_of(image).split(","), self.reject_colour)):
            self.count(400)
            return self.reply(h, 400, '{"error":{"message":"image too large"}}')
        if self.mode == "endless":
            self.count("endless")
            chunk = ('data: {"choices":[{"delta":{"content":"' + "x" * 4000 + '"}}]}\n\n').encode()
            return self.send_chunks(h, iter(lambda: chunk, None))
        if self.mode == "huge":
            self.count("huge")
            body = self.answer(kind, json.dumps({"description": "x" * self.huge_bytes, "ocr_text": "",
                                                 "file_name": "a", "folder_name": "b"})).encode()
            if self.chunked:
                return self.send_chunks(h, (body[i:i + (1 << 16)] for i in range(0, len(body), 1 << 16)))
            with self.lock:
                self.sent_bytes += len(body)
            try:
                return self.reply(h, 200, body)
            except (BrokenPipeError, ConnectionResetError, OSError):
                return
        if self.mode == "shapes":
            with self.lock:
                i = self.counts.get("shape", 0)
            self.count("shape")
            return self.reply(h, 200, HOSTILE_BODIES[i % len(HOSTILE_BODIES)])
        edges = [("p429", 429), ("p500", 500), ("p503", 503), ("p_slow", "slow"), ("p_reset", "reset"),
                 ("p_truncate", "truncate"), ("p_invalid", "invalid"), ("p_badanswer", "badanswer")]
        acc = 0.0
        fault = None
        for key, what in edges:
            acc += c[key]
            if r < acc:
                fault = what
                break
        self.count(fault or 200)
        if fault == 429:
            return self.reply(h, 429, '{"error":"slow down"}', [("Retry-After", str(c["retry_after"]))])
        if fault == 503:  # unavailable, "come back later" as servers say it
            return self.reply(h, 503, '{"error":"oops"}', [("Retry-After", str(c["retry_after"]))])
        if fault == 500:
            return self.reply(h, fault, '{"error":"oops"}')
        if fault == "slow":
            time.sleep(c["slow_s"])
        if fault == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            h.connection.close()
            h.close_connection = True
            return
        if fault == "truncate":
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", "5000")
            h.end_headers()
            h.wfile.write(b'{"choices": [')
            h.wfile.flush()
            h.close_connection = True
            h.connection.close()
            return
        if fault == "invalid":
            return self.reply(h, 200, "<html>bad gateway</html>")
        schema = getattr(h, "schema", None) or {}
        props = schema.get("properties", {})
        if "keywords" in props:  # a document: its text, or (scanned) its first page as an image
            text = getattr(h, "prompt_text", "")
            body = text.split("\nText:\n", 1)[1] if "\nText:\n" in text else ""
            first = " ".join(body.split()[:6])
            title = re.search(r"\nTitle: ([^\n]*)", text)
            what = f"scanned page colour {colour_of(image)}" if image else f"text starting {first}"
            answer = {"description": f"A test document, {what}.",
                      "file_name": (title.group(1) if title else first) or "untitled",
                      "folder_name": props.get("folder_name", {}).get("enum", ["Test Documents"])[-1],
                      "category": "test", "keywords": ["alpha", "beta", 7],
                      "prompt_chars": len(body)}
            return self.reply(h, 200, self.answer(kind, json.dumps(answer)))
        if "caption" in props and "hashtags" in props:  # lumen posts: one caption for a post's photos
            with self.lock:
                self.images_per_request.append(len(h.images))
            answer = {"caption": f"Test post of {len(h.images)} photos",
                      "hashtags": ["Summer Fun", "lumen", 3, "#already"]}
            return self.reply(h, 200, self.answer(kind, json.dumps(answer)))
        if "photos" in props:  # several photos in one request: answered in reverse order, by index
            with self.lock:
                self.images_per_request.append(len(h.images))
            items = [{"index": i + 1, "description": f"A test photo with digest {digest_of(img)} and colour "
                      f"{colour_of(img)}.", "ocr_text": "", "file_name": f"Photo {digest_of(img)[:6]}",
                      "folder_name": "Test Photos Folder"} for i, img in enumerate(h.images)]
            if self.mode == "bad_batch":  # an answer for the first photo only: the batch is invalid
                items = items[:1]
            return self.reply(h, 200, self.answer(kind, json.dumps({"photos": items[::-1]})))
        d = digest_of(image)
        if fault == "badanswer":
            return self.reply(h, 200, self.answer(kind, "Sure! Here is a description of the photo."))
        if self.mode == "long_fields":
            word = "a" + "\u00e9" * 200  # odd lengths: a byte cut lands inside a character
            answer = {"description": f"Colour {colour_of(image)}. " + " ".join([word] * 50),
                      "ocr_text": "\u65e5\u672c" * 3000, "file_name": " ".join([word] * 6),
                      "folder_name": "x" + "\U0001F600" * 100}
            return self.reply(h, 200, self.answer(kind, json.dumps(answer, ensure_ascii=False)))
        if self.mode == "key_answer":
            answer = {"description": f"Colour {colour_of(image)}. The key is {self.api_key} indeed.",
                      "ocr_text": self.api_key, "file_name": "key", "folder_name": "keys"}
            return self.reply(h, 200, self.answer(kind, json.dumps(answer)))
        answer = {"description": f"A test photo with digest {d} and colour {colour_of(image)}.",
                  "ocr_text": f"{len(image)} base64 bytes",
                  "file_name": f"Photo {d[:6]} Of The Test Set Extra Words",
                  "folder_name": props.get("folder_name", {}).get("enum", ["Test Photos Folder"])[-1]}
        if "social" in props:
            answer["social"] = {"technical": 7.4, "appeal": 12, "engagement": 3, "category": "Test",
                                "mood": "calm", "caption": "A test.", "hashtags": ["Test Photo", "lumen"]}
        text = json.dumps(answer)
        return self.reply(h, 200, self.answer(kind, "```json\n" + text + "\n```" if kind == "ollama" else text))
