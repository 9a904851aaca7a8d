"""A container on several networks with gateways: `Network.connect(default_route=...)`, and a
target handle in another namespace refused. Kernel cases in throwaway namespaces, checked with
iproute2's JSON."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from typing import Iterator

import pytest

import underlay
from conftest import ROOT, unique


def default_routes(ns: underlay.Netns, version: str) -> list[tuple[str, str, int | None]]:
    """The oracle's default routes of `version` ("-4", "-6") in `ns`: (gateway, dev, metric)."""
    assert ns.name
    out = subprocess.run(
        ["ip", "-n", ns.name, "-j", version, "route", "show", "default"], check=True, capture_output=True, text=True
    )
    return sorted((r["gateway"], r["dev"], r.get("metric")) for r in json.loads(out.stdout or "[]"))


@pytest.fixture
def three_networks(tmpdir_path: str) -> Iterator[tuple[underlay.Netns, list[underlay.Network]]]:
    """A host namespace with parents nic0..nic2 and a network with gateways on each:
    10.8{i}.0.0/24 via .1, fd8{i}::/64 via ::1."""
    if not ROOT:
        pytest.skip("needs root (creates network namespaces): SKIPPED")
    with underlay.Netns.create(unique("drh")) as host:
        handle = host.handle()
        nets = underlay.Networks(handle, os.path.join(tmpdir_path, "state"))
        made = []
        for i in range(3):
            underlay.Veth.create(handle, f"nic{i}", f"nic{i}p", up=True, peer_up=True)
            pools = [
                underlay.Pool(f"10.8{i}.0.0/24", gateway=f"10.8{i}.0.1"),
                underlay.Pool(f"fd8{i}::/64", gateway=f"fd8{i}::1"),
            ]
            made.append(nets.create(f"gw{i}", parent=f"nic{i}", pools=pools))
        yield host, made


def test_auto_gives_one_default_route(three_networks: tuple[underlay.Netns, list[underlay.Network]]) -> None:
    _, nets = three_networks
    with underlay.Netns.create(unique("drc")) as ctr:
        eps = [net.connect(ctr, "ctr", ifname=f"eth{i}", announce=False) for i, net in enumerate(nets)]
        assert default_routes(ctr, "-4") == [("10.80.0.1", "eth0", None)]
        assert default_routes(ctr, "-6") == [("fd80::1", "eth0", 1024)]
        assert [str(r.gateway) for r in eps[0].routes] == ["10.80.0.1", "fd80::1"]
        assert eps[1].routes == [] and eps[2].routes == []
        nets[1].disconnect("ctr", "eth1")
        assert len(default_routes(ctr, "-4")) == 1 and len(default_routes(ctr, "-6")) == 1
        nets[0].disconnect("ctr", "eth0")
        nets[2].disconnect("ctr", "eth2")


def test_metric_and_none(three_networks: tuple[underlay.Netns, list[underlay.Network]]) -> None:
    _, nets = three_networks
    with underlay.Netns.create(unique("drc")) as ctr:
        for i, net in enumerate(nets[:2]):
            net.connect(ctr, "ctr", ifname=f"eth{i}", announce=False, default_route=100 * (i + 1))
        assert default_routes(ctr, "-4") == [("10.80.0.1", "eth0", 100), ("10.81.0.1", "eth1", 200)]
        assert default_routes(ctr, "-6") == [("fd80::1", "eth0", 100), ("fd81::1", "eth1", 200)]
        rec = nets[1].endpoint("ctr", "eth1")
        assert rec is not None and [(r.gateway, r.metric) for r in rec.routes] == [
            (ipaddress.ip_address("10.81.0.1"), 200),
            (ipaddress.ip_address("fd81::1"), 200),
        ]
        # The same metric again: refused and undone.
        with pytest.raises(underlay.AlreadyExists, match="metric"):
            nets[2].connect(ctr, "ctr", ifname="eth2", announce=False, default_route=200)
        assert nets[2].endpoint("ctr", "eth2") is None
        ep = nets[2].connect(ctr, "ctr", ifname="eth2", announce=False, default_route="none")
        assert ep.routes == []
        assert len(default_routes(ctr, "-4")) == 2
        nets[0].disconnect("ctr", "eth0")
        assert default_routes(ctr, "-4") == [("10.81.0.1", "eth1", 200)]
        for bad in ("sometimes", -1, 2**32, True):
            with pytest.raises(underlay.InvalidArgument, match="default_route"):
                nets[0].connect(ctr, "ctr", ifname="eth0", default_route=bad)  # type: ignore[arg-type]
        assert nets[0].endpoint("ctr", "eth0") is None


def test_target_in_another_namespace_is_refused(
    three_networks: tuple[underlay.Netns, list[underlay.Network]],
) -> None:
    host, nets = three_networks
    with underlay.Netns.create(unique("drc")) as ctr:
        with pytest.raises(underlay.InvalidArgument) as e:
            nets[0].connect(ctr, "c2", target=host.handle(), announce=False)
        assert str(host.name) in str(e.value) and str(ctr.name) in str(e.value)
        assert nets[0].endpoint("c2") is None and nets[0].endpoints() == []


def test_network_gc(three_networks: tuple[underlay.Netns, list[underlay.Network]]) -> None:
    """`Network.gc` keeps the valid endpoints and releases the others: link, lease, record."""
    _, nets = three_networks
    net = nets[0]
    with underlay.Netns.create(unique("gcc")) as ctr:
        net.connect(ctr, "keep", ifname="eth0", announce=False)
        net.connect(ctr, "drop", ifname="eth1", announce=False)
        gone = net.gc([("keep", "eth0")])
        assert [(g.network, g.container_id, g.ifname) for g in gone] == [("gw0", "drop", "eth1")]
        assert [str(a) for a in gone[0].addresses] == ["10.80.0.3/24", "fd80::3/64"]
        assert ctr.name
        links = json.loads(
            subprocess.run(["ip", "-n", ctr.name, "-j", "link", "show"], check=True, capture_output=True).stdout
        )
        assert sorted(l["ifname"] for l in links) == ["eth0", "lo"]
        assert [e.container_id for e in net.endpoints()] == ["keep"]
        # The lease went too: its address can be taken again.
        again = net.connect(ctr, "again", ifname="eth2", ip="10.80.0.3", announce=False)
        assert [str(a) for a in again.addresses][0] == "10.80.0.3/24"
        with pytest.raises(underlay.InvalidArgument):
            net.gc([("keep", "a/b" * 10)])
        assert len(net.gc([])) == 2 and net.endpoints() == []


def test_delete_if_unused(tmpdir_path: str) -> None:
    """`Networks.delete_if_unused` keeps a network with an endpoint, deletes an unused one."""
    if not ROOT:
        pytest.skip("needs root (creates network namespaces): SKIPPED")
    with underlay.Netns.create(unique("diu")) as host:
        handle = host.handle()
        nets = underlay.Networks(handle, os.path.join(tmpdir_path, "state"))
        underlay.Veth.create(handle, "nic0", "nic0p", up=True, peer_up=True)
        net = nets.create("du", parent="nic0", pools=[underlay.Pool("10.90.0.0/24", gateway="10.90.0.1")])
        with underlay.Netns.create(unique("diuc")) as ctr:
            net.connect(ctr, "c", announce=False)
            assert nets.delete_if_unused("du") is False
            assert [n.name for n in nets.list()] == ["du"]
            net.disconnect("c")
            assert nets.delete_if_unused("du") is True
            assert nets.list() == []
            with pytest.raises(underlay.NotFound):
                nets.delete_if_unused("du")
