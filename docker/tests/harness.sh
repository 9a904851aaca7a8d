# harness.sh: sourced by e2e.sh and bench.sh (see e2e.sh's notes): checks the arguments, makes
# dockerd's namespace and the gateway namespace with a veth parent, starts the plugin (logging
# its calls to $WORK/calls.jsonl when PLUGIN_LOG is set) and dockerd, imports the busybox image
# as $IMG, and sets the traps that tear everything down.
set -u
PLUGIN_BIN=${1:-}
[ -x "$PLUGIN_BIN" ] || { echo "usage: $0 PATH/TO/underlay-docker" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "${0##*/}: must run as root" >&2; exit 2; }
PLUGIN_BIN=$(readlink -f "$PLUGIN_BIN")

NS=uldk$$; GWNS=$NS-gw; CG=$NS
P=underlay-e2e-$$                      # the driver's name: its own socket, never a real install's
SOCK=/run/docker/plugins/$P.sock
PARENT=uldkpar0
SP=10.231.0                            # the /24; host .2 on the parent, gateway .1 in $GWNS
WORK=$(mktemp -d /tmp/uldk-e2e.XXXXXX)
STATE=$WORK/state
export DOCKER_CONFIG=$WORK/cli
D() { /usr/bin/docker -H "unix://$WORK/docker.sock" "$@"; }
IN() { nsenter --net="/run/netns/$NS" -- "$@"; }

