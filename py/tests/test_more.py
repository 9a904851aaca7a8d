"""Link readback details, announcements, per-interface sysctls, IPAM boot ids, network
stores, export and disconnect variants: kernel cases in throwaway namespaces, checked with
iproute2's JSON and the files on disk."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time

import pytest

import underlay
from conftest import needs_root, unique


def ip_json(ns: underlay.Netns, *args: str) -> list[dict]:
    assert ns.name
    out = subprocess.run(["ip", "-n", ns.name, "-j", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


@needs_root
def test_link_readback_details(netns: underlay.Netns, handle: underlay.Handle, nic: str) -> None:
    src = underlay.Macvlan.create(
        handle, "ms0", nic, underlay.MacvlanMode.SOURCE, source_macs=["02:00:00:00:aa:01", "02:00:00:00:aa:02"]
    )
    assert sorted(src.source_macs or []) == ["02:00:00:00:aa:01", "02:00:00:00:aa:02"]
    assert underlay.Macvlan.create(handle, "mb0", nic).source_macs == []
    vx = underlay.Vxlan.create(handle, "vx1", 77, local="10.1.1.1", remote="10.1.1.2", device=nic, port=4790,
                               learning=False, ttl=9)
    info = vx.vxlan
    assert isinstance(info, underlay.VxlanInfo) and "77" in repr(info)
    assert (info.vni, info.port, info.learning, info.ttl) == (77, 4790, False, 9)
    assert info.local == ipaddress.ip_address("10.1.1.1") and info.remote == ipaddress.ip_address("10.1.1.2")
    assert info.device == handle.link_index(nic)
    oracle = ip_json(netns, "-d", "link", "show", "vx1")[0]["linkinfo"]["info_data"]
    assert oracle["port"] == 4790 and oracle["ttl"] == 9 and oracle["learning"] is False
    br = underlay.Bridge.create(handle, "br5")
    assert br.vlan_filtering is False and src.vlan_filtering is None and src.vxlan is None
    assert ip_json(netns, "-d", "link", "show", "br5")[0]["linkinfo"]["info_data"]["vlan_filtering"] == 0
    assert src.vlan_flags is None and src.vlan_protocol is None

    flags = underlay.VlanFlags(gvrp=True, loose_binding=True)
    assert flags == underlay.VlanFlags(reorder_hdr=True, gvrp=True, mvrp=False, loose_binding=True)
    assert flags != underlay.VlanFlags() and "gvrp=True" in repr(flags)
    try:
        v = underlay.Vlan.create(handle, nic, 11, protocol="802.1ad", reorder_hdr=False, gvrp=True, mvrp=True,
                                 loose_binding=True)
    except underlay.KernelUnsupported as e:
        assert "modprobe 8021q" in str(e)
    else:
        assert v.vlan_protocol is underlay.VlanProtocol.IEEE_802_1AD
        assert v.vlan_flags == underlay.VlanFlags(reorder_hdr=False, gvrp=True, mvrp=True, loose_binding=True)
        data = ip_json(netns, "-d", "link", "show", v.name)[0]["linkinfo"]["info_data"]
        assert data["protocol"] == "802.1ad" and "GVRP" in data["flags"] and "LOOSE_BINDING" in data["flags"]


@needs_root
def test_announce_and_arp_sysctls(netns: underlay.Netns, handle: underlay.Handle) -> None:
    """A gratuitous ARP from one end of a cable lands in the other end's neighbour table
    (arp_accept=1 there); announce=False on connect sends none."""
    with underlay.Netns.create(unique("peer")) as peer:
        ph = peer.handle()
        underlay.Veth.create(handle, "g0", "g1", peer_netns=peer, up=True, peer_up=True, mac="02:00:00:00:0a:01")
        ph.add_address("g1", "10.44.0.1/24")
        peer.set_sysctl("net.ipv4.conf.g1.arp_accept", "1")
        netns.set_arp_ignore("g0", 1)
        netns.set_arp_announce("all", 2)
        netns.set_accept_dad("default", 0)
        assert netns.sysctl("net.ipv4.conf.g0.arp_ignore") == "1"
        assert netns.sysctl("net.ipv4.conf.all.arp_announce") == "2"
        assert netns.sysctl("net.ipv6.conf.default.accept_dad") == "0"
        with pytest.raises(underlay.InvalidArgument):
            netns.set_arp_ignore("g0", 9)
        with pytest.raises(underlay.InvalidArgument):
            netns.set_arp_announce("bad/name", 1)

        g0 = handle.link("g0")
        netns.announce(g0, "02:00:00:00:0a:01", ["10.44.0.7", ipaddress.ip_address("fd00:44::7")])
        deadline = time.monotonic() + 3
        seen: list[dict] = []
        while time.monotonic() < deadline:
            seen = [n for n in ip_json(peer, "neigh", "show", "dev", "g1") if n.get("dst") == "10.44.0.7"]
            if seen:
                break
            time.sleep(0.05)
        assert seen and seen[0]["lladdr"] == "02:00:00:00:0a:01"
        with pytest.raises(underlay.InvalidArgument):
            netns.announce("g0", "02:00:00:00:0a:01", ["10.44.0.7"])


@needs_root
def test_ipam_boot_ids(tmpdir_path: str) -> None:
    now = underlay.current_boot_id()
    assert now == open("/proc/sys/kernel/random/boot_id").read().strip()
    ipam = underlay.Ipam.create(tmpdir_path, "b", [underlay.Pool("10.60.0.0/24")])
    assert ipam.boot_id == now
    ipam.set_boot_id("before-the-reboot")
    old = ipam.allocate("c-old")
    assert old.boot_id == "before-the-reboot"
    ipam.set_boot_id(None)
    assert ipam.boot_id is None and ipam.allocate("c-none").boot_id is None
    assert ipam.stale() == [], "no boot id: nothing is stale"
    ipam.set_boot_id(now)
    ipam.allocate("c-now")
    assert [lease.container_id for lease in ipam.stale()] == ["c-old"]
    assert [lease.container_id for lease in ipam.release_stale()] == ["c-old"]
    assert sorted(lease.container_id for lease in ipam.list()) == ["c-none", "c-now"]
    with pytest.raises(underlay.InvalidArgument):
        ipam.set_boot_id("has space")
    hl = underlay.Ipam.create(os.path.join(tmpdir_path, "hl"), "h", [underlay.Pool("10.61.0.0/24")],
                              layout="host-local")
    hl.set_boot_id("ignored")
    assert hl.allocate("c").boot_id is None, "host-local keeps no boot ids"


@needs_root
def test_networks_store_export_disconnect(netns: underlay.Netns, handle: underlay.Handle, tmpdir_path: str) -> None:
    # A veth named like a VLAN sub-interface stands in for one (this kernel may lack 8021q).
    underlay.Veth.create(handle, "nic0.10", "nic0p10", up=True, peer_up=True)
    hl = os.path.join(tmpdir_path, "cni")
    nets = underlay.Networks(handle, os.path.join(tmpdir_path, "state"), ipam_path=hl, layout="host-local")
    net = nets.create("n10", parent="nic0.10", pools=[underlay.Pool("10.70.0.0/24")])
    files = dict(net.export("networkd"))
    assert any(p.endswith(".netdev") for p in files)
    assert any("Id=10" in c for c in files.values())
    (path, content), = net.export("ifupdown")
    assert path == "/etc/network/interfaces.d/nic0.10" and "vlan-raw-device nic0" in content
    assert net.export("ifcfg")[0][0].endswith("ifcfg-nic0.10")
    with pytest.raises(underlay.InvalidArgument):
        net.export("yaml")
    assert underlay.render_vlan("ifupdown", "nic0.10", "nic0", 10) == net.export("ifupdown")
    with pytest.raises(underlay.InvalidArgument):
        underlay.render_vlan("ifcfg", "x.1", "x", 4095)

    with underlay.Netns.create(unique("ctr")) as ctr:
        ep = net.connect(ctr, "ctr1", announce=False)
        assert os.path.isfile(os.path.join(hl, "n10", "10.70.0.2")), "host-local files under ipam_path"
        link = ip_json(ctr, "-d", "link", "show", "eth0")[0]
        assert link["group"] in (str(underlay.ENDPOINT_GROUP), underlay.ENDPOINT_GROUP) or ctr.handle().link(
            "eth0"
        ).group == underlay.ENDPOINT_GROUP
        net.disconnect_for_netns_deletion("ctr1")
        assert ctr.handle().link("eth0").index == ep.index, "the link stays for the namespace's deletion"
        assert net.endpoint("ctr1") is None and not os.path.exists(os.path.join(hl, "n10", "10.70.0.2"))
    nets.delete("n10")

    other = underlay.Networks(handle, os.path.join(tmpdir_path, "s2"), ipam_path=os.path.join(tmpdir_path, "i2"))
    n2 = other.create("plain", parent="nic0p10", pools=[underlay.Pool("10.71.0.0/24")])
    with pytest.raises(underlay.InvalidArgument) as e:
        n2.export("ifupdown")
    assert "not a VLAN" in str(e.value)
    assert os.path.isdir(os.path.join(tmpdir_path, "i2"))
    with underlay.Netns.create(unique("ctr")) as c2:
        with pytest.raises(underlay.InvalidArgument):
            n2.connect(c2, "c2", announce="loud")  # type: ignore[arg-type]
        assert n2.endpoint("c2") is None, "nothing left by the refused connect"
        n2.connect(c2, "c2", announce="segment")
        # IPv4-only: IPv6 is off on the endpoint (as Docker does), unless kept.
        assert c2.sysctl("net/ipv6/conf/eth0/disable_ipv6") == "1"
        assert not [a for a in ip_json(c2, "addr", "show", "eth0")[0]["addr_info"] if a["family"] == "inet6"]
        n2.disconnect_for_netns_deletion("c2")
    with underlay.Netns.create(unique("ctr")) as c3:
        n2.connect(c3, "c3", keep_ipv6=True)
        assert c3.sysctl("net/ipv6/conf/eth0/disable_ipv6") == "0"
        assert any(a["local"].startswith("fe80:") for a in ip_json(c3, "addr", "show", "eth0")[0]["addr_info"])
        n2.disconnect_for_netns_deletion("c3")
    with underlay.Netns.create(unique("ctr")) as c4:
        # The kernel announces: arp_notify on, the link up with its address and route.
        n2.connect(c4, "c4", announce="kernel")
        assert c4.sysctl("net/ipv4/conf/eth0/arp_notify") == "1"
        assert "UP" in ip_json(c4, "link", "show", "eth0")[0]["flags"]
        n2.disconnect_for_netns_deletion("c4")
    report = other.reconcile()
    assert report.is_clean() and report.gone_endpoints == [] and "ReconcileReport" in repr(report)
    other.delete("plain")
    assert underlay.DEFAULT_ROOT == "/var/lib/underlay"


@needs_root
def test_reconcile_reports_gone_endpoints(handle: underlay.Handle, nic: str, tmpdir_path: str) -> None:
    nets = underlay.Networks(handle, tmpdir_path)
    net = nets.create("g", parent=nic, pools=[underlay.Pool("10.72.0.0/24")])
    name = unique("gone")
    ns = underlay.Netns.create(name)
    net.connect(ns, "ctr-gone", ip="10.72.0.9")
    underlay.Netns.delete(name)
    del ns
    report = nets.reconcile()
    assert not report.is_clean()
    (gone,) = report.gone_endpoints
    assert isinstance(gone, underlay.GoneEndpoint) and "ctr-gone" in repr(gone)
    assert (gone.network, gone.container_id, gone.ifname) == ("g", "ctr-gone", "eth0")
    assert gone.addresses == [ipaddress.ip_interface("10.72.0.9/24")]
    assert net.endpoints() == []
    nets.delete("g")


@needs_root
def test_reconcile_keeps_endpoints_in_anonymous_namespaces(
    handle: underlay.Handle, nic: str, tmpdir_path: str
) -> None:
    nets = underlay.Networks(handle, tmpdir_path)
    net = nets.create("anon", parent=nic, pools=[underlay.Pool("10.73.0.0/24")])
    ns = underlay.Netns.anonymous()
    net.connect(ns, "ctr-anon", ip="10.73.0.9")
    # Live, though it has no path: reconcile leaves it and its lease alone.
    assert nets.reconcile().is_clean()
    assert net.endpoint("ctr-anon") is not None
    other = underlay.Netns.anonymous()
    with pytest.raises(underlay.UnderlayError):
        net.connect(other, "ctr-other", ip="10.73.0.9")  # still leased
    del other
    # Gone with its last holder: now reconcile releases it.
    del ns
    (gone,) = nets.reconcile().gone_endpoints
    assert gone.container_id == "ctr-anon"
    assert gone.addresses == [ipaddress.ip_interface("10.73.0.9/24")]
    assert net.endpoints() == []
    again = underlay.Netns.anonymous()
    net.connect(again, "ctr-other", ip="10.73.0.9")  # the address is free again
    net.disconnect("ctr-other")
    nets.delete("anon")


@needs_root
def test_networks_create_or_open(handle: underlay.Handle, nic: str, tmpdir_path: str) -> None:
    nets = underlay.Networks(handle, tmpdir_path)
    pools = [underlay.Pool("10.73.0.0/24")]
    a = nets.create_or_open("co", parent=nic, pools=pools, mtu=1400)
    b = nets.create_or_open("co", parent=nic, pools=pools, mtu=1400)
    assert (a.name, b.name, b.mtu, b.lower) == ("co", "co", 1400, nic)
    with pytest.raises(underlay.Conflict) as err:
        nets.create_or_open("co", parent=nic, pools=pools, mtu=1300)
    assert "1300" in str(err.value)
    assert [n.name for n in nets.list()] == ["co"]
    # The network's IPAM sees the endpoint's lease.
    ctr = underlay.Netns.anonymous()
    ep = a.connect(ctr, "ctr-co", ip="10.73.0.9")
    assert isinstance(a.ipam, underlay.Ipam) and a.ipam.name == "co"
    (lease,) = a.ipam.list()
    assert (lease.container_id, lease.ips) == ("ctr-co", [ipaddress.ip_address("10.73.0.9")])
    ep.disconnect()
    assert a.ipam.list() == []
    nets.delete("co")


@needs_root
def test_arp_sysctl_values_outside_the_integer_type(netns: underlay.Netns) -> None:
    """-1 and 300 are out of range like 9: InvalidArgument, never OverflowError."""
    for v in (-1, 9, 300, 2**40):
        with pytest.raises(underlay.InvalidArgument, match="out of range 0..8"):
            netns.set_arp_ignore("lo", v)
    with pytest.raises(underlay.InvalidArgument, match="out of range -1..2"):
        netns.set_accept_dad("lo", 2**40)


@needs_root
def test_prepare_for_a_runtime_that_moves_the_link(
    netns: underlay.Netns, handle: underlay.Handle, nic: str, tmpdir_path: str
) -> None:
    """Network.prepare: the link waits in the host namespace under a temporary name (Docker
    moves it); disconnect accepts it gone once its container namespace died; reconcile finds
    one that vanished silently."""
    nets = underlay.Networks(handle, tmpdir_path)
    net = nets.create("dk", parent=nic, pools=[underlay.Pool("10.74.0.0/24")])
    ep = net.prepare("docker-ep1", ip="10.74.0.10")
    assert ep.handoff is not None and ep.handoff.startswith("ulh")
    assert [str(a) for a in ep.addresses] == ["10.74.0.10/24"]
    link = handle.link(ep.handoff)
    assert link.group == 0x756C6570  # underlay's endpoint group ("ulep")
    with pytest.raises(underlay.AlreadyExists):
        net.prepare("docker-ep1", ip="10.74.0.11")
    # Docker's Join names the sandbox the link goes to: recorded.
    assert ep.sandbox is None
    assert net.set_sandbox("docker-ep1", "/run/docker/netns/abc").sandbox == "/run/docker/netns/abc"
    assert net.endpoint("docker-ep1").sandbox == "/run/docker/netns/abc"
    with pytest.raises(underlay.InvalidArgument):
        net.set_sandbox("docker-ep1", "relative/path")
    with pytest.raises(underlay.NotFound):
        net.set_sandbox("nobody", "/run/docker/netns/abc")
    # As Docker: the link moves into the container's namespace; the namespace dies.
    with underlay.Netns.create(unique("c")) as container:
        handle.set_link(ep.handoff, netns=container, name="eth0")
        assert nets.reconcile().gone_endpoints == []
    del container
    net.disconnect("docker-ep1")
    assert net.endpoint("docker-ep1") is None
    # A second one whose container vanished without a word: reconcile undoes it.
    ep2 = net.prepare("docker-ep2")
    with underlay.Netns.create(unique("c")) as container2:
        handle.set_link(ep2.handoff, netns=container2, name="eth0")
    # The object still holds the namespace open (so its link lives): let it go.
    del container2
    report = nets.reconcile()
    assert [g.container_id for g in report.gone_endpoints] == ["docker-ep2"]
    assert net.endpoints() == []
    with pytest.raises(underlay.InvalidArgument):
        net.prepare("docker-ep3", announce="segment")
    nets.delete("dk")
