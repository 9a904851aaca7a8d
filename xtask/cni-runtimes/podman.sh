#!/bin/bash
# podman.sh PLUGIN: Debian's podman 4.3 (CNI backend), offline, in a namespace of its own, runs
# busybox containers on two `type: underlay` networks served by PLUGIN (the built underlay-cni,
# installed as `underlay` and `underlay-ipam` by its `install` subcommand):
#   ula: underlay's host-local layout (lease files in a dataDir), 10.213.1.0/24
#   ulb: `store: local` (underlay's journal), 10.213.2.0/24
#   uld: `"ipam": {"type": "dhcp"}`, dnsmasq (in the gateway namespace) serving 10.213.3.0/24
# Checks: address, default route and a ping to the gateway namespace; `--ip` (IP= in CNI_ARGS);
# a container on both networks (one default route, both gateways reachable); stop/rm release
# the lease in underlay's store (read back by the plugin's IPAM role, and host-local's files as
# the oracle) and the endpoint records; nothing left behind. Exit 0: all passed, 1: a check
# failed, 2: usage. A container on uld gets dnsmasq's address (its lease file names the
# container's name, podman's K8S_POD_NAME, as host name) and rm releases it. Run by
# `cargo xtask cni-test`; podman, runc, busybox-static, dnsmasq-base installed by it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
A=10.213.1 B=10.213.2 D=10.213.3

