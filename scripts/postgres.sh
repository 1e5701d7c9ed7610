#!/usr/bin/env bash
# Runs a throwaway PostgreSQL (Debian's postgresql-15) for the sink's tests and demo.
#
# Usage: scripts/postgres.sh COMMAND [OPTIONS]
#
#   start   [--port N] [--timeout SECS]
#           Start PostgreSQL on 127.0.0.1:N (default 15432) and wait until it accepts connections.
#           The data directory is a fresh one in a temp folder (initdb, trust auth, superuser
#           `postgres`), or the one that `stop --keep` left on this port. Prints the URL.
#   stop    [--port N] [--keep] [--timeout SECS]
#           Stop it (fast shutdown, immediate after SECS, default 10) and delete its data
#           directory, unless --keep: then the next `start` on the port carries on with the data.
#   status  [--port N]   Exit 0 if it accepts connections, 3 if nothing listens.
#   env     [--port N]   Print `export DATABASE_URL=postgres://postgres@127.0.0.1:N/postgres`.
#
# As root, PostgreSQL runs as the user `postgres` (from the postgresql-15 package), which owns
# the data directory; otherwise as the current user.
#
# Environment:
#   PG_BIN        PostgreSQL's binaries (default /usr/lib/postgresql/15/bin)
#   PG_OS_USER    the user PostgreSQL runs as when this script runs as root (default postgres)
#   TWITCH_STATE  where the data directory of each port is noted (default <repo>/target/postgres)
set -euo pipefail

readonly HOST=127.0.0.1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
source "$REPO/scripts/lib.sh" # port_in_use, log, die, usage
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_OS_USER=${PG_OS_USER:-postgres}
STATE=${TWITCH_STATE:-$REPO/target}/postgres


PORT=15432
TIMEOUT=
KEEP=false

parse_options() {
    while (($#)); do
        case $1 in
        --port) PORT=${2:?--port needs a value}; shift 2 ;;
        --port=*) PORT=${1#*=}; shift ;;
        --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
        --timeout=*) TIMEOUT=${1#*=}; shift ;;
        --keep) KEEP=true; shift ;;
        -h | --help) usage ;;
        *) log "unknown option: $1"; usage ;;
        esac
    done
    if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
        die "invalid port: $PORT"
    fi
    [[ -z $TIMEOUT || $TIMEOUT =~ ^[0-9]+$ ]] || die "invalid timeout: $TIMEOUT"
}

url() { echo "postgres://postgres@$HOST:$PORT/postgres"; }

# Runs a PostgreSQL binary as the user that owns the data (never as root).
as_pg() {
    local bin=$PG_BIN/$1
    shift
    if ((EUID == 0)); then
        runuser -u "$PG_OS_USER" -- "$bin" "$@"
    else
        "$bin" "$@"
    fi
}

# The data directory noted for PORT, if it still exists.
data_dir_of() {
    local file=$STATE/$PORT/datadir dir
    [[ -f $file ]] || return 1
    dir=$(<"$file")
    [[ -n $dir && -f $dir/PG_VERSION ]] || return 1
    echo "$dir"
}

# Whether a server runs on that data directory.
running() { as_pg pg_ctl status -D "$1" >/dev/null 2>&1; }

accepting() { as_pg pg_isready -q -h "$HOST" -p "$PORT" -t 1 >/dev/null 2>&1; }

check_install() {
    [[ -x $PG_BIN/postgres && -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] ||
        die "PostgreSQL 15 is not installed in $PG_BIN: apt-get install postgresql-15 (or set PG_BIN)"
    if ((EUID == 0)); then
        id -u "$PG_OS_USER" >/dev/null 2>&1 ||
            die "user '$PG_OS_USER' does not exist; PostgreSQL must not run as root (apt-get install postgresql-15 creates it)"
    fi
}

# A fresh data directory in a temp folder, owned by the PostgreSQL user.
init_data_dir() {
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/twitch-pg-$PORT.XXXXXX")
    ((EUID == 0)) && chown "$PG_OS_USER": "$dir"
    chmod 700 "$dir"
    as_pg initdb -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 || {
        tail -n 20 "$dir.initdb.log" >&2
        die "initdb failed (log: $dir.initdb.log)"
    }
    rm -f "$dir.initdb.log"
    echo "$dir"
}

cmd_start() {
    parse_options "$@"
    check_install
    local dir started=$SECONDS
    mkdir -p "$STATE/$PORT"
    if dir=$(data_dir_of) && running "$dir"; then
        log "PostgreSQL started by this script already runs on port $PORT ($dir)"
        url
        return
    fi
    port_in_use "$PORT" && die "$HOST:$PORT is in use by something not started by this script"
    if ! dir=$(data_dir_of); then
        dir=$(init_data_dir)
        echo "$dir" >"$STATE/$PORT/datadir"
    fi
    # The socket goes to the data directory: /var/run/postgresql may not exist or be writable.
    as_pg pg_ctl start -D "$dir" -l "$dir/postgres.log" -w -t "${TIMEOUT:-30}" \
        -o "-p $PORT -k $dir -c listen_addresses=$HOST" >/dev/null || {
        tail -n 20 "$dir/postgres.log" >&2
        die "PostgreSQL did not start on $HOST:$PORT (log: $dir/postgres.log)"
    }
    until accepting; do
        ((SECONDS - started < ${TIMEOUT:-30})) || die "PostgreSQL does not accept connections on $HOST:$PORT"
        sleep 0.1
    done
    log "PostgreSQL 15 accepts connections on $HOST:$PORT in $((SECONDS - started))s (data and log: $dir)"
    url
}

cmd_stop() {
    parse_options "$@"
    local dir
    if ! dir=$(data_dir_of); then
        log "no PostgreSQL started by this script on port $PORT"
        rm -rf "${STATE:?}/$PORT"
        return
    fi
    if running "$dir"; then
        as_pg pg_ctl stop -D "$dir" -m fast -w -t "${TIMEOUT:-10}" >/dev/null 2>&1 ||
            as_pg pg_ctl stop -D "$dir" -m immediate -w >/dev/null 2>&1 || true
        log "stopped PostgreSQL on port $PORT"
    fi
    if ! $KEEP; then
        rm -rf "$dir" "${STATE:?}/$PORT"
    fi
}

cmd_status() {
    parse_options "$@"
    if accepting; then
        echo "PostgreSQL accepts connections on $HOST:$PORT: $(url)"
    elif port_in_use "$PORT"; then
        echo "something listens on $HOST:$PORT but does not accept PostgreSQL connections"
        return 1
    else
        echo "nothing listens on $HOST:$PORT"
        return 3
    fi
}

main() {
    local command=${1:-}
    [[ $# -gt 0 ]] && shift
    case $command in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    env) parse_options "$@"; echo "export DATABASE_URL=$(url)" ;;
    *) usage ;;
    esac
}

main "$@"
