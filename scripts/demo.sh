#!/usr/bin/env bash
# The main job, end to end, on one machine: a local cloud (bridge namespace,
# S3 state store, metadata service, asset mirror), a cluster of three
# control-plane instances that boot the cached Debian 12 image from user-data,
# download the agent, run nodeup under systemd and form etcd main and events
# with etcd-manager. `scripts/demo.sh down` (make demo-down) removes all of it.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

mooring=dist/bin/mooring
MOORING_LOCAL_CLOUD=$(realpath -m "${MOORING_DEMO_CLOUD:-/var/lib/mooring/demo}")
export MOORING_LOCAL_CLOUD
cluster=${MOORING_DEMO_CLUSTER:-demo.mooring.local}
# make demo passes the time it started (set-up and build count too).
started=${MOORING_DEMO_STARTED:-$(date +%s)}

elapsed() { echo "$(( $(date +%s) - started ))s"; }
step() { printf '\n\033[1m== [%5s] %s\033[0m\n' "$(elapsed)" "$*"; }

# What the kernel still holds for the demo's cloud: its namespaces (mlc-<8 hex of the folder's sha256>-*),
# mounts and loop device images under its folder, and processes rooted in it (instances) or serving it (daemons).
leftovers() {
  local dir=$MOORING_LOCAL_CLOUD id p
  id=$(printf %s "$dir" | sha256sum | cut -c1-8)
  ip netns list | awk -v p="mlc-$id-" 'index($1, p) == 1 { print "namespace " $1 }'
  awk -v d="$dir/" 'index($5, d) == 1 { print "mount " $5 }' /proc/self/mountinfo
  losetup --list --noheadings --output NAME,BACK-FILE | awk -v d="$dir/" 'index($2, d) == 1 { print "loop device " $1 " (" $2 ")" }'
  # One find and one grep (the pattern from a file, so grep's own command line does not match).
  for p in $(find /proc/[0-9]*/root -maxdepth 0 -lname "$dir/*" 2>/dev/null | cut -d/ -f3) \
    $(grep -lzxsF -f <(printf '%s\n' "$dir") /proc/[0-9]*/cmdline | cut -d/ -f3); do
    echo "process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-100)"
  done | sort -u
}

if [[ "${1:-}" == down ]]; then
  if [[ -f "$MOORING_LOCAL_CLOUD/cloud.json" ]]; then
    if env_lines=$("$mooring" local-cloud env 2>/dev/null); then
      eval "$env_lines"
      step "mooring delete cluster $cluster --yes --include-backups"
      "$mooring" delete cluster "$cluster" --yes --include-backups || true
    fi
    step "mooring local-cloud down --purge"
    "$mooring" local-cloud down --purge
    rmdir --ignore-fail-on-non-empty "$(dirname "$MOORING_LOCAL_CLOUD")" 2>/dev/null || true
  else
    echo "no demo local cloud in $MOORING_LOCAL_CLOUD"
  fi
  left=$(leftovers)
  if [[ -n $left ]]; then
    printf 'left behind:\n%s\n' "$left" >&2
    exit 1
  fi
  echo "nothing of the demo is left: no process, mount, loop device, overlay or namespace"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then echo "make demo needs root (network namespaces, overlay mounts, systemd-nspawn)" >&2; exit 1; fi

step "mooring local-cloud up   (bridge namespace, S3 store, metadata service, mirror; state in $MOORING_LOCAL_CLOUD)"
eval "$("$mooring" local-cloud up)"
echo "state store: $MOORING_STATE_STORE via $AWS_ENDPOINT_URL_S3"

if "$mooring" get cluster "$cluster" >/dev/null 2>&1; then
  step "cluster $cluster is already in the store"
else
  step "mooring create cluster $cluster --cloud local --zones local-a,local-b,local-c --control-plane-count 3 --node-count 0"
  "$mooring" create cluster "$cluster" --cloud local --zones local-a,local-b,local-c --control-plane-count 3 --node-count 0
fi

step "mooring update cluster $cluster --yes   (store: spec, PKI, node configs, user-data; local cloud: volumes, instances)"
"$mooring" update cluster "$cluster" --yes | grep -v '^    '

step "mooring validate cluster $cluster --wait 10m   (each instance: booting → user-data → nodeup → etcd main/events members and health)"
"$mooring" validate cluster "$cluster" --wait 10m

step "ready $(elapsed) after make demo started (set-up, build, local cloud, boot, nodeup, etcd)"
"$mooring" get instances "$cluster"
first=$("$mooring" get instances "$cluster" -o json | sed -n 's/.*"id": "\(i-[0-9a-f]*\)".*/\1/p' | head -1)
cat <<TEXT

Look around (in another shell, first: eval "\$($mooring local-cloud env --local-cloud $MOORING_LOCAL_CLOUD)"):
  $mooring get instances $cluster
  $mooring get volumes $cluster
  $mooring validate cluster $cluster
  $mooring ssh $cluster $first      # a shell on the instance; or a command after --:
  $mooring ssh $cluster $first -- journalctl -u mooring-nodeup
  $mooring ssh $cluster $first -- systemctl status etcd-manager@main etcd-manager@events
  $mooring ssh $cluster $first -- bash -c 'cd /srv/kubernetes/kube-apiserver && ETCDCTL_API=3 /opt/etcd/3.4.23/etcdctl --endpoints https://\$(hostname -I | cut -d" " -f1):4001 --cacert etcd-ca.crt --cert etcd-client.crt --key etcd-client.key member list -w table'
  dist/bin/etcd-manager get --backup-store s3://mooring/$cluster/backups/etcd/main      # the cluster as etcd-manager records it
  dist/bin/etcd-manager list-backups --backup-store s3://mooring/$cluster/backups/etcd/events
Lose an instance, then boot its replacement from the same user-data:
  $mooring delete instance $cluster $first --yes --force
  $mooring update cluster $cluster --yes && $mooring validate cluster $cluster --wait 5m
Tear it all down:
  make demo-down
TEXT