if [ "${1:-}" = --inner ]; then
  # ---------------------------------------------- inside: the runtime's netns, private mount ns
  WORK=$2 NS=$3 BIN=$WORK/cni-bin
  mount -t tmpfs -o mode=755 ulrt-netns /run/netns || exit 90       # podman's netns-<uuid>
  mount -t tmpfs -o mode=1777 ulrt-shm /dev/shm || exit 91          # libpod_lock
  mkdir -p "$WORK/var-up" "$WORK/var-work"                          # /var/lib/cni/results & co.
  mount -t overlay ulrt-var -o "lowerdir=/var,upperdir=$WORK/var-up,workdir=$WORK/var-work" /var || exit 92
  export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf TMPDIR=$WORK/tmp
  P() { podman "$@"; }
  CG=(--cgroup-parent="/$NS")
  trap 'P rm -af -t 0 >/dev/null 2>&1; echo "INNER: $passes passed, $fails failed"; exit $fails' EXIT
  in_c() { P exec "$1" sh -c "$2" 2>&1; }
  id_of() { P inspect --format '{{.Id}}' "$1"; }

  P import "$WORK/rootfs.tar" ulrt-busybox >/dev/null 2>&1 || die "podman import"
  check "podman uses the CNI backend" [ "$(P info --format '{{.Host.NetworkBackend}}' 2>/dev/null)" = cni ]

  P run -d --name c1 "${CG[@]}" --network ula ulrt-busybox sleep 600 >/dev/null 2>"$WORK/err" \
    && ok "run c1 on ula" || { cat "$WORK/err"; bad "run c1 on ula"; }
  a=$(in_c c1 'ip -4 -o addr show dev eth0'); echo "  c1: $a"
  ip1=$(echo "$a" | sed -n "s/.* inet \($A\.[0-9]*\)\/24 .*/\1/p")
  check "c1 eth0 has an address in $A.0/24" [ -n "$ip1" ]
  check "c1 default route via $A.1" sh -c 'echo "$1" | grep -q "^default via $2 dev eth0"' _ "$(in_c c1 'ip route')" "$A.1"
  check "c1 pings the gateway $A.1" sh -c 'podman exec c1 ping -c 1 -W 3 "$1" >/dev/null' _ "$A.1"
  id1=$(id_of c1)
  check "c1's lease: host-local file $ip1 names it" grep -q "^$id1" "$WORK/cni-ipam/ula/$ip1"
  check "c1's lease: underlay's store holds it" holds_lease "$BIN" "$WORK" ula "$id1" eth0
  check "c1's endpoint record exists" record_count "$WORK/state" ula 1

  P run -d --name c2 "${CG[@]}" --network ula --ip "$A.50" ulrt-busybox sleep 600 >/dev/null 2>&1 \
    && ok "run c2 --ip $A.50" || bad "run c2 --ip $A.50"
  check "c2 has $A.50 (IP= in CNI_ARGS honoured)" sh -c 'echo "$1" | grep -q " inet $2/24 "' _ "$(in_c c2 'ip -4 -o addr show dev eth0')" "$A.50"
  check "c2 pings c1" sh -c 'podman exec c2 ping -c 1 -W 3 "$1" >/dev/null' _ "$ip1"
  id2=$(id_of c2)

  P run -d --name c3 "${CG[@]}" --network ula,ulb ulrt-busybox sleep 600 >/dev/null 2>"$WORK/err" \
    && ok "run c3 on ula and ulb" || { cat "$WORK/err"; bad "run c3 on ula,ulb"; }
  a3=$(in_c c3 'ip -4 -o addr show'); echo "$a3" | sed -n 's/^/  c3: /p' | grep -v ' lo '
  check "c3 has an address in $A.0/24" sh -c 'echo "$1" | grep -q " inet $2\.[0-9]*/24 "' _ "$a3" "$A"
  check "c3 has an address in $B.0/24" sh -c 'echo "$1" | grep -q " inet $2\.[0-9]*/24 "' _ "$a3" "$B"
  r3=$(in_c c3 'ip route'); echo "  c3 routes: $(echo $r3)"
  check "c3 has exactly one default route" [ "$(echo "$r3" | grep -c '^default')" = 1 ]
  check "c3 pings $A.1" sh -c 'podman exec c3 ping -c 1 -W 3 "$1" >/dev/null' _ "$A.1"
  check "c3 pings $B.1" sh -c 'podman exec c3 ping -c 1 -W 3 "$1" >/dev/null' _ "$B.1"
  id3=$(id_of c3)
  if3a=$(echo "$a3" | sed -n "s/^[0-9]*: \([a-z0-9]*\) .* inet $A\..*/\1/p")
  if3b=$(echo "$a3" | sed -n "s/^[0-9]*: \([a-z0-9]*\) .* inet $B\..*/\1/p")
  check "c3's lease on ula ($if3a): underlay's store holds it" holds_lease "$BIN" "$WORK" ula "$id3" "$if3a"
  check "c3's lease on ulb ($if3b, store local): underlay's store holds it" holds_lease "$BIN" "$WORK" ulb "$id3" "$if3b"
  check "c2's lease: underlay's store holds it" holds_lease "$BIN" "$WORK" ula "$id2" eth0

  P stop -t 0 c1 >/dev/null 2>&1 && ok "stop c1" || bad "stop c1"
  check "stop released c1's lease (underlay's store)" lease_gone "$BIN" "$WORK" ula "$id1" eth0
  check "stop released c1's lease (host-local file $ip1 gone)" [ ! -e "$WORK/cni-ipam/ula/$ip1" ]
  P start c1 >/dev/null 2>&1 && ok "start c1" || bad "start c1"
  check "c1 has an address after restart" sh -c 'echo "$1" | grep -q " inet $2\."' _ "$(in_c c1 'ip -4 -o addr show dev eth0')" "$A"

  P run -d --name c4 "${CG[@]}" --network uld ulrt-busybox sleep 600 >/dev/null 2>"$WORK/err" \
    && ok "run c4 on uld (DHCP)" || { cat "$WORK/err"; bad "run c4 on uld"; }
  a4=$(in_c c4 'ip -4 -o addr show dev eth0'); echo "  c4: $a4"
  ip4=$(echo "$a4" | sed -n "s/.* inet \($D\.[0-9]*\)\/24 .*/\1/p")
  check "c4 eth0 has an address in $D.0/24" [ -n "$ip4" ]
  check "dnsmasq leased c4's address $ip4 to c4" grep -q " $ip4 c4 " "$WORK/dnsmasq.leases"
  check "c4 default route via dnsmasq's router $D.1" sh -c 'echo "$1" | grep -q "^default via $2 dev eth0"' _ "$(in_c c4 'ip route')" "$D.1"
  check "c4 pings $D.1" sh -c 'podman exec c4 ping -c 1 -W 3 "$1" >/dev/null' _ "$D.1"
  P rm -f -t 0 c4 >/dev/null 2>&1 && ok "rm -f c4" || bad "rm c4"
  check "rm released c4's DHCP lease (dnsmasq's lease file)" sh -c 'for i in $(seq 40); do grep -q " $1 " "$2" || exit 0; sleep 0.05; done; exit 1' _ "$ip4" "$WORK/dnsmasq.leases"
  check "no endpoint record left on uld" [ -z "$(records "$WORK/state" uld)" ]

  P rm -f -t 0 c1 c2 c3 >/dev/null 2>&1 && ok "rm -f c1 c2 c3" || bad "rm c1 c2 c3"
  for held in "c1 ula $id1 eth0" "c2 ula $id2 eth0" "c3 ula $id3 $if3a" "c3 ulb $id3 $if3b"; do
    set -- $held
    check "rm released $1's lease on $2 (underlay's store)" lease_gone "$BIN" "$WORK" "$2" "$3" "$4"
  done
  check "no lease file left in ula's dataDir" [ -z "$(lease_files "$WORK/cni-ipam" ula)" ]
  check "no endpoint record left" [ -z "$(records "$WORK/state" ula)$(records "$WORK/state" ulb)" ]
  check "no container netns left" sh -c '[ -z "$(ls /run/netns)" ]'
  check "only lo and the parent left in the runtime's namespace" only_wire_links
  exit 0   # the EXIT trap reports and exits with the failure count
