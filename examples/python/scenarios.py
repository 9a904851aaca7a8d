#!/usr/bin/env python3
"""S1-S3 of SCENARIOS.md from Python, in network namespaces on one machine.

Two "hosts" and a router hang on one trunk (a bridge in a `switch` namespace stands in for the
switch; veth pairs for the cables). Each host has `mac_net1`, a macvlan network on the LAN
172.22.16.0/24 with its own address excluded from allocation (S1); where the kernel has 8021q,
`mac_net10` / `mac_net20` on VLAN sub-interfaces underlay makes (S2); host1 reaches its own
container only through the shim (S3). Run as root; everything goes when it ends.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import tempfile

import underlay
from underlay import Bridge, Handle, MacvlanMode, Netns, Networks, Pool, Route, Veth, Vlan

TAG = f"ulpyex-{os.getpid()}"


class Lab:
    """Namespaces and state directories of the demo, removed at the end (also on failure)."""

    def __init__(self) -> None:
        self.namespaces: list[Netns] = []
        self.dir = tempfile.mkdtemp(prefix=TAG)

    def ns(self, name: str) -> tuple[Netns, Handle]:
        ns, h = Handle.create_netns(f"{TAG}-{name}")
        self.namespaces.append(ns)
        return ns, h

    def close(self) -> None:
        for ns in self.namespaces:
            with ns:  # deletes the named namespace
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def has_8021q() -> bool:
    _, h = Handle.create_netns()
    Veth.create(h, "probe0", "probe1")
    try:
        Vlan.create(h, "probe0", 10)
        return True
    except underlay.KernelUnsupported:
        return False


def cable(sw: Handle, port: str, ns: Netns, h: Handle) -> None:
    Veth.create(sw, port, "ens192", peer_netns=ns, master="br0", up=True)
    h.set_link("ens192", up=True)


def run(lab: Lab, vlans: bool) -> bool:
    ok = True

    def check(what: str, got: bool, want: bool) -> None:
        nonlocal ok
        ok &= got == want
        print(f"   {what}: {'yes' if got else 'no'}{'' if got == want else '   !! expected otherwise'}")

    _, sw = lab.ns("switch")
    Bridge.create(sw, "br0", up=True)
    router_ns, r = lab.ns("router")
    cable(sw, "p0", router_ns, r)
    r.add_address("ens192", "172.22.16.1/24")
    if vlans:
        for vid, gw in ((10, "172.16.10.1/24"), (20, "172.16.20.1/24")):
            link = Vlan.create(r, "ens192", vid, up=True)
            r.add_address(link, gw)
    router_ns.set_forwarding(True)

    hosts = {}
    for name, port, lan_ip in (("host1", "p1", "172.22.16.21"), ("host2", "p2", "172.22.16.22")):
        ns, h = lab.ns(name)
        cable(sw, port, ns, h)
        h.add_address("ens192", f"{lan_ip}/24")
        h.add_route(Route.default_via("172.22.16.1"))
        nets = Networks(h, os.path.join(lab.dir, name))
        lan = nets.create(
            "mac_net1",
            parent="ens192",
            mode=MacvlanMode.BRIDGE,
            pools=[Pool("172.22.16.0/24", gateway="172.22.16.1", reserved={"exclude_host": lan_ip})],
        )
        hosts[name] = (ns, h, nets, lan)

    def container(net: underlay.Network, name: str, ip: str) -> Netns:
        ns, h = lab.ns(name)
        ep = net.connect(ns, name, ip=ip, target=h)
        print(f"   {name}: {ep.ifname} {ep.addresses[0]} on {net.name} (routes: {', '.join(map(str, ep.routes))})")
        return ns

    print("S1: one macvlan network mac_net1 (172.22.16.0/24, gateway .1) on ens192 of both hosts")
    c1 = container(hosts["host1"][3], "c1", "172.22.16.10")
    c2 = container(hosts["host2"][3], "c2", "172.22.16.20")
    check("c1 (host1) pings c2 (host2)", c1.ping("172.22.16.20", 1.5) is not None, True)
    check("c2 (host2) pings c1 (host1)", c2.ping("172.22.16.10", 1.5) is not None, True)
    pool = hosts["host1"][3].pools[0]
    check("host1's own address 172.22.16.21 is reserved (never handed out)",
          ("exclude_host", ipaddress.ip_address("172.22.16.21")) in pool.reserved, True)

    print("S3: host1 and its own macvlan container")
    h1_ns = hosts["host1"][0]
    check("host1 pings c1 without a shim", h1_ns.ping("172.22.16.10", 1.0) is not None, False)
    shim = hosts["host1"][3].enable_host_access(name="macvlan0-host")
    print(f"   shim `{shim}` (bridge-mode macvlan) up on ens192, host route to c1 through it")
    check("host1 pings c1 through the shim", h1_ns.ping("172.22.16.10", 1.5) is not None, True)

    if vlans:
        print("S2: mac_net10 on ens192.10 and mac_net20 on ens192.20 (VLANs made by underlay)")
        v = {}
        for name, (_, _, nets, _) in hosts.items():
            for vid in (10, 20):
                v[(name, vid)] = nets.create_docker(
                    f"mac_net{vid}", "macvlan", {"parent": f"ens192.{vid}"},
                    pools=[Pool(f"172.16.{vid}.0/24", gateway=f"172.16.{vid}.1")],
                )
        b101 = container(v[("host1", 10)], "bbox_10_1", "172.16.10.101")
        container(v[("host2", 10)], "bbox_10_2", "172.16.10.102")
        container(v[("host1", 20)], "bbox_20_1", "172.16.20.201")
        container(v[("host2", 20)], "bbox_20_2", "172.16.20.202")
        check("bbox_10_1 pings bbox_10_2 (same VLAN, L2)", b101.ping("172.16.10.102", 1.5) is not None, True)
        check("bbox_10_1 pings bbox_20_2 (through the router)", b101.ping("172.16.20.202", 1.5) is not None, True)
        router_ns.set_forwarding(False)
        check("bbox_10_1 pings bbox_20_2 with forwarding off (isolated)", b101.ping("172.16.20.202", 1.0) is not None, False)
    else:
        print("S2: skipped: this kernel has no 8021q (VLAN) support (`modprobe 8021q`); the Rust demo runs S2 in the test VM")

    print("Teardown through the library: disconnect, delete networks")
    for name, (_, h, nets, _) in hosts.items():
        for net in nets.list():
            for ep in net.endpoints():
                ep.disconnect()
            if net.host_access:
                net.disable_host_access()
            nets.delete(net.name)
        left = [link.name for link in h.links() if link.name.startswith("ens192.")]
        check(f"{name}: VLAN sub-interfaces left", bool(left), False)
    return ok


def main() -> int:
    if os.geteuid() != 0:
        print("scenarios.py: needs root (it creates network namespaces and links)", file=sys.stderr)
        return 2
    lab = Lab()
    try:
        ok = run(lab, has_8021q())
    finally:
        lab.close()
    print("all results as the scenarios say" if ok else "!! some results differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
