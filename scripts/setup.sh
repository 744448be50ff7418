#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs to build, test and run the demo.
# Idempotent: installs only what is missing (apt-get update only then). Needs root when something
# is missing; otherwise it is a quick check that anyone can run.
set -euo pipefail

# The one list: build tools (lld links faster than GNU ld; ccache lets scripts/test.sh's stages
# share what they compile alike) and libraries, the registry servers the tests start (etcd, Redis),
# the network tools the fault tests use inside their own namespaces (iproute2, iptables), and the
# NATS server and C client `galaxies bench --peer nats` compares against (its test runs it),
# cpp-httplib (a master's `--http`), and what the monitoring tests run: headless Chromium loads the
# web view, a private `prometheus` scrapes three hosts, and `promtool` checks /metrics.
# scripts/test.sh's sanitizer stage needs only g++ (libasan and libubsan come with it); its fuzz
# stage needs clang-14, libclang-rt-14-dev (libclang_rt.fuzzer-x86_64.a and clang's sanitizer
# runtimes: clang-14 only recommends it, through libclang-common-14-dev, and recommendations are
# not installed here) and llvm-14 (llvm-symbolizer-14, for readable stack traces).
packages=(
  build-essential cmake ninja-build pkg-config lld ccache
  clang-14 libclang-rt-14-dev llvm-14
  libasio-dev libssl-dev libcurl4-openssl-dev libhiredis-dev nlohmann-json3-dev
  libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format iproute2 iptables procps openssl util-linux
  etcd-server redis-server nats-server libnats-dev
  libcpp-httplib-dev chromium prometheus
)

is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${packages[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} Debian packages are installed"
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  echo "setup: these Debian packages are missing: ${missing[*]}" >&2
  echo "setup: run this script as root to install them (apt-get), or install them yourself:" >&2
  echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# Packages with a service (prometheus, etcd, redis, nats) would start it on install, listening on
# fixed ports the tests do not use: the tests start their own, on free loopback ports. A
# policy-rc.d that refuses (exit 101, Debian policy 9.3.3) keeps them from starting; one already
# there is the administrator's and is left alone.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
status=0
apt-get install -y --no-install-recommends "${missing[@]}" || status=$?
if ((own_policy)); then rm -f "$policy"; fi
exit "$status"
