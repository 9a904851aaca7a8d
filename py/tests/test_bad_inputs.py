"""The shared table of bad inputs (tests/bad-inputs.tsv), run through the Python binding: each
case must raise the exception class of its error kind with a message containing its `says`
column. The C tests run the same table (ffi-c/tests/c/test_bad_inputs.c)."""

from __future__ import annotations

import pathlib
from typing import Callable, Iterator

import pytest

import underlay
from conftest import needs_root

TABLE = pathlib.Path(__file__).resolve().parents[2] / "tests" / "bad-inputs.tsv"


def _cases() -> list[tuple[str, str, str, list[str]]]:
    out = []
    for line in TABLE.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        fields = ["" if f == "<empty>" else f for f in line.split("\t")]
        assert len(fields) >= 3, f"{TABLE}: malformed line {line!r}"
        out.append((fields[0], fields[1], fields[2], fields[3:]))
    return out


CASES = _cases()


@pytest.fixture(scope="module")
def ns() -> Iterator[tuple[underlay.Netns, underlay.Handle]]:
    n = underlay.Netns.anonymous()
    yield n, n.handle()


def _ipam() -> underlay.Ipam:
    return underlay.Ipam.in_memory("n", [underlay.Pool("10.0.0.0/24")])


def _op(op: str, a: list[str], n: underlay.Netns, h: underlay.Handle) -> Callable[[], object]:
    """The call a case makes (the same operations as the C runner)."""
    ops: dict[str, Callable[[], object]] = {
        "netns_create": lambda: underlay.Netns.create(a[0]),
        "netns_open": lambda: underlay.Netns.open(a[0]),
        "netns_open_path": lambda: underlay.Netns.open_path(a[0]),
        "route_new": lambda: underlay.Route(a[0]),
        "route_default_via": lambda: underlay.Route.default_via(a[0]),
        "route_via": lambda: underlay.Route(a[0], gateway=a[1]),
        "pool": lambda: underlay.Pool.parse(a[0]),
        "ipam_allocate": lambda: _ipam().allocate(a[0], a[1], ips=a[2:] or None),
        "ipam_boot_id": lambda: _ipam().set_boot_id(a[0]),
        "ipam_hold": lambda: _ipam().hold(a[0], ip=a[1], holder=a[2]),
        "vlan": lambda: underlay.Vlan.create(h, a[0], int(a[1])),
        "vlan_protocol": lambda: underlay.Vlan.create(h, a[0], int(a[1]), protocol=a[2]),
        "macvlan": lambda: underlay.Macvlan.create(h, a[0], a[1], a[2]),
        "ipvlan": lambda: underlay.Ipvlan.create(h, a[0], a[1], a[2], flag=a[3]),
        "link_set_mac": lambda: h.set_link(a[0], mac=a[1]),
        "link_get": lambda: h.link(a[0]),
        "arp_ignore": lambda: n.set_arp_ignore(a[0], int(a[1])),
        "arp_announce": lambda: n.set_arp_announce(a[0], int(a[1])),
        "accept_dad": lambda: n.set_accept_dad(a[0], int(a[1])),
        "announce": lambda: n.announce(1, a[0], a[1:]),
        "dhcp": lambda: underlay.DhcpConfig(int(a[0]), int(a[1]) / 1000, a[2] if len(a) > 2 else None),
    }
    assert op in ops, f"{TABLE}: operation {op!r} has no Python runner: add it here and in C"
    return ops[op]


def test_table_is_not_empty() -> None:
    assert len(CASES) >= 30


@needs_root
@pytest.mark.parametrize(
    "op,kind,says,args", CASES, ids=[f"{c[0]}-{'-'.join(c[3])[:40]}" for c in CASES]
)
def test_bad_input(
    ns: tuple[underlay.Netns, underlay.Handle], op: str, kind: str, says: str, args: list[str]
) -> None:
    cls = getattr(underlay, kind)
    assert issubclass(cls, underlay.UnderlayError)
    call = _op(op, args, *ns)
    with pytest.raises(underlay.UnderlayError) as err:
        result = call()
        if op == "netns_create" and isinstance(result, underlay.Netns):
            underlay.Netns.delete(args[0])  # a bad input that was accepted: undo it
    assert type(err.value) is cls, f"{op}{args}: {type(err.value).__name__}: {err.value}"
    assert says in str(err.value), f"{op}{args}: {err.value}"
