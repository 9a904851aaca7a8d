"""Shared reservations (`Ipam.hold`/`unhold`/`holds`): an address held for one owner by several
holders; one holder's unhold keeps it for the others, the last one frees it. On the local store
(read back by a second `Ipam` and the `holds` file) and, async, in memory."""

from __future__ import annotations

import asyncio
import ipaddress
import os

import pytest

import underlay
import underlay.aio as aio


def test_holds_on_the_local_store(tmpdir_path: str) -> None:
    pool = underlay.Pool("10.77.0.0/29", no_gateway=True)
    ipam = underlay.Ipam.create(tmpdir_path, "held", [pool])
    h = ipam.hold("docker-gateway", "gw", ip="10.77.0.1", holder="host1")
    assert h.address == ipaddress.ip_address("10.77.0.1") and h.holders == ["host1"]
    h = ipam.hold("docker-gateway", "gw", ip="10.77.0.1", holder="host2")
    assert h.holders == ["host1", "host2"] and (h.container_id, h.ifname) == ("docker-gateway", "gw")
    with open(os.path.join(tmpdir_path, "held", "holds")) as f:
        assert f.read() == "10.77.0.1 docker-gateway/gw host1 host2\n"
    other = underlay.Ipam.open(tmpdir_path, "held")
    assert other.holds() == [h]
    got = {str(other.allocate(f"c{i}").addresses[0].ip) for i in range(5)}
    assert "10.77.0.1" not in got
    with pytest.raises(underlay.AlreadyExists, match="10.77.0.1"):
        ipam.hold("someone", ip="10.77.0.1", holder="host1")
    with pytest.raises(underlay.InvalidArgument, match="holder"):
        ipam.hold("docker-gateway", "gw", ip="10.77.0.1", holder="has space")
    assert ipam.unhold("docker-gateway", "gw", holder="host1") == (False, ["host2"])
    assert ipam.unhold("docker-gateway", "gw", holder="host1") == (False, [])
    assert other.unhold("docker-gateway", "gw", holder="host2") == (True, [])
    assert other.holds() == []
    assert str(other.allocate("c9").addresses[0].ip) == "10.77.0.1"


def test_holds_async_in_memory() -> None:
    async def run() -> None:
        ipam = await aio.Ipam.in_memory("m", [underlay.Pool("10.78.0.0/30", no_gateway=True)])
        await ipam.hold("aux", "aux", ip="10.78.0.2", holder="a")
        assert [h.holders for h in await ipam.holds()] == [["a"]]
        assert await ipam.unhold("aux", "aux", holder="a") == (True, [])

    asyncio.run(run())
