#!/usr/bin/env bash
# Installs patchwork from a build folder into a temporary prefix, checks the installed layout,
# then configures, builds and runs each project of examples/ against that prefix with
# find_package(patchwork), as an outside project would. Run by CTest (the `examples` test).
# Usage: scripts/test-examples.sh BUILD_DIR [CXX_COMPILER] [CMAKE]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:?usage: test-examples.sh BUILD_DIR [CXX_COMPILER] [CMAKE]}" && pwd)"
cxx="${2:-c++}"
cmake_bin="${3:-cmake}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"

"$cmake_bin" --install "$build" --prefix "$prefix" >"$tmp/install.log"

# The layout the README promises: headers under include/patchwork/, the package files, and
# none of the kernel headers that only patchwork's own sources include.
for f in include/patchwork/patchwork.h include/patchwork/core/tensor.h \
         include/patchwork/ops/softmax.h include/patchwork/io/checkpoint.h \
         lib/cmake/patchwork/patchworkConfig.cmake \
         lib/cmake/patchwork/patchworkConfigVersion.cmake; do
  [ -f "$prefix/$f" ] || { echo "test-examples: $f was not installed" >&2; exit 1; }
done
if [ -e "$prefix/include/patchwork/ops/blas.h" ]; then
  echo "test-examples: the internal header ops/blas.h was installed" >&2
  exit 1
fi
if grep -rqiE 'cairo|cli11' "$prefix/lib/cmake/patchwork"; then
  echo "test-examples: the exported targets name cairo or CLI11" >&2
  exit 1
fi

launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
for dir in "$root"/examples/*/; do
  name="$(basename "$dir")"
  echo "== $name"
  "$cmake_bin" -S "$dir" -B "$tmp/build-$name" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}" \
    >"$tmp/configure-$name.log" 2>&1 ||
    { cat "$tmp/configure-$name.log" >&2; echo "test-examples: configuring $name failed" >&2; exit 1; }
  "$cmake_bin" --build "$tmp/build-$name" -j 2 >"$tmp/build-$name.log" 2>&1 ||
    { cat "$tmp/build-$name.log" >&2; echo "test-examples: building $name failed" >&2; exit 1; }
  "$tmp/build-$name/$name" || { echo "test-examples: $name failed" >&2; exit 1; }
done
echo "test-examples: every example built and ran against the installed package"
