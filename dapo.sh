#!/usr/bin/env bash
# One entry point for users and CI. Every command first runs scripts/setup.sh (idempotent: a second run installs
# nothing and rebuilds incrementally).
#   ./dapo.sh train [args]    train the demo recipe on this machine (embedded store); run again to resume
#   ./dapo.sh test [args]     install what the tests need, build, run the whole test suite
#   ./dapo.sh bench [name]    benchmarks: engine (default), control-plane, coordination, demo-recipe, blobs
#   ./dapo.sh silo ...        the silo executable (join a cluster, start-run): dapo-silo --help
#   ./dapo.sh client ...      the inspection console: dapo-client --help
set -euo pipefail
cd "$(dirname "$0")"
command=${1:-}
[ $# -gt 0 ] && shift
silo=silo/bin/Release/net10.0/dapo-silo.dll
case "$command" in
  setup) exec scripts/setup.sh "$@" ;;
  train)
    scripts/setup.sh
    exec dotnet "$silo" train "$@" ;;
  silo)
    scripts/setup.sh
    exec dotnet "$silo" "$@" ;;
  client)
    scripts/setup.sh >/dev/null
    exec dotnet client/bin/Release/net10.0/dapo-client.dll "$@" ;;
  test)
    scripts/setup.sh --test
    exec dotnet test Dapo.sln -c Release --no-build "$@" ;;
  bench)
    scripts/setup.sh --bench
    exec dotnet bench/Dapo.Bench/bin/Release/net10.0/Dapo.Bench.dll "$@" ;;
  *)
    echo "usage: ./dapo.sh train [--run-dir DIR] [--steps N] ... | test | bench [engine|control-plane|coordination|demo-recipe|blobs] | silo ... | client ... | setup" >&2
    exit 2 ;;
esac
