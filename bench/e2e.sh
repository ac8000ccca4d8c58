#!/usr/bin/env bash
# End-to-end throughput: `lumen index` (hash + EXIF + reduced decode + WebP thumbnail + dHash/pHash
# + catalog writes, no AI) against `vipsthumbnail -s 256` run as 2 processes (one per core) over
# the same real photos, in one run, alternating, best of N rounds. Also peak RSS of each.
#
#   bench/e2e.sh [ROUNDS] [all|baseline|progressive]   (default 3 all; needs build/)
# The subsets select baseline or progressive JPEGs (exiftool's EncodingProcess).
# Prints a markdown table for BENCHMARKS.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-3}"
subset="${2:-all}"
lumen="$repo/build/src/cli/lumen"
corpus="${LUMEN_BENCH_CORPUS:-$repo/bench/corpus/photos}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$repo/scripts/fetch-photos.sh" bench "$corpus"
find "$corpus" -type f -iname '*.jpg' | sort >"$work/all"
case "$subset" in
  all) cp "$work/all" "$work/list" ;;
  baseline | progressive)
    exiftool -q -p '$EncodingProcess|$Directory/$FileName' -@ "$work/all" |
      awk -F'|' -v want="$subset" '{ p = ($1 ~ /Progressive/) ? "progressive" : "baseline"; if (p == want) print $2 }' |
      sort >"$work/list" ;;
  *) echo "unknown subset $subset" >&2; exit 2 ;;
esac
n=$(wc -l <"$work/list")
mb=$(xargs -d '\n' du -cb <"$work/list" | tail -n1 | awk '{printf "%.1f", $1/1e6}')
split -n l/2 "$work/list" "$work/half."

# seconds and peak RSS (kB, the largest of the processes) of a command
measure() {
  local out="$work/time.$$"
  local t0 t1
  t0=$(date +%s.%N)
  "$@" 2>"$out" >/dev/null || { cat "$out" >&2; return 1; }
  t1=$(date +%s.%N)
  local rss
  rss=$(grep -h 'Maximum resident' "$out" | awk '{print $6}' | sort -n | tail -n1)
  echo "$(echo "$t1 - $t0" | bc -l) ${rss:-0}"
}

run_vips() {
  rm -rf "$work/vt" && mkdir -p "$work/vt/a" "$work/vt/b"
  /usr/bin/time -v xargs -d '\n' vipsthumbnail -s 256 -o "$work/vt/a/%s.jpg" <"$work/half.aa" 2>"$work/va" &
  /usr/bin/time -v xargs -d '\n' vipsthumbnail -s 256 -o "$work/vt/b/%s.jpg" <"$work/half.ab" 2>"$work/vb" &
  wait
  grep -h 'Maximum resident' "$work/va" "$work/vb" >&2
}

run_lumen() {
  rm -f "$work"/cat.db*
  /usr/bin/time -v xargs -x -d '\n' "$lumen" index --catalog "$work/cat.db" --jobs 2 --quiet <"$work/list"
}

best_v=999999 best_l=999999 rss_v=0 rss_l=0
for ((r = 1; r <= rounds; r++)); do
  read -r tv rv < <(measure run_vips)
  read -r tl rl < <(measure run_lumen)
  echo "round $r: vipsthumbnail ${tv}s (${rv} kB), lumen ${tl}s (${rl} kB)" >&2
  best_v=$(echo "if ($tv < $best_v) $tv else $best_v" | bc -l)
  best_l=$(echo "if ($tl < $best_l) $tl else $best_l" | bc -l)
  ((rv > rss_v)) && rss_v=$rv
  ((rl > rss_l)) && rss_l=$rl
done
ips_v=$(echo "$n / $best_v" | bc -l)
ips_l=$(echo "$n / $best_l" | bc -l)
printf '| corpus | %d %s JPEGs, %s MB (Debian wallpaper and photo packages) |\n' "$n" "$subset" "$mb"
printf '|---|---|\n'
printf '| vipsthumbnail -s 256, 2 processes | %.1f images/s (%.2f s), peak RSS %d MB per process |\n' "$ips_v" "$best_v" $((rss_v / 1024))
printf '| lumen index --jobs 2 (no AI) | %.1f images/s (%.2f s), peak RSS %d MB |\n' "$ips_l" "$best_l" $((rss_l / 1024))
printf '| ratio lumen / vipsthumbnail | **%.2fx** |\n' "$(echo "$ips_l / $ips_v" | bc -l)"
