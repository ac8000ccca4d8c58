#!/usr/bin/env bash
# lumen convert on videos against the ffmpeg CLI with the same filters and encoder settings, on
# the same file, A B A B (issue 20). The filter graphs are taken from lumen's own JSON log
# (video_filters / audio_filters of its video_done event), so both run the same work through the
# same libraries; the ratio says what lumen's process adds or saves. Also reports peak RSS
# (GNU time) and the realtime factor of the vhs preset on a 480i "tape".
#
#   bench/video_convert_bench.sh [seconds=20] [pairs=2] [parts=vhs,web,job]
#   bench/video_convert_bench.sh 600 1 compare    # lumen compare of 3 presets on a 10-min tape
#
# Sources (made in $LUMEN_CACHE/video-bench): a 480i tape from opencv-doc's Megamind.avi
# (scripts/fetch-photos.sh videos), looped to `seconds`, noise added, fields woven top first,
# MPEG-2 + PCM like a DVD recorder's capture; and a 1080p30 H.264 + AAC clip of the same length.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-20}"
pairs="${2:-2}"
parts="${3:-vhs,web,job}"
want() { [[ ",$parts," == *",$1,"* ]]; }
lumen="${LUMEN_BIN:-$repo/build/src/cli/lumen}"
cache="${LUMEN_CACHE:-$HOME/.cache/lumen-build}/video-bench"
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ff=(ffmpeg -nostdin -hide_banner -loglevel error -y)

real="$cache/real"
[ -f "$real/Megamind.avi" ] || "$repo/scripts/fetch-photos.sh" videos "$real" >/dev/null
tape="$cache/tape-$seconds.mkv"
if [ ! -f "$tape" ]; then
  "${ff[@]}" -stream_loop -1 -i "$real/Megamind.avi" -t "$seconds" \
    -vf "scale=720:480,fps=60000/1001,noise=alls=12:allf=t,tinterlace=interleave_top,setdar=4/3,setfield=tff" \
    -c:v mpeg2video -b:v 6M -flags +ilme+ildct -top 1 -c:a pcm_s16le -ar 48000 -ac 2 "$tape.tmp.mkv"
  mv "$tape.tmp.mkv" "$tape"
fi
hd="$cache/hd-$seconds.mp4"
if want web && [ ! -f "$hd" ]; then
  "${ff[@]}" -stream_loop -1 -i "$real/Megamind.avi" -t "$seconds" -vf "scale=1920:1080,setsar=1,fps=30" \
    -c:v libx264 -preset veryfast -crf 20 -c:a aac -b:a 192k "$hd.tmp.mp4"
  mv "$hd.tmp.mp4" "$hd"
fi

now() { date +%s.%N; }
# peak RSS in MB of a command (GNU time's %M is KB)
rss_of() { awk '/Maximum resident set size/ {printf "%.0f", $6 / 1024}' "$1"; }

