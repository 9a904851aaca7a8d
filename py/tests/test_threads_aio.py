"""The GIL is released during kernel calls; the asyncio API; many threads at once."""

from __future__ import annotations

import asyncio
import threading
import time

import underlay
import underlay.aio as aio
from conftest import needs_root, spinning, unique


@needs_root
def test_gil_released_during_kernel_call(netns: underlay.Netns) -> None:
    """Another Python thread makes progress while one waits 1 s in a ping without reply."""
    h = netns.handle()
    underlay.Veth.create(h, "g0", "g1", up=True, peer_up=True)
    h.add_address("g0", "192.0.2.1/24")
    with spinning() as spinner:
        time.sleep(0.05)
        before = spinner.count
        start = time.monotonic()
        # An address on a link nobody answers on: the echo waits its full second.
        assert netns.ping("192.0.2.9", timeout=1.0) is None
        elapsed = time.monotonic() - start
        during = spinner.count - before
    assert elapsed >= 0.5
    assert during > 1000, f"the other thread only counted {during} during {elapsed:.2f} s"


@needs_root
def test_many_threads_share_a_handle(handle: underlay.Handle) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            underlay.Veth.create(handle, f"t{i}a", f"t{i}b", up=True)
            assert handle.link(f"t{i}b").parent == handle.link_index(f"t{i}a")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len([link for link in handle.links() if link.kind == "veth"]) == 32


def test_aio_ipam() -> None:
    async def main() -> None:
        ipam = await aio.Ipam.in_memory("n", [underlay.Pool("10.5.0.0/24")])
        leases = await asyncio.gather(*(ipam.allocate(f"c{i}") for i in range(20)))
        assert len({lease.ips[0] for lease in leases}) == 20
        assert len(await ipam.list()) == 20
        assert (await ipam.lookup("c3")) is not None
        assert (await ipam.release("c3")) is not None
        assert (await ipam.release("c3")) is None
        assert len(await ipam.gc([("c1", "eth0")])) == 18
        assert ipam.name == "n" and ipam.pools[0].capacity == 253

    asyncio.run(main())


@needs_root
def test_aio_kernel(tmpdir_path: str) -> None:
    name = unique("aio")

    async def main() -> None:
        ns = await aio.create_netns(name)
        try:
            assert (await aio.open_netns(name)) == ns
            h = await aio.Handle.open(ns)
            assert h.netns == ns and "aio.Handle" in repr(h)
            await asyncio.gather(*(aio.Veth.create(h, f"a{i}", f"b{i}", up=True, peer_up=True) for i in range(8)))
            assert len(await h.links()) == 17
            await aio.Bridge.create(h, "br0", up=True)
            await h.set_link("a0", master="br0")
            assert (await h.link("a0")).master == await h.link_index("br0")
            await h.add_address("a1", "10.8.0.1/24")
            await h.replace_address("a1", "10.8.0.2/24")
            assert len([a for a in await h.addresses("a1") if a.address.version == 4]) == 2
            await h.delete_address("a1", "10.8.0.2/24")
            await h.add_route(underlay.Route("10.9.0.0/16", gateway="10.8.0.254"))
            await h.replace_route(underlay.Route("10.9.0.0/16", gateway="10.8.0.253"))
            assert any(r.gateway is not None for r in await h.routes())
            await h.delete_route(underlay.Route("10.9.0.0/16", gateway="10.8.0.253"))
            m = await aio.Macvlan.create(h, "mv0", "b2", underlay.MacvlanMode.BRIDGE, up=True)
            assert m.kind == "macvlan"
            await h.delete_link("mv0")
            await h.set_link("a3", group=9)
            await h.delete_link_group(9)
            assert len(await h.links()) == 16
            try:
                await aio.Vlan.create(h, "a4", 10)
            except underlay.KernelUnsupported as e:
                assert "modprobe 8021q" in str(e)
            for kind in (aio.Ipvlan, aio.Dummy, aio.Vxlan):
                assert kind._sync.create.__doc__
            ons, inner = await aio.Handle.create_netns()
            assert ons.name is None and (await inner.links())[0].name == "lo"

            nets = await aio.Networks.open(h, tmpdir_path)
            net = await nets.create("n1", parent="a5", pools=[underlay.Pool("10.50.0.0/24")])
            assert net.name == "n1" and net.pools[0].capacity > 0
            cns = underlay.Netns.anonymous()
            ep = await net.connect(cns, "ctr1", ip="10.50.0.10")
            assert str(ep.addresses[0]) == "10.50.0.10/24"
            assert len(await net.endpoints()) == 1 and await net.endpoint("ctr1") is not None
            shim = await net.enable_host_access(name="shim0")
            assert shim == "shim0"
            assert not await net.disable_host_access_if_unused(), "ctr1 uses the network"
            assert (await nets.get("n1")).sync.host_access == "shim0"
            await net.disconnect("ctr1")
            assert await net.disable_host_access_if_unused()
            assert (await nets.get("n1")).sync.host_access is None
            assert [n.name for n in await nets.list()] == ["n1"]
            assert (await nets.get("n1")).name == "n1"
            await nets.delete("n1")
            d = await nets.create_docker("d1", "macvlan", {"parent": "a6"}, pools=[underlay.Pool("10.51.0.0/24")])
            assert d.name == "d1"
            assert (await nets.reconcile()).removed_links == []
            await nets.delete("d1")

            ipam = await aio.Ipam.create(tmpdir_path + "/x", "n", [underlay.Pool("10.6.0.0/24")])
            await ipam.allocate("c", ips=["10.6.0.7"])
            assert (await aio.Ipam.open(tmpdir_path + "/x", "n")).name == "n"
            assert (await aio.Ipam.open_or_create(tmpdir_path + "/x", "n", [underlay.Pool("10.6.0.0/24")])).name == "n"
            await ipam.release("c")
            await aio.Ipam.delete(tmpdir_path + "/x", "n")
            await h.set_link("lo", up=True)
            assert await aio.ping(ns, "127.0.0.1") is not None
        finally:
            await aio.delete_netns(name)

    asyncio.run(main())
    assert name not in underlay.Netns.list()
