#!/bin/bash
# e2e.sh PLUGIN_BIN — underlay-docker under a real dockerd 20.10 (Debian's docker.io), offline,
# in network namespaces of its own. Run by `cargo xtask docker-test` (which installs docker.io
# and busybox-static, builds the plugin and passes its path); as root.
#
# dockerd runs in netns $NS (nsenter, not `ip netns exec`, which remounts /sys and hides the
# cgroup v1 mounts), under `unshare --mount --propagation slave` (its overlay, shm and netns
# mounts never reach the host), cgroupfs driver, no bridge, no iptables, its own data/exec
# roots under $WORK. The image is a busybox-static rootfs `docker import`ed (no registry). The
# parent is a veth whose peer sits in $NS-gw, the "gateway" the containers ping.
#
# Checks (S1 and S3 of docs/docker.md with `-d underlay --ipam-driver underlay`):
#   a static --ip and addresses from --ip-range; containers ping each other and the gateway;
#   --mac-address on eth0 and as the lease's key, the same MAC twice refused;
#   the host (dockerd's netns) reaches a container through the shim (-o underlay.host_access);
#   bad options refused in Docker's error shape; plugin restart (TERM and KILL) with a
#   --restart=always container running; dockerd restart (the container comes back, no panic);
#   dockerd killed -9 and its containers gone: the plugin's reconcile removes their endpoints;
#   docker rm -f / network rm leave no link, no endpoint record, no lease, no pool;
#   a DHCP network (-o underlay.dhcp, --ipam-driver null) with dnsmasq on the wire: the
#   container has dnsmasq's address (its lease file and `ip -j addr` in the container agree),
#   the default route via its router, pings the wire; a restarted plugin renews at T1 (dnsmasq
#   ACKs again); rm -f releases the lease; the refusals name the options.
# Exit 0: every check passed; 1: a check failed; 2: usage. Tears everything down, also on failure.
source "$(dirname "$(readlink -f "$0")")/harness.sh"

