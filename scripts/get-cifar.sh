#!/bin/sh
# Downloads the official CIFAR-10 or CIFAR-100 binary archive into DEST (default: <repo>/data)
# and checks its md5 (the ones the CIFAR home page gives). The reader takes the .tar.gz as it
# is, so nothing is extracted. scripts/get-cifar10.sh and get-cifar100.sh call this.
# Usage: scripts/get-cifar.sh 10|100 [DEST]
set -eu

RELEASE="${1:-}"
case "$RELEASE" in
  10) MD5="c32a1d4ab5d03f1284b67883e8d87530" ;;
  100) MD5="03b5dce01913d631647c71ecec9e9cb8" ;;
  *) echo "usage: $0 10|100 [DEST]" >&2; exit 2 ;;
esac
NAME="cifar-$RELEASE-binary.tar.gz"
URL="https://www.cs.toronto.edu/~kriz/$NAME"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${2:-$REPO/data}"
FILE="$DEST/$NAME"
TOOL="get-cifar$RELEASE"

die() { echo "$TOOL: $*" >&2; exit 1; }

md5_of() {
  if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
  elif command -v md5 >/dev/null 2>&1; then md5 -q "$1"
  elif command -v openssl >/dev/null 2>&1; then openssl md5 -r "$1" | cut -d' ' -f1
  else die "no md5sum, md5 or openssl to check the download"
  fi
}

mkdir -p "$DEST" || die "cannot create $DEST"
if [ -f "$FILE" ] && [ "$(md5_of "$FILE")" = "$MD5" ]; then
  echo "$TOOL: $FILE is already there and its md5 matches"
  exit 0
fi

# Download to a temporary name so that an interrupted transfer never looks like the archive.
PART="$FILE.part"
rm -f "$PART"
echo "$TOOL: downloading $URL to $FILE" >&2
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
echo "$TOOL: $FILE ready (md5 $MD5)" >&2
