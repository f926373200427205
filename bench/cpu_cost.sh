#!/usr/bin/env bash
# bench/cpu_cost.sh: CPU seconds per unit of work, server and load generator,
# plain and TLS. On a shared machine the rates of bench/run.sh swing with
# whatever else runs; the CPU each side spends per MB, message or connection
# swings much less, and 2 cores / (server + client cost) bounds the rate the
# pair could reach on an idle machine (an upper bound: it ignores idle waits).
#
# Usage: bench/cpu_cost.sh [stream] [pingpong] [connect]   (default: all)
# Environment: BUILD_DIR [build-bench] with tcpactor-echo, tcpactor-bench and
# epoll_echo built; DURATION [5] seconds per run (no warm-up: the server's
# CPU is read from /proc around the whole run); ECHO [BUILD_DIR's
# tcpactor-echo] another build to measure; ECHO_ARGS [] its options beyond
# the defaults a user runs (the log is off: --log-level quiet).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
DURATION=${DURATION:-5}
ECHO=${ECHO:-$BUILD/apps/tcpactor-echo}
ECHO_ARGS=${ECHO_ARGS:-}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tcpactor-cpu.XXXXXX")
SERVER_PID=""
cleanup() {
  [[ -z $SERVER_PID ]] || kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

TICK=$(getconf CLK_TCK)
cpu_s() { awk -v t="$TICK" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }

(
  cd "$TMP"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 2 -subj "/CN=tcpactor bench CA" \
    -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.pem
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout server.key -out server.csr
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 1 \
    -days 2 -extfile server.ext -out server.pem
) >"$TMP/openssl.log" 2>&1

# run NAME epoll|plain|tls BENCH-ARGS...: prints one line of costs.
run() {
  local name=$1 server=$2
  shift 2
  # shellcheck disable=SC2206 # ECHO_ARGS is a list of words
  local cmd=("$ECHO" --log-level quiet --port 0 $ECHO_ARGS)
  case $server in
    epoll) cmd=("$BUILD/bench/epoll_echo" --port 0) ;;
    tls) cmd+=(--tls.cert-file "$TMP/server.pem" --tls.key-file "$TMP/server.key") ;;
  esac
  "${cmd[@]}" >"$TMP/server.out" 2>&1 &
  SERVER_PID=$!
  local port="" i
  for ((i = 0; i < 100; i++)); do
    sleep 0.05
    # The first match: at log level info the log says it again.
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$TMP/server.out" | head -n1)
    [[ -z $port ]] || break
  done
  local c0 load line
  c0=$(cpu_s "$SERVER_PID")
  load=$(cut -d' ' -f1 /proc/loadavg)
  line=$("$BUILD/apps/tcpactor-bench" --port "$port" --json-only --warmup 0 \
    --duration "$DURATION" "$@" 2>/dev/null | grep '^RESULT ' || true)
  local c1
  c1=$(cpu_s "$SERVER_PID")
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  python3 - "$name" "$load" "$c0" "$c1" "$line" <<'PY'
import json, sys
name, load, c0, c1, line = sys.argv[1:]
if not line:
    sys.exit(print("%-16s no RESULT line" % name))
r = json.loads(line[len("RESULT "):])
server = float(c1) - float(c0)
client = r["machine"]["client_cpu_s"]
if r["mode"] == "stream":
    units, unit, scale, rate = r["bytes"] / 1e6, "ms/MB", 1e3, "%.0f MB/s" % r["mb_per_s"]
elif r["mode"] == "connect":
    units, unit, scale, rate = r["connections_established"], "us/conn", 1e6, "%.0f conn/s" % r["connections_per_s"]
else:
    units, unit, scale, rate = r["messages"], "us/msg", 1e6, "%.0f msg/s" % r["messages_per_s"]
print("%-16s load %-5s %-13s server %.2f + client %.2f = %.2f %s, 2-core bound %.0f/s, errors %d"
      % (name, load, rate, server / units * scale, client / units * scale,
         (server + client) / units * scale, unit, 2 * units / (server + client),
         r["errors"]))
PY
}

tls=(--tls --tls-ca "$TMP/ca.pem")
for what in "${@:-stream pingpong connect}"; do
  for w in $what; do # the default is one word of three
    case $w in
      stream)
        run stream-epoll epoll --mode stream
        run stream-plain plain --mode stream
        run stream-tls tls --mode stream "${tls[@]}"
        ;;
      pingpong)
        run pingpong-epoll epoll --mode pingpong
        run pingpong-plain plain --mode pingpong
        run pingpong-tls tls --mode pingpong "${tls[@]}"
        ;;
      connect)
        run connect-epoll epoll --mode connect
        run connect-plain plain --mode connect
        run connect-tls tls --mode connect "${tls[@]}"
        run connect-tls-resume tls --mode connect "${tls[@]}" --tls-resume
        ;;
      *)
        echo "unknown: $w (stream, pingpong, connect)" >&2
        exit 2
        ;;
    esac
  done
done
