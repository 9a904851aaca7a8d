"""The asyncio API of underlay: the same calls as the sync API, as coroutines.

Each coroutine runs the corresponding sync call (which releases the GIL for its whole kernel
call) in the running loop's default executor (``loop.run_in_executor(None, ...)``), so the
event loop never blocks and many calls run at once, bounded by the executor's threads (set
your own with ``loop.set_default_executor``). Both APIs share one tokio runtime and one
netlink socket per handle inside the native module.

Values (``Link``, ``Route``, ``Pool``, ``Lease``, ``Record``, ``Endpoint``, ``Netns``) are the
sync module's classes; the classes here wrap the ones that talk to the kernel or the IPAM store.

>>> import asyncio, underlay.aio as aio
>>> async def main() -> None:                              # doctest: +SKIP
...     ns, h = await aio.Handle.create_netns()
...     await aio.Veth.create(h, "a0", "b0", up=True, peer_up=True)
...     print([link.name for link in await h.links()])
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
from typing import Any, Callable, Mapping, Sequence, TypeVar, Union

from . import _underlay
from ._underlay import (
    Address,
    Attached,
    ConflictDetection,
    DhcpConfig,
    DhcpLease,
    DhcpRenewal,
    Endpoint,
    ForeignLease,
    Hold,
    EndpointConflict,
    GoneEndpoint,
    Lease,
    Link,
    Netns,
    Pool,
    Quarantine,
    ReconcileReport,
    Record,
    Route,
)

__all__ = [
    "Handle",
    "EtcdStore",
    "Ipam",
    "Networks",
    "Network",
    "ConflictWatch",
    "Vlan",
    "Macvlan",
    "Ipvlan",
    "Vxlan",
    "Veth",
    "Bridge",
    "Dummy",
    "create_netns",
    "open_netns",
    "delete_netns",
    "delete_netns_many",
    "ping",
    "announce",
]

T = TypeVar("T")
IpLike = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]
IfaceLike = Union[str, ipaddress.IPv4Interface, ipaddress.IPv6Interface]
LinkLike = Union[str, int, Link]
_List = list
PathLike = Union[str, "os.PathLike[str]"]


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


def _sync(h: Any) -> Any:
    return h.sync if isinstance(h, (Handle, Network, Networks, Ipam, EtcdStore)) else h


def _unwrap(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: _sync(v) for k, v in kwargs.items()}


async def create_netns(name: str) -> Netns:
    """Creates a named namespace (``Netns.create``)."""
    return await _run(_underlay.Netns.create, name)


async def open_netns(name: str) -> Netns:
    """Opens a named namespace (``Netns.open``)."""
    return await _run(_underlay.Netns.open, name)


async def delete_netns(name: str) -> None:
    """Deletes a named namespace (``Netns.delete``)."""
    await _run(_underlay.Netns.delete, name)


async def delete_netns_many(names: Sequence[str]) -> None:
    """Deletes many named namespaces in one go (``Netns.delete_many``)."""
    await _run(_underlay.Netns.delete_many, list(names))


async def ping(netns: Netns, dst: IpLike, timeout: float = 1.0) -> float | None:
    """One ICMP echo from inside ``netns`` (``Netns.ping``): the round-trip time in seconds,
    or None when no reply came within ``timeout`` seconds."""
    return await _run(netns.ping, dst, timeout)


async def announce(netns: Netns, link: int | Link, mac: str, ips: Sequence[IpLike]) -> None:
    """Gratuitous ARP / unsolicited NA for ``ips`` on ``link`` inside ``netns``
    (``Netns.announce``)."""
    await _run(netns.announce, link, mac, list(ips))


class Handle:
    """A netlink handle bound to one namespace (the async face of ``underlay.Handle``)."""

    def __init__(self, sync: _underlay.Handle) -> None:
        """Wraps a sync handle (they share the socket)."""
        self.sync = sync

    @staticmethod
    async def open(netns: Netns | None = None) -> Handle:
        """A handle in ``netns``, or in the calling thread's namespace."""
        return Handle(await _run(_underlay.Handle, netns))

    @staticmethod
    async def create_netns(name: str | None = None) -> tuple[Netns, Handle]:
        """A new namespace (named, or anonymous) and a handle inside it."""
        ns, h = await _run(_underlay.Handle.create_netns, name)
        return ns, Handle(h)

    @property
    def netns(self) -> Netns:
        """The namespace this handle works in."""
        return self.sync.netns

    async def links(self) -> _List[Link]:
        """All links."""
        return await _run(self.sync.links)

    async def link(self, link: LinkLike) -> Link:
        """One link; raises ``NotFound``."""
        return await _run(self.sync.link, link)

    async def link_index(self, link: LinkLike) -> int:
        """A link's index."""
        return await _run(self.sync.link_index, link)

    async def delete_link(self, link: LinkLike) -> None:
        """Deletes a link."""
        await _run(self.sync.delete_link, link)

    async def delete_link_group(self, group: int) -> None:
        """Deletes every link of a link group."""
        await _run(self.sync.delete_link_group, group)

    async def set_link(self, link: LinkLike, **changes: Any) -> None:
        """Changes a link (keywords as ``underlay.Handle.set_link``)."""
        await _run(self.sync.set_link, link, **changes)

    async def addresses(self, link: LinkLike | None = None) -> _List[Address]:
        """The addresses of one link, or of all."""
        return await _run(self.sync.addresses, link)

    async def add_address(
        self, link: LinkLike, address: IfaceLike, *, nodad: bool = False, noprefixroute: bool = False
    ) -> None:
        """Adds an address to a link."""
        await _run(self.sync.add_address, link, address, nodad=nodad, noprefixroute=noprefixroute)

    async def replace_address(self, link: LinkLike, address: IfaceLike) -> None:
        """Adds or replaces an address."""
        await _run(self.sync.replace_address, link, address)

    async def delete_address(self, link: LinkLike, address: IfaceLike) -> None:
        """Removes an address."""
        await _run(self.sync.delete_address, link, address)

    async def routes(self, table: int | None = None) -> _List[Route]:
        """The unicast routes of a table: main (254) when None, every table with 0."""
        return await _run(self.sync.routes, table)

    async def add_route(self, route: Route) -> None:
        """Adds a route."""
        await _run(self.sync.add_route, route)

    async def replace_route(self, route: Route) -> None:
        """Adds or replaces a route."""
        await _run(self.sync.replace_route, route)

    async def delete_route(self, route: Route) -> None:
        """Deletes a route."""
        await _run(self.sync.delete_route, route)

    def __repr__(self) -> str:
        return f"<aio.Handle {self.sync!r}>"


