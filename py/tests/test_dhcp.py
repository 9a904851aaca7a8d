"""DHCP networks from Python, against dnsmasq in a wire namespace (its lease file the oracle):
the lease on the endpoint, renewal, the renewer's tick, release, a server gone; bad settings."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import subprocess
import time

import pytest

import underlay
from underlay import aio
from conftest import needs_root, unique


def test_dhcp_config_values() -> None:
    d = underlay.DhcpConfig()
    assert (d.tries, d.first_wait, d.subnet, d.total_wait) == (4, 1.0, None, 15.0)
    q = underlay.DhcpConfig(2, 0.2, "10.82.0.0/24")
    assert (q.tries, q.first_wait, q.subnet) == (2, 0.2, "10.82.0.0/24")
    assert q == underlay.DhcpConfig(2, 0.2, "10.82.0.7/24")  # host bits cleared
    for bad, words in [
        (dict(tries=0), "1 to 10"),
        (dict(tries=-1), "1 to 10"),
        (dict(first_wait=0.001), "10 ms"),
        (dict(first_wait=-1.0), "10 ms to 16 s"),
        (dict(subnet="fd00::/64"), "IPv6"),
        (dict(subnet="nope"), "nope"),
    ]:
        with pytest.raises(underlay.InvalidArgument, match=words):
            underlay.DhcpConfig(**bad)  # type: ignore[arg-type]


def _leases(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _wait_leases(path: str, count: int) -> list[list[str]]:
    for _ in range(40):
        got = _leases(path)
        if len(got) == count:
            return got
        time.sleep(0.05)
    return _leases(path)


@needs_root
def test_dhcp_network_against_dnsmasq(tmpdir_path: str) -> None:
    assert shutil.which("dnsmasq"), (
        "dnsmasq is not installed: the DHCP test needs Debian's dnsmasq "
        "(`apt-get install --no-install-recommends dnsmasq-base`; `cargo xtask py-test` installs it)"
    )
    leasefile = os.path.join(tmpdir_path, "dnsmasq.leases")
    with underlay.Netns.create(unique("dhh")) as host, underlay.Netns.create(
        unique("dhw")
    ) as wire, underlay.Netns.create(unique("dhc")) as ctr:
        h = host.handle()
        w = wire.handle()
        underlay.Veth.create(h, "ens192", "wire0", peer_netns=wire, up=True, peer_up=True)
        w.add_address("wire0", "10.82.0.1/24")
        server = subprocess.Popen(
            ["ip", "netns", "exec", wire.name, "dnsmasq", "--keep-in-foreground", "--port=0",
             "--conf-file=/dev/null", "--interface=wire0", "--bind-interfaces",
             "--dhcp-range=10.82.0.10,10.82.0.50,255.255.255.0,2m", "--dhcp-authoritative",
             "--dhcp-option=option:dns-server,10.82.0.53", "--dhcp-option=option:domain-name,lan.test",
             "--no-ping", "--user=root", "--group=root", f"--dhcp-leasefile={leasefile}",
             f"--pid-file={tmpdir_path}/dnsmasq.pid"],
            stdin=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                if os.path.exists(f"{tmpdir_path}/dnsmasq.pid"):
                    break
                time.sleep(0.05)
            nets = underlay.Networks(h, os.path.join(tmpdir_path, "state"))
            cfg = underlay.DhcpConfig(2, 0.2, "10.82.0.0/24")
            net = nets.create("dh", parent="ens192", dhcp=cfg)
            assert net.dhcp == cfg and net.pools == []
            assert net.differences(parent="ens192", dhcp=cfg) == []
            assert net.differences(parent="ens192") == ["DHCP: stored tries=2,wait_ms=200,subnet=10.82.0.0/24, given off"]
            ep = net.connect(ctr, "py1", hostname="py-host")
            lease = ep.dhcp
            assert lease is not None
            assert ep.addresses == [lease.address]
            assert lease.address.network == ipaddress.ip_network("10.82.0.0/24")
            assert (str(lease.server), str(lease.router)) == ("10.82.0.1", "10.82.0.1")
            assert (lease.lease_time, lease.t1, lease.t2) == (120.0, 60.0, 105.0)
            assert not lease.is_infinite and abs(lease.obtained - time.time()) < 30
            assert lease.expires == pytest.approx(lease.obtained + 120)
            assert lease.renew_at == pytest.approx(lease.obtained + 60)
            assert lease.rebind_at == pytest.approx(lease.obtained + 105)
            assert lease.server_mac == w.link("wire0").mac
            assert [str(a) for a in lease.dns_servers] == ["10.82.0.53"]
            assert lease.domain == "lan.test"
            [row] = _wait_leases(leasefile, 1)
            assert (row[1], row[2], row[3]) == (ep.mac, str(lease.address.ip), "py-host")
            # The oracle in the container: `ip -j addr`.
            out = subprocess.run(["ip", "-n", ctr.name, "-j", "addr", "show", "dev", "eth0"],
                                 check=True, capture_output=True, text=True).stdout
            assert f'"local":"{lease.address.ip}"' in out.replace(" ", "")
            time.sleep(1.1)
            renewed = net.renew_dhcp("py1")
            assert renewed.address == lease.address and renewed.obtained > lease.obtained
            assert net.endpoint("py1").dhcp == renewed  # type: ignore[union-attr]
            assert net.renew_due_dhcp() == []  # nothing due before T1
            anet = aio.Network(net)
            assert anet.dhcp == cfg
            assert asyncio.run(anet.renew_due_dhcp()) == []
            # The same over the state directory; the next renewal due is T1.
            assert nets.renew_due_dhcp() == []
            assert nets.next_dhcp_renewal() == pytest.approx(net.endpoint("py1").dhcp.renew_at)  # type: ignore[union-attr]
            assert asyncio.run(aio.Networks(nets).renew_due_dhcp()) == []
            assert asyncio.run(anet.renew_dhcp("py1")).address == lease.address
            with pytest.raises(underlay.NotFound, match="nobody"):
                net.renew_dhcp("nobody")
            net.disconnect("py1")
            assert _wait_leases(leasefile, 0) == [], "released"
            # The server goes away: a clear timeout naming the endpoint, nothing left.
            server.terminate()
            server.wait()
            with pytest.raises(underlay.Timeout, match="py2"):
                net.connect(ctr, "py2")
            assert net.endpoints() == []
            with pytest.raises(underlay.InvalidArgument, match="no pool"):
                nets.create("dh2", parent="ens192", dhcp=cfg,
                            pools=[underlay.Pool.parse("10.0.0.0/24")])
        finally:
            server.terminate()
            server.wait()
