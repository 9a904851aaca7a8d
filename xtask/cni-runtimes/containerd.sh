#!/bin/bash
# containerd.sh PLUGIN: Debian's containerd 1.6 with `ctr run --cni`, offline, in a namespace
# of its own, runs busybox containers on a `type: underlay` network (`store: local`,
# 10.213.3.0/24) served by PLUGIN (the built underlay-cni, installed by its `install`
# subcommand). ctr reads fixed paths (/etc/cni/net.d, /opt/cni/bin): copy-on-write overlays on
# /etc, /opt and /var in ctr's private mount namespace keep them off the host.
# Checks: address, default route and a ping to the gateway namespace; `ctr run --rm` sends DEL
# with CNI_NETNS="" and that releases the lease in underlay's store and the endpoint record;
# a detached container, DEL by hand with CNI_NETNS="" (ctr never sends it), twice; nothing left
# behind. Exit 0: all passed, 1: a check failed, 2: usage. Run by `cargo xtask cni-test`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
C3=10.213.3

if [ "${1:-}" = --inner ]; then
  # ---------------------------------------------- inside: the runtime's netns, private mount ns
  WORK=$2 NS=$3 BIN=/opt/cni/bin
  for d in etc opt var; do
    mkdir -p "$WORK/$d-up" "$WORK/$d-work"
    mount -t overlay "ulrt-$d" -o "lowerdir=/$d,upperdir=$WORK/$d-up,workdir=$WORK/$d-work" "/$d" || exit 90
  done
  mkdir -p /etc/cni/net.d /opt/cni/bin
  mount -t tmpfs -o mode=755 ulrt-cninetd /etc/cni/net.d || exit 91   # hide any other conflist
  "$WORK/underlay-cni" install /opt/cni/bin >/dev/null || exit 92
  write_net ulc "$C3" local "$WORK" /etc/cni/net.d
  cat > "$WORK/config.toml" <<EOF
version = 2
root = "$WORK/root"
state = "$WORK/state-ctd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/containerd.sock"
[ttrpc]
  address = "$WORK/containerd.sock.ttrpc"
[debug]
  address = "$WORK/debug.sock"
EOF
  C() { ctr --address "$WORK/containerd.sock" "$@"; }
  R=(--fifo-dir "$WORK/fifo" --runc-root "$WORK/runc" --env PATH=/bin)
  CPID=
  trap 'set +e; for t in $(C task ls -q 2>/dev/null); do C task kill -s KILL $t; sleep 0.2; C task delete -f $t; done >/dev/null 2>&1
        for c in $(C container ls -q 2>/dev/null); do C container delete $c; done >/dev/null 2>&1
        [ -n "$CPID" ] && { kill -TERM $CPID; for _ in $(seq 1 50); do kill -0 $CPID 2>/dev/null || break; sleep 0.1; done; kill -KILL $CPID 2>/dev/null; }
        echo "INNER: $passes passed, $fails failed"; exit $fails' EXIT

  containerd --config "$WORK/config.toml" >"$WORK/containerd.log" 2>&1 </dev/null &
  CPID=$!
  for _ in $(seq 1 100); do C version >/dev/null 2>&1 && break; sleep 0.1; done
  C version >/dev/null 2>&1 || { tail -5 "$WORK/containerd.log"; die "containerd did not come up"; }

  out=$(C run --rm --cni "${R[@]}" --cgroup "/$NS/c1" --rootfs "$WORK/rootfs" c1 \
        sh -c "ip -4 -o addr show dev eth0; ip route; ping -c 1 -W 3 $C3.1 >/dev/null && echo PING-OK" 2>&1)
  echo "$out" | sed 's/^/  c1: /'
  check "c1 eth0 has an address in $C3.0/24" sh -c 'echo "$1" | grep -q " inet $2\.[0-9]*/24 "' _ "$out" "$C3"
  check "c1 default route via $C3.1" sh -c 'echo "$1" | grep -q "^default via $2 dev eth0"' _ "$out" "$C3.1"
  check "c1 pings the gateway $C3.1" sh -c 'echo "$1" | grep -q PING-OK' _ "$out"
  check "ctr run --rm sent DEL with CNI_NETNS=\"\", and it succeeded" \
    grep -q "DEL container=default-c1 ifname=eth0 netns=: ok" "$WORK/cni.log"
  check "that DEL released c1's lease (underlay's store)" lease_gone "$BIN" "$WORK" ulc default-c1 eth0
  check "and c1's endpoint record" record_count "$WORK/state" ulc 0

  C run -d --cni "${R[@]}" --cgroup "/$NS/c2" --rootfs "$WORK/rootfs" c2 sleep 600 >/dev/null 2>&1 \
    && ok "ctr run -d --cni c2" || bad "ctr run -d --cni c2"
  a=$(C task exec --fifo-dir "$WORK/fifo" --exec-id x1 c2 ip -4 -o addr show dev eth0 2>&1); echo "  c2: $a"
  check "c2 eth0 has an address in $C3.0/24" sh -c 'echo "$1" | grep -q " inet $2\.[0-9]*/24 "' _ "$a" "$C3"
  check "c2 pings the gateway" sh -c 'ctr --address "$1/containerd.sock" task exec --fifo-dir "$1/fifo" --exec-id x2 c2 ping -c 1 -W 3 "$2" >/dev/null' _ "$WORK" "$C3.1"
  check "c2's lease: underlay's store holds it" holds_lease "$BIN" "$WORK" ulc default-c2 eth0
  check "c2's endpoint record exists" record_count "$WORK/state" ulc 1
  C task kill -s KILL c2 >/dev/null 2>&1; sleep 0.3; C task delete c2 >/dev/null 2>&1; C container delete c2 >/dev/null 2>&1
  # ctr never sends DEL for a detached container: the caller does, as ctr --rm would.
  for n in 1 2; do
    CNI_COMMAND=DEL CNI_CONTAINERID=default-c2 CNI_NETNS= CNI_IFNAME=eth0 CNI_PATH=$BIN \
      "$BIN/underlay" < "$WORK/ulc.json" >/dev/null 2>"$WORK/del.err" \
      && ok "DEL $n of c2 with CNI_NETNS=\"\"" || { cat "$WORK/del.err"; bad "DEL $n of c2"; }
  done
  check "DEL released c2's lease (underlay's store)" lease_gone "$BIN" "$WORK" ulc default-c2 eth0
  check "no endpoint record left" [ -z "$(records "$WORK/state" ulc)" ]
  check "only lo and the parent left in the runtime's namespace" only_wire_links
  exit 0
