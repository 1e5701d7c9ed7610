#!/usr/bin/env bash
# Counts what twitch adds per record, in instructions rather than seconds (wall-clock ratios on a
# small shared machine swing by ±0.15 between runs; instruction counts barely move):
#
#   scripts/instructions.sh [--records N] CASE...      e.g. scripts/instructions.sh group-read keyed
#
# For each case and side (raw rdkafka, twitch), runs `twitch-bench --quick --records N --side S
# --cases CASE` under `valgrind --tool=callgrind` and prints the instructions per record of the
# benchmark task (`run_pass`) minus its untimed preparation (prefill, and the twitch side's
# byte count of typed values), and twitch / raw. librdkafka's own threads are not
# counted: they run the same code for both sides. N defaults to 20000; fewer records leave more of
# the fixed costs (consumer creation, group join) in the per-record figure.
#
# Uses the brokers in KAFKA_BROKERS, or starts a Kafka node of its own on the first free port
# from 19800 and stops it at the end. Needs valgrind (apt install valgrind). Callgrind output stays
# in target/callgrind/ for callgrind_annotate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

records=20000
cases=()
while (($#)); do
    case $1 in
    --records) records=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "instructions.sh: unknown option $1" >&2; exit 2 ;;
    *) cases+=("$1"); shift ;;
    esac
done
if ((${#cases[@]} == 0)); then
    echo "instructions.sh: name at least one case (twitch-bench --help lists them)" >&2
    exit 2
fi
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed (apt install valgrind)" >&2; exit 1; }

source scripts/lib.sh
if [[ -z ${KAFKA_BROKERS:-} ]]; then
    # (From 19800: the reliability tests use 19700 to 19702.)
    start_own_broker "$(free_port 19800)"
fi

cargo build --release -p twitch-bench >&2
out=target/callgrind
mkdir -p "$out"

# Inclusive instructions of one function of the benchmark, 0 when absent.
inclusive() {
    local listing
    listing=$(callgrind_annotate --inclusive=yes "$1")
    awk -v f="$2" 'index($0, f) && !n++ { gsub(",", "", $1); print $1 } END { if (!n) print 0 }' <<<"$listing"
}

printf '| case | records | raw | raw-stored | twitch | twitch / raw | twitch / raw-stored |\n|---|---:|---:|---:|---:|---:|---:|\n'
ratio() { [[ -n $2 ]] && awk -v t="$1" -v r="$2" 'BEGIN { printf "%.3f", t / r }' || echo -; }
for case in "${cases[@]}"; do
    declare -A per=()
    sides=(raw twitch)
    # The group-read cases also have raw rdkafka storing each processed offset.
    [[ $case == group* ]] && sides+=(raw-stored)
    for side in "${sides[@]}"; do
        file=$out/$case.$side.out
        echo "instructions.sh: $case, $side side, $records records under callgrind" >&2
        valgrind --tool=callgrind --callgrind-out-file="$file" ./target/release/twitch-bench \
            --target broker --quick --records "$records" --side "$side" --cases "$case" >"$out/$case.$side.log" 2>&1 ||
            { echo "instructions.sh: the bench failed; see $out/$case.$side.log" >&2; exit 1; }
        loop=$(inclusive "$file" 'twitch_bench::cases::run_pass::{{closure}}')
        prefill=$(inclusive "$file" 'twitch_bench::cases::consume::prefill::{{closure}}')
        # The twitch side of the typed cases encodes the values once more, untimed, to count bytes.
        sizing=$(inclusive "$file" 'twitch_bench::cases::typed::encoded_size')
        per[$side]=$(((loop - prefill - sizing) / records))
    done
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$case" "$records" "${per[raw]}" "${per[raw-stored]:--}" "${per[twitch]}" \
        "$(ratio "${per[twitch]}" "${per[raw]}")" "$(ratio "${per[twitch]}" "${per[raw-stored]:-}")"
done
