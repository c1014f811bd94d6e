#!/usr/bin/env bash
# A whole Dapo cluster on this machine: the storage (Azurite or redis-server), a learner silo and its standby, and N
# rollout silos, every one its own process on 127.0.0.1 with its own log; a run started on it; rollout silos added
# or stopped while the run goes on.
#
#   deploy/local/cluster.sh up [--storage azurite|redis] [--rollouts N] [--run NAME] [start-run options...]
#   deploy/local/cluster.sh scale rollout N      start or stop (SIGTERM: leases go back) rollout silos until N run
#   deploy/local/cluster.sh status               the processes, then `dapo-client status` of the cluster
#   deploy/local/cluster.sh client COMMAND ...   any dapo-client command on this cluster (e.g. watch, steps)
#   deploy/local/cluster.sh args                 the options that name this cluster, one per line
#   deploy/local/cluster.sh down                 stop every silo, then the storage (logs and data stay)
#
# The cluster lives in DAPO_CLUSTER_DIR (default runs/local-cluster): cluster.env (what names it), logs/NAME.log,
# pids/NAME.pid, storage/ (Azurite's or Redis's data), blobs/ (with Redis: the blobs the silos share).
# Silo settings come from the environment as for any silo (DAPO_Silo__RolloutWorkers=2, ...).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${DAPO_CLUSTER_DIR:-$root/runs/local-cluster}
silo=(dotnet "$root/silo/bin/Release/net10.0/dapo-silo.dll")
client=(dotnet "$root/client/bin/Release/net10.0/dapo-client.dll")
# Azurite's well-known development account: public, not a secret.
azurite_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

die() { echo "cluster.sh: $*" >&2; exit 1; }

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

# A port nothing listens on (127.0.0.1), picked at random from the unprivileged range.
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 30000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
  die "no free port found on 127.0.0.1"
}

alive() { [ -f "$dir/pids/$1.pid" ] && kill -0 "$(cat "$dir/pids/$1.pid")" 2>/dev/null; }

# Starts a process in its own session (it outlives this script), output to logs/NAME.log.
spawn() {
  local name=$1; shift
  setsid "$@" > "$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name.pid"
}

