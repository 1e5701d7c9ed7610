#!/usr/bin/env bash
# Brings the live page up: temp_gen writing readings, average_temp reading them and serving the page.
#
#   scripts/live.sh [ADDR]        # then open http://ADDR/ (default 127.0.0.1:8080); Ctrl-C stops it all
#
# 1. Uses the brokers in KAFKA_BROKERS, or a broker that already answers on 127.0.0.1:9092, or
#    installs and starts a Kafka node there (stopped again on exit).
# 2. Builds temp_gen and average_temp (release).
# 3. Runs `temp_gen --interval $LIVE_INTERVAL` (default 10ms: 100 readings/s, until stopped) on the
#    topic $LIVE_TOPIC (default live-temperatures), and `average_temp --http ADDR --metrics ADDR`:
#    the page at http://ADDR/, Prometheus metrics at http://ADDR/metrics.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/lib.sh
addr=${1:-127.0.0.1:8080}
topic=${LIVE_TOPIC:-live-temperatures}
port=9092

use_or_start_broker "$port"

step "cargo build --release -p temp_gen -p average_temp"
cargo build --release -p temp_gen -p average_temp

pids=()
stop_apps() {
    local rc=$?
    ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
    [[ -n ${own_broker_port:-} ]] && scripts/kafka.sh stop --port "$own_broker_port" || true
    exit "$rc"
}
trap stop_apps EXIT

target/release/temp_gen --topic "$topic" --interval "${LIVE_INTERVAL:-10ms}" --progress-every 1m >/dev/null &
pids+=($!)
target/release/average_temp --topic "$topic" --start end --http "$addr" --metrics "$addr" >/dev/null &
pids+=($!)
step "the live page: http://$addr/  (metrics: http://$addr/metrics); Ctrl-C stops"
wait -n "${pids[@]}"
