#!/usr/bin/env bash
# One entry point for users and CI. Every command first runs scripts/setup.sh (idempotent: a second run installs
# nothing and rebuilds incrementally).
#   ./dapo.sh train [args]    train the demo recipe on this machine (one embedded silo); run again to resume
#   ./dapo.sh test [args]     install what the tests need, build, run the whole test suite
#   ./dapo.sh bench [name]    benchmarks (./dapo.sh bench --help lists them): engine (default), control-plane, ...
#   ./dapo.sh silo ...        the silo executable (join a cluster, start-run): dapo-silo --help
#   ./dapo.sh client ...      the inspection console: dapo-client --help
#   ./dapo.sh cluster ...     a whole cluster on this machine: deploy/local/cluster.sh (up, scale, status, down)
set -euo pipefail
cd "$(dirname "$0")"
command=${1:-}
[ $# -gt 0 ] && shift
silo=silo/bin/Release/net10.0/dapo-silo.dll
client=client/bin/Release/net10.0/dapo-client.dll

usage() {
  cat <<'EOF'
usage: ./dapo.sh COMMAND [options]

  train [options]     train the demo recipe on this machine (one embedded silo); run it again to resume
                      (./dapo.sh train --help lists its options)
  test [options]      install what the tests need, build, and run the whole test suite (options go to dotnet test)
  bench [NAME]        benchmarks; ./dapo.sh bench --help lists them
  silo COMMAND ...    the silo: join a cluster, start-run, experiments (./dapo.sh silo --help)
  client COMMAND ...  the read-only inspection console (./dapo.sh client --help)
  cluster COMMAND ... a whole cluster on this machine, every silo its own process: up, scale rollout N, status,
                      client ..., down (./dapo.sh cluster --help; deploy/README.md)
  setup               install and build only

Every command first installs what it needs and builds (idempotent; a second run installs nothing).
EOF
}

# The client is run often and briefly: skip the build check when its program is newer than every source it is
# built from (the check itself takes seconds).
client_is_fresh() {
  [ -f "$client" ] || return 1
  [ -z "$(find client src Directory.Build.props Directory.Packages.props -newer "$client" \
          \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' \) -print -quit 2>/dev/null)" ]
}

case "$command" in
  -h|--help|help) usage; exit 0 ;;
  setup) exec scripts/setup.sh "$@" ;;
  train)
    scripts/setup.sh
    exec dotnet "$silo" train "$@" ;;
  silo)
    scripts/setup.sh
    exec dotnet "$silo" "$@" ;;
  client)
    client_is_fresh || scripts/setup.sh >/dev/null
    exec dotnet "$client" "$@" ;;
  cluster)
    scripts/setup.sh --cluster
    exec deploy/local/cluster.sh "$@" ;;
  test)
    scripts/setup.sh --test
    exec dotnet test Dapo.Orleans.sln -c Release --no-build "$@" ;;
  bench)
    scripts/setup.sh --bench
    exec dotnet bench/Dapo.Bench/bin/Release/net10.0/Dapo.Bench.dll "$@" ;;
  *)
    [ -n "$command" ] && echo "dapo.sh: unknown command '$command'" >&2
    usage >&2
    exit 2 ;;
esac