fi

# ---------------------------------------------------------------- outside
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 2; }
PLUGIN=${1:-}
[ -x "$PLUGIN" ] || { echo "usage: $0 PATH-OF-underlay-cni" >&2; exit 2; }
command -v containerd >/dev/null && command -v ctr >/dev/null && command -v runc >/dev/null \
  || { echo "FATAL: containerd/runc not installed" >&2; exit 1; }
NS=ulrt-ct-$$
WORK=$(mktemp -d /tmp/ulrt-ct.XXXXXX)
pre_rc=$([ -e /run/containerd ] && echo 1 || echo 0); pre_rcs=$([ -e /run/containerd/s ] && echo 1 || echo 0)

teardown() {
  set +e
  kill_cgroup "$NS"
  for p in $(pgrep -f -- "-address $WORK/containerd.sock"); do kill -TERM "$p"; done   # orphaned shims
  # containerd-shim-runc-v2 puts its sockets in /run/containerd/s whatever the config says
  [ "$pre_rcs" = 0 ] && rmdir /run/containerd/s 2>/dev/null
  [ "$pre_rc" = 0 ] && rmdir /run/containerd 2>/dev/null
  ip netns del "$NS-gw" 2>/dev/null; ip netns del "$NS" 2>/dev/null
  rm -rf "$WORK"
  [ "$(ip netns list | grep -c "^$NS")" = 0 ] || bad "namespaces $NS* left behind"
  [ -z "$(find /sys/fs/cgroup -maxdepth 4 -type d -name "$NS" 2>/dev/null)" ] || bad "cgroups $NS left behind"
  echo "RESULT containerd: $passes passed, $fails failed"
}
trap 'teardown; [ $fails = 0 ] && exit 0; exit 1' EXIT
trap 'exit 1' INT TERM

make_wire "$NS" "$C3"
mkdir -p "$WORK/state"
cp "$PLUGIN" "$WORK/underlay-cni" || die "copy the plugin"
make_rootfs "$WORK/rootfs" || die "rootfs"

nsenter --net="/run/netns/$NS" -- unshare --mount --propagation slave -- bash "$0" --inner "$WORK" "$NS"
inner=$?
[ $inner = 0 ] && ok "containerd checks in $NS" || bad "containerd checks in $NS ($inner failed)"
if [ $inner != 0 ] && [ -s "$WORK/cni.log" ]; then echo "plugin log:"; tail -20 "$WORK/cni.log"; fi
