"""The error table: one exception class per core error kind, raised by real failures."""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

import underlay
from conftest import ROOT, needs_root, spinning, unique


def test_every_kind_maps_to_a_distinct_class() -> None:
    table = underlay.error_classes()
    codes = [code for code, _, _ in table]
    assert codes == list(range(1, len(table) + 1)), "codes are dense from 1"
    assert len(table) == 15
    classes = [cls for _, _, cls in table]
    assert len(set(classes)) == len(classes), "one class per kind"
    for code, kind, cls in table:
        assert cls is not underlay.UnderlayError
        assert issubclass(cls, underlay.UnderlayError)
        assert issubclass(cls, OSError)
        assert cls.code == code and cls.kind == kind
        assert getattr(underlay, cls.__name__) is cls, "exported from underlay"
        assert cls.__module__ == "underlay"
        assert cls.__doc__
    assert issubclass(underlay.UnderlayError, OSError)
    assert underlay.UnderlayError.kind is None


def test_invalid_argument() -> None:
    with pytest.raises(underlay.InvalidArgument) as e:
        underlay.Pool("10.0.0.0/33")
    assert e.value.errno is None
    with pytest.raises(underlay.InvalidArgument):
        underlay.Pool.parse("10.0.0.0/24 gateway=banana")
    with pytest.raises(underlay.InvalidArgument):
        underlay.Ipam.in_memory("n", [underlay.Pool("10.0.0.0/24")]).allocate("c", "bad/name")


def test_pool_exhausted_overlap_conflict_busy() -> None:
    pool = underlay.Pool("10.9.0.0/30", no_gateway=True)
    ipam = underlay.Ipam.in_memory("tiny", [pool])
    ipam.allocate("a")
    ipam.allocate("b")
    with pytest.raises(underlay.PoolExhausted):
        ipam.allocate("c")
    with pytest.raises(underlay.Overlap):
        underlay.Ipam.in_memory("o", [underlay.Pool("10.0.0.0/16"), underlay.Pool("10.0.1.0/24")])
    with pytest.raises(underlay.Conflict):
        ipam.allocate("a", ips=["10.9.0.3"])


def test_busy_and_corrupt(tmpdir_path: str) -> None:
    ipam = underlay.Ipam.create(tmpdir_path, "n1", [underlay.Pool("10.1.0.0/24")])
    ipam.allocate("c1")
    with pytest.raises(underlay.Busy):
        underlay.Ipam.delete(tmpdir_path, "n1")
    with pytest.raises(underlay.AlreadyExists):
        underlay.Ipam.create(tmpdir_path, "n1", [underlay.Pool("10.1.0.0/24")])
    with pytest.raises(underlay.Conflict):
        underlay.Ipam.open_or_create(tmpdir_path, "n1", [underlay.Pool("10.2.0.0/24")])
    damaged = 0
    for dirpath, _, files in os.walk(tmpdir_path):
        for f in files:
            with open(os.path.join(dirpath, f), "wb") as out:
                out.write(b"\x00garbage\xff\n")
            damaged += 1
    assert damaged
    with pytest.raises(underlay.Corrupt) as e:
        underlay.Ipam.open(tmpdir_path, "n1").list()
    assert "n1" in str(e.value) or tmpdir_path in str(e.value)


def test_not_found_carries_errno() -> None:
    with pytest.raises(underlay.NotFound) as e:
        underlay.Netns.open(unique("missing"))
    assert e.value.errno == errno.ENOENT
    assert "ip netns add" in str(e.value), "the message says what to do"


@needs_root
def test_already_exists(netns: underlay.Netns) -> None:
    assert netns.name is not None
    with pytest.raises(underlay.AlreadyExists):
        underlay.Netns.create(netns.name)
    h = netns.handle()
    underlay.Veth.create(h, "a0", "a1")
    with pytest.raises(underlay.AlreadyExists) as e:
        underlay.Veth.create(h, "a0", "a2")
    assert e.value.errno == errno.EEXIST


