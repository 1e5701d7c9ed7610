#!/usr/bin/env bash
# Sets everything up and runs the temperature demo (the three scenarios):
#
#   scripts/demo.sh [SCENARIO ARGS...]
#
# 1. Installs the nisshi broker (built once and cached, see docs/brokers.md).
# 2. Starts it on 127.0.0.1:9092 with in-memory storage, unless KAFKA_BROKERS is set (then that
#    cluster is used) or a broker already answers on 9092 (then that one is used and left running).
# 3. Builds the workspace in release mode and runs `cargo run --release -p scenarios -- ARGS`.
#
# A broker that this script started is stopped when it exits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/lib.sh
port=9092

use_or_start_broker "$port"

step "cargo build --release --workspace"
cargo build --release --workspace

step "cargo run --release -p scenarios --${*:+ $*} (KAFKA_BROKERS=$KAFKA_BROKERS)"
cargo run --release -p scenarios -- "$@"
