#!/usr/bin/env bash
# Runs all of twitch's checks and tests against a real Kafka-protocol broker:
#
#   scripts/test.sh
#
# 1. cargo clippy --workspace --all-targets -- -D warnings
# 2. Starts a fresh nisshi broker (built once and cached, see docs/brokers.md) on the first free
#    port from 19092 (or $TWITCH_TEST_PORT), and exports KAFKA_BROKERS=127.0.0.1:PORT.
#    If KAFKA_BROKERS is already set, the tests use that cluster and nothing is started.
# 3. cargo test --workspace --all-targets, then cargo test --workspace --doc. The sink's tests
#    (reliability/tests/postgres_sink.rs) start PostgreSQL servers of their own with
#    scripts/postgres.sh (Debian's postgresql-15; .ci/run installs it).
#
# The seed text is read from ../shared/seeds (or $TWITCH_SEED; a local clone made elsewhere
# falls back to the one beside the repository it was cloned from).
#
# The broker that this script started is stopped when it exits, whatever the outcome; the exit
# code is that of the step that failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/lib.sh

# The seed text (examples/build.rs compiles its producer unchanged) lives beside the
# repository, in ../shared/seeds. A local clone made elsewhere finds it beside the
# repository it was cloned from.
seed=shared/seeds/braiins-kafka.txt
if [[ -z ${TWITCH_SEED:-} && ! -e ../$seed ]]; then
    origin=$(git config --get remote.origin.url 2>/dev/null || true)
    if [[ -n $origin && -e $origin/../$seed ]]; then
        TWITCH_SEED=$(cd "$origin/.." && pwd)/$seed
        export TWITCH_SEED
        step "seed text from beside the origin repository: $TWITCH_SEED"
    fi
fi

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

if [[ -n ${KAFKA_BROKERS:-} ]]; then
    step "using the brokers in KAFKA_BROKERS=$KAFKA_BROKERS"
else
    step "starting a nisshi broker"
    start_own_broker "$(free_port "${TWITCH_TEST_PORT:-19092}")"
fi

step "cargo test --workspace --all-targets (KAFKA_BROKERS=$KAFKA_BROKERS)"
cargo test --workspace --all-targets

step "cargo test --workspace --doc"
cargo test --workspace --doc

step "all checks and tests passed"
