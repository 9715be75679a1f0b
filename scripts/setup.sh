#!/usr/bin/env bash
# Installs everything Mooring's build and tests need on Debian 12 (as root),
# and does nothing when it is all there already.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

# systemd-container (systemd-nspawn) and debootstrap: make image and the instances of the local cloud
# (make demo, the e2e tests); mount (mount, losetup), util-linux (nsenter, blkid), e2fsprogs (mkfs.ext4)
# and iproute2 (ip netns, veth): volumes and namespaces; tar and gzip: the mirror's etcd tarball.
apt_packages=(etcd-server etcd-client shellcheck curl ca-certificates openssl binutils systemd systemd-container debootstrap
  e2fsprogs util-linux mount iproute2 tar gzip)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  echo "setup: installing apt packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci only when node_modules does not match the lock file.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.mooring-lock-sha256
if [[ ! -f $stamp || "$(cat "$stamp")" != "$lock_hash" ]]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" >"$stamp"
fi
