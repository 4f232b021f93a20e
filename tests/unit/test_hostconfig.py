"""/etc/netctl/daemon.json: Docker daemon.json's keys for the default bridge and the pools."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from controller import hostconfig, load
from controller.errors import ManifestError
from controller.model import Allocations
from controller.pipeline import build
from controller.resolve import HostFacts, resolve


def config(tmp_path: Path, text: str) -> hostconfig.HostConfig:
    path = tmp_path / "daemon.json"
    path.write_text(text)
    return hostconfig.read(str(path))


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ManifestError) as exc:
        config(tmp_path, text)
    return [str(p).replace(str(tmp_path) + "/", "") for p in exc.value.problems]


def test_bad_files_say_where(tmp_path: Path) -> None:
    assert problems(tmp_path, '{\n  "bip": "172.26.0.1/16",\n  "mtu": "x"\n}\n') == [
        "daemon.json:3 mtu: 'x' is not of type 'integer'"]
    assert problems(tmp_path, '{\n  "bip": "172.26.0.0"\n}\n') == [
        "daemon.json:2 bip: '172.26.0.0' is not an address with a prefix (e.g. 172.26.0.1/16)"]
    assert problems(tmp_path, '{"fixed-cidr": "10.0.0.0/24", "bip": "172.26.0.1/16"}') == [
        "daemon.json:1 fixed-cidr: 10.0.0.0/24 is not inside bip 172.26.0.1/16"]
    assert "unknown field 'bpi'" in problems(tmp_path, '{"bpi": "172.26.0.1/16"}')[0]
    with pytest.raises(ManifestError):
        hostconfig.read(str(tmp_path / "missing.json"))  # named explicitly: must exist
    bad_mark = problems(tmp_path, '{"bridge-accept-fwmark": "1/x"}')
    assert "bridge-accept-fwmark: '1/x' does not match" in bad_mark[0], bad_mark


def test_the_accept_mark_reaches_the_target_and_leaves_the_bridge_alone(tmp_path: Path) -> None:
    c = config(tmp_path, '{"bridge-accept-fwmark": "0x1/0x3"}')
    assert hostconfig.builtin(load.load_builtin(), c) == load.load_builtin()
    docs = load.parse_text("apiVersion: netctl/v1\nkind: Network\nmetadata: {name: a}\n", "t.yaml")
    target, _ = resolve(build(docs), Allocations(), HostFacts(accept_fwmark=c.accept_fwmark), "now")
    assert target.accept_fwmark == "0x1/0x3"


def test_keys_fold_into_the_default_bridge(tmp_path: Path) -> None:
    c = config(tmp_path, '{"bip": "172.26.0.1/16", "fixed-cidr": "172.26.5.0/24", "mtu": 1400,'
                         ' "icc": false, "ip-masq": false, "ip": "127.0.0.1"}')
    bridge = next(d for d in hostconfig.builtin(load.load_builtin(), c) if d.name == "bridge")
    spec = bridge.body["spec"]
    assert spec["ipam"]["config"] == [{"subnet": "172.26.0.0/16", "gateway": "172.26.0.1",
                                       "ipRange": "172.26.5.0/24"}]
    assert spec["options"]["com.docker.network.driver.mtu"] == "1400"
    assert spec["options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert spec["options"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"
    assert spec["options"]["com.docker.network.bridge.host_binding_ipv4"] == "127.0.0.1"
    assert load.load_builtin()[0].body["spec"]["options"]["com.docker.network.driver.mtu"] == "1500"


def test_default_address_pools_give_new_networks_their_subnets(tmp_path: Path) -> None:
    c = config(tmp_path, '{"default-address-pools": [{"base": "10.200.0.0/16", "size": 24}]}')
    assert c.pools[:2] == (ipaddress.ip_network("10.200.0.0/24"), ipaddress.ip_network("10.200.1.0/24"))
    docs = load.parse_text("apiVersion: netctl/v1\nkind: Network\nmetadata: {name: a}\n---\n"
                           "apiVersion: netctl/v1\nkind: Network\nmetadata: {name: b}\n", "t.yaml")
    target, _ = resolve(build(docs), Allocations(), HostFacts(pools=c.pools), "now")
    subnets = {n.name: str(n.subnets[0].subnet) for n in target.networks if n.subnets}
    assert subnets["a"] == "10.200.0.0/24" and subnets["b"] == "10.200.1.0/24"
    assert subnets["bridge"] == "172.17.0.0/16"
