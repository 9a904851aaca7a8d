"""Inputs at and past the limits: refused with a typed error naming the limit, never a panic
(`PanicException` is not an `Exception`), and a refused request leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

import underlay
from conftest import needs_root, unique


def ip_json(ns: underlay.Netns, *args: str) -> list[dict]:
    assert ns.name
    out = subprocess.run(["ip", "-n", ns.name, "-d", "-j", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


@needs_root
def test_endpoint_keys(handle: underlay.Handle, nic: str, tmpdir_path: str) -> None:
    nets = underlay.Networks(handle, tmpdir_path)
    net = nets.create("keys", parent=nic, pools=[underlay.Pool("10.73.0.0/24")])
    with underlay.Netns.create(unique("ctr")) as ctr:
        for cid, ifname, says in [
            ("c", "i" * 201, "15"),
            ("a\nb", "eth0", "control characters"),
            ("a/b", "eth0", "`/`"),
            ("", "eth0", "empty"),
            ("x" * 257, "eth0", "257 bytes"),
        ]:
            with pytest.raises(underlay.InvalidArgument, match=says):
                net.endpoint(cid, ifname)
            with pytest.raises(underlay.InvalidArgument, match=says):
                net.connect(ctr, cid, ifname=ifname)
            with pytest.raises(underlay.InvalidArgument, match=says):
                net.disconnect(cid, ifname)
        assert net.endpoints() == []
        assert [x["ifname"] for x in ip_json(ctr, "link", "show")] == ["lo"]
        euros = "€" * 67  # 201 bytes
        assert net.endpoint(euros) is None
        ep = net.connect(ctr, euros, announce=False)
        assert ep.container_id == euros
        assert ip_json(ctr, "link", "show", "eth0")[0]["linkinfo"]["info_kind"] == "macvlan"
        got = net.endpoint(euros)
        assert got is not None and got.container_id == euros
        net.disconnect(euros)
        assert net.endpoint(euros) is None
    nets.delete("keys")


@needs_root
def test_oversized_request_keeps_the_handle(netns: underlay.Netns, handle: underlay.Handle, nic: str) -> None:
    def macs(n: int) -> list[str]:
        return [f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}" for i in range(n)]

    for n in (5_400, 5_500):
        with pytest.raises(underlay.InvalidArgument, match=str(underlay.Macvlan.MAX_SOURCE_MACS)):
            underlay.Macvlan.create(handle, "ms0", nic, "source", source_macs=macs(n))
        assert "ms0" not in [x["ifname"] for x in ip_json(netns, "link", "show")], "nothing left behind"
        # The handle still works, from another thread too.
        seen: list[str] = []
        t = threading.Thread(target=lambda: seen.append(handle.link(nic).name))
        t.start()
        t.join()
        assert seen == [nic] and handle.link(nic).name == nic
    most = underlay.Macvlan.MAX_SOURCE_MACS
    link = underlay.Macvlan.create(handle, "ms1", nic, "source", source_macs=macs(most))
    assert link.name == "ms1"
    (j,) = ip_json(netns, "link", "show", "ms1")
    assert j["linkinfo"]["info_data"]["macaddr_count"] == most
    assert "ms1" in [x.name for x in handle.links()]
