# lib.sh: what podman.sh and containerd.sh share (sourced). Adapted from the verified recipe
# for running real runtimes offline in namespaces of their own (nsenter, not `ip netns exec`,
# which remounts /sys and hides the cgroup v1 mounts; a private mount namespace per runtime).
#
# The wire: namespace $NS holds the runtime and the parent veth `par0`; its peer `wire0` in
# $NS-gw carries the gateways .1 of each test subnet, which the containers ping.

fails=0; passes=0
ok()    { passes=$((passes+1)); echo "PASS: $*"; }
bad()   { fails=$((fails+1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
die()   { echo "FATAL: $*"; fails=$((fails+1)); exit 1; }

# make_wire NS SUBNET_PREFIX...: the runtime's namespace with par0, the gateway namespace with
# SP.1/24 for each prefix.
make_wire() {
  local ns=$1; shift
  ip netns add "$ns" && ip netns add "$ns-gw" || die "ip netns add $ns"
  ip -n "$ns" link set lo up && ip -n "$ns-gw" link set lo up || die "lo up"
  ip -n "$ns" link add par0 type veth peer name wire0 netns "$ns-gw" || die "veth"
  ip -n "$ns" link set par0 up && ip -n "$ns-gw" link set wire0 up || die "veth up"
  local sp
  for sp in "$@"; do ip -n "$ns-gw" addr add "$sp.1/24" dev wire0 || die "gateway $sp.1"; done
}

# make_rootfs DIR: a busybox-static image rootfs (no registry): /bin/busybox and its applets.
make_rootfs() {
  local d=$1 bb a
  bb=$(command -v busybox) || die "busybox-static is not installed"
  ldd "$bb" >/dev/null 2>&1 && die "$bb is not static: install busybox-static"
  mkdir -p "$d"/{bin,etc,proc,sys,dev,tmp,root,run,var}
  cp "$bb" "$d/bin/busybox"
  for a in $("$bb" --list); do [ "$a" = busybox ] || ln -s busybox "$d/bin/$a"; done
  ln -s bin "$d/sbin"
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$d/etc/passwd"
  printf 'root:x:0:\n' > "$d/etc/group"
  chmod 755 "$d"; chmod 1777 "$d/tmp"
}

# write_net NAME SP STORE WORK DIR: DIR/NAME.conflist with one `type: underlay` entry (macvlan
# bridge on par0, range SP.10-SP.99, default route via SP.1) and the IPAM store STORE
# ("host-local": host-local's layout in WORK/cni-ipam; "local": underlay's journal in
# WORK/state/ipam), and WORK/NAME.json: that entry as libcni sends it (cniVersion and name in).
write_net() {
  local name=$1 sp=$2 store=$3 work=$4 dir=$5 entry
  entry="{\"cniVersion\": \"1.0.0\", \"name\": \"$name\",
 \"type\": \"underlay\", \"master\": \"par0\", \"mode\": \"bridge\",
 \"stateDir\": \"$work/state\", \"logFile\": \"$work/cni.log\",
 \"ipam\": {\"type\": \"underlay-ipam\", \"store\": \"$store\", \"dataDir\": \"$work/cni-ipam\",
          \"ranges\": [[{\"subnet\": \"$sp.0/24\", \"gateway\": \"$sp.1\",
                       \"rangeStart\": \"$sp.10\", \"rangeEnd\": \"$sp.99\"}]],
          \"routes\": [{\"dst\": \"0.0.0.0/0\"}]}}"
  printf '%s\n' "$entry" > "$work/$name.json"
  printf '{"cniVersion": "1.0.0", "name": "%s", "plugins": [%s]}\n' "$name" "$entry" > "$dir/$name.conflist"
}

# write_dhcp_net NAME WORK DIR: DIR/NAME.conflist with one `type: underlay` entry on par0
# whose addresses come from the LAN's DHCP server (`"ipam": {"type": "dhcp"}`).
write_dhcp_net() {
  local name=$1 work=$2 dir=$3 entry
  entry="{\"cniVersion\": \"1.0.0\", \"name\": \"$name\",
 \"type\": \"underlay\", \"master\": \"par0\", \"stateDir\": \"$work/state\",
 \"logFile\": \"$work/cni.log\", \"ipam\": {\"type\": \"dhcp\", \"tries\": 3, \"waitMs\": 500}}"
  printf '%s\n' "$entry" > "$work/$name.json"
  printf '{"cniVersion": "1.0.0", "name": "%s", "plugins": [%s]}\n' "$name" "$entry" > "$dir/$name.conflist"
}

# holds_lease BIN_DIR WORK NET ID IFNAME: whether underlay's store, read back by the plugin's
# IPAM role (CHECK), holds a lease of NET for ID/IFNAME. Exit 0: held, 1: not held, 2: the check failed.
holds_lease() {
  local out rc
  out=$(CNI_COMMAND=CHECK CNI_CONTAINERID=$4 CNI_IFNAME=$5 CNI_NETNS=/proc/self/ns/net \
        CNI_PATH=$1 "$1/underlay-ipam" < "$2/$3.json" 2>&1)
  rc=$?
  [ $rc = 0 ] && return 0
  echo "$out" | grep -q '"code": 3' && return 1
  echo "  lease check for $4/$5 on $3 failed: $out" >&2
  return 2
}
# lease_gone BIN_DIR WORK NET ID IFNAME: holds_lease says "not held".
lease_gone() { holds_lease "$@"; [ $? = 1 ]; }

# lease_files DIR NET: host-local's lease files (one per address) of network NET.
lease_files() { ls "$1/$2" 2>/dev/null | grep -E '^[0-9a-f.:]+$'; }

# records STATE NET: underlay's endpoint records of NET (pool files start with a dot).
records() { ls "$1/endpoints/$2" 2>/dev/null | grep -v '^\.'; }
record_count() { [ "$(records "$1" "$2" | wc -l)" = "$3" ]; }

# only_wire_links: the current (runtime's) namespace holds nothing but lo and the parent.
only_wire_links() {
  [ "$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')" = "lo par0 " ]
}

# kill_cgroup NAME: kills what is left in the cgroup NAME (v1 pids or v2) and removes its dirs.
kill_cgroup() {
  local f p d
  for f in /sys/fs/cgroup/pids/"$1"/cgroup.procs /sys/fs/cgroup/pids/"$1"/*/cgroup.procs \
           /sys/fs/cgroup/"$1"/cgroup.procs /sys/fs/cgroup/"$1"/*/cgroup.procs; do
    [ -f "$f" ] && for p in $(cat "$f"); do kill -KILL "$p" 2>/dev/null; done
  done
  sleep 0.2
  for d in $(find /sys/fs/cgroup -maxdepth 4 -type d -name "$1" 2>/dev/null); do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
}