@needs_root
def test_not_found_link(handle: underlay.Handle) -> None:
    with pytest.raises(underlay.NotFound):
        handle.link("nosuch0")
    with pytest.raises(underlay.NotFound):
        underlay.Macvlan.create(handle, "m0", "nosuch0")


@needs_root
def test_permission_denied(netns: underlay.Netns) -> None:
    # Read-only procfs files refuse writes even to root.
    with pytest.raises(underlay.PermissionDenied) as e:
        netns.set_sysctl("net.ipv4.tcp_available_congestion_control", "reno")
    assert e.value.errno == errno.EACCES


@needs_root
def test_kernel_unsupported_or_ok(handle: underlay.Handle, nic: str) -> None:
    """VLAN needs 8021q: where the kernel lacks it, the error says `modprobe 8021q`."""
    try:
        link = underlay.Vlan.create(handle, nic, 10)
    except underlay.KernelUnsupported as e:
        assert "modprobe 8021q" in str(e)
        assert e.errno is not None
    else:
        assert link.name == f"{nic}.10" and link.vlan_id == 10


@needs_root
def test_kernel_errno_kept(handle: underlay.Handle, nic: str) -> None:
    handle.set_link("lo", up=True)
    # A gateway not on any link: the kernel says ENETUNREACH; the message says what to do.
    with pytest.raises(underlay.InvalidArgument) as e:
        handle.add_route(underlay.Route("10.77.0.0/16", gateway="192.0.2.1"))
    assert e.value.errno == errno.ENETUNREACH
    assert "add an address" in str(e.value)


def test_invalid_values_in_python_types() -> None:
    with pytest.raises(underlay.InvalidArgument):
        underlay.Route("not-a-net")
    with pytest.raises(underlay.InvalidArgument):
        underlay.Pool("10.0.0.0/24", ranges=["10.0.0.50-10.0.0.10"])
    assert isinstance(ipaddress.ip_address("10.0.0.1"), ipaddress.IPv4Address)


def test_io_error_state_dir_under_a_file(tmpdir_path: str) -> None:
    """A Networks state directory whose path runs through a regular file: ENOTDIR."""
    blocker = os.path.join(tmpdir_path, "file")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    if not ROOT:
        pytest.skip("needs root (a handle): SKIPPED")
    with pytest.raises(underlay.IoError) as e:
        underlay.Networks(underlay.Handle(), os.path.join(blocker, "sub", "state"))
    assert e.value.errno == errno.ENOTDIR
    assert blocker in str(e.value)


@needs_root
def test_io_error_sysctl_refused(netns: underlay.Netns) -> None:
    """The kernel refuses a sysctl value with EINVAL: an I/O error outside netlink."""
    with pytest.raises(underlay.IoError) as e:
        netns.set_sysctl("net.ipv4.ip_forward", "banana")
    assert e.value.errno == errno.EINVAL
    assert "net.ipv4.ip_forward" in str(e.value)


@needs_root
def test_kernel_error_unmapped_errno(handle: underlay.Handle) -> None:
    """A bridge enslaved to a bridge: the kernel says ELOOP, which no other kind claims."""
    underlay.Bridge.create(handle, "br0")
    underlay.Bridge.create(handle, "br1")
    with pytest.raises(underlay.KernelError) as e:
        handle.set_link("br1", master="br0")
    assert e.value.errno == errno.ELOOP
    assert "br1" in str(e.value) or "index" in str(e.value)


def _chattr(flag: str, *paths: str) -> None:
    subprocess.run(["chattr", flag, *paths], check=True)