fails=0; passes=0
ok()   { passes=$((passes+1)); echo "PASS: $*"; }
bad()  { fails=$((fails+1)); echo "FAIL: $*"; }
check(){ local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
die()  { bad "$*"; exit 1; }

pre_plugins=$([ -e /run/docker/plugins ] && echo 1 || echo 0)
pre_docker=$([ -e /run/docker ] && echo 1 || echo 0)
pre_containerd=$([ -e /run/containerd ] && echo 1 || echo 0)
pre_containerd_s=$([ -e /run/containerd/s ] && echo 1 || echo 0)
DPID=; PPID_PLUGIN=

kill_containers() {   # container processes live in our cgroup parent; shims are found by -address
  for f in /sys/fs/cgroup/pids/"$CG"/*/cgroup.procs /sys/fs/cgroup/"$CG"/*/cgroup.procs; do
    [ -f "$f" ] && for p in $(cat "$f"); do kill -KILL "$p" 2>/dev/null; done
  done
  for p in $(pgrep -f -- "-address $WORK/exec/containerd/containerd.sock"); do kill -KILL "$p" 2>/dev/null; done
  # dockerd's own containerd, with its pid file: dockerd 20.10 takes any live process of that
  # pid for its containerd and waits on its socket, which a dying one (or a recycled pid:
  # pid_max is 32768 here) never answers ("timeout waiting for containerd to start"). The
  # next dockerd then starts a fresh containerd, as after a reboot.
  local pidf="$WORK/exec/containerd/containerd.pid" cpid
  if [ -s "$pidf" ]; then
    cpid=$(cat "$pidf")
    if grep -qa -- "$WORK/exec/containerd" "/proc/$cpid/cmdline" 2>/dev/null; then
      kill -KILL "$cpid" 2>/dev/null
      for _ in $(seq 1 100); do [ -e "/proc/$cpid" ] || break; sleep 0.1; done
    fi
    rm -f "$pidf"
  fi
}
stop_dockerd() {
  [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null || return 0
  kill -TERM "$DPID"; for _ in $(seq 1 150); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$DPID" 2>/dev/null && kill -KILL "$DPID"
  DPID=
}
stop_plugin() {   # $1: TERM or KILL
  [ -n "$PPID_PLUGIN" ] || return 0
  kill -"${1:-TERM}" "$PPID_PLUGIN" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$PPID_PLUGIN" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PPID_PLUGIN" 2>/dev/null
  PPID_PLUGIN=
}
teardown() {
  set +e
  if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
    D ps -aq 2>/dev/null | xargs -r /usr/bin/docker -H "unix://$WORK/docker.sock" rm -f >/dev/null 2>&1
  fi
  stop_dockerd
  kill_containers
  stop_plugin KILL
  rm -f "$SOCK"
  [ "$pre_plugins" = 0 ] && rmdir /run/docker/plugins 2>/dev/null
  [ "$pre_docker" = 0 ] && rmdir /run/docker 2>/dev/null
  [ "$pre_containerd_s" = 0 ] && rmdir /run/containerd/s 2>/dev/null
  [ "$pre_containerd" = 0 ] && rmdir /run/containerd 2>/dev/null
  for d in $(find /sys/fs/cgroup -maxdepth 4 -type d -name "$CG" 2>/dev/null); do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  ip netns del "$GWNS" 2>/dev/null; ip netns del "$NS" 2>/dev/null
  if [ "$fails" != 0 ]; then
    echo "--- plugin log"; tail -20 "$WORK/plugin.out" 2>/dev/null
    echo "--- dockerd log (errors)"; grep -iE 'level=(error|fatal)|panic' "$WORK/dockerd.log" 2>/dev/null | tail -20
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
  echo "RESULT docker e2e: $passes passed, $fails failed"
}
trap 'rc=$?; teardown; [ $fails = 0 ] && [ $rc = 0 ] && exit 0; exit 1' EXIT
trap 'exit 1' INT TERM

# ------------------------------------------------------------------ namespaces, dockerd, image
ip netns add "$NS" && ip netns add "$GWNS" || die "ip netns add"
ip -n "$NS" link set lo up; ip -n "$GWNS" link set lo up
ip -n "$NS" link add "$PARENT" type veth peer name uldkgw0 netns "$GWNS" || die "veth"
ip -n "$NS" addr add "$SP.2/24" dev "$PARENT"; ip -n "$NS" link set "$PARENT" up
ip -n "$GWNS" addr add "$SP.1/24" dev uldkgw0; ip -n "$GWNS" link set uldkgw0 up

mkdir -p "$WORK/data" "$WORK/exec" "$DOCKER_CONFIG"
printf '{"deprecated-key-path": "%s/key.json"}\n' "$WORK" > "$WORK/daemon.json"
start_dockerd() {
  setsid nsenter --net="/run/netns/$NS" -- unshare --mount --propagation slave -- \
    /usr/sbin/dockerd --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
    -H "unix://$WORK/docker.sock" --config-file "$WORK/daemon.json" \
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false \
    --cgroup-parent="$CG" --exec-opt native.cgroupdriver=cgroupfs \
    >>"$WORK/dockerd.log" 2>&1 </dev/null &
  DPID=$!
  # 60 s: after a kill -9 under load dockerd takes a while to take its containerd back
  for _ in $(seq 1 600); do D version >/dev/null 2>&1 && return 0; kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
  echo "--- dockerd did not answer; its log ends:"; tail -15 "$WORK/dockerd.log"
  return 1
}
start_plugin() {   # the plugin first: a driver missing at dockerd's start stalls its API ~30 s
  setsid nsenter --net="/run/netns/$NS" -- "$PLUGIN_BIN" --socket "$SOCK" --state "$STATE" \
    ${PLUGIN_LOG:+--log "$WORK/calls.jsonl"} \
    >>"$WORK/plugin.out" 2>&1 </dev/null &
  PPID_PLUGIN=$!
  for _ in $(seq 1 100); do [ -S "$SOCK" ] && return 0; kill -0 "$PPID_PLUGIN" 2>/dev/null || break; sleep 0.1; done
  return 1
}
start_plugin || { cat "$WORK/plugin.out"; die "plugin socket $SOCK did not appear"; }
start_dockerd || { tail -5 "$WORK/dockerd.log"; die "dockerd did not come up"; }

rootfs=$(mktemp -d "$WORK/rootfs.XXXX"); chmod 755 "$rootfs"
bb=$(command -v busybox) || die "busybox-static is not installed"
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root,run,var}
cp "$bb" "$rootfs/bin/busybox"
for a in $("$bb" --list); do [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"; printf 'root:x:0:\n' > "$rootfs/etc/group"
tar -C "$rootfs" --numeric-owner -cf "$WORK/rootfs.tar" . && D import "$WORK/rootfs.tar" uldk-busybox:latest >/dev/null \
  || die "docker import"
IMG=uldk-busybox:latest