class _Kind:
    _sync: Any

    @classmethod
    async def create(cls, handle: Handle | _underlay.Handle, *args: Any, **kwargs: Any) -> Link:
        """Creates the link (arguments as the sync class's ``create``)."""
        return await _run(cls._sync.create, _sync(handle), *args, **_unwrap(kwargs))


class _Attachable(_Kind):
    @classmethod
    async def attach_to_netns(
        cls, handle: Handle | _underlay.Handle, link: LinkLike, netns: Netns, **kwargs: Any
    ) -> Attached:
        """Moves an existing link into ``netns`` and configures it there, all or nothing
        (keywords as the sync class's ``attach_to_netns``)."""
        return await _run(cls._sync.attach_to_netns, _sync(handle), link, netns, **_unwrap(kwargs))


class Vlan(_Attachable):
    """``underlay.Vlan``, async."""

    _sync = _underlay.Vlan

    @staticmethod
    async def set_qos(handle: Handle | _underlay.Handle, link: LinkLike, **kwargs: Any) -> None:
        """Changes the QoS maps of an existing VLAN (keywords as ``underlay.Vlan.set_qos``)."""
        await _run(_underlay.Vlan.set_qos, _sync(handle), link, **kwargs)


class Macvlan(_Attachable):
    """``underlay.Macvlan``, async."""

    _sync = _underlay.Macvlan


class Ipvlan(_Attachable):
    """``underlay.Ipvlan``, async."""

    _sync = _underlay.Ipvlan


class Vxlan(_Kind):
    """``underlay.Vxlan``, async."""

    _sync = _underlay.Vxlan


class Veth(_Attachable):
    """``underlay.Veth``, async."""

    _sync = _underlay.Veth


class Bridge(_Kind):
    """``underlay.Bridge``, async."""

    _sync = _underlay.Bridge


class Dummy(_Kind):
    """``underlay.Dummy``, async."""

    _sync = _underlay.Dummy


