#!/usr/bin/env bash
# Sets everything up and runs the temperature demo (the three scenarios):
#
#   scripts/demo.sh [--cluster] [SCENARIO ARGS...]
#
# 1. Installs with apt what it needs and the machine lacks (a C/C++ compiler and make, Java 17,
#    Maven, PostgreSQL 15), and fetches Apache Kafka once into ~/.cache/twitch (scripts/kafka.sh).
# 2. Starts a fresh single Kafka node on 127.0.0.1:9092, unless KAFKA_BROKERS is set (then that
#    cluster is used) or a broker already answers on 9092 (then that one is used and left running).
#    With --cluster: starts a 3-node Kafka cluster instead (scripts/cluster.sh, ports 19301-19303,
#    replication factor 3, min.insync.replicas 2) and stops it at the end.
# 3. Builds the workspace in release mode and runs `cargo run --release -p scenarios -- ARGS`.
# 4. The database step: uses DATABASE_URL, or starts a fresh PostgreSQL 15 (scripts/postgres.sh) on
#    the first free port from 15432; temp_gen writes 600 readings to a new topic, average_temp and
#    temp_sink read them, and what landed in the database (per sensor: count and average) is
#    printed beside what average_temp printed. They must agree.
#
# A broker or database that this script started is stopped when it exits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/lib.sh
port=9092

cluster=false
if [[ ${1:-} == --cluster ]]; then
    cluster=true
    shift
fi

step "installing what is missing: build tools, PostgreSQL 15, Java 17, Maven, Kafka"
ensure_build_tools
ensure_postgres
[[ -n ${KAFKA_BROKERS:-} ]] || scripts/kafka.sh install >/dev/null

if [[ -n ${KAFKA_BROKERS:-} ]]; then
    step "using the brokers in KAFKA_BROKERS=$KAFKA_BROKERS"
elif $cluster; then
    step "starting a 3-node Kafka cluster (scripts/cluster.sh)"
    stop_cluster() { scripts/cluster.sh stop; }
    on_exit stop_cluster
    eval "$(scripts/cluster.sh start)"
else
    use_or_start_broker "$port"
fi

step "cargo build --release --workspace"
cargo build --release --workspace

step "cargo run --release -p scenarios --${*:+ $*} (KAFKA_BROKERS=$KAFKA_BROKERS)"
cargo run --release -p scenarios -- "$@"

use_postgres 15432
run_id=$(date +%s)-$$
topic=demo-sink-$run_id
schema=demo_sink_${run_id//-/_}
out=$(mktemp -d)
remove_out() { rm -rf "$out"; }
on_exit remove_out
bin=target/release

step "database step: temp_gen -> $topic -> average_temp and temp_sink (schema $schema)"
"$bin/temp_gen" --topic "$topic" --count 600 --interval 1ms --seed 42 >"$out/gen" 2>"$out/gen.log" ||
    { cat "$out/gen.log" >&2; exit 1; }
tail -n 1 "$out/gen"
"$bin/average_temp" --topic "$topic" --exit-when-idle 3 --no-dead-letter >"$out/avg" 2>"$out/avg.log" ||
    { tail -n 20 "$out/avg.log" >&2; exit 1; }
tail -n 1 "$out/avg"
"$bin/temp_sink" --topic "$topic" --group "$topic-sink" --schema "$schema" --exit-when-idle 3s \
    >"$out/sink" 2>"$out/sink.log" || { tail -n 20 "$out/sink.log" >&2; exit 1; }
tail -n 1 "$out/sink"
"$bin/temp_sink" --schema "$schema" --report >"$out/report"

step "what landed in the database beside what average_temp printed"
# average_temp: `<sensor> #<seq> p<p>@<o> <c> °C | sensor avg <x> (n=<n>) | ...`, the last line per
# sensor has its final average; temp_sink --report: `<sensor> readings <n> average <x>`.
awk '
    FNR == NR && $2 ~ /^#/ { avg[$1] = $9; n[$1] = substr($10, 4, length($10) - 4) + 0; next }
    FNR == NR && $1 == "consumed" { a = $5; sub(/,$/, "", a); avg["overall"] = a; n["overall"] = $2; next }
    FNR == NR { next }
    $2 == "readings" && $4 == "average" {
        agree = ($1 in n) && n[$1] == $3 && (avg[$1] - $5 < 2e-6 && $5 - avg[$1] < 2e-6)
        if (!agree) bad++
        printf "%-12s average_temp %5s readings, average %-10s | database %5s readings, average %-10s %s\n",
            $1, n[$1], avg[$1], $3, $5, agree ? "agree" : "DIFFER"
        rows++
    }
    END { if (bad || rows < 2) exit 1 }
' "$out/avg" "$out/report" || { echo "the database and average_temp disagree" >&2; exit 1; }
step "the database and average_temp agree"
