#!/usr/bin/env bash
# Installs what Dapo needs and builds it. Idempotent: on a machine already set up it installs nothing and the
# builds are incremental, so a second run takes seconds.
#
#   scripts/setup.sh            system packages for the engine, native library, .NET solution (Release)
#   scripts/setup.sh --bench    also Debian's python3-torch, for the PyTorch peer benchmark
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ libtorch-dev libopenblas0-pthread)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(python3-torch) ;;
    *) echo "setup: unknown option '$arg' (known: --bench)" >&2; exit 2 ;;
  esac
done

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "setup: installing packages needs root or sudo: $*" >&2; exit 1
  fi
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "setup: system packages present (${packages[*]})"
fi

# libtorch links the reference BLAS unless OpenBLAS provides libblas.so.3 (about 20x faster matmuls).
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || true)
case "$blas" in
  *openblas*) ;;
  *) echo "setup: selecting OpenBLAS as libblas.so.3 (was ${blas:-none})"
     as_root update-alternatives --set libblas.so.3-x86_64-linux-gnu \
       /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ;;
esac

if ! command -v dotnet >/dev/null; then
  echo "setup: the .NET 10 SDK is not installed (dotnet is not on PATH); install it from https://dot.net first" >&2
  exit 1
fi

echo "setup: building the native engine and the solution"
dotnet build Dapo.sln -c Release -v quiet -nologo -clp:NoSummary