class EtcdStore:
    """Leases on etcd, shared by every host of a cluster (the async face of
    ``underlay.EtcdStore``). Give it to ``Ipam.create/open/open_or_create/delete`` in place of a
    directory, or to ``Networks.open(..., store=)``."""

    DEFAULT_PREFIX = _underlay.EtcdStore.DEFAULT_PREFIX

    def __init__(self, sync: _underlay.EtcdStore) -> None:
        """Wraps a sync store (they share the connection)."""
        self.sync = sync

    @staticmethod
    async def connect(
        endpoints: str | Sequence[str],
        *,
        prefix: str | None = None,
        host: str | None = None,
        request_timeout: float | None = None,
        connect_timeout: float | None = None,
        retry_for: float | None = None,
        user: str | None = None,
        password: str | None = None,
        ca: PathLike | None = None,
        client_cert: PathLike | None = None,
        client_key: PathLike | None = None,
        tls_domain: str | None = None,
        max_txn_ops: int | None = None,
        host_lease: float | None = None,
        slices: int | None = None,
    ) -> EtcdStore:
        """Connects and checks that etcd answers (keywords as ``underlay.EtcdStore.connect``)."""
        return EtcdStore(
            await _run(
                _underlay.EtcdStore.connect,
                endpoints if isinstance(endpoints, str) else list(endpoints),
                prefix=prefix,
                host=host,
                request_timeout=request_timeout,
                connect_timeout=connect_timeout,
                retry_for=retry_for,
                user=user,
                password=password,
                ca=ca,
                client_cert=client_cert,
                client_key=client_key,
                tls_domain=tls_domain,
                max_txn_ops=max_txn_ops,
                host_lease=host_lease,
                slices=slices,
            )
        )

    @property
    def host(self) -> str:
        """The host name stamped on this store's claims."""
        return self.sync.host

    @property
    def endpoints(self) -> _List[str]:
        """The endpoints, as given."""
        return self.sync.endpoints

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self.sync.prefix

    @property
    def host_lease_ttl(self) -> float | None:
        """The TTL in seconds of the lease this host's claims carry, or None."""
        return self.sync.host_lease_ttl

    async def networks(self) -> dict[str, _List[Pool]]:
        """The networks defined in the store: name -> pools."""
        return await _run(self.sync.networks)

    async def addresses_by_host(self, name: str) -> dict[str, _List[Record]]:
        """Every leased address of network ``name``, grouped by the host that claimed it."""
        return await _run(self.sync.addresses_by_host, name)

    async def gc_host(self, name: str, host: str, valid: Sequence[tuple[str, str]]) -> _List[Record]:
        """Releases the addresses claimed by ``host`` whose owner is not in ``valid``."""
        return await _run(self.sync.gc_host, name, host, list(valid))

    def __repr__(self) -> str:
        return f"<aio.EtcdStore {self.sync!r}>"


StoreLike = Union[str, "os.PathLike[str]", EtcdStore, _underlay.EtcdStore]


