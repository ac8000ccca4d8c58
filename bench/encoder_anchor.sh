#!/usr/bin/env bash
# Image-encoder anchor: ONNX Runtime (npm onnxruntime-node, CPU), PyTorch and lumen on the same
# random-weight full-size encoders (SigLIP ViT-B/16-224, CLIP ViT-B/32-224; tests/ml/reference.py),
# the same input and thread count, back to back in one run, then a summary with ms/image and the
# ratio ORT/lumen (> 1: lumen is faster).
#
#   bench/encoder_anchor.sh [seconds=10] [batches=1,8,32]
#
# Each model runs twice where the CPU allows: as the CPU is ("native"), and as an AVX2-only CPU
# ("avx2": bench/avx2_only.c, LD_PRELOAD, hides AVX-512, VNNI and AMX from CPUID for all three
# runtimes, which pick their kernels at run time; ggml's own few ops stay as built).
# LUMEN_ANCHOR_CPUS=native or =avx2 runs one of them.
#
# Environment: LUMEN_TYPES (lumen weight types, default f32,int8; see bench/bench_weights.h),
# LUMEN_THREADS (default 2), LUMEN_CACHE (default ~/.cache/lumen-build), LUMEN_ORT_DIR (default
# $LUMEN_CACHE/ort), LUMEN_ANCHOR_DIR (models and their ONNX exports, default
# $LUMEN_CACHE/encoder-anchor). Needs build/bench/encoder_bench (scripts/build.sh release
# encoder_bench), node/npm, and /usr/bin/python3 with torch and onnx (Debian's python3-torch,
# python3-onnx). First run: installs onnxruntime-node (about 290 MB, the CPU library ships in the
# package; its install script, which downloads GPU libraries, is skipped), makes the two models
# (about 360 MB each) and exports them to ONNX (about 15 s each, checked against the reference).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-10}"
batches="${2:-1,8,32}"
types="${LUMEN_TYPES:-f32,int8}"
threads="${LUMEN_THREADS:-2}"
cache="${LUMEN_CACHE:-$HOME/.cache/lumen-build}"
ort_dir="${LUMEN_ORT_DIR:-$cache/ort}"
models="${LUMEN_ANCHOR_DIR:-$cache/encoder-anchor}"
ort_version=1.30.0
py=/usr/bin/python3
encoder_bench="$repo/build/bench/encoder_bench"
log() { echo "== $*" >&2; }

if [ ! -x "$encoder_bench" ]; then
  echo "missing $encoder_bench: run scripts/build.sh release encoder_bench" >&2
  exit 1
fi
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nodejs npm)" >&2; exit 1; }
done
"$py" -c 'import torch, onnx' 2>/dev/null ||
  { echo "$py lacks torch or onnx (apt-get install python3-torch python3-onnx)" >&2; exit 1; }

# (a) onnxruntime-node in the cache, never in the repository.
ort_pkg="$ort_dir/node_modules/onnxruntime-node"
have=$(node -p "require('$ort_pkg/package.json').version" 2>/dev/null || true)
if [ "$have" != "$ort_version" ]; then
  tgz="$cache/npm-ort/onnxruntime-node-$ort_version.tgz"
  if [ ! -f "$tgz" ]; then
    log "fetching onnxruntime-node@$ort_version from the npm registry (about 110 MB)"
    mkdir -p "$cache/npm-ort"
    (cd "$cache/npm-ort" && npm pack --silent "onnxruntime-node@$ort_version" >/dev/null)
  fi
  log "installing onnxruntime-node@$ort_version into $ort_dir"
  mkdir -p "$ort_dir"
  [ -f "$ort_dir/package.json" ] || printf '{"name": "lumen-ort", "private": true}\n' >"$ort_dir/package.json"
  (cd "$ort_dir" && npm install --ignore-scripts --no-audit --no-fund --silent "$tgz")
fi
export LUMEN_ORT_DIR="$ort_dir"

# (b) the random-weight models, (c) their ONNX exports (redone when the model or exporter changes).
names=(siglip-b16 clip-b32)
mkdir -p "$models"
for name in "${names[@]}"; do
  family="${name%-*}" size="${name#*-}" dir="$models/$name"
  if [ ! -f "$dir/model.safetensors" ] || [ "$repo/tests/ml/reference.py" -nt "$dir/model.safetensors" ]; then
    log "making $name (random weights, seed 1) in $dir"
    rm -rf "$dir.tmp"
    "$py" "$repo/tests/ml/reference.py" "$dir.tmp" "$family" 1 "$size"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  onnx="$models/$name.onnx"
  if [ ! -f "$onnx" ] || [ "$dir/model.safetensors" -nt "$onnx" ] || [ "$repo/bench/onnx_export.py" -nt "$onnx" ] ||
     [ "$repo/tests/ml/reference.py" -nt "$onnx" ]; then
    log "exporting $name to $onnx"
    rm -f "$onnx"
    "$py" "$repo/bench/onnx_export.py" "$dir" "$onnx.new" --check-out "$models/$name.check"
    node "$repo/bench/ort_encoder.js" "$onnx.new" --check "$models/$name.check.in.f32" "$models/$name.check.ref.f32"
    rm -f "$models/$name.check.in.f32" "$models/$name.check.ref.f32"
    mv "$onnx.new" "$onnx"
  fi
