"""The modes of the link kinds, as string enums (a plain string value works too)."""

import enum

__all__ = ["MacvlanMode", "IpvlanMode", "IpvlanFlag", "VlanProtocol"]


class MacvlanMode(str, enum.Enum):
    """How macvlan children on one parent talk to each other and to the outside."""

    PRIVATE = "private"
    """No traffic between children, not even through the outside switch."""
    VEPA = "vepa"
    """Child-to-child traffic goes out to the switch and back (needs hairpin)."""
    BRIDGE = "bridge"
    """Children talk directly; the common mode and Docker's only one."""
    PASSTHRU = "passthru"
    """One child takes over the parent (for a VM)."""
    SOURCE = "source"
    """Frames accepted only from a list of source MACs."""

    def __str__(self) -> str:
        return self.value


class IpvlanMode(str, enum.Enum):
    """The ipvlan mode; it belongs to the parent (all children share it)."""

    L2 = "l2"
    """Switching at L2 (children answer ARP)."""
    L3 = "l3"
    """Routing at L3 (no broadcast, no ARP from children)."""
    L3S = "l3s"
    """Like L3, with netfilter connection tracking."""

    def __str__(self) -> str:
        return self.value


class IpvlanFlag(str, enum.Enum):
    """The ipvlan flag: how children on one parent talk to each other."""

    BRIDGE = "bridge"
    """Children talk directly (the default)."""
    PRIVATE = "private"
    """No traffic between children."""
    VEPA = "vepa"
    """Child-to-child traffic goes out to the switch and back."""

    def __str__(self) -> str:
        return self.value


class VlanProtocol(str, enum.Enum):
    """The VLAN tag protocol."""

    IEEE_802_1Q = "802.1Q"
    """802.1Q (0x8100), the usual one."""
    IEEE_802_1AD = "802.1ad"
    """802.1ad (0x88a8), the "QinQ" service tag."""

    def __str__(self) -> str:
        return self.value
