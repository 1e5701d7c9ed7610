# shellcheck shell=bash
# Shared by the scripts in scripts/; sourced, not run.
# They cd to the repository's root first.

# A script's own messages on stderr, prefixed with its name; die exits 1.
log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Prints the script's header comment (from line 2 to `set -euo`) as its usage and exits 2.
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

# Prints a progress line with the seconds since the script started.
step() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*" >&2; }

# Whether something listens on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The first port from $1 on that nothing listens on.
free_port() {
    local port=$1
    while port_in_use "$port"; do port=$((port + 1)); done
    echo "$port"
}

# Cleanups run when the script exits, the last added first; the script's exit code is kept.
exit_hooks=()
on_exit() {
    exit_hooks=("$1" ${exit_hooks[@]+"${exit_hooks[@]}"})
    trap run_exit_hooks EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
run_exit_hooks() {
    local rc=$? hook
    for hook in "${exit_hooks[@]}"; do "$hook" || true; done
    exit "$rc"
}

# Installs nisshi (built once, cached; see docs/brokers.md), starts it on 127.0.0.1:$1 and exports
# KAFKA_BROKERS. The broker is stopped when the script exits, whatever the outcome; the script's
# exit code is kept.
start_own_broker() {
    own_broker_port=$1
    scripts/broker.sh install >/dev/null
    on_exit stop_own_broker
    scripts/broker.sh start --port "$own_broker_port" >&2
    export KAFKA_BROKERS=127.0.0.1:$own_broker_port
}

stop_own_broker() { scripts/broker.sh stop --port "$own_broker_port"; }

# Uses the database in DATABASE_URL if it is set. Otherwise starts a fresh PostgreSQL 15 (see
# scripts/postgres.sh) on the first free port from $1 and exports DATABASE_URL; it is stopped and
# its data deleted when the script exits.
use_postgres() {
    if [[ -n ${DATABASE_URL:-} ]]; then
        step "using the database in DATABASE_URL"
        return
    fi
    own_postgres_port=$(free_port "$1")
    on_exit stop_own_postgres
    DATABASE_URL=$(scripts/postgres.sh start --port "$own_postgres_port")
    export DATABASE_URL
}

# Uses the brokers in KAFKA_BROKERS, or a broker that already answers on 127.0.0.1:$1 (left
# running), or installs and starts nisshi there (start_own_broker); exports KAFKA_BROKERS.
use_or_start_broker() {
    local port=$1
    if [[ -n ${KAFKA_BROKERS:-} ]]; then
        step "using the brokers in KAFKA_BROKERS=$KAFKA_BROKERS"
    elif scripts/broker.sh status --port "$port" >/dev/null; then
        step "using the broker that already answers on 127.0.0.1:$port"
        export KAFKA_BROKERS=127.0.0.1:$port
    else
        step "installing and starting a nisshi broker on 127.0.0.1:$port"
        start_own_broker "$port"
    fi
}

stop_own_postgres() { scripts/postgres.sh stop --port "$own_postgres_port"; }
