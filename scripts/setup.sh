#!/usr/bin/env bash
# The one command: installs missing packages, builds a Release tcpactor in
# build-release/, installs it into PREFIX (/usr/local) and runs the echo daemon
# on the defaults of config/tcpactor-echo.conf. Extra arguments go to the
# daemon, e.g. `bash scripts/setup.sh --port 7001`.
#
# Environment: PREFIX (/usr/local), BUILD_DIR (build-release), JOBS (nproc).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PREFIX=${PREFIX:-/usr/local}
BUILD_DIR=${BUILD_DIR:-build-release}
JOBS=${JOBS:-$(nproc)}
CONFIG=config/tcpactor-echo.conf

bash scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTCPACTOR_BUILD_TESTS=OFF
cmake --build "$BUILD_DIR" -j "$JOBS"
if ! mkdir -p "$PREFIX" 2>/dev/null || [[ ! -w $PREFIX ]]; then
  echo "setup.sh: cannot write to $PREFIX; run as root or set PREFIX," \
       "e.g. PREFIX=\$HOME/.local bash scripts/setup.sh" >&2
  exit 1
fi
cmake --install "$BUILD_DIR" --prefix "$PREFIX"
# A shared libtcpactor (-DBUILD_SHARED_LIBS=ON) in a system prefix needs the
# loader cache refreshed; harmless otherwise.
if [[ $(id -u) -eq 0 ]] && command -v ldconfig >/dev/null; then
  ldconfig
fi

if [[ ! -f $CONFIG ]]; then
  echo "setup.sh: $CONFIG is missing" >&2
  exit 1
fi
echo "setup.sh: starting $PREFIX/bin/tcpactor-echo --config-file $CONFIG $*"
exec "$PREFIX/bin/tcpactor-echo" --config-file "$CONFIG" "$@"