# run_pair NAME SRC PRESET FFMPEG_ARGS...: lumen then ffmpeg, `pairs` times.
bench() {
  local name="$1" src="$2" preset="$3"
  shift 3
  local ext=mp4
  local lt=() ft=() lr fr
  for i in $(seq 1 "$pairs"); do
    rm -rf "$work/l" "$work/f"
    mkdir -p "$work/f"
    local t0 t1
    t0=$(now)
    /usr/bin/time -v -o "$work/l.time" "$lumen" convert "$src" -o "$work/l" --preset "$preset" \
      --no-cache --json-logs 2>"$work/l.log"
    t1=$(now)
    lt+=("$(echo "$t1 - $t0" | bc -l)")
    lr=$(rss_of "$work/l.time")
    local vf af
    { read -r vf; read -r af; } < <(/usr/bin/python3 -c 'import json,sys
for l in open(sys.argv[1]):
    try: r = json.loads(l)
    except ValueError: continue
    if r.get("event") == "video_done": print(r["video_filters"]); print(r["audio_filters"])' "$work/l.log")
    t0=$(now)
    /usr/bin/time -v -o "$work/f.time" "${ff[@]}" -i "$src" -map 0 -vf "$vf" -af "$af" "$@" \
      "$work/f/out.$ext"
    t1=$(now)
    ft+=("$(echo "$t1 - $t0" | bc -l)")
    fr=$(rss_of "$work/f.time")
    lsize=$(stat -c %s "$work"/l/*)
    fsize=$(stat -c %s "$work/f/out.$ext")
    printf '%s pair %d: lumen %.2f s (%s MB RSS, %.1f MB), ffmpeg %.2f s (%s MB RSS, %.1f MB), ffmpeg/lumen %.3f\n' \
      "$name" "$i" "${lt[-1]}" "$lr" "$(echo "$lsize / 1000000" | bc -l)" "${ft[-1]}" "$fr" \
      "$(echo "$fsize / 1000000" | bc -l)" "$(echo "${ft[-1]} / ${lt[-1]}" | bc -l)"
  done
  printf '%s: lumen realtime factor %.2fx (%s s of video), graph: %s\n' "$name" \
    "$(echo "$seconds / ${lt[-1]}" | bc -l)" "$seconds" "$vf"
}

echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; ffmpeg $(ffmpeg -version | head -1 | cut -d' ' -f3)"
want vhs && bench "vhs (480i tape -> 1440x1080p30)" "$tape" vhs \
  -c:v libx264 -crf 20 -preset veryfast -pix_fmt yuv420p -c:a aac -b:a 192k -movflags +faststart
want web && bench "web (1080p30 H.264 -> H.264)" "$hd" web \
  -c:v libx264 -crf 23 -preset medium -pix_fmt yuv420p -c:a aac -b:a 160k -movflags +faststart

# vhs as a resumable job (--segment 5: the tape cut at key frames every ~5 s) against the same
# conversion whole, and the job's temporary disk at its peak (its folder, sampled every 0.2 s).
job_pair() {
  local i t0 t1 peak
  for i in $(seq 1 "$pairs"); do
    rm -rf "$work/j" "$work/w" "$work/cat.db"*
    mkdir -p "$work/j"
    peak=0
    ( set +e +o pipefail; while :; do du -sb "$work"/j/.lumen-job-* 2>/dev/null | awk '{s+=$1} END {print s+0}'; sleep 0.2; done ) >"$work/du" &
    local sampler=$!
    t0=$(now)
    "$lumen" convert "$tape" -o "$work/j" --preset vhs --catalog "$work/cat.db" --segment 5 -q
    t1=$(now)
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    peak=$(sort -n "$work/du" | tail -1)
    local tj tw
    tj=$(echo "$t1 - $t0" | bc -l)
    t0=$(now)
    "$lumen" convert "$tape" -o "$work/w" --preset vhs --no-cache -q
    t1=$(now)
    tw=$(echo "$t1 - $t0" | bc -l)
    printf 'vhs job pair %d: job %.2f s, whole %.2f s, whole/job %.3f; job folder peak %.1f MB (output %.1f MB)\n' \
      "$i" "$tj" "$tw" "$(echo "$tw / $tj" | bc -l)" "$(echo "$peak / 1000000" | bc -l)" \
      "$(echo "$(stat -c %s "$work"/j/*.mp4) / 1000000" | bc -l)"
  done
}
if want job; then job_pair; fi

# lumen compare of vhs, web and archive-hevc on the tape (3 excerpts of 3 s by default).
if want compare; then
  t0=$(now)
  "$lumen" compare "$tape" --presets vhs,web,archive-hevc -o "$work/compare.html" --json -q \
    >"$work/compare.json"
  t1=$(now)
  printf 'compare of 3 presets on %s s of tape: %.2f s\n' "$seconds" "$(echo "$t1 - $t0" | bc -l)"
  /usr/bin/python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
for p in r["presets"]:
    print("  %-13s %.2fx real time, whole file %.0f s and %.1f MB, SSIM %.4f, PSNR %.2f dB" % (
        p["preset"], p["realtime"], p["estimated_seconds"], p["estimated_bytes"] / 1e6,
        p["ssim"], p["psnr"]))' "$work/compare.json"
fi

