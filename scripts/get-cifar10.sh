#!/bin/sh
# Downloads the official CIFAR-10 binary archive into DEST (default: <repo>/data) and checks
# its md5. The reader takes the .tar.gz as it is, so nothing is extracted.
# Usage: scripts/get-cifar10.sh [DEST]
set -eu

URL="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5="c32a1d4ab5d03f1284b67883e8d87530"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$REPO/data}"
FILE="$DEST/cifar-10-binary.tar.gz"

die() { echo "get-cifar10: $*" >&2; exit 1; }

md5_of() {
  if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
  elif command -v md5 >/dev/null 2>&1; then md5 -q "$1"
  elif command -v openssl >/dev/null 2>&1; then openssl md5 -r "$1" | cut -d' ' -f1
  else die "no md5sum, md5 or openssl to check the download"
  fi
}

mkdir -p "$DEST" || die "cannot create $DEST"
if [ -f "$FILE" ] && [ "$(md5_of "$FILE")" = "$MD5" ]; then
  echo "get-cifar10: $FILE is already there and its md5 matches"
  exit 0
fi

# Download to a temporary name so that an interrupted transfer never looks like the archive.
PART="$FILE.part"
rm -f "$PART"
echo "get-cifar10: downloading $URL to $FILE" >&2
if command -v curl >/dev/null 2>&1; then
  curl -fL --retry 2 --connect-timeout 20 -o "$PART" "$URL" ||
    { rm -f "$PART"; die "curl could not download $URL (no network?)"; }
elif command -v wget >/dev/null 2>&1; then
  wget --tries=2 --timeout=20 -O "$PART" "$URL" ||
    { rm -f "$PART"; die "wget could not download $URL (no network?)"; }
else
  die "neither curl nor wget is installed"
fi

GOT="$(md5_of "$PART")"
if [ "$GOT" != "$MD5" ]; then
  rm -f "$PART"
  die "md5 mismatch for $URL: got $GOT, expected $MD5"
fi
mv "$PART" "$FILE"
echo "get-cifar10: $FILE ready (md5 $MD5)" >&2