fi

# ---------------------------------------------------------------- outside
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 2; }
PLUGIN=${1:-}
[ -x "$PLUGIN" ] || { echo "usage: $0 PATH-OF-underlay-cni" >&2; exit 2; }
command -v podman >/dev/null && command -v runc >/dev/null || { echo "FATAL: podman/runc not installed" >&2; exit 1; }
command -v dnsmasq >/dev/null || { echo "FATAL: dnsmasq not installed (apt-get install dnsmasq-base)" >&2; exit 1; }
NS=ulrt-pm-$$
WORK=$(mktemp -d /tmp/ulrt-pm.XXXXXX)

teardown() {
  set +e
  kill_cgroup "$NS"
  [ -s "$WORK/dnsmasq.pid" ] && kill "$(cat "$WORK/dnsmasq.pid")" 2>/dev/null
  ip netns del "$NS-gw" 2>/dev/null; ip netns del "$NS" 2>/dev/null
  rm -rf "$WORK"   # the overlay, shm and netns mounts died with the private mount namespace
  [ "$(ip netns list | grep -c "^$NS")" = 0 ] || bad "namespaces $NS* left behind"
  [ -z "$(find /sys/fs/cgroup -maxdepth 4 -type d -name "$NS" 2>/dev/null)" ] || bad "cgroups $NS left behind"
  echo "RESULT podman: $passes passed, $fails failed"
}
trap 'teardown; [ $fails = 0 ] && exit 0; exit 1' EXIT
trap 'exit 1' INT TERM

make_wire "$NS" "$A" "$B"
mkdir -p "$WORK"/{cni-bin,cni-conf,cni-ipam,state,storage,run,tmp,vol}
"$PLUGIN" install "$WORK/cni-bin" >/dev/null || die "underlay-cni install"
write_net ula "$A" host-local "$WORK" "$WORK/cni-conf"
write_net ulb "$B" local "$WORK" "$WORK/cni-conf"
write_dhcp_net uld "$WORK" "$WORK/cni-conf"
# The LAN's DHCP server for uld, on the gateway side of the wire (no DNS: --port=0).
ip -n "$NS-gw" addr add "$D.1/24" dev wire0 || die "gateway $D.1"
ip netns exec "$NS-gw" dnsmasq --port=0 --conf-file=/dev/null --interface=wire0 --bind-interfaces \
  --dhcp-range="$D.100,$D.150,255.255.255.0,2m" --dhcp-option="option:router,$D.1" \
  --dhcp-authoritative --no-ping --user=root --group=root \
  --dhcp-leasefile="$WORK/dnsmasq.leases" --pid-file="$WORK/dnsmasq.pid" || die "dnsmasq"
# No CAP_SYS_RESOURCE on this kind of machine: ask runc for no more than the hard limits.
hn=$(ulimit -Hn); hu=$(ulimit -Hu); [ "$hu" = unlimited ] && hu=32768; [ "$hu" -gt 32768 ] && hu=32768
[ "$hn" = unlimited ] && hn=1048576
cat > "$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$hn:$hn", "nproc=$hu:$hu"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/events.log"
tmp_dir = "$WORK/tmp"
volume_path = "$WORK/vol"
runtime = "runc"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$WORK/cni-bin", "/usr/lib/cni"]
network_config_dir = "$WORK/cni-conf"
default_network = "ulrtdefault"
EOF
cat > "$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$WORK/run"
graphroot = "$WORK/storage"
EOF
make_rootfs "$WORK/rootfs" && tar -C "$WORK/rootfs" --numeric-owner -cf "$WORK/rootfs.tar" . || die "rootfs"

nsenter --net="/run/netns/$NS" -- unshare --mount --propagation slave -- bash "$0" --inner "$WORK" "$NS"
inner=$?
[ $inner = 0 ] && ok "podman checks in $NS" || bad "podman checks in $NS ($inner failed)"
if [ $inner != 0 ] && [ -s "$WORK/cni.log" ]; then echo "plugin log:"; tail -20 "$WORK/cni.log"; fi