class Ipam:
    """An address allocator (the async face of ``underlay.Ipam``)."""

    def __init__(self, sync: _underlay.Ipam) -> None:
        """Wraps a sync IPAM."""
        self.sync = sync

    @staticmethod
    async def in_memory(name: str, pools: Sequence[Pool]) -> Ipam:
        """Leases in memory only."""
        return Ipam(await _run(_underlay.Ipam.in_memory, name, list(pools)))

    @staticmethod
    async def create(path: StoreLike, name: str, pools: Sequence[Pool], *, layout: str = "local") -> Ipam:
        """Creates network ``name`` in the store at ``path`` (a directory, or an ``EtcdStore``)."""
        return Ipam(await _run(_underlay.Ipam.create, _sync(path), name, list(pools), layout=layout))

    @staticmethod
    async def open(path: StoreLike, name: str, *, layout: str = "local") -> Ipam:
        """Opens network ``name`` in the store at ``path`` (a directory, or an ``EtcdStore``)."""
        return Ipam(await _run(_underlay.Ipam.open, _sync(path), name, layout=layout))

    @staticmethod
    async def open_or_create(
        path: StoreLike, name: str, pools: Sequence[Pool], *, layout: str = "local"
    ) -> Ipam:
        """Opens network ``name`` at ``path``, creating it if missing."""
        return Ipam(
            await _run(_underlay.Ipam.open_or_create, _sync(path), name, list(pools), layout=layout)
        )

    @staticmethod
    async def delete(path: StoreLike, name: str, *, layout: str = "local") -> None:
        """Deletes network ``name`` (raises ``Busy`` while it holds leases)."""
        await _run(_underlay.Ipam.delete, _sync(path), name, layout=layout)

    @property
    def name(self) -> str:
        """The network's name."""
        return self.sync.name

    @property
    def pools(self) -> _List[Pool]:
        """The network's pools."""
        return self.sync.pools

    async def allocate(
        self, container_id: str, ifname: str = "eth0", *, ips: Sequence[IpLike] | None = None
    ) -> Lease:
        """Allocates one address per pool to the owner."""
        return await _run(self.sync.allocate, container_id, ifname, ips=None if ips is None else list(ips))

    async def release(self, container_id: str, ifname: str = "eth0") -> Lease | None:
        """Releases the owner's lease."""
        return await _run(self.sync.release, container_id, ifname)

    async def lookup(self, container_id: str, ifname: str = "eth0") -> Lease | None:
        """The owner's lease, or None."""
        return await _run(self.sync.lookup, container_id, ifname)

    async def list(self) -> _List[Lease]:
        """Every lease."""
        return await _run(self.sync.list)

    async def foreign_leases(self) -> _List[ForeignLease]:
        """The leases another tool left that underlay cannot take as its own."""
        return await _run(self.sync.foreign_leases)

    async def gc(self, valid: Sequence[tuple[str, str]]) -> _List[Lease]:
        """Releases every lease whose owner is not in ``valid``."""
        return await _run(self.sync.gc, list(valid))

    async def quarantine(
        self, container_id: str, ifname: str = "eth0", *, found: Sequence[Quarantine]
    ) -> _List[Quarantine]:
        """Releases the owner's lease and quarantines ``found`` in one commit."""
        return await _run(self.sync.quarantine, container_id, ifname, found=list(found))

    async def hold(
        self, container_id: str, ifname: str = "eth0", *, ip: IpLike, holder: str
    ) -> Hold:
        """Reserves ``ip`` for the owner on behalf of ``holder`` (a shared reservation)."""
        return await _run(self.sync.hold, container_id, ifname, ip=ip, holder=holder)

    async def unhold(
        self, container_id: str, ifname: str = "eth0", *, holder: str
    ) -> tuple[bool, _List[str]]:
        """Drops ``holder``'s hold: ``(released, remaining holders)``."""
        return await _run(self.sync.unhold, container_id, ifname, holder=holder)

    async def holds(self) -> _List[Hold]:
        """The shared reservations with their holders."""
        return await _run(self.sync.holds)

    async def quarantined(self) -> _List[Quarantine]:
        """The quarantined addresses."""
        return await _run(self.sync.quarantined)

    @property
    def boot_id(self) -> str | None:
        """The boot id new leases are stamped with, or None."""
        return self.sync.boot_id

    def set_boot_id(self, boot_id: str | None) -> None:
        """Stamps new leases with ``boot_id`` (no I/O: not a coroutine)."""
        self.sync.set_boot_id(boot_id)

    async def stale(self) -> _List[Lease]:
        """Leases stamped with another boot id."""
        return await _run(self.sync.stale)

    async def release_stale(self) -> _List[Lease]:
        """Releases the stale leases; returns them."""
        return await _run(self.sync.release_stale)


class Network:
    """One network (the async face of ``underlay.Network``)."""

    def __init__(self, sync: _underlay.Network) -> None:
        """Wraps a sync network."""
        self.sync = sync

    @property
    def name(self) -> str:
        """The network's name."""
        return self.sync.name

    @property
    def pools(self) -> _List[Pool]:
        """Address pools."""
        return self.sync.pools

    def differences(self, **kwargs: Any) -> _List[str]:
        """How a definition differs from this network's (no I/O: not a coroutine; keywords
        as ``underlay.Network.differences``)."""
        return self.sync.differences(**kwargs)

    async def connect(self, netns: Netns, container_id: str, **kwargs: Any) -> Endpoint:
        """Connects a container (keywords as ``underlay.Network.connect``)."""
        return await _run(self.sync.connect, netns, container_id, **_unwrap(kwargs))

    async def disconnect(self, container_id: str, ifname: str = "eth0") -> None:
        """Disconnects a container."""
        await _run(self.sync.disconnect, container_id, ifname)

    async def disconnect_for_netns_deletion(self, container_id: str, ifname: str = "eth0") -> None:
        """Disconnects but leaves the link for the namespace's deletion."""
        await _run(self.sync.disconnect_for_netns_deletion, container_id, ifname)

    async def gc(self, valid: Sequence[tuple[str, str]]) -> _List[GoneEndpoint]:
        """Releases every endpoint and lease not in ``valid`` (CNI GC)."""
        return await _run(self.sync.gc, valid)

    def export(self, format: str) -> _List[tuple[str, str]]:
        """The VLAN parent for ifupdown, ifcfg or networkd (no I/O: not a coroutine)."""
        return self.sync.export(format)

    async def endpoint(self, container_id: str, ifname: str = "eth0") -> Endpoint | None:
        """An endpoint, or None."""
        return await _run(self.sync.endpoint, container_id, ifname)

    async def endpoints(self) -> _List[Endpoint]:
        """Every endpoint."""
        return await _run(self.sync.endpoints)

    @property
    def conflict_detection(self) -> ConflictDetection | None:
        """The network's conflict detection, or None."""
        return self.sync.conflict_detection

    async def watch_conflicts(self) -> ConflictWatch:
        """Starts watching the parent for address conflicts after connect."""
        return ConflictWatch(await _run(self.sync.watch_conflicts))

    @property
    def dhcp(self) -> DhcpConfig | None:
        """The network's DHCP setting, or None (pools)."""
        return self.sync.dhcp

    async def renew_dhcp(self, container_id: str, ifname: str = "eth0") -> DhcpLease:
        """Renews (or rebinds, or asks again for) an endpoint's DHCP lease."""
        return await _run(self.sync.renew_dhcp, container_id, ifname)

    async def renew_due_dhcp(self) -> _List[DhcpRenewal]:
        """The renewer's tick: renews every endpoint whose lease is due or lost."""
        return await _run(self.sync.renew_due_dhcp)

    async def enable_host_access(self, **kwargs: Any) -> str:
        """Host access through a shim (keywords as the sync method); returns its name."""
        return await _run(self.sync.enable_host_access, **kwargs)

    async def disable_host_access(self) -> None:
        """Removes the shim."""
        await _run(self.sync.disable_host_access)

    async def disable_host_access_if_unused(self) -> bool:
        """Removes the shim if the network has no endpoint; whether it did."""
        return await _run(self.sync.disable_host_access_if_unused)


