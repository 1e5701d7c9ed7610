# shellcheck shell=bash
# Shared by scripts/test.sh, demo.sh, live.sh and instructions.sh; sourced, not run.
# They cd to the repository's root first.

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

# Installs nisshi (built once, cached; see docs/brokers.md), starts it on 127.0.0.1:$1 and exports
# KAFKA_BROKERS. The broker is stopped when the script exits, whatever the outcome; the script's
# exit code is kept.
start_own_broker() {
    own_broker_port=$1
    scripts/broker.sh install >/dev/null
    trap stop_own_broker EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    scripts/broker.sh start --port "$own_broker_port" >&2
    export KAFKA_BROKERS=127.0.0.1:$own_broker_port
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

stop_own_broker() {
    local rc=$?
    scripts/broker.sh stop --port "$own_broker_port" || true
    exit "$rc"
}
