#!/bin/sh
# Downloads the official CIFAR-10 binary archive into DEST (default: <repo>/data), md5-checked.
# Usage: scripts/get-cifar10.sh [DEST]
exec sh "$(dirname "$0")/get-cifar.sh" 10 "$@"
