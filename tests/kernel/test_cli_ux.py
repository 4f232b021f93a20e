"""The CLI as Docker, kubectl and Terraform users type it, through the real command in one
sandbox host holding the seed tour (plus a labelled spare network)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.manifests import container, manifest, network
from tests.sandbox_host import SandboxHost

EXTRA = manifest(network("spare", "10.61.0.0/24", labels={"env": "test"}),
                 network("front", "10.62.0.0/24", labels={"env": "prod"}),
                 container("web", "front", ports=["8080:80"]))


@pytest.fixture(scope="module")
def tour() -> Iterator[SandboxHost]:
    h = SandboxHost()
    try:
        h.netctl("apply", "-f", "examples/seed-tour.yaml")
        h.write("/tmp/extra.yaml", EXTRA)
        h.netctl("apply", "-f", "/tmp/extra.yaml")
        yield h
    finally:
        h.close()


@pytest.mark.parametrize("args", [
    ["network", "ls"], ["container", "ls"], ["network", "inspect", "isolated_nw"], ["status"],
    ["plan", "-f", "examples/seed-tour.yaml"], ["version"],
])
def test_global_options_before_and_after_the_subcommand(tour: SandboxHost, args: list[str]) -> None:
    before = tour.netctl("-o", "json", *args).stdout
    after = tour.netctl(*args, "-o", "json").stdout
    assert json.loads(before) == json.loads(after)
    assert tour.netctl(*args, "--output=yaml").stdout == tour.netctl("--output", "yaml", *args).stdout


def test_version(tour: SandboxHost) -> None:
    assert re.fullmatch(r"netctl version \d+\.\d+\.\d+\n", tour.netctl("--version").stdout)
    facts = json.loads(tour.netctl("version", "-o", "json").stdout)
    assert {"Version", "Python", "pyroute2", "Kernel", "iptables", "nft"} <= facts.keys()
    assert facts["iptables"].startswith("v") and facts["nft"].startswith("v")
    assert "pyroute2:" in tour.netctl("version").stdout


def test_ls_quiet_filter_format(tour: SandboxHost) -> None:
    ids = tour.netctl("network", "ls", "-q").stdout.split()
    assert len(ids) == 6 and all(len(i) == 12 for i in ids)
    full = tour.netctl("network", "ls", "-q", "--no-trunc").stdout.split()
    assert [f[:12] for f in full] == ids and all(len(f) == 64 for f in full)
    names = tour.netctl("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}").stdout.split()
    assert names == ["front", "isolated_nw", "spare"]
    assert tour.netctl("network", "ls", "--filter", "dangling=true", "--filter", "label=env",
                       "--format", "{{.Name}} {{.Labels}}").stdout == "spare env=test\n"
    table = tour.netctl("network", "ls", "--format", "table {{.Name}}\t{{.Driver}}").stdout.splitlines()
    assert table[0].split() == ["NAME", "DRIVER"] and ["none", "null"] in [r.split() for r in table]
    rows = tour.netctl("container", "ls", "--filter", "publish=8080", "--format", "{{.Names}}|{{.Ports}}")
    assert rows.stdout == "web|0.0.0.0:8080->80/tcp\n"
    bad = tour.netctl("network", "ls", "--filter", "colour=red", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: invalid filter")


def test_inspect_format(tour: SandboxHost) -> None:
    out = tour.netctl("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{.Driver}}",
                      "front").stdout
    assert out == "10.62.0.0/24 bridge\n"
    ip = tour.netctl("container", "inspect", "-f",
                     "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "web").stdout.strip()
    assert ip.startswith("10.62.0.")
    assert json.loads(tour.netctl("network", "inspect", "-f", "{{json .Labels}}", "spare").stdout) == {
        "env": "test"}
    bad = tour.netctl("network", "inspect", "-f", "{{.Name", "front", check=False)
    assert bad.returncode == 2 and "template" in bad.stderr and "Traceback" not in bad.stderr


def test_json_diagnostics_on_stdout(tour: SandboxHost) -> None:
    tour.write("/tmp/bad.yaml", manifest(network("b1", "10.0.0.0/33")))
    for verb in ("validate", "plan", "apply"):
        result = tour.netctl(verb, "-f", "/tmp/bad.yaml", "-o", "json", check=False)
        assert result.returncode == 2
        (problem,) = json.loads(result.stdout)
        assert problem["file"] == "/tmp/bad.yaml" and problem["line"] > 0 and problem["severity"] == "error"
        assert problem["path"].startswith("spec.ipam") and problem["message"]
    assert json.loads(tour.netctl("validate", "-f", "examples/seed-tour.yaml", "-o", "json").stdout) == []


def test_no_objects_is_an_error_unless_allowed(tour: SandboxHost) -> None:
    tour.run("mkdir -p /tmp/empty && : > /tmp/empty.yaml")
    for path in ("/tmp/empty", "/tmp/empty.yaml"):
        for verb in ("apply", "validate", "delete", "plan"):
            result = tour.netctl(verb, "-f", path, check=False)
            assert result.returncode == 2, (verb, path, result.stderr)
            assert result.stderr.startswith(f"error: no objects found in {path}"), result.stderr
    allowed = tour.netctl("validate", "-f", "/tmp/empty", "--allow-empty")
    assert allowed.returncode == 0 and "warning: no objects found" in allowed.stderr


def test_prune_rm_and_forced_disconnect(tour: SandboxHost) -> None:
    tour.write("/tmp/more.yaml", manifest(network("gone1", "10.63.0.0/24"), network("gone2", "10.64.0.0/24"),
                                          container("tmp", "gone1")))
    tour.netctl("apply", "-f", "/tmp/more.yaml")
    refused = tour.netctl("network", "prune", check=False)  # no terminal to confirm on
    assert refused.returncode == 2 and "-f" in refused.stderr
    pruned = tour.netctl("network", "prune", "-f", "--filter", "label!=env=test").stdout
    assert pruned == "Deleted Networks:\ngone2\n"  # spare carries env=test; gone1 is used by tmp
    assert tour.netctl("container", "rm", "tmp").stdout == "tmp\n"
    assert "tmp" not in tour.run("ip netns list").stdout
    assert tour.netctl("network", "disconnect", "gone1", "tmp", check=False).returncode == 2
    tour.netctl("network", "disconnect", "-f", "gone1", "tmp")  # gone already: fine with -f
    tour.netctl("network", "disconnect", "-f", "isolated_nw", "container1")  # not connected: fine
    assert tour.netctl("network", "rm", "gone1", "spare").stdout == "gone1\nspare\n"
    assert tour.netctl("container", "rm", "-f", "nosuch").returncode == 0


def test_plan_grouped_like_terraform(tour: SandboxHost) -> None:
    tour.write("/tmp/plan.yaml", manifest(network("grp", "10.65.0.0/24"), container("g1", "grp")))
    plan = tour.netctl("plan", "-f", "/tmp/plan.yaml").stdout
    assert "# network grp will be created" in plan and "# container g1 will be created" in plan
    assert "\n  + namespace g1\n" in plan and "\x1b[" not in plan  # not a terminal: no colour
    assert plan.rstrip().endswith("to delete.")
    applied = tour.netctl("apply", "-f", "/tmp/plan.yaml").stdout
    assert "# container g1 will be created (" in applied and "namespace g1" not in applied
    deleted = json.loads(tour.netctl("delete", "-f", "/tmp/plan.yaml", "-o", "json").stdout)
    namespace = next(a for a in deleted if a["kind"] == "netns")
    assert (namespace["op"], namespace["key"]) == ("delete", "netns:g1")


def test_status_states_documented_and_narrow(tour: SandboxHost) -> None:
    help_text = tour.netctl("status", "--help").stdout
    for state in ("applied", "pending", "converged", "failed"):
        assert state in help_text
    narrow = tour.netctl("status").stdout.splitlines()
    wide = tour.netctl("status", "--wide").stdout.splitlines()
    assert narrow[0].split() == ["KIND", "NAME", "STATE", "REASON", "LAST-RECONCILE"]
    assert "SOURCE" in wide[0] and max(map(len, narrow)) < max(map(len, wide))
    assert max(map(len, narrow)) <= 100


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "tcsh"])
def test_completion_scripts(tour: SandboxHost, shell: str) -> None:
    script = tour.netctl("completion", shell).stdout
    for word in ("apply", "network", "prune", "--filter")[: 3 if shell == "tcsh" else 4]:
        assert word in script, (shell, word)  # shtab's tcsh script completes subcommands only
    if shell == "bash":  # it parses, and completes the subcommands
        out = tour.run(["bash", "-c", script + "\nCOMP_WORDS=(netctl netw); COMP_CWORD=1; "
                        "_shtab_netctl; echo ${COMPREPLY[@]}"], check=False).stdout
        assert "network" in out


def test_man_page_and_examples_in_every_help(tour: SandboxHost) -> None:
    man = tour.netctl("man").stdout
    assert man.startswith(".TH NETCTL") and ".SH SYNOPSIS" in man
    for command in ("netctl network prune", "netctl completion", "\\-\\-filter"):
        assert command in man, command
    commands = [["apply"], ["plan"], ["delete"], ["validate"], ["network", "ls"], ["network", "inspect"],
                ["network", "create"], ["network", "rm"], ["network", "prune"], ["network", "connect"],
                ["network", "disconnect"], ["container", "ls"], ["container", "inspect"], ["container", "rm"],
                ["exec"], ["sandbox"], ["status"], ["version"], ["completion"]]
    for command in commands:
        text = tour.netctl(*command, "--help").stdout
        assert "examples:" in text and f"netctl {' '.join(command)}" in text, command


def test_graph_of_the_kernel_with_drift(tour: SandboxHost) -> None:
    def nodes_of(source: str) -> dict[str, dict[str, str]]:
        out = json.loads(tour.run(["dot", "-Tjson"], input=source).stdout)
        return {o["name"]: o for o in out.get("objects", [])}

    nodes = nodes_of(tour.netctl("graph").stdout)
    assert {"net/bridge", "net/isolated_nw", "net/front", "ctr/container1", "ctr/web", "host"} <= nodes.keys()
    assert all(n.get("color") != "#d62728" for n in nodes.values())
    # A veth deleted by hand: container2 drifts, and the picture says so.
    peer = json.loads(tour.run(["ip", "-n", "container2", "-j", "link", "show", "eth0"]).stdout)[0]
    links = json.loads(tour.run(["ip", "-j", "link"]).stdout)
    victim = next(link["ifname"] for link in links if link["ifindex"] == peer["link_index"])
    tour.run(["ip", "link", "del", victim])
    drifted = nodes_of(tour.netctl("graph").stdout)
    assert drifted["ctr/container2"]["color"] == "#d62728"
    assert drifted["ctr/container1"].get("color") != "#d62728"
    svg = tour.netctl("graph", "--format", "svg").stdout
    assert "<svg" in svg and "container2" in svg
    tour.netctl("graph", "--format", "png", "-o", "/tmp/t.png")
    assert tour.run("head -c 4 /tmp/t.png | od -An -c").stdout.split()[1:4] == ["P", "N", "G"]
    assert "graph LR" in tour.netctl("graph", "--format", "mermaid").stdout
    planned = nodes_of(tour.netctl("graph", "-f", "/tmp/plan.yaml").stdout)  # the files, not the kernel
    assert "ctr/g1" in planned and "ctr/web" not in planned
    tour.netctl("apply", "-f", "examples/seed-tour.yaml")  # repaired
