#!/usr/bin/env bash
# Installs the Debian packages patchwork builds against, when they are missing.
set -euo pipefail

# libdnnl-dev's CMake config (Debian builds oneDNN with its OpenCL GPU runtime) looks for the
# OpenCL headers and library although patchwork uses only the CPU engine: ocl-icd-opencl-dev.
# Open MPI (openmpi-bin: mpirun; libopenmpi-dev: the library) runs `vit train` on several ranks.
packages=(build-essential cmake pkg-config libopenblas-openmp-dev libfmt-dev catch2
          libbenchmark-dev nlohmann-json3-dev libcli11-dev libstb-dev zlib1g-dev
          libcairo2-dev libdnnl-dev ocl-icd-opencl-dev openmpi-bin libopenmpi-dev)
[ "${PATCHWORK_WITH_TORCH:-0}" = 1 ] && packages+=(python3 python3-torch python3-numpy)
# make sanitize and make fuzz build with clang: its sanitizer and libFuzzer runtimes, its OpenMP.
[ "${PATCHWORK_WITH_CLANG:-0}" = 1 ] && packages+=(clang libclang-rt-dev libomp-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: apt-get not found. Install these packages (or your system's equivalents):" >&2
  echo "  ${missing[*]}" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
