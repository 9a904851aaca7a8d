"""The native module of underlay (PyO3). Import from ``underlay``, not from here."""

import ipaddress
import os
from types import TracebackType
from typing import ClassVar, Literal, Mapping, Sequence, Union, final

from typing_extensions import Self

_Ip = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
_Iface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
_Net = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_IpLike = Union[str, _Ip]
_IfaceLike = Union[str, _Iface, _Net]
_LinkLike = Union[str, int, Link]
_Path = Union[str, os.PathLike[str]]
_Store = Union[str, os.PathLike[str], EtcdStore]
_List = list

VERSION: str
ENDPOINT_GROUP: int
DEFAULT_ROOT: str

class UnderlayError(OSError):
    """Base of every underlay error (``errno`` is the kernel's, or None)."""

    kind: ClassVar[str | None]
    code: ClassVar[int | None]

class InvalidArgument(UnderlayError):
    """A value given is malformed or out of range."""

class NotFound(UnderlayError):
    """The named object does not exist."""

class AlreadyExists(UnderlayError):
    """The name, address or object is already taken."""

class PermissionDenied(UnderlayError):
    """The caller lacks the privilege or file permission."""

class KernelUnsupported(UnderlayError):
    """The running kernel lacks the link kind or feature."""

class Conflict(UnderlayError):
    """The request conflicts with the current state."""

class Busy(UnderlayError):
    """The object is busy."""

class PoolExhausted(UnderlayError):
    """An address pool has no free address left."""

class Overlap(UnderlayError):
    """A pool or subnet overlaps another one."""

class Corrupt(UnderlayError):
    """A stored file or record is unreadable or inconsistent."""

class IoError(UnderlayError):
    """An I/O error outside netlink."""

class KernelError(UnderlayError):
    """The kernel refused the request for another reason."""

class ProtocolError(UnderlayError):
    """A netlink reply (or an etcd endpoint's answer) could not be understood."""

class Timeout(UnderlayError):
    """A deadline passed (nothing reachable in time, e.g. no etcd member)."""

class MultipleErrors(UnderlayError):
    """Several independent steps failed."""

    errors: _List[UnderlayError]

def error_classes() -> _List[tuple[int, str, type[UnderlayError]]]:
    """Every error kind: (code, kind name, exception class), in code order."""

@final
class Netns:
    """A network namespace."""

    @staticmethod
    def create(name: str) -> Netns: ...
    @staticmethod
    def anonymous() -> Netns: ...
    @staticmethod
    def open(name: str) -> Netns: ...
    @staticmethod
    def open_path(path: _Path) -> Netns: ...
    @staticmethod
    def open_pid(pid: int) -> Netns: ...
    @staticmethod
    def current() -> Netns: ...
    @staticmethod
    def delete(name: str) -> None: ...
    @staticmethod
    def delete_many(names: Sequence[str]) -> None: ...
    @staticmethod
    def list() -> _List[str]: ...
    @property
    def name(self) -> str | None: ...
    @property
    def label(self) -> str: ...
    @property
    def inode(self) -> int: ...
    @property
    def path(self) -> str | None: ...
    def handle(self) -> Handle: ...
    def sysctl(self, key: str) -> str: ...
    def set_sysctl(self, key: str, value: str) -> None: ...
    def set_forwarding(self, v4: bool, v6: bool = False) -> None: ...
    def ping(self, dst: _IpLike, timeout: float = 1.0) -> float | None: ...
    def announce(self, link: int | Link, mac: str, ips: Sequence[_IpLike]) -> None: ...
    def set_arp_ignore(self, iface: str, value: int) -> None: ...
    def set_arp_announce(self, iface: str, value: int) -> None: ...
    def set_accept_dad(self, iface: str, value: int) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Handle:
    """A netlink connection bound to one network namespace."""

    def __new__(cls, netns: Netns | None = None) -> Handle: ...
    @staticmethod
    def create_netns(name: str | None = None) -> tuple[Netns, Handle]: ...
    @property
    def netns(self) -> Netns: ...
    def links(self) -> _List[Link]: ...
    def link(self, link: _LinkLike) -> Link: ...
    def link_index(self, link: _LinkLike) -> int: ...
    def delete_link(self, link: _LinkLike) -> None: ...
    def delete_link_group(self, group: int) -> None: ...
    def set_link(
        self,
        link: _LinkLike,
        *,
        up: bool | None = None,
        promisc: bool | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        name: str | None = None,
        alias: str | None = None,
        group: int | None = None,
        master: _LinkLike | None = None,
        nomaster: bool = False,
        netns: Netns | None = None,
    ) -> None: ...
    def addresses(self, link: _LinkLike | None = None) -> _List[Address]: ...
    def add_address(
        self, link: _LinkLike, address: _IfaceLike, *, nodad: bool = False, noprefixroute: bool = False
    ) -> None: ...
    def replace_address(self, link: _LinkLike, address: _IfaceLike) -> None: ...
    def delete_address(self, link: _LinkLike, address: _IfaceLike) -> None: ...
    def routes(self, table: int | None = None) -> _List[Route]: ...
    def add_route(self, route: Route) -> None: ...
    def replace_route(self, route: Route) -> None: ...
    def delete_route(self, route: Route) -> None: ...