class ConflictWatch:
    """Address conflicts after connect (the async face of ``underlay.ConflictWatch``)."""

    def __init__(self, sync: _underlay.ConflictWatch) -> None:
        """Wraps a sync watch."""
        self.sync = sync

    async def next(self, timeout: float = 1.0) -> EndpointConflict | None:
        """The next conflict, or None after ``timeout`` seconds."""
        return await _run(self.sync.next, timeout)


class Networks:
    """The networks of one host (the async face of ``underlay.Networks``)."""

    def __init__(self, sync: _underlay.Networks) -> None:
        """Wraps a sync ``Networks``."""
        self.sync = sync

    @staticmethod
    async def open(
        handle: Handle | _underlay.Handle,
        root: str | os.PathLike[str],
        *,
        ipam_path: str | os.PathLike[str] | None = None,
        layout: str = "local",
        store: EtcdStore | _underlay.EtcdStore | None = None,
    ) -> Networks:
        """Opens (creating if needed) the state under ``root`` (IPAM store at ``ipam_path``
        in ``layout`` when given, or in etcd with ``store``)."""
        return Networks(
            await _run(
                _underlay.Networks,
                _sync(handle),
                root,
                ipam_path=ipam_path,
                layout=layout,
                store=_sync(store),
            )
        )

    async def create(self, name: str, **kwargs: Any) -> Network:
        """Creates a network (keywords as ``underlay.Networks.create``)."""
        return Network(await _run(self.sync.create, name, **kwargs))

    async def create_or_open(self, name: str, **kwargs: Any) -> Network:
        """Creates a network or opens the one defined so (keywords as
        ``underlay.Networks.create_or_open``)."""
        return Network(await _run(self.sync.create_or_open, name, **kwargs))

    async def create_docker(
        self, name: str, driver: str, options: Mapping[str, str], *, pools: Sequence[Pool] | None = None
    ) -> Network:
        """Creates a network from Docker's words."""
        return Network(
            await _run(self.sync.create_docker, name, driver, dict(options),
                       pools=None if pools is None else list(pools))
        )

    async def get(self, name: str) -> Network:
        """A network by name."""
        return Network(await _run(self.sync.get, name))

    async def list(self) -> _List[Network]:
        """Every network."""
        return [Network(n) for n in await _run(self.sync.list)]

    async def delete(self, name: str) -> None:
        """Deletes a network."""
        await _run(self.sync.delete, name)

    async def delete_if_unused(self, name: str) -> bool:
        """Deletes a network if nothing uses it; whether it did."""
        return await _run(self.sync.delete_if_unused, name)

    async def reconcile(self) -> ReconcileReport:
        """Recovery after a reboot or crash."""
        return await _run(self.sync.reconcile)

    async def renew_due_dhcp(self) -> _List[DhcpRenewal]:
        """The renewer's tick over every DHCP network of the state directory."""
        return await _run(self.sync.renew_due_dhcp)

    async def next_dhcp_renewal(self) -> float | None:
        """When the next DHCP renewal is due (``time.time()`` scale), or None."""
        return await _run(self.sync.next_dhcp_renewal)
