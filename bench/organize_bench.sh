#!/usr/bin/env bash
# Plan + apply of N same-filesystem moves into a dated tree, journal included: `lumen organize
# --apply` (plan from the catalog, write the journal, move, follow the catalog's locations),
# then `lumen undo`, against exiftool's own organizer (`exiftool '-Directory<FileModifyDate'
# -d %Y/%m`, the tool photographers script for this) on the same files, in one run.
#
#   bench/organize_bench.sh [N]    (default 10000; needs build/; tiny JPEGs so the file system,
#                                   not decoding, is what is measured)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-10000}"
lumen="$repo/build/src/cli/lumen"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 - "$work/src" "$n" <<'PY'
import os, sys, random
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(1)
for i in range(n):
    d = os.path.join(root, f"roll{i // 500:03d}")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, f"IMG_{i:05d}.jpg")
    Image.new("RGB", (16, 16), (i % 256, (i // 256) % 256, rnd.randrange(256))).save(p, quality=80)
    t = 1262304000 + rnd.randrange(10 * 365 * 86400)  # 2010..2019
    os.utime(p, (t, t))
PY
cp -a "$work/src" "$work/src2"
cat="$work/cat.db"
"$lumen" index "$work/src" --catalog "$cat" --no-embedding --no-thumbnail --quiet
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
plan=$(secs "$lumen" organize "$work/src" --into "$work/dest" --no-index --catalog "$cat" --quiet)
apply=$(secs "$lumen" organize "$work/src" --into "$work/dest" --no-index --apply --catalog "$cat" --quiet)
moved=$(find "$work/dest" -type f | wc -l)
undo=$(secs "$lumen" undo --catalog "$cat" --quiet)
back=$(find "$work/src" -type f | wc -l)
exif=$(secs exiftool -q -r '-Directory<'"$work"'/dest2/${FileModifyDate}' -d '%Y/%m' "$work/src2")
moved2=$(find "$work/dest2" -type f | wc -l)
printf '| files | lumen plan only (dry run) | lumen plan + apply (journal, catalog) | lumen undo | exiftool -Directory | ratio |\n'
printf '|---|---|---|---|---|---|\n'
printf '| %d | %.2f s | %.2f s (%d moved) | %.2f s (%d back) | %.2f s (%d moved) | %.1fx |\n' \
  "$n" "$plan" "$apply" "$moved" "$undo" "$back" "$exif" "$moved2" "$(echo "$exif / $apply" | bc -l)"
