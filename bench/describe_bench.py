"""Remote-provider throughput: `lumen describe` against the loopback fault server with 200 ms of
injected latency and 5% injected 429s (Retry-After 1 s), limits 3000 rpm / 50 concurrent.
Reports the request rate the server saw over the steady part of the run against the allowed
50/s, successes, lost results, and lumen's own CPU per request.

    /usr/bin/python3 bench/describe_bench.py [N=1500]    (needs build/)
"""
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "cli"))
from fault_server import FaultServer  # noqa: E402
from PIL import Image  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
lumen = os.path.join(ROOT, "build", "src", "cli", "lumen")
with tempfile.TemporaryDirectory() as tmp:
    lib = os.path.join(tmp, "lib")
    os.makedirs(lib)
    for i in range(n):
        Image.new("RGB", (64, 48), (i % 256, (i // 256) % 256, (i * 7) % 256)).save(os.path.join(lib, f"p{i:05d}.png"))
    cat = os.path.join(tmp, "cat.db")
    subprocess.run([lumen, "index", lib, "--catalog", cat, "--quiet", "--no-embedding"], check=True)
    server = FaultServer(latency=0.2, p429=0.05, retry_after=1.0, api_key="k")
    env = dict(os.environ, BENCH_KEY="k")
    t0 = time.monotonic()
    p = subprocess.run([lumen, "describe", lib, "--llm", "openai", "--llm-model", "m", "--base-url", server.url,
                        "--api-key-env", "BENCH_KEY", "--catalog", cat, "--rpm", "3000", "--concurrency", "50",
                        "--image-edge", "64", "-o", os.path.join(tmp, "out.jsonl")],
                       capture_output=True, env=env)
    wall = time.monotonic() - t0
    server.stop()
    out = open(os.path.join(tmp, "out.jsonl")).read().splitlines()
    arr = sorted(server.arrivals)
    # Steady state: drop the first and last 5% of the run.
    lo, hi = arr[len(arr) // 20], arr[-len(arr) // 20]
    steady = sum(1 for a in arr if lo <= a <= hi) / (hi - lo)
    summary = p.stderr.decode().strip().splitlines()[-1]
    cpu = re.search(r"([\d.]+) ms CPU per request", summary).group(1)
    print(f"| {n} images | {len(arr)} requests ({server.counts.get(429, 0)} got 429) | "
          f"{steady:.1f} req/s steady = {100 * steady / 50:.1f}% of 50/s | "
          f"{len(out)} results, {n - len(out)} lost | {cpu} ms CPU/request | {wall:.1f} s |")
    print(summary, file=sys.stderr)