# Stops a process with SIGTERM and waits for it (a silo gives its leases back, the learner writes its checkpoint).
stop() {
  local name=$1 pid
  alive "$name" || { rm -f "$dir/pids/$name.pid"; return 0; }
  pid=$(cat "$dir/pids/$name.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && { echo "cluster.sh: $name did not stop within 60 s: killed" >&2; kill -KILL "$pid"; }
  rm -f "$dir/pids/$name.pid"
  echo "stopped $name"
}

wait_listening() {
  local name=$1 port=$2
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    alive "$name" || die "$name exited: $(tail -5 "$dir/logs/$name.log")"
    sleep 0.1
  done
  die "$name did not listen on 127.0.0.1:$port within 60 s"
}

# A silo has joined once it logged its engine (it starts the engine after joining the cluster).
wait_joined() {
  local name=$1
  for _ in $(seq 1 240); do
    grep -q "BLAS:" "$dir/logs/$name.log" 2>/dev/null && return 0
    alive "$name" || die "$name exited: $(tail -5 "$dir/logs/$name.log")"
    sleep 0.5
  done
  die "$name did not join within 120 s (see $dir/logs/$name.log)"
}

join_silo() {
  local name=$1 roles=$2
  mkdir -p "$dir/silos/$name"
  spawn "$name" "${silo[@]}" join --roles "$roles" --run-dir "$dir/silos/$name" "${cluster_args[@]}"
}

load() {
  [ -f "$dir/cluster.env" ] || die "no cluster in $dir: start one with \`deploy/local/cluster.sh up\`"
  # shellcheck source=/dev/null
  source "$dir/cluster.env"
}

rollouts() { # the running rollout silos, by number
  local f
  for f in "$dir"/pids/rollout-*.pid; do
    [ -e "$f" ] || continue
    f=${f##*/rollout-}; f=${f%.pid}
    alive "rollout-$f" && echo "$f"
  done | sort -n
}

scale_rollout() {
  local want=$1 running next
  [[ "$want" =~ ^[0-9]+$ ]] || die "scale rollout N: N is a number of rollout silos, not '$want'"
  mapfile -t running < <(rollouts)
  if [ "${#running[@]}" -lt "$want" ]; then
    next=1; [ "${#running[@]}" -gt 0 ] && next=$(( running[-1] + 1 ))
    local started=()
    while [ $(( ${#running[@]} + ${#started[@]} )) -lt "$want" ]; do
      join_silo "rollout-$next" rollout; started+=("rollout-$next"); next=$((next + 1))
    done
    for name in "${started[@]}"; do wait_joined "$name"; echo "joined $name"; done
  else
    # The newest go first.
    while [ "${#running[@]}" -gt "$want" ]; do stop "rollout-${running[-1]}"; unset 'running[-1]'; done
  fi
  echo "rollout silos: $want"
}

up() {
  local storage=azurite count=1 run=local rest=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --storage) storage=$2; shift 2 ;;
      --rollouts) count=$2; shift 2 ;;
      --run) run=$2; shift 2 ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  [ -f "$dir/cluster.env" ] && die "a cluster is already up in $dir (\`deploy/local/cluster.sh down\` first)"
  mkdir -p "$dir/logs" "$dir/pids" "$dir/storage"
  local cluster_id=local
  case "$storage" in
    azurite)
      local azurite="$root/.tools/azurite/node_modules/.bin/azurite" blob table queue
      [ -x "$azurite" ] || die "Azurite is not installed: run ./dapo.sh setup --test (or ./dapo.sh test) first"
      blob=$(free_port); table=$(free_port); queue=$(free_port)
      spawn storage "$azurite" --silent --loose --skipApiVersionCheck --location "$dir/storage" \
        --blobHost 127.0.0.1 --blobPort "$blob" --tableHost 127.0.0.1 --tablePort "$table" --queueHost 127.0.0.1 --queuePort "$queue"
      wait_listening storage "$blob"; wait_listening storage "$table"
      cluster_args=(--storage "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$azurite_key;BlobEndpoint=http://127.0.0.1:$blob/devstoreaccount1;TableEndpoint=http://127.0.0.1:$table/devstoreaccount1" --cluster-id "$cluster_id") ;;
    redis)
      command -v redis-server > /dev/null || die "redis-server is not installed: run ./dapo.sh test (or apt-get install redis-server) first"
      local port; port=$(free_port)
      spawn storage redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/storage" --appendonly yes --save "" --protected-mode no
      wait_listening storage "$port"
      mkdir -p "$dir/blobs"
      cluster_args=(--redis "127.0.0.1:$port" --blob-dir "$dir/blobs" --cluster-id "$cluster_id") ;;
    *) die "--storage is azurite or redis, not '$storage'" ;;
  esac
  { printf 'storage=%q\nrun=%q\n' "$storage" "$run"; printf 'cluster_args=('; printf '%q ' "${cluster_args[@]}"; printf ')\n'; } > "$dir/cluster.env"
  echo "storage: $storage (logs in $dir/logs)"
  join_silo learner-1 learner
  wait_joined learner-1; echo "joined learner-1"
  join_silo learner-2 learner   # the standby: it takes the run over if learner-1's silo dies
  scale_rollout "$count"
  wait_joined learner-2; echo "joined learner-2 (standby)"
  "${silo[@]}" start-run --run "$run" "${cluster_args[@]}" "${rest[@]}"
  echo "watch it with: deploy/local/cluster.sh client watch"
}

down() {
  load
  local f name
  for name in $(rollouts | sort -rn); do stop "rollout-$name"; done
  for f in "$dir"/pids/learner-*.pid; do [ -e "$f" ] || continue; name=${f##*/}; stop "${name%.pid}"; done
  stop storage
  rm -f "$dir/cluster.env"
  echo "the cluster in $dir is down (logs and data kept)"
}

status() {
  load
  local f name
  for f in "$dir"/pids/*.pid; do
    [ -e "$f" ] || continue
    name=${f##*/}; name=${name%.pid}
    if alive "$name"; then echo "$name: running (pid $(cat "$f"))"; else echo "$name: exited (see $dir/logs/$name.log)"; fi
  done
  "${client[@]}" status "${cluster_args[@]}" --run "$run"
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  up) up "$@" ;;
  scale)
    [ "${1:-}" = rollout ] && [ $# -eq 2 ] || die "usage: deploy/local/cluster.sh scale rollout N"
    load; scale_rollout "$2" ;;
  status) status ;;
  client) load; exec "${client[@]}" "$@" "${cluster_args[@]}" ;;
  args) load; printf '%s\n' "${cluster_args[@]}" ;;
  down) down ;;
  -h|--help|help|"") usage ;;
  *) usage >&2; die "unknown command '$command'" ;;
esac
