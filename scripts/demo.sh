#!/usr/bin/env bash
# Sets everything up and runs the temperature demo (the three scenarios):
#
#   scripts/demo.sh [--cluster] [SCENARIO ARGS...]
#
# 1. Installs the nisshi broker (built once and cached, see docs/brokers.md).
# 2. Starts it on 127.0.0.1:9092 with in-memory storage, unless KAFKA_BROKERS is set (then that
#    cluster is used) or a broker already answers on 9092 (then that one is used and left running).
#    With --cluster: starts a cluster of three nisshi brokers over one PostgreSQL instead
#    (scripts/cluster.sh, ports 19301-19303) and stops it at the end.
# 3. Builds the workspace in release mode and runs `cargo run --release -p scenarios -- ARGS`.
#
# A broker that this script started is stopped when it exits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/lib.sh
port=9092

cluster=false
if [[ ${1:-} == --cluster ]]; then
    cluster=true
    shift
fi

if $cluster; then
    step "starting a cluster of three nisshi brokers over one PostgreSQL (scripts/cluster.sh)"
    trap 'scripts/cluster.sh stop || true' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    eval "$(scripts/cluster.sh start)"
elif [[ -n ${KAFKA_BROKERS:-} ]]; then
    step "using the brokers in KAFKA_BROKERS=$KAFKA_BROKERS"
elif scripts/broker.sh status --port "$port" >/dev/null; then
    step "using the broker that already answers on 127.0.0.1:$port"
    export KAFKA_BROKERS=127.0.0.1:$port
else
    step "installing and starting a nisshi broker on 127.0.0.1:$port"
    start_own_broker "$port"
fi

step "cargo build --release --workspace"
cargo build --release --workspace

step "cargo run --release -p scenarios --${*:+ $*} (KAFKA_BROKERS=$KAFKA_BROKERS)"
cargo run --release -p scenarios -- "$@"
