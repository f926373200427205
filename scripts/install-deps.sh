#!/usr/bin/env bash
# Installs the Debian (bookworm) packages tcpactor needs, but only those that
# are missing: with everything present it runs no apt-get at all.
set -euo pipefail

PACKAGES=(
  cmake g++ make                     # toolchain
  libcaf-dev                         # CAF 0.17.6: actors
  libboost-dev libboost-system-dev   # Boost.Asio
  libboost-test-dev                  # Boost.Test
  libssl-dev openssl                 # OpenSSL 3 (TLS, test certificates)
  python3 netcat-openbsd             # test peers we did not write
)
# Only the test command needs these (scripts/test.sh passes --test).
if [[ ${1:-} == --test ]]; then
  PACKAGES+=(
    clang-14 libclang-rt-14-dev # libFuzzer (scripts/fuzz.sh)
    erlang-base                 # a {packet,4} peer for framing tests
    pkg-config                  # the install test builds a consumer with it
    socat                       # a Unix-domain socket peer (unix_daemon_test)
    haproxy                     # a real PROXY protocol sender (proxy_daemon_test)
    curl prometheus             # scrape the metrics endpoint, promtool checks it
  )
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if ! command -v apt-get >/dev/null; then
  echo "install-deps: no apt-get; install these by hand: ${missing[*]}" >&2
  exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "install-deps: run as root to install: ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
