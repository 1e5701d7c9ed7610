#!/usr/bin/env bash
# Installs and runs Apache Kafka (KRaft, no ZooKeeper, no Docker) for twitch's tests and demos.
#
# Usage: scripts/kafka.sh COMMAND [OPTIONS]
#
#   install   Fetch Kafka's jars (org.apache.kafka:kafka_2.13) once with Maven into the cache,
#             with a log4j2 binding so that the broker logs. Installs Java 17 and Maven with apt
#             where they are missing on a Debian machine.
#   start     [--port N] [--keep] [--no-wait] [--timeout SECS] [--node-id ID]
#             [--controller-port P] [--voters LIST] [--cluster-id ID] [--replication R]
#             [-- KEY=VALUE...]
#             Start one combined broker+controller node on 127.0.0.1:N (default 9092; its
#             controller listens on P, default N+1000, or N-1000 past 64535) and wait until it
#             answers Kafka requests. The log dir is formatted afresh, unless --keep: then the node
#             starts again on the log dir and settings of its last start (a restart after a crash
#             keeps the data). --voters (ID@127.0.0.1:P,...), --cluster-id and --replication R
#             (default 1; min.insync.replicas is R-1, at least 1) make it a node of a cluster, as
#             scripts/cluster.sh does. KEY=VALUE lines are added to server.properties as they are.
#   wait      [--port N] [--timeout SECS]   Wait until the node on N answers (after --no-wait).
#   stop      [--port N] [--timeout SECS]   SIGTERM (a controlled shutdown), then SIGKILL after
#             SECS (default 30). --timeout 0 is a SIGKILL at once: a crash.
#   status    [--port N]   Exit 0 if a broker answers on the port, 1 if ours runs but does not
#                          answer, 3 if nothing answers.
#   env       [--port N]   Print `export KAFKA_BROKERS=127.0.0.1:N`.
#   cluster-id  Print a new cluster id, for --cluster-id.
#
# Environment:
#   TWITCH_CACHE   cache directory (default ~/.cache/twitch); Kafka goes to $TWITCH_CACHE/kafka-<version>
#   TWITCH_STATE   settings, log dirs, logs and pid files (default <repo>/target/kafka), one
#                  directory per port
#   JAVA_HOME      the Java (17 or newer) to run Kafka with (default: `java` on the PATH)
#   KAFKA_HEAP     the node's heap (default 512m; -Xms and -Xmx)
set -euo pipefail

readonly KAFKA_VERSION=4.1.1
readonly LOG4J_VERSION=2.24.3 # log4j-slf4j-impl: the binding for Kafka's slf4j 1.7 API
readonly HOST=127.0.0.1

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TWITCH_CACHE:-$HOME/.cache/twitch}
STATE=${TWITCH_STATE:-$REPO/target}/kafka
KAFKA_HOME=$CACHE/kafka-$KAFKA_VERSION

# shellcheck source=lib.sh
source "$REPO/scripts/lib.sh" # log, die, usage, apt_install, kafka_ping, alive, now_ms, port_in_use

state_dir() { echo "$STATE/$1"; }

# The java binary: $JAVA_HOME/bin/java, or java on the PATH.
java_bin() {
    if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
        echo "$JAVA_HOME/bin/java"
    else
        command -v java
    fi
}

# The major version of a java binary (17 for "17.0.15", 1 for "1.8.0").
java_major() {
    "$1" -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p'
}

# Makes sure Java 17 or newer and Maven are there; installs them with apt where they are missing.
ensure_java_and_maven() {
    local java major
    if java=$(java_bin) && major=$(java_major "$java") && ((major >= 17)); then
        :
    else
        log "Kafka $KAFKA_VERSION needs Java 17 or newer (found: ${java:-none} ${major:-}); installing openjdk-17-jre-headless with apt"
        apt_install openjdk-17-jre-headless || die "could not install Java 17 (apt-get install openjdk-17-jre-headless failed); set JAVA_HOME to a Java 17 or newer"
    fi
    if ! command -v mvn >/dev/null; then
        log "Maven is missing (it fetches Kafka's jars); installing maven with apt"
        apt_install maven || die "could not install Maven (apt-get install maven failed)"
    fi
}

