#!/usr/bin/env bash
# Installs every Debian package lumen needs and builds ggml + llama.cpp (+ mtmd, llama-server)
# from the source bundle shipped in npm node-llama-cpp@3.22.1 into a local prefix.
# Idempotent: a second run with everything present takes a second or two.
#
#   scripts/bootstrap.sh            # packages + deps prefix
#   LUMEN_SKIP_LLAMA=1 scripts/bootstrap.sh   # packages only
#
# Environment:
#   LUMEN_DEPS    prefix for built dependencies (default: <repo>/.deps)
#   LUMEN_CACHE   where the npm tarball, the git clone and ccache live (default: ~/.cache/lumen-build)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="${LUMEN_DEPS:-$repo/.deps}"
cache="${LUMEN_CACHE:-$HOME/.cache/lumen-build}"
llama_pkg="node-llama-cpp@3.22.1"
stamp_version="node-llama-cpp-3.22.1-r2"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

packages=(
  build-essential cmake ninja-build ccache pkg-config git ca-certificates clang-format
  libvips-dev libvips-tools liblcms2-dev libturbojpeg0-dev libheif-dev libexiv2-dev
  libsqlite3-dev sqlite3 libtbb-dev libxxhash-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev libsentencepiece-dev libhnswlib-dev libcurl4-openssl-dev libssl-dev
  python3-numpy python3-pil python3-torch python3-sentencepiece python3-regex libicu-dev
  libimage-exiftool-perl wordnet-base time chromium libcpptoml-dev
  libpoppler-cpp-dev libzip-dev libxml2-dev libpotrace-dev librsvg2-bin poppler-utils qpdf
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libavfilter-dev ffmpeg
  libcpp-httplib-dev wrk
)
# node/npm may come from another repository (nodesource ships npm inside nodejs)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "step 1/3: installing ${#missing[@]} Debian packages (about 3-5 minutes on a fresh machine): ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "step 1/3: packages installed"
else
  log "all Debian packages present"
fi

if [ "${LUMEN_SKIP_LLAMA:-0}" = 1 ]; then exit 0; fi

if [ -f "$deps/.stamp" ] && [ "$(cat "$deps/.stamp")" = "$stamp_version" ]; then
  log "ggml/llama.cpp prefix up to date: $deps"
  exit 0
fi

mkdir -p "$cache"
export CCACHE_DIR="${CCACHE_DIR:-$cache/ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-2G}"

src="$cache/llama.cpp"
if [ ! -d "$src/.git" ]; then
  tgz="$cache/npm/node-llama-cpp-3.22.1.tgz"
  if [ ! -f "$tgz" ]; then
    log "step 2/3: fetching $llama_pkg from the npm registry (about 30 s)"
    mkdir -p "$cache/npm"
    (cd "$cache/npm" && npm pack --silent "$llama_pkg" >/dev/null)
  fi
  rm -rf "$cache/npm/package"
  tar -xzf "$tgz" -C "$cache/npm" package/llama/gitRelease.bundle
  rm -rf "$src.tmp"
  git -c advice.detachedHead=false clone --quiet "$cache/npm/package/llama/gitRelease.bundle" "$src.tmp"
  mv "$src.tmp" "$src"
fi

build="$cache/llama-build"
# -fno-dse: GCC 12's RTL dead-store elimination drops the stores that fill the AMX tile
# configuration before ldtilecfg (it does not see the instruction read them), so ggml's AMX
# kernels die with SIGILL on the first tileloadd. Keeping those stores costs nothing measurable.
log "step 3/3: building ggml + llama.cpp + mtmd + llama-server (about 10 minutes on 2 cores the first time, seconds from ccache; log: $cache/llama-build.log)"
cmake -S "$src" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-fno-dse -DCMAKE_CXX_FLAGS=-fno-dse \
  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DCMAKE_INSTALL_PREFIX="$deps" \
  -DCMAKE_INSTALL_RPATH='$ORIGIN;$ORIGIN/../lib' \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
  -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON >"$cache/llama-configure.log"
if ! cmake --build "$build" --target llama mtmd llama-server llama-quantize >"$cache/llama-build.log" 2>&1; then
  tail -n 40 "$cache/llama-build.log" >&2
  log "llama.cpp build failed; full log: $cache/llama-build.log"
  exit 1
fi
# Install only what was built (the project's install rules cover every tool).
rm -rf "$deps" && mkdir -p "$deps/lib" "$deps/bin" "$deps/include"
cp -P "$build"/bin/lib*.so* "$deps/lib/"
cp -f "$build/bin/llama-server" "$build/bin/llama-quantize" "$deps/bin/"
cp -f "$src"/ggml/include/*.h "$src"/include/*.h "$src"/tools/mtmd/mtmd.h \
  "$src"/tools/mtmd/mtmd-helper.h "$deps/include/"
# gguf-py (used by tests to write GGUF files) travels with the prefix
rm -rf "$deps/share/gguf-py" && mkdir -p "$deps/share" && cp -r "$src/gguf-py" "$deps/share/gguf-py"
echo "$stamp_version" >"$deps/.stamp"
log "done: $deps"
