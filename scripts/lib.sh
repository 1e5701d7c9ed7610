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

# Installs Debian packages with apt (apt-get update first, once per script run), with sudo
# when not root.
apt_updated=false
apt_install() {
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    command -v apt-get >/dev/null || { log "apt-get not found: install $* by hand"; return 1; }
    if ! $apt_updated; then
        "${sudo[@]}" apt-get update -qq || return
        apt_updated=true
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Installs chromium with apt where it is missing (the live page's test looks at the page with it).
ensure_chromium() {
    command -v chromium >/dev/null && return
    log "chromium is missing (the live page's test opens the page in it); installing it with apt"
    apt_install chromium fonts-liberation
}

# Installs PostgreSQL 15 with apt where it is missing (the sink's tests and the demo's database step
# start throwaway servers of it with scripts/postgres.sh).
ensure_postgres() {
    local bin=/usr/lib/postgresql/15/bin
    [[ -x $bin/postgres && -x $bin/initdb && -x $bin/pg_ctl ]] && return
    log "PostgreSQL 15 is missing; installing postgresql-15 with apt"
    apt_install postgresql-15
}

# Installs a C and C++ compiler and make with apt where they are missing (rdkafka-sys builds
# librdkafka with ./configure && make).
ensure_build_tools() {
    command -v make >/dev/null && command -v cc >/dev/null && command -v c++ >/dev/null &&
        [[ -e /usr/include/stdio.h ]] && return
    log "a C/C++ compiler or make is missing; installing build-essential with apt"
    apt_install build-essential
}

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

# Sends a Kafka ApiVersions v0 request to HOST:PORT and succeeds if the reply carries our
# correlation id (42) and error code 0. Needs only bash (/dev/tcp), coreutils and od.
#   request: size=14 | api_key=18 | api_version=0 | correlation_id=42 | client_id="ping"
#   reply:   size    | correlation_id | error_code | ...
kafka_ping() {
    local reply
    # shellcheck disable=SC2016 # $0 and $1 belong to the inner bash
    reply=$(timeout 2 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x04ping" >&3
        head -c 10 <&3 | od -An -tx1' "$1" "$2" 2>/dev/null) || return 1
    reply=${reply//[[:space:]]/}
    [[ $reply == ????????0000002a0000 ]]
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

# Installs Kafka (fetched once, cached; see docs/brokers.md), starts a fresh node on 127.0.0.1:$1
# and exports KAFKA_BROKERS. The node is stopped when the script exits, whatever the outcome; the
# script's exit code is kept.
start_own_broker() {
    own_broker_port=$1
    scripts/kafka.sh install >/dev/null
    on_exit stop_own_broker
    scripts/kafka.sh start --port "$own_broker_port" >&2
    export KAFKA_BROKERS=127.0.0.1:$own_broker_port
}

stop_own_broker() { scripts/kafka.sh stop --port "$own_broker_port"; }

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
# running), or installs and starts a Kafka node there (start_own_broker); exports KAFKA_BROKERS.
use_or_start_broker() {
    local port=$1
    if [[ -n ${KAFKA_BROKERS:-} ]]; then
        step "using the brokers in KAFKA_BROKERS=$KAFKA_BROKERS"
    elif scripts/kafka.sh status --port "$port" >/dev/null; then
        step "using the broker that already answers on 127.0.0.1:$port"
        export KAFKA_BROKERS=127.0.0.1:$port
    else
        step "installing and starting a Kafka node on 127.0.0.1:$port"
        start_own_broker "$port"
    fi
}

stop_own_postgres() { scripts/postgres.sh stop --port "$own_postgres_port"; }
