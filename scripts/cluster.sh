#!/usr/bin/env bash
# Runs a Kafka cluster of N KRaft nodes on one host (each node both broker and controller, a static
# quorum of all N), for failover tests, transactions under faults and the soak.
#
# Usage: scripts/cluster.sh COMMAND [OPTIONS]
#
#   start   [--nodes N] [--port FIRST] [-- KEY=VALUE...]
#           Start N nodes (default 3) on 127.0.0.1:FIRST.. (default 19301; controllers on FIRST+1000..)
#           with fresh log dirs, one cluster id, replication factor N (at most 3) and
#           min.insync.replicas one less (at least 1), internal topics included. Waits until every
#           node answers, then prints `export KAFKA_BROKERS=...` with every node. KEY=VALUE
#           settings go to every node's server.properties (scripts/kafka.sh start -- ...).
#   stop    [--nodes N] [--port FIRST]   Stop the nodes (controlled shutdowns).
#   kill    --node I [--port FIRST]      SIGKILL node I (1..N): a crash.
#   restart --node I [--port FIRST]      Start node I again on its own log dir (after stop or kill).
#   env     [--nodes N] [--port FIRST]   Print `export KAFKA_BROKERS=...`.
#
# Each node's settings, log dir and logs are in target/kafka/<port>/ (scripts/kafka.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=lib.sh
source scripts/lib.sh # log, die, usage

NODES=3
FIRST=19301
NODE=
EXTRA=()

parse_options() {
    while (($#)); do
        case $1 in
        --nodes) NODES=${2:?--nodes needs a value}; shift 2 ;;
        --port) FIRST=${2:?--port needs a value}; shift 2 ;;
        --node) NODE=${2:?--node needs a value}; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h | --help) usage ;;
        *) log "unknown option: $1"; usage ;;
        esac
    done
    [[ $NODES =~ ^[0-9]+$ ]] && ((NODES >= 1 && NODES <= 9)) || die "invalid --nodes: $NODES (1 to 9)"
    [[ $FIRST =~ ^[0-9]+$ ]] && ((FIRST >= 1 && FIRST + NODES - 1 <= 64535)) || die "invalid --port: $FIRST"
    [[ -z $NODE ]] || { [[ $NODE =~ ^[0-9]+$ ]] && ((NODE >= 1 && NODE <= NODES)); } || die "invalid --node: $NODE (1 to $NODES)"
}

bootstrap() {
    local list=() i
    for ((i = 0; i < NODES; i++)); do list+=("127.0.0.1:$((FIRST + i))"); done
    (IFS=,; echo "${list[*]}")
}

# Node i (1-based) listens on FIRST+i-1, its controller on that + 1000 (kafka.sh's default).
voters() {
    local list=() i
    for ((i = 1; i <= NODES; i++)); do list+=("$i@127.0.0.1:$((FIRST + i - 1 + 1000))"); done
    (IFS=,; echo "${list[*]}")
}

cmd_start() {
    parse_options "$@"
    local id i replication=$((NODES < 3 ? NODES : 3))
    scripts/kafka.sh install >/dev/null
    id=$(scripts/kafka.sh cluster-id)
    # A node answers only once a quorum of controllers elected a leader: start all, then wait.
    for ((i = 1; i <= NODES; i++)); do
        scripts/kafka.sh start --no-wait --port $((FIRST + i - 1)) --node-id "$i" --voters "$(voters)" \
            --cluster-id "$id" --replication "$replication" -- ${EXTRA[@]+"${EXTRA[@]}"} >&2 ||
            die "node $i did not start; stop the others with: scripts/cluster.sh stop --nodes $NODES --port $FIRST"
    done
    for ((i = 1; i <= NODES; i++)); do
        scripts/kafka.sh wait --port $((FIRST + i - 1)) >&2 ||
            die "node $i did not answer; stop the others with: scripts/cluster.sh stop --nodes $NODES --port $FIRST"
    done
    log "$NODES nodes, one cluster ($id), replication factor $replication"
    echo "export KAFKA_BROKERS=$(bootstrap)"
}

cmd_stop() {
    parse_options "$@"
    local i pids=()
    # In parallel: a node's controlled shutdown waits for the others to take over its leaderships.
    for ((i = NODES; i >= 1; i--)); do
        scripts/kafka.sh stop --port $((FIRST + i - 1)) >&2 &
        pids+=($!)
    done
    wait "${pids[@]}" || true
}

main() {
    local command=${1:-}
    [[ $# -gt 0 ]] && shift
    case $command in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) parse_options "$@"; [[ -n $NODE ]] || usage; scripts/kafka.sh stop --timeout 0 --port $((FIRST + NODE - 1)) ;;
    restart) parse_options "$@"; [[ -n $NODE ]] || usage; scripts/kafka.sh start --keep --port $((FIRST + NODE - 1)) ;;
    env) parse_options "$@"; echo "export KAFKA_BROKERS=$(bootstrap)" ;;
    *) usage ;;
    esac
}

main "$@"
