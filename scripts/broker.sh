#!/usr/bin/env bash
# Installs and runs nisshi, a Kafka-compatible broker written in Rust, for twitch's tests and demos.
#
# Usage: scripts/broker.sh COMMAND [OPTIONS]
#
#   install   Build nisshi 0.8.1 once and cache it outside the repo (about 19 minutes on 2 cores).
#   start     [--port N] [--storage URL] [--data-dir DIR] [--timeout SECS] [-- NISSHI_FLAGS...]
#             Start nisshi on 127.0.0.1:N (default 9092) and wait until it answers Kafka requests.
#             URL is memory:// (default, lost on stop) or sqlite://FILE (FILE relative to the data
#             dir, or absolute). NISSHI_FLAGS go to `nisshi broker` as they are, for example
#             `-- --group-initial-rebalance-delay 100ms`.
#   stop      [--port N] [--timeout SECS]   SIGTERM, then SIGKILL after SECS (default 10).
#   status    [--port N]   Exit 0 if a broker answers on the port, 1 if ours runs but does not
#                          answer, 3 if nothing answers.
#   env       [--port N]   Print `export KAFKA_BROKERS=127.0.0.1:N`.
#   path      Print the path of the nisshi binary.
#
# Environment:
#   TWITCH_CACHE      cache directory (default ~/.cache/twitch); nisshi goes to $TWITCH_CACHE/nisshi-0.8.1
#   TWITCH_STATE      pid files, logs, data (default <repo>/target/broker); one directory per port
#   NISSHI_BIN        use this nisshi binary instead of building one
#   NISSHI_TOOLCHAIN  rustup toolchain for the build (default nightly; nisshi needs Rust >= 1.96)
#   NISSHI_LOG        RUST_LOG for the broker (default warn)
set -euo pipefail

readonly NISSHI_VERSION=0.8.1
readonly MIN_RUST_MINOR=96
readonly HOST=127.0.0.1

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TWITCH_CACHE:-$HOME/.cache/twitch}
STATE=${TWITCH_STATE:-$REPO/target/broker}
INSTALL_ROOT=$CACHE/nisshi-$NISSHI_VERSION
NISSHI=${NISSHI_BIN:-$INSTALL_ROOT/bin/nisshi}
TOOLCHAIN=${NISSHI_TOOLCHAIN:-nightly}

# shellcheck source=lib.sh
source "$REPO/scripts/lib.sh" # log, die, usage

# Milliseconds since the epoch (GNU date), or whole seconds * 1000 where %N is not supported.
now_ms() {
    local t
    t=$(date +%s%3N)
    [[ $t == *N ]] && t=$(($(date +%s) * 1000))
    echo "$t"
}

