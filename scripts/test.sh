#!/usr/bin/env bash
# Runs all of twitch's checks and tests against a real Kafka-protocol broker:
#
#   scripts/test.sh
#
# 1. Installs with apt what the tests need and the machine lacks: a C/C++ compiler and make
#    (librdkafka is built from source), PostgreSQL 15 (the sink's tests start servers of their own
#    with scripts/postgres.sh), chromium (the live page's test looks at the page), Java 17 and
#    Maven; then fetches Apache Kafka once into ~/.cache/twitch (scripts/kafka.sh install).
# 2. cargo clippy --workspace --all-targets -- -D warnings
# 3. Starts a fresh single-node Kafka on the first free port from 19092 (or $TWITCH_TEST_PORT),
#    and exports KAFKA_BROKERS=127.0.0.1:PORT. If KAFKA_BROKERS is already set, the tests use that
#    cluster and nothing is started. Tests that kill brokers start nodes and 3-node clusters of
#    their own (scripts/kafka.sh, scripts/cluster.sh) on ports of their own.
# 4. cargo test --workspace --all-targets, then cargo test --workspace --doc.
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

step "installing what is missing: build tools, PostgreSQL 15, chromium, Java 17, Maven, Kafka"
ensure_build_tools
ensure_postgres
ensure_chromium
scripts/kafka.sh install >/dev/null

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

if [[ -n ${KAFKA_BROKERS:-} ]]; then
    step "using the brokers in KAFKA_BROKERS=$KAFKA_BROKERS"
else
    step "starting a Kafka node"
    start_own_broker "$(free_port "${TWITCH_TEST_PORT:-19092}")"
fi

step "cargo test --workspace --all-targets (KAFKA_BROKERS=$KAFKA_BROKERS)"
cargo test --workspace --all-targets

step "cargo test --workspace --doc"
cargo test --workspace --doc

step "all checks and tests passed"
