#!/usr/bin/env bash
# Runs a cluster of nisshi brokers that share one PostgreSQL database: several brokers, one
# cluster (any broker serves any partition; group and offset state is shared).
#
# Usage: scripts/cluster.sh COMMAND [OPTIONS]
#
#   start   [--brokers N] [--port FIRST] [--pg-port P]
#           Start N brokers (default 3) on 127.0.0.1:FIRST.. (default 19301), each advertising its
#           own address, over the database in DATABASE_URL or, without it, over a fresh local
#           PostgreSQL started with scripts/postgres.sh on port P (default 15440). Prints
#           `export KAFKA_BROKERS=...` with every broker.
#   stop    [--brokers N] [--port FIRST] [--pg-port P]
#           Stop the brokers, and the PostgreSQL this script started (its data is deleted).
#   env     [--brokers N] [--port FIRST]   Print `export KAFKA_BROKERS=...`.
#
# Environment:
#   DATABASE_URL   the brokers' database (postgres://...); nisshi creates its tables in it
#   everything scripts/broker.sh and scripts/postgres.sh read
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=lib.sh
source scripts/lib.sh # log, die, usage

BROKERS=3
FIRST=19301
PG_PORT=15440

parse_options() {
    while (($#)); do
        case $1 in
        --brokers) BROKERS=${2:?--brokers needs a value}; shift 2 ;;
        --port) FIRST=${2:?--port needs a value}; shift 2 ;;
        --pg-port) PG_PORT=${2:?--pg-port needs a value}; shift 2 ;;
        -h | --help) usage ;;
        *) log "unknown option: $1"; usage ;;
        esac
    done
    [[ $BROKERS =~ ^[0-9]+$ ]] && ((BROKERS >= 1)) || die "invalid --brokers: $BROKERS"
    [[ $FIRST =~ ^[0-9]+$ ]] && ((FIRST >= 1 && FIRST + BROKERS - 1 <= 65535)) || die "invalid --port: $FIRST"
    [[ $PG_PORT =~ ^[0-9]+$ ]] || die "invalid --pg-port: $PG_PORT"
}

bootstrap() {
    local list=() port
    for ((port = FIRST; port < FIRST + BROKERS; port++)); do list+=("127.0.0.1:$port"); done
    (IFS=,; echo "${list[*]}")
}

cmd_start() {
    parse_options "$@"
    local url port
    if [[ -n ${DATABASE_URL:-} ]]; then
        url=$DATABASE_URL
        log "brokers share the database in DATABASE_URL"
    else
        url=$(scripts/postgres.sh start --port "$PG_PORT")
    fi
    scripts/broker.sh install >/dev/null
    for ((port = FIRST; port < FIRST + BROKERS; port++)); do
        scripts/broker.sh start --port "$port" --storage "$url" >&2 ||
            die "broker on port $port did not start; stop the others with: scripts/cluster.sh stop --brokers $BROKERS --port $FIRST"
    done
    log "$BROKERS brokers, one cluster, over ${url%%\?*}"
    echo "export KAFKA_BROKERS=$(bootstrap)"
}

cmd_stop() {
    parse_options "$@"
    local port
    for ((port = FIRST; port < FIRST + BROKERS; port++)); do
        scripts/broker.sh stop --port "$port" >&2 || true
    done
    [[ -n ${DATABASE_URL:-} ]] || scripts/postgres.sh stop --port "$PG_PORT"
}

main() {
    local command=${1:-}
    [[ $# -gt 0 ]] && shift
    case $command in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    env) parse_options "$@"; echo "export KAFKA_BROKERS=$(bootstrap)" ;;
    *) usage ;;
    esac
}

main "$@"
