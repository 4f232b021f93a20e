"""planview.plan_view: plans grouped by document, Terraform-style (pure: specs in, text out)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from topologies import NOW, container, ids, network, resolved, spec

from controller import documents, hostconfig, load
from controller.desired import desired_resources
from controller.model import Action, Allocations, Op, Plan, Spec, Target
from controller.plan import plan
from controller.planview import plan_view
from controller.resolve import HostFacts, resolve

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "seed-tour.plan.txt"
ESC = "\x1b["


def created(s: Spec) -> tuple[Plan, Target]:
    """The plan that builds `s` from nothing, and its target."""
    target, _ = resolved(s)
    return plan(desired_resources(target), ()), target


def groups(text: str) -> dict[str, list[str]]:
    """Header line -> the lines beneath it (verbose output)."""
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("# "):
            current = out.setdefault(line, [])
        elif line.startswith("  "):
            current.append(line)
    return out


def headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("# ")]


def plan_line(p: Plan) -> str:
    counts = p.count(Op.CREATE), p.count(Op.UPDATE), p.count(Op.DELETE)
    return "Plan: {} to create, {} to update, {} to delete.".format(*counts)


def app() -> Spec:
    return spec(network("app"), container("web", "app"), container("db", "app"))


def changed_app() -> Spec:
    return spec(
        network("app", options={"com.docker.network.driver.mtu": "1400"}),
        container("web", "app", hostname="web"),
        container("cache", "app"),
    )


def update_plan() -> tuple[Plan, Target]:
    """app() applied, then changed_app(): an update, a create and a destroy."""
    first, allocs = resolved(app())
    target, _ = resolved(changed_app(), allocs, seed="later")  # new objects get new IDs
    return plan(desired_resources(target), desired_resources(first)), target


# ------------------------------------------------------------------------------ the seed tour


def seed_tour_view(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(hostconfig, "current", hostconfig.HostConfig)  # not this host's daemon.json
    docs = load.parse_paths([str(ROOT / "examples" / "seed-tour.yaml")])
    target, _ = resolve(documents.build(docs), Allocations(), HostFacts(), NOW, new_id=ids())
    return plan_view(plan(desired_resources(target), ()), target)


def test_seed_tour_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    text = seed_tour_view(monkeypatch)
    if os.environ.get("NETCTL_UPDATE_GOLDEN"):  # NETCTL_UPDATE_GOLDEN=1 pytest ...: rewrite it
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


# ---------------------------------------------------------------------------------- grouping


def test_each_container_objects_under_its_header() -> None:
    s = spec(network("front"), container("web", "front"), container("api", "front", "bridge"))
    p, target = created(s)
    g = groups(plan_view(p, target))
    for c in target.containers:
        mine = g[f"# container {c.name} will be created"]
        assert f"  + namespace {c.name}" in mine
        assert f"  + file /etc/netns/{c.name}/hosts" in mine
        assert f"  + file /etc/netns/{c.name}/resolv.conf" in mine
        for ep in c.endpoints:
            assert any(line.startswith(f"  + veth {ep.host_ifname} ({c.name}/{ep.ifname}") for line in mine)
        others = [line for h, lines in g.items() if h != f"# container {c.name} will be created"
                  for line in lines]
        assert not any(c.name + "/" in line and "interface" in line for line in others)
    front = target.network("front")
    assert front is not None and front.device
    assert g["# network front will be created"][0] == f"  + bridge {front.device}"


def test_firewall_and_global_objects_under_the_host_group() -> None:
    p, target = created(spec(network("front"), container("web", "front")))
    g = groups(plan_view(p, target))
    host = g["# host objects will be created"]
    chains = [line for lines in g.values() for line in lines if line.startswith(("  + chain", "  + jump"))]
    assert chains and all(line in host for line in chains)
    assert "  + sysctl net.ipv4.ip_forward = 1" in host
    assert "  + bridge netctl0" in host  # the built-in default bridge is nobody's document
    assert "      + -A NETCTL-FORWARD -j NETCTL-ISOLATION-STAGE-1" in host  # rules beneath their chain


def test_groups_in_plan_order_and_every_action_once() -> None:
    p, target = created(app())
    text = plan_view(p, target)
    objects = [line for line in text.splitlines() if line[:4] in ("  + ", "  ~ ", "  - ")]
    assert len(objects) == len(p.actions)
    assert headers(text)[0] == "# container db will be created"  # db's namespace comes first


# --------------------------------------------------------------------------- update, destroy


def test_update_create_and_destroy_headers() -> None:
    p, target = update_plan()
    text = plan_view(p, target)
    g = groups(text)
    assert set(g) == {
        "# network app will be updated in-place",
        "# container web will be updated in-place",
        "# container cache will be created",
        "# container db will be destroyed",
    }  # the firewall is the same: cache takes db's address
    assert "  - namespace db" in g["# container db will be destroyed"]
    assert any(line.startswith("  - veth ") for line in g["# container db will be destroyed"])
    assert any(line.startswith("  ~ bridge br-") and line.endswith(": mtu 1500 -> 1400")
               for line in g["# network app will be updated in-place"])
    assert "networks: 1 to update" in text.splitlines()
    assert "containers: 1 to create, 1 to update, 1 to delete" in text.splitlines()


def test_an_empty_spec_destroys_everything() -> None:
    first, _ = resolved(app())
    p = plan(desired_resources(resolved(Spec())[0]), desired_resources(first))
    empty = resolved(Spec())[0]
    text = plan_view(p, empty, previous=first)
    assert headers(text) == [
        "# container web will be destroyed",
        "# container db will be destroyed",
        "# host objects will be destroyed",
        "# network app will be destroyed",
    ]
    assert text.splitlines()[-3:] == ["networks: 1 to delete", "containers: 2 to delete", plan_line(p)]
    # Without the previous target a gone network cannot be named: its bridge is the host's.
    # Containers still are: their namespaces, veth peers and /etc/netns folders name them.
    assert headers(plan_view(p, empty)) == [
        "# container web will be destroyed",
        "# container db will be destroyed",
        "# host objects will be destroyed",
    ]


def test_a_replaced_namespace_replaces_the_container() -> None:
    p, target = created(spec(container("web", "bridge")))
    namespace = next(a.resource for a in p.actions if a.resource.key == "netns:web")
    replaced = Plan((Action(Op.DELETE, namespace), *p.actions))
    assert "# container web must be replaced" in headers(plan_view(replaced, target))
    assert "containers: 1 to replace" in plan_view(replaced, target)


def test_file_change_as_unified_diff() -> None:
    p, target = update_plan()
    web = target.container("web")
    assert web is not None and web.primary is not None and web.primary.ipv4 is not None
    lines = groups(plan_view(p, target))["# container web will be updated in-place"]
    at = lines.index("  ~ file /etc/netns/web/hosts")
    diff = lines[at + 1:]
    assert diff[0] == "      --- /etc/netns/web/hosts (old)"
    assert diff[1] == "      +++ /etc/netns/web/hosts (new)"
    assert diff[2].startswith("      @@ ")
    assert f"      +{web.primary.ipv4.ip}\tweb" in diff
    assert any(line.startswith(f"      -{web.primary.ipv4.ip}\t") for line in diff)
    assert not any("characters" in line for line in lines)


# ------------------------------------------------------------------------------ presentation


def test_color_only_when_asked() -> None:
    p, target = update_plan()
    plain = plan_view(p, target)
    assert ESC not in plain
    colored = plan_view(p, target, color=True)
    for code in ("\x1b[32m+", "\x1b[33m~", "\x1b[31m-", "\x1b[1m# "):
        assert code in colored
    assert colored.splitlines()[-1] == plain.splitlines()[-1]  # scripts match it


def test_compact_is_one_line_per_group_and_the_summary() -> None:
    p, target = update_plan()
    full = plan_view(p, target)
    compact = plan_view(p, target, verbose=False).splitlines()
    summary = [line for line in full.splitlines() if line and not line.startswith(("#", " "))]
    assert compact == [*(compact[: len(headers(full))]), *summary]
    assert len(compact) == len(headers(full)) + len(summary)
    cache = next(h for h in compact if h.startswith("# container cache"))
    size = len(groups(full)["# container cache will be created"])
    assert cache == f"# container cache will be created ({size} objects)"


def test_final_line_counts_kernel_actions() -> None:
    for p, target in (update_plan(), created(app())):
        for verbose in (True, False):
            text = plan_view(p, target, verbose=verbose)
            assert text.endswith("\n")
            assert text.splitlines()[-1] == plan_line(p)


def test_empty_plan() -> None:
    target, _ = resolved(spec())
    assert plan_view(plan((), ()), target) == "no changes\n"
    assert plan_view(Plan(), target, color=True, verbose=False) == "no changes\n"


def test_two_hundred_containers() -> None:
    nets = [network(f"n{i}") for i in range(4)]
    s = spec(*nets, *(container(f"c{i}", f"n{i % 4}", "bridge") for i in range(200)))
    p, target = created(s)
    assert len(p.actions) > 2000
    text = plan_view(p, target)
    assert len(headers(text)) == 4 + 200 + 1  # every document and the host
    assert len(headers(plan_view(p, target, verbose=False))) == 205
    assert text.splitlines()[-3:] == ["networks: 4 to create", "containers: 200 to create", plan_line(p)]

