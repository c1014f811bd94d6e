#!/usr/bin/env bash
# One entry point for users and CI. Every command first runs scripts/setup.sh (idempotent).
#   ./dapo.sh test            install what is missing, build, run the whole test suite
#   ./dapo.sh bench [args]    engine benchmarks against the machine's limit and PyTorch eager
set -euo pipefail
cd "$(dirname "$0")"
command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  setup) exec scripts/setup.sh "$@" ;;
  test)
    scripts/setup.sh --test
    exec dotnet test Dapo.sln -c Release --no-build "$@" ;;
  bench)
    scripts/setup.sh --bench
    exec dotnet bench/Dapo.Bench/bin/Release/net10.0/Dapo.Bench.dll "$@" ;;
  *)
    echo "usage: ./dapo.sh test | bench [engine] | setup" >&2
    exit 2 ;;
esac
