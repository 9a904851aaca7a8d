"""Issue 15's "also" items and VLAN QoS maps from Python: batched namespace deletion, a stored
network compared with a definition, and QoS maps' checks (the kernel side runs in the VM, in
Rust: this kernel has no 8021q)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

import underlay
import underlay.aio as aio
from conftest import needs_root, unique


def listed() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


@needs_root
def test_namespaces_deleted_in_batches() -> None:
    names = [unique("del") for _ in range(6)]
    for n in names:
        underlay.Netns.create(n)
    assert set(names) <= listed()
    underlay.Netns.delete_many(names[:3])
    assert not set(names[:3]) & listed()
    # A missing one among others: the others go, the error names it.
    with pytest.raises(underlay.NotFound) as e:
        underlay.Netns.delete_many([names[0], names[3]])
    assert names[0] in str(e.value)
    assert names[3] not in listed()
    with pytest.raises(underlay.MultipleErrors) as m:
        underlay.Netns.delete_many([names[0], "a/b"])
    assert len(m.value.errors) == 2
    asyncio.run(aio.delete_netns_many(names[4:]))
    assert not set(names) & listed()
    underlay.Netns.delete_many([])


@needs_root
def test_stored_network_compares_with_a_definition(
    handle: underlay.Handle, nic: str, tmpdir_path: str
) -> None:
    nets = underlay.Networks(handle, tmpdir_path)
    pool = underlay.Pool("10.33.0.0/24", gateway="10.33.0.1")
    net = nets.create("cmp", parent=nic, pools=[pool], mtu=1400)
    assert net.differences(parent=nic, pools=[pool], mtu=1400) == []
    assert net.differences(parent=nic, pools=[pool]) == ["MTU: stored 1400, given the parent's"]
    diffs = net.differences(parent=nic, mode="vepa", pools=[pool], mtu=1400)
    assert diffs == ["driver: stored macvlan mode bridge, given macvlan mode vepa"]
    again = nets.create_or_open("cmp", parent=nic, pools=[pool], mtu=1400)
    assert again.name == "cmp"
    with pytest.raises(underlay.Conflict) as e:
        nets.create_or_open("cmp", parent=nic, pools=[pool])
    assert "MTU: stored 1400" in str(e.value)
    assert len(nets.list()) == 1

    async def run() -> None:
        anets = aio.Networks(nets)
        n = await anets.create_or_open("cmp", parent=nic, pools=[pool], mtu=1400)
        assert n.differences(parent=nic, pools=[pool], mtu=1400) == []

    asyncio.run(run())
    nets.delete("cmp")


@needs_root
def test_vlan_qos_maps_checked_before_the_kernel(
    netns: underlay.Netns, handle: underlay.Handle, nic: str
) -> None:
    for kw in ({"ingress_qos": [(8, 1)]}, {"egress_qos": [(1, 8)]}):
        with pytest.raises(underlay.InvalidArgument) as e:
            underlay.Vlan.create(handle, nic, 10, **kw)
        assert "0..7" in str(e.value)
        with pytest.raises(underlay.InvalidArgument):
            underlay.Vlan.set_qos(handle, nic, **kw)
    for bad in ((-1, 1), (1, 2**32), (True, 1), ("1", 2)):
        with pytest.raises(underlay.InvalidArgument):
            underlay.Vlan.create(handle, nic, 10, ingress_qos=[bad])
    with pytest.raises(underlay.InvalidArgument) as e:
        underlay.Vlan.set_qos(handle, nic, ingress_qos=[(1, 2)])
    assert "not a VLAN" in str(e.value)
    with pytest.raises(underlay.NotFound):
        underlay.Vlan.set_qos(handle, "nosuch", ingress_qos=[(1, 2)])
    link = handle.link(nic)
    assert link.vlan_ingress_qos is None and link.vlan_egress_qos is None
