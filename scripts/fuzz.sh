#!/usr/bin/env bash
# Builds the frame codec and PROXY header fuzzers (tests/fuzz/fuzz_*.cpp) with clang's
# libFuzzer, AddressSanitizer (with leak checks) and UBSan, and runs each for
# a bounded time on a seed corpus this script writes. Prints per target the
# inputs executed; exits non-zero on any crash, leak, timeout or broken
# invariant (the reproducer lands in $FUZZ_DIR/artifacts/).
#
# Environment: FUZZ_SECONDS (20 per target), FUZZ_DIR (build-fuzz),
# FUZZ_CXX (clang++-14), FUZZ_RSS_MB (2048), FUZZ_JOBS (2, for compiling).
# Only the codec sources are compiled (bytes, errors, framing, frame_codec)
# and the PROXY header parser, plus CAF's headers and libcaf_core: no
# sockets, no Asio.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
FUZZ_CXX=${FUZZ_CXX:-clang++-14}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_JOBS=${FUZZ_JOBS:-2}
TARGETS=(length_prefix delimiter exact proxy_header)
LIB_SOURCES=(bytes errors framing frame_codec proxy_header)

t0=$SECONDS
if ! command -v "$FUZZ_CXX" >/dev/null; then
  echo "fuzz.sh: $FUZZ_CXX not found (apt-get install clang-14" \
    "libclang-rt-14-dev, or run scripts/install-deps.sh)" >&2
  exit 1
fi

flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer
  -fsanitize=address,undefined -fno-sanitize-recover=undefined
  -Wall -Wextra -Werror -Ilibtcpactor -Ilibtcpactor/src)
mkdir -p "$FUZZ_DIR/obj" "$FUZZ_DIR/artifacts"

