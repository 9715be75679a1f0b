#!/usr/bin/env bash
# Builds and caches the Debian 12 root filesystem the systemd-nspawn e2e tests
# boot: debootstrap --variant=minbase plus systemd, and the packages nodeup's
# base model wants (so an instance with no default route need not fetch any).
# Does nothing when the cached image is there. Needs root and Debian's mirror.
set -o errexit -o nounset -o pipefail

image="${MOORING_IMAGE_DIR:-/var/cache/mooring/debian12-rootfs}"
suite=bookworm
mirror="${MOORING_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
include=systemd,systemd-sysv,dbus,ca-certificates,conntrack,ebtables,ethtool,iptables,socat,curl,e2fsprogs
stamp="${image}/.mooring-image"
want="${suite} ${include}"

if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
  echo "image: ${image} is up to date" >&2
  exit 0
fi

tools=()
command -v debootstrap >/dev/null || tools+=(debootstrap)
command -v systemd-nspawn >/dev/null || tools+=(systemd-container)
if ((${#tools[@]} > 0)); then
  echo "image: installing ${tools[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null
fi

# Built beside the target and renamed into place: an interrupted build never looks finished.
tmp="${image}.tmp-$$"
trap 'rm -rf "${tmp}"' EXIT
mkdir -p "$(dirname "${image}")"
echo "image: debootstrap ${suite} into ${tmp} (a few minutes)" >&2
debootstrap --variant=minbase --include="${include}" "${suite}" "${tmp}" "${mirror}" >&2
# No getty on the console: the e2e harness drives the instance with nsenter.
rm -f "${tmp}/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
echo "e2e" >"${tmp}/etc/hostname"
echo "${want}" >"${tmp}/.mooring-image"
# An older image is renamed aside before the new one takes its place, so there is no moment when a
# half-deleted image stands at the path; then it is deleted.
old="${image}.old-$$"
[[ -e "${image}" ]] && mv "${image}" "${old}"
mv "${tmp}" "${image}"
trap - EXIT
rm -rf "${old}"

echo "image: ready at ${image}" >&2