@final
class Link:
    """A link as the kernel reports it."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def mac(self) -> str | None: ...
    @property
    def mtu(self) -> int: ...
    @property
    def up(self) -> bool: ...
    @property
    def running(self) -> bool: ...
    @property
    def promisc(self) -> bool: ...
    @property
    def oper_state(self) -> str: ...
    @property
    def parent(self) -> int | None: ...
    @property
    def parent_netns_id(self) -> int | None: ...
    @property
    def master(self) -> int | None: ...
    @property
    def alias(self) -> str | None: ...
    @property
    def group(self) -> int: ...
    @property
    def netns(self) -> str: ...
    @property
    def vlan_id(self) -> int | None: ...
    @property
    def vni(self) -> int | None: ...
    @property
    def vlan_protocol(self) -> VlanProtocol | None: ...
    @property
    def vlan_flags(self) -> VlanFlags | None: ...
    @property
    def vlan_ingress_qos(self) -> _List[tuple[int, int]] | None: ...
    @property
    def vlan_egress_qos(self) -> _List[tuple[int, int]] | None: ...
    @property
    def source_macs(self) -> _List[str] | None: ...
    @property
    def nopromisc(self) -> bool | None: ...
    @property
    def vxlan(self) -> VxlanInfo | None: ...
    @property
    def vlan_filtering(self) -> bool | None: ...
    @property
    def mode(self) -> MacvlanMode | IpvlanMode | None: ...
    @property
    def ipvlan_flag(self) -> IpvlanFlag | None: ...

@final
class VlanFlags:
    """The flags of a VLAN."""

    def __new__(
        cls, *, reorder_hdr: bool = True, gvrp: bool = False, mvrp: bool = False, loose_binding: bool = False
    ) -> VlanFlags: ...
    @property
    def reorder_hdr(self) -> bool: ...
    @property
    def gvrp(self) -> bool: ...
    @property
    def mvrp(self) -> bool: ...
    @property
    def loose_binding(self) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class VxlanInfo:
    """The settings of a VXLAN link as read back."""

    @property
    def vni(self) -> int: ...
    @property
    def local(self) -> _Ip | None: ...
    @property
    def remote(self) -> _Ip | None: ...
    @property
    def port(self) -> int: ...
    @property
    def device(self) -> int | None: ...
    @property
    def learning(self) -> bool: ...
    @property
    def ttl(self) -> int: ...
    @property
    def ttl_inherit(self) -> bool: ...

@final
class Attached:
    """What attach_to_netns set up."""

    @property
    def link(self) -> Link: ...
    @property
    def addresses(self) -> _List[_Iface]: ...
    @property
    def routes(self) -> _List[Route]: ...

@final
class Address:
    """An address on a link."""

    @property
    def index(self) -> int: ...
    @property
    def address(self) -> _Iface: ...
    @property
    def scope(self) -> str: ...
    @property
    def tentative(self) -> bool: ...
    @property
    def label(self) -> str | None: ...
    @property
    def nodad(self) -> bool: ...
    @property
    def noprefixroute(self) -> bool: ...
    @property
    def secondary(self) -> bool: ...
    @property
    def deprecated(self) -> bool: ...
    @property
    def dynamic(self) -> bool: ...
    @property
    def peer(self) -> _Ip | None: ...
    @property
    def broadcast(self) -> _Ip | None: ...

@final
class Route:
    """A route."""

    def __new__(
        cls,
        destination: _IfaceLike,
        *,
        gateway: _IpLike | None = None,
        dev: str | int | Link | None = None,
        source: _IpLike | None = None,
        metric: int | None = None,
        table: int = 254,
        onlink: bool = False,
        nexthops: Sequence[NextHop] | None = None,
    ) -> Route: ...
    @staticmethod
    def default_via(gateway: _IpLike, *, dev: str | int | Link | None = None) -> Route: ...
    @property
    def destination(self) -> _Net: ...
    @property
    def gateway(self) -> _Ip | None: ...
    @property
    def dev(self) -> str | int | None: ...
    @property
    def source(self) -> _Ip | None: ...
    @property
    def metric(self) -> int | None: ...
    @property
    def table(self) -> int: ...
    @property
    def onlink(self) -> bool: ...
    @property
    def nexthops(self) -> _List[NextHop]: ...
    @property
    def scope(self) -> str | None: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class NextHop:
    """One next hop of a multipath route."""

    def __new__(
        cls,
        gateway: _IpLike | None = None,
        dev: str | int | Link | None = None,
        weight: int = 1,
        onlink: bool = False,
    ) -> NextHop: ...
    @property
    def gateway(self) -> _Ip | None: ...
    @property
    def dev(self) -> str | int | None: ...
    @property
    def weight(self) -> int: ...
    @property
    def onlink(self) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Vlan:
    """An 802.1Q VLAN sub-interface."""

    @staticmethod
    def create(
        handle: Handle,
        parent: _LinkLike,
        vlan_id: int,
        *,
        protocol: str = "802.1Q",
        reorder_hdr: bool = True,
        gvrp: bool = False,
        mvrp: bool = False,
        loose_binding: bool = False,
        ingress_qos: Sequence[tuple[int, int]] | None = None,
        egress_qos: Sequence[tuple[int, int]] | None = None,
        name: str | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        up: bool = False,
        group: int | None = None,
        alias: str | None = None,
        master: _LinkLike | None = None,
        netns: Netns | None = None,
        target: Handle | None = None,
    ) -> Link: ...
    @staticmethod
    def set_qos(
        handle: Handle,
        link: _LinkLike,
        *,
        ingress_qos: Sequence[tuple[int, int]] | None = None,
        egress_qos: Sequence[tuple[int, int]] | None = None,
    ) -> None: ...
    @staticmethod
    def attach_to_netns(
        handle: Handle,
        link: _LinkLike,
        netns: Netns,
        *,
        name: str | None = None,
        addresses: Sequence[_IfaceLike] = ...,
        gateways: Sequence[_IpLike] = ...,
        routes: Sequence[Route] = ...,
        mtu: int | None = None,
        mac: str | None = None,
        nodad: bool = False,
        target: Handle | None = None,
    ) -> Attached: ...

@final
class Macvlan:
    """A macvlan (or macvtap) child."""

    MAX_SOURCE_MACS: ClassVar[int]

    @staticmethod
    def create(
        handle: Handle,
        name: str,
        parent: _LinkLike,
        mode: str = "bridge",
        *,
        tap: bool = False,
        source_macs: Sequence[str] | None = None,
        nopromisc: bool = False,
        mtu: int | None = None,
        mac: str | None = None,
        up: bool = False,
        group: int | None = None,
        alias: str | None = None,
        master: _LinkLike | None = None,
        netns: Netns | None = None,
        target: Handle | None = None,
    ) -> Link: ...
    @staticmethod
    def attach_to_netns(
        handle: Handle,
        link: _LinkLike,
        netns: Netns,
        *,
        name: str | None = None,
        addresses: Sequence[_IfaceLike] = ...,
        gateways: Sequence[_IpLike] = ...,
        routes: Sequence[Route] = ...,
        mtu: int | None = None,
        mac: str | None = None,
        nodad: bool = False,
        target: Handle | None = None,
    ) -> Attached: ...

@final
class Ipvlan:
    """An ipvlan child."""

    @staticmethod
    def create(
        handle: Handle,
        name: str,
        parent: _LinkLike,
        mode: str = "l2",
        *,
        flag: str = "bridge",
        mtu: int | None = None,
        mac: str | None = None,
        up: bool = False,
        group: int | None = None,
        alias: str | None = None,
        master: _LinkLike | None = None,
        netns: Netns | None = None,
        target: Handle | None = None,
    ) -> Link: ...
    @staticmethod
    def attach_to_netns(
        handle: Handle,
        link: _LinkLike,
        netns: Netns,
        *,
        name: str | None = None,
        addresses: Sequence[_IfaceLike] = ...,
        gateways: Sequence[_IpLike] = ...,
        routes: Sequence[Route] = ...,
        mtu: int | None = None,
        mac: str | None = None,
        nodad: bool = False,
        target: Handle | None = None,
    ) -> Attached: ...

@final
class Vxlan:
    """A VXLAN tunnel endpoint."""

    @staticmethod
    def create(
        handle: Handle,
        name: str,
        vni: int,
        *,
        local: _IpLike | None = None,
        remote: _IpLike | None = None,
        port: int = 4789,
        device: _LinkLike | None = None,
        learning: bool = True,
        ttl: int | None = None,
        ttl_inherit: bool = False,
        mtu: int | None = None,
        mac: str | None = None,
        up: bool = False,
        group: int | None = None,
        alias: str | None = None,
        master: _LinkLike | None = None,
        netns: Netns | None = None,
        target: Handle | None = None,
    ) -> Link: ...

@final
class Veth:
    """A veth pair."""

    @staticmethod
    def create(
        handle: Handle,
        name: str,
        peer: str,
        *,
        peer_netns: Netns | None = None,
        peer_up: bool = False,
        peer_mac: str | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        up: bool = False,
        group: int | None = None,
        alias: str | None = None,
        master: _LinkLike | None = None,
        netns: Netns | None = None,
        target: Handle | None = None,
    ) -> Link: ...
    @staticmethod
    def attach_to_netns(
        handle: Handle,
        link: _LinkLike,
        netns: Netns,
        *,
        name: str | None = None,
        addresses: Sequence[_IfaceLike] = ...,
        gateways: Sequence[_IpLike] = ...,
        routes: Sequence[Route] = ...,
        mtu: int | None = None,
        mac: str | None = None,
        nodad: bool = False,
        target: Handle | None = None,
    ) -> Attached: ...

@final
class Bridge:
    """A Linux bridge."""

    @staticmethod
    def create(
        handle: Handle,
        name: str,
        *,
        vlan_filtering: bool | None = None,
        mtu: int | None = None,
        mac: str | None = None,
        up: bool = False,
        group: int | None = None,
        alias: str | None = None,
        master: _LinkLike | None = None,
        netns: Netns | None = None,
        target: Handle | None = None,
    ) -> Link: ...

@final
class Dummy:
    """A dummy link."""

    @staticmethod
    def create(
        handle: Handle,
        name: str,
        *,
        mtu: int | None = None,
        mac: str | None = None,
        up: bool = False,
        group: int | None = None,
        alias: str | None = None,
        master: _LinkLike | None = None,
        netns: Netns | None = None,
        target: Handle | None = None,
    ) -> Link: ...

@final
class Pool:
    """An address pool."""

    def __new__(
        cls,
        subnet: _IfaceLike,
        *,
        gateway: _IpLike | None = None,
        no_gateway: bool = False,
        ranges: Sequence[str | _Net] | None = None,
        reserved: Mapping[str, _IpLike] | None = None,
    ) -> Pool: ...
    @staticmethod
    def parse(text: str) -> Pool: ...
    @property
    def subnet(self) -> _Net: ...
    @property
    def gateway(self) -> _Ip | None: ...
    @property
    def ranges(self) -> _List[str]: ...
    @property
    def reserved(self) -> _List[tuple[str, _Ip]]: ...
    @property
    def capacity(self) -> int: ...
    @property
    def is_ipv6(self) -> bool: ...
    def contains(self, ip: _IpLike) -> bool: ...
    def overlaps(self, other: Pool) -> bool: ...
    def then(self, next: Pool) -> Pool:
        """This pool followed by the segments of `next` (a host-local range set over several
        subnets): one address per owner, from `next` once this pool is full."""
    @property
    def segments(self) -> _List[Pool]:
        """The segments, each a pool of one subnet, in allocation order."""
    def gateway_of(self, ip: _IpLike) -> _Ip | None:
        """The gateway of the segment holding `ip`."""
    def __eq__(self, other: object, /) -> bool: ...

@final
class Lease:
    """The addresses one owner holds."""

    @property
    def container_id(self) -> str: ...
    @property
    def ifname(self) -> str: ...
    @property
    def addresses(self) -> _List[_Iface]: ...
    @property
    def gateways(self) -> _List[_Ip | None]: ...
    @property
    def ips(self) -> _List[_Ip]: ...
    @property
    def boot_id(self) -> str | None: ...
    @property
    def quarantine(self) -> Quarantine | None: ...

@final
class Quarantine:
    """An address found in use on the wire, held in the IPAM so that nobody is given it."""

    def __new__(cls, ip: _IpLike, mac: str | None = None, since: int | None = None) -> Quarantine: ...
    @property
    def ip(self) -> _Ip: ...
    @property
    def mac(self) -> str | None: ...
    @property
    def since(self) -> int: ...
    @property
    def owner(self) -> tuple[str, str]: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class ConflictDetection:
    """How a connect checks on the wire that an address is free before assigning it."""

    def __new__(
        cls, probes: int = 1, interval: float = 0.0, wait: float = 0.15
    ) -> ConflictDetection: ...
    @staticmethod
    def rfc5227() -> ConflictDetection: ...
    @property
    def probes(self) -> int: ...
    @property
    def interval(self) -> float: ...
    @property
    def wait(self) -> float: ...
    @property
    def total(self) -> float: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class DhcpConfig:
    """How a DHCP network's endpoints get their addresses (tries, first wait, subnet)."""

    def __new__(
        cls, tries: int = 4, first_wait: float = 1.0, subnet: str | None = None
    ) -> DhcpConfig: ...
    @property
    def tries(self) -> int: ...
    @property
    def first_wait(self) -> float: ...
    @property
    def total_wait(self) -> float: ...
    @property
    def subnet(self) -> str | None: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class DhcpLease:
    """A DHCP lease an endpoint holds; times in seconds, instants as ``time.time()``."""

    @property
    def address(self) -> ipaddress.IPv4Interface: ...
    @property
    def server(self) -> ipaddress.IPv4Address: ...
    @property
    def server_mac(self) -> str: ...
    @property
    def router(self) -> ipaddress.IPv4Address | None: ...
    @property
    def dns_servers(self) -> _List[ipaddress.IPv4Address]: ...
    @property
    def domain(self) -> str | None: ...
    @property
    def lease_time(self) -> float: ...
    @property
    def t1(self) -> float: ...
    @property
    def t2(self) -> float: ...
    @property
    def obtained(self) -> float: ...
    @property
    def is_infinite(self) -> bool: ...
    @property
    def expires(self) -> float | None: ...
    @property
    def renew_at(self) -> float | None: ...
    @property
    def rebind_at(self) -> float | None: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class DhcpRenewal:
    """One endpoint's renewal from ``Network.renew_due_dhcp`` or ``Networks.renew_due_dhcp``."""

    @property
    def network(self) -> str: ...
    @property
    def container_id(self) -> str: ...
    @property
    def ifname(self) -> str: ...
    @property
    def lease(self) -> DhcpLease | None: ...
    @property
    def error(self) -> UnderlayError | None: ...

