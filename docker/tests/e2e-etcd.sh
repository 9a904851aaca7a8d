#!/bin/bash
# e2e-etcd.sh PLUGIN_BIN — two Docker hosts on one etcd-backed pool (S1 on two hosts, no
# hand-split --ip-range). PLUGIN_BIN must be built with `--features etcd`. As root; run by
# `cargo xtask docker-test --etcd` (needs etcd, installed by `cargo xtask etcd-test`).
#
# Namespaces: $W holds the "switch" (a bridge, 10.241.0.254 = the gateway, and the etcd member
# on it); $A and $B are the two hosts, each with a dockerd 20.10, its own plugin (--etcd, --host
# A|B) and a veth parent on the bridge. Each host starts N containers (default 50) at once on
# `-d underlay --ipam-driver underlay --subnet 10.241.0.0/24 --ip-range 10.241.0.128/25`
# (and `--aux-address`, reserved for both): no address twice across the hosts, a container on A
# pings one on B. Then A removes the network while B keeps running its containers: the gateway
# and the aux address stay held by B (etcd's hold keys), B's containers are still refused them
# and new ones get others; then B removes it too, and etcd holds nothing of the pool.
set -u
PLUGIN_BIN=${1:-}
[ -x "$PLUGIN_BIN" ] || { echo "usage: $0 PATH/TO/underlay-docker (built with --features etcd)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "e2e-etcd.sh: must run as root" >&2; exit 2; }
command -v etcd >/dev/null || { echo "e2e-etcd.sh: etcd is not installed (apt-get install etcd-server)" >&2; exit 2; }
PLUGIN_BIN=$(readlink -f "$PLUGIN_BIN")
N=${N:-50}
W=uldkw$$; HOSTS="A B"
P=underlay-etcd-$$
SOCK=/run/docker/plugins/$P.sock      # one path; each plugin serves it in its dockerd's mount ns
WORK=$(mktemp -d /tmp/uldk-etcd.XXXXXX)
ETCD=http://10.241.0.254:23790

fails=0; passes=0
ok()   { passes=$((passes+1)); echo "PASS: $*"; }
bad()  { fails=$((fails+1)); echo "FAIL: $*"; }
check(){ local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
die()  { bad "$*"; exit 1; }
ns()   { echo "uldk$1$$"; }
D()    { local h=$1; shift; DOCKER_CONFIG=$WORK/$h/cli /usr/bin/docker -H "unix://$WORK/$h/docker.sock" "$@"; }

pre_plugins=$([ -e /run/docker/plugins ] && echo 1 || echo 0)
pre_docker=$([ -e /run/docker ] && echo 1 || echo 0)
pre_containerd=$([ -e /run/containerd ] && echo 1 || echo 0)
pre_containerd_s=$([ -e /run/containerd/s ] && echo 1 || echo 0)
PIDS=""

teardown() {
  set +e
  for h in $HOSTS; do
    D "$h" ps -aq 2>/dev/null | xargs -r -n 20 sh -c 'DOCKER_CONFIG=$0/cli /usr/bin/docker -H "unix://$0/docker.sock" rm -f "$@" >/dev/null 2>&1' "$WORK/$h"
  done
  for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
  sleep 2
  for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
  for h in $HOSTS; do
    for q in $(pgrep -f -- "--state $WORK/$h/state"); do kill -KILL "$q" 2>/dev/null; done
    for f in /sys/fs/cgroup/pids/"$(ns "$h")"/*/cgroup.procs; do
      [ -f "$f" ] && for q in $(cat "$f"); do kill -KILL "$q" 2>/dev/null; done
    done
    for q in $(pgrep -f -- "-address $WORK/$h/exec/containerd/containerd.sock"); do kill -KILL "$q"; done
    for d in $(find /sys/fs/cgroup -maxdepth 4 -type d -name "$(ns "$h")" 2>/dev/null); do
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    ip netns del "$(ns "$h")" 2>/dev/null
  done
  ip netns del "$W" 2>/dev/null
  [ "$pre_plugins" = 0 ] && rmdir /run/docker/plugins 2>/dev/null
  [ "$pre_docker" = 0 ] && rmdir /run/docker 2>/dev/null
  [ "$pre_containerd_s" = 0 ] && rmdir /run/containerd/s 2>/dev/null
  [ "$pre_containerd" = 0 ] && rmdir /run/containerd 2>/dev/null
  if [ "$fails" != 0 ]; then for h in $HOSTS; do echo "--- plugin $h"; tail -5 "$WORK/$h/plugin.out"; done; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
  echo "RESULT docker etcd e2e: $passes passed, $fails failed"
}
trap 'rc=$?; teardown; [ $fails = 0 ] && [ $rc = 0 ] && exit 0; exit 1' EXIT
trap 'exit 1' INT TERM

# ------------------------------------------------------------------ the switch, etcd
ip netns add "$W" || die "netns"
ip -n "$W" link set lo up
ip -n "$W" link add br0 type bridge && ip -n "$W" link set br0 up || die "bridge"
ip -n "$W" addr add 10.241.0.254/24 dev br0
setsid nsenter --net="/run/netns/$W" -- etcd --name e2e --data-dir "$WORK/etcd" \
  --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
  --listen-peer-urls http://10.241.0.254:23800 --initial-advertise-peer-urls http://10.241.0.254:23800 \
  --initial-cluster e2e=http://10.241.0.254:23800 >"$WORK/etcd.log" 2>&1 </dev/null &
PIDS="$PIDS $!"

# ------------------------------------------------------------------ two hosts
rootfs=$(mktemp -d "$WORK/rootfs.XXXX"); chmod 755 "$rootfs"
bb=$(command -v busybox) || die "busybox-static is not installed"
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root,run,var}
cp "$bb" "$rootfs/bin/busybox"
for a in $("$bb" --list); do [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
tar -C "$rootfs" --numeric-owner -cf "$WORK/rootfs.tar" .
i=1
for h in $HOSTS; do
  n=$(ns "$h"); i=$((i+1))
  mkdir -p "$WORK/$h/data" "$WORK/$h/exec" "$WORK/$h/cli"
  ip netns add "$n" || die "netns $n"
  ip -n "$n" link set lo up
  ip -n "$n" link add par0 type veth peer name "w$h$$" netns "$W" || die "veth $h"
  ip -n "$W" link set "w$h$$" master br0 up
  ip -n "$n" addr add "10.241.0.$i/24" dev par0; ip -n "$n" link set par0 up
  printf '{"deprecated-key-path": "%s/key.json"}\n' "$WORK/$h" > "$WORK/$h/daemon.json"
  # One mount namespace per host: the plugin's socket and dockerd's share it, so that both
  # plugins can serve the one path dockerd looks at.
  cat > "$WORK/$h/start.sh" <<EOF
mount -t tmpfs tmpfs /run/docker/plugins 2>/dev/null || { mkdir -p /run/docker/plugins && mount -t tmpfs tmpfs /run/docker/plugins; }
"$PLUGIN_BIN" --socket "$SOCK" --state "$WORK/$h/state" --etcd "$ETCD" --host "$h" >>"$WORK/$h/plugin.out" 2>&1 &
for _ in \$(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
exec /usr/sbin/dockerd --data-root "$WORK/$h/data" --exec-root "$WORK/$h/exec" --pidfile "$WORK/$h/dockerd.pid" \
  -H "unix://$WORK/$h/docker.sock" --config-file "$WORK/$h/daemon.json" \
  --bridge=none --iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false \
  --cgroup-parent="$n" --exec-opt native.cgroupdriver=cgroupfs >>"$WORK/$h/dockerd.log" 2>&1
EOF
  mkdir -p /run/docker/plugins
  setsid nsenter --net="/run/netns/$n" -- unshare --mount --propagation slave -- sh "$WORK/$h/start.sh" </dev/null &
  PIDS="$PIDS $!"
done
for h in $HOSTS; do
  for _ in $(seq 1 300); do D "$h" version >/dev/null 2>&1 && break; sleep 0.1; done
  D "$h" version >/dev/null 2>&1 || { tail -5 "$WORK/$h/dockerd.log" "$WORK/$h/plugin.out"; die "dockerd $h did not come up"; }
  D "$h" import "$WORK/rootfs.tar" uldk-busybox:latest >/dev/null || die "import $h"
done

# ------------------------------------------------------------------ one pool, two hosts
for h in $HOSTS; do
  D "$h" network create -d "$P" --ipam-driver "$P" --subnet 10.241.0.0/24 --gateway 10.241.0.254 \
    --ip-range 10.241.0.128/25 --aux-address router=10.241.0.100 -o parent=par0 s1 >/dev/null \
    && ok "network create on $h (with --aux-address, shared by both hosts)" || die "network create on $h"
done
out=$(D B run --rm --network s1 --ip 10.241.0.100 uldk-busybox:latest true 2>&1)
check "the aux address is no container's on B either" sh -c 'echo "$1" | grep -q docker-aux-10.241.0.100' _ "$out"
for h in $HOSTS; do
  for k in $(seq 1 "$N"); do
    D "$h" run -d --name "c$h$k" --network s1 uldk-busybox:latest sleep 3600 >/dev/null 2>>"$WORK/$h/run.err" &
  done
done
wait_runs() { for j in $(jobs -p); do case " $PIDS " in *" $j "*) ;; *) wait "$j" ;; esac; done; }
wait_runs
for h in $HOSTS; do
  D "$h" ps -q --filter status=running | wc -l > "$WORK/$h/running"
  check "$N containers running on $h" [ "$(cat "$WORK/$h/running")" = "$N" ]
done
for h in $HOSTS; do
  for k in $(seq 1 "$N"); do
    D "$h" exec "c$h$k" ip -4 -o addr show dev eth0 2>/dev/null | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p'
  done
done > "$WORK/addresses"
total=$(grep -c . "$WORK/addresses"); unique=$(sort -u "$WORK/addresses" | grep -c .)
check "every container has an address ($total of $((2 * N)))" [ "$total" = $((2 * N)) ]
check "no address twice across the two hosts ($unique unique)" [ "$unique" = "$total" ]
check "all inside --ip-range 10.241.0.128/25" sh -c '! awk -F. "\$4 < 128" "$1" | grep -q .' _ "$WORK/addresses"
bip=$(D B exec cB1 ip -4 -o addr show dev eth0 | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p')
check "a container on A pings one on B ($bip)" D A exec cA1 ping -c 1 -W 3 "$bip"
check "a container on B pings the gateway" D B exec cB1 ping -c 1 -W 3 10.241.0.254

# ------------------------------------------------------------------ A leaves, B keeps the network
ctl() { ETCDCTL_API=3 nsenter --net="/run/netns/$W" etcdctl --endpoints "$ETCD" "$@"; }
# The holders of a reserved address, from etcd (the oracle): `hold/<ip>` is `<owner> <host>...`.
holders() { ctl get --prefix /underlay/ipam/data/ 2>/dev/null | grep -A1 "/hold/$1\$" | tail -1 | cut -d' ' -f2-; }
check "the gateway is held by both hosts ($(holders 10.241.0.254))" [ "$(holders 10.241.0.254)" = "A B" ]
check "the aux address is held by both hosts ($(holders 10.241.0.100))" [ "$(holders 10.241.0.100)" = "A B" ]
D A ps -aq | xargs -r -n 25 sh -c 'DOCKER_CONFIG=$0/cli /usr/bin/docker -H "unix://$0/docker.sock" rm -f "$@" >/dev/null' "$WORK/A"
D A network rm s1 >/dev/null && ok "network rm on A while B runs $N containers" || bad "network rm on A"
check "the gateway is held by B alone ($(holders 10.241.0.254))" [ "$(holders 10.241.0.254)" = "B" ]
check "the aux address is held by B alone ($(holders 10.241.0.100))" [ "$(holders 10.241.0.100)" = "B" ]
for a in 10.241.0.254 10.241.0.100; do
  out=$(D B run --rm --network s1 --ip "$a" uldk-busybox:latest true 2>&1)
  check "after A's rm, a container on B is still refused $a" sh -c 'echo "$1" | grep -q "$2"' _ "$out" "$a"
done
for k in 1 2 3 4; do
  D B run -d --name "cBnew$k" --network s1 uldk-busybox:latest sleep 3600 >/dev/null 2>>"$WORK/B/run.err" &
done
wait_runs
new=$(for k in 1 2 3 4; do D B exec "cBnew$k" ip -4 -o addr show dev eth0 2>/dev/null | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p'; done)
check "4 new containers on B got addresses ($(echo $new))" [ "$(echo "$new" | grep -c .)" = 4 ]
check "none of them the gateway or the aux address" sh -c '! echo "$1" | grep -qx "10.241.0.254\|10.241.0.100"' _ "$new"
check "B's new container pings the gateway" D B exec cBnew1 ping -c 1 -W 3 10.241.0.254

# ------------------------------------------------------------------ everything goes
D B ps -aq | xargs -r -n 25 sh -c 'DOCKER_CONFIG=$0/cli /usr/bin/docker -H "unix://$0/docker.sock" rm -f "$@" >/dev/null' "$WORK/B"
D B network rm s1 >/dev/null && ok "network rm on B" || bad "network rm on B"
for h in $HOSTS; do
  check "no endpoint link left on $h" sh -c '[ "$(ip -n "$1" -o link 2>/dev/null | grep -vc " lo:\| par0@")" = 0 ]' _ "$(ns "$h")"
done
left=$(ctl get --prefix /underlay/ --keys-only 2>/dev/null | grep -c "/addr/" || true)
check "no address claim left in etcd ($left)" [ "$left" = 0 ]
left=$(ctl get --prefix /underlay/ipam/ --keys-only 2>/dev/null | grep -v '^$' | grep -vx /underlay/ipam/catalog | tr '\n' ' ')
check "nothing of the pool left in etcd (${left:-none})" [ -z "$left" ]
exit 0
