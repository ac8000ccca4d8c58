#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is missing, builds, runs lumen.
#   scripts/run.sh index ~/Pictures          (any lumen arguments; default: index ~/Pictures)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/bootstrap.sh" >&2
if [ ! -x "$repo/build/src/cli/lumen" ]; then
  echo "[build] building lumen (about 5 minutes on 2 cores the first time; seconds afterwards)" >&2
fi
"$repo/scripts/build.sh" release lumen >/dev/null
if [ $# -eq 0 ]; then set -- index "$HOME/Pictures"; fi
exec "$repo/build/src/cli/lumen" "$@"
