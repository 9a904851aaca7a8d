"""Issue 15: what underlay says and reads back, checked against the kernel (iproute2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

import underlay
from conftest import needs_root, unique

BAD_MACS = ["01:00:5e:00:00:01", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"]


def ip_json(ns: underlay.Netns, *args: str) -> list[dict]:
    assert ns.name
    out = subprocess.run(["ip", "-n", ns.name, "-d", "-j", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


@needs_root
@pytest.mark.parametrize("mac", BAD_MACS)
def test_unassignable_macs_are_invalid_arguments(
    netns: underlay.Netns, handle: underlay.Handle, nic: str, mac: str
) -> None:
    underlay.Macvlan.create(handle, "mv0", nic)
    before = ip_json(netns, "link", "show", "mv0")[0]["address"]
    attempts = {
        "create": lambda: underlay.Macvlan.create(handle, "mv1", nic, mac=mac),
        "set_link": lambda: handle.set_link("mv0", mac=mac),
        "veth peer": lambda: underlay.Veth.create(handle, "va", "vb", peer_mac=mac),
        "announce": lambda: netns.announce(1, mac, ["172.22.16.10"]),
    }
    for step, attempt in attempts.items():
        with pytest.raises(underlay.InvalidArgument) as e:
            attempt()
        assert mac in str(e.value), step
        assert "check the name" not in str(e.value), step
    assert ip_json(netns, "link", "show", "mv0")[0]["address"] == before
    names = {link["ifname"] for link in ip_json(netns, "link", "show")}
    assert not names & {"mv1", "va", "vb"}


@needs_root
def test_routes_of_every_table_and_in_iproute2_words(netns: underlay.Netns, handle: underlay.Handle, nic: str) -> None:
    handle.add_address(nic, "10.1.0.2/24")
    route = underlay.Route("10.7.0.0/24", dev=nic, source="10.1.0.2", metric=7, table=100)
    assert str(route) == f"10.7.0.0/24 dev {nic} table 100 src 10.1.0.2 metric 7"
    handle.add_route(route)
    main = [str(r.destination) for r in handle.routes()]
    assert "10.1.0.0/24" in main and "10.7.0.0/24" not in main
    everywhere = handle.routes(0)
    assert {(str(r.destination), r.table) for r in everywhere} >= {("10.1.0.0/24", 254), ("10.7.0.0/24", 100)}
    oracle = [r for fam in ("-4", "-6") for r in ip_json(netns, fam, "route", "show", "table", "all")]
    assert len(everywhere) == len([r for r in oracle if r.get("type", "unicast") == "unicast"])
    back = next(r for r in everywhere if str(r.destination) == "10.7.0.0/24")
    index = handle.link_index(nic)
    assert str(back) == f"10.7.0.0/24 dev if{index} table 100 scope link src 10.1.0.2 metric 7"


@needs_root
def test_a_signed_byte_is_no_mac(handle: underlay.Handle, nic: str) -> None:
    with pytest.raises(underlay.InvalidArgument, match="malformed"):
        handle.set_link(nic, mac="+2:42:ac:10:0a:65")


@needs_root
def test_link_index_zero_and_errno_once(handle: underlay.Handle) -> None:
    with pytest.raises(underlay.InvalidArgument, match="start at 1"):
        handle.link(0)
    with pytest.raises(underlay.NotFound) as e:
        handle.delete_link(9999)
    assert "os error" not in str(e.value)


def test_huge_inputs_give_short_messages() -> None:
    huge = "x" * (1 << 20)
    for attempt in (
        lambda: underlay.Netns.open(huge),
        lambda: underlay.Route(huge, dev="eth0"),
        lambda: underlay.Route("10.0.0.0/8", gateway=huge),
    ):
        with pytest.raises(underlay.InvalidArgument) as e:
            attempt()
        assert len(str(e.value)) < 1024 and "1048576 bytes" in str(e.value)


def test_open_path_on_a_fifo_is_refused_at_once(tmp_path: "os.PathLike[str]") -> None:
    fifo = os.path.join(str(tmp_path), "fifo")
    os.mkfifo(fifo)
    result: list[BaseException] = []

    def attempt() -> None:
        try:
            underlay.Netns.open_path(fifo)
        except BaseException as e:  # noqa: BLE001 - recorded for the test thread
            result.append(e)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(60)  # a liveness guard: a regression would block in open(2) forever
    if t.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("Netns.open_path blocked on a FIFO")
    assert result and isinstance(result[0], underlay.InvalidArgument) and "FIFO" in str(result[0])


@needs_root
def test_with_netns_never_hides_the_blocks_exception() -> None:
    name = unique("exit")
    with pytest.raises(ValueError, match="mine") as e:
        with underlay.Netns.create(name):
            underlay.Netns.delete(name)
            raise ValueError("mine")
    notes = " ".join(getattr(e.value, "__notes__", []))
    assert sys.version_info < (3, 11) or ("deleting network namespace" in notes and name in notes)
    # Without an exception in the block, a failed delete is raised as itself.
    with pytest.raises(underlay.NotFound):
        with underlay.Netns.create(name):
            underlay.Netns.delete(name)


def test_a_gateway_and_no_gateway_contradict() -> None:
    with pytest.raises(underlay.InvalidArgument, match="no gateway were both given"):
        underlay.Pool("10.0.0.0/24", gateway="10.0.0.1", no_gateway=True)
    assert underlay.Pool("10.0.0.0/24", no_gateway=True).gateway is None


@needs_root
def test_out_of_range_numbers_are_invalid_arguments_naming_the_range(handle: underlay.Handle, nic: str) -> None:
    for vlan_id in (0, 4095, 65536, -1, 2**70):
        with pytest.raises(underlay.InvalidArgument, match="1..4094"):
            underlay.Vlan.create(handle, nic, vlan_id)
        with pytest.raises(underlay.InvalidArgument, match="1..4094"):
            underlay.render_vlan("ifupdown", "v", nic, vlan_id)
    for mtu in (-1, 67, 65536, 2**32, 2**70):
        with pytest.raises(underlay.InvalidArgument, match="68..65535"):
            underlay.Macvlan.create(handle, "mv0", nic, mtu=mtu)
        with pytest.raises(underlay.InvalidArgument, match="68..65535"):
            handle.set_link(nic, mtu=mtu)


@needs_root
def test_a_bool_is_no_link_index(handle: underlay.Handle) -> None:
    for flag in (True, False):
        with pytest.raises(underlay.InvalidArgument, match="bool"):
            handle.link(flag)


@needs_root
def test_address_flags_peer_and_broadcast(netns: underlay.Netns, handle: underlay.Handle, nic: str) -> None:
    handle.add_address(nic, "10.1.0.2/24")
    handle.add_address(nic, "fd00:1::1/64", nodad=True, noprefixroute=True)
    assert netns.name
    for cmd in (
        f"ip addr add 10.1.0.3/24 dev {nic} valid_lft 100 preferred_lft 0",
        f"ip addr add 10.9.0.1 peer 10.9.0.2/32 dev {nic}",
    ):
        subprocess.run(["ip", "netns", "exec", netns.name, "sh", "-c", cmd], check=True)
    mine = {str(a.address.ip): a for a in handle.addresses(nic)}
    oracle = ip_json(netns, "addr", "show", "dev", nic)[0]["addr_info"]
    for j in oracle:
        if j["local"].startswith("fe80"):
            continue
        a = mine[j["local"]]
        for flag in ("nodad", "noprefixroute", "secondary", "deprecated", "dynamic"):
            assert getattr(a, flag) == j.get(flag, False), (j["local"], flag)
        assert (str(a.peer) if a.peer else None) == j.get("address")
        assert (str(a.broadcast) if a.broadcast else None) == j.get("broadcast")
    assert mine["10.1.0.3"].secondary and mine["10.1.0.3"].deprecated and mine["10.1.0.3"].dynamic
    assert str(mine["10.9.0.1"].peer) == "10.9.0.2" and str(mine["10.1.0.2"].broadcast) == "10.1.0.255"
    assert mine["fd00:1::1"].nodad and mine["fd00:1::1"].noprefixroute


@needs_root
def test_multipath_and_onlink_routes(netns: underlay.Netns, handle: underlay.Handle, nic: str) -> None:
    handle.add_address(nic, "10.1.0.2/24")
    multi = underlay.Route(
        "10.20.0.0/16",
        nexthops=[underlay.NextHop("10.1.0.1", nic, weight=2), underlay.NextHop("10.1.0.3", nic)],
    )
    handle.add_route(multi)
    handle.add_route(underlay.Route("10.30.0.0/16", gateway="192.0.2.1", dev=nic, onlink=True))
    with pytest.raises(underlay.InvalidArgument, match="gateway or a device"):
        underlay.NextHop()
    oracle = {r["dst"]: r for r in ip_json(netns, "route", "show")}
    assert [(h["gateway"], h["weight"]) for h in oracle["10.20.0.0/16"]["nexthops"]] == [("10.1.0.1", 2), ("10.1.0.3", 1)]
    assert "onlink" in oracle["10.30.0.0/16"]["flags"]
    mine = {str(r.destination): r for r in handle.routes()}
    back = mine["10.20.0.0/16"]
    index = handle.link_index(nic)
    assert back.gateway is None and back.dev is None
    assert [(str(h.gateway), h.dev, h.weight, h.onlink) for h in back.nexthops] == [
        ("10.1.0.1", index, 2, False),
        ("10.1.0.3", index, 1, False),
    ]
    assert mine["10.30.0.0/16"].onlink and not mine["10.20.0.0/16"].onlink
    handle.delete_route(multi)
    assert "10.20.0.0/16" not in {r["dst"] for r in ip_json(netns, "route", "show")}


@needs_root
def test_macvtap_source_macs_and_nopromisc(netns: underlay.Netns, handle: underlay.Handle, nic: str) -> None:
    macs = ["02:00:00:00:aa:01", "02:00:00:00:aa:02"]
    tap = underlay.Macvlan.create(handle, "tap0", nic, "source", tap=True, source_macs=macs)
    assert tap.kind == "macvtap" and sorted(tap.source_macs or []) == macs
    assert ip_json(netns, "link", "show", "tap0")[0]["linkinfo"]["info_data"]["macaddr_count"] == 2
    assert tap.nopromisc is False
    handle.delete_link("tap0")
    pt = underlay.Macvlan.create(handle, "pt0", nic, "passthru", nopromisc=True)
    assert ip_json(netns, "link", "show", "pt0")[0]["linkinfo"]["info_data"]["nopromisc"] is True
    assert pt.nopromisc is True
    assert handle.link(nic).nopromisc is None


@needs_root
def test_vxlan_ttl_inherit_auto_and_fixed(netns: underlay.Netns, handle: underlay.Handle) -> None:
    inherit = underlay.Vxlan.create(handle, "vx1", 501, ttl_inherit=True).vxlan
    auto = underlay.Vxlan.create(handle, "vx2", 502).vxlan
    fixed = underlay.Vxlan.create(handle, "vx3", 503, ttl=8).vxlan
    assert inherit and auto and fixed
    assert (inherit.ttl_inherit, inherit.ttl) == (True, 0)
    assert (auto.ttl_inherit, auto.ttl) == (False, 0)
    assert (fixed.ttl_inherit, fixed.ttl) == (False, 8)
    assert netns.name
    shown = subprocess.run(["ip", "-n", netns.name, "-d", "link", "show", "vx1"], capture_output=True, text=True).stdout
    assert "ttl inherit" in shown
    with pytest.raises(underlay.InvalidArgument, match="both given"):
        underlay.Vxlan.create(handle, "vx4", 504, ttl=8, ttl_inherit=True)


def test_host_local_foreign_leases_block_only_their_address(tmpdir_path: str) -> None:
    d = os.path.join(tmpdir_path, "mynet")
    os.makedirs(d)
    with open(os.path.join(d, "10.23.0.2"), "w") as f:
        f.write("c" * 300 + "\r\neth0")
    with open(os.path.join(d, "10.99.0.7"), "w") as f:
        f.write("other\r\neth0")
    ipam = underlay.Ipam.create(tmpdir_path, "mynet", [underlay.Pool("10.23.0.0/29")], layout="host-local")
    foreign = ipam.foreign_leases()
    assert [(str(f.address), "256" in f.reason) for f in foreign] == [("10.23.0.2", True), ("10.99.0.7", False)]
    assert "outside every pool" in foreign[1].reason
    assert foreign[0].location.endswith("mynet/10.23.0.2")
    with pytest.raises(underlay.AlreadyExists, match="10.23.0.2"):
        ipam.allocate("x", ips=["10.23.0.2"])
    got = set()
    while True:
        try:
            got.add(str(ipam.allocate(f"c{len(got)}").addresses[0]))
        except underlay.PoolExhausted:
            break
    assert "10.23.0.2" not in got and len(got) == 4
    assert underlay.Ipam.open(tmpdir_path, "mynet", layout="host-local").foreign_leases() == foreign


@needs_root
def test_parent_netns_id(netns: underlay.Netns, handle: underlay.Handle, nic: str) -> None:
    with underlay.Netns.create(unique("pnid")) as ctr:
        inside = underlay.Macvlan.create(handle, "eth0", nic, target=ctr.handle())
        oracle = ip_json(ctr, "link", "show", "eth0")[0]
        assert inside.parent_netns_id is not None and inside.parent_netns_id == oracle["link_netnsid"]
    assert handle.link(nic).parent_netns_id is None
