#!/usr/bin/env bash
# Issue 17's figures, each next to the tool a user would otherwise run, in one run:
#   1. PDF text extraction, pages/s: lumen's extractor (every page, in process) vs pdftotext
#      (poppler-utils) on the same real PDFs (Debian's gnutls-doc and libgcrypt20-doc manuals,
#      fetched with apt-get download into the build cache).
#   2. describe per document with the in-process model: SmolLM2-135M's real shape (random
#      weights, q8_0 and q4_0, tests/llm/tiny_vlm_gguf.py smolvlm-256m: a BPE vocabulary trained
#      on WordNet's English), text only, on Debian's licence texts.
#   3. SVG: lumen convert --chain 'fit:N,svg:colors=16' on a real photo at 512..4096 px.
#   4. One 100 MP photo converted with 1 thread and with every core, chains from processing-bound
#      (full-size sharpen, blur, rotate) to codec-bound (PNG's deflate, shrink-on-load).
# Usage: bench/issue17_bench.sh [SECTIONS]   (after scripts/build.sh release)
#   SECTIONS: the numbers above to run (default "1 2 3 4"); LUMEN_BIN: another lumen binary.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lumen="${LUMEN_BIN:-$repo/build/src/cli/lumen}"
sections=" ${1:-1 2 3 4} "
want() { [[ "$sections" == *" $1 "* ]]; }
cache="${LUMEN_CACHE:-$HOME/.cache/lumen-build}/bench-docs"
work="$(mktemp -d /tmp/lumen-i17-XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache"
export LUMEN_CATALOG="$work/catalog.db"

