#!/usr/bin/env bash
# Configures and builds lumen. Usage: scripts/build.sh [release|asan] [TARGET...]  (default release, all)
#   release -> build/        asan -> build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kind="${1:-release}"
case "$kind" in
  release) dir="$repo/build"; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir="$repo/build-asan"; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUMEN_SANITIZE=ON) ;;
  *) echo "usage: $0 [release|asan]" >&2; exit 2 ;;
esac
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_DIR="${CCACHE_DIR:-${LUMEN_CACHE:-$HOME/.cache/lumen-build}/ccache}"
  # Paths under the checkout hashed relative to it, and (for -g builds: ASan) not the build
  # folder's own path: clones elsewhere share the cache.
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$repo}"
  export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$repo" -B "$dir" -G Ninja "${flags[@]}" "${launcher[@]}" >/dev/null
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$dir" "${targets[@]}"
