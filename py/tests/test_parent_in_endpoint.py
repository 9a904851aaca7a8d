"""A network whose parent is in each endpoint's namespace (the CNI plugins' `linkInContainer`):
the link is made inside the container on its own NIC; the host's namespace is not touched."""

from __future__ import annotations

import json
import subprocess

import pytest

import underlay
from conftest import needs_root, unique


def ip_json(ns: str, *args: str) -> list:
    out = subprocess.run(["ip", "-n", ns, "-d", "-j", *args], check=True, capture_output=True)
    return json.loads(out.stdout)


@needs_root
def test_link_made_on_the_containers_own_parent(tmpdir_path: str) -> None:
    with underlay.Netns.create(unique("pih")) as host, underlay.Netns.create(unique("pic")) as ctr:
        h = host.handle()
        c = ctr.handle()
        underlay.Veth.create(c, "eth1", "wire1", up=True, peer_up=True)
        host_links = [l["ifname"] for l in ip_json(host.name, "link")]
        nets = underlay.Networks(h, tmpdir_path)
        pools = [underlay.Pool.parse("172.23.60.0/24 gateway=172.23.60.1")]
        with pytest.raises(underlay.InvalidArgument, match="network `pinet`"):
            nets.create(
                "pinet",
                parent="eth1",
                pools=pools,
                parent_in_endpoint_namespace=True,
                conflict_detection=underlay.ConflictDetection(),
            )
        net = nets.create("pinet", parent="eth1", pools=pools, parent_in_endpoint_namespace=True)
        assert net.parent_in_endpoint_namespace
        assert net.differences(parent="eth1", pools=pools, parent_in_endpoint_namespace=True) == []
        assert any("parent's namespace" in d for d in net.differences(parent="eth1", pools=pools))
        ep = net.connect(ctr, "c1", target=c)
        link = ip_json(ctr.name, "link", "show", "dev", "eth0")[0]
        assert link["link"] == "eth1" and link["linkinfo"]["info_kind"] == "macvlan"
        addrs = ip_json(ctr.name, "addr", "show", "dev", "eth0")[0]["addr_info"]
        assert [f"{a['local']}/{a['prefixlen']}" for a in addrs if a.get("family") == "inet"] == [
            str(a) for a in ep.addresses
        ]
        assert [l["ifname"] for l in ip_json(host.name, "link")] == host_links
        net.disconnect("c1")
        assert ip_json(ctr.name, "link", "show", "dev", "eth1")
        nets.delete("pinet")
