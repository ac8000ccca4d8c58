#!/usr/bin/env bash
# Every test on a fresh Debian 12 machine: installs what is missing, builds the release and the
# ASan+UBSan configurations, and runs the whole suite in both.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/bootstrap.sh"
echo "== clang-format"
(cd "$repo" && git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror --style=file)
"$repo/scripts/build.sh" release
"$repo/scripts/build.sh" asan
jobs=2
echo "== release tests"
ctest --test-dir "$repo/build" --output-on-failure -j "$jobs"
echo "== ASan+UBSan tests"
# Leak checking is off: GLib and libvips keep process-lifetime caches that LSan reports.
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  ctest --test-dir "$repo/build-asan" --output-on-failure -j "$jobs"