# Prints the pid of the node that this script started on PORT, if it still runs.
pid_of() {
    local port=$1 dir file pid
    dir=$(state_dir "$port")
    file=$dir/kafka.pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    # Guard against a recycled pid: the process must be our node with this port's settings.
    if [[ -r /proc/$pid/cmdline ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "kafka.Kafka $dir/server.properties" || return 1
    fi
    echo "$pid"
}

# --- install -------------------------------------------------------------------------------------

cmd_install() {
    [[ $# -eq 0 ]] || usage
    if [[ -f $KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar ]]; then
        echo "$KAFKA_HOME"
        return
    fi
    ensure_java_and_maven
    mkdir -p "$CACHE"
    # One install at a time: a second caller waits for the first and then finds the jars.
    exec 9>"$CACHE/kafka-$KAFKA_VERSION.lock"
    if ! flock -n 9; then
        log "another install of Kafka $KAFKA_VERSION holds the lock; waiting for it"
        flock 9
    fi
    if [[ -f $KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar ]]; then
        echo "$KAFKA_HOME"
        return
    fi

    local work=$KAFKA_HOME.partial started=$SECONDS
    rm -rf "$work"
    mkdir -p "$work"
    cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>twitch.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
    log "fetching Kafka $KAFKA_VERSION (org.apache.kafka:kafka_2.13 and its dependencies) with Maven into $KAFKA_HOME; once"
    if ! mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1; then
        tail -n 30 "$work/mvn.log" >&2
        die "mvn dependency:copy-dependencies failed for org.apache.kafka:kafka_2.13:$KAFKA_VERSION (full log: $work/mvn.log)"
    fi
    [[ -f $work/libs/kafka_2.13-$KAFKA_VERSION.jar ]] || die "Maven fetched no kafka_2.13-$KAFKA_VERSION.jar (log: $work/mvn.log)"
    rm -rf "$KAFKA_HOME"
    mv "$work" "$KAFKA_HOME"
    log "Kafka $KAFKA_VERSION installed in $((SECONDS - started)) s: $(find "$KAFKA_HOME/libs" -name '*.jar' | wc -l) jars, $(du -sh "$KAFKA_HOME/libs" | cut -f1)"
    echo "$KAFKA_HOME"
}

# --- start / wait / stop / status / env ----------------------------------------------------------

PORT=9092
CONTROLLER_PORT=
NODE_ID=1
VOTERS=
CLUSTER_ID=
REPLICATION=1
KEEP=false
WAIT=true
TIMEOUT=
EXTRA=()

parse_options() {
    while (($#)); do
        case $1 in
        --port) PORT=${2:?--port needs a value}; shift 2 ;;
        --controller-port) CONTROLLER_PORT=${2:?--controller-port needs a value}; shift 2 ;;
        --node-id) NODE_ID=${2:?--node-id needs a value}; shift 2 ;;
        --voters) VOTERS=${2:?--voters needs a value}; shift 2 ;;
        --cluster-id) CLUSTER_ID=${2:?--cluster-id needs a value}; shift 2 ;;
        --replication) REPLICATION=${2:?--replication needs a value}; shift 2 ;;
        --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
        --keep) KEEP=true; shift ;;
        --no-wait) WAIT=false; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -h | --help) usage ;;
        *) log "unknown option: $1"; usage ;;
        esac
    done
    valid_port "$PORT" || die "invalid port: $PORT"
    if [[ -z $CONTROLLER_PORT ]]; then
        CONTROLLER_PORT=$((PORT <= 64535 ? PORT + 1000 : PORT - 1000))
    fi
    valid_port "$CONTROLLER_PORT" || die "invalid controller port: $CONTROLLER_PORT"
    [[ $NODE_ID =~ ^[0-9]+$ ]] || die "invalid node id: $NODE_ID"
    [[ $REPLICATION =~ ^[1-9]$ ]] || die "invalid replication factor: $REPLICATION"
    [[ -z $TIMEOUT || $TIMEOUT =~ ^[0-9]+$ ]] || die "invalid timeout: $TIMEOUT"
    local kv
    for kv in ${EXTRA[@]+"${EXTRA[@]}"}; do
        [[ $kv == ?*=* ]] || die "not a KEY=VALUE setting: $kv"
    done
}

