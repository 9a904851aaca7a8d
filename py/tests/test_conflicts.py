"""Conflict detection from Python: a neighbour on the wire holding a pool address is skipped
and quarantined; quarantines by hand; a later conflict reported by the watch; bad timings."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time

import pytest

import underlay
from underlay import aio
from conftest import needs_root, unique


def test_conflict_detection_values() -> None:
    quick = underlay.ConflictDetection()
    assert (quick.probes, quick.interval, quick.wait) == (1, 0.0, 0.15)
    rfc = underlay.ConflictDetection.rfc5227()
    assert (rfc.probes, rfc.interval, rfc.wait, rfc.total) == (3, 1.0, 2.0, 4.0)
    assert underlay.ConflictDetection(2, 0.05, 0.1) == underlay.ConflictDetection(2, 0.05, 0.1)
    for bad, words in [
        (dict(probes=0), "1 to 10"),
        (dict(probes=-1), "1 to 10"),
        (dict(probes=11), "1 to 10"),
        (dict(wait=0.0), "1 ms"),
        (dict(wait=-1.0), "0 to 10 seconds"),
        (dict(interval=11.0), "10 s"),
        (dict(wait=float("nan")), "0 to 10 seconds"),
    ]:
        with pytest.raises(underlay.InvalidArgument, match=words):
            underlay.ConflictDetection(**bad)  # type: ignore[arg-type]


def test_quarantine_by_hand() -> None:
    ipam = underlay.Ipam.in_memory("q", [underlay.Pool.parse("10.90.0.0/29 gateway=10.90.0.1")])
    lease = ipam.allocate("c1")
    mine = lease.ips[0]
    made = ipam.quarantine(
        "c1", found=[underlay.Quarantine(mine, "02:00:00:00:00:05"), underlay.Quarantine("10.90.0.6")]
    )
    assert [q.ip for q in made] == [mine, ipaddress.ip_address("10.90.0.6")]
    assert ipam.lookup("c1") is None
    got = ipam.quarantined()
    assert got == made
    assert got[0].mac == "02:00:00:00:00:05" and got[1].mac is None
    assert abs(got[0].since - time.time()) < 60
    listed = {l.container_id: l for l in ipam.list()}
    assert listed[got[0].owner[0]].quarantine == got[0]
    # gc keeps quarantines; releasing the owner lifts one.
    assert ipam.gc([]) == []
    assert ipam.release(*got[1].owner) is not None
    assert ipam.quarantined() == got[:1]
    # Another's address is left to it; a MAC no machine can answer from is refused.
    other = ipam.allocate("c2").ips[0]
    assert ipam.quarantine("c3", found=[underlay.Quarantine(other)]) == []
    assert ipam.lookup("c2") is not None
    with pytest.raises(underlay.InvalidArgument, match="multicast"):
        ipam.quarantine("c3", found=[underlay.Quarantine("10.90.0.5", "01:00:5e:00:00:01")])
    with pytest.raises(underlay.InvalidArgument):
        underlay.Quarantine("10.90.0.5", "zz")


@needs_root
def test_connect_skips_an_address_in_use_and_reports_later_conflicts(tmpdir_path: str) -> None:
    with underlay.Netns.create(unique("cdh")) as host, underlay.Netns.create(
        unique("cdw")
    ) as wire, underlay.Netns.create(unique("cdc")) as ctr:
        h = host.handle()
        w = wire.handle()
        underlay.Veth.create(h, "ens192", "wire0", peer_netns=wire, up=True, peer_up=True)
        w.add_address("wire0", "172.23.50.2/24")
        wire0 = w.link("wire0")
        nets = underlay.Networks(h, tmpdir_path)
        net = nets.create(
            "cdnet",
            parent="ens192",
            pools=[underlay.Pool.parse("172.23.50.0/24 gateway=172.23.50.1")],
            conflict_detection=underlay.ConflictDetection(),
        )
        assert net.conflict_detection == underlay.ConflictDetection()
        watch = net.watch_conflicts()
        ep = net.connect(ctr, "c1")
        assert [str(a) for a in ep.addresses] == ["172.23.50.3/24"]
        ipam = underlay.Ipam.open(os.path.join(tmpdir_path, "ipam"), "cdnet")
        [q] = ipam.quarantined()
        assert (str(q.ip), q.mac) == ("172.23.50.2", wire0.mac)
        # The neighbour takes the endpoint's address: reported.
        assert watch.next(0.2) is None
        wire.announce(wire0, wire0.mac, [ep.addresses[0].ip])
        c = watch.next(2.0)
        assert c is not None
        assert (str(c.ip), c.mac, c.container_id, c.endpoint_mac) == (
            "172.23.50.3",
            wire0.mac,
            "c1",
            ep.mac,
        )
        # The same through asyncio.
        anet = aio.Network(net)
        assert anet.conflict_detection == underlay.ConflictDetection()
        assert [str(x.ip) for x in asyncio.run(aio.Ipam(ipam).quarantined())] == ["172.23.50.2"]
        # The quarantined address is refused when asked for; lifted, the wire answers again.
        with pytest.raises(underlay.AlreadyExists, match="172.23.50.2 .* quarantined"):
            net.connect(ctr, "c2", ifname="eth1", ip="172.23.50.2")
        ipam.release(*q.owner)
        with pytest.raises(underlay.Conflict, match="172.23.50.2"):
            net.connect(ctr, "c2", ifname="eth1", ip="172.23.50.2")
        assert [str(x.ip) for x in ipam.quarantined()] == ["172.23.50.2"]
        assert net.endpoint("c2", "eth1") is None
        net.disconnect("c1")
