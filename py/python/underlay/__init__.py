"""underlay: containers and VMs straight onto the physical network.

802.1Q VLAN sub-interfaces, macvlan (every mode), macvtap, ipvlan, VXLAN, veth and bridges,
created directly inside network namespaces with their addresses and routes; an IPAM that hands
out addresses without conflicts (per host, or cluster-wide on etcd: ``EtcdStore``); Docker-like
networks and endpoints over both.

The sync API (this module) releases the GIL around every kernel call; ``underlay.aio`` offers
the same calls as coroutines. Every error is an ``underlay.UnderlayError`` (an ``OSError``
carrying the kernel's ``errno``), of the subclass that names its kind.

>>> import underlay
>>> with underlay.Netns.create("c1") as ns:             # doctest: +SKIP
...     inside = ns.handle()
...     underlay.Veth.create(inside, "a0", "b0", up=True, peer_up=True)
"""

from ._enums import IpvlanFlag, IpvlanMode, MacvlanMode, VlanProtocol
from ._underlay import (
    DEFAULT_ROOT,
    ENDPOINT_GROUP,
    VERSION,
    Address,
    Attached,
    AlreadyExists,
    Bridge,
    Busy,
    Conflict,
    Corrupt,
    Dummy,
    Endpoint,
    EtcdStore,
    GoneEndpoint,
    Handle,
    InvalidArgument,
    IoError,
    Ipam,
    Ipvlan,
    KernelError,
    KernelUnsupported,
    Lease,
    Link,
    Macvlan,
    MultipleErrors,
    Netns,
    Network,
    Networks,
    NotFound,
    Overlap,
    PermissionDenied,
    Pool,
    PoolExhausted,
    ProtocolError,
    ReconcileReport,
    Record,
    Route,
    Timeout,
    UnderlayError,
    Veth,
    Vlan,
    VlanFlags,
    Vxlan,
    VxlanInfo,
    current_boot_id,
    error_classes,
    render_vlan,
)

__version__ = VERSION

__all__ = [
    "DEFAULT_ROOT",
    "ENDPOINT_GROUP",
    "VERSION",
    "Address",
    "Attached",
    "AlreadyExists",
    "Bridge",
    "Busy",
    "Conflict",
    "Corrupt",
    "Dummy",
    "Endpoint",
    "EtcdStore",
    "GoneEndpoint",
    "Handle",
    "InvalidArgument",
    "IoError",
    "Ipam",
    "Ipvlan",
    "IpvlanFlag",
    "IpvlanMode",
    "KernelError",
    "KernelUnsupported",
    "Lease",
    "Link",
    "Macvlan",
    "MacvlanMode",
    "MultipleErrors",
    "Netns",
    "Network",
    "Networks",
    "NotFound",
    "Overlap",
    "PermissionDenied",
    "Pool",
    "PoolExhausted",
    "ProtocolError",
    "ReconcileReport",
    "Record",
    "Route",
    "Timeout",
    "UnderlayError",
    "Veth",
    "Vlan",
    "VlanFlags",
    "VlanProtocol",
    "Vxlan",
    "VxlanInfo",
    "current_boot_id",
    "error_classes",
    "render_vlan",
]
