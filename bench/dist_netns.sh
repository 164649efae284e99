#!/usr/bin/env bash
# Step time against bandwidth: two "hosts" made of network namespaces on this machine, joined by
# a veth pair whose rate is limited with tc, one rank in each, Open MPI over TCP between them.
# mpirun runs in the first namespace and starts its daemon in the second through
# `--mca plm_rsh_agent`, pointed at a script that enters that namespace (instead of ssh).
# For each rate (RATES: "none" is the bare veth) and preset: `vit allreduce` (bytes and time of
# the gradient allreduce) and `vit bench` (the data-parallel training step), as JSON lines, then
# a table. Needs root, iproute2 (ip, tc) and the kernel's netem qdisc; where netem is missing
# (some container kernels) the rate is set with tbf instead, and DELAY is ignored.
#
#   sudo bash bench/dist_netns.sh                       # rates none 10gbit 1gbit, nano lite small
#   sudo RATES="1gbit" PRESETS=lite STEPS=5 bash bench/dist_netns.sh
#
# Environment: VIT (build/vit), RATES ("none 10gbit 1gbit"), DELAY (one-way latency added by
# netem, e.g. 100us; default none), PRESETS ("nano lite small"), BATCH (128, the global batch),
# THREADS (compute threads per rank: 1, since both "hosts" share this machine's cores),
# STEPS (10 bench steps; the allreduce runs 5x as many), PRECISION (auto).
set -euo pipefail
cd "$(dirname "$0")/.."
VIT=$(realpath "${VIT:-build/vit}")
RATES=${RATES:-none 10gbit 1gbit}
DELAY=${DELAY:-}
PRESETS=${PRESETS:-nano lite small}
BATCH=${BATCH:-128}
THREADS=${THREADS:-1}
STEPS=${STEPS:-10}
PRECISION=${PRECISION:-auto}
[ "$(id -u)" -eq 0 ] || { echo "dist_netns: needs root (network namespaces, tc)" >&2; exit 1; }
for tool in ip tc mpirun python3; do
  command -v $tool >/dev/null || { echo "dist_netns: $tool not found" >&2; exit 1; }
done
[ -x "$VIT" ] || { echo "dist_netns: $VIT not found; run make build first" >&2; exit 1; }

NS_A=pw-host-a NS_B=pw-host-b IF_A=pw-veth-a IF_B=pw-veth-b IP_A=10.77.0.1 IP_B=10.77.0.2
remove_hosts() {
  ip netns del $NS_A 2>/dev/null || true  # deleting a namespace deletes its end of the veth
  ip netns del $NS_B 2>/dev/null || true
}
remove_hosts  # left over by an interrupted run
work=$(mktemp -d)
trap 'remove_hosts; rm -rf "$work"' EXIT

ip netns add $NS_A
ip netns add $NS_B
ip link add $IF_A type veth peer name $IF_B
ip link set $IF_A netns $NS_A
ip link set $IF_B netns $NS_B
ip -n $NS_A addr add $IP_A/24 dev $IF_A
ip -n $NS_B addr add $IP_B/24 dev $IF_B
for ns in $NS_A $NS_B; do ip -n $ns link set lo up; done
ip -n $NS_A link set $IF_A up
ip -n $NS_B link set $IF_B up

# The "rsh" of the job: Open MPI calls it as `agent [options] HOST COMMAND...` to start its daemon
# on HOST; this one runs COMMAND inside HOST's namespace.
cat > "$work/netns-rsh" <<AGENT
#!/bin/sh
while [ "\${1#-}" != "\$1" ]; do shift; done  # options meant for ssh
host=\$1; shift
case \$host in
  $IP_A) ns=$NS_A ;;
  $IP_B) ns=$NS_B ;;
  *) echo "netns-rsh: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec \$ns sh -c "\$*"
AGENT
chmod +x "$work/netns-rsh"
printf '%s slots=1\n%s slots=1\n' $IP_A $IP_B > "$work/hosts"

# The rate of both directions (each end shapes what it sends).
set_rate() {
  local rate=$1
  for pair in "$NS_A $IF_A" "$NS_B $IF_B"; do
    set -- $pair
    tc -n "$1" qdisc del dev "$2" root 2>/dev/null || true
    [ "$rate" = none ] && continue
    if ! tc -n "$1" qdisc add dev "$2" root netem rate "$rate" ${DELAY:+delay $DELAY} 2>/dev/null; then
      # tbf: a bucket of ~1 ms at the rate (and at least 64 KB), 50 ms of queue.
      local bits=$(python3 -c "import re,sys; v,u=re.fullmatch(r'([0-9.]+)([kmg]?)bit','$rate'.lower()).groups(); print(int(float(v)*{'':1,'k':1e3,'m':1e6,'g':1e9}[u]))")
      local burst=$(( bits / 8 / 1000 > 65536 ? bits / 8 / 1000 : 65536 ))
      tc -n "$1" qdisc add dev "$2" root tbf rate "$rate" burst "$burst" latency 50ms
    fi
  done
  tc -n $NS_A qdisc show dev $IF_A | sed "s/^/  $NS_A: /" >&2
}

mpirun_ns() {
  ip netns exec $NS_A mpirun --allow-run-as-root --hostfile "$work/hosts" -np 2 --map-by node \
    --bind-to none --mca plm_rsh_agent "$work/netns-rsh" --mca plm_rsh_no_tree_spawn 1 \
    --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
    -x OMP_NUM_THREADS="$THREADS" "$@"
}

out="$work/results.jsonl"
for rate in $RATES; do
  echo "== rate $rate ${DELAY:+(delay $DELAY)}" >&2
  set_rate "$rate"
  for preset in $PRESETS; do
    mpirun_ns "$VIT" allreduce --preset "$preset" --steps $((5 * STEPS)) --json |
      sed "s/^{/{\"rate\":\"$rate\",\"what\":\"allreduce\",/" | tee -a "$out"
    mpirun_ns "$VIT" bench --preset "$preset" --batch-size "$BATCH" --steps "$STEPS" \
      --threads "$THREADS" --precision "$PRECISION" --json |
      sed "s/^{/{\"rate\":\"$rate\",\"what\":\"bench\",/" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ar = {(r["rate"], r["preset"]): r for r in rows if r["what"] == "allreduce"}
print(f"\n{'rate':8} {'preset':7} {'MB/step':>8} {'allreduce ms':>12} {'busbw GB/s':>10} "
      f"{'step ms':>8} {'of which allreduce':>18} {'train img/s':>11}")
for r in rows:
    if r["what"] != "bench":
        continue
    a = ar.get((r["rate"], r["preset"]), {})
    step_ms = 1e3 * r["batch_size"] / r["train_images_per_sec"]
    print(f"{r['rate']:8} {r['preset']:7} {a.get('bytes_per_step', 0)/1e6:>8.2f} "
          f"{a.get('median_ms', float('nan')):>12.2f} {a.get('busbw_gb_per_s', float('nan')):>10.2f} "
          f"{step_ms:>8.1f} {r['allreduce_ms_per_step']:>18.1f} {r['train_images_per_sec']:>11.1f}")
PY