@final
class ConflictWatch:
    """Watches a network's parent for address conflicts after connect."""

    def next(self, timeout: float = 1.0) -> EndpointConflict | None: ...

@final
class EndpointConflict:
    """Another machine using an endpoint's address."""

    @property
    def ip(self) -> _Ip: ...
    @property
    def mac(self) -> str | None: ...
    @property
    def container_id(self) -> str: ...
    @property
    def endpoint_mac(self) -> str | None: ...

@final
class Record:
    """One leased address of an etcd store's report."""

    @property
    def address(self) -> _Ip: ...
    @property
    def container_id(self) -> str: ...
    @property
    def ifname(self) -> str: ...
    @property
    def boot_id(self) -> str | None: ...

@final
class EtcdStore:
    """Leases on etcd, shared by every host of a cluster (``EtcdStore.connect``)."""

    DEFAULT_PREFIX: ClassVar[str]
    @staticmethod
    def connect(
        endpoints: str | Sequence[str],
        *,
        prefix: str | None = None,
        host: str | None = None,
        request_timeout: float | None = None,
        connect_timeout: float | None = None,
        retry_for: float | None = None,
        user: str | None = None,
        password: str | None = None,
        ca: _Path | None = None,
        client_cert: _Path | None = None,
        client_key: _Path | None = None,
        tls_domain: str | None = None,
        max_txn_ops: int | None = None,
        host_lease: float | None = None,
        slices: int | None = None,
    ) -> EtcdStore: ...
    @property
    def host(self) -> str: ...
    @property
    def endpoints(self) -> _List[str]: ...
    @property
    def prefix(self) -> str: ...
    @property
    def host_lease_ttl(self) -> float | None: ...
    def networks(self) -> dict[str, _List[Pool]]: ...
    def addresses_by_host(self, name: str) -> dict[str, _List[Record]]: ...
    def gc_host(self, name: str, host: str, valid: Sequence[tuple[str, str]]) -> _List[Record]: ...
    def members(self, name: str) -> _List[str]: ...
    def slices_by_host(self, name: str) -> dict[str, _List[tuple[_Ip, int]]]: ...
    def gc_slices(self, name: str, host: str) -> _List[_Ip]: ...

