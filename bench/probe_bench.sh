#!/usr/bin/env bash
# Per file, on the same generated clips (H.264/AAC MP4 with moov at the front and at the end,
# HEVC 10-bit MKV, MPEG-2 interlaced, a QuickTime .mov with tags), median of 9 runs each, and the
# ratio:
#   probe:  lumen's in-process probe (build/bench/probe_bench) against `ffprobe -show_format
#           -show_streams` (a process per file, as the tools lumen replaces run it);
#   poster: lumen's poster frame and thumbnail (probe_bench --poster: key frames of the first 30 s
#           scored, the best as 512 px RGB, then the 256 px WebP thumbnail) against Immich's
#           thumbnail command as its server builds it (server/src/utils/media.ts, ThumbnailConfig:
#           intra frames only, fps=12, the thumbnail filter's pick of 12, a scene-change select,
#           scaled to 250 px with lanczos, written as WebP).
#   bench/probe_bench.sh   (after scripts/build.sh release probe_bench)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="$repo/build/bench/probe_bench"
work="$(mktemp -d /tmp/lumen-probe-XXXXXX)"
trap 'rm -rf "$work" "$work.webp"' EXIT
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
# The median wall time of 9 runs of a command (the file appended), in ms.
median_ms() {
  /usr/bin/python3 - "$@" <<'PY'
import subprocess, sys, time
t = []
for _ in range(9):
    t0 = time.perf_counter()
    subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
    t.append((time.perf_counter() - t0) * 1000)
print(f"{sorted(t)[4]:.3f}")
PY
}
printf 'probe\tfile\tlumen ms\tffprobe ms\tratio\n'
"$bench" 9 "$work"/* | while IFS=$'\t' read -r f lumen_ms; do
  ff=$(median_ms ffprobe -v error -show_format -show_streams "$f")
  printf '\t%s\t%s\t%s\t%.1fx\n' "$(basename "$f")" "$lumen_ms" "$ff" "$(echo "$ff / $lumen_ms" | bc -l)"
done
printf 'poster\tfile\tlumen ms\tImmich ffmpeg ms\tlumen / Immich\n'
"$bench" --poster 9 "$work"/* | while IFS=$'\t' read -r f lumen_ms; do
  ff=$(median_ms ffmpeg -nostdin -v error -skip_frame nointra -sws_flags \
    accurate_rnd+full_chroma_int -i "$f" -an -fps_mode vfr -frames:v 1 -update 1 -vf \
    "fps=12:start_time=0:eof_action=pass:round=down,thumbnail=12,select=gt(scene\,0.1)-eq(prev_selected_n\,n)+isnan(prev_selected_n)+gt(n\,20),trim=end_frame=2,reverse,scale=-2:250:flags=lanczos+accurate_rnd+full_chroma_int:out_range=pc" \
    -y "$work.webp")
  printf '\t%s\t%s\t%s\t%.2f\n' "$(basename "$f")" "$lumen_ms" "$ff" "$(echo "$lumen_ms / $ff" | bc -l)"
done
