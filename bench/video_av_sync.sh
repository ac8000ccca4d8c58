#!/usr/bin/env bash
# A/V sync of a long conversion run as a job (issue 20: "within one frame over an hour").
# A capture-like source (MPEG-2 + PCM in Matroska, 29.97 frames/s) flashes white for one frame
# and clicks at the same instant every second, for `minutes`; lumen converts it as a resumable job
# cut every `segment` seconds (so the video is encoded in pieces and the audio in one pass), and
# the offset between each flash and its click is measured in the output, second by second.
#
#   bench/video_av_sync.sh [minutes=60] [segment=60]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
minutes="${1:-60}"
segment="${2:-60}"
lumen="${LUMEN_BIN:-$repo/build/src/cli/lumen}"
cache="${LUMEN_CACHE:-$HOME/.cache/lumen-build}/video-bench"
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
seconds=$((minutes * 60))
src="$cache/flash-$minutes.mkv"
if [ ! -f "$src" ]; then
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "color=c=black:s=160x120:r=30000/1001:d=$seconds,drawbox=c=white:t=fill:enable='lt(mod(t\,1)\,0.0333)'" \
    -f lavfi -i "aevalsrc='if(lt(mod(t\,1)\,0.01)\,0.8*sin(2*PI*1000*t)\,0)':s=48000:d=$seconds" \
    -c:v mpeg2video -q:v 4 -c:a pcm_s16le "$src.tmp.mkv"
  mv "$src.tmp.mkv" "$src"
fi
t0=$(date +%s.%N)
"$lumen" convert "$src" -o "$work/out" --catalog "$work/cat.db" --segment "$segment" \
  --chain "h264:23:ultrafast" -q
t1=$(date +%s.%N)
out="$work/out/flash-$minutes.mp4"
echo "converted $minutes min as a job of $segment-s segments in $(echo "$t1 - $t0" | bc -l | cut -c1-6) s"
# Flash times: the frames whose mean luma is high; click times: the first loud sample each second.
# The source is measured the same way: its frame grid puts each flash up to a frame after its
# click, so the output's offsets are read against the source's.
measure() {
  ffprobe -v error -f lavfi -i "movie=$1,signalstats" \
    -show_entries frame=pts_time:frame_tags=lavfi.signalstats.YAVG -of csv=p=0 >"$work/luma.csv"
  ffmpeg -nostdin -v error -i "$1" -map 0:a:0 -ac 1 -ar 48000 -f s16le -y "$work/audio.raw"
  /usr/bin/python3 - "$work/luma.csv" "$work/audio.raw" "$2" <<'EOF2'
import sys
import numpy as np
flashes = []
for line in open(sys.argv[1]):
    t, y = line.strip().split(",")[:2]
    if float(y) > 128:
        flashes.append(float(t))
a = np.fromfile(sys.argv[2], dtype=np.int16).astype(np.float32)
loud = np.flatnonzero(np.abs(a) > 8000)
starts = loud[np.insert(np.diff(loud) > 4800, 0, True)] / 48000.0  # each click's first sample
offsets = []
for f in flashes:
    i = np.searchsorted(starts, f - 0.5)
    if i < len(starts) and abs(starts[i] - f) < 0.5:
        offsets.append(starts[i] - f)
o = np.array(offsets)
print(f"{sys.argv[3]}: {len(flashes)} flashes, {len(starts)} clicks, {len(o)} paired; audio - video: "
      f"first minute {o[:60].mean()*1000:+.1f} ms, last minute {o[-60:].mean()*1000:+.1f} ms, "
      f"max |offset| {np.abs(o).max()*1000:.1f} ms (one frame: 33.4 ms)")
EOF2
}
measure "$src" source
measure "$out" output