# ------------------------------------------------------------------ helpers
addr_of() { D exec "$1" ip -4 -o addr show dev eth0 2>/dev/null | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -1; }
pings() { D exec "$1" ping -c 1 -W 3 "$2" >/dev/null 2>&1; }
in_range() { local last=${1##*.}; [ "${1%.*}" = "$SP" ] && [ "$last" -ge 64 ] && [ "$last" -le 95 ]; }
# Links underlay may leave in dockerd's netns: lo, the parent, the shim(s) of live networks.
stray_links() { ip -n "$NS" -j link show | python3 -c '
import json, sys
keep = set(sys.argv[1:])
print(" ".join(l["ifname"] for l in json.load(sys.stdin)
      if l["ifname"] not in keep and not l.get("ifalias", "").startswith("underlay:shim")))' lo "$PARENT"; }
records() { find "$STATE/endpoints" -mindepth 2 -type f ! -name '.*' ! -path '*/.free/*' 2>/dev/null | wc -l; }

# ------------------------------------------------------------------ bad requests via docker
out=$(D network create -d "$P" --ipam-driver "$P" --subnet 10.232.0.0/24 -o parent=nosuchparent0 bad1 2>&1)
check "parent that does not exist: refused, message names it" sh -c 'echo "$1" | grep -q nosuchparent0' _ "$out"
out=$(D network create -d "$P" --ipam-driver "$P" --subnet 10.232.0.0/24 -o parent=$PARENT -o macvlan_mode=nonsense bad2 2>&1)
check "bad macvlan_mode: refused" sh -c 'echo "$1" | grep -qi nonsense' _ "$out"
out=$(D network create -d "$P" --ipam-driver "$P" --subnet 10.232.0.0/24 -o parent=$PARENT -o underlay.bogus=1 bad3 2>&1)
check "unknown underlay.* option: refused" sh -c 'echo "$1" | grep -q underlay.bogus' _ "$out"
check "refused networks left no pool" sh -c '[ -z "$(ls "$1/docker-pools" | grep -v "^lock$")" ]' _ "$STATE"

# ------------------------------------------------------------------ S1 + S3
D network create -d "$P" --ipam-driver "$P" --subnet "$SP.0/24" --gateway "$SP.1" --ip-range "$SP.64/27" \
  -o parent="$PARENT" -o underlay.host_access=on s1 >/dev/null && ok "network create s1 (--ip-range, host access)" \
  || die "network create s1"
out=$(D network create -d "$P" --ipam-driver "$P" --subnet "$SP.0/25" -o parent="$PARENT" s1overlap 2>&1)
check "overlapping subnet: refused" sh -c '[ -n "$1" ] && ! /usr/bin/docker -H "unix://$2/docker.sock" network inspect s1overlap >/dev/null 2>&1' _ "$out" "$WORK"
D run -d --name c1 --network s1 --ip "$SP.10" "$IMG" sleep 3600 >/dev/null || die "run c1 --ip"
D run -d --name c2 --network s1 "$IMG" sleep 3600 >/dev/null || die "run c2"
D run -d --name c3 --restart=always --network s1 "$IMG" sleep 3600 >/dev/null || die "run c3 --restart=always"
a1=$(addr_of c1); a2=$(addr_of c2); a3=$(addr_of c3)
echo "  c1=$a1 c2=$a2 c3=$a3"
check "c1 has the static --ip $SP.10" [ "$a1" = "$SP.10" ]
check "c2 and c3 got addresses in --ip-range $SP.64/27, distinct" sh -c 'in_range() { l=${1##*.}; [ "${1%.*}" = "$3" ] && [ "$l" -ge 64 ] && [ "$l" -le 95 ]; }; in_range "$1" x "$3" && in_range "$2" x "$3" && [ "$1" != "$2" ]' _ "$a2" "$a3" "$SP"
check "c1 pings c2" pings c1 "$a2"
check "c2 pings the gateway $SP.1 (upstream namespace)" pings c2 "$SP.1"
check "the host (dockerd's netns) pings c1 through the shim" IN ping -c 1 -W 3 "$SP.10"
check "host route to c2 goes through the shim" sh -c 'ip -n "$1" -j route show "$2" | grep -q "\"dev\""' _ "$NS" "$a2"
out=$(D run --rm --network s1 --ip "$SP.10" "$IMG" true 2>&1)
check "a second container on c1's --ip is refused" sh -c '[ -n "$1" ]' _ "$out"
# --mac-address: the MAC reaches eth0 and keys the lease (the IPAM requires MACs); the same MAC
# for a second container gets the holder's address back, is refused, and its rollback leaves
# the holder's lease (docs/docker.md, MAC-aware addresses).
MAC=02:42:0a:e7:00:55
D run -d --name cm --network s1 --mac-address "$MAC" "$IMG" sleep 3600 >/dev/null || bad "run cm --mac-address"
am=$(addr_of cm); mm=$(D exec cm cat /sys/class/net/eth0/address 2>/dev/null); echo "  cm=$am ($mm)"
check "cm has --mac-address $MAC on eth0" [ "$mm" = "$MAC" ]
check "cm's address is in --ip-range" in_range "$am"
# The pool's answer to another container asking for cm's address names the lease's holder.
holder() { D run --rm --network s1 --ip "$am" "$IMG" true 2>&1; }
check "cm's lease is keyed by its MAC" sh -c 'echo "$1" | grep -q "docker-mac-$2"' _ "$(holder)" "${MAC//:/}"
out=$(D run --rm --network s1 --mac-address "$MAC" "$IMG" true 2>&1)
check "a second container with cm's MAC is refused" sh -c '[ -n "$1" ]' _ "$out"
check "cm keeps its lease after that container's rollback" sh -c 'echo "$1" | grep -q "docker-mac-$2"' _ "$(holder)" "${MAC//:/}"
check "cm pings the gateway" pings cm "$SP.1"
D rm -f cm >/dev/null || bad "rm -f cm"
check "rm -f cm released its lease (a container gets $am)" sh -c '[ -z "$1" ]' _ "$(holder)"
check "records: one per container (3)" [ "$(records)" = 3 ]

# ------------------------------------------------------------------ plugin restarts
stop_plugin TERM; start_plugin && ok "plugin restarted (TERM)" || bad "plugin restart (TERM)"
D run -d --name c4 --network s1 "$IMG" sleep 3600 >/dev/null && ok "run c4 after plugin restart" || bad "run c4"
a4=$(addr_of c4); echo "  c4=$a4"
check "c4's address is fresh" sh -c '[ -n "$1" ] && [ "$1" != "$2" ] && [ "$1" != "$3" ] && [ "$1" != "$4" ]' _ "$a4" "$a1" "$a2" "$a3"
stop_plugin KILL; start_plugin && ok "plugin restarted (KILL)" || bad "plugin restart (KILL)"
check "c3 (restart=always) still pings the gateway" pings c3 "$SP.1"
D rm -f c4 >/dev/null && ok "rm -f c4 after plugin kill" || bad "rm -f c4"

# ------------------------------------------------------------------ dockerd restart
stop_dockerd
start_dockerd && ok "dockerd restarted" || bad "dockerd restart"
for _ in $(seq 1 50); do [ "$(D inspect -f '{{.State.Running}}' c3 2>/dev/null)" = true ] && break; sleep 0.2; done
check "c3 (restart=always) is running again" [ "$(D inspect -f '{{.State.Running}}' c3 2>/dev/null)" = true ]
a3b=$(addr_of c3); echo "  c3 after restart=$a3b"
check "c3 has an address in --ip-range again and pings the gateway" sh -c 'l=${1##*.}; [ "${1%.*}" = "$2" ] && [ "$l" -ge 64 ] && [ "$l" -le 95 ]' _ "$a3b" "$SP"
pings c3 "$SP.1" || bad "c3 pings after dockerd restart"
sleep 1
check "dockerd alive, no panic in its log" sh -c 'kill -0 "$1" && ! grep -q "panic" "$2"' _ "$DPID" "$WORK/dockerd.log"
D start c1 c2 >/dev/null 2>&1
check "c1 and c2 started again, c1 keeps $SP.10" sh -c '[ "$1" = "$2" ]' _ "$(addr_of c1)" "$SP.10"

# ------------------------------------------------------------------ dockerd killed -9, containers gone
kill -KILL "$DPID"; DPID=
sleep 0.5
kill_containers
sleep 1
stop_plugin TERM; start_plugin && ok "plugin restarted after dockerd kill -9" || bad "plugin restart after kill -9"
# reconcile runs beside serving: give it time to look through the host's namespaces
for _ in $(seq 1 100); do [ "$(records)" = 0 ] && break; sleep 0.2; done
check "reconcile removed the endpoints whose containers died (no records)" [ "$(records)" = 0 ]
left=$(stray_links)
check "no endpoint link left in dockerd's netns${left:+ (left: $left)}" [ -z "$left" ]
start_dockerd && ok "dockerd started after kill -9" || bad "dockerd start after kill -9"
for _ in $(seq 1 50); do [ "$(D inspect -f '{{.State.Running}}' c3 2>/dev/null)" = true ] && break; sleep 0.2; done
check "c3 (restart=always) is back after the kill" [ "$(D inspect -f '{{.State.Running}}' c3 2>/dev/null)" = true ]
check "c3 pings the gateway" pings c3 "$SP.1"

# ------------------------------------------------------------------ teardown leaves nothing
D rm -f c1 c2 c3 >/dev/null 2>&1
left=$(stray_links)
check "rm -f: no endpoint link left${left:+ (left: $left)}" [ -z "$left" ]
check "rm -f: no endpoint record left" [ "$(records)" = 0 ]
D network rm s1 >/dev/null && ok "network rm s1" || bad "network rm s1"
links=$(ip -n "$NS" -j link show | python3 -c 'import json,sys; print(" ".join(sorted(l["ifname"] for l in json.load(sys.stdin))))')
check "network rm: only lo and the parent left ($links)" [ "$links" = "lo $PARENT" ]
check "network rm: no network record, no pool, no lease" sh -c '[ -z "$(ls "$1/networks")" ] && [ -z "$(ls "$1/docker-pools" | grep -v "^lock$")" ] && [ -z "$(ls "$1/ipam" | grep -v "^lock$")" ]' _ "$STATE"

# ------------------------------------------------------------------ DHCP network (dnsmasq on the wire)
# dnsmasq in the gateway namespace on a second subnet of the wire; T1 4 s so that a renewal
# comes soon (its shortest lease is 2 min).
DP=10.233.0
ip -n "$GWNS" addr add "$DP.1/24" dev uldkgw0
ip netns exec "$GWNS" dnsmasq --keep-in-foreground --port=0 --conf-file=/dev/null --interface=uldkgw0 \
  --bind-interfaces --dhcp-range="$DP.10,$DP.50,255.255.255.0,2m" --dhcp-option=option:router,"$DP.1" \
  --dhcp-option=option:T1,4 --dhcp-option=option:T2,90 --dhcp-authoritative --no-ping --user=root --group=root \
  --dhcp-leasefile="$WORK/dnsmasq.leases" --pid-file="$WORK/dnsmasq.pid" \
  --log-facility="$WORK/dnsmasq.log" --log-dhcp </dev/null >/dev/null 2>&1 &
DNSMASQ_PID=$!
eval "e2e_$(declare -f teardown)"   # teardown stops dnsmasq too
teardown() { kill "$DNSMASQ_PID" 2>/dev/null; wait "$DNSMASQ_PID" 2>/dev/null; e2e_teardown; }
for _ in $(seq 1 50); do [ -s "$WORK/dnsmasq.pid" ] && break; sleep 0.1; done
[ -s "$WORK/dnsmasq.pid" ] || die "dnsmasq did not start (is dnsmasq-base installed?)"
out=$(D network create -d "$P" --ipam-driver null -o parent="$PARENT" dhnone 2>&1)
check "--ipam-driver null without underlay.dhcp: refused, naming the option" sh -c 'echo "$1" | grep -q "underlay.dhcp=on"' _ "$out"
out=$(D network create -d "$P" --ipam-driver "$P" --subnet 10.234.0.0/24 -o parent="$PARENT" -o underlay.dhcp=on dhpool 2>&1)
check "underlay.dhcp with a pool from an IPAM driver: refused, naming --ipam-driver null" sh -c 'echo "$1" | grep -q -- "--ipam-driver null"' _ "$out"
D network create -d "$P" --ipam-driver null -o parent="$PARENT" -o underlay.dhcp=tries=4,wait_ms=500 dh >/dev/null \
  && ok "network create dh (-o underlay.dhcp, --ipam-driver null)" || die "network create dh"
D run -d --name dh1 --network dh "$IMG" sleep 3600 >/dev/null || die "run dh1 on the DHCP network"
dpid=$(D inspect -f '{{.State.Pid}}' dh1)
CN() { nsenter --net="/proc/$dpid/ns/net" -- "$@"; }
ad=$(CN ip -j -4 addr show dev eth0 | python3 -c 'import json,sys; print(" ".join(a["local"]+"/"+str(a["prefixlen"]) for l in json.load(sys.stdin) for a in l["addr_info"]))')
dmac=$(CN ip -j link show dev eth0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])'); dad=${ad%/*}
echo "  dh1=$ad ($dmac)"
check "dh1's eth0 has one address from dnsmasq's range, with its /24" sh -c 'case "$1" in "$2".[1-5][0-9]/24) true;; *) false;; esac' _ "$ad" "$DP"
check "dnsmasq's lease file holds dh1's address for its MAC" grep -q " $dmac $dad " "$WORK/dnsmasq.leases"
check "dh1's default route goes via dnsmasq's router $DP.1" sh -c '[ "$(nsenter --net="/proc/$1/ns/net" ip -j route show default | python3 -c "import json,sys; print(\" \".join(r.get(\"gateway\",\"\") for r in json.load(sys.stdin)))")" = "$2" ]' _ "$dpid" "$DP.1"
check "dh1 pings the wire namespace ($DP.1)" pings dh1 "$DP.1"
acks() { grep -c "DHCPACK.* $dad $dmac" "$WORK/dnsmasq.log" 2>/dev/null; }
before=$(acks)
stop_plugin TERM; start_plugin && ok "plugin restarted with a DHCP container" || bad "plugin restart (DHCP)"
for _ in $(seq 1 100); do [ "$(acks)" -gt "$before" ] && break; sleep 0.1; done
check "the restarted plugin's renewer renewed dh1's lease at T1 (dnsmasq ACKed again)" [ "$(acks)" -gt "$before" ]
check "dh1 keeps its address and pings after the renewal" sh -c '[ "$(nsenter --net="/proc/$1/ns/net" ip -4 -o addr show dev eth0 | wc -l)" = 1 ]' _ "$dpid"
pings dh1 "$DP.1" || bad "dh1 pings after the plugin restart"
D rm -f dh1 >/dev/null || bad "rm -f dh1"
for _ in $(seq 1 30); do grep -q " $dad " "$WORK/dnsmasq.leases" || break; sleep 0.1; done
check "rm -f dh1 released the lease (gone from dnsmasq's lease file)" sh -c '! grep -q " $1 " "$2"' _ "$dad" "$WORK/dnsmasq.leases"
D network rm dh >/dev/null && ok "network rm dh" || bad "network rm dh"
left=$(stray_links)
check "DHCP network: no endpoint link, record or network left${left:+ (left: $left)}" sh -c '[ -z "$1" ] && [ "$(find "$2/endpoints" -mindepth 2 -type f ! -name ".*" ! -path "*/.free/*" | wc -l)" = 0 ] && [ -z "$(ls "$2/networks")" ]' _ "$left" "$STATE"
exit 0