@needs_root
def test_multiple_errors_from_reconcile(handle: underlay.Handle, nic: str, tmpdir_path: str) -> None:
    """Reconcile keeps going past failures and reports each: here the state directory is
    immutable (chattr +i; the lock files stay writable), so the IPAM stores of two networks,
    each with a gone container, cannot be opened. Nothing is changed, and once the directory
    is writable again reconcile releases both."""
    if shutil.which("chattr") is None:
        pytest.skip("needs chattr (e2fsprogs): SKIPPED")
    nets = underlay.Networks(handle, tmpdir_path)
    for name, pool in (("m", "10.73.0.0/24"), ("n", "10.74.0.0/24")):
        net = nets.create(name, parent=nic, pools=[underlay.Pool(pool)])
        with underlay.Netns.create(unique("multi")) as ns:
            net.connect(ns, f"ctr-{name}")
    del ns  # the namespace lives while a descriptor holds it
    frozen = [
        os.path.join(d, x)
        for d, dirs, files in os.walk(tmpdir_path)
        for x in dirs + files
        if not x.endswith("lock")
    ]
    try:
        _chattr("+i", *frozen)
    except subprocess.CalledProcessError:
        pytest.skip("this filesystem has no immutable attribute: SKIPPED")
    try:
        with pytest.raises(underlay.MultipleErrors) as e:
            nets.reconcile()
    finally:
        _chattr("-i", *frozen)
    assert len(e.value.errors) >= 2
    assert all(isinstance(x, underlay.UnderlayError) for x in e.value.errors)
    assert "/m/" in str(e.value) and "/n/" in str(e.value) and "errors" in str(e.value)
    assert e.value.errno is not None
    assert [len(net.endpoints()) for net in nets.list()] == [1, 1]
    report = nets.reconcile()
    assert sorted(g.container_id for g in report.gone_endpoints) == ["ctr-m", "ctr-n"]
    nets.delete("m")
    nets.delete("n")


def _closed_port() -> str:
    """A loopback URL on which nothing listens (a port the kernel just handed out, closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_timeout_when_no_etcd_answers() -> None:
    """Nothing listens on the endpoint: `Timeout` naming it, after retrying for (at most)
    retry_for and not much longer; the GIL is released meanwhile."""
    url = _closed_port()
    with spinning() as spinner:
        start = time.monotonic()
        try:
            with pytest.raises(underlay.Timeout) as e:
                underlay.EtcdStore.connect(url, request_timeout=0.3, connect_timeout=0.2, retry_for=1.0)
        finally:
            elapsed = time.monotonic() - start
    counter = spinner.count
    assert e.value.errno is None
    assert url in str(e.value), str(e.value)
    assert "did not answer" in str(e.value)
    # A bound against hanging, not a timing: retry_for plus a generous margin.
    assert elapsed < 1.0 + 4.0, f"connect hung for {elapsed:.1f} s"
    assert counter > 1000, "the GIL was held during the connect"


class _NotEtcd:
    """A TCP server on 127.0.0.1 that is not etcd: it greets each connection with `banner`
    and answers each read with `reply`, on threads of its own. Stopped by `close`."""

    def __init__(self, banner: bytes, reply: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.banner, self.reply = banner, reply
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        try:
            c.sendall(self.banner)
            while c.recv(4096):
                if self.reply:
                    c.sendall(self.reply)
        except OSError:
            pass

    def close(self) -> None:
        # shutdown wakes the threads blocked in accept/recv (close alone does not on Linux).
        for s in [self.sock, *self.conns]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.mark.parametrize(
    "banner, reply",
    [
        (b"", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", b""),
    ],
    ids=["http1", "ssh-banner"],
)
def test_protocol_error_when_the_endpoint_is_not_etcd(banner: bytes, reply: bytes) -> None:
    """Something answers on the endpoint, but not in etcd's gRPC: `ProtocolError` naming the
    endpoint at the first answer, not a `Timeout` after retrying for a minute."""
    server = _NotEtcd(banner, reply)
    start = time.monotonic()
    try:
        with pytest.raises(underlay.ProtocolError) as e:
            underlay.EtcdStore.connect(
                server.url, request_timeout=0.5, connect_timeout=0.3, retry_for=60.0
            )
    finally:
        server.close()
    elapsed = time.monotonic() - start
    assert server.url in str(e.value), str(e.value)
    assert "does not speak etcd's protocol" in str(e.value)
    assert e.value.errno is None
    # Not a timing: only that it did not retry until the deadline.
    assert elapsed < 30.0, f"retried for {elapsed:.1f} s"