# Every header of ours these files include; an edit rebuilds everything.
headers=(libtcpactor/tcpactor/{bytes,errors,framing}.hpp
  libtcpactor/src/{frame_codec,proxy_header}.hpp tests/fuzz/*.hpp)
# stale OUT SRC: OUT is missing or older than SRC or a header.
stale() {
  local out=$1 dep
  [[ -f $out ]] || return 0
  for dep in "$2" "${headers[@]}"; do
    [[ $dep -nt $out ]] && return 0
  done
  return 1
}

# Compiles in the background, FUZZ_JOBS at a time; any failure stops us.
pids=()
compile() {
  local out=$1
  shift
  echo "fuzz.sh: compiling $out"
  "$FUZZ_CXX" "${flags[@]}" "$@" -o "$out" &
  pids+=($!)
  if ((${#pids[@]} >= FUZZ_JOBS)); then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
}
wait_all() {
  local pid
  for pid in "${pids[@]}"; do
    wait "$pid"
  done
  pids=()
}

objs=()
for src in "${LIB_SOURCES[@]}"; do
  obj=$FUZZ_DIR/obj/$src.o
  objs+=("$obj")
  # The library gets coverage instrumentation but no libFuzzer main.
  if stale "$obj" "libtcpactor/src/$src.cpp"; then
    compile "$obj" -fsanitize=fuzzer-no-link -c "libtcpactor/src/$src.cpp"
  fi
done
for t in "${TARGETS[@]}"; do
  obj=$FUZZ_DIR/obj/fuzz_$t.o
  if stale "$obj" "tests/fuzz/fuzz_$t.cpp"; then
    compile "$obj" -fsanitize=fuzzer -c "tests/fuzz/fuzz_$t.cpp"
  fi
done
wait_all
for t in "${TARGETS[@]}"; do
  bin=$FUZZ_DIR/fuzz_$t
  newest=$FUZZ_DIR/obj/fuzz_$t.o
  for obj in "${objs[@]}"; do
    [[ $obj -nt $newest ]] && newest=$obj
  done
  if [[ ! -f $bin || $newest -nt $bin ]]; then
    compile "$bin" -fsanitize=fuzzer "$FUZZ_DIR/obj/fuzz_$t.o" "${objs[@]}" \
      -lcaf_core -pthread
  fi
done
wait_all
echo "fuzz.sh: built in $((SECONDS - t0)) s"

# Seeds: a config prefix (see each target's first lines), then the stream.
seed() {
  local dir=$FUZZ_DIR/seeds/$1
  mkdir -p "$dir"
  printf "$3" >"$dir/$2"
}
# length_prefix: flags, max (2), piece seed (2), frames.
seed length_prefix be4 '\x02\x00\x64\x00\x01\x00\x00\x00\x03abc\x00\x00\x00\x00\x00\x00\x00\x02hi'
seed length_prefix le2_inclusive_bytewise '\x1d\x01\x00\x00\x07\x05\x00abc\x02\x00\x03\x00z'
seed length_prefix huge8 '\x23\x00\x10\x00\x09\xff\xff\xff\xff\xff\xff\xff\xffxyz'
seed length_prefix one_truncated '\x20\x00\x20\x00\x03\x03abc\x00\x05hello\x07trunc'
seed length_prefix below_header '\x0a\x00\x20\x00\x03\x00\x00\x00\x06ab\x00\x00\x00\x02'
# delimiter: flags, max (2), piece seed (2), delimiter, stream.
seed delimiter line_crlf '\x04\x00\x20\x00\x01one\r\ntwo\n\r\n\nthree\r'
seed delimiter crlf_pieces '\x11\x00\x10\x00\x02\r\nab\r\ncd\r\r\n\r\nline without end'
seed delimiter end_word '\x22\x00\x08\x00\x05ENDfooENDbarENENDxENDEND'
seed delimiter small_alphabet '\x39\x00\x05\x00\x09\x00\x00\x00\x01\x00\x00\x02\x03\x00\x00\x01\x00'
seed delimiter nul '\x00\x00\x10\x00\x01\x00a\x00b\x00\x00c'
seed delimiter too_long '\x10\x00\x03\x00\x02\nab\nabcdefgh\n'
# exact: flags, frame size (2), piece seed (2), stream.
seed exact four '\x00\x00\x03\x00\x01abcdefghij'
seed exact bytewise '\x01\x00\x02\x00\x05abcdefgh'
seed exact pieces '\x06\x00\x00\x00\x07abcdefghijklmnopq'
# proxy_header: flags (versions, cuts), then the stream.
seed proxy_header v1_tcp4 '\x01PROXY TCP4 192.0.2.1 198.51.100.7 51000 443\r\nGET /'
seed proxy_header v1_tcp6_bytewise '\x05PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 1 65535\r\n'
seed proxy_header v1_unknown '\x0bPROXY UNKNOWN ffff::1 ::2 1 2\r\nrest'
seed proxy_header v2_inet '\x02\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x07\xc7\x38\x01\xbbdata'
seed proxy_header v2_inet6_tlv '\x0e\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x29\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\xc7\x38\x01\xbb\x01\x00\x02h2'
seed proxy_header v2_local '\x03\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00x'
seed proxy_header v2_unix '\x02\r\n\r\n\x00\r\nQUIT\n\x21\x31\x00\xd8'

total=0
for t in "${TARGETS[@]}"; do
  corpus=$FUZZ_DIR/corpus/$t
  log=$FUZZ_DIR/fuzz_$t.log
  mkdir -p "$corpus"
  echo "fuzz.sh: fuzzing $t for $FUZZ_SECONDS s"
  # New inputs go to the first directory, which persists between runs.
  rc=0
  "$FUZZ_DIR/fuzz_$t" -max_total_time="$FUZZ_SECONDS" \
    -rss_limit_mb="$FUZZ_RSS_MB" -malloc_limit_mb="$FUZZ_RSS_MB" \
    -max_len=16384 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$FUZZ_DIR/artifacts/$t-" \
    "$corpus" "$FUZZ_DIR/seeds/$t" >"$log" 2>&1 || rc=$?
  units=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  rss=$(awk '/stat::peak_rss_mb/ {print $2}' "$log")
  if ((rc != 0)); then
    tail -n 60 "$log" >&2
    echo "fuzz.sh: $t FAILED (exit $rc) after ${units:-?} inputs; log" \
      "$log, reproducer in $FUZZ_DIR/artifacts/" >&2
    exit 1
  fi
  total=$((total + ${units:-0}))
  echo "fuzz.sh: $t: ${units:-?} inputs executed in $FUZZ_SECONDS s" \
    "(corpus $(find "$corpus" -type f | wc -l) files, peak RSS ${rss:-?} MB)"
done
echo "fuzz.sh: ${#TARGETS[@]} targets, $total inputs in $((SECONDS - t0)) s:" \
  "no crash, leak, timeout or broken invariant"