valid_port() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= 65535)); }

# The node's server.properties: deploy/kafka/server.properties with its @NAME@s replaced, then
# the KEY=VALUE settings given after `--`.
server_properties() {
    local dir=$1 min_isr=$((REPLICATION > 1 ? REPLICATION - 1 : 1))
    sed -e "s|@NODE_ID@|$NODE_ID|g" -e "s|@VOTERS@|${VOTERS:-$NODE_ID@$HOST:$CONTROLLER_PORT}|g" \
        -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" -e "s|@LOG_DIR@|$dir/data|g" \
        -e "s|@REPLICATION@|$REPLICATION|g" -e "s|@MIN_ISR@|$min_isr|g" "$REPO/deploy/kafka/server.properties"
    local kv
    for kv in ${EXTRA[@]+"${EXTRA[@]}"}; do echo "$kv"; done
}

# Prints the end of the node's logs, stops it if it still runs, and fails.
start_failed() {
    local pid=$1 dir=$2
    shift 2
    log "error: $*"
    log "last lines of $dir/server.log and $dir/stdout.log:"
    tail -n 20 "$dir/server.log" 2>/dev/null | sed 's/^/    /' >&2
    tail -n 10 "$dir/stdout.log" 2>/dev/null | sed 's/^/    /' >&2
    [[ -n $pid ]] && alive "$pid" && kill -KILL "$pid" 2>/dev/null
    rm -f "$dir/kafka.pid"
    exit 1
}

# Waits until the node answers an ApiVersions request; prints how long it took.
wait_ready() {
    local pid=$1 dir=$2 started=$3 deadline
    deadline=$((started + ${TIMEOUT:-60} * 1000))
    until kafka_ping "$HOST" "$PORT"; do
        alive "$pid" || start_failed "$pid" "$dir" "Kafka exited during startup"
        (($(now_ms) < deadline)) ||
            start_failed "$pid" "$dir" "Kafka did not answer on $HOST:$PORT within ${TIMEOUT:-60}s"
        sleep 0.1
    done
    local ms=$(($(now_ms) - started))
    log "Kafka $KAFKA_VERSION node $(sed -n 's/^node.id=//p' "$dir/server.properties") (pid $pid) answers on $HOST:$PORT; ready in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s (log: $dir/server.log)"
}

cmd_start() {
    parse_options "$@"
    local dir pid started java
    dir=$(state_dir "$PORT")
    mkdir -p "$dir"

    if pid=$(pid_of "$PORT"); then
        log "the Kafka node (pid $pid) that this script started already runs on port $PORT"
        $WAIT && wait_ready "$pid" "$dir" "$(now_ms)"
        return 0
    fi
    rm -f "$dir/kafka.pid"
    if kafka_ping "$HOST" "$PORT"; then
        log "a Kafka broker already answers on $HOST:$PORT (not started by this script); using it"
        return
    fi
    port_in_use "$PORT" && die "$HOST:$PORT is in use by something that does not answer Kafka requests"
    # A restart listens where its kept settings say.
    if $KEEP && [[ -f $dir/server.properties ]]; then
        CONTROLLER_PORT=$(sed -n 's/^listeners=.*CONTROLLER:\/\/[^:]*:\([0-9]*\).*/\1/p' "$dir/server.properties")
    fi
    port_in_use "$CONTROLLER_PORT" && die "the controller port $HOST:$CONTROLLER_PORT is in use; pick another with --controller-port"
    [[ -f $KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar ]] ||
        die "Kafka $KAFKA_VERSION is not installed in $KAFKA_HOME; run: scripts/kafka.sh install"
    java=$(java_bin) || die "java not found; run: scripts/kafka.sh install (it installs Java 17 with apt)"

    if $KEEP; then
        [[ -f $dir/server.properties && -f $dir/data/meta.properties ]] ||
            die "--keep: no formatted log dir of an earlier start on port $PORT in $dir"
    else
        rm -rf "$dir/data" "$dir/server.log" "$dir/stdout.log"
        server_properties "$dir" >"$dir/server.properties"
        [[ -n $CLUSTER_ID ]] || CLUSTER_ID=$(cmd_cluster_id)
        "$java" -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool format -t "$CLUSTER_ID" \
            -c "$dir/server.properties" >"$dir/format.log" 2>&1 ||
            { cat "$dir/format.log" >&2; die "formatting the log dir $dir/data failed"; }
    fi

    started=$(now_ms)
    local heap=${KAFKA_HEAP:-512m}
    (
        cd "$dir"
        exec nohup "$java" "-Xms$heap" "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
            "-Dkafka.logs.dir=$dir" "-Dlog4j2.configurationFile=$REPO/deploy/kafka/log4j2.xml" \
            -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$dir/server.properties"
    ) </dev/null >"$dir/stdout.log" 2>&1 &
    pid=$!
    disown "$pid" # no "Killed" job notice if start_failed kills it
    echo "$pid" >"$dir/kafka.pid"
    log "started Kafka $KAFKA_VERSION (pid $pid) on $HOST:$PORT, controller $HOST:$CONTROLLER_PORT$($KEEP && echo ", on its earlier log dir") (log: $dir/server.log)"
    if $WAIT; then
        wait_ready "$pid" "$dir" "$started"
    fi
}