done

# The AVX2-only view: the CPUID shim, built into the cache; used only where CPUID faulting works.
views="${LUMEN_ANCHOR_CPUS:-native,avx2}"
shim="$cache/avx2_only.so"
if [[ ",$views," == *",avx2,"* ]]; then
  if [ ! -f "$shim" ] || [ "$repo/bench/avx2_only.c" -nt "$shim" ]; then
    gcc -O2 -shared -fPIC -o "$shim" "$repo/bench/avx2_only.c"
  fi
  if [ -n "$(LD_PRELOAD="$shim" /bin/true 2>&1)" ]; then
    log "no CPUID faulting here: the avx2 view is skipped"
    views="${views//avx2/}"
  fi
fi

# (d) the machine.
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2-) "
present="" absent=""
for f in avx2 fma avx512f avx512_vnni avx_vnni amx_int8; do
  case "$flags" in
    *" $f "*) present="$present $f" ;;
    *) absent="$absent $f" ;;
  esac
done
echo "CPU:$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2-) ($(nproc) CPUs; $threads threads per run)"
echo "flags present:${present:- none}; absent:${absent:- none}"
echo "runs: $seconds s per batch size, batches $batches, lumen weights $types"

# (e) the runs, back to back per model; each tool's table is shown and parsed.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results"
: >"$results"
# Rows of a `| label | batch | ms/image | images/s |` table -> "model<TAB>key<TAB>batch<TAB>ms".
parse() {
  awk -F'|' -v model="$1" -v key="$2" '
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    NF >= 6 && $0 ~ /^\|/ {
      label = trim($2); batch = trim($3); ms = trim($4)
      if (label == "weights" || label == "runtime" || label ~ /^-+$/ || batch !~ /^[0-9]+$/) next
      k = (key == "lumen") ? "lumen " label : key
      printf "%s\t%s\t%s\t%s\n", model, k, batch, ms
    }' "$3" >>"$results"
}
for view in ${views//,/ }; do
  pre=() node_flags=()
  if [ "$view" = avx2 ]; then
    pre=(env LD_PRELOAD="$shim")
    node_flags=(--disable-wasm-trap-handler)  # V8 would take the shim's SIGSEGV
  fi
  for name in "${names[@]}"; do
    dir="$models/$name" key="$name ($view)"
    echo
    echo "### $key"
    echo
    echo "onnxruntime:"
    "${pre[@]}" node "${node_flags[@]}" "$repo/bench/ort_encoder.js" "$models/$name.onnx" "$threads" "$batches" "$seconds" | tee "$work/ort"
    parse "$key" ort "$work/ort"
    echo
    echo "PyTorch:"
    "${pre[@]}" "$py" "$repo/bench/torch_encoder.py" "$dir" "$threads" "$batches" "$seconds" | tee "$work/torch"
    parse "$key" torch "$work/torch"
    echo
    echo "lumen:"
    "${pre[@]}" "$encoder_bench" "$dir" "$threads" "$types" "$batches" "$seconds" | tee "$work/lumen"
    parse "$key" lumen "$work/lumen"
  done
done

echo
echo "### summary: ms/image ($threads threads; ORT/lumen > 1: lumen faster)"
echo
awk -F'\t' -v types="$types" '
  {
    key = $1 SUBSEP $3
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    ms[$1, $3, $2] = $4
  }
  function cell(v) { return (v == "") ? "-" : v }
  END {
    nt = split(types, t, ",")
    h = "| model | batch | onnxruntime f32 | PyTorch f32"; sep = "|---|---|---|---"
    for (i = 1; i <= nt; i++) { h = h " | lumen " t[i]; sep = sep "|---" }
    for (i = 1; i <= nt; i++) { h = h " | ORT/lumen " t[i]; sep = sep "|---" }
    print h " |"; print sep "|"
    for (j = 1; j <= n; j++) {
      split(order[j], mb, SUBSEP); m = mb[1]; b = mb[2]
      ort = ms[m, b, "ort"]
      line = "| " m " | " b " | " cell(ort) " | " cell(ms[m, b, "torch"])
      for (i = 1; i <= nt; i++) line = line " | " cell(ms[m, b, "lumen " t[i]])
      for (i = 1; i <= nt; i++) {
        l = ms[m, b, "lumen " t[i]]
        line = line " | " ((ort != "" && l != "" && l + 0 > 0) ? sprintf("%.2f", ort / l) : "-")
      }
      print line " |"
    }
  }' "$results"
