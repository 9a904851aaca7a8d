"""The etcd IPAM store from Python, against a real etcd member.

The member runs on free 127.0.0.1 ports with its data in a temporary directory, and is killed
by PID at the end. etcd is required, not optional: `cargo xtask py-test` installs it
(etcd-server, etcd-client), so a missing etcd fails these tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import Iterator

import pytest

import underlay
import underlay.aio as aio
from conftest import needs_root, unique

POOL = "172.22.16.0/24"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Etcd:
    """One etcd member on loopback."""

    def __init__(self) -> None:
        for tool in ("etcd", "etcdctl"):
            if shutil.which(tool) is None:
                pytest.fail(
                    f"`{tool}` is not installed: the etcd store's tests need a real etcd "
                    "(`apt-get install etcd-server etcd-client`; `cargo xtask py-test` installs "
                    "them)"
                )
        self.dir = tempfile.mkdtemp(prefix="ulpy-etcd-")
        client, peer = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self.log = open(os.path.join(self.dir, "etcd.log"), "wb")
        self.proc = subprocess.Popen(
            [
                "etcd",
                "--name", "m0",
                "--data-dir", os.path.join(self.dir, "data"),
                "--listen-client-urls", self.url,
                "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer_url,
                "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"m0={peer_url}",
                "--initial-cluster-token", os.path.basename(self.dir),
                "--initial-cluster-state", "new",
                "--logger", "zap", "--log-level", "warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while self.ctl("endpoint", "health") is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(os.path.join(self.dir, "etcd.log"), errors="replace") as f:
                    log = f.read()
                pytest.fail(f"etcd did not become healthy within 30 s; its log:\n{log}")
            time.sleep(0.05)

    def ctl(self, *args: str) -> str | None:
        """`etcdctl` against the member (the independent oracle): stdout, or None on failure."""
        r = subprocess.run(
            ["etcdctl", f"--endpoints={self.url}", "--command-timeout=3s", "--dial-timeout=1s", *args],
            env={**os.environ, "ETCDCTL_API": "3"},
            capture_output=True,
            text=True,
        )
        return r.stdout if r.returncode == 0 else None

    def stop(self) -> None:
        """SIGKILL by PID, reap, remove the data."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def etcd() -> Iterator[Etcd]:
    e = Etcd()
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix of the test's own: every test is an independent IPAM."""
    return f"/{unique('p')}/"


def store(etcd: Etcd, prefix: str, host: str) -> underlay.EtcdStore:
    return underlay.EtcdStore.connect(
        [etcd.url], prefix=prefix, host=host, request_timeout=2.0, connect_timeout=0.5, retry_for=20.0
    )


