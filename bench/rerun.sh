#!/usr/bin/env bash
# Incremental rerun over many unchanged files, and peak RSS as the library grows.
#   bench/rerun.sh [N]     (default 100000 small generated JPEGs; needs build/)
# First indexes N distinct files (reporting time and peak RSS), then times a rerun, in which
# every location is unchanged and no file may be opened.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-100000}"
lumen="$repo/build/src/cli/lumen"
work="${LUMEN_BENCH_WORK:-$(mktemp -d)}"
mkdir -p "$work/lib"
/usr/bin/python3 - "$work/lib" "$n" <<'PY'
import io, os, sys
from PIL import Image
folder, n = sys.argv[1], int(sys.argv[2])
buf = io.BytesIO()
Image.radial_gradient("L").convert("RGB").resize((96, 64)).save(buf, "JPEG", quality=80)
base = buf.getvalue()
per_dir = 1000
for i in range(n):
    d = os.path.join(folder, f"d{i // per_dir:04d}")
    if i % per_dir == 0:
        os.makedirs(d, exist_ok=True)
    p = os.path.join(d, f"img{i:07d}.jpg")
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(base + i.to_bytes(4, "big"))
PY
rm -f "$work"/cat.db*
sync
/usr/bin/time -f "%e s, peak RSS %M kB" "$lumen" index "$work/lib" --catalog "$work/cat.db" --quiet 2>"$work/first.txt"
first=$(tail -n1 "$work/first.txt")
best=999
for r in 1 2 3; do
  t0=$(date +%s.%N)
  /usr/bin/time -f "%M" "$lumen" index "$work/lib" --catalog "$work/cat.db" --json-logs 2>"$work/rerun.txt"
  t1=$(date +%s.%N)
  t=$(echo "$t1 - $t0" | bc -l)
  best=$(echo "if ($t < $best) $t else $best" | bc -l)
done
unchanged=$(grep -o '"unchanged":"[0-9]*"' "$work/rerun.txt" | grep -o '[0-9]*')
rss=$(tail -n1 "$work/rerun.txt")
printf '| first index of %d small JPEGs | %s |\n' "$n" "$first"
printf '| rerun, all unchanged (%s reported unchanged) | **%.2f s** (best of 3), peak RSS %d MB |\n' "$unchanged" "$best" $((rss / 1024))
[ -n "${LUMEN_BENCH_WORK:-}" ] || rm -rf "$work"
