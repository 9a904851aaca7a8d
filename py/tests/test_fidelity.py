"""Issue 15: what underlay says and reads back, checked against the kernel (iproute2)."""

from __future__ import annotations

import json
import subprocess

import pytest

import underlay
from conftest import needs_root

BAD_MACS = ["01:00:5e:00:00:01", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"]


def ip_json(ns: underlay.Netns, *args: str) -> list[dict]:
    assert ns.name
    out = subprocess.run(["ip", "-n", ns.name, "-d", "-j", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


@needs_root
@pytest.mark.parametrize("mac", BAD_MACS)
def test_unassignable_macs_are_invalid_arguments(
    netns: underlay.Netns, handle: underlay.Handle, nic: str, mac: str
) -> None:
    underlay.Macvlan.create(handle, "mv0", nic)
    before = ip_json(netns, "link", "show", "mv0")[0]["address"]
    attempts = {
        "create": lambda: underlay.Macvlan.create(handle, "mv1", nic, mac=mac),
        "set_link": lambda: handle.set_link("mv0", mac=mac),
        "veth peer": lambda: underlay.Veth.create(handle, "va", "vb", peer_mac=mac),
        "announce": lambda: netns.announce(1, mac, ["172.22.16.10"]),
    }
    for step, attempt in attempts.items():
        with pytest.raises(underlay.InvalidArgument) as e:
            attempt()
        assert mac in str(e.value), step
        assert "check the name" not in str(e.value), step
    assert ip_json(netns, "link", "show", "mv0")[0]["address"] == before
    names = {link["ifname"] for link in ip_json(netns, "link", "show")}
    assert not names & {"mv1", "va", "vb"}
