#!/usr/bin/env bash
# Videos in the library (issue 18), in one run on the same files:
#   shots:  `lumen process F --no-thumbnail` (the whole video indexing without AI: read, hash,
#           probe, decode every frame, shots, key frames, poster) against a plain decode,
#           `ffmpeg -threads 2 -i F -an -f null -`; A B A B, the median of each and the ratio
#           (> 1: lumen is faster), per file;
#   memory: peak RSS of `lumen process` on the 2160p HEVC 10-bit clip and on a 2 GB MP4 (the
#           1080p clip followed by a 2 GB `free` box, a sparse file: every byte is hashed, none is
#           decoded), and its wall time against `cat F > /dev/null`;
#   dupes:  `lumen dupes` on a generated corpus (tests/cli/video_corpus.py make_dupes: 10 sources
#           from the bench photos, each re-encoded at 3 sizes x H.264/HEVC/AV1, trimmed by 2 s at
#           either end and remuxed; negatives sharing a 5 s intro, or a fade from black): pair
#           recall and precision, and the time of the index and dupes runs;
#   ai:     a 15 s 1080p phone clip fully indexed with ViT-B/16 (SigLIP B/16-224 at full size,
#           random weights: the real timings) by `lumen process F --model M`, median of 3, with
#           the video and encoder stages from --profile.
# Files: opencv-doc's and kphotoalbum's real videos (scripts/fetch-photos.sh videos) and phone-like
# clips made from real photos (tests/cli/video_corpus.py): 15 s 1080p30 H.264 High and HEVC
# (hvc1, .mov), 15 s 720p VP9, 5 s 2160p HEVC 10-bit.
#   bench/video.sh [runs=5] [sections=shots,memory,dupes,ai]   (after scripts/build.sh release)
# LUMEN_BIN (default build/src/cli/lumen), LUMEN_CACHE (default ~/.cache/lumen-build; the clips
# and the model are kept there).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-5}"
sections="${2:-shots,memory,dupes,ai}"
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
ratios, total_a, total_b = [], 0.0, 0.0
for f in files:
    a, b = [], []
    for _ in range(runs):
        a.append(wall([lumen, "process", f, "--no-thumbnail", "--quiet"]))
        b.append(wall(["ffmpeg", "-nostdin", "-threads", "2", "-i", f, "-an", "-f", "null", "-"]))
    la, lb = statistics.median(a), statistics.median(b)
    ratios.append(lb / la)
    total_a, total_b = total_a + la, total_b + lb
    print(f"shots\t{os.path.basename(f)}\t{la:.3f}\t{lb:.3f}\t{lb / la:.2f}")
print(f"shots\tmedian ratio over {len(files)} files\t\t\t{statistics.median(ratios):.2f}")
print(f"shots\tall files (throughput)\t{total_a:.3f}\t{total_b:.3f}\t{total_b / total_a:.2f}")
PY
fi

if [[ ",$sections," == *",memory,"* ]]; then
  big="$clips/big-2gb.mp4"
  if [ ! -f "$big" ]; then
    /usr/bin/python3 - "$clips/phone-1080p-h264.mp4" "$big" <<'PY'
import os, struct, sys
src, out = sys.argv[1], sys.argv[2]
with open(src, "rb") as f, open(out + ".part", "wb") as g:
    g.write(f.read())
    g.write(struct.pack(">I4s", 1 << 31, b"free"))
    g.truncate(g.tell() + (1 << 31) - 8)
os.rename(out + ".part", out)
PY
  fi
  printf 'memory\tfile\tsize MB\tpeak RSS MB\twall s\tcat s\n'
  for f in "$clips/uhd-2160p-hevc10.mkv" "$big"; do
    c=$( { /usr/bin/time -f '%e' cat "$f" >/dev/null; } 2>&1 | tail -1)  # both from the page cache
    out=$( { /usr/bin/time -f '%M %e' "$lumen" process "$f" --quiet >/dev/null; } 2>&1 | tail -1)
    printf 'memory\t%s\t%.0f\t%.0f\t%s\t%s\n' "$(basename "$f")" \
      "$(echo "$(stat -c %s "$f") / 1048576" | bc -l)" "$(echo "${out% *} / 1024" | bc -l)" \
      "${out#* }" "$c"
  done
fi

if [[ ",$sections," == *",dupes,"* ]]; then
  "$repo/scripts/fetch-photos.sh" bench "$cache/photos-bench" >/dev/null
  PYTHONPATH="$repo/tests/cli" /usr/bin/python3 - "$lumen" "$cache/photos-bench" "$clips/dupes" <<'PY'
import json, os, shutil, subprocess, sys, tempfile, time
import video_corpus as vc
lumen, src, out = sys.argv[1:4]
truth = os.path.join(out, "truth.json")
if not os.path.exists(truth):
    pics = sorted(os.path.join(r, f) for r, _, fs in os.walk(src) for f in fs if f.lower().endswith(".jpg"))
    pics = pics[::max(1, len(pics) // 40)][:40]  # spread over the packages: distinct pictures
    shutil.rmtree(out, ignore_errors=True)
    paths, src_of = vc.make_dupes(pics, out, sources=10, seconds=8, size=(640, 360))
    with open(truth, "w") as f:
        json.dump({"paths": paths, "src": src_of}, f)
t = json.load(open(truth))
cat = os.path.join(tempfile.mkdtemp(), "catalog.db")
t0 = time.perf_counter()
subprocess.run([lumen, "index", out, "--catalog", cat, "--no-embedding", "--quiet"], check=True)
t1 = time.perf_counter()
p = subprocess.run([lumen, "dupes", "--catalog", cat, "--json"], check=True, capture_output=True)
t2 = time.perf_counter()
recall, precision, wrong = vc.pair_scores(json.loads(p.stdout), t["paths"], t["src"])
pos = sum(1 for i in range(len(t["src"])) for j in range(i + 1, len(t["src"]))
          if t["src"][i] is not None and t["src"][i] == t["src"][j])
print("dupes\tfiles\ttrue pairs\trecall\tprecision\tindex s\tdupes s")
print(f"dupes\t{len(t['paths'])}\t{pos}\t{recall:.3f}\t{precision:.3f}\t{t1 - t0:.1f}\t{t2 - t1:.2f}")
shutil.rmtree(os.path.dirname(cat))
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