@final
class ForeignLease:
    """A lease another tool left that underlay cannot take as its own."""

    @property
    def address(self) -> _Ip: ...
    @property
    def location(self) -> str: ...
    @property
    def reason(self) -> str: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Hold:
    """A shared reservation: an address reserved for one owner, held by several holders."""

    @property
    def address(self) -> _Ip: ...
    @property
    def container_id(self) -> str: ...
    @property
    def ifname(self) -> str: ...
    @property
    def holders(self) -> _List[str]: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Ipam:
    """An address allocator over a store (a directory, or an ``EtcdStore``)."""

    @staticmethod
    def in_memory(name: str, pools: Sequence[Pool]) -> Ipam: ...
    @staticmethod
    def create(path: _Store, name: str, pools: Sequence[Pool], *, layout: str = "local") -> Ipam: ...
    @staticmethod
    def open(path: _Store, name: str, *, layout: str = "local") -> Ipam: ...
    @staticmethod
    def open_or_create(
        path: _Store, name: str, pools: Sequence[Pool], *, layout: str = "local"
    ) -> Ipam: ...
    @staticmethod
    def join(
        path: _Store, name: str, pools: Sequence[Pool], *, layout: str = "local"
    ) -> tuple[Ipam, bool]: ...
    @staticmethod
    def leave(path: _Store, name: str, *, layout: str = "local") -> _List[str]: ...
    @staticmethod
    def delete(path: _Store, name: str, *, layout: str = "local") -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def pools(self) -> _List[Pool]: ...
    def allocate(
        self, container_id: str, ifname: str = "eth0", *, ips: Sequence[_IpLike] | None = None
    ) -> Lease: ...
    def release(self, container_id: str, ifname: str = "eth0") -> Lease | None: ...
    def lookup(self, container_id: str, ifname: str = "eth0") -> Lease | None: ...
    def list(self) -> _List[Lease]: ...
    def foreign_leases(self) -> _List[ForeignLease]: ...
    def gc(self, valid: Sequence[tuple[str, str]]) -> _List[Lease]: ...
    def quarantine(
        self, container_id: str, ifname: str = "eth0", *, found: Sequence[Quarantine]
    ) -> _List[Quarantine]: ...
    def quarantined(self) -> _List[Quarantine]: ...
    def hold(
        self, container_id: str, ifname: str = "eth0", *, ip: _IpLike, holder: str
    ) -> Hold: ...
    def unhold(
        self, container_id: str, ifname: str = "eth0", *, holder: str
    ) -> tuple[bool, _List[str]]: ...
    def holds(self) -> _List[Hold]: ...
    @property
    def boot_id(self) -> str | None: ...
    def set_boot_id(self, boot_id: str | None) -> None: ...
    def stale(self) -> _List[Lease]: ...
    def release_stale(self) -> _List[Lease]: ...

