#!/usr/bin/env bash
# Cross-builds the addon for linux/arm64 on an x86-64 Debian machine:
# build/prebuilt/linux-arm64/jitterscope.node, with the BPF objects compiled
# for the arm64 target (-D__TARGET_ARCH_arm64: kprobe arguments are read from
# arm64's registers) and libbpf, libelf, zlib and zstd linked statically from
# Debian's arm64 packages. Nothing arm64 is installed on this machine: the
# packages come through a private apt state (download only) and are unpacked
# into a sysroot under /var/cache/jitterscope/arm64 (JITTERSCOPE_ARM64_CACHE).
# Run by scripts/setup.sh (after the native build, whose generated vmlinux.h
# it reuses) when its inputs changed.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'build-arm64: %s\n' "$*" >&2; }

CACHE=${JITTERSCOPE_ARM64_CACHE:-/var/cache/jitterscope/arm64}
SYSROOT=$CACHE/sysroot
OUT=build/prebuilt/linux-arm64
GEN=build/gen-arm64
CROSS=aarch64-linux-gnu

# Debian's arm64 build libraries, unpacked once into the sysroot
PKGS=(libbpf-dev libbpf1 libelf-dev libelf1 zlib1g-dev zlib1g libzstd-dev libzstd1)
if [[ ! -f $SYSROOT/.complete ]]; then
  log "fetching Debian's arm64 libbpf, libelf, zlib and zstd into $SYSROOT"
  state=$CACHE/apt
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$CACHE/debs"
  : >"$state/status"
  apt=(-o "Dir::State=$state" -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
    -o "Dir::State::status=$state/status" -o APT::Architecture=arm64 -o APT::Architectures=arm64 -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" -qq update
  (cd "$CACHE/debs" && apt-get "${apt[@]}" -qq download "${PKGS[@]}")
  rm -rf "$SYSROOT"
  mkdir -p "$SYSROOT"
  for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
  touch "$SYSROOT/.complete"
fi
LIB=$SYSROOT/usr/lib/aarch64-linux-gnu
for a in libbpf.a libelf.a libz.a libzstd.a; do
  [[ -f $LIB/$a ]] || { log "$LIB/$a is missing (remove $SYSROOT/.complete to fetch again)"; exit 1; }
done

# The BPF objects for the arm64 target, over the vmlinux.h the native build
# generated (CO-RE: field offsets are relocated against the arm64 kernel's BTF
# at load) plus arm64's register layout, which x86's BTF does not have.
mkdir -p "$GEN" "$OUT"
[[ -f build/gen/vmlinux.h ]] || { log "build/gen/vmlinux.h is missing: run the native build first (npm run build)"; exit 1; }
cp bpf/arch-arm64.h "$GEN/arch-arm64.h"
{
  echo '/* build/gen/vmlinux.h and arm64 register layout (bpf/arch-arm64.h): generated */'
  cat build/gen/vmlinux.h
  echo '#include "arch-arm64.h"'
} >"$GEN/vmlinux.h.new"
mv "$GEN/vmlinux.h.new" "$GEN/vmlinux.h"
for obj in tracer ipvs features lab_stall bench_gen symbols; do
  clang -g -O2 -Wall -target bpf -D__TARGET_ARCH_arm64 -I"$GEN" -Ibpf -I"$SYSROOT/usr/include" \
    -c "bpf/$obj.bpf.c" -o "$GEN/$obj.bpf.o.full"
  llvm-strip -g "$GEN/$obj.bpf.o.full" -o "$GEN/$obj.bpf.o"
  bpftool gen skeleton "$GEN/$obj.bpf.o" name "$obj" >"$GEN/$obj.skel.h"
done

# libbpf.a with its stderr reference renamed, as the native build does (see native/libbpf_stderr.c)
$CROSS-objcopy --redefine-sym stderr=jitterscope_libbpf_stderr "$LIB/libbpf.a" "$GEN/libbpf-jitterscope.a"

NODE_INC=$(node -p "require('path').resolve(process.execPath, '../../include/node')")
ADDON_API=$(node -p "require('node-addon-api').include" | tr -d '"')
FLAGS=(-O2 -fPIC -fvisibility=hidden -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED
  -I"$GEN" -Ibpf -Inative -I"$ADDON_API" -isystem "$NODE_INC" -I"$SYSROOT/usr/include" -Wall -Wno-unused-parameter)
objs=()
for src in native/*.cc native/*.c; do
  o=$GEN/$(basename "$src").o
  if [[ $src == *.cc ]]; then $CROSS-g++ -std=c++17 -fvisibility-inlines-hidden "${FLAGS[@]}" -c "$src" -o "$o"
  else $CROSS-gcc "${FLAGS[@]}" -c "$src" -o "$o"; fi
  objs+=("$o")
done
$CROSS-g++ -shared -o "$OUT/jitterscope.node.new" "${objs[@]}" -static-libstdc++ -static-libgcc \
  -Wl,--exclude-libs,ALL "$GEN/libbpf-jitterscope.a" "$LIB/libelf.a" "$LIB/libz.a" "$LIB/libzstd.a"
mv "$OUT/jitterscope.node.new" "$OUT/jitterscope.node"
log "built $OUT/jitterscope.node ($(stat -c %s "$OUT/jitterscope.node") bytes)"
