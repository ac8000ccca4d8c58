#!/usr/bin/env bash
# lumen serve at scale (issue 19), on synthetic catalogs of 100,000 and 1,000,000 assets made
# from a real one (bench/serve_synth.py: real thumbnails, random embeddings of a full-size
# random-weight SigLIP B/16, whose text tower encodes the queries):
#   - the timeline bucket list and a bucket's contents at 1M (latency over keep-alive),
#   - thumbnails per second with wrk (Debian's), against the same server's in-memory app.css in
#     the same run (the HTTP stack's ceiling on this machine),
#   - text search top-100 at 100K: 100 different queries, p50/p95, with the ANN index,
#   - in headless Chromium: the first thumbnail after navigation and scroll frame times (100K),
#     the bottom of the 1M timeline, and the server's RSS with the app open on 1M.
#
#   bench/serve_bench.sh [wrk_seconds=10]
#
# Needs build/src/cli/lumen (scripts/build.sh release), wrk, chromium, node and npm (for
# playwright-core, fetched once into the cache). Work folder: $LUMEN_CACHE/serve-bench (the
# catalogs take ~1.5 GB and ~15 minutes to make the first time).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-10}"
cache="${LUMEN_CACHE:-$HOME/.cache/lumen-build}"
work="$cache/serve-bench"
lumen="$repo/build/src/cli/lumen"
py=/usr/bin/python3
mkdir -p "$work"
cd "$repo/tests/cli"
pw="$($py -c 'import test_serve_browser as t; print(t.playwright_core())')"
cd "$repo"

model="$work/siglip-b16"
if [ ! -f "$model/model.safetensors" ]; then
  echo "[serve-bench] making a random-weight SigLIP B/16 with its text tower" >&2
  $py tests/ml/text_reference.py "$model.tmp" siglip 1 base >/dev/null
  rm -rf "$model" && mv "$model.tmp" "$model"
fi
if [ ! -f "$work/seed.db" ]; then
  scripts/fetch-photos.sh test "$work/photos" >/dev/null
  "$lumen" index "$work/photos" --catalog "$work/seed.db" --model "$model" --quiet
fi
[ -f "$work/100k.db" ] || $py bench/serve_synth.py "$work/seed.db" "$work/100k.db" 100000
[ -f "$work/1m.db" ] || $py bench/serve_synth.py "$work/seed.db" "$work/1m.db" 1000000 30000 0
$py bench/serve_synth.py --places "$work/1m.db"  # catalogs made before the map had no positions
# The ANN index of the 100K catalog's embeddings (what lumen search builds once and keeps).
[ -n "$(ls "$work"/ann/*.hnsw 2>/dev/null)" ] ||
  "$lumen" search "warm up" --catalog "$work/100k.db" --model "$model" -k 1 >/dev/null

token=0123456789abcdef0123456789abcdef
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT  # no server outlives the script
start() {  # catalog port -> pid
  LUMEN_TOKEN=$token "$lumen" serve --catalog "$1" --model "$model" --listen "127.0.0.1:$2" >"$work/serve-$2.log" 2>&1 &
  echo $!
  for _ in $(seq 600); do
    curl -sf -o /dev/null -H "X-Lumen-Token: $token" "http://127.0.0.1:$2/api/v1/info" && return
    sleep 0.2
  done
}
rss() { awk '/VmRSS/ {print $2 / 1024 " MB"}' "/proc/$1/status"; }

echo "== 1M assets"
pid=$(start "$work/1m.db" 8761)
echo "RSS after start: $(rss "$pid")"
$py - "$token" 8761 <<'EOF'
import http.client, json, sys, time
token, port = sys.argv[1], int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
def get(path):
    t = time.perf_counter()
    c.request("GET", path, headers={"X-Lumen-Token": token})
    body = c.getresponse().read()
    return (time.perf_counter() - t) * 1000, body
def series(path, n=50):
    ms = sorted(get(path)[0] for _ in range(n))
    return f"p50 {ms[n // 2]:.2f} ms, p95 {ms[int(n * 0.95)]:.2f} ms"
