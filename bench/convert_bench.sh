#!/usr/bin/env bash
# lumen convert against ImageMagick and chained vips CLI calls, same photos, same chain
# (fit 1600x1600, sharpen, WebP 82), same 2 cores, one run; and peak RSS on a 20 MP photo.
#   bench/convert_bench.sh           (needs build/ and ImageMagick: apt-get install imagemagick)
#   bench/convert_bench.sh presets   lumen's presets on the same photos: seconds and output size
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lumen="$repo/build/src/cli/lumen"
corpus="${LUMEN_BENCH_CORPUS:-$repo/bench/corpus/photos}"
"$repo/scripts/fetch-photos.sh" bench "$corpus"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export LUMEN_CATALOG="$work/catalog.db"  # the result cache starts empty (and is not the user's)
mkdir -p "$work/in"
# The photos of 2 MP and more, flattened into one folder.
mapfile -t photos < <(find "$corpus" -type f -iname '*.jpg' -size +300k | sort)
for f in "${photos[@]:0:40}"; do
  cp "$f" "$work/in/$(echo "${f#"$corpus"/}" | tr '/' '_')"
done
if [ "${1:-}" = presets ]; then
  printf '| preset | output | seconds | output (40 files) |\n|---|---|---|---|\n'
  preset() {  # PRESET FORMAT
    rm -rf "$work/out"
    local t0 t1
    t0=$(date +%s.%N)
    "$lumen" convert "$work/in" -o "$work/out" --chain "fit:1600x1600,sharpen,$2:82" --preset "$1" -q --no-cache
    t1=$(date +%s.%N)
    printf '| %s | %s | %.2f | %s KB |\n' "$1" "$2" "$(echo "$t1 - $t0" | bc -l)" "$(du -sk "$work/out" | cut -f1)"
  }
  for p in draft fast balanced high ultra; do preset "$p" webp; done
  preset fast jpeg
  preset high jpeg
  exit 0
fi
n=$(ls "$work/in" | wc -l)
mb=$(du -sm "$work/in" | cut -f1)
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
mkdir -p "$work/im" "$work/vips"
# Rounds, each tool once a round, in turn (a noisy machine slows all three alike within a round):
# the median of each is shown, and the median of the per-round ratios.
rounds="${LUMEN_BENCH_ROUNDS:-3}"
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
t_lumens=() t_ims=() t_vipss=() r_ims=() r_vipss=()
for ((i = 1; i <= rounds; i++)); do
  rm -rf "$work/lumen" "$work/im"/* "$work/vips"/*
  export LUMEN_CATALOG="$work/catalog-$i.db"  # an empty result cache each round
  t_lumen=$(secs "$lumen" convert "$work/in" -o "$work/lumen" --chain 'fit:1600x1600,sharpen,webp:82' -q)
  t_im=$(secs sh -c "ls '$work/in'/*.jpg | xargs -P 2 -n 10 mogrify -path '$work/im' -auto-orient -resize '1600x1600>' -unsharp 0x1 -quality 82 -format webp")
  t_vips=$(secs sh -c "ls '$work/in'/*.jpg | xargs -P 2 -I{} sh -c 'b=\$(basename {} .jpg); vipsthumbnail {} --size 1600x1600 -o $work/vips/\$b.v && vips sharpen $work/vips/\$b.v $work/vips/\$b.s.v && vips webpsave $work/vips/\$b.s.v $work/vips/\$b.webp --Q 82 && rm $work/vips/\$b.v $work/vips/\$b.s.v'")
  t_lumens+=("$t_lumen") t_ims+=("$t_im") t_vipss+=("$t_vips")
  r_ims+=("$(echo "$t_im / $t_lumen" | bc -l)") r_vipss+=("$(echo "$t_vips / $t_lumen" | bc -l)")
  printf 'round %d: lumen %.2f s, ImageMagick %.2f s, vips CLI %.2f s\n' "$i" "$t_lumen" "$t_im" "$t_vips" >&2
done
t_lumen=$(median "${t_lumens[@]}") t_im=$(median "${t_ims[@]}") t_vips=$(median "${t_vipss[@]}")
# What each wrote (the last round): the same chain should give about the same bytes.
kb() { find "$1" -name '*.webp' -printf '%s\n' | awk '{s += $1} END {printf "%d", s / 1024}'; }
k_lumen=$(kb "$work/lumen") k_im=$(kb "$work/im") k_vips=$(kb "$work/vips")
t_again=$(secs "$lumen" convert "$work/in" -o "$work/lumen" --chain 'fit:1600x1600,sharpen,webp:82' -q)
touch "$work/in"/*.jpg  # new mtimes, same content: the cache hashes and finds them
t_touched=$(secs "$lumen" convert "$work/in" -o "$work/lumen" --chain 'fit:1600x1600,sharpen,webp:82' -q)
printf '| %d photos (%d MB), median of %d rounds | lumen convert | ImageMagick mogrify (2 procs) | vips CLI chain (2 procs) |\n|---|---|---|---|\n' "$n" "$mb" "$rounds"
printf '| seconds | %.2f | %.2f | %.2f |\n' "$t_lumen" "$t_im" "$t_vips"
printf '| images/s | %.1f | %.1f | %.1f |\n' "$(echo "$n / $t_lumen" | bc -l)" "$(echo "$n / $t_im" | bc -l)" "$(echo "$n / $t_vips" | bc -l)"
printf '| lumen is (median of the rounds'"'"' ratios) | 1x | %.2fx faster | %.2fx faster |\n' "$(median "${r_ims[@]}")" "$(median "${r_vipss[@]}")"
printf '| output (%d WebP files) | %d KB | %d KB | %d KB |\n' "$n" "$k_lumen" "$k_im" "$k_vips"
printf '\nlumen again, same chain (result cache): %.2f s; after touching every input (hashed, same content): %.2f s\n' "$t_again" "$t_touched"
# Peak memory on one 20 MP photo (5472x3648, a camera's 3:2 frame): the first photo scaled to
# cover it and cropped, saved as a baseline JPEG.
big="$work/big.jpg"
first=$(ls "$work/in"/*.jpg | head -1)
fw=$(vipsheader -f width "$first"); fh=$(vipsheader -f height "$first")
scale=$(echo "s = 5472 / $fw; t = 3648 / $fh; if (t > s) s = t; s" | bc -l)
vips resize "$first" "$work/big.v" "$scale"
vips extract_area "$work/big.v" "$big[Q=90]" 0 0 5472 3648
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk '/Maximum resident/ {print $6}'; }
mkdir -p "$work/one"
r_lumen=$(rss "$lumen" convert "$big" -o "$work/one" --chain 'fit:1600x1600,sharpen,webp:82' -q)
r_im=$(rss /usr/bin/convert "$big" -auto-orient -resize '1600x1600>' -unsharp 0x1 -quality 82 "$work/one/im.webp")
r_vt=$(rss vipsthumbnail "$big" -s 1600 -o "$work/one/vt.webp[Q=82]")
printf '\nPeak RSS, one %s photo: lumen %d MB, ImageMagick %d MB (%.1fx less); vipsthumbnail alone (no sharpen) %d MB\n' \
  "$(vipsheader -f width "$big")x$(vipsheader -f height "$big")" $((r_lumen / 1024)) $((r_im / 1024)) \
  "$(echo "$r_im / $r_lumen" | bc -l)" $((r_vt / 1024))
# What the processes cost before any image: the pages of their shared libraries (libvips alone
# brings ~100 of them) and start-up allocations.
b_lumen=$(rss "$lumen" --version)
b_im=$(rss /usr/bin/convert -version)
b_vips=$(rss vips --version)
printf 'Process baseline (--version): lumen %d MB, ImageMagick %d MB, vips CLI %d MB; above it: lumen %d MB, ImageMagick %d MB (%.1fx less)\n' \
  $((b_lumen / 1024)) $((b_im / 1024)) $((b_vips / 1024)) $(((r_lumen - b_lumen) / 1024)) $(((r_im - b_im) / 1024)) \
  "$(echo "($r_im - $b_im) / ($r_lumen - $b_lumen)" | bc -l)"
