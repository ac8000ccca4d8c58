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
status; `fail_until` answers 503 to everything until that many seconds after start.
"""
import base64
import hashlib
import io
import json
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


class FaultServer:
    def __init__(self, latency=0.0, p429=0.0, retry_after=0.2, p500=0.0, p503=0.0, p_slow=0.0, slow_s=3.0,
                 p_reset=0.0, p_truncate=0.0, p_invalid=0.0, p_badanswer=0.0, status_always=None,
                 fail_until=0.0, api_key="test-key-123", seed=7):
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
        if self.api_key in path:
            self.seen_keys_in_urls = True
        j = json.loads(body)
        if path == "/v1/chat/completions":
            if h.headers.get("Authorization") != f"Bearer {self.api_key}":
                raise PermissionError("bad key")
            content = j["messages"][0]["content"]
            url = [c for c in content if c["type"] == "image_url"][0]["image_url"]["url"]
            assert j["response_format"]["type"] == "json_schema"
            h.schema = j["response_format"]["json_schema"]["schema"]
            return "openai", url.split(",", 1)[1]
        if path == "/api/chat":
            assert j["stream"] is False and "format" in j
            return "ollama", j["messages"][0]["images"][0]
        if path == "/v1/messages":
            if h.headers.get("x-api-key") != self.api_key:
                raise PermissionError("bad key")
            if h.headers.get("anthropic-version") != "2023-06-01":
                raise ValueError("anthropic-version header missing")
            img = [c for c in j["messages"][0]["content"] if c["type"] == "image"][0]
            return "anthropic", img["source"]["data"]
        if path.startswith("/v1beta/models/") and path.endswith(":generateContent"):
            if h.headers.get("x-goog-api-key") != self.api_key:
                raise PermissionError("bad key")
            parts = j["contents"][0]["parts"]
            assert j["generationConfig"]["responseMimeType"] == "application/json"
            return "gemini", [p for p in parts if "inline_data" in p][0]["inline_data"]["data"]
        raise ValueError(f"unknown path {path}")

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
        return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}],
                           "usage": {"total_tokens": tokens}})

    def handle(self, h):
        now = time.monotonic()
        with self.lock:
            self.arrivals.append(now)
            r = self.rnd.random()
        n = int(h.headers.get("Content-Length", "0"))
        body = h.rfile.read(n)
        c = self.cfg
        if c["status_always"]:
            self.count(c["status_always"])
            return self.reply(h, c["status_always"], json.dumps({"error": {"message": "refused"}}))
        if now - self.started < c["fail_until"]:
            self.count(503)
            return self.reply(h, 503, '{"error":"down"}')
        try:
            kind, image = self.parse(h, body)
        except PermissionError:
            self.count(401)
            return self.reply(h, 401, '{"error":{"message":"invalid api key"}}')
        except (ValueError, KeyError, IndexError, AssertionError, json.JSONDecodeError) as e:
            self.count(400)
            return self.reply(h, 400, json.dumps({"error": str(e)}))
        if c["latency"]:
            time.sleep(c["latency"])
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
        if fault in (500, 503):
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
        d = digest_of(image)
        schema = getattr(h, "schema", None) or {}
        props = schema.get("properties", {})
        if fault == "badanswer":
            return self.reply(h, 200, self.answer(kind, "Sure! Here is a description of the photo."))
        answer = {"description": f"A test photo with digest {d} and colour {colour_of(image)}.",
                  "ocr_text": f"{len(image)} base64 bytes",
                  "file_name": f"Photo {d[:6]} Of The Test Set Extra Words",
                  "folder_name": props.get("folder_name", {}).get("enum", ["Test Photos Folder"])[-1]}
        if "social" in props:
            answer["social"] = {"technical": 7.4, "appeal": 12, "engagement": 3, "category": "Test",
                                "mood": "calm", "caption": "A test.", "hashtags": ["Test Photo", "lumen"]}
        text = json.dumps(answer)
        return self.reply(h, 200, self.answer(kind, "```json\n" + text + "\n```" if kind == "ollama" else text))