def current_boot_id() -> str:
    """The running kernel's boot id."""

@final
class Networks:
    """The networks of one host."""

    def __new__(
        cls,
        handle: Handle,
        root: _Path,
        *,
        ipam_path: _Path | None = None,
        layout: str = "local",
        store: EtcdStore | None = None,
    ) -> Networks: ...
    @property
    def handle(self) -> Handle: ...
    def create(
        self,
        name: str,
        *,
        driver: str = "macvlan",
        parent: str | None = None,
        mode: str | None = None,
        flag: str | None = None,
        pools: Sequence[Pool] | None = None,
        mtu: int | None = None,
        bring_parent_up: bool = False,
        conflict_detection: ConflictDetection | None = None,
        dhcp: DhcpConfig | None = None,
        parent_in_endpoint_namespace: bool = False,
    ) -> Network: ...
    def create_or_open(
        self,
        name: str,
        *,
        driver: str = "macvlan",
        parent: str | None = None,
        mode: str | None = None,
        flag: str | None = None,
        pools: Sequence[Pool] | None = None,
        mtu: int | None = None,
        bring_parent_up: bool = False,
        conflict_detection: ConflictDetection | None = None,
        dhcp: DhcpConfig | None = None,
        parent_in_endpoint_namespace: bool = False,
    ) -> Network: ...
    def create_docker(
        self, name: str, driver: str, options: Mapping[str, str], *, pools: Sequence[Pool] | None = None
    ) -> Network: ...
    def get(self, name: str) -> Network: ...
    def list(self) -> _List[Network]: ...
    def delete(self, name: str) -> None: ...
    def delete_if_unused(self, name: str) -> bool: ...
    def reconcile(self) -> ReconcileReport: ...
    def renew_due_dhcp(self) -> _List[DhcpRenewal]: ...
    def next_dhcp_renewal(self) -> float | None: ...