if want 1; then
echo "== 1. PDF text extraction (pages/s), lumen vs pdftotext"
if [ ! -f "$cache/gnutls.pdf" ]; then
  (cd "$cache" && apt-get download gnutls-doc libgcrypt20-doc >/dev/null 2>&1)
  for d in "$cache"/*.deb; do dpkg -x "$d" "$cache/x"; done
  cp "$cache/x/usr/share/doc/gnutls-doc/gnutls.pdf" "$cache/"
  gunzip -c "$cache/x/usr/share/doc/libgcrypt20-doc/gcrypt.pdf.gz" > "$cache/gcrypt.pdf"
fi
for pdf in "$cache/gnutls.pdf" "$cache/gcrypt.pdf"; do
  pages=$(pdfinfo "$pdf" | awk '/^Pages:/ {print $2}')
  for round in 1 2 3; do
    t0=$(date +%s.%N); pdftotext "$pdf" "$work/out.txt"; t1=$(date +%s.%N)
    echo "pdftotext $(basename "$pdf") round $round: $(echo "$t1 - $t0" | bc) s, $pages pages"
  done
  "$repo/build/bench/doc_bench" "$pdf" 3
done
fi

if want 2; then
echo "== 2. describe per document, in process (SmolLM2-135M shape, q8_0, random weights)"
# The model is rebuilt when its generator changes (its vocabulary decides the prompt length).
models="$cache/smolvlm-256m-$(sha1sum "$repo/tests/llm/tiny_vlm_gguf.py" | cut -c1-10)"
if [ ! -f "$models/model-q8_0.gguf" ]; then
  rm -rf "$cache"/smolvlm-256m*
  /usr/bin/python3 "$repo/tests/llm/tiny_vlm_gguf.py" "$models" smolvlm-256m f32 >/dev/null
  for q in q8_0 q4_0; do
    "$repo/.deps/bin/llama-quantize" "$models/model.gguf" "$models/model-$q.gguf" $q >/dev/null 2>&1
  done
  rm -f "$models/model.gguf" "$models/mmproj.gguf"
fi
# Real English documents: Debian's licence texts (plain text, 7-60 KB each).
mkdir -p "$work/docs"
for f in /usr/share/common-licenses/*; do
  [ -f "$f" ] && [ ! -L "$f" ] && cp "$f" "$work/docs/$(basename "$f").txt"
done
n=$(ls "$work/docs" | wc -l)
"$lumen" index "$work/docs" --quiet --no-embedding
# Random weights never close a string on their own: each field runs to its grammar limit, so the
# answer length is set here: 96 tokens (a 2-3 sentence summary, names, 5-8 keywords), and the
# grammar's worst case (256) for the upper bound.
for q in q8_0 q4_0; do
  for tokens in 96 256; do
    t0=$(date +%s.%N)
    "$lumen" describe "$work/docs" --llm local --llm-model "$models/model-$q.gguf" \
      --max-new-tokens "$tokens" --no-cache -o "$work/desc.jsonl" 2>&1 | tail -1 || true
    t1=$(date +%s.%N)
    echo "describe $n documents, $q, answers of at most $tokens tokens: $(echo "($t1 - $t0) / $n" | bc -l | cut -c1-5) s per document (model load included)"
  done
done
cat /usr/share/common-licenses/* > "$work/corpus.txt"
for q in q8_0 q4_0; do
  "$repo/build/bench/vlm_bench" "$models/model-$q.gguf" - 6 96 "$work/corpus.txt" 2000
done
fi

if want 3; then
echo "== 3. SVG (svg:colors=16), a real photo at each size"
photo="$work/photo.jpg"
corpus="${LUMEN_BENCH_CORPUS:-$repo/bench/corpus/photos}"
"$repo/scripts/fetch-photos.sh" bench "$corpus" >/dev/null
# The largest photo of the bench corpus (a wallpaper from Debian's packages).
src=$(find "$corpus" -type f -iname '*.jpg' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
vips resize "$src" "$photo" "$(echo "4096 / $(vipsheader -f width "$src")" | bc -l)" >/dev/null
# Each size from its own square input of that size (the service's figures are per input size),
# then the command's fixed cost alone (start, decode, a 16 px JPEG).
for n in 512 1024 2048 4096; do
  vips thumbnail "$photo" "$work/in$n.jpg" "$n" --height "$n" --size force >/dev/null
  best=999
  for round in 1 2 3; do
    rm -rf "$work/svg"
    t0=$(date +%s.%N)
    "$lumen" convert "$work/in$n.jpg" -o "$work/svg" --chain "svg:colors=16" --quiet --no-cache
    t1=$(date +%s.%N)
    s=$(echo "$t1 - $t0" | bc)
    best=$(echo "if ($s < $best) $s else $best" | bc)
  done
  size=$(stat -c %s "$work/svg/in$n.svg")
  echo "svg ${n}px: ${best} s (best of 3), $((size / 1024)) KB"
done
rm -rf "$work/tiny"
t0=$(date +%s.%N)
"$lumen" convert "$work/in512.jpg" -o "$work/tiny" --chain "fit:16x16,jpeg:80" --quiet --no-cache
t1=$(date +%s.%N)
echo "lumen convert of a 512 px photo to 16 px JPEG (the command's fixed cost): $(echo "$t1 - $t0" | bc) s"
fi

if want 4; then
echo "== 4. one 100 MP photo, 1 thread vs all cores"
/usr/bin/python3 - "$work/big.jpg" <<'EOF'
import sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(1)
small = (rng.random((100, 100, 3)) * 255).astype("uint8")
Image.fromarray(small).resize((10000, 10000), Image.BICUBIC).save(sys.argv[1], quality=90)
EOF
t0=$(date +%s.%N); vips copy "$work/big.jpg" "$work/big.v"; t1=$(date +%s.%N)
echo "100 MP, decode alone (vips copy to .v): $(echo "$t1 - $t0" | bc) s"
rm -f "$work/big.v"
for chain in "sharpen,jpeg:90" "blur:4,jpeg:90" "rotate:17,tiff" "sharpen,png" \
             "resize:0.5,sharpen,jpeg:90" "fit:4000x4000,sharpen,webp:82" "fit:1024x1024,svg:colors=16"; do
  for j in 1 0; do
    rm -rf "$work/big"
    t0=$(date +%s.%N)
    "$lumen" convert "$work/big.jpg" -o "$work/big" --chain "$chain" --quiet --no-cache -j "$j"
    t1=$(date +%s.%N)
    echo "100 MP, $chain, -j $j: $(echo "$t1 - $t0" | bc) s"
  done
done
fi
