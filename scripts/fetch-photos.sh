#!/usr/bin/env bash
# Builds a corpus of real camera photos from Debian packages (no other network access needed).
#   scripts/fetch-photos.sh test   DEST   -> kphotoalbum's demo photos (camera JPEGs with EXIF)
#   scripts/fetch-photos.sh bench  DEST   -> those plus large photo wallpapers (mate, lomiri, plasma)
#   scripts/fetch-photos.sh videos DEST   -> real videos: opencv-doc's samples (vtest.avi,
#                                            Megamind.avi and its damaged twin, tree.avi, box.mp4,
#                                            cup.mp4) and kphotoalbum's movie.avi
# Idempotent: the .deb files are cached in ~/.cache/lumen-build/debs.
set -euo pipefail
kind="${1:?test|bench}"
dest="${2:?destination folder}"
cache="${LUMEN_CACHE:-$HOME/.cache/lumen-build}/debs"
case "$kind" in
  test) pkgs=(kphotoalbum) ;;
  bench) pkgs=(kphotoalbum mate-backgrounds lomiri-wallpapers-16.04 plasma-workspace-wallpapers) ;;
  videos) pkgs=(opencv-doc kphotoalbum) ;;
  *) echo "unknown corpus $kind" >&2; exit 2 ;;
esac
if [ -f "$dest/.complete" ] && [ "$(cat "$dest/.complete")" = "${pkgs[*]}" ]; then exit 0; fi
mkdir -p "$cache" "$dest"
for p in "${pkgs[@]}"; do
  if ! ls "$cache/${p}"_*.deb >/dev/null 2>&1; then
    (cd "$cache" && apt-get download -q "$p" >/dev/null 2>&1) || {
      apt-get update -qq >/dev/null 2>&1 || true
      (cd "$cache" && apt-get download -q "$p" >/dev/null)
    }
  fi
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for p in "${pkgs[@]}"; do dpkg -x "$(ls "$cache/${p}"_*.deb | head -n1)" "$tmp/$p"; done
if [ "$kind" = videos ]; then
  find "$tmp" -type f \( -iname '*.avi' -o -iname '*.mp4' -o -iname '*.mp4.gz' \) | sort |
    while read -r f; do
      name="$(basename "$f")"
      case "$name" in
        *.gz) gzip -dc "$f" >"$dest/${name%.gz}" ;;
        *) cp -f "$f" "$dest/$name" ;;
      esac
    done
  echo "${pkgs[*]}" >"$dest/.complete"
  exit 0
fi
# Real photos only: JPEGs of at least 20 kB (skips icons and the tiny category thumbnails).
find "$tmp" -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) -size +20k | sort | while read -r f; do
  rel="${f#"$tmp"/}"
  rel="$(echo "$rel" | sed -e 's#/usr/share/#/#' -e 's#/contents/#/#')"
  mkdir -p "$dest/$(dirname "$rel")"
  cp -f "$f" "$dest/$rel"
done
echo "${pkgs[*]}" >"$dest/.complete"
