#!/usr/bin/env bash
# Videos in the library (issue 18), in one run on the same files:
#   shots:  `lumen process F --no-thumbnail` (the whole video indexing without AI: read, hash,
#           probe, decode every frame, shots, key frames, poster) against a plain decode,
#           `ffmpeg -threads 2 -i F -an -f null -`; A B A B, the median of each and the ratio
#           (> 1: lumen is faster), per file;
#   ai:     a 15 s 1080p phone clip fully indexed with ViT-B/16 (SigLIP B/16-224 at full size,
#           random weights: the real timings) by `lumen process F --model M`, median of 3, with
#           the video and encoder stages from --profile.
# Files: opencv-doc's and kphotoalbum's real videos (scripts/fetch-photos.sh videos) and phone-like
# clips made from real photos (tests/cli/video_corpus.py): 15 s 1080p30 H.264 High and HEVC
# (hvc1, .mov), 15 s 720p VP9, 5 s 2160p HEVC 10-bit.
#   bench/video.sh [runs=5] [sections=shots,ai]   (after scripts/build.sh release)
# LUMEN_BIN (default build/src/cli/lumen), LUMEN_CACHE (default ~/.cache/lumen-build; the clips
# and the model are kept there).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-5}"
sections="${2:-shots,ai}"
lumen="${LUMEN_BIN:-$repo/build/src/cli/lumen}"
cache="${LUMEN_CACHE:-$HOME/.cache/lumen-build}"
clips="$cache/video-bench"
mkdir -p "$clips"
"$repo/scripts/fetch-photos.sh" videos "$clips/real" >/dev/null
"$repo/scripts/fetch-photos.sh" test "$cache/photos-test" >/dev/null
PYTHONPATH="$repo/tests/cli" /usr/bin/python3 - "$cache/photos-test" "$clips" <<'PY'
import os, sys
import video_corpus as vc
src, out = sys.argv[1], sys.argv[2]
pics = sorted(os.path.join(r, f) for r, _, fs in os.walk(src) for f in fs if f.lower().endswith(".jpg"))
x264 = ["-c:v", "libx264", "-preset", "medium", "-profile:v", "high", "-crf", "23", "-g", "60",
        "-bf", "2", "-pix_fmt", "yuv420p"]
x265 = ["-c:v", "libx265", "-preset", "fast", "-x265-params", "log-level=none", "-tag:v", "hvc1",
        "-pix_fmt", "yuv420p"]
todo = [("phone-1080p-h264.mp4", x264, (1920, 1080), 15),
        ("phone-1080p-hevc.mov", x265 + ["-f", "mov"], (1920, 1080), 15),
        ("web-720p-vp9.webm", ["-c:v", "libvpx-vp9", "-b:v", "2M", "-deadline", "realtime",
                               "-cpu-used", "8", "-row-mt", "1"], (1280, 720), 15),
        ("uhd-2160p-hevc10.mkv", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
                                  "log-level=none", "-pix_fmt", "yuv420p10le"], (3840, 2160), 5)]
for name, args, size, secs in todo:
    path = os.path.join(out, name)
    if not os.path.exists(path):
        vc.phone_clip(pics, path + ".part" + os.path.splitext(name)[1], args, size=size, seconds=secs)
        os.rename(path + ".part" + os.path.splitext(name)[1], path)
PY
files=("$clips"/real/*.avi "$clips"/real/*.mp4 "$clips"/*.mp4 "$clips"/*.mov "$clips"/*.webm "$clips"/*.mkv)

if [[ ",$sections," == *",shots,"* ]]; then
  printf 'shots\tfile\tlumen s\tffmpeg decode s\tratio\n'
  /usr/bin/python3 - "$lumen" "$runs" "${files[@]}" <<'PY'
import os, statistics, subprocess, sys, time
lumen, runs, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def wall(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0
ratios = []
for f in files:
    a, b = [], []
    for _ in range(runs):
        a.append(wall([lumen, "process", f, "--no-thumbnail", "--quiet", "-o", "/dev/null"]))
        b.append(wall(["ffmpeg", "-nostdin", "-threads", "2", "-i", f, "-an", "-f", "null", "-"]))
    la, lb = statistics.median(a), statistics.median(b)
    ratios.append(lb / la)
    print(f"shots\t{os.path.basename(f)}\t{la:.3f}\t{lb:.3f}\t{lb / la:.2f}")
print(f"shots\tmedian ratio over {len(files)} files\t\t\t{statistics.median(ratios):.2f}")
PY
fi

if [[ ",$sections," == *",ai,"* ]]; then
  model="$cache/encoder-anchor/siglip-b16"
  if [ ! -f "$model/model.safetensors" ]; then
    /usr/bin/python3 "$repo/tests/ml/reference.py" "$model" siglip 0 b16 >/dev/null
  fi
  clip="$clips/phone-1080p-h264.mp4"
  printf 'ai\trun\twall s\tvideo stage s\tencoder s\tkey frames\n'
  for i in 1 2 3; do
    t0=$(date +%s.%N)
    prof="$("$lumen" process "$clip" --model "$model" --profile -o /tmp/lumen-video-bench.jsonl 2>&1)"
    t1=$(date +%s.%N)
    frames=$(/usr/bin/python3 -c "import json; r=json.load(open('/tmp/lumen-video-bench.jsonl')); print(sum(len(s['key_frames']) for s in r['shots']))")
    v=$(echo "$prof" | awk '$1=="video"{print $3}')
    e=$(echo "$prof" | awk '$1=="image" && $2=="encoder"{print $4}')
    printf 'ai\t%d\t%.2f\t%s\t%s\t%s\n' "$i" "$(echo "$t1 - $t0" | bc)" "$v" "$e" "$frames"
  done
  rm -f /tmp/lumen-video-bench.jsonl
fi
