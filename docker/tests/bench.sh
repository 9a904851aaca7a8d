#!/bin/bash
# bench.sh PLUGIN_BIN — `docker run -d` of N containers (default 100) on an underlay network
# against Docker's own macvlan driver on the same parent, same dockerd, alternating rounds; and
# the plugin's own time per call (its --log). For docs/benchmarks.md; not part of CI.
# The setup (dockerd and the plugin in namespaces of their own) is harness.sh's, shared with
# e2e.sh. Exit 0: done; 2: usage. Tears everything down, also on failure.
PLUGIN_LOG=1
source "$(dirname "$(readlink -f "$0")")/harness.sh"

N=${N:-100}; ROUNDS=${ROUNDS:-2}
D network create -d "$P" --ipam-driver "$P" --subnet "$SP.0/24" --gateway "$SP.1" --ip-range "$SP.128/25" \
  -o parent="$PARENT" ul >/dev/null || die "network create -d underlay"
D network create -d macvlan --subnet 10.232.0.0/24 --gateway 10.232.0.1 --ip-range 10.232.0.128/25 \
  -o parent="$PARENT" mv >/dev/null || die "network create -d macvlan"
now() { date +%s.%N; }
run_many() {   # $1 network: N sequential `docker run -d`, then their removal; prints the seconds
  local t0 t1
  t0=$(now)
  for k in $(seq 1 "$N"); do D run -d --network "$1" "$IMG" sleep 3600 >/dev/null || die "run on $1"; done
  t1=$(now)
  D ps -q | xargs -r -n 50 /usr/bin/docker -H "unix://$WORK/docker.sock" rm -f >/dev/null
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}'
}
for r in $(seq 1 "$ROUNDS"); do
  : > "$WORK/calls.jsonl"
  u=$(run_many ul); m=$(run_many mv)
  echo "round $r: $N x docker run -d: underlay ${u}s, macvlan ${m}s"
  python3 - "$WORK/calls.jsonl" "$N" <<'PY'
import json, sys
calls = {}
for line in open(sys.argv[1]):
    c = json.loads(line)
    calls.setdefault(c["path"].lstrip("/"), []).append(c["micros"])
total = 0
for name in ("IpamDriver.RequestAddress", "NetworkDriver.CreateEndpoint", "NetworkDriver.Join",
             "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"):
    v = sorted(calls.get(name, []))
    if v:
        total += sum(v)
        print(f"  {name:32} n={len(v):4}  median {v[len(v)//2]/1000:7.2f} ms  p95 {v[int(len(v)*0.95)]/1000:7.2f} ms")
print(f"  plugin time per container (these calls): {total/int(sys.argv[2])/1000:.2f} ms")
PY
done
D network rm ul mv >/dev/null
exit 0
