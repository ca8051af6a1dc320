#!/usr/bin/env bash
# All set-up for jitterscope on Debian, as root: system packages, npm
# packages, the native build and the TypeScript build. Idempotent: each step
# runs only when something it depends on is missing or newer than its output.
#   scripts/setup.sh               everything
#   scripts/setup.sh --tests       also what only the tests use (chromium), and the arm64 addon
#   scripts/setup.sh --package     also the arm64 addon (npm pack carries both)
#   scripts/setup.sh --build-only  skip system packages
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# Build: clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libzstd-dev cmake g++.
# Tests: iproute2 (netns, veth), iputils-ping, libcap2-bin (capsh), util-linux
# (setpriv, taskset), procps, tmux; the VM tests: qemu-system-x86,
# busybox-static, cpio, kmod, xz-utils, ipvsadm (kernels come by apt-get download).
APT_PACKAGES=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libzstd-dev cmake make g++ binutils
  iproute2 iputils-ping libcap2-bin util-linux procps tmux
  qemu-system-x86 busybox-static cpio kmod xz-utils ipvsadm)
# Only for the tests: the browser that renders the HTML reports (~270 MB), and
# Prometheus with promtool for the exporter tests, podman (rootful, runc),
# ethtool (threaded NAPI on a veth), libbpf-tools (runqslower: a peer that
# times the same wake-ups), mmdebstrap for the container image tests, and
# iptables (the mesh test drops some probes on their way), and redis-server (a real
# server that is often already awake when its requests arrive: kernel/27-redis).
TEST_PACKAGES=(chromium prometheus podman runc catatonit mmdebstrap iperf3 ethtool libbpf-tools iptables redis-server)
# The arm64 addon, cross-built (scripts/build-arm64.sh), and the arm64 guest.
ARM64_PACKAGES=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu)
[[ ${1:-} == --tests ]] && APT_PACKAGES+=("${TEST_PACKAGES[@]}" "${ARM64_PACKAGES[@]}" qemu-system-arm)
[[ ${1:-} == --package ]] && APT_PACKAGES+=("${ARM64_PACKAGES[@]}")

if [[ ${1:-} != --build-only ]]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if ((EUID != 0)); then
      log "missing Debian packages: ${missing[*]}; run as root, or: apt-get install ${missing[*]}"
      exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# npm packages: when node_modules is absent or older than the lock file.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# newer_than OUTPUT INPUT...: true when OUTPUT is missing or any INPUT is newer.
newer_than() {
  local out=$1
  shift
  [[ ! -e $out ]] && return 0
  [[ -n $(find "$@" -newer "$out" -type f -print -quit 2>/dev/null) ]]
}

addon=build/Release/jitterscope.node
if newer_than "$addon" bpf native CMakeLists.txt package-lock.json; then
  log "building the BPF objects and the addon (cmake-js)"
  npx --no-install cmake-js compile --log-level error >build.log 2>&1 || {
    grep -E 'error|FATAL|jitterscope:' build.log | head -20 >&2
    log "native build failed; full log in $(pwd)/build.log"
    exit 1
  }
  touch "$addon"
fi

arm64=build/prebuilt/linux-arm64/jitterscope.node
if [[ ${1:-} == --tests || ${1:-} == --package ]] && newer_than "$arm64" bpf native scripts/build-arm64.sh package-lock.json build/gen/vmlinux.h; then
  log "cross-building the arm64 addon (scripts/build-arm64.sh)"
  bash scripts/build-arm64.sh >build-arm64.log 2>&1 || {
    tail -20 build-arm64.log >&2
    log "arm64 build failed; full log in $(pwd)/build-arm64.log"
    exit 1
  }
  touch "$arm64"
fi

if newer_than dist/src/cli.js src test bench tsconfig.json tsconfig.page.json package-lock.json; then
  log "compiling TypeScript"
  # from clean: a test or module deleted from the sources must not live on in dist/
  rm -rf dist
  npx --no-install tsc -p .
  # the HTML report's page script: browser code, its own build (DOM, an ES module)
  npx --no-install tsc -p tsconfig.page.json
  touch dist/src/cli.js
fi