def test_two_hosts_never_share_an_address(etcd: Etcd, prefix: str) -> None:
    a, b = store(etcd, prefix, "h1"), store(etcd, prefix, "h2")
    assert (a.host, b.host, a.prefix, a.endpoints) == ("h1", "h2", prefix, [etcd.url])
    assert a.host_lease_ttl is None
    assert "h1" in repr(a) and etcd.url in repr(a)
    pools = [underlay.Pool(POOL, gateway="172.22.16.1"), underlay.Pool("fd00:16::/64")]
    ia = underlay.Ipam.create(a, "mac_net1", pools)
    # One definition for every host.
    assert {n: [str(p) for p in ps] for n, ps in b.networks().items()} == {
        "mac_net1": [str(p) for p in pools]
    }
    ib = underlay.Ipam.open_or_create(b, "mac_net1", pools)
    with pytest.raises(underlay.AlreadyExists):
        underlay.Ipam.create(b, "mac_net1", pools)
    with pytest.raises(underlay.Conflict):
        underlay.Ipam.open_or_create(b, "mac_net1", [underlay.Pool(POOL)])
    with pytest.raises(underlay.Overlap):
        underlay.Ipam.create(b, "wide", [underlay.Pool("172.22.0.0/16")])

    # Both hosts allocate at once from many threads (the GIL is released): never one address
    # twice.
    leases: dict[str, underlay.Lease] = {}
    errors: list[BaseException] = []

    def work(ipam: underlay.Ipam, who: str) -> None:
        try:
            for i in range(10):
                leases[f"{who}{i}"] = ipam.allocate(f"{who}{i}")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=(ipam, f"{h}{t}-"))
        for ipam, h in ((ia, "a"), (ib, "b"))
        for t in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(leases) == 60
    ips = [ip for lease in leases.values() for ip in lease.ips]
    assert len(ips) == 120 and len(set(ips)) == 120, "an address was handed out twice"
    for lease in leases.values():
        assert lease.gateways == [ipaddress.ip_address("172.22.16.1"), ipaddress.ip_address("fd00:16::1")]
    # Each host sees every lease, whoever made it.
    assert {x.container_id for x in ia.list()} == set(leases) == {x.container_id for x in ib.list()}
    # An address held by the other host is refused.
    held = leases["a0-0"].ips[0]
    with pytest.raises(underlay.AlreadyExists):
        ib.allocate("x", ips=[held])

    # The oracle: etcdctl reads the record, owner first, stamped with its host.
    key = f"{prefix}ipam/data/mac_net1/addr/{held}"
    value = etcd.ctl("get", key, "--print-value-only")
    assert value is not None and value.startswith("a0-0/eth0 host=h1"), value

    by_host = a.addresses_by_host("mac_net1")
    assert {h: len(v) for h, v in by_host.items()} == {"h1": 60, "h2": 60}
    rec = next(r for r in by_host["h1"] if r.address == held)
    assert (rec.container_id, rec.ifname, rec.boot_id) == ("a0-0", "eth0", ia.boot_id)
    assert str(held) in repr(rec)

    # gc of one host touches only that host's leases; Ipam.gc is cluster-wide.
    keep_b = [(f"b0-{i}", "eth0") for i in range(10)]
    gone = b.gc_host("mac_net1", "h2", keep_b)
    assert len(gone) == 2 * 20 and all(r.container_id.startswith("b") for r in gone)
    assert len(ia.list()) == 30 + 10
    assert len(ia.gc([("a0-0", "eth0"), ("b0-3", "eth0")])) == 38
    assert {x.container_id for x in ib.list()} == {"a0-0", "b0-3"}

    # Delete waits for the last lease.
    with pytest.raises(underlay.Busy):
        underlay.Ipam.delete(a, "mac_net1")
    assert len(ib.gc([])) == 2
    underlay.Ipam.delete(b, "mac_net1")
    assert a.networks() == {}
    with pytest.raises(underlay.NotFound):
        underlay.Ipam.open(a, "mac_net1")
    left = etcd.ctl("get", "--prefix", f"{prefix}ipam/data/", "--keys-only")
    assert left is not None and left.strip() == "", f"keys left after delete: {left}"


def test_settings_are_checked(etcd: Etcd, prefix: str) -> None:
    bad = [
        dict(endpoints=[]),
        dict(endpoints=[etcd.url], prefix="underlay"),
        dict(endpoints=[etcd.url], host="two words"),
        dict(endpoints=[etcd.url], user="root"),
        dict(endpoints=[etcd.url], client_cert="/c"),
        dict(endpoints=[etcd.url], request_timeout=-1.0),
        dict(endpoints=[etcd.url], host_lease=0.5),
        dict(endpoints=42),
    ]
    for kw in bad:
        with pytest.raises(underlay.InvalidArgument):
            underlay.EtcdStore.connect(**kw)  # type: ignore[arg-type]
    with pytest.raises(underlay.NotFound) as e:
        underlay.EtcdStore.connect("https://127.0.0.1:1", ca="/nonexistent/ca.pem")
    assert "/nonexistent/ca.pem" in str(e.value)
    s = store(etcd, prefix, "h1")
    with pytest.raises(underlay.InvalidArgument):
        underlay.Ipam.open(s, "n", layout="host-local")
    with pytest.raises(underlay.InvalidArgument):
        underlay.Ipam.open(42, "n")  # type: ignore[arg-type]


