#!/usr/bin/env bash
# The main job on the embedded default: a local cluster in a file:// state store.
# Creates the spec, completes it (update --yes), then shows the user-data and the
# control-plane node config an instance would boot from.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

mooring=dist/bin/mooring
state_dir=${MOORING_DEMO_STATE:-$PWD/.demo/state}
cluster=${MOORING_DEMO_CLUSTER:-demo.mooring.local}
export MOORING_STATE_STORE="file://$state_dir"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if "$mooring" get cluster "$cluster" >/dev/null 2>&1; then
  step "cluster $cluster already in $MOORING_STATE_STORE (delete it with: $mooring delete cluster $cluster --yes)"
else
  step "mooring create cluster $cluster --cloud local"
  "$mooring" create cluster "$cluster" --cloud local --zones local-a --control-plane-count 1 --node-count 1
fi

step "mooring get all $cluster"
"$mooring" get all "$cluster"

step "mooring update cluster $cluster (dry run: prints the plan, writes nothing)"
"$mooring" update cluster "$cluster" | grep -v '^    ' || true

step "mooring update cluster $cluster --yes"
"$mooring" update cluster "$cluster" --yes | grep -v '^    '

ig=$("$mooring" get instancegroups "$cluster" -o json | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const o = JSON.parse(s); const items = o.items ?? [o];
    const cp = items.find((i) => ["ControlPlane", "Master"].includes(i.spec.role));
    console.log(cp.metadata.name);
  });')

step "mooring get userdata $cluster --instance-group $ig"
"$mooring" get userdata "$cluster" --instance-group "$ig"

step "control-plane node config: $state_dir/$cluster/igconfig/control-plane/$ig/nodeupconfig.yaml"
cat "$state_dir/$cluster/igconfig/control-plane/$ig/nodeupconfig.yaml"

step "state store contents ($MOORING_STATE_STORE/$cluster)"
(cd "$state_dir/$cluster" && find . -type f | sort | sed 's|^\./|  |')