t = json.loads(get("/api/v1/timeline")[1])
print(f"timeline: {t['total']} assets in {len(t['months'])} months ({len(json.dumps(t)) // 1024} KB)")
print("bucket list /api/v1/timeline:", series("/api/v1/timeline"))
d = json.loads(get("/api/v1/timeline?group=day")[1])
print(f"by day: {len(d['days'])} days ({len(json.dumps(d)) // 1024} KB):", series("/api/v1/timeline?group=day"))
mid = t["offsets"][len(t["offsets"]) // 2]
print("a month's contents (500 ids):", series(f"/api/v1/timeline/assets?offset={mid}&count=500"))
print("the last page:", series(f"/api/v1/timeline/assets?offset={t['total'] - 500}&count=500"))
m = json.loads(get("/api/v1/map?cols=27&rows=16")[1])
print(f"map: {m['all']} positions, {len(m['count'])} clusters for the world:", series("/api/v1/map?cols=27&rows=16"))
print("map, a 4x2 degree box:", series("/api/v1/map?west=10&south=40&east=14&north=42&cols=27&rows=16"))
print("map, the photos of a 1x1 degree box:", series("/api/v1/map/assets?west=10&south=40&east=11&north=41"))
EOF
node bench/serve_browser_bench.js "$pw" "http://127.0.0.1:8761/?token=$token" 20000 1
echo "wheel past the height cap (virtual px after 100 px steps): $(node bench/serve_wheel_check.js "$pw" "http://127.0.0.1:8761/?token=$token")"
echo "RSS with the app open (after scrolling all of it): $(rss "$pid")"
kill "$pid"; wait "$pid" 2>/dev/null || true

echo "== 100K assets"
pid=$(start "$work/100k.db" 8762)
sleep 2  # the ANN index loads in the background
echo "RSS after start: $(rss "$pid")"
cat >"$work/thumbs.lua" <<EOF
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/assets/" .. (20 + (n * 7919) % 99000) .. "/thumbnail", {["X-Lumen-Token"] = "$token"})
end
EOF
echo "wrk thumbnails (100,000 different ids, 2 threads, 64 connections, ${secs} s):"
wrk -t2 -c64 -d"${secs}s" -s "$work/thumbs.lua" http://127.0.0.1:8762/ | grep -E "Requests/sec|Latency|Transfer"
cat >"$work/hot.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/assets/" .. (20 + (n * 7919) % 2000) .. "/thumbnail", {["X-Lumen-Token"] = "$token"})
end
LUA
echo "wrk thumbnails, a working set of 2,000 (a few screens of the grid, back and forth):"
wrk -t2 -c64 -d"${secs}s" -s "$work/hot.lua" http://127.0.0.1:8762/ | grep -E "Requests/sec|Latency|Transfer"
echo "wrk app.css (in memory: the HTTP stack's ceiling here):"
wrk -t2 -c64 -d"${secs}s" http://127.0.0.1:8762/app.css | grep -E "Requests/sec|Latency"
cat >"$work/search.py" <<'EOF'
import http.client, json, sys, time
token, port = sys.argv[1], int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
words = ("dog cat beach mountain lake city night snow car bicycle forest river portrait party food "
         "sunset bridge train flower garden boat church market child street desert castle").split()
ms = []
for i in range(100):
    q = f"a photo of a {words[i % len(words)]} {words[(i * 7) % len(words)]} {i}"
    t = time.perf_counter()
    c.request("POST", "/api/v1/search", json.dumps({"q": q, "limit": 100}),
              {"X-Lumen-Token": token, "Content-Type": "application/json"})
    r = json.loads(c.getresponse().read())
    ms.append((time.perf_counter() - t) * 1000)
    assert len(r["ids"]) == 100, r
first = ms[0]
ms = sorted(ms[1:])  # the first query also loads the text tower
print(f"text search top-100, 99 queries after the first ({first:.0f} ms, loads the text tower): "
      f"p50 {ms[49]:.1f} ms, p95 {ms[94]:.1f} ms, max {ms[-1]:.1f} ms")
# The same ranking without the text tower: similar-image search from 100 assets' embeddings.
ms = []
for i in range(100):
    t = time.perf_counter()
    c.request("GET", f"/api/v1/search?similar={20 + i * 997}&limit=100", headers={"X-Lumen-Token": token})
    r = json.loads(c.getresponse().read())
    ms.append((time.perf_counter() - t) * 1000)
    assert len(r["ids"]) == 100, r
ms.sort()
print(f"similar top-100 (ranking only), 100 queries: p50 {ms[50]:.1f} ms, p95 {ms[95]:.1f} ms")
EOF
$py "$work/search.py" "$token" 8762
node bench/serve_browser_bench.js "$pw" "http://127.0.0.1:8762/?token=$token" 300
node bench/serve_browser_bench.js "$pw" "http://127.0.0.1:8762/?token=$token" 1500
echo "RSS with the app open: $(rss "$pid")"
kill "$pid"; wait "$pid" 2>/dev/null || true

echo "== 100K assets, the text tower in int8 (serve --weights int8)"
LUMEN_TOKEN=$token "$lumen" serve --catalog "$work/100k.db" --model "$model" --weights int8 \
  --listen 127.0.0.1:8764 >"$work/serve-8764.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  curl -sf -o /dev/null -H "X-Lumen-Token: $token" "http://127.0.0.1:8764/api/v1/info" && break
  sleep 0.2
done
$py "$work/search.py" "$token" 8764 | sed -n 1p
kill "$pid"; wait "$pid" 2>/dev/null || true
