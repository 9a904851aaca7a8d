"""A pool over several subnets (a CNI host-local range set): built with `Pool.then` or parsed,
read by segment; allocation goes on into the next subnet, each address with its own prefix and
gateway, in host-local's layout (`last_reserved_ip.0` continued across the subnets)."""

from __future__ import annotations

import ipaddress
import os

import pytest

import underlay


def test_a_pool_over_two_subnets(tmpdir_path: str) -> None:
    first = underlay.Pool("10.9.0.0/29", ranges=["10.9.0.5-10.9.0.6"])
    second = underlay.Pool("10.1.0.0/30", no_gateway=True)
    pool = first.then(second)
    assert str(pool) == "10.9.0.0/29 gateway=10.9.0.1 range=10.9.0.5-10.9.0.6 + 10.1.0.0/30 gateway=none"
    assert underlay.Pool.parse(str(pool)) == pool
    assert pool.capacity == 4
    assert [str(s.subnet) for s in pool.segments] == ["10.9.0.0/29", "10.1.0.0/30"]
    assert pool.segments[1].gateway is None and pool.segments[1].capacity == 2
    assert pool.subnet == ipaddress.ip_network("10.9.0.0/29"), "the first segment's"
    assert pool.gateway_of("10.9.0.5") == ipaddress.ip_address("10.9.0.1")
    assert pool.gateway_of("10.1.0.1") is None and pool.gateway_of("192.0.2.1") is None
    assert pool.contains("10.1.0.2") and pool.overlaps(second)
    with pytest.raises(underlay.Overlap, match="10.1.0.0/30"):
        pool.then(second)
    with pytest.raises(underlay.InvalidArgument, match="IPv6"):
        first.then(underlay.Pool("fd00:9::/64"))
    with pytest.raises(underlay.InvalidArgument, match="`x`"):
        pool.gateway_of("x")

    ipam = underlay.Ipam.create(os.path.join(tmpdir_path, "hl"), "rs", [pool], layout="host-local")
    got = [ipam.allocate(f"c{i}") for i in range(4)]
    assert [str(lease.addresses[0]) for lease in got] == [
        "10.9.0.5/29",
        "10.9.0.6/29",
        "10.1.0.1/30",
        "10.1.0.2/30",
    ]
    assert [lease.gateways[0] for lease in got] == [ipaddress.ip_address("10.9.0.1")] * 2 + [None] * 2
    cursor = os.path.join(tmpdir_path, "hl", "rs", "last_reserved_ip.0")
    assert open(cursor).read() == "10.1.0.2"
    with pytest.raises(underlay.PoolExhausted, match=r"10.9.0.0/29 \+ 10.1.0.0/30"):
        ipam.allocate("full")
    # Next-fit wraps around into the first subnet.
    ipam.release("c0")
    assert str(ipam.allocate("again").addresses[0]) == "10.9.0.5/29"
    assert [p == pool for p in underlay.Ipam.open(os.path.join(tmpdir_path, "hl"), "rs",
                                                  layout="host-local").pools] == [True]
