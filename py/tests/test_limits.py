"""Inputs at and past the limits: refused with a typed error naming the limit, never a panic
(`PanicException` is not an `Exception`), and a refused request leaves nothing behind."""

from __future__ import annotations

import json
import subprocess

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
