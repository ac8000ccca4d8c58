#!/usr/bin/env bash
# Probe per file: lumen's in-process probe (build/bench/probe_bench) against
# `ffprobe -show_format -show_streams` (a process per file, as the tools lumen replaces run it) on
# the same generated clips (H.264/AAC MP4 with moov at the front and at the end, HEVC 10-bit MKV,
# MPEG-2 interlaced, a QuickTime .mov with tags), median of 9 runs each, and the ratio.
#   bench/probe_bench.sh   (after scripts/build.sh release probe_bench)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="$repo/build/bench/probe_bench"
work="$(mktemp -d /tmp/lumen-probe-XXXXXX)"
trap 'rm -rf "$work"' EXIT
gen() { ffmpeg -nostdin -loglevel error -y "$@"; }
src=(-f lavfi -i testsrc2=size=1280x720:rate=30:duration=10 -f lavfi -i sine=duration=10)
gen "${src[@]}" -c:v libx264 -preset veryfast -c:a aac -movflags +faststart "$work/front.mp4"
gen "${src[@]}" -c:v libx264 -preset veryfast -c:a aac "$work/back.mp4"
gen "${src[@]}" -c:v libx265 -preset ultrafast -x265-params log-level=none -pix_fmt yuv420p10le \
  -c:a libopus "$work/hevc10.mkv"
gen -f lavfi -i testsrc2=size=720x576:rate=25:duration=10 -vf setfield=tff -c:v mpeg2video \
  -flags +ilme+ildct "$work/tape.mpg"
gen "${src[@]}" -c:v libx264 -preset veryfast -c:a aac -metadata make=Apple \
  -metadata location=+48.8584+002.2945/ "$work/phone.mov"
printf 'file\tlumen ms\tffprobe ms\tratio\n'
"$bench" 9 "$work"/* | while IFS=$'\t' read -r f lumen_ms; do
  ff=$(/usr/bin/python3 - "$f" <<'PY'
import subprocess, sys, time
t = []
for _ in range(9):
    t0 = time.perf_counter()
    subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", sys.argv[1]],
                   stdout=subprocess.DEVNULL, check=True)
    t.append((time.perf_counter() - t0) * 1000)
print(f"{sorted(t)[4]:.3f}")
PY
)
  printf '%s\t%s\t%s\t%.1fx\n' "$(basename "$f")" "$lumen_ms" "$ff" "$(echo "$ff / $lumen_ms" | bc -l)"
done
