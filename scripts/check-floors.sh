#!/usr/bin/env bash
# Checks that the floors of STYLE.md hold:
#   1. no #include points up a floor (core <- ops <- nn <- models <- apps; optim, io and data
#      need only core; dist needs core and optim);
#   2. the op families of ops/ include each other without a cycle;
#   3. with --graphviz CMAKE: `cmake --graphviz` of a fresh configure shows that no library
#      target reaches cairo or CLI11 (and, so that the check can fail, that vit reaches both).
# Usage: scripts/check-floors.sh [--root DIR] [--graphviz CMAKE]; exits 1 naming each violation.
# --self-test runs checks 1 and 2 on a copy of the tree with an upward include and an ops/ cycle
# put in, and fails unless both are reported.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cmake_bin=""
self_test=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$(cd "$2" && pwd)"; shift 2 ;;
    --graphviz) cmake_bin="$2"; shift 2 ;;
    --self-test) self_test=1; shift ;;
    *) echo "check-floors: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
cd "$root"

if [ "$self_test" = 1 ]; then
  copy="$(mktemp -d)"
  trap 'rm -rf "$copy"' EXIT
  cp -r core ops optim io "$copy"/
  echo '#include "io/safetensors.h"' >>"$copy/optim/ema.h"
  echo '#include "ops/elementwise.h"' >>"$copy/ops/broadcast.cpp"
  if out="$(bash "$0" --root "$copy" 2>&1)"; then
    echo "check-floors --self-test: the planted violations passed unnoticed" >&2
    exit 1
  fi
  for want in "optim/ema.h:.*optim/ includes io/" "ops/ families include each other in a cycle"; do
    grep -qE "$want" <<<"$out" || { echo "check-floors --self-test: no report matching '$want' in:" >&2; echo "$out" >&2; exit 1; }
  done
  echo "check-floors --self-test: both planted violations reported"
  exit 0
fi

# The floors each folder may include (itself included). apps sits on top and may include all.
declare -A allowed=(
  [core]="core"
  [ops]="core ops"
  [nn]="core ops nn"
  [optim]="core optim"
  [models]="core ops nn models"
  [io]="core io"
  [data]="core data"
  [dist]="core optim dist"
)
floors=" ${!allowed[*]} apps "

failed=0
fail() {
  echo "check-floors: $*" >&2
  failed=1
}

# ---- 1. includes that point up ----
for folder in "${!allowed[@]}"; do
  [ -d "$folder" ] || continue
  while IFS= read -r hit; do
    [ -n "$hit" ] || continue
    file="${hit%%:*}"
    rest="${hit#*:}"
    line="${rest%%:*}"
    target="$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"$rest")"
    case "$floors" in *" $target "*) ;; *) continue ;; esac  # not a floor (e.g. "tests/...")
    case " ${allowed[$folder]} " in
      *" $target "*) ;;
      *) fail "$file:$line: $folder/ includes $target/ (a floor $folder may not use: it may use ${allowed[$folder]})" ;;
    esac
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[a-z_]+/' "$folder" \
             --include='*.h' --include='*.cpp' || true)
done

# ---- 2. no include cycle between the op families of ops/ ----
# A family is a .h/.cpp pair; its helper files (X_layout.h, X_reference.cpp) belong to X.
if [ -d ops ]; then
  family() { basename "$1" | sed -E 's/\.(h|cpp)$//; s/_(layout|reference)$//'; }
  edges="$(mktemp)"
  trap 'rm -f "$edges"' EXIT
  for f in ops/*.h ops/*.cpp; do
    [ -e "$f" ] || continue
    from="$(family "$f")"
    grep -oE '#include "ops/[a-z_0-9]+\.h"' "$f" | sed -E 's/.*"ops\/(.*)"/\1/' |
      while read -r inc; do
        to="$(family "$inc")"
        [ "$to" = "$from" ] || echo "$to $from"
      done >>"$edges" || true
  done
  if ! cycle="$(tsort "$edges" 2>&1 >/dev/null)" || [ -n "$cycle" ]; then
    fail "ops/ families include each other in a cycle: $(grep -v 'input contains a loop' <<<"$cycle" | sed 's/^tsort: //' | tr '\n' ' ')"
  fi
fi

# ---- 3. cmake --graphviz: library targets link neither cairo nor CLI11 ----
if [ -n "$cmake_bin" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp" "${edges:-}"' EXIT
  if ! "$cmake_bin" -S "$root" -B "$tmp/build" -DPATCHWORK_BUILD_APPS=ON \
         -DPATCHWORK_BUILD_TESTS=OFF -DPATCHWORK_BUILD_BENCH=OFF \
         --graphviz="$tmp/graph/deps.dot" >"$tmp/configure.log" 2>&1; then
    cat "$tmp/configure.log" >&2
    fail "configuring $root for --graphviz failed"
  else
    # deps.dot.<target>: everything <target> links, directly or through other targets.
    for lib in patchwork_core patchwork_io patchwork_data patchwork_nn patchwork_dist patchwork; do
      dot="$tmp/graph/deps.dot.$lib"
      if [ ! -f "$dot" ]; then
        fail "cmake --graphviz wrote no graph for library target $lib"
      elif grep -qiE 'cairo|CLI11' "$dot"; then
        fail "library target $lib links an app-only dependency: $(grep -ioE '"[^"]*(cairo|cli11)[^"]*"' "$dot" | sort -u | tr '\n' ' ')"
      fi
    done
    # The positive control: the same grep finds both in the program's graph.
    for dep in cairo CLI11; do
      grep -qi "$dep" "$tmp/graph/deps.dot.vit" 2>/dev/null ||
        fail "cmake --graphviz shows no $dep under vit: the graph no longer shows external libraries, so the check above proves nothing"
    done
  fi
fi

if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "check-floors: no include points up a floor; ops/ has no include cycle${cmake_bin:+; no library target links cairo or CLI11}"
