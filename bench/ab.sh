#!/usr/bin/env bash
# bench/ab.sh: paired A/B of two tcpactor-echo builds, for "no regression"
# claims. Each round runs A then B (then B then A the next round, so drift
# and warm caches favour neither) against a fresh server at its defaults
# plus ECHO_ARGS, with one load generator, and prints each pair's B/A ratio
# and the median per scenario. Servers run at their defaults: add
# --log-level etc. through ECHO_ARGS.
#
#   bench/ab.sh A_ECHO B_ECHO [BENCH_BIN]
#
# Environment: ROUNDS [5], DURATION [4], WARMUP [1],
#   SCENARIOS [pingpong stream connect framed-pingpong], ECHO_ARGS [] (both),
#   A_ARGS [], B_ARGS [] (one side each: the same binary twice compares
#   two settings, e.g. A_ARGS="--io-threads 1").
# framed-pingpong runs both servers with --framing=length:4 (skipped for a
# build whose tcpactor-echo does not know the option).
set -euo pipefail

A=${1:?usage: bench/ab.sh A_ECHO B_ECHO [BENCH_BIN]}
B=${2:?usage: bench/ab.sh A_ECHO B_ECHO [BENCH_BIN]}
BENCH=${3:-$(dirname "$B")/../tcpactor-bench/tcpactor-bench}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
SCENARIOS=${SCENARIOS:-pingpong stream connect framed-pingpong}
read -r -a EXTRA <<<"${ECHO_ARGS:-}"
read -r -a A_EXTRA <<<"${A_ARGS:-}"
read -r -a B_EXTRA <<<"${B_ARGS:-}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tcpactor-ab.XXXXXX")
PID=""
cleanup() {
  [[ -z $PID ]] || kill -TERM "$PID" 2>/dev/null || true
  [[ -z $PID ]] || wait "$PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

start() { # start ECHO ARGS...: sets PID and PORT
  "$@" --port 0 "${EXTRA[@]}" >"$TMP/out" 2>"$TMP/err" &
  PID=$!
  local i
  for ((i = 0; i < 200; i++)); do
    if [[ $(head -n1 "$TMP/out") =~ listening\ on\ [^\ ]*:([0-9]+) ]]; then
      PORT=${BASH_REMATCH[1]}
      return 0
    fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "server did not start: $(cat "$TMP/err")" >&2
  return 1
}

stop() {
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}

run() { # run ECHO SCENARIO ARGS...: prints the figure
  local echo=$1 scenario=$2 server_args=("${@:3}") args key
  case $scenario in
    pingpong) args=(--mode pingpong --connections 50 --size 64) key=messages_per_s ;;
    framed-pingpong)
      args=(--mode pingpong --connections 50 --size 64 --framing length:4)
      server_args+=(--framing length:4) key=messages_per_s
      ;;
    stream) args=(--mode stream --connections 4 --size 16KiB --window 256KiB) key=mb_per_s ;;
    connect) args=(--mode connect --connections 50 --size 64) key=connections_per_s ;;
  esac
  start "$echo" "${server_args[@]}" || {
    echo -
    return
  }
  local line
  line=$("$BENCH" --port "$PORT" --json-only --duration "$DURATION" \
    --warmup "$WARMUP" "${args[@]}" | grep '^RESULT ' || true)
  stop
  sed -n "s/.*\"$key\":\([-0-9.e+]*\).*/\1/p" <<<"$line"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for scenario in $SCENARIOS; do
  ratios=() as=() bs=()
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then
      a=$(run "$A" "$scenario" "${A_EXTRA[@]}")
      b=$(run "$B" "$scenario" "${B_EXTRA[@]}")
    else
      b=$(run "$B" "$scenario" "${B_EXTRA[@]}")
      a=$(run "$A" "$scenario" "${A_EXTRA[@]}")
    fi
    [[ -n $a && -n $b && $a != - && $b != - ]] || {
      echo "$scenario: round $r failed (A '$a', B '$b')" >&2
      continue
    }
    as+=("$a") bs+=("$b")
    ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')")
  done
  ((${#ratios[@]} > 0)) || continue
  printf '%-16s A %10.0f  B %10.0f  B/A median %s  pairs %s\n' "$scenario" \
    "$(median "${as[@]}")" "$(median "${bs[@]}")" "$(median "${ratios[@]}")" \
    "${ratios[*]}"
done
