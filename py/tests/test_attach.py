"""`Kind.attach_to_netns`: move an existing link into a namespace and configure it there, all
or nothing; checked with iproute2's JSON inside the target namespace."""

from __future__ import annotations

import ipaddress
import json
import subprocess

import pytest

import underlay
from conftest import needs_root, unique


def ip_json(ns: underlay.Netns, *args: str) -> list[dict]:
    assert ns.name
    out = subprocess.run(["ip", "-n", ns.name, "-j", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


@pytest.fixture
def target() -> underlay.Netns:
    with underlay.Netns.create(unique("att")) as ns:
        yield ns  # type: ignore[misc]


@needs_root
def test_macvlan_attach(netns: underlay.Netns, handle: underlay.Handle, nic: str, target: underlay.Netns) -> None:
    underlay.Macvlan.create(handle, "mv0", nic, underlay.MacvlanMode.BRIDGE)
    done = underlay.Macvlan.attach_to_netns(
        handle,
        "mv0",
        target,
        name="eth0",
        addresses=["172.16.10.101/24", ipaddress.ip_interface("fd00:10::65/64")],
        gateways=["172.16.10.1"],
        routes=[underlay.Route("10.99.0.0/16", gateway="172.16.10.254")],
        mtu=1400,
        mac="02:00:00:00:10:65",
        nodad=True,
    )
    assert isinstance(done, underlay.Attached) and "eth0" in repr(done)
    assert done.link.name == "eth0" and done.link.kind == "macvlan" and done.link.up
    assert done.link.mtu == 1400 and done.link.mac == "02:00:00:00:10:65"
    assert done.addresses == [ipaddress.ip_interface("172.16.10.101/24"), ipaddress.ip_interface("fd00:10::65/64")]
    assert [str(r.destination) for r in done.routes] == ["0.0.0.0/0", "10.99.0.0/16"]
    assert all(r.dev == done.link.index for r in done.routes)
    with pytest.raises(underlay.NotFound):
        handle.link("mv0")

    link = ip_json(target, "-d", "link", "show", "eth0")[0]
    assert link["mtu"] == 1400 and link["address"] == "02:00:00:00:10:65" and "UP" in link["flags"]
    assert link["linkinfo"]["info_kind"] == "macvlan"
    addrs = {(a["local"], a["prefixlen"]): a for a in ip_json(target, "addr", "show", "eth0")[0]["addr_info"]}
    assert ("172.16.10.101", 24) in addrs
    v6 = addrs[("fd00:10::65", 64)]
    assert not v6.get("tentative") and not v6.get("dadfailed"), "nodad: usable at once"
    routes = ip_json(target, "route", "show")
    assert any(r["dst"] == "default" and r["gateway"] == "172.16.10.1" and r["dev"] == "eth0" for r in routes)
    assert any(r["dst"] == "10.99.0.0/16" and r["gateway"] == "172.16.10.254" for r in routes)


@needs_root
def test_veth_attach_with_target_and_rollback(netns: underlay.Netns, handle: underlay.Handle) -> None:
    with underlay.Netns.create(unique("att")) as other:
        inside = other.handle()
        underlay.Veth.create(handle, "va", "vb", up=True)
        done = underlay.Veth.attach_to_netns(handle, "va", other, target=inside, addresses=["10.7.0.2/24"])
        assert done.link.name == "va" and str(other.name) in done.link.netns
        assert inside.link("va").up
        assert ip_json(other, "addr", "show", "va")[0]["addr_info"][0]["local"] == "10.7.0.2"

        # A step after the move fails (a gateway no address reaches): the link comes back
        # under its old name, up as it was, and nothing is left inside.
        underlay.Veth.create(handle, "vc", "vd", up=True)
        with pytest.raises(underlay.InvalidArgument) as e:
            underlay.Veth.attach_to_netns(
                handle, "vc", other, name="eth9", routes=[underlay.Route("10.66.0.0/16", gateway="192.0.2.1")]
            )
        assert "undone" in str(e.value) and e.value.errno is not None
        back = ip_json(netns, "link", "show", "vc")[0]
        assert back["ifname"] == "vc" and "UP" in back["flags"]
        assert [x["ifname"] for x in ip_json(other, "link", "show")] == ["lo", "va"]

        # Invalid values are refused before anything moves.
        with pytest.raises(underlay.InvalidArgument):
            underlay.Veth.attach_to_netns(handle, "vc", other, gateways=["10.0.0.1", "10.0.0.2"])
        with pytest.raises(underlay.InvalidArgument):
            underlay.Veth.attach_to_netns(handle, "vc", other, name="bad/name")
        with pytest.raises(underlay.NotFound):
            underlay.Veth.attach_to_netns(handle, "nosuch0", other)
        assert handle.link("vc").name == "vc"


@needs_root
def test_vlan_and_ipvlan_attach(handle: underlay.Handle, nic: str, target: underlay.Netns) -> None:
    """VLAN and ipvlan links are attached the same way; this kernel may lack both kinds."""
    try:
        underlay.Vlan.create(handle, nic, 20)
    except underlay.KernelUnsupported as e:
        assert "modprobe 8021q" in str(e)
    else:
        done = underlay.Vlan.attach_to_netns(handle, f"{nic}.20", target, name="eth1", addresses=["10.20.0.5/24"])
        assert done.link.vlan_id == 20 and done.link.name == "eth1"
    try:
        underlay.Ipvlan.create(handle, "iv0", nic)
    except underlay.KernelUnsupported as e:
        assert "ipvlan" in str(e)
    else:
        done = underlay.Ipvlan.attach_to_netns(handle, "iv0", target, name="eth2", addresses=["10.21.0.5/24"])
        assert done.link.kind == "ipvlan" and done.link.name == "eth2"
    with pytest.raises(underlay.NotFound):
        underlay.Vlan.attach_to_netns(handle, f"{nic}.30", target)
    with pytest.raises(underlay.NotFound):
        underlay.Ipvlan.attach_to_netns(handle, "iv9", target)


@needs_root
def test_attach_async(handle: underlay.Handle, nic: str, target: underlay.Netns) -> None:
    import asyncio

    import underlay.aio as aio

    async def main() -> underlay.Attached:
        await aio.Macvlan.create(handle, "mv7", nic)
        return await aio.Macvlan.attach_to_netns(aio.Handle(handle), "mv7", target, name="eth7", gateways=[])

    done = asyncio.run(main())
    assert done.link.name == "eth7"
    assert ip_json(target, "link", "show", "eth7")[0]["ifname"] == "eth7"


@needs_root
def test_attach_refused_rename_goes_back(netns: underlay.Netns, handle: underlay.Handle, target: underlay.Netns) -> None:
    """The kernel moves the link, then refuses the rename (`lo` is taken inside): it comes back."""
    underlay.Veth.create(handle, "x0", "x1", up=True)
    with pytest.raises(underlay.AlreadyExists) as e:
        underlay.Veth.attach_to_netns(handle, "x0", target, name="lo")
    assert "undone" in str(e.value)
    assert [x["ifname"] for x in ip_json(target, "link", "show")] == ["lo"]
    (back,) = ip_json(netns, "link", "show", "x0")
    assert "UP" in back["flags"] and handle.link("x0").name == "x0"
