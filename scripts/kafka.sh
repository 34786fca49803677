#!/usr/bin/env bash
# A local single-node Apache Kafka 4.x broker (KRaft) for tests, CI and users.
#
#   scripts/kafka.sh fetch              download Kafka's jars from Maven Central (cached)
#   scripts/kafka.sh start [--port P]   format (first time) and start; prints the bootstrap address
#   scripts/kafka.sh stop               clean shutdown
#   scripts/kafka.sh kill               kill -9 (data kept: `start` again simulates an outage's end)
#   scripts/kafka.sh status             "running <pid> 127.0.0.1:<port>", exit 1 when not running
#   scripts/kafka.sh bootstrap          prints 127.0.0.1:<port>
#   scripts/kafka.sh clean              stop and delete the data directory
#
# Environment:
#   KAFKA_VERSION   Kafka version (default 4.1.1; any 4.x on Maven Central)
#   KAFKA_CACHE     where the jars are kept (default <repo>/.tools/kafka)
#   KAFKA_DIR       run directory: data, config, pid, port, broker.log (default $KAFKA_CACHE/run)
#   KAFKA_HEAP      JVM heap options (default "-Xms128m -Xmx512m")
#   KAFKA_START_TIMEOUT  seconds to wait for the broker (default 90)
#
# A restart on an existing run directory reuses its port, so clients reconnect by themselves.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
version="${KAFKA_VERSION:-4.1.1}"
cache="${KAFKA_CACHE:-$repo/.tools/kafka}"
libs="$cache/libs-$version"
run="${KAFKA_DIR:-$cache/run}"
heap="${KAFKA_HEAP:--Xms128m -Xmx512m}"
timeout="${KAFKA_START_TIMEOUT:-90}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_open() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

running_pid() {
  [[ -f "$run/pid" ]] || return 1
  local pid
  pid="$(cat "$run/pid")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

fetch() {
  if [[ -f "$libs/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "Maven (mvn) is required to fetch Kafka's jars"
  command -v java >/dev/null || die "a JDK (17+) is required"
  echo "kafka.sh: fetching Apache Kafka $version jars into $libs" >&2
  rm -rf "$libs.partial"
  mkdir -p "$libs.partial"
  mvn -q -B -f "$here/kafka/pom.xml" -Dkafka.version="$version" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs.partial" \
    > "$cache/mvn.log" 2>&1 || { cat "$cache/mvn.log" >&2; die "Maven could not fetch Kafka $version"; }
  ls "$libs.partial"/kafka_2.13-"$version".jar >/dev/null || die "kafka_2.13-$version.jar was not fetched"
  rm -rf "$libs"
  mv "$libs.partial" "$libs"
  touch "$libs/.complete"
}

java_args() {
  # The JVM command line, one word per line (paths contain no newlines).
  # shellcheck disable=SC2086
  printf '%s\n' java $heap -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "-Dkafka.logs.dir=$run" "-Dlog4j2.configurationFile=$here/kafka/log4j2.properties" -cp "$libs/*" "$@"
}

java_cmd() {
  local args
  mapfile -t args < <(java_args "$@")
  "${args[@]}"
}

start() {
  local port=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --port) port="$2"; shift 2 ;;
      *) die "start: unknown option $1" ;;
    esac
  done
  fetch
  mkdir -p "$run"
  if pid="$(running_pid)"; then
    echo "127.0.0.1:$(cat "$run/port")"
    return 0
  fi
  if [[ -z "$port" && -f "$run/port" ]]; then port="$(cat "$run/port")"; fi
  [[ -n "$port" ]] || port="$(free_port)"
  local cport
  if [[ -f "$run/controller-port" ]]; then cport="$(cat "$run/controller-port")"; else cport="$(free_port)"; fi
  while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done
  if port_open "$port"; then die "port $port is already in use"; fi
  sed -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$cport#g" -e "s#@DATA_DIR@#$run/data#g" \
    "$here/kafka/server.properties.template" > "$run/server.properties"
  echo "$port" > "$run/port"
  echo "$cport" > "$run/controller-port"
  if [[ ! -f "$run/data/meta.properties" ]]; then
    local cluster_id
    # A cluster id is a base64url UUID; one in 64 starts with "-", which the argument parser
    # takes for an option, so draw again, as Kafka's own Uuid.randomUuid() does.
    cluster_id="$(python3 -c '
import base64, uuid
while (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
    pass
print(cid)')"
    java_cmd kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" -c "$run/server.properties" \
      > "$run/format.log" 2>&1 || { cat "$run/format.log" >&2; die "formatting $run/data failed"; }
  fi
  : > "$run/broker.log"
  rm -f "$run/pid"
  local args
  mapfile -t args < <(java_args kafka.Kafka "$run/server.properties")
  # setsid: the broker outlives the shell that started it, and a Ctrl-C in it; the child
  # writes its own pid before becoming the JVM, whether or not setsid had to fork.
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$run/pid" "${args[@]}" > "$run/broker.out" 2>&1 < /dev/null &
  local waited=0
  until [[ -s "$run/pid" ]]; do sleep 0.05; waited=$((waited + 1)); (( waited < 200 )) || die "no pid"; done
  local pid
  pid="$(cat "$run/pid")"
  local deadline=$((SECONDS + timeout))
  until grep -q "Kafka Server started" "$run/broker.log" 2>/dev/null && port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$run/broker.out" "$run/broker.log" >&2 || true
      die "the broker exited during start-up (logs in $run)"
    fi
    if (( SECONDS > deadline )); then
      tail -n 30 "$run/broker.out" "$run/broker.log" >&2 || true
      die "the broker did not start within ${timeout}s (logs in $run)"
    fi
    sleep 0.2
  done
  echo "127.0.0.1:$port"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then rm -f "$run/pid"; return 0; fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS > deadline )); then echo "kafka.sh: broker did not stop in 30s, killing it" >&2; kill -9 "$pid" 2>/dev/null || true; fi
    sleep 0.2
  done
  rm -f "$run/pid"
}

kill9() {
  local pid
  if pid="$(running_pid)"; then
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$run/pid"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running $pid 127.0.0.1:$(cat "$run/port")"
  else
    echo "stopped"
    return 1
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  kill) kill9 ;;
  status) status ;;
  bootstrap) [[ -f "$run/port" ]] || die "no broker in $run"; echo "127.0.0.1:$(cat "$run/port")" ;;
  clean) stop; rm -rf "$run/data" "$run/port" "$run/controller-port" ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