# Whether the process runs (a zombie, which a container's pid 1 may never reap, does not).
alive() {
    local pid=$1 stat
    kill -0 "$pid" 2>/dev/null || return 1
    [[ -r /proc/$pid/stat ]] || return 0
    stat=$(<"/proc/$pid/stat") || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Sends a Kafka ApiVersions v0 request to 127.0.0.1:PORT and succeeds if the reply carries our
# correlation id (42) and error code 0. Needs only bash (/dev/tcp), coreutils and od.
#   request: size=14 | api_key=18 | api_version=0 | correlation_id=42 | client_id="ping"
#   reply:   size    | correlation_id | error_code | ...
kafka_ping() {
    local port=$1 reply
    # shellcheck disable=SC2016 # $0 and $1 belong to the inner bash
    reply=$(timeout 2 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x04ping" >&3
        head -c 10 <&3 | od -An -tx1' "$HOST" "$port" 2>/dev/null) || return 1
    reply=${reply//[[:space:]]/}
    [[ $reply == ????????0000002a0000 ]]
}

# Whether anything accepts TCP connections on 127.0.0.1:PORT.
listening() {
    # shellcheck disable=SC2016 # $0 and $1 belong to the inner bash
    timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

state_dir() { echo "$STATE/$1"; }

# Prints the pid of the nisshi that this script started on PORT, if it still runs.
pid_of() {
    local port=$1 file pid
    file="$(state_dir "$port")/nisshi.pid"
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    # Guard against a recycled pid: the process must be our broker on this port.
    if [[ -r /proc/$pid/cmdline ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--listener-url tcp://$HOST:$port " || return 1
    fi
    echo "$pid"
}

# --- install -------------------------------------------------------------------------------------

check_toolchain() {
    command -v rustup >/dev/null ||
        die "rustup not found. nisshi $NISSHI_VERSION needs Rust >= 1.$MIN_RUST_MINOR; install rustup" \
            "(https://rustup.rs), or set NISSHI_BIN to a nisshi binary."
    if ! rustup toolchain list | awk '{print $1}' | grep -Eq "^$TOOLCHAIN(-|$)"; then
        die "the rustup toolchain '$TOOLCHAIN' is not installed, and nisshi $NISSHI_VERSION needs" \
            "Rust >= 1.$MIN_RUST_MINOR (stable here is: $(rustc --version 2>/dev/null || echo none))." \
            "Install it with 'rustup toolchain install $TOOLCHAIN --profile minimal'," \
            "or set NISSHI_TOOLCHAIN to an installed toolchain >= 1.$MIN_RUST_MINOR," \
            "or set NISSHI_BIN to a nisshi binary."
    fi
    local version minor
    version=$(rustc +"$TOOLCHAIN" --version)
    minor=$(sed -E 's/^rustc 1\.([0-9]+).*/\1/' <<<"$version")
    if ! [[ $minor =~ ^[0-9]+$ ]] || ((minor < MIN_RUST_MINOR)); then
        die "toolchain '$TOOLCHAIN' is $version; nisshi $NISSHI_VERSION needs Rust >= 1.$MIN_RUST_MINOR"
    fi
}

# Waits for a `cargo install nisshi` into the same root that was started some other way.
wait_for_other_install() {
    command -v pgrep >/dev/null || return 0
    local pids
    if pids=$(pgrep -f "cargo.* install nisshi .*--root $INSTALL_ROOT"); then
        log "another 'cargo install nisshi' into $INSTALL_ROOT is running (pid ${pids//$'\n'/ }); waiting for it"
        while pgrep -f "cargo.* install nisshi .*--root $INSTALL_ROOT" >/dev/null; do sleep 15; done
    fi
}

cmd_install() {
    [[ $# -eq 0 ]] || usage
    if [[ -x $NISSHI ]]; then
        echo "$NISSHI"
        return
    fi
    [[ -z ${NISSHI_BIN:-} ]] || die "NISSHI_BIN=$NISSHI_BIN is not an executable file"
    mkdir -p "$CACHE"

    # One build at a time: a second caller waits for the first and then finds the binary.
    if command -v flock >/dev/null; then
        exec 9>"$CACHE/nisshi-$NISSHI_VERSION.lock"
        if ! flock -n 9; then
            log "another install of nisshi $NISSHI_VERSION holds the lock; waiting for it"
            flock 9
        fi
    fi
    wait_for_other_install
    if [[ -x $NISSHI ]]; then
        echo "$NISSHI"
        return
    fi

    check_toolchain
    local build_log=$CACHE/nisshi-install.log started=$SECONDS heartbeat rc=0
    log "building nisshi $NISSHI_VERSION with 'cargo +$TOOLCHAIN install' into $INSTALL_ROOT;"
    log "this takes about 19 minutes on 2 cores and happens once (log: $build_log)"
    (while sleep 60 &>/dev/null; do # the sleep must not hold our stderr open
        log "still building ($(((SECONDS - started) / 60)) min): $(tail -n 1 "$build_log" 2>/dev/null | cut -c1-100)"
    done) &
    heartbeat=$!
    # shellcheck disable=SC2064 # expand $heartbeat now
    trap "kill $heartbeat 2>/dev/null || true" EXIT
    cargo +"$TOOLCHAIN" install nisshi --version "$NISSHI_VERSION" --locked \
        --root "$INSTALL_ROOT" >"$build_log" 2>&1 || rc=$?
    kill "$heartbeat" 2>/dev/null || true
    if ((rc != 0)); then
        tail -n 40 "$build_log" >&2
        die "cargo install nisshi failed with exit code $rc (full log: $build_log)"
    fi
    log "built nisshi in $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s"
    echo "$NISSHI"
}

# --- start / stop / status / env -----------------------------------------------------------------

PORT=9092
STORAGE=memory://
DATA_DIR=
TIMEOUT=
EXTRA=()

parse_options() {
    while (($#)); do
        case $1 in
        --port) PORT=${2:?--port needs a value}; shift 2 ;;
        --port=*) PORT=${1#*=}; shift ;;
        --storage) STORAGE=${2:?--storage needs a value}; shift 2 ;;
        --storage=*) STORAGE=${1#*=}; shift ;;
        --data-dir) DATA_DIR=${2:?--data-dir needs a value}; shift 2 ;;
        --data-dir=*) DATA_DIR=${1#*=}; shift ;;
        --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
        --timeout=*) TIMEOUT=${1#*=}; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -h | --help) usage ;;
        *) log "unknown option: $1"; usage ;;
        esac
    done
    if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
        die "invalid port: $PORT"
    fi
    [[ -z $TIMEOUT || $TIMEOUT =~ ^[0-9]+$ ]] || die "invalid timeout: $TIMEOUT"
}

# Turns the --storage value into nisshi's --storage-engine URL. nisshi opens a sqlite:// file
# relative to its working directory (the data dir) after dropping one leading '/' from the URL
# path, so an absolute file needs the form sqlite:////abs/file.
storage_url() {
    case $1 in
    memory://*) echo "$1" ;;
    sqlite) echo "sqlite://nisshi.db" ;;
    sqlite:///*) echo "sqlite:///${1#sqlite://}" ;;
    sqlite://?*) echo "$1" ;;
    postgres://* | postgresql://*) echo "$1" ;;
    *) die "unsupported storage '$1': use memory:// or sqlite://FILE (FILE relative to the data dir, or absolute)" ;;
    esac
}

# Prints the end of the broker log, stops the broker if it still runs, and fails.
start_failed() {
    local pid=$1 dir=$2
    shift 2
    log "error: $*"
    log "last lines of $dir/nisshi.log:"
    tail -n 30 "$dir/nisshi.log" | sed 's/^/    /' >&2
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    rm -f "$dir/nisshi.pid"
    exit 1
}

# Waits until the broker answers an ApiVersions request; prints how long it took.
wait_ready() {
    local pid=$1 dir=$2 started=$3 deadline
    deadline=$((started + ${TIMEOUT:-30} * 1000))
    until kafka_ping "$PORT"; do
        alive "$pid" || start_failed "$pid" "$dir" "nisshi exited during startup"
        (($(now_ms) < deadline)) ||
            start_failed "$pid" "$dir" "nisshi did not answer Kafka requests on $HOST:$PORT within ${TIMEOUT:-30}s"
        sleep 0.05
    done
    local ms=$(($(now_ms) - started))
    log "nisshi (pid $pid, $(<"$dir/storage")) answers on $HOST:$PORT; ready in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s"
}

cmd_start() {
    parse_options "$@"
    local dir pid started storage
    dir=$(state_dir "$PORT")
    mkdir -p "$dir"

    if pid=$(pid_of "$PORT"); then
        log "nisshi (pid $pid) started by this script already runs on port $PORT"
        if [[ $(<"$dir/storage") != "$(storage_url "$STORAGE")" ]]; then
            log "note: it uses $(<"$dir/storage"); stop it first to start one with $STORAGE"
        fi
        wait_ready "$pid" "$dir" "$(now_ms)"
        return
    fi
    rm -f "$dir/nisshi.pid"
    if kafka_ping "$PORT"; then
        log "a Kafka broker already answers on $HOST:$PORT (not started by this script); using it"
        return
    fi
    listening "$PORT" && die "$HOST:$PORT is in use by something that does not answer Kafka requests"
    [[ -x $NISSHI ]] || die "nisshi is not installed at $NISSHI; run: scripts/broker.sh install"

    storage=$(storage_url "$STORAGE")
    DATA_DIR=${DATA_DIR:-$dir/data}
    mkdir -p "$DATA_DIR"
    DATA_DIR=$(cd "$DATA_DIR" && pwd)
    case $storage in
    sqlite:////*)
        local file=${storage#sqlite:///}
        mkdir -p "$(dirname "${file%%\?*}")" || die "cannot create the directory of ${file%%\?*}"
        ;;
    esac
    echo "$storage" >"$dir/storage"

    started=$(now_ms)
    # The broker runs in the data dir: sqlite:// files are relative to it, and nisshi reads a
    # .env file from its working directory (or a parent) for settings not given as flags.
    (
        cd "$DATA_DIR"
        RUST_LOG=${NISSHI_LOG:-warn} exec nohup "$NISSHI" broker \
            --listener-url "tcp://$HOST:$PORT" \
            --advertised-listener-url "tcp://$HOST:$PORT" \
            --storage-engine "$storage" \
            ${EXTRA[@]+"${EXTRA[@]}"}
    ) </dev/null >"$dir/nisshi.log" 2>&1 &
    pid=$!
    disown "$pid" # no "Killed" job notice if start_failed kills it
    echo "$pid" >"$dir/nisshi.pid"
    log "started nisshi $NISSHI_VERSION (pid $pid) on $HOST:$PORT with storage $storage (log: $dir/nisshi.log)"
    wait_ready "$pid" "$dir" "$started"
}

cmd_stop() {
    parse_options "$@"
    local dir pid waited=0 limit=$((${TIMEOUT:-10} * 10))
    dir=$(state_dir "$PORT")
    if ! pid=$(pid_of "$PORT"); then
        rm -f "$dir/nisshi.pid"
        log "no nisshi started by this script runs on port $PORT"
        return
    fi
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && ((waited < limit)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if alive "$pid"; then
        log "nisshi (pid $pid) still runs ${TIMEOUT:-10}s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/nisshi.pid"
    log "stopped nisshi (pid $pid) on port $PORT"
}

cmd_status() {
    parse_options "$@"
    local dir pid
    dir=$(state_dir "$PORT")
    pid=$(pid_of "$PORT") || pid=
    if kafka_ping "$PORT"; then
        if [[ -n $pid ]]; then
            echo "$HOST:$PORT answers Kafka requests: nisshi pid $pid, storage $(<"$dir/storage"), log $dir/nisshi.log"
        else
            echo "$HOST:$PORT answers Kafka requests (a broker not started by this script)"
        fi
    elif [[ -n $pid ]]; then
        echo "nisshi pid $pid runs but does not answer on $HOST:$PORT (log: $dir/nisshi.log)"
        return 1
    else
        echo "no broker answers on $HOST:$PORT"
        return 3
    fi
}

cmd_env() {
    parse_options "$@"
    echo "export KAFKA_BROKERS=$HOST:$PORT"
}

main() {
    local command=${1:-}
    [[ $# -gt 0 ]] && shift
    case $command in
    install) cmd_install "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    env) cmd_env "$@" ;;
    path) echo "$NISSHI" ;;
    -h | --help | help) usage ;;
    *) usage ;;
    esac
}

main "$@"