# Prints a new cluster id (kafka.tools.StorageTool random-uuid).
cmd_cluster_id() {
    local java
    java=$(java_bin) || die "java not found; run: scripts/kafka.sh install (it installs Java 17 with apt)"
    "$java" -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null ||
        die "kafka.tools.StorageTool random-uuid failed (is Kafka installed? scripts/kafka.sh install)"
}

cmd_wait() {
    parse_options "$@"
    local dir pid
    dir=$(state_dir "$PORT")
    pid=$(pid_of "$PORT") || die "no Kafka node started by this script runs on port $PORT"
    wait_ready "$pid" "$dir" "$(now_ms)"
}

cmd_stop() {
    parse_options "$@"
    local dir pid waited=0 limit=$((${TIMEOUT:-30} * 10))
    dir=$(state_dir "$PORT")
    if ! pid=$(pid_of "$PORT"); then
        rm -f "$dir/kafka.pid"
        log "no Kafka node started by this script runs on port $PORT"
        return
    fi
    if ((limit == 0)); then
        kill -KILL "$pid" 2>/dev/null || true
    else
        kill -TERM "$pid" 2>/dev/null || true
        while alive "$pid" && ((waited < limit)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if alive "$pid"; then
            log "Kafka (pid $pid) still runs ${TIMEOUT:-30}s after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    for ((waited = 0; waited < 50; waited++)); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && die "Kafka (pid $pid) on port $PORT still runs after SIGKILL"
    rm -f "$dir/kafka.pid"
    log "$( ((limit == 0)) && echo killed || echo stopped) Kafka (pid $pid) on port $PORT"
}

cmd_status() {
    parse_options "$@"
    local dir pid
    dir=$(state_dir "$PORT")
    pid=$(pid_of "$PORT") || pid=
    if kafka_ping "$HOST" "$PORT"; then
        if [[ -n $pid ]]; then
            echo "$HOST:$PORT answers Kafka requests: Kafka $KAFKA_VERSION pid $pid, log $dir/server.log"
        else
            echo "$HOST:$PORT answers Kafka requests (a broker not started by this script)"
        fi
    elif [[ -n $pid ]]; then
        echo "Kafka pid $pid runs but does not answer on $HOST:$PORT (log: $dir/server.log)"
        return 1
    else
        echo "no broker answers on $HOST:$PORT"
        return 3
    fi
}

main() {
    local command=${1:-}
    [[ $# -gt 0 ]] && shift
    case $command in
    install) cmd_install "$@" ;;
    start) cmd_start "$@" ;;
    wait) cmd_wait "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    env) parse_options "$@"; echo "export KAFKA_BROKERS=$HOST:$PORT" ;;
    cluster-id) cmd_cluster_id ;;
    -h | --help | help) usage ;;
    *) usage ;;
    esac
}

main "$@"