def test_host_lease(etcd: Etcd, prefix: str) -> None:
    """Claims carry the host's lease (etcdctl shows the key attached to a lease)."""
    s = underlay.EtcdStore.connect(etcd.url, prefix=prefix, host="hl", host_lease=30)
    assert s.host_lease_ttl is not None and s.host_lease_ttl >= 30
    ipam = underlay.Ipam.open_or_create(s, "leased", [underlay.Pool("10.77.0.0/24")])
    ip = ipam.allocate("c1").ips[0]
    out = etcd.ctl("get", f"{prefix}ipam/data/leased/addr/{ip}", "-w", "json")
    assert out is not None and '"lease":' in out, out
    ipam.release("c1")
    underlay.Ipam.delete(s, "leased")


def test_node_slices(etcd: Etcd, prefix: str) -> None:
    """With slices=16 each host picks in its own aligned blocks of 16 (etcdctl shows them)."""
    with pytest.raises(underlay.InvalidArgument):
        underlay.EtcdStore.connect(etcd.url, prefix=prefix, slices=0)
    pools = [underlay.Pool("10.78.0.0/24")]
    ipams = {}
    for h in ("s1", "s2"):
        st = underlay.EtcdStore.connect(etcd.url, prefix=prefix, host=h, slices=16)
        ipams[h] = underlay.Ipam.open_or_create(st, "sliced", pools)
    got = {h: [ipam.allocate(f"{h}-{i}").ips[0] for i in range(5)] for h, ipam in ipams.items()}
    blocks = {h: {int(ip) // 16 for ip in ips} for h, ips in got.items()}
    assert all(len(b) == 1 for b in blocks.values()), blocks
    assert blocks["s1"] != blocks["s2"], "two hosts share a block"
    keys = etcd.ctl("get", "--prefix", f"{prefix}ipam/data/sliced/slice/")
    assert keys is not None and "host=s1 size=16" in keys and "host=s2 size=16" in keys, keys
    for h, ipam in ipams.items():
        for i in range(5):
            ipam.release(f"{h}-{i}")


def test_aio_over_etcd(etcd: Etcd, prefix: str) -> None:
    async def main() -> None:
        a = await aio.EtcdStore.connect(etcd.url, prefix=prefix, host="h1", retry_for=20.0)
        b = await aio.EtcdStore.connect([etcd.url], prefix=prefix, host="h2", retry_for=20.0)
        assert (a.host, a.prefix, a.endpoints, a.host_lease_ttl) == ("h1", prefix, [etcd.url], None)
        assert a.DEFAULT_PREFIX == underlay.EtcdStore.DEFAULT_PREFIX == "/underlay/"
        pools = [underlay.Pool("10.88.0.0/24")]
        ia = await aio.Ipam.create(a, "n", pools)
        ib = await aio.Ipam.open(b.sync, "n")  # a sync store works too
        assert list(await b.networks()) == ["n"]
        leases = await asyncio.gather(
            *(ipam.allocate(f"{h}{i}") for i in range(8) for ipam, h in ((ia, "a"), (ib, "b")))
        )
        ips = [x.ips[0] for x in leases]
        assert len(set(ips)) == 16
        by_host = await a.addresses_by_host("n")
        assert {h: len(v) for h, v in by_host.items()} == {"h1": 8, "h2": 8}
        gone = await b.gc_host("n", "h2", [])
        assert len(gone) == 8
        await ia.gc([])
        await aio.Ipam.delete(b, "n")
        assert await (await aio.Ipam.open_or_create(a, "n2", pools)).list() == []
        await aio.Ipam.delete(a, "n2")
        assert "h1" in repr(a)

    asyncio.run(main())


@needs_root
def test_networks_over_etcd(handle: underlay.Handle, nic: str, etcd: Etcd, prefix: str, tmpdir_path: str) -> None:
    """A host's networks with their pools and leases in etcd: a connected container's address
    is an etcd key stamped with the host's name; the definition and the key go with the
    network."""
    s = store(etcd, prefix, "node-7")
    nets = underlay.Networks(handle, tmpdir_path, store=s)
    net = nets.create("mac_net1", parent=nic, pools=[underlay.Pool("10.79.0.0/24")])
    assert list(s.networks()) == ["mac_net1"]
    with underlay.Netns.create(unique("ectr")) as ctr:
        with net.connect(ctr, "ctr1") as ep:
            ip = ep.addresses[0].ip
            value = etcd.ctl("get", f"{prefix}ipam/data/mac_net1/addr/{ip}", "--print-value-only")
            assert value is not None and value.startswith("ctr1/eth0 host=node-7"), value
            inside = ctr.handle()
            assert any(a.address.ip == ip for a in inside.addresses("eth0"))
        assert s.addresses_by_host("mac_net1") == {}
    nets.delete("mac_net1")
    assert s.networks() == {}
    with pytest.raises(underlay.InvalidArgument):
        underlay.Networks(handle, tmpdir_path, store=s, ipam_path=tmpdir_path)

    async def via_aio() -> None:
        n = await aio.Networks.open(handle, os.path.join(tmpdir_path, "a"), store=s)
        assert await n.list() == []

    asyncio.run(via_aio())


def test_join_leave_members_and_slices(etcd: Etcd, prefix: str) -> None:
    """Membership of a shared network (join/leave, members) and the slice report."""
    a, b = store(etcd, prefix, "h1"), store(etcd, prefix, "h2")
    pools = [underlay.Pool(POOL)]
    ia, created = underlay.Ipam.join(a, "shared", pools)
    assert created and ia.name == "shared"
    ib, created = underlay.Ipam.join(b, "shared", pools)
    assert not created
    assert a.members("shared") == ["h1", "h2"]
    with pytest.raises(underlay.Conflict):
        underlay.Ipam.join(b, "shared", [underlay.Pool("172.22.17.0/24")])
    # Without slices configured, no host holds any, and there is nothing to collect.
    assert a.slices_by_host("shared") == {}
    assert a.gc_slices("shared", "h1") == []
    ib.allocate("c1")
    with pytest.raises(underlay.Busy):
        underlay.Ipam.leave(b, "shared")
    ib.release("c1")
    # h1 leaves: h2 still uses it, the definition stays.
    assert underlay.Ipam.leave(a, "shared") == ["h2"]
    assert b.members("shared") == ["h2"]
    assert list(b.networks()) == ["shared"]
    # The last one leaves: the definition goes (etcdctl is the oracle).
    assert underlay.Ipam.leave(b, "shared") == []
    assert a.networks() == {}
    left = etcd.ctl("get", "--prefix", f"{prefix}ipam/data/", "--keys-only")
    assert left is not None and left.strip() == "", f"keys left after the last leave: {left}"
    with pytest.raises(underlay.InvalidArgument):
        a.members("bad/name")


def test_slices_by_host_and_gc_slices(etcd: Etcd, prefix: str) -> None:
    """A host with node slices holds its blocks; gc_slices frees the empty ones."""
    a = underlay.EtcdStore.connect([etcd.url], prefix=prefix, host="h1", slices=16, retry_for=20.0)
    ipam, _ = underlay.Ipam.join(a, "sl", [underlay.Pool(POOL)])
    ipam.allocate("c1")
    held = a.slices_by_host("sl")
    assert list(held) == ["h1"] and len(held["h1"]) >= 1
    first, size = held["h1"][0]
    assert size == 16 and first in ipaddress.ip_network(POOL)
    assert a.gc_slices("sl", "h1") == [], "a slice holding a lease is kept"
    ipam.release("c1")
    assert a.gc_slices("sl", "h1") == [first]
    assert a.slices_by_host("sl") == {}