@final
class Network:
    """One network."""

    @property
    def name(self) -> str: ...
    @property
    def driver(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def parent(self) -> str | None: ...
    @property
    def parent_in_endpoint_namespace(self) -> bool: ...
    @property
    def lower(self) -> str: ...
    @property
    def mtu(self) -> int | None: ...
    @property
    def pools(self) -> _List[Pool]: ...
    @property
    def host_access(self) -> str | None: ...
    def differences(
        self,
        *,
        driver: str = "macvlan",
        parent: str | None = None,
        mode: str | None = None,
        flag: str | None = None,
        pools: Sequence[Pool] | None = None,
        mtu: int | None = None,
        conflict_detection: ConflictDetection | None = None,
        dhcp: DhcpConfig | None = None,
        parent_in_endpoint_namespace: bool = False,
    ) -> _List[str]: ...
    @property
    def ipam(self) -> Ipam: ...
    @property
    def conflict_detection(self) -> ConflictDetection | None: ...
    def watch_conflicts(self) -> ConflictWatch: ...
    @property
    def dhcp(self) -> DhcpConfig | None: ...
    def renew_dhcp(self, container_id: str, ifname: str = "eth0") -> DhcpLease: ...
    def renew_due_dhcp(self) -> _List[DhcpRenewal]: ...
    def connect(
        self,
        netns: Netns,
        container_id: str,
        *,
        ifname: str = "eth0",
        ip: _IpLike | None = None,
        mac: str | None = None,
        target: Handle | None = None,
        announce: bool | Literal["wire", "segment", "kernel", "off"] = ...,
        keep_ipv6: bool = False,
        default_route: Literal["auto", "none"] | int = ...,
        hostname: str | None = None,
    ) -> Endpoint: ...
    def prepare(
        self,
        container_id: str,
        *,
        ifname: str = "eth0",
        ip: _IpLike | None = None,
        mac: str | None = None,
        announce: bool | Literal["wire", "off"] = ...,
    ) -> Endpoint: ...
    def set_sandbox(
        self, container_id: str, path: str | os.PathLike[str], ifname: str = "eth0"
    ) -> Endpoint: ...
    def disconnect(self, container_id: str, ifname: str = "eth0") -> None: ...
    def disconnect_for_netns_deletion(self, container_id: str, ifname: str = "eth0") -> None: ...
    def gc(self, valid: Sequence[tuple[str, str]]) -> _List[GoneEndpoint]: ...
    def export(self, format: str) -> _List[tuple[str, str]]: ...
    def endpoint(self, container_id: str, ifname: str = "eth0") -> Endpoint | None: ...
    def endpoints(self) -> _List[Endpoint]: ...
    def enable_host_access(
        self,
        *,
        name: str | None = None,
        with_address: bool = False,
        routes: str = "endpoints",
        address: _IpLike | None = None,
    ) -> str: ...
    def disable_host_access(self) -> None: ...
    def disable_host_access_if_unused(self) -> bool: ...

@final
class Endpoint:
    """A connected endpoint."""

    @property
    def network(self) -> str: ...
    @property
    def container_id(self) -> str: ...
    @property
    def ifname(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def mac(self) -> str | None: ...
    @property
    def handoff(self) -> str | None: ...
    @property
    def sandbox(self) -> str | None: ...
    @property
    def addresses(self) -> _List[_Iface]: ...
    @property
    def routes(self) -> _List[Route]: ...
    @property
    def netns(self) -> str | None: ...
    @property
    def dhcp(self) -> DhcpLease | None: ...
    def disconnect(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class ReconcileReport:
    """What Networks.reconcile found and repaired."""

    @property
    def recreated_parents(self) -> _List[str]: ...
    @property
    def recreated_shims(self) -> _List[str]: ...
    @property
    def gone_endpoints(self) -> _List[GoneEndpoint]: ...
    @property
    def removed_links(self) -> _List[str]: ...
    def is_clean(self) -> bool: ...

@final
class GoneEndpoint:
    """An endpoint reconcile found gone and cleaned up."""

    @property
    def network(self) -> str: ...
    @property
    def container_id(self) -> str: ...
    @property
    def ifname(self) -> str: ...
    @property
    def addresses(self) -> _List[_Iface]: ...

def render_vlan(format: str, name: str, parent: str, vlan_id: int) -> _List[tuple[str, str]]:
    """Renders a VLAN for ifupdown, ifcfg or networkd: (path, content) pairs."""

from ._enums import IpvlanFlag, IpvlanMode, MacvlanMode, VlanProtocol
